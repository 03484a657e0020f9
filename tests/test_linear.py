"""Rung 1: a linear model against closed-form bolus/infusion superposition (relative error 1e-6).

The model is defined here with the public API, as a user would."""

from typing import ClassVar

import jax.numpy as jnp
import numpy as np
import pytest

import cartpk


class OneCompartment(cartpk.AbstractModel):
    states: ClassVar = (cartpk.State("central", "blood", "mg", atol=1e-12),)
    parameters: ClassVar = (
        cartpk.Parameter("ke", 0.3, "1/d", "elimination rate", "test value"),
        cartpk.Parameter("volume", 3.0, "L", "volume", "test value"),
    )

    def rates(self, t, y, p, effects):
        return {"central": -p["ke"] * y["central"]}

    def observables(self, t, y, p):
        return {"concentration": y["central"] / p["volume"]}


MODEL = OneCompartment()
PARAMS = MODEL.default_params()
TIMES = jnp.linspace(0.0, 30.0, 301)


def closed_form(regimen, t, ke):
    """Superposition of analytic bolus and zero-order infusion responses (amount, mg)."""
    total = np.zeros_like(t)
    for dose in regimen.doses:
        if dose.duration == 0:
            total += np.where(t > dose.time, dose.amount * np.exp(-ke * (t - dose.time)), 0.0)
        else:
            rate, start, end = dose.rate, dose.time, dose.time + dose.duration
            during = rate / ke * (1 - np.exp(-ke * (np.clip(t, start, end) - start)))
            after = np.exp(-ke * np.clip(t - end, 0, None))
            total += np.where(t > start, during * after, 0.0)
    return total


REGIMENS = {
    "single bolus": cartpk.Regimen.single(100.0, "central", time=1.0),
    "repeated bolus": cartpk.Regimen.schedule(50.0, "central", start=0.5, interval=3.5, count=6),
    "single infusion": cartpk.Regimen.single(100.0, "central", time=2.0, duration=0.25),
    "repeated infusion": cartpk.Regimen.schedule(
        20.0, "central", start=1.0, interval=2.0, count=8, duration=1 / 24
    ),
    "mixed": cartpk.Regimen.single(30.0, "central", time=0.0)
    + cartpk.Regimen.single(60.0, "central", time=5.0, duration=10.0)
    + cartpk.Regimen.single(10.0, "central", time=7.0),
}


@pytest.mark.parametrize("name", list(REGIMENS))
def test_closed_form(name):
    regimen = REGIMENS[name]
    sol = cartpk.simulate(
        MODEL, PARAMS, regimen.to_arrays(MODEL.state_names, 24), TIMES, rtol=1e-10
    )
    expected = closed_form(regimen, np.asarray(TIMES), 0.3)
    got = np.asarray(sol.states["central"])
    mask = expected > 1e-6
    assert int(sol.status) == 0
    np.testing.assert_allclose(got[mask], expected[mask], rtol=1e-6)
    np.testing.assert_allclose(got[~mask], 0.0, atol=1e-9)
    np.testing.assert_allclose(sol.observables["concentration"], got / 3.0, rtol=1e-12)


def test_short_infusion_is_not_stepped_over():
    """A 1-hour infusion in the middle of a long dose-free stretch delivers its whole dose."""
    regimen = cartpk.Regimen.single(100.0, "central", time=17.3, duration=1 / 24)
    sol = cartpk.simulate(MODEL, {"ke": 1e-9, "volume": 3.0}, regimen, jnp.array([0.0, 30.0]))
    np.testing.assert_allclose(sol.states["central"][-1], 100.0, rtol=1e-6)


def test_output_at_dose_time_is_pre_dose():
    regimen = cartpk.Regimen.single(100.0, "central", time=1.0)
    sol = cartpk.simulate(MODEL, PARAMS, regimen, jnp.array([0.0, 1.0, 1.0 + 1e-9]))
    np.testing.assert_allclose(sol.states["central"], [0.0, 0.0, 100.0], atol=1e-6)


def test_dtypes_are_float64():
    sol = cartpk.simulate(MODEL, PARAMS, REGIMENS["mixed"], TIMES)
    assert sol.states["central"].dtype == jnp.float64
    assert sol.observables["concentration"].dtype == jnp.float64
