"""Regressors (``CovariateEffect(kind="regressor")``): a dataset column that *is* a parameter's
per-subject value, here the initial state of ``dy/dt = -k y``."""

from __future__ import annotations

import math
from typing import ClassVar

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import cartpk
from cartpk.errors import CartpkError, DatasetError, ParameterError
from cartpk.estimation import CovariateEffect, Exponential, Observation, Population, fit
from cartpk.estimation.objective import Spec, predictions, subject_contexts
from cartpk.estimation.problem import build_problem
from cartpk.estimation.results import result_at

TIMES = (0.5, 1.0, 2.0, 4.0)
Y0 = (2.0, 5.0, 10.0)  # the regressor column, one value per subject
K = 0.4


class Decay(cartpk.AbstractModel):
    """``dy/dt = -k y``, ``y(0) = y0``: observed ``y``."""

    states: ClassVar = (cartpk.State("y", "blood", "cells/uL", "amount", 1e-10),)
    parameters: ClassVar = (
        cartpk.Parameter("k", 0.3, "1/d", "decay rate", "test"),
        cartpk.Parameter("y0", 1.0, "cells/uL", "initial value", "test"),
    )

    def initial_state(self, p):
        return {"y": p["y0"]}

    def rates(self, t, y, p, effects):
        return {"y": -p["k"] * y["y"]}

    def observables(self, t, y, p):
        return {"y": y["y"]}


def frame(y0=Y0, k=K, noise=None):
    rows = []
    rng = np.random.default_rng(0)
    for i, v in enumerate(y0, start=1):
        for t in TIMES:
            dv = v * math.exp(-k * t)
            if noise:
                dv *= math.exp(noise * rng.standard_normal())
            rows.append(dict(ID=i, TIME=t, DV=dv, MDV=0, EVID=0, BASE=v))
    return pd.DataFrame(rows)


REGRESSOR = [CovariateEffect("y0", "BASE", "regressor")]


def problem(data=None, **options):
    options.setdefault("covariates", REGRESSOR)
    return build_problem(
        Decay(), frame() if data is None else data, observations={1: Observation("y")}, **options
    )


def test_layout_takes_the_column_as_the_parameter():
    p = problem()
    layout = p.layout
    assert layout.regressor_names == ("y0",)
    assert layout.etas == ("k",)  # default variability leaves the regressor out
    assert not layout.effects and ("beta", "beta_y0_BASE") not in layout.labels
    free = dict(zip(layout.labels, layout.free, strict=True))
    assert free[("theta", "k")] and not free[("theta", "y0")]
    assert layout.n_free == 3  # k, omega_k, sigma_log
    assert layout.varying_index == (0,)
    np.testing.assert_allclose(np.asarray(p.arrays.design)[:, 0], np.log(Y0))
    x = jnp.asarray(p.x0)
    mu, _, _ = subject_contexts(layout, x, p.arrays.design)
    natural = jax.vmap(layout.natural)(mu)
    np.testing.assert_allclose(np.asarray(natural["y0"]), Y0, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(natural["k"]), 0.3, rtol=1e-12)
    # the typical value does not move with x: nothing to estimate, zero derivative
    jac = jax.jacfwd(lambda x: layout.typical(x, p.arrays.design[1]))(x)
    np.testing.assert_array_equal(np.asarray(jac[layout.names.index("y0")]), 0.0)


def test_predictions_are_y0_exp_minus_k_t():
    p = problem(initial={"k": K})
    layout = p.layout
    spec = Spec(layout, solver=dfx.Tsit5(), rtol=1e-10)
    mu, _, _ = subject_contexts(layout, jnp.asarray(p.x0), p.arrays.design)
    g, status = jax.vmap(lambda phi, d: predictions(spec, phi, d))(mu, p.arrays)
    assert np.all(np.asarray(status) == 0)
    expected = np.array([[v * math.exp(-K * t) for t in TIMES] for v in Y0])
    np.testing.assert_allclose(np.exp(np.asarray(g)), expected, rtol=1e-7)


