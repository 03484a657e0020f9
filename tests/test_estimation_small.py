"""Estimation on a small problem (16 subjects, cmax and alpha with variability, the other typical
values fixed at the truth): the Laplace objective and its gradient, the vmapped bootstrap, the
profile likelihood, and individual (ML) fits with their gradient."""

import math

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cartpk
from cartpk.estimation import (
    CovariateEffect,
    Exponential,
    Individual,
    Population,
    bootstrap,
    fit,
    profile,
    sample_parameters,
    simulate_study,
)
from cartpk.estimation.individual import IndividualLayout, individual_objective
from cartpk.estimation.objective import Spec
from cartpk.estimation.outer import Evaluator
from cartpk.estimation.problem import build_problem

MODEL = cartpk.Multiphasic()
TIMES = [1.0, 4.0, 7.0, 9.0, 11.0, 14.0, 21.0, 28.0, 60.0, 90.0, 180.0, 270.0, 365.0]
TRUTH = {k: float(v) for k, v in MODEL.default_params().items()}
DOSE = np.tile([0.5, 1.0, 2.0, 4.0], 4)  # 1e8 cells; cmax ~ DOSE^0.5 (a power covariate)
OPTIONS = dict(
    fixed={k: TRUTH[k] for k in ("tmax", "foldx", "beta", "fb")},
    variability=["cmax", "alpha"],
    covariates=[CovariateEffect("cmax", "DOSE", "power", reference=1.0)],
)
SOLVER = dict(solver=dfx.Tsit5(), rtol=1e-6)
COLUMNS = ["parameter", "estimate", "se", "rse_percent", "ci_low", "ci_high"]
PARAMS = sample_parameters(MODEL, 16, omega={"cmax": 0.3, "alpha": 0.3}, seed=21)
PARAMS["cmax"] = PARAMS["cmax"] * DOSE**0.5


@pytest.fixture(scope="module")
def study():
    return simulate_study(
        MODEL,
        PARAMS,
        TIMES,
        error=Exponential(0.3),
        lloq=50.0,
        seed=22,
        covariates={"DOSE": DOSE},
        solver=dfx.Tsit5(),
    )


@pytest.fixture(scope="module")
def foce_fit(study):
    return fit(MODEL, study, Population(), **SOLVER, **OPTIONS)


def _take(arrays, rows):
    return jax.tree.map(lambda v: v[rows], arrays)


def _evaluator(study, method, rtol):
    problem = build_problem(MODEL, study, **OPTIONS)
    spec = Spec(problem.layout, method=method, solver=dfx.Tsit5(), rtol=rtol)
    return problem, Evaluator(spec, problem.arrays)


def test_laplace_gradient_matches_finite_differences(study):
    problem, evaluator = _evaluator(study, "laplace", 1e-10)
    m = problem.layout.n_free
    assert "beta_cmax_DOSE" in problem.layout.report_names()  # the covariate is estimated
    V = np.zeros((1, problem.x0.size, m))
    V[0, problem.free_index, np.arange(m)] = 0.1
    weights = np.ones((1, 16))
    x = problem.x0[None] + 0.05  # off the truth
    z = np.zeros((1, 16, 2))
    for _ in range(2):
        base = evaluator(x, V, np.zeros((1, m)), weights, z)
        z = base["z"]
    h = 1e-3
    rng = np.random.default_rng(1)
    for u in rng.normal(size=(3, m)):
        u /= np.linalg.norm(u)
        plus, minus = (
            evaluator(x, V, (sign * h * u)[None], weights, z)["ofv"][0] for sign in (1, -1)
        )
        fd = (plus - minus) / (2 * h)
        ad = float(base["grad"][0] @ u)
        assert ad == pytest.approx(fd, rel=1e-4, abs=1e-4), (ad, fd)
        assert abs(ad) > 0.1


def test_laplace_fit_recovers_and_agrees_with_foce(study):
    laplace = fit(
        MODEL,
        study,
        Population(method="laplace", se="none"),
        solver=dfx.Tsit5(),
        rtol=1e-6,
        **OPTIONS,
    )
    assert laplace.converged, laplace.message
    for name in ("cmax", "alpha"):
        assert abs(laplace.estimate(name) / TRUTH[name] - 1) < 0.2
    # at the Laplace estimates, FOCE-I gives nearly the same objective (exponential error: the
    # first-order Hessian differs from the exact one only through the residuals)
    foce = Evaluator(
        Spec(laplace.layout, method="foce", solver=dfx.Tsit5(), rtol=1e-6), laplace.problem.arrays
    )
    m = laplace.V.shape[1]
    out = foce(
        laplace.x[None], laplace.V[None], np.zeros((1, m)), np.ones((1, 16)), laplace.z[None]
    )
    assert out["ofv"][0] == pytest.approx(laplace.ofv, abs=2.0)
    assert out["ofv"][0] != pytest.approx(laplace.ofv, abs=1e-6)  # but not identical


