"""Estimation (cartpk.estimation): likelihood and M3, gradients against finite differences,
parameter recovery, standard errors, diagnostics and the ``cartpk fit`` command.

JAX compiles are slow, so every population fit here shares one structure (Multiphasic, all six
parameters with variability, exponential error, explicit solver) and therefore one compiled
objective: the module fixture's fit, the gradient check and the CLI run.
"""

import json
import math
import shutil

import diffrax as dfx
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import cartpk
from cartpk.cli import main
from cartpk.estimation import (
    ERROR_KINDS,
    SAEM,
    Additive,
    Combined,
    CovariateEffect,
    Exponential,
    Observation,
    Population,
    Proportional,
    fit,
    neg2_loglik,
    sample_parameters,
    simulate_study,
)
from cartpk.estimation.api import SOLVERS
from cartpk.estimation.objective import Spec
from cartpk.estimation.outer import STALL_GRADIENT_TOL, Evaluator, minimise
from cartpk.estimation.problem import build_problem
from cartpk.estimation.saved import load_fit

MODEL = cartpk.Multiphasic()
TIMES = [1.0, 4.0, 7.0, 9.0, 11.0, 14.0, 21.0, 28.0, 60.0, 90.0, 180.0, 270.0, 365.0]
LLOQ = 50.0  # copies/ug gDNA
TRUTH = {k: float(v) for k, v in MODEL.default_params().items()}  # Stein 2019 typical values
SOLVER = dict(solver=dfx.Tsit5(), rtol=1e-6)  # Multiphasic is not stiff: an explicit solver
COLUMNS = ["parameter", "estimate", "se", "rse_percent", "ci_low", "ci_high"]
POPULATION_COLUMNS = COLUMNS + [
    "unit",
    "fixed",
    "variance",
    "variance_se",
    "cv_percent",
    "shrinkage_percent",
]


@pytest.fixture(scope="module")
def study():
    """40 subjects, 30 % variability on every parameter, 30 % log-normal error, BLQ values."""
    params = sample_parameters(MODEL, 40, omega=0.3, seed=11)
    return simulate_study(
        MODEL, params, TIMES, error=Exponential(0.3), lloq=LLOQ, seed=12, solver=dfx.Tsit5()
    )


@pytest.fixture(scope="module")
def pop_fit(study):
    return fit(MODEL, study, Population(), **SOLVER)


# ------------------------------------------------------------------------------------------------
# Likelihood


@pytest.mark.parametrize(
    "error, sigma, log_scale",
    [
        (Additive(), {"add": 3.0}, False),
        (Proportional(), {"prop": 0.2}, False),
        (Combined(), {"add": 3.0, "prop": 0.2}, False),
        (Exponential(), {"log": 0.4}, True),
    ],
)
def test_observed_terms_match_scipy(error, sigma, log_scale):
    f = np.array([5.0, 40.0, 120.0])
    y = np.array([7.0, 33.0, 150.0])
    sd = np.asarray(error.sd(jnp.asarray(f), {k: jnp.asarray(v) for k, v in sigma.items()}))
    expected_sd = {
        "additive": np.full(3, 3.0),
        "proportional": 0.2 * f,
        "combined": np.sqrt(9.0 + (0.2 * f) ** 2),
        "exponential": np.full(3, 0.4),
    }[error.kind]
    np.testing.assert_allclose(sd, expected_sd, rtol=1e-14)
    g = np.log if log_scale else (lambda v: v)
    no = np.zeros(3, dtype=bool)
    terms = neg2_loglik(g(y), g(f), sd, no, no, np.zeros(3))
    np.testing.assert_allclose(terms, -2 * stats.norm.logpdf(g(y), g(f), expected_sd), rtol=1e-12)


def test_m3_matches_hand_computed_censored_likelihood():
    """Beal's M3: -2 log Phi((LLOQ - f) / sd) below, -2 log(1 - Phi(...)) above the limit."""
    f = np.array([80.0, 30.0, 5.0, 1e4, 60.0])
    limit = np.full(5, 50.0)
    below = np.array([True, True, True, True, False])
    above = np.array([False, False, False, False, True])
    sd = np.full(5, 0.5)
    terms = neg2_loglik(np.zeros(5), np.log(f), sd, below, above, np.log(limit))
    z = (np.log(limit) - np.log(f)) / sd
    expected = np.where(below, -2 * stats.norm.logcdf(z), -2 * stats.norm.logsf(z))
    np.testing.assert_allclose(terms, expected, rtol=1e-9)
    assert np.all(np.isfinite(terms))  # no underflow far from the limit (f = 1e4)


