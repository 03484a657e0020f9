"""Fits that never crash: user models whose solves fail on trial points end cleanly.

A stiff Gompertz model (``r = 50 /d``) makes Kvaerno5's Newton iterations leave the model's domain
(``log`` of a negative volume) on trial steps; the forward-mode derivative of that implicit solve
then raises inside lineax ("A linear solver received non-finite input") instead of returning a
status. The fit must retry those subjects with the explicit solver and say so per subject; random
initial values, and random user model structures (:class:`RandomTerms`), must give a result or
one :class:`~cartpk.errors.CartpkError` line, never another exception.
"""

import math
from typing import ClassVar

import hypothesis.strategies as st
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

import cartpk
from cartpk.errors import CartpkError
from cartpk.estimation import Exponential, Observation, Population, fit
from cartpk.estimation.individual import RUNAWAY, SIGMA_FLOOR, _degenerate
from cartpk.estimation.problem import build_problem


class Gompertz(cartpk.AbstractModel):
    """Gompertz growth towards a capacity, ``y' = r y log(cap / y)``."""

    states: ClassVar = (cartpk.State("y", "tumour", "mL", "tumour volume", atol=1e-9),)
    parameters: ClassVar = (
        cartpk.Parameter("r", 0.5, "1/d", "growth rate", "test value"),
        cartpk.Parameter("cap", 10.0, "mL", "capacity", "test value"),
        cartpk.Parameter("y0", 1.0, "mL", "initial volume", "test value"),
    )

    def initial_state(self, p):
        return {"y": p["y0"]}

    def rates(self, t, y, p, effects):
        return {"y": p["r"] * y["y"] * jnp.log(p["cap"] / y["y"])}

    def observables(self, t, y, p):
        return {"volume": y["y"]}


MODEL = Gompertz()
OBSERVATIONS = {1: Observation("volume", Exponential(0.1))}


class RandomTerms(cartpk.AbstractModel):
    """A family of user models: every term of the vector field has its own weight, so a draw of
    the (fixed) weights is a model structure (a zero weight drops its term), all under one
    compile. Signs and sizes are free: states may turn negative (``b ** 1.5`` and ``log a`` are
    then NaN), blow up or become stiff."""

    states: ClassVar = (
        cartpk.State("a", "blood", "cells/uL", "cells", atol=1e-9),
        cartpk.State("b", "tumour", "mL", "target", atol=1e-9),
    )
    parameters: ClassVar = (
        cartpk.Parameter("a0", 1.0, "cells/uL", "initial cells", "test value"),
        cartpk.Parameter("grow", 0.5, "1/d", "logistic growth of a", "test value"),
        cartpk.Parameter("die", 0.1, "1/d", "loss of b", "test value"),
        *(
            cartpk.Parameter(
                f"w{i}",
                0.0,
                "-",
                f"weight of term {i}",
                "test value",
                -math.inf,
                math.inf,
                "identity",
            )  # fmt: skip
            for i in range(1, 7)
        ),
    )

    def initial_state(self, p):
        return {"a": p["a0"], "b": jnp.ones(())}

    def rates(self, t, y, p, effects):
        a, b = y["a"], y["b"]
        return {
            "a": p["grow"] * a * (1 - a / 10)
            - p["w1"] * a * b / (1 + a)
            + p["w2"] * b**1.5
            + p["w3"] * jnp.exp(-p["w4"] * t),
            "b": p["w5"] * a * b / (1 + a) - p["die"] * b + p["w6"] * jnp.log(a),
        }

    def observables(self, t, y, p):
        return {"cells": y["a"]}


WEIGHTS = tuple(f"w{i}" for i in range(1, 7))


@pytest.fixture(scope="module")
def data():
    """Four subjects, five volumes each, from r = 0.5 /d, cap = 10 mL, y0 = 1 mL."""
    rng = np.random.default_rng(0)
    times = np.array([0.5, 1.0, 2.0, 4.0, 8.0])
    truth = 10 * np.exp(np.log(0.1) * np.exp(-0.5 * times))
    rows = [
        dict(ID=i, TIME=t, DV=v * np.exp(0.1 * rng.standard_normal()), MDV=0, EVID=0, AMT=0)
        for i in range(1, 5)
        for t, v in zip(times, truth, strict=True)
    ]
    return pd.DataFrame(rows)


