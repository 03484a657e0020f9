"""NPDE and PD by simulation (npde package method), and the prediction-corrected VPC.

- on data simulated from the fitted model, NPDE are standard normal and the npde package's tests
  do not reject; with a wrong fixed parameter they do;
- for a linear-Gaussian model the simulated, decorrelated pde equal the normal CDF of the exactly
  decorrelated residual to Monte Carlo error, PD the normal CDF of the standardised residual, and
  censored PD lie below the analytic probability of being below the limit (cdf method);
- the prediction correction of the pcVPC, against its formula (Bergstrand et al. 2011).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import ClassVar

import diffrax as dfx
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import cartpk
from cartpk.errors import CartpkError
from cartpk.estimation import (
    Additive,
    CovariateEffect,
    Exponential,
    Observation,
    Population,
    build_problem,
    fit,
    sample_parameters,
    simulate_study,
)
from cartpk.estimation.diagnostics import time_bins
from cartpk.estimation.npde import npde_arrays, npde_summary, npde_table
from cartpk.estimation.objective import Spec
from cartpk.estimation.pcvpc import _prediction_corrected, observation_points, pcvpc_table
from cartpk.models.base import AbstractModel
from cartpk.parameters import Parameter, State

MODEL = cartpk.Multiphasic()
TIMES = [1.0, 4.0, 7.0, 9.0, 11.0, 14.0, 21.0, 28.0, 60.0, 90.0, 180.0, 270.0, 365.0]
TRUTH = {k: float(v) for k, v in MODEL.default_params().items()}
DOSE = np.tile([0.5, 1.0, 2.0, 4.0], 3)  # 1e8 cells; cmax ~ DOSE^0.5
PARAMS = sample_parameters(MODEL, 12, omega={"cmax": 0.3, "alpha": 0.3}, seed=21)
PARAMS["cmax"] = PARAMS["cmax"] * DOSE**0.5
OPTIONS = dict(
    fixed={k: TRUTH[k] for k in ("tmax", "foldx", "beta", "fb")},
    variability=["cmax", "alpha"],
    covariates=[CovariateEffect("cmax", "DOSE", "power", reference=1.0)],
    solver=dfx.Tsit5(),
    rtol=1e-6,
)
K = 1000  # simulations per subject, the npde package's recommendation


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
def fitted(study):
    return fit(MODEL, study, Population(se="none"), **OPTIONS)


@pytest.fixture(scope="module")
def misspecified(study):
    """The same fit with the slow-phase fraction fixed at 10 times its true value."""
    options = dict(OPTIONS, fixed=dict(OPTIONS["fixed"], fb=10 * TRUTH["fb"]))
    return fit(MODEL, study, Population(se="none"), **options)


def test_npde_of_the_true_model_are_standard_normal(fitted):
    assert fitted.converged, fitted.message
    table = npde_table(fitted, replicates=K, seed=0)
    diagnostics = fitted.diagnostics()
    columns = ["ID", "TIME", "DVID", "CENS"]
    pd.testing.assert_frame_equal(table[columns], diagnostics[columns])
    assert np.isfinite(table[["PD", "NPDE"]].to_numpy()).all()  # censored rows imputed too
    assert table["CENS"].sum() >= 10
    n = len(table)
    summary = npde_summary(table["NPDE"]).set_index("quantity")["value"]
    assert summary["n"] == n
    # within 3 standard errors of N(0, 1): SE(mean) = 1/sqrt(n), SE(var) = sqrt(2/(n-1))
    assert abs(summary["mean"]) < 3 / np.sqrt(n)
    assert abs(summary["variance"] - 1) < 3 * np.sqrt(2 / (n - 1))
    assert summary["p_global"] > 0.05
    # PD ~ U(0, 1): mean 1/2, SD sqrt(1/12)
    assert abs(table["PD"].mean() - 0.5) < 3 * np.sqrt(1 / 12 / n)
    assert table["PD"].min() >= 1 / (2 * K) and table["PD"].max() <= 1 - 1 / (2 * K)


def test_npde_tests_reject_a_wrong_fixed_parameter(misspecified):
    """A slow phase 10 times too high: the fit inflates the residual error to absorb it, so the
    mean and variance of NPDE stay near 0 and 1, but their distribution is not normal (flat:
    negative excess kurtosis), which the global test detects."""
    assert misspecified.converged, misspecified.message
    table = npde_table(misspecified, replicates=K, seed=0)
    summary = npde_summary(table["NPDE"]).set_index("quantity")["value"]
    assert summary["p_normality"] < 1e-3 and summary["p_global"] < 1e-3
    assert summary["kurtosis"] < -0.5


def test_summary_moments_and_messages():
    """Skewness and excess kurtosis are the moment estimators (scipy's biased ones); the global
    p-value is the Bonferroni bound 3 min(p)."""
    x = np.random.default_rng(5).standard_normal(300) ** 3
    summary = npde_summary(np.append(x, np.nan)).set_index("quantity")["value"]
    assert summary["n"] == 300
    assert summary["skewness"] == pytest.approx(stats.skew(x))
    assert summary["kurtosis"] == pytest.approx(stats.kurtosis(x))
    p = summary[["p_mean", "p_variance", "p_normality"]]
    assert summary["p_global"] == pytest.approx(min(1.0, 3 * p.min()))
    assert summary["p_normality"] < 1e-6  # a cubed normal is not normal
    with pytest.raises(CartpkError, match="at least 3 values, got 2"):
        npde_summary([0.1, np.nan, 0.2])


# -- closed form: a linear-Gaussian model ---------------------------------------------------------


class Linear(AbstractModel):
    """A level rising linearly in time, ``c(t) = baseline + slope t``: with identity transforms
    and additive error the observations of a subject are jointly normal."""

    time_unit: ClassVar = "h"
    states: ClassVar = (State("level", "blood", "mg/L", "drug level", 1e-9),)
    parameters: ClassVar = (
        Parameter(
            "baseline", 10.0, "mg/L", "level at t = 0", "test model", -np.inf, np.inf, "identity"
        ),
        Parameter(
            "slope", 0.5, "mg/L/h", "rise per hour", "test model", -np.inf, np.inf, "identity"
        ),
    )

    def initial_state(self, p):
        return {"level": p["baseline"]}

    def rates(self, t, y, p, effects):
        return {"level": p["slope"]}

    def observables(self, t, y, p):
        return {"conc": y["level"]}


LINEAR_TIMES = np.array([0.5, 1.0, 2.0, 4.0, 8.0])  # h
OMEGA = {"baseline": 2.0, "slope": 0.2}  # mg/L, mg/L/h
SIGMA = 0.5  # mg/L
LOQ = 9.0  # mg/L
LINEAR_K = 2000


def _linear_npde(lloq):
    """PD and NPDE of 6 simulated subjects, their observations (mg/L) and censoring flags, and
    the exact marginal mean and covariance ``m = Z theta``, ``V = Z Omega Z^T + sigma^2 I``."""
    model = Linear()
    params = sample_parameters(model, 6, omega=OMEGA, seed=3)
    study = simulate_study(
        model, params, LINEAR_TIMES, error=Additive(SIGMA), lloq=lloq, seed=4, solver=dfx.Tsit5()
    )
    problem = build_problem(
        model, study, observations={1: Observation("conc", Additive(SIGMA))}, variability=OMEGA
    )
    spec = Spec(problem.layout, solver=dfx.Tsit5(), rtol=1e-8)
    limits = np.full((6, LINEAR_TIMES.size), lloq or 0.0)
    pd_values, npde = npde_arrays(
        spec, problem.arrays, problem.x0, limits, replicates=LINEAR_K, seed=0
    )
    design = np.stack([np.ones_like(LINEAR_TIMES), LINEAR_TIMES], axis=1)
    cov = design @ np.diag([OMEGA["baseline"] ** 2, OMEGA["slope"] ** 2]) @ design.T
    cov += SIGMA**2 * np.eye(LINEAR_TIMES.size)
    mean = design @ np.array([10.0, 0.5])
    y = study["DV"].to_numpy().reshape(6, -1)
    censored = (study["CENS"].to_numpy() == 1).reshape(6, -1) if lloq else np.zeros(y.shape, bool)
    return pd_values, npde, y, censored, mean, cov


def test_pde_match_the_linear_gaussian_closed_form():
    """pde = Phi(V^-1/2 (y - m)) and PD = Phi((y - m) / sqrt(V_jj)) up to Monte Carlo error:
    binomial SE sqrt(p (1 - p) / K) <= 0.011 for K = 2000, and the error of the simulated mean
    and covariance, of the same order."""
    pd_values, npde, y, _, mean, cov = _linear_npde(None)
    eigenvalues, vectors = np.linalg.eigh(cov)
    exact_pde = stats.norm.cdf((y - mean) @ (vectors / np.sqrt(eigenvalues)) @ vectors.T)
    exact_pd = stats.norm.cdf((y - mean) / np.sqrt(np.diag(cov)))
    se = np.sqrt(0.25 / LINEAR_K)
    for got, exact in ((stats.norm.cdf(npde), exact_pde), (pd_values, exact_pd)):
        error = got - exact
        assert np.sqrt(np.mean(error**2)) < 2 * se
        assert np.abs(error).max() < 5 * se
    # the decorrelation matters: pde and PD differ by far more than that
    assert np.abs(exact_pde - exact_pd).max() > 0.3


def test_censored_pd_are_drawn_below_the_probability_of_the_limit():
    """cdf method: a BLQ observation's PD ~ U(0, p_LOQ), p_LOQ = Phi((LOQ - m_j) / sqrt(V_jj));
    uncensored PD are unaffected."""
    pd_values, npde, y, censored, mean, cov = _linear_npde(LOQ)
    assert 3 <= censored.sum() <= 15
    sd = np.sqrt(np.diag(cov))
    p_loq = np.broadcast_to(stats.norm.cdf((LOQ - mean) / sd), y.shape)
    tolerance = 4 * np.sqrt(p_loq * (1 - p_loq) / LINEAR_K)
    assert np.all(pd_values[censored] <= p_loq[censored] + tolerance[censored])
    exact_pd = stats.norm.cdf((y - mean) / sd)
    assert np.abs(pd_values - exact_pd)[~censored].max() < 5 * np.sqrt(0.25 / LINEAR_K)
    assert np.isfinite(npde).all()


def test_replicates_must_exceed_the_observations_of_a_subject(fitted):
    with pytest.raises(CartpkError, match=r"replicates=13 must exceed .* \(13\)"):
        npde_table(fitted, replicates=13)


# -- prediction-corrected VPC ---------------------------------------------------------------------


def test_prediction_corrected_observations_follow_the_formula(fitted):
    """Log-normal error: pcDV = DV PRED_bin / PRED with PRED_bin the bin's median PRED on the log
    scale (Bergstrand et al. 2011, doi:10.1208/s12248-011-9255-z)."""
    diagnostics = fitted.diagnostics()
    points = observation_points(fitted)
    plain = observation_points(fitted, prediction_corrected=False)
    np.testing.assert_allclose(plain["value"], diagnostics["DV"])  # censored rows: DV = LLOQ
    edges = time_bins(diagnostics["TIME"].to_numpy())
    which = np.digitize(diagnostics["TIME"], edges) - 1
    log_pred = np.log(diagnostics["PRED"].to_numpy())
    log_bin = pd.Series(log_pred).groupby(which).transform("median").to_numpy()
    expected = diagnostics["DV"].to_numpy() * np.exp(log_bin - log_pred)
    np.testing.assert_allclose(points["value"], expected, rtol=1e-12)
    assert not np.allclose(points["value"], plain["value"])  # the doses differ: PRED does


def test_rows_with_zero_pred_are_left_out_of_the_correction():
    """Additive error (linear scale): a pre-dose sample has PRED = 0 and cannot be scaled by
    PRED_bin / PRED; it is left out (nan) with a warning, and the other rows of its bin are
    corrected to the median PRED of the rows that remain."""
    pred = np.array([[0.0, 2.0, 4.0, 8.0]])
    fake = SimpleNamespace(
        spec=SimpleNamespace(
            layout=SimpleNamespace(observations=[Observation("c", Additive())], dvids=(1,))
        ),
        problem=SimpleNamespace(
            arrays=SimpleNamespace(
                mask=np.ones((1, 4), bool), obs_type=np.zeros((1, 4), int), time=np.zeros((1, 4))
            )
        ),
        diagnostics_arrays=SimpleNamespace(pred=pred),
    )
    g = np.array([[[0.7, 3.0, 3.0, 3.0]]])
    with pytest.warns(UserWarning, match="1 observation.*DVID 1 with PRED <= 0"):
        out = _prediction_corrected(fake, g, warn=True)
    assert np.isnan(out[0, 0, 0])
    np.testing.assert_allclose(out[0, 0, 1:], 3.0 * 4.0 / pred[0, 1:])  # one bin: median 4


def test_pcvpc_table_has_the_vpc_layout_and_narrower_bands(fitted):
    """Dose explains part of the spread of a bin: removing it narrows the simulated 5-95 %
    range around the peak, where cmax ~ DOSE^0.5 matters most."""
    plain = fitted.vpc(replicates=100, seed=1)
    corrected = pcvpc_table(fitted, replicates=100, seed=1)
    assert list(corrected.columns) == list(plain.columns)
    pd.testing.assert_frame_equal(
        corrected[["dvid", "bin", "percentile", "n"]], plain[["dvid", "bin", "percentile", "n"]]
    )
    blq = corrected["percentile"] == "blq"
    np.testing.assert_allclose(corrected[blq]["observed"], plain[blq]["observed"])

    def spread(table):
        rows = table[table["time"].between(7.0, 28.0)].set_index(["bin", "percentile"])
        return np.log(rows["sim_median"].xs("95", level=1) / rows["sim_median"].xs("5", level=1))

    assert np.all(spread(corrected) < spread(plain))
    # the observed median lies in the simulated 95 % interval of the median in most bins
    median = corrected[corrected["percentile"] == "50"].dropna()
    inside = (median["sim_low"] <= median["observed"]) & (median["observed"] <= median["sim_high"])
    assert inside.mean() >= 0.75
