"""Sensitivity analysis: local sensitivities through the solver against finite differences
(Multiphasic model), and the global methods (on SALib) against closed-form indices."""

from __future__ import annotations

import sys

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cartpk
from cartpk.errors import ArgumentError, CartpkError, ParameterError
from cartpk.sensitivity import efast, local_sensitivity, morris, population_function, sobol

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


#: SALib warns on every eFAST call that its bootstrap intervals are only indicative.
EFAST_CI_WARNING = "ignore:FAST confidence intervals:UserWarning"
ISHIGAMI_A, ISHIGAMI_B = 7.0, 0.1
ISHIGAMI_BOUNDS = {k: (-np.pi, np.pi) for k in ("x1", "x2", "x3")}


def _ishigami(p):
    x1, x2, x3 = p["x1"], p["x2"], p["x3"]
    return np.sin(x1) + ISHIGAMI_A * np.sin(x2) ** 2 + ISHIGAMI_B * x3**4 * np.sin(x1)


def _ishigami_indices():
    """Closed-form Sobol' indices of the Ishigami function on [-pi, pi]^3 (Ishigami & Homma 1990,
    doi:10.1109/ISUMA.1990.151285; Saltelli et al. 2008, Global Sensitivity Analysis: The Primer,
    Wiley, ISBN 978-0-470-05997-5): partial variances V1 = (1 + b pi^4 / 5)^2 / 2, V2 = a^2 / 8,
    V3 = 0, V13 = b^2 pi^8 (1/18 - 1/50), and no other interaction.

    Returns:
        S1 and ST of (x1, x2, x3), and S13.
    """
    a, b = ISHIGAMI_A, ISHIGAMI_B
    v1, v2, v13 = 0.5 * (1 + b * np.pi**4 / 5) ** 2, a**2 / 8, b**2 * np.pi**8 * (1 / 18 - 1 / 50)
    v = v1 + v2 + v13
    return np.array([v1, v2, 0.0]) / v, np.array([v1 + v13, v2, v13]) / v, v13 / v


def test_ishigami_closed_form():
    """The formulas give the published values (S1 = 0.3139, 0.4424, 0; ST = 0.5576, 0.4424,
    0.2437), and the total variance a^2/8 + b pi^4/5 + b^2 pi^8/18 + 1/2."""
    s1, st, s13 = _ishigami_indices()
    np.testing.assert_allclose(s1, [0.3139, 0.4424, 0.0], atol=5e-5)
    np.testing.assert_allclose(st, [0.5576, 0.4424, 0.2437], atol=5e-5)
    assert s13 == pytest.approx(0.2437, abs=5e-5)
    # the partial variances add up to the total variance, checked by Monte Carlo
    u = np.random.default_rng(0).uniform(-np.pi, np.pi, (3, 1_000_000))
    y = _ishigami(dict(zip(ISHIGAMI_BOUNDS, u, strict=True)))
    a, b = ISHIGAMI_A, ISHIGAMI_B
    total = a**2 / 8 + b * np.pi**4 / 5 + b**2 * np.pi**8 / 18 + 0.5
    assert np.var(y) == pytest.approx(total, rel=0.01)


def test_sobol_ishigami():
    """S1, ST and S2 from 2^12 x 8 points: the closed-form values lie within the bootstrap
    confidence intervals, which are narrow."""
    s1, st, s13 = _ishigami_indices()
    indices, pairs = sobol(_ishigami, ISHIGAMI_BOUNDS, samples=2**12, second_order=True)
    assert list(indices.parameter) == ["x1", "x2", "x3"]  # sorted by ST
    assert list(indices.endpoint) == ["y"] * 3  # one array out: endpoint "y"
    for column, exact in (("S1", s1), ("ST", st)):
        error = np.abs(indices[column].to_numpy() - exact)
        conf = indices[f"{column}_conf"].to_numpy()
        assert (error <= conf).all() and (conf < 0.06).all(), column
    pairs = pairs.set_index(["parameter_1", "parameter_2"])
    assert list(pairs.index) == [("x1", "x3"), ("x1", "x2"), ("x2", "x3")]  # sorted by S2
    error = np.abs(pairs.S2.to_numpy() - [s13, 0.0, 0.0])
    assert (error <= pairs.S2_conf.to_numpy()).all() and (pairs.S2_conf < 0.06).all()
    # without second order, N (k + 2) points: the same seed draws the same A, B and AB_i (the
    # estimates differ by rounding: SALib standardises f over all the points)
    again = sobol(_ishigami, ISHIGAMI_BOUNDS, samples=2**12)
    assert list(again.columns) == list(indices.columns)
    columns = ["S1", "S1_conf", "ST", "ST_conf"]
    np.testing.assert_allclose(again[columns], indices[columns], rtol=1e-5)