def _fit(data, **initial):
    return fit(
        MODEL,
        data,
        Population(max_iter=4, se="none"),
        initial=initial,
        observations=OBSERVATIONS,
    )


def test_a_solver_that_raises_is_replaced_per_subject(data):
    """At r = 50 /d Kvaerno5 raises on trial points: the fit ends with a result whose subjects
    say which solver evaluated them, and the objective stays finite."""
    result = _fit(data, r=50.0, cap=10.0, y0=1.0)
    assert np.isfinite(result.ofv)
    assert all("Kvaerno5 failed" in r and "Tsit5" in r for r in result.reasons), result.reasons
    assert any(w.startswith("ID 1") and "Kvaerno5 failed" in w for w in result.warnings)
    assert list(result.individual["note"]) == result.reasons


@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    r=st.floats(-3.0, 4.0).map(lambda e: 10.0**e),
    cap=st.floats(-1.0, 3.0).map(lambda e: 10.0**e),
    y0=st.floats(-3.0, 2.0).map(lambda e: 10.0**e),
)
def test_random_initial_values_end_cleanly(data, r, cap, y0):
    """Any initial values: a result, or one error line naming the subjects and the reason."""
    try:
        result = _fit(data, r=r, cap=cap, y0=y0)
    except CartpkError as error:
        message = str(error)
        assert "\n" not in message
        assert message.startswith("the objective is not finite at the initial estimates")
        assert "ID " in message
    else:
        assert np.isfinite(result.ofv)
        assert len(result.reasons) == 4


@settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    weights=st.lists(
        st.one_of(
            st.just(0.0),
            st.tuples(st.sampled_from([-1.0, 1.0]), st.floats(-3.0, 3.0)).map(
                lambda s: s[0] * 10.0 ** s[1]
            ),
        ),
        min_size=len(WEIGHTS),
        max_size=len(WEIGHTS),
    ),
    grow=st.floats(-2.0, 2.0).map(lambda e: 10.0**e),
)
def test_random_model_structures_end_cleanly(data, weights, grow):
    """Random user models of the :class:`RandomTerms` family (random terms, signs and sizes,
    the weights fixed, ``a0``, ``grow``, ``die`` estimated): a result with a finite objective,
    or one error line, never another exception."""
    try:
        result = fit(
            RandomTerms(),
            data,
            Population(max_iter=3, se="none"),
            initial={"grow": grow, "a0": 1.0},
            fixed=dict(zip(WEIGHTS, weights, strict=True)),
            observations={1: Observation("cells", Exponential(0.1))},
        )
    except CartpkError as error:
        assert "\n" not in str(error) and str(error)
    else:
        assert np.isfinite(result.ofv)
        assert len(result.reasons) == 4


def test_degenerate_individual_optima_are_refused():
    """An individual optimum with a collapsed residual SD or a run-off parameter is not
    reported as converged, and the note says why."""
    layout = build_problem(
        MODEL, pd.DataFrame(dict(ID=1, TIME=[1.0, 2.0], DV=[1.0, 2.0])), observations=OBSERVATIONS
    ).layout
    free = tuple(i for i, label in enumerate(layout.labels) if label[0] in ("theta", "sigma"))
    names = [layout.labels[i] for i in free]
    v0 = np.zeros(len(free))
    covariance = np.eye(len(free))
    sigma = next(j for j, label in enumerate(names) if label[0] == "sigma")
    collapsed = v0.copy()
    collapsed[sigma] = np.log(SIGMA_FLOOR) - 5
    note = _degenerate(layout, free, collapsed, v0, True, covariance)
    assert note.startswith("degenerate optimum: residual SD")
    runaway = v0.copy()
    runaway[0] = RUNAWAY + 1
    assert "ran off from its start" in _degenerate(layout, free, runaway, v0, True, covariance)
    assert _degenerate(layout, free, v0 + 0.5, v0, True, covariance) == ""
    assert _degenerate(layout, free, v0, v0, False, covariance) == "no start converged"
    singular = np.full_like(covariance, np.nan)
    assert "not positive definite" in _degenerate(layout, free, v0, v0, True, singular)