def test_dataset_likelihood_uses_m3_on_censored_rows(study):
    """The objective's data terms of one subject equal a scipy computation from simulate()."""
    problem = build_problem(MODEL, study)
    spec = Spec(problem.layout, **SOLVER)
    from cartpk.estimation.diagnostics import predict_all
    from cartpk.estimation.objective import data_terms, residual_sd

    mu = np.tile(problem.x0[: len(MODEL.parameters)], (3, 1))
    g, status = predict_all(spec, problem.arrays, mu, subjects=np.arange(3))
    assert np.all(status == 0)
    a = problem.arrays
    sigmas = problem.layout.sigmas(jnp.asarray(problem.x0))
    rows = slice(0, 3)
    sd = residual_sd(spec, jnp.asarray(g), sigmas, _take(a, rows))
    terms = np.asarray(data_terms(jnp.asarray(g), sd, _take(a, rows)))
    f = np.asarray(
        cartpk.simulate(MODEL, MODEL.default_params(), None, TIMES).observables[
            "blood_copies_per_ug"
        ]
    )
    expected = []
    for i in range(3):
        rows_i = study[study["ID"] == i + 1]
        dv, cens = rows_i["DV"].to_numpy(), rows_i["CENS"].to_numpy().astype(bool)
        t = np.where(
            cens,
            -2 * stats.norm.logcdf((np.log(LLOQ) - np.log(f)) / 0.5),
            -2 * stats.norm.logpdf(np.log(dv), np.log(f), 0.5),
        )
        expected.append(t)
        assert cens.any() or i > 0  # the first subjects include BLQ rows
    np.testing.assert_allclose(terms, np.array(expected), rtol=2e-5)


def _take(arrays, rows):
    import jax

    return jax.tree.map(lambda v: v[rows], arrays)


# ------------------------------------------------------------------------------------------------
# Gradients against finite differences


class _RoughOFV:
    """A stand-in evaluator: the OFV is lowest at the start ``s = 0`` and 0.01 higher anywhere
    else (numerical noise), while the reported gradient is ``bias`` in the first coordinate."""

    def __init__(self, bias: float):
        self.bias = bias

    def __call__(self, x0, V, s, weights, z0):
        s = np.asarray(s)
        ofv = np.where(np.any(s != 0, axis=1), 0.01 + (s**2).sum(axis=1), 0.0)
        grad = np.zeros_like(s)
        grad[:, 0] = self.bias
        return {"ofv": ofv, "grad": grad, "z": np.asarray(z0), "ofv_i": ofv[:, None]}


@pytest.mark.parametrize("bias", [0.2 * STALL_GRADIENT_TOL, 4 * STALL_GRADIENT_TOL])
def test_a_stalled_search_converges_only_with_a_small_gradient(bias):
    """No step decreases the OFV: the trust region shrinks below tol and the search stops,
    converged if the gradient is within the noise, otherwise not, saying why."""
    args = np.zeros((1, 2)), np.eye(2)[None], np.ones((1, 1)), np.zeros((1, 1, 1))
    outcome = minimise(_RoughOFV(bias), *args, max_iter=100, tol=1e-3)
    assert outcome.evaluations < 20  # stopped by the stall rule, not by max_iter
    assert np.all(outcome.s == 0)
    if bias < STALL_GRADIENT_TOL:
        assert outcome.converged[0] and outcome.message[0] == "converged"
    else:
        assert not outcome.converged[0]
        assert outcome.message[0].startswith("no step longer than 0.001 SE decreases the OFV")


