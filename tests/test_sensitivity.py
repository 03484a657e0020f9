"""Sensitivity analysis: local sensitivities through the solver against finite differences
(Multiphasic model), and the global methods against closed-form functions."""

from __future__ import annotations

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cartpk
from cartpk.errors import CartpkError, ParameterError
from cartpk.sensitivity import local_sensitivity, morris, population_function, sobol

MODEL = cartpk.Multiphasic()
TIMES = np.linspace(0.0, 60.0, 61)
#: an explicit solver compiles several times faster than the default Kvaerno5; tight tolerance
#: keeps finite differences clean.
OPTIONS = {"solver": dfx.Tsit5(), "rtol": 1e-12, "atol_scale": 1e-6, "max_steps": 100_000}


def _auc_0_28(observables, times):
    return jnp.trapezoid(observables["blood_copies_per_ug"][..., :29], times[:29], axis=-1)


def _level_d60(observables, times):
    return observables["blood_copies_per_ug"][..., 60]


ENDPOINTS = {"auc_0_28": _auc_0_28, "level_d60": _level_d60}


@pytest.fixture(scope="module")
def population():
    """Endpoints of a batch of parameter points; every call reuses one compiled chunk."""
    return population_function(
        MODEL, MODEL.default_params(), None, TIMES, ENDPOINTS, chunk_size=32, **OPTIONS
    )


@pytest.fixture(scope="module")
def local():
    return local_sensitivity(MODEL, MODEL.default_params(), None, TIMES, ENDPOINTS, **OPTIONS)


