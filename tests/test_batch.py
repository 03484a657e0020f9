"""Rung 4: a vmapped batch equals a loop of single runs; failures stay with their patient.

Batched linear algebra rounds differently from unbatched, which can flip a step acceptance; batch
and loop are then two solutions within the solver tolerance, so they are compared at rtol 1e-10
to 1e-7 relative (the global error of such a solve)."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import cartpk

MODEL = cartpk.BloodStromaTumour("solid")
TIMES = jnp.linspace(0.0, 56.0, 57)
REGIMENS = [
    cartpk.Regimen.single(1e8, "blood_effector"),
    cartpk.Regimen.single(3e8, "blood_effector", duration=0.02),
    cartpk.Regimen.split(2e8, "blood_effector", fractions=[0.1, 0.3, 0.6], days=[0, 1, 2]),
    cartpk.Regimen.single(5e7, "tumour_effector"),
    cartpk.Regimen.single(1e8, "blood_effector", time=3.0),
    cartpk.Regimen.schedule(5e7, "blood_effector", interval=14.0, count=3),
    cartpk.Regimen.single(1e8, "stroma_effector") + cartpk.Regimen.single(1e7, "blood_effector"),
    cartpk.Regimen(),
]


@pytest.fixture(scope="module")
def batch():
    params = MODEL.default_params()
    rho = jnp.linspace(0.2, 0.5, len(REGIMENS))
    population = {**{k: jnp.full(len(REGIMENS), v) for k, v in params.items()}, "rho": rho}
    return population, cartpk.simulate_population(MODEL, population, REGIMENS, TIMES, rtol=1e-10)


def test_batch_equals_loop(batch):
    population, sol = batch
    n_events = max(r.n_events() for r in REGIMENS)
    for i, regimen in enumerate(REGIMENS):
        params = {k: v[i] for k, v in population.items()}
        doses = regimen.to_arrays(MODEL.state_names, n_events)
        single = cartpk.simulate(MODEL, params, doses, TIMES, rtol=1e-10)
        for name in MODEL.state_names:
            np.testing.assert_allclose(
                sol.states[name][i], single.states[name], rtol=1e-7, atol=1e-6, err_msg=name
            )
    assert np.all(np.asarray(sol.status) == 0)


def test_failing_patient_is_reported_and_does_not_spoil_the_others(batch):
    population, good = batch
    bad = {**population, "rho": population["rho"].at[2].set(jnp.nan)}
    bad["k_kill"] = bad["k_kill"].at[5].set(-1.0)
    with pytest.warns(cartpk.SimulationWarning, match="2 of 8 patients failed"):
        sol = cartpk.simulate_population(MODEL, bad, REGIMENS, TIMES, rtol=1e-10)
    assert list(np.flatnonzero(np.asarray(sol.status))) == [2, 5]
    messages = sol.failures(bad)
    assert messages[0].startswith("patient 2: a parameter is non-finite or outside its legal range")
    assert "rho=nan" in messages[0]
    assert "k_kill=-1" in messages[1]
    ok = [i for i in range(len(REGIMENS)) if i not in (2, 5)]
    np.testing.assert_array_equal(
        np.asarray(sol.states["tumour_effector"])[ok],
        np.asarray(good.states["tumour_effector"])[ok],
    )


def test_step_limit_is_reported_per_patient():
    """A solver failure (here: too few steps allowed) is a status, not NaNs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cartpk.SimulationWarning)
        sol = cartpk.simulate_population(
            MODEL, MODEL.default_params(), REGIMENS[:2], TIMES, max_steps=8
        )
    assert [m.split(":")[0] for m in sol.failures()] == ["patient 0", "patient 1"]
    assert "max_steps" in sol.failures()[0]
    assert not np.any(np.isnan(np.asarray(sol.status)))


def test_single_run_rejects_bad_parameters_with_a_clear_message():
    with pytest.raises(cartpk.ParameterError, match=r"parameter rho = -1 1/d is outside its legal"):
        cartpk.simulate(MODEL, MODEL.default_params(rho=-1.0), REGIMENS[0], TIMES)