def test_population_gradient_matches_finite_differences(pop_fit):
    """d OFV / d parameters (FOCE-I, IFT through the EBEs) against central differences, along
    random directions in all parameters, with a tight ODE tolerance (no recompile: rtol is an
    array)."""
    import equinox as eqx

    spec = eqx.tree_at(lambda s: s.rtol, pop_fit.spec, jnp.asarray(1e-10))
    evaluator = Evaluator(spec, _take(pop_fit.problem.arrays, slice(0, 16)))  # 16 subjects
    V = pop_fit.V[None]
    m = V.shape[-1]
    weights = np.ones((1, 16))
    rng = np.random.default_rng(0)
    x = (pop_fit.x + pop_fit.V @ rng.normal(0, 0.5, m))[None]  # away from the optimum
    z = pop_fit.z[None, :16]
    for _ in range(2):  # converge the warm start so that every evaluation finds the same EBEs
        base = evaluator(x, V, np.zeros((1, m)), weights, z)
        z = base["z"]
    h = 1e-3
    for u in rng.normal(size=(3, m)):
        u /= np.linalg.norm(u)
        plus, minus = (
            evaluator(x, V, (sign * h * u)[None], weights, z)["ofv"][0] for sign in (1, -1)
        )
        fd = (plus - minus) / (2 * h)
        ad = float(base["grad"][0] @ u)
        assert ad == pytest.approx(fd, rel=1e-4, abs=1e-4), (ad, fd)
        assert abs(ad) > 0.01  # away from the optimum the gradient is not small


# ------------------------------------------------------------------------------------------------
# Recovery, standard errors, diagnostics


def _assert_recovered(result):
    """Acceptance: cmax, tmax, alpha within 20 %, the other typical values within 50 %."""
    for name, truth in TRUTH.items():
        error = abs(result.estimate(name) / truth - 1)
        assert error < (0.2 if name in ("cmax", "tmax", "alpha") else 0.5), (name, error)
    assert abs(result.estimate("sigma_log") / 0.3 - 1) < 0.2


def test_parameter_recovery(pop_fit):
    assert pop_fit.converged, pop_fit.message
    assert pop_fit.x.dtype == np.float64 and pop_fit.z.dtype == np.float64
    _assert_recovered(pop_fit)


@pytest.fixture(scope="module")
def saem_fit(study, pop_fit):
    # after pop_fit: the linearization covariance step reuses its compiled FOCE-I objective
    return fit(MODEL, study, SAEM(iterations=(100, 60), samples=100, seed=1), **SOLVER)


def test_saem_recovers_the_typical_values_and_agrees_with_foce(saem_fit, pop_fit):
    """SAEM within the recovery bounds, its variabilities within 30 % of the truth (0.3), its
    estimates near FOCE-I's, and its importance-sampling -2LL near FOCE-I's OFV."""
    _assert_recovered(saem_fit)
    saem, foce = (r.estimates.set_index("parameter")["estimate"] for r in (saem_fit, pop_fit))
    for name in TRUTH:
        assert abs(saem[f"omega_{name}"] / 0.3 - 1) < (0.5 if name == "foldx" else 0.3), name
        assert abs(saem[name] / foce[name] - 1) < 0.1, (name, saem[name], foce[name])
    assert saem_fit.covariance.message == "ok"
    assert np.all(np.isfinite(saem_fit.estimates["se"]))
    ll, se = (saem_fit.extra[k] for k in ("ofv_importance_sampling", "ofv_importance_sampling_se"))
    assert 0 < se < 5
    assert abs(ll - pop_fit.ofv) < 10  # the Laplace-type approximation against the MC integral
    assert saem_fit.strategy.method == "saem" and "SAEM fit" in saem_fit.summary()