def test_local_sensitivity_matches_finite_differences(local, population):
    """d ln y / d ln p of two endpoints for every parameter vs central differences in ln p."""
    base = MODEL.default_params()
    names = list(MODEL.parameter_set.names)
    h = 1e-4
    factors = np.exp(h * np.array([1.0, -1.0]))
    points = {n: np.full((len(names), 2), float(base[n])) for n in names}
    for i, n in enumerate(names):
        points[n][i] *= factors
    values = population({n: v.ravel() for n, v in points.items()})
    for endpoint in ENDPOINTS:
        log_y = np.log(values[endpoint]).reshape(len(names), 2)
        fd = (log_y[:, 0] - log_y[:, 1]) / (2 * h)
        rows = local[local.endpoint == endpoint].set_index("parameter").loc[names]
        np.testing.assert_allclose(rows["normalized"], fd, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(  # normalized = p / y * dy/dp
            rows["normalized"], rows["value"] * rows["derivative"] / rows["endpoint_value"]
        )


def test_local_sensitivity_known_values(local):
    """Every level is proportional to cmax (normalized sensitivity 1); after the peak the model
    is Stein's closed form up to its smooth switch, so the day-60 sensitivities equal the
    closed form's d ln C / d ln p (via jax.grad, no ODE)."""
    table = local.set_index(["endpoint", "parameter"])
    for endpoint in ENDPOINTS:
        assert table.loc[(endpoint, "cmax"), "normalized"] == pytest.approx(1.0, rel=1e-9)
    base = MODEL.default_params()
    closed = jax.grad(lambda p: jnp.log(MODEL.closed_form(60.0, p)))(base)
    for name, value in base.items():
        expected = float(closed[name] * value)
        assert table.loc[("level_d60", name), "normalized"] == pytest.approx(expected, abs=1e-3)
    assert table.loc[("level_d60", "fb"), "normalized"] > 0.9  # the slow phase dominates
    assert set(local.unit[local.parameter == "alpha"]) == {"1/d"}


def test_local_sensitivity_errors():
    params = MODEL.default_params()
    with pytest.raises(ParameterError, match="unknown parameter.*nope"):
        local_sensitivity(MODEL, params, None, TIMES, ENDPOINTS, parameters=["nope"])
    with pytest.raises(CartpkError, match="'tmax_d' is not a differentiable endpoint"):
        local_sensitivity(MODEL, params, None, TIMES, ["tmax_d"])
    with pytest.raises(CartpkError, match="no observables for endpoint.*cmax_cells_per_ul"):
        local_sensitivity(MODEL, params, None, TIMES, ["cmax_cells_per_ul"], **OPTIONS)
    with pytest.raises(CartpkError, match="mode must be"):
        local_sensitivity(MODEL, params, None, TIMES, ENDPOINTS, mode="sideways")


def _ishigami(p):
    x1, x2, x3 = p["x1"], p["x2"], p["x3"]
    return np.sin(x1) + 7.0 * np.sin(x2) ** 2 + 0.1 * x3**4 * np.sin(x1)


def test_sobol_ishigami():
    """Ishigami function (a = 7, b = 0.1): closed-form S1 = (0.314, 0.442, 0) and
    ST = (0.558, 0.442, 0.244) (Saltelli 2008, Global Sensitivity Analysis, sect. 4.7)."""
    bounds = {k: (-np.pi, np.pi) for k in ("x1", "x2", "x3")}
    table = sobol(_ishigami, bounds, samples=2**14).set_index("parameter")
    np.testing.assert_allclose(table.loc[["x1", "x2", "x3"], "S1"], [0.314, 0.442, 0.0], atol=0.02)
    np.testing.assert_allclose(
        table.loc[["x1", "x2", "x3"], "ST"], [0.558, 0.442, 0.244], atol=0.02
    )
    assert list(table.index) == ["x1", "x2", "x3"]  # sorted by ST


def test_morris_ranking():
    """y = 10 a + 2 b + c^2 (+ 0 d) on [0, 1]^4: mu* equals the slopes of the linear terms,
    sigma is zero for them and positive for the curved one; an inert parameter has mu* = 0.
    An interaction (y = a b) gives sigma > 0 to both."""

    def function(p):
        return {
            "sum": 10 * p["a"] + 2 * p["b"] + p["c"] ** 2 + 0 * p["d"],
            "product": p["a"] * p["b"],
        }

    bounds = {k: (0.0, 1.0) for k in "abcd"}
    table = morris(function, bounds, trajectories=20, seed=3)
    linear = table[table.endpoint == "sum"].set_index("parameter")
    assert list(linear.index) == ["a", "b", "c", "d"]  # ranked by mu*
    np.testing.assert_allclose(linear.loc[["a", "b", "d"], "mu_star"], [10, 2, 0], atol=1e-12)
    np.testing.assert_allclose(linear.loc[["a", "b", "d"], "sigma"], 0, atol=1e-12)
    assert linear.loc["c", "sigma"] > 0.1 and 0.5 < linear.loc["c", "mu_star"] < 1.5
    product = table[table.endpoint == "product"].set_index("parameter")
    assert (product.loc[["a", "b"], "sigma"] > 0.1).all()
    assert (product.loc[["c", "d"], "mu_star"] == 0).all()
    # log scale: each parameter's effect is over its log range
    log = morris(lambda p: np.log(p["a"]), {"a": (1.0, np.e)}, scale="log", trajectories=4)
    assert log.mu_star.iloc[0] == pytest.approx(1.0)


def test_global_errors():
    with pytest.raises(ParameterError, match="positive for scale='log'"):
        morris(_ishigami, {"x1": (0.0, 1.0)}, scale="log")
    with pytest.raises(ParameterError, match="lower < upper"):
        sobol(_ishigami, {"x1": (1.0, 1.0)})
    with pytest.raises(CartpkError, match="levels must be an even number"):
        morris(_ishigami, {"x1": (0.0, 1.0)}, levels=3)


def test_morris_on_the_model(population):
    """Morris over every Multiphasic parameter (log-uniform, factor 2 around the defaults): the
    day-60 level does not depend on the fold expansion (only on cmax and the decline after the
    peak), and the day-0-28 AUC depends on cmax, the contraction rate alpha and tmax more than
    on the slow phase (fb, beta)."""
    base = MODEL.default_params()
    bounds = {n: (float(v) / np.sqrt(2), float(v) * np.sqrt(2)) for n, v in base.items()}
    table = morris(population, bounds, trajectories=4, scale="log")
    assert (table.effects == 4).all()
    level = table[table.endpoint == "level_d60"].set_index("parameter").mu_star
    assert level["foldx"] < 1e-3 * level.max()
    auc = table[table.endpoint == "auc_0_28"].set_index("parameter").mu_star
    assert min(auc["cmax"], auc["alpha"], auc["tmax"]) > max(auc["fb"], auc["beta"])