def test_gradient_flows_through_other_parameters():
    """Differentiable in the estimates and vmapped over subjects like the other kinds."""
    p = problem(initial={"k": K})
    layout = p.layout
    spec = Spec(layout, solver=dfx.Tsit5(), rtol=1e-10)

    def total(x):
        mu, _, _ = subject_contexts(layout, x, p.arrays.design)
        g, _ = jax.vmap(lambda phi, d: predictions(spec, phi, d))(mu, p.arrays)
        return jnp.sum(jnp.where(p.arrays.mask, g, 0.0))

    grad = np.asarray(jax.jacfwd(total)(jnp.asarray(p.x0)))  # forward mode, as the fits
    # d/d log k of sum(log y0 - k t) = -k * sum(t) over all rows
    np.testing.assert_allclose(grad[layout.index("theta", "k")], -K * len(Y0) * sum(TIMES))
    assert grad[layout.index("theta", "y0")] == 0.0


def test_reported_as_fixed_at_the_column_median():
    p = problem(initial={"k": K})
    spec = Spec(p.layout, solver=dfx.Tsit5(), rtol=1e-10)
    result = result_at(p, spec)
    table = result.estimates.set_index("parameter")
    assert bool(table.loc["y0", "fixed"]) and np.isnan(table.loc["y0", "se"])
    assert table.loc["y0", "estimate"] == pytest.approx(float(np.median(Y0)))
    assert "omega_y0" not in table.index
    np.testing.assert_allclose(result.individual["y0"], Y0, rtol=1e-12)
    np.testing.assert_allclose(result.individual["BASE"], Y0)


def test_small_fit_recovers_k_with_the_regressor():
    result = fit(
        Decay(),
        frame(noise=0.05),
        Population(method="foce", se="none"),
        observations={1: Observation("y", Exponential(0.1))},
        covariates=REGRESSOR,
        variability=[],
        solver=dfx.Tsit5(),
    )
    assert result.converged, result.message
    assert result.estimate("k") == pytest.approx(K, rel=0.05)
    assert result.estimate("y0") == pytest.approx(float(np.median(Y0)))


# -- refusals -------------------------------------------------------------------------------


def one_line(error) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_random_effect_on_a_regressor_is_refused():
    with pytest.raises(ParameterError) as error:
        problem(variability=["k", "y0"])
    assert "variability: y0 is a regressor (column BASE)" in one_line(error)
    assert "random effect" in str(error.value)


def test_regressor_with_another_effect_is_refused():
    data = frame().assign(WT=70.0)
    for other in (
        CovariateEffect("y0", "WT", "power"),
        CovariateEffect("y0", "WT", "regressor"),
    ):
        with pytest.raises(CartpkError) as error:
            problem(data, covariates=[*REGRESSOR, other])
        assert "y0 is a regressor (column BASE)" in one_line(error)
        assert "column WT" in str(error.value)


def test_non_positive_value_for_a_log_parameter_names_column_and_subject():
    with pytest.raises(DatasetError) as error:
        problem(frame().assign(BASE=lambda f: f["ID"].map({1: 2.0, 2: 0.0, 3: -1.0})))
    message = one_line(error)
    assert "column BASE" in message and "y0" in message and "ID 2" in message
    assert "1 more" in message


def test_missing_value_names_column_and_subject():
    data = frame()
    data.loc[data["ID"] == 3, "BASE"] = np.nan
    with pytest.raises(DatasetError) as error:
        problem(data)
    message = one_line(error)
    assert "column BASE" in message and "ID 3" in message


def test_initial_or_fixed_value_and_reference_are_refused():
    for option in ({"initial": {"y0": 3.0}}, {"fixed": {"y0": 3.0}}):
        with pytest.raises(ParameterError) as error:
            problem(**option)
        assert "y0 is a regressor (column BASE)" in one_line(error)
    with pytest.raises(CartpkError) as error:
        CovariateEffect("y0", "BASE", "regressor", reference=5.0)
    assert "a regressor takes no reference" in one_line(error)


def test_individual_fits_use_each_subjects_regressor():
    """Each subject's own fit sets ``y0`` from its ``BASE`` value and recovers ``k``."""
    from cartpk.estimation import Individual

    result = fit(
        Decay(),
        frame(noise=0.05),
        Individual(starts=1),
        observations={1: Observation("y", Exponential(0.1))},
        covariates=REGRESSOR,
        solver=dfx.Tsit5(),
    )
    assert result.converged, result.message
    np.testing.assert_allclose(result.individual["k"], K, rtol=0.1)