def test_saem_is_reproducible(study, saem_fit):
    """The same seed gives the same estimates; another seed other ones."""
    short = dict(iterations=(3, 2), samples=0, se="none")
    runs = [fit(MODEL, study, SAEM(seed=seed, **short), **SOLVER).x for seed in (5, 5, 6)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


@pytest.mark.parametrize("how", ["decreasing", "newton"])
def test_saem_estimates_a_typical_value_without_variability(study, how):
    """A typical value without a random effect (``fb``), updated through a decreasing
    artificial variability or by Newton steps on the complete-data objective: from twice its
    true value it returns to within 25 % of it, and no artificial omega is reported."""
    result = fit(
        MODEL,
        study,
        SAEM(iterations=(12, 6), samples=0, se="none", seed=2, no_variability=how),
        variability=[n for n in TRUTH if n != "fb"],
        initial={"fb": 2 * TRUTH["fb"]},
        **SOLVER,
    )
    assert (
        "omega_fb" not in set(result.estimates["parameter"])
        and result.x.size == result.problem.x0.size
    )
    assert abs(result.estimate("fb") / TRUTH["fb"] - 1) < 0.25, result.estimate("fb")
    history = result.iterations_table()
    assert len(history) == 18 and history["fb"].iloc[0] != history["fb"].iloc[-1]


def test_saem_m_step_is_the_sample_mean_and_covariance(study):
    """Closed form: with E[phi_i] and mean E[phi phi^T] from fixed samples, the M-step gives
    their mean as typical values and their (divisor N) covariance as Omega."""
    from cartpk.estimation.saem import m_step, roles

    problem = build_problem(MODEL, study)
    layout = problem.layout
    rng = np.random.default_rng(3)
    phi = rng.normal(size=(40, len(layout.etas))) * 0.3 + 1.0
    x = m_step(
        layout,
        roles(layout, layout.free),
        problem.x0,
        np.asarray(problem.arrays.design),
        phi,
        phi.T @ phi / 40,
        np.zeros(len(layout.etas)),
    )
    for j, name in enumerate(layout.etas):
        assert x[layout.index("theta", name)] == pytest.approx(phi[:, j].mean(), rel=1e-12)
        assert np.exp(x[layout.index("omega", name)]) == pytest.approx(phi[:, j].std(), rel=1e-9)


def test_saem_marginal_step_is_the_joint_newton_step():
    """The elimination of each row's individual parameters in :func:`marginal_step` equals
    solving the whole block-arrow Newton system over (u, theta, every phi_r) with the
    gradient of u only: same steps of u and theta, and each row's phi step is its linear
    response; the fixed theta (third) neither moves nor enters the system."""
    from cartpk.estimation.saem import marginal_step

    rng = np.random.default_rng(11)
    rows, m, k = 5, 2, 3
    a = rng.normal(size=(rows, m + k, m + k))
    hess = a @ np.swapaxes(a, 1, 2)  # positive semidefinite, as Gauss-Newton Hessians are
    grad = rng.normal(size=(rows, m + k))
    ok = np.array([True, True, False, True, True])  # a failed row is left out
    b = rng.normal(size=(k, k))
    omega = b @ b.T + k * np.eye(k)
    thetas = np.array([True, True, False])
    du, dtheta, dphi = marginal_step(grad, hess, ok, omega, thetas)

    prior = 2 * np.linalg.inv(omega)
    used = np.flatnonzero(ok)
    t = np.flatnonzero(thetas)
    size = m + t.size + k * used.size
    H = np.zeros((size, size))
    g = np.zeros(size)
    for j, row in enumerate(used):
        f = slice(m + t.size + k * j, m + t.size + k * (j + 1))
        H[:m, :m] += hess[row, :m, :m]
        H[:m, f] = hess[row, :m, m:]
        H[f, :m] = hess[row, m:, :m]
        H[f, f] = hess[row, m:, m:] + prior
        H[m : m + t.size, f] = -prior[t]
        H[f, m : m + t.size] = -prior[:, t]
        H[m : m + t.size, m : m + t.size] += prior[np.ix_(t, t)]
        g[:m] += grad[row, :m]
    full = -np.linalg.solve(H, g)
    scale = min(1.0, 1.0 / np.max(np.abs(full[: m + t.size])))  # the step cap
    np.testing.assert_allclose(du, scale * full[:m], rtol=1e-9)
    np.testing.assert_allclose(dtheta[t], scale * full[m : m + t.size], rtol=1e-9)
    assert dtheta[2] == 0 and np.all(dphi[2] == dtheta)
    np.testing.assert_allclose(dphi[used], scale * full[m + t.size :].reshape(-1, k), rtol=1e-8)


def test_estimates_table_and_standard_errors(pop_fit):
    table = pop_fit.estimates
    assert list(table.columns) == POPULATION_COLUMNS
    names = list(table["parameter"])
    assert names[:6] == list(TRUTH)
    assert [n for n in names if n.startswith("omega_")] == [f"omega_{n}" for n in TRUTH]
    assert names[-1] == "sigma_log"
    assert pop_fit.covariance.message == "ok"
    assert np.all(table["se"] > 0) and np.all(np.isfinite(table["se"]))
    assert np.all((table["ci_low"] < table["estimate"]) & (table["estimate"] < table["ci_high"]))
    # log-scale Wald interval: for a log-transformed parameter, estimate = geometric mean of the CI
    cmax = table.set_index("parameter").loc["cmax"]
    assert cmax["estimate"] == pytest.approx(math.sqrt(cmax["ci_low"] * cmax["ci_high"]), rel=1e-9)
    assert cmax["rse_percent"] == pytest.approx(100 * cmax["se"] / cmax["estimate"])
    assert pop_fit.strategy.se == "sandwich"  # NONMEM's $COV default
    hessian = pop_fit.estimates_table("hessian")
    ratio = table["se"] / hessian["se"]
    assert 0.7 < np.median(ratio) < 1.3  # the model is the simulated one: similar SEs


def test_individual_estimates_and_shrinkage(pop_fit):
    table = pop_fit.individual
    assert len(table) == 40 and list(table["ID"]) == list(range(1, 41))
    assert table["ebe_converged"].all()
    np.testing.assert_allclose(table["ofv"].sum(), pop_fit.ofv, rtol=1e-12)
    # individual cmax = typical * exp(eta) (log-transformed, no covariates)
    np.testing.assert_allclose(
        table["cmax"], pop_fit.estimate("cmax") * np.exp(table["eta_cmax"]), rtol=1e-10
    )
    shrinkage = pop_fit.shrinkage
    assert set(shrinkage) == {f"eta_{n}" for n in TRUTH} | {"epsilon"}
    assert shrinkage["eta_cmax"] < 0.3  # cmax is well informed by the peak samples
    assert all(-0.5 < v < 1 for v in shrinkage.values())


def test_diagnostics_table(pop_fit, study):
    table = pop_fit.diagnostics()
    assert len(table) == len(study)
    assert {"ID", "TIME", "DV", "CENS", "PRED", "IPRED", "IWRES", "CWRES"} <= set(table.columns)
    observed = table[table["CENS"] == 0]
    assert observed["CWRES"].notna().all() and table.loc[table["CENS"] == 1, "CWRES"].isna().all()
    assert abs(observed["CWRES"].mean()) < 0.2 and 0.8 < observed["CWRES"].std() < 1.2
    # IPRED fits better than PRED on the log scale
    log_dv = np.log(observed["DV"])
    assert np.mean((log_dv - np.log(observed["IPRED"])) ** 2) < np.mean(
        (log_dv - np.log(observed["PRED"])) ** 2
    )


def test_vpc_observed_percentiles_inside_simulated_bands(pop_fit):
    vpc = pop_fit.vpc(replicates=100, seed=1)
    median = vpc[vpc["percentile"] == "50"].dropna(subset=["observed", "sim_low", "sim_high"])
    inside = (median["observed"] >= median["sim_low"]) & (median["observed"] <= median["sim_high"])
    assert len(median) >= 10 and inside.mean() >= 0.8
    blq = vpc[vpc["percentile"] == "blq"]
    assert blq["observed"].iloc[-1] > 0.2  # most late samples are below the limit


# ------------------------------------------------------------------------------------------------
# Problem building and its errors


def test_fixed_parameters_covariates_and_labels(study):
    data = study.assign(DOSE=np.repeat(np.linspace(1.0, 5.0, 40), len(TIMES)))
    data["GROUP"] = np.repeat(np.arange(40) % 3, len(TIMES))
    problem = build_problem(
        MODEL,
        data,
        fixed={"beta": 0.003, "sigma_log": 0.25},
        variability=["cmax", "tmax"],
        covariates=[
            CovariateEffect("cmax", "DOSE"),
            CovariateEffect("alpha", "GROUP", "categorical"),
        ],
    )
    layout = problem.layout
    names = [layout.label_name(label) for label in layout.labels]
    assert "beta_cmax_DOSE" in names and "beta_alpha_GROUP_1" in names
    assert "beta_alpha_GROUP_2" in names and "beta_alpha_GROUP_0" not in names
    free = dict(zip(names, layout.free, strict=True))
    assert not free["beta"] and not free["sigma_log"] and free["cmax"]
    assert problem.x0[names.index("sigma_log")] == pytest.approx(math.log(0.25))
    design = np.asarray(problem.arrays.design)
    np.testing.assert_allclose(design[:, 0], np.log(np.linspace(1, 5, 40) / 3.0))
    np.testing.assert_array_equal(design[:, 1], (np.arange(40) % 3 == 1).astype(float))
    assert layout.etas == ("cmax", "tmax")
    # the fixed typical value does not vary: it is not part of the local expansion
    assert MODEL.parameter_set.names.index("beta") not in layout.varying_index


@pytest.mark.parametrize(
    "change, kwargs, message",
    [
        (None, dict(fixed=["gamma"]), "fixed: unknown parameter 'gamma'; known: cmax"),
        (None, dict(variability=["gamma"]), "variability: unknown parameter 'gamma'"),
        (None, dict(initial={"tmax": 400.0}), "tmax = 400 d must lie strictly inside (0, 365)"),
        (None, dict(initial={"omega_cmax": -1}), "omega_cmax: value must be > 0, got -1"),
        ("dv0", {}, "column DV: DV <= 0 with the exponential (log-normal) error model of DVID 1"),
        ("dvid", {}, "column DVID: observation type 2 has no observation model"),
        (
            "cov",
            dict(covariates=[CovariateEffect("cmax", "WT")]),
            "column WT: time-varying covariate",
        ),
        (None, dict(covariates=[CovariateEffect("cmax", "AGE")]), "missing covariate column AGE"),
        (
            None,
            dict(observations={1: Observation("tumour")}),
            "DVID 1: unknown observable 'tumour'; Multiphasic has: blood_copies_per_ug",
        ),
    ],
)
def test_user_errors_name_what_is_wrong(study, change, kwargs, message):
    data = study.copy()
    if change == "dv0":
        data.loc[3, ["DV", "CENS"]] = [0.0, 0]
    if change == "dvid":
        data["DVID"] = 1
        data.loc[5, "DVID"] = 2
    if change == "cov":
        data["WT"] = 70.0
        data.loc[4, "WT"] = 71.0
    with pytest.raises(cartpk.CartpkError) as info:
        build_problem(MODEL, data, **kwargs)
    text = str(info.value)
    assert message in text and "\n" not in text
    if change in ("dv0", "dvid", "cov"):
        assert "row" in text  # names the offending row


def test_two_observation_types_each_with_its_error_model(study):
    """DVID 1 (log-normal) and DVID 2 (additive) on one observable: each row gets its own
    transform, residual SD and parameters, and the likelihood matches scipy row by row."""
    from cartpk.estimation.objective import data_terms, residual_sd

    data = study[study["ID"] <= 2].copy()
    data["DVID"] = np.where(data["TIME"] > 100, 2, 1)
    data.loc[data["DVID"] == 2, ["DV", "CENS"]] = [
        [3.0, 0],
        [-1.0, 0],
        [40.0, 0],
        [2.0, 0],
        [-0.5, 0],
        [9.0, 0],
    ]  # additive: DV <= 0 ok
    observations = {
        1: Observation("blood_copies_per_ug", Exponential(0.3)),
        2: Observation("blood_copies_per_ug", Additive(5.0)),
    }
    problem = build_problem(MODEL, data, observations=observations)
    layout = problem.layout
    assert layout.report_names()[-2:] == ("sigma_log_1", "sigma_add_2")
    spec = Spec(layout, **SOLVER)
    a = problem.arrays
    f = np.full(a.time.shape, 80.0)  # any positive prediction
    g = np.where(np.asarray(a.obs_type) == 0, np.log(f), f)
    sigmas = layout.sigmas(jnp.asarray(problem.x0))
    sd = residual_sd(spec, jnp.asarray(g), sigmas, a)
    terms = np.asarray(data_terms(jnp.asarray(g), sd, a))
    for i, (_, rows) in enumerate(data.groupby("ID")):
        dv, cens, dvid = rows["DV"].to_numpy(), rows["CENS"].to_numpy(), rows["DVID"].to_numpy()
        expected = np.where(
            dvid == 2,
            -2 * stats.norm.logpdf(dv, 80.0, 5.0),
            np.where(
                cens == 1,
                -2 * stats.norm.logcdf((np.log(LLOQ) - np.log(80.0)) / 0.3),
                -2 * stats.norm.logpdf(np.log(np.where(dv > 0, dv, 1.0)), np.log(80.0), 0.3),
            ),
        )
        np.testing.assert_allclose(terms[i, : len(rows)], expected, rtol=1e-12)


def test_block_omega_layout():
    """A block Omega: Cholesky parameters inside, SDs and correlations reported."""
    data = pd.DataFrame(
        {"ID": [1, 1, 2, 2], "TIME": [1.0, 7.0, 1.0, 7.0], "DV": [100.0, 9e3, 80.0, 2e4]}
    )
    problem = build_problem(MODEL, data, variability=["cmax", "alpha"], block=True)
    layout = problem.layout
    assert ("chol", ("alpha", "cmax")) in layout.labels
    assert "corr_alpha_cmax" in layout.report_names()
    x = np.array(problem.x0)
    x[layout.index("omega", "cmax")] = np.log(0.3)
    x[layout.index("omega", "alpha")] = np.log(0.4)
    x[layout.index("chol", ("alpha", "cmax"))] = 0.2
    omega = np.asarray(layout.omega_chol(jnp.asarray(x)))
    omega = omega @ omega.T
    reported = dict(
        zip(layout.report_names(), np.asarray(layout.report_scaled(jnp.asarray(x))), strict=True)
    )
    sd_alpha = math.sqrt(0.4**2 + 0.2**2)
    assert math.exp(reported["omega_alpha"]) == pytest.approx(sd_alpha)
    assert math.tanh(reported["corr_alpha_cmax"]) == pytest.approx(0.2 / sd_alpha)
    assert omega[1, 0] == pytest.approx(0.2 * 0.3)


def test_model_by_name_or_file(tmp_path):
    from cartpk.estimation import load_model

    assert isinstance(load_model("multiphasic"), cartpk.Multiphasic)
    assert load_model("blood_stroma_tumour").mode == "solid"
    path = tmp_path / "mine.py"
    path.write_text(
        "import cartpk\nclass Mine(cartpk.Multiphasic):\n    pass\nclass Other:\n    pass\n"
    )
    assert type(load_model(f"{path}:Mine")).__name__ == "Mine"
    with pytest.raises(cartpk.CartpkError, match="is not a cartpk model"):
        load_model(f"{path}:Other")
    with pytest.raises(cartpk.CartpkError, match="has no class Nope"):
        load_model(f"{path}:Nope")


def test_cli_choices_match_the_library():
    parser = cartpk.cli.build_parser()
    fit_parser = parser._subparsers._group_actions[0].choices["fit"]
    choices = {a.dest: a.choices for a in fit_parser._actions if a.choices}
    assert set(choices["error"]) == set(ERROR_KINDS)
    assert set(choices["solver"]) == set(SOLVERS)


# ------------------------------------------------------------------------------------------------
# The command line


@pytest.fixture(scope="module")
def cli_run(study, tmp_path_factory):
    """``cartpk fit`` on 16 of the subjects (the compiled objective is the fixture fit's)."""
    folder = tmp_path_factory.mktemp("fit")
    data = folder / "study.csv"
    study[study["ID"] <= 16].to_csv(data, index=False)
    out = folder / "results"
    argv = ["fit", str(data), "--model", "multiphasic", "--out", str(out), "--solver", "tsit5"]
    argv += ["--rtol", "1e-6", "--vpc", "20", "--se", "none"]
    return main(argv), data, out


def test_cli_fit_writes_results(cli_run, capsys):
    status, data, out = cli_run
    assert status == 0
    names = {p.name for p in out.iterdir()}
    expected = {"estimates.csv", "individual.csv", "diagnostics.csv", "vpc.csv", "manifest.json"}
    assert expected | {"gof.png", "vpc.png"} <= names
    estimates = pd.read_csv(out / "estimates.csv")
    assert list(estimates.columns) == POPULATION_COLUMNS
    assert "omega_cmax" in set(estimates["parameter"]) and "sigma_log" in set(
        estimates["parameter"]
    )
    assert len(pd.read_csv(out / "individual.csv")) == 16
    assert estimates["se"].isna().all()  # --se none
    manifest = json.loads((out / "manifest.json").read_text())
    import hashlib

    assert manifest["schema"] == "cartpk-results/1" and manifest["command"] == "cartpk fit"
    assert manifest["inputs"]["data"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert (out / "inputs" / "data.csv").read_bytes() == data.read_bytes()
    assert manifest["versions"]["cartpk"] == cartpk.__version__ and "jax" in manifest["versions"]
    assert manifest["options"]["solver"] == "tsit5" and manifest["result"]["converged"]
    assert (out / "gof.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_fit_reloads_with_load_fit(cli_run):
    """A saved fit restores the result: the OFV at the saved estimates is the saved one (checked
    by ``load_fit`` itself), and the tables are the files written."""
    _, _, out = cli_run
    result = load_fit(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert result.ofv == pytest.approx(manifest["result"]["ofv"], abs=1e-3)
    written = pd.read_csv(out / "estimates.csv")
    np.testing.assert_allclose(result.estimates["estimate"], written["estimate"], rtol=1e-9)
    diagnostics = pd.read_csv(out / "diagnostics.csv")
    np.testing.assert_allclose(result.diagnostics()["IPRED"], diagnostics["IPRED"], rtol=1e-4)
    assert result.converged and isinstance(result.layout.model, cartpk.Multiphasic)


def test_load_fit_refuses_what_is_not_a_saved_fit(cli_run, tmp_path):
    _, _, out = cli_run
    with pytest.raises(cartpk.CartpkError, match="has no fit.json"):
        load_fit(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    data = pd.read_csv(copy / "inputs" / "data.csv")
    data.loc[data["MDV"] == 0, "DV"] *= 1.5  # the data changed since the fit
    data.to_csv(copy / "inputs" / "data.csv", index=False)
    with pytest.raises(cartpk.CartpkError, match="the data, the model or cartpk changed"):
        load_fit(copy)


def test_cli_refuses_to_overwrite(cli_run, capsys):
    _, data, out = cli_run
    before = (out / "estimates.csv").read_bytes()
    assert main(["fit", str(data), "--model", "multiphasic", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "use --force" in err and err.count("\n") == 1
    assert (out / "estimates.csv").read_bytes() == before


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "nonsense"], "unknown model 'nonsense'"),
        (["--model", "no/such/file.py:Model"], "model file no/such/file.py not found"),
        (["--model", "multiphasic", "--init", "cmax"], "--init 'cmax': expected NAME=VALUE"),
        (["--model", "multiphasic", "--fix", "gamma"], "fixed: unknown parameter 'gamma'"),
        (["--model", "multiphasic", "--error", "additive", "--error", "exponential"], "--error"),
    ],
)
def test_cli_user_errors_are_one_line(cli_run, tmp_path, extra, message, capsys):
    _, data, _ = cli_run
    status = main(["fit", str(data), "--out", str(tmp_path / "new"), *extra])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "new").exists()


def test_stein2019_simulated_fit_script_at_reduced_size(tmp_path):
    """fits/stein2019_simulated/fit.py end to end with 16 instead of 40 patients."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "fits" / "stein2019_simulated" / "fit.py"
    spec = importlib.util.spec_from_file_location("stein2019_simulated_fit", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.TIMES == TIMES  # the same design, hence the same compiled objective
    result, comparison = script.run(n=16, out=tmp_path / "results", vpc=20)
    assert result.converged, result.message
    files = {p.name for p in (tmp_path / "results").iterdir()}
    assert {"data.csv", "comparison.csv", "estimates.csv", "gof.png", "vpc.png"} <= files
    assert list(comparison["parameter"]) == list(script.truth(MODEL))
    typical = comparison[comparison["parameter"].isin(list(TRUTH))]
    assert (typical["relative_error"].abs() < 0.5).all()


def test_cli_reports_a_fit_that_did_not_converge(cli_run, tmp_path, capsys):
    _, data, _ = cli_run
    out = tmp_path / "stopped"
    argv = ["fit", str(data), "--model", "multiphasic", "--out", str(out), "--solver", "tsit5"]
    status = main([*argv, "--rtol", "1e-6", "--max-iter", "3", "--vpc", "0", "--se", "none"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert "did not converge (no convergence within 3 OFV evaluations)" in err
    assert "best point reached: OFV" in err and "cmax=" in err
    manifest = json.loads((out / "manifest.json").read_text())  # the best point is written
    assert manifest["result"]["converged"] is False
