"""The blood-stroma-tumour model: scipy Radau reference, conservation, and calibration targets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TIMES
from scipy.integrate import solve_ivp

import cartpk


@pytest.mark.parametrize("run", ["blood_run", "solid_run"])
def test_matches_scipy_radau(run, request):
    """Every state above 1 cell agrees with Radau at rtol 1e-10 to 1e-5 relative."""
    model, params, sol = request.getfixturevalue(run)
    rate = jnp.zeros(len(model.states))
    f = jax.jit(lambda t, y: model.vector_field(t, y, (params, rate)))
    jac = jax.jit(jax.jacfwd(lambda t, y: model.vector_field(t, y, (params, rate)), argnums=1))
    y0 = np.array(model.pack(model.initial_state(params)))
    y0[model.state_names.index("blood_effector")] += 1e8
    ref = solve_ivp(
        lambda t, y: np.asarray(f(t, y)),
        (0.0, float(TIMES[-1])),
        y0,
        method="Radau",
        t_eval=np.asarray(TIMES),
        rtol=1e-10,
        atol=np.asarray(model.atol()) * 1e-3,
        jac=lambda t, y: np.asarray(jac(t, y)),
    )
    assert ref.success
    got = np.asarray(model.pack(sol.states))
    cells = np.array([s.unit == "cells" for s in model.states])
    big = (np.abs(ref.y.T) > 1.0) & cells
    rel = np.abs(got - ref.y.T)[big] / np.abs(ref.y.T)[big]
    assert rel.max() < 1e-5
    micro = ~cells
    np.testing.assert_allclose(got[:, micro], ref.y.T[:, micro], rtol=1e-5, atol=1e-8)


def test_conservation_without_proliferation_death_or_killing(car_t_dose):
    """With every source and sink of CAR-T off, trafficking only moves cells around."""
    model = cartpk.BloodStromaTumour("solid")
    off = dict.fromkeys(
        ["rho", "rho_homeostatic", "delta_effector", "delta_memory", "delta_exhausted", "k_kill"],
        0.0,
    )
    params = model.default_params(**off)
    sol = cartpk.simulate(model, params, car_t_dose, TIMES)
    total = np.asarray(sol.observables["total_car_t"])
    np.testing.assert_allclose(total, 1e8, rtol=1e-8)
    # and cells really did move: some reached the tumour, most sit in lymphoid tissue
    assert sol.states["tumour_effector"][-1] + sol.states["tumour_exhausted"][-1] > 1e3
    assert sol.states["peripheral_effector"][-1] > sol.states["blood_effector"][-1]


def _phases(sol):
    t = np.asarray(TIMES)
    c = np.asarray(sol.observables["blood_copies_per_ug"])
    i = int(c.argmax())

    def half_life(a, b):
        ia, ib = np.searchsorted(t, a), np.searchsorted(t, b)
        return np.log(2) * (t[ib] - t[ia]) / np.log(c[ia] / c[ib])

    return c, t[i], c[i], half_life(t[i] + 3, t[i] + 10), half_life(200, 364)


def test_blood_cancer_mode_is_multiphasic(blood_run):
    """Expansion to a peak near day 9, fast contraction, slow persistence (Stein 2019 shape:
    Cmax 24,000 copies/ug at 9.3 d, t1/2 4.3 d then ~220 d; doi:10.1002/psp4.12388)."""
    _, _, sol = blood_run
    c, tmax, cmax, fast, slow = _phases(sol)
    assert int(sol.status) == 0
    assert 7.0 <= tmax <= 12.0
    assert 1e4 <= cmax <= 5e4
    assert cmax / c[0] > 100  # expansion
    assert 3.0 <= fast <= 7.0  # fast contraction
    assert 150 <= slow <= 300  # slow persistence
    assert sol.observables["tumour_burden"][-1] < 1.0  # leukaemia cleared


def test_solid_tumour_peak_is_5_to_10_times_lower(blood_run, solid_run):
    """Same product, solid tumour: circulating peak 5-10x lower, peak around days 6-14, largely
    gone by day 28 (seed review; Haas 2019 mesothelin CAR-T doi:10.1016/j.ymthe.2019.07.015)."""
    _, _, blood = blood_run
    _, _, solid = solid_run
    _, _, cmax_blood, _, _ = _phases(blood)
    c, tmax, cmax_solid, _, _ = _phases(solid)
    assert 5.0 <= cmax_blood / cmax_solid <= 10.0
    assert 6.0 <= tmax <= 14.0
    assert c[np.searchsorted(np.asarray(TIMES), 28.0)] < 0.15 * cmax_solid
    assert solid.observables["tumour_car_t"].max() > 0


def test_solid_mode_needs_a_known_mode():
    with pytest.raises(cartpk.CartpkError, match="mode must be one of"):
        cartpk.BloodStromaTumour("liquid")


@pytest.mark.parametrize("mode", ["blood", "solid"])
def test_zero_cells_before_infusion_stay_zero(mode):
    """Integrating 28 days before the infusion keeps the CAR-T states at zero (a stable state)."""
    model = cartpk.BloodStromaTumour(mode)
    times = np.linspace(-28.0, 0.0, 8)
    solution = cartpk.simulate(model, model.default_params(), None, times)
    assert int(solution.status) == 0
    for name in ("blood_effector", "peripheral_effector", "blood_memory", "tumour_effector"):
        assert np.max(np.abs(np.asarray(solution.states[name]))) < 1e-6