def test_covariate_effect_is_recovered(foce_fit):
    """cmax = theta (DOSE / 1)^beta exp(eta) with beta = 0.5: the estimate's CI contains 0.5."""
    row = foce_fit.estimates.set_index("parameter").loc["beta_cmax_DOSE"]
    assert row["ci_low"] < 0.5 < row["ci_high"] and row["ci_low"] > 0
    individual = foce_fit.individual
    expected = foce_fit.estimate("cmax") * individual["DOSE"] ** row["estimate"]
    np.testing.assert_allclose(individual["cmax"], expected * np.exp(individual["eta_cmax"]))


def test_bootstrap_is_one_vmapped_batch(foce_fit):
    result = foce_fit
    table = bootstrap(result, replicates=3, seed=4)
    assert list(table["replicate"]) == [0, 1, 2] and table["converged"].all()
    assert {"cmax", "alpha", "omega_cmax", "sigma_log"} <= set(table.columns)
    # resampled subjects: different estimates, around the original fit
    assert table["cmax"].nunique() == 3
    assert np.all(np.abs(np.log(table["cmax"] / result.estimate("cmax"))) < 0.3)
    low, high = table.attrs["ci"]["cmax"]
    assert low <= np.median(table["cmax"]) <= high
    assert jnp.all(jnp.isfinite(jnp.asarray(table["ofv"].to_numpy())))


def test_profile_likelihood_brackets_the_estimate(foce_fit):
    assert foce_fit.covariance.message == "ok"
    table = profile(foce_fit, "cmax", span=3.0, points=3, max_iter=60)
    assert table["converged"].all()
    assert table["delta_ofv"].iloc[1] == pytest.approx(0.0, abs=1e-3)
    # nearly quadratic: 3 standard errors away the OFV rises by about 3^2
    assert np.all((table["delta_ofv"].iloc[[0, 2]] > 6.0) & (table["delta_ofv"].iloc[[0, 2]] < 13))
    low, high = table.attrs["ci"]
    wald = foce_fit.estimates.set_index("parameter").loc["cmax"]
    assert low == pytest.approx(wald["ci_low"], rel=0.05)
    assert high == pytest.approx(wald["ci_high"], rel=0.05)


# ------------------------------------------------------------------------------------------------
# Individual fits


def test_individual_objective_gradient_matches_finite_differences(study):
    """The individual (ML) objective's forward-mode gradient against central differences."""
    problem = build_problem(MODEL, study[study["ID"] <= 2])
    spec = Spec(problem.layout, solver=dfx.Tsit5(), rtol=1e-10)
    free = tuple(range(len(MODEL.parameters))) + (problem.layout.index("sigma", (0, "log")),)
    ilayout = IndividualLayout(free, (), ())
    x0 = jnp.asarray(problem.x0)
    d = _take(problem.arrays, 0)
    objective = jax.jit(lambda v: individual_objective(spec, ilayout, v, x0, jnp.zeros(0), d))
    v = x0[jnp.asarray(free)] + 0.1
    ad = np.asarray(jax.jit(jax.jacfwd(objective))(v))
    h = 1e-5
    steps = h * np.eye(len(free))
    fd = np.array([(objective(v + e) - objective(v - e)) / (2 * h) for e in steps])
    np.testing.assert_allclose(ad, fd, rtol=1e-5, atol=1e-5)
    assert np.abs(ad).max() > 1.0


def test_individual_fits_beat_the_truth(study):
    """ML per subject, multi-start: the fitted objective is at most the one at the true values."""
    subset = study[study["ID"] <= 2]
    result = fit(MODEL, subset, Individual(starts=3, seed=1, tol=1e-6, max_steps=200), **SOLVER)
    assert result.converged, result.message
    table = result.table
    assert list(table["ID"]) == [1, 2] and (table["starts_converged"] >= 1).all()
    problem = build_problem(MODEL, subset)
    spec = Spec(problem.layout, **SOLVER)
    for i in range(2):
        v = [
            float(spec_p.to_unconstrained(jnp.asarray(PARAMS[n][i])))
            for n, spec_p in zip(problem.layout.names, problem.layout.specs, strict=True)
        ]
        at_truth = individual_objective(
            spec,
            result.ilayout,
            jnp.asarray(v + [math.log(0.3)]),
            jnp.asarray(problem.x0),
            jnp.zeros(0),
            _take(problem.arrays, i),
        )
        assert table["objective"][i] <= float(at_truth) + 1e-6
    assert {"cmax", "cmax_se", "cmax_ci_low", "cmax_ci_high", "sigma_log"} <= set(table.columns)
    assert list(result.estimates.columns) == COLUMNS