@pytest.mark.filterwarnings(EFAST_CI_WARNING)
def test_efast_ishigami():
    """eFAST with 6 harmonics (the default 4 truncates the x3^4 spectrum: ST of x2 is then
    0.045 high): S1 and ST within 0.02 of the closed form; NumPy's global random state is left
    as it was."""
    s1, st, _ = _ishigami_indices()
    np.random.seed(1)  # noqa: NPY002
    expected = np.random.random()  # noqa: NPY002
    np.random.seed(1)  # noqa: NPY002
    table = efast(_ishigami, ISHIGAMI_BOUNDS, samples=1025, harmonics=6)
    assert np.random.random() == expected  # noqa: NPY002
    assert table.equals(efast(_ishigami, ISHIGAMI_BOUNDS, samples=1025, harmonics=6, seed=0))
    table = table.set_index("parameter").loc[["x1", "x2", "x3"]]
    np.testing.assert_allclose(table.S1, s1, atol=0.02)
    np.testing.assert_allclose(table.ST, st, atol=0.02)
    assert np.isfinite(table[["S1_conf", "ST_conf"]].to_numpy()).all()


def test_morris_known_effects():
    """y = 3 a - 2 b + 0 c is linear: every elementary effect equals coefficient x range, so
    mu_star = |c_i| (upper - lower) exactly, sigma = 0 and mu keeps the sign. y = a b is an
    interaction: sigma > 0 for a and b. On a log scale, y = 2 ln p has mu_star = 2 ln(upper /
    lower). Campolongo's optimised trajectories give the same exact effects."""
    bounds = {"a": (0.0, 2.0), "b": (1.0, 5.0), "c": (0.0, 1.0)}

    def function(p):
        return {"linear": 3 * p["a"] - 2 * p["b"] + 0 * p["c"], "product": p["a"] * p["b"]}

    for candidates in (None, 40):
        table = morris(function, bounds, trajectories=10, candidates=candidates, seed=3)
        linear = table[table.endpoint == "linear"].set_index("parameter")
        assert list(linear.index) == ["b", "a", "c"]  # ranked by mu*
        np.testing.assert_allclose(linear.mu_star, [8.0, 6.0, 0.0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(linear.mu, [-8.0, 6.0, 0.0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(linear[["sigma", "mu_star_conf"]], 0.0, atol=1e-12)
        product = table[table.endpoint == "product"].set_index("parameter")
        assert (product.loc[["a", "b"], "sigma"] > 0.5).all()
        assert (product.loc[["a", "b"], "mu_star_conf"] > 0).all()
        assert product.loc["c", "mu_star"] == 0
    log = morris(lambda p: 2 * np.log(p["p"]), {"p": (1.0, 100.0)}, scale="log", trajectories=4)
    assert log.mu_star.iloc[0] == pytest.approx(2 * np.log(100.0), rel=1e-12)


def test_global_methods_on_the_model(population):
    """Morris and Sobol' over every Multiphasic parameter (log-uniform, factor 2 around the
    defaults), through one compiled chunk: the day-60 level does not depend on the fold
    expansion (only on cmax and the decline after the peak), and the day-0-28 AUC depends on
    cmax, the contraction rate alpha and tmax more than on the slow phase (fb, beta)."""
    base = MODEL.default_params()
    bounds = {n: (float(v) / np.sqrt(2), float(v) * np.sqrt(2)) for n, v in base.items()}
    table = morris(population, bounds, trajectories=4, scale="log")
    assert np.isfinite(table[["mu_star", "mu_star_conf", "sigma"]].to_numpy()).all()
    level = table[table.endpoint == "level_d60"].set_index("parameter").mu_star
    assert level["foldx"] < 1e-3 * level.max()
    auc = table[table.endpoint == "auc_0_28"].set_index("parameter").mu_star
    assert min(auc["cmax"], auc["alpha"], auc["tmax"]) > max(auc["fb"], auc["beta"])
    indices = sobol(population, bounds, samples=32, scale="log")  # 32 x 8 points
    level = indices[indices.endpoint == "level_d60"].set_index("parameter").ST
    assert level["foldx"] < 1e-6 * level.max()
    auc = indices[indices.endpoint == "auc_0_28"].set_index("parameter").ST
    assert min(auc["cmax"], auc["alpha"]) > 10 * max(auc["fb"], auc["beta"])


def test_non_finite_and_constant_outputs():
    """Failed simulations (NaN from population_function) or undefined values stop the analysis
    with the endpoint and the count, as does an endpoint without variance for Sobol' and eFAST."""

    def function(p):
        return {"fine": p["x"], "broken": np.where(p["x"] > 0.5, np.nan, p["x"])}

    bounds = {"x": (0.0, 1.0), "z": (0.0, 1.0)}
    with pytest.raises(CartpkError, match=r"endpoint 'broken' is not finite at \d+ of 64 points"):
        sobol(function, bounds, samples=16)
    with pytest.raises(CartpkError, match="endpoint 'broken' is not finite"):
        morris(function, bounds, trajectories=4)
    with pytest.raises(CartpkError, match="endpoint 'y' is constant over the bounds"):
        sobol(lambda p: np.ones_like(p["x"]), bounds, samples=16)
    with pytest.raises(CartpkError, match="endpoint 'y' has 1 values for 260 points"):
        efast(lambda p: np.ones(1), bounds, samples=130, harmonics=4)


def test_global_argument_errors():
    one = {"x1": (0.0, 1.0)}
    with pytest.raises(ParameterError, match="bounds of x1 must be finite with lower < upper"):
        sobol(_ishigami, {"x1": (1.0, 1.0)})
    with pytest.raises(ParameterError, match="bounds of x1 must be finite"):
        efast(_ishigami, {"x1": (0.0, np.inf)})
    with pytest.raises(ParameterError, match="bounds of x1 must be positive for scale='log'"):
        morris(_ishigami, one, scale="log")
    with pytest.raises(ParameterError, match=r"bounds of x1 must be \(lower, upper\)"):
        morris(_ishigami, {"x1": (0.0, 1.0, 2.0)})
    with pytest.raises(ArgumentError, match="samples must be a power of two"):
        sobol(_ishigami, one, samples=1000)
    with pytest.raises(ArgumentError, match="seed must be an integer >= 0, got -1"):
        sobol(_ishigami, one, seed=-1)
    with pytest.raises(ArgumentError, match="seed must be an integer >= 0, got 0.5"):
        efast(_ishigami, one, seed=0.5)
    with pytest.raises(ArgumentError, match=r"samples must be > 4 harmonics\^2 = 64, got 64"):
        efast(_ishigami, one, samples=64)
    with pytest.raises(ArgumentError, match="levels must be an even integer"):
        morris(_ishigami, one, levels=3)
    with pytest.raises(ArgumentError, match="candidates must be an integer >= 11"):
        morris(_ishigami, one, trajectories=10, candidates=5)
    with pytest.raises(ArgumentError, match="conf_level must be between 0 and 1"):
        morris(_ishigami, one, conf_level=95)
    with pytest.raises(ArgumentError, match="scale must be 'linear' or 'log'"):
        sobol(_ishigami, one, scale="logit")


def test_salib_missing(monkeypatch):
    """Without SALib, each global method says how to install the extra."""
    for name in [m for m in sys.modules if m == "SALib" or m.startswith("SALib.")] + ["SALib"]:
        monkeypatch.setitem(sys.modules, name, None)
    for method in (morris, sobol, efast):
        with pytest.raises(CartpkError, match=r"needs SALib: pip install 'cartpk\[sensitivity\]'"):
            method(_ishigami, ISHIGAMI_BOUNDS)
