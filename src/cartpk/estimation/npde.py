"""Normalised prediction distribution errors (NPDE) and prediction discrepancies (PD), by
simulation, as the npde package for R computes them.

Sources: Brendel K, Comets E, Laffont C, Laveille C, Mentré F. Pharm Res 2006;23:2036-2049,
doi:10.1007/s11095-006-9067-5 (the metric); Comets E, Brendel K, Mentré F. Comput Methods
Programs Biomed 2008;90:154-166, doi:10.1016/j.cmpb.2007.12.002 (the npde package: decorrelation,
ties, tests);
Nguyen THT, Comets E, Mentré F. J Pharmacokinet Pharmacodyn 2012;39:499-518,
doi:10.1007/s10928-012-9264-2 (censored observations, the package's ``cens.method="cdf"``).

For each subject ``i`` the study design (times, doses, covariates, limits) is simulated ``K`` times
from the estimates (new ``eta`` and residual draws), giving ``y_sim^(k)``, on each row's transformed
scale ``g`` (log for the exponential error model, the observation scale otherwise):

- ``PD_ij = #{k: y_sim,ij^(k) < y_ij} / K`` (no decorrelation);
- with ``m_i`` and ``V_i`` the mean and covariance of the simulated vectors, the observed and
  simulated vectors are decorrelated by the symmetric inverse square root,
  ``y* = V_i^-1/2 (y - m_i)`` (the package's ``decorr.method="inverse"``: it does not depend on
  the order of the rows), and ``pde_ij = #{k: y*_sim,ij^(k) < y*_ij} / K``;
- ``0`` and ``1`` become ``1/(2K)`` and ``1 - 1/(2K)`` (the package's ``ties=TRUE``), and
  ``NPDE = Phi^-1(pde)``.

Censored observations (``cens.method="cdf"``): with ``p_ij`` the fraction of simulations below the
row's limit, a BLQ observation gets ``PD ~ U(0, p_ij)``, and its value for the decorrelation is
the simulated quantile at that ``PD``; simulated values below a limit are likewise replaced by
simulated quantiles at ``U(0, p_ij)``, so observed and simulated data are completed the same way.
Above-limit observations (``CENS=-1``) are the mirror image (``PD ~ U(1 - p_ij, 1)``).

Under the model, NPDE are independent standard normal; :func:`npde_summary` gives the tests of
the npde package's ``gof.test``.
"""

from __future__ import annotations

import math
import warnings

import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import stats

from ..errors import CartpkError
from .diagnostics import predict_all
from .objective import Spec, residual_sd, subject_contexts
from .problem import SubjectArrays

#: number of tests combined in the global test (mean, variance, normality; Bonferroni)
GLOBAL_TESTS = 3
#: a simulated covariance whose eigenvalues span more than 1/SINGULAR cannot be inverted to any
#: useful precision in float64 (machine epsilon 2.2e-16)
SINGULAR = 1e-12


def simulate_replicates(
    spec: Spec, arrays: SubjectArrays, x, replicates: int, rng: np.random.Generator
) -> np.ndarray:
    """``replicates`` simulations of every subject's design at the estimates ``x``: new ``eta``
    and residual draws, on each row's transformed scale, shape ``(R, P, n)``; ``nan`` for a
    subject whose solve failed."""
    layout = spec.layout
    mu, chol, sigmas = subject_contexts(layout, jnp.asarray(x), arrays.design)
    n_subjects, n_rows = np.shape(arrays.mask)
    phi = np.tile(np.asarray(mu), (replicates, 1))
    where = [layout.names.index(n) for n in layout.etas]
    if where:
        z = rng.standard_normal((replicates * n_subjects, len(where)))
        phi[:, where] += z @ np.asarray(chol).T
    subjects = np.tile(np.arange(n_subjects), replicates)
    g, status = predict_all(spec, arrays, phi, subjects)
    g = g.reshape(replicates, n_subjects, n_rows)
    sd = np.asarray(residual_sd(spec, jnp.asarray(g), sigmas, arrays))
    y = g + sd * rng.standard_normal(g.shape)
    ok = (status == 0).reshape(replicates, n_subjects, 1)
    return np.where(ok, y, np.nan)


def transformed_limits(spec: Spec, arrays: SubjectArrays, limits: np.ndarray) -> np.ndarray:
    """Each row's censoring limit on its transformed scale, ``(P, n)``; ``-inf`` without one.

    Censored rows keep the limit their likelihood uses; on the other rows ``limits`` (the
    dataset's ``LIMIT``/``LLOQ``, ``0`` where none is given) is the limit below which a simulated
    value would have been reported as censored.
    """
    limits = np.asarray(limits, dtype=float)
    obs_type = np.asarray(arrays.obs_type)
    out = np.where(limits > 0, limits, -np.inf)
    for t, obs in enumerate(spec.layout.observations):
        if obs.error.log_scale:
            with np.errstate(divide="ignore"):
                out = np.where(obs_type == t, np.log(np.where(limits > 0, limits, 0.0)), out)
    censored = np.asarray(arrays.censored | arrays.censored_above)
    return np.where(censored, np.asarray(arrays.g_limit), out)


def npde_arrays(
    spec: Spec,
    arrays: SubjectArrays,
    x,
    limits: np.ndarray,
    *,
    replicates: int = 1000,
    seed: int = 0,
    subject_names=None,
) -> tuple[np.ndarray, np.ndarray]:
    """PD and NPDE of every observation, ``(P, n)`` each (``nan`` on padding).

    Args:
        limits: the dataset's censoring limit of each row (``0`` where none), as for
            :func:`~.diagnostics.vpc_table`.
        replicates: simulations of the study, ``K`` (the npde package recommends 1000 or more;
            it must exceed every subject's number of observations).
        seed: seed of the simulations and of the imputation of censored values.
        subject_names: subject IDs for messages (default: their indices).
    """
    mask = np.asarray(arrays.mask)
    most = int(mask.sum(axis=1).max())
    if replicates <= most:
        raise CartpkError(
            f"NPDE: replicates={replicates} must exceed the largest number of observations of "
            f"one subject ({most}), to estimate its covariance"
        )
    rng = np.random.default_rng(seed)
    sims = simulate_replicates(spec, arrays, x, replicates, rng)
    limit = transformed_limits(spec, arrays, limits)
    observed = np.asarray(arrays.g_obs)
    below = np.asarray(arrays.censored)
    above = np.asarray(arrays.censored_above)
    pd_all = np.full(mask.shape, np.nan)
    npde_all = np.full(mask.shape, np.nan)
    names = list(range(mask.shape[0])) if subject_names is None else list(subject_names)
    for i in range(mask.shape[0]):
        rows = np.flatnonzero(mask[i])
        simulated = sims[:, i, rows]
        simulated = simulated[np.all(np.isfinite(simulated), axis=1)]
        if len(simulated) <= rows.size:
            warnings.warn(
                f"NPDE: subject {names[i]}: only {len(simulated)} of {replicates} simulations "
                "solved; its PD and NPDE are left blank",
                stacklevel=2,
            )
            continue
        discrepancy, completed, completed_sims = _complete_censored(
            observed[i, rows], simulated, limit[i, rows], below[i, rows], above[i, rows], rng
        )
        pd_all[i, rows] = _untie(discrepancy, len(simulated))
        pde = _decorrelated_discrepancies(completed, completed_sims)
        if pde is None:
            warnings.warn(
                f"NPDE: subject {names[i]}: the covariance of its simulated observations is "
                "singular; its NPDE are left blank (PD are given)",
                stacklevel=2,
            )
            continue
        npde_all[i, rows] = stats.norm.ppf(_untie(pde, len(simulated)))
    return pd_all, npde_all


def npde_table(result, replicates: int = 1000, seed: int = 0) -> pd.DataFrame:
    """PD and NPDE of a population fit, one row per observation, aligned with
    ``result.diagnostics()``: ``ID, TIME, DV, DVID, CENS, LIMIT``, covariates, ``PD, NPDE``
    (see :func:`npde_arrays`)."""
    pd_values, npde_values = npde_arrays(
        result.spec,
        result.problem.arrays,
        result.x,
        dataset_limits(result),
        replicates=replicates,
        seed=seed,
        subject_names=result.problem.ids,
    )
    data = result.problem.data
    return data.to_frame(data.to_arrays(), PD=pd_values, NPDE=npde_values)


def dataset_limits(result) -> np.ndarray:
    """The dataset's censoring limit of each row of a fit, ``(P, n)``, ``0`` where none."""
    arrays = result.problem.data.to_arrays()
    return np.where(np.asarray(arrays.limit_missing), 0.0, np.asarray(arrays.limit))


def npde_summary(values) -> pd.DataFrame:
    """The npde package's ``gof.test`` of NPDE against N(0, 1), blanks ignored.

    Rows (``quantity, value``): ``n``; ``mean`` and its SE ``sd/sqrt(n)``; ``variance`` and its SE
    ``var sqrt(2/(n-1))``; ``skewness`` and ``kurtosis`` (excess; Snedecor & Cochran, as the
    package); the p-values of the Student t-test of mean 0 (``p_mean``), the Fisher test of
    variance 1 (``p_variance``: two-sided, ``(n-1) var ~ chi2(n-1)``), the Shapiro-Wilk test of
    normality (``p_normality``), and the global test ``p_global = min(1, 3 min(p))``
    (Bonferroni).
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = x.size
    if n < 3:
        raise CartpkError(f"NPDE summary: needs at least 3 values, got {n}")
    variance = float(np.var(x, ddof=1))
    centred = x - x.mean()
    m2 = np.sum(centred**2)
    chi2 = variance * (n - 1)
    p_variance = 2 * min(stats.chi2.cdf(chi2, n - 1), stats.chi2.sf(chi2, n - 1))
    p = dict(
        p_mean=float(stats.ttest_1samp(x, 0.0).pvalue),
        p_variance=float(p_variance),
        p_normality=float(stats.shapiro(x).pvalue),
    )
    rows = dict(
        n=n,
        mean=float(x.mean()),
        se_mean=math.sqrt(variance / n),
        variance=variance,
        se_variance=variance * math.sqrt(2 / (n - 1)),
        skewness=float(np.sum(centred**3) / (m2 * math.sqrt(m2 / n))),
        kurtosis=float(n * np.sum(centred**4) / m2**2 - 3),
        **p,
        p_global=min(1.0, GLOBAL_TESTS * min(p.values())),
    )
    return pd.DataFrame({"quantity": list(rows), "value": [float(v) for v in rows.values()]})


def _complete_censored(y, sims, limit, below, above, rng):
    """PD of one subject's rows, and its observed and simulated values completed below (above)
    the limits by the cdf method.

    Above-limit rows are handled as below-limit rows of ``-y``: ``sign`` flips them.
    """
    K = len(sims)
    sign = np.where(above, -1.0, 1.0)
    s_sims, s_limit = sign * sims, sign * limit
    censored_sims = s_sims < s_limit
    p_censored = censored_sims.mean(axis=0)
    censored = below | above
    pd_signed = np.where(censored, rng.uniform(size=y.shape) * p_censored, 0.0)
    discrepancy = np.where(
        censored, np.where(above, 1 - pd_signed, pd_signed), (sims < y).mean(axis=0)
    )
    ordered = np.sort(s_sims, axis=0)
    columns = np.arange(y.size)

    def quantile(p, cols):
        return ordered[np.minimum((p * K).astype(int), K - 1), cols]

    completed = np.where(censored, sign * quantile(pd_signed, columns), y)
    k, j = np.nonzero(censored_sims)
    completed_sims = sims.copy()
    completed_sims[k, j] = sign[j] * quantile(rng.uniform(size=j.size) * p_censored[j], j)
    return discrepancy, completed, completed_sims


def _decorrelated_discrepancies(y, sims):
    """Fraction of decorrelated simulations below the decorrelated observation, per row
    (``None`` if the simulated covariance is singular)."""
    mean = sims.mean(axis=0)
    cov = np.atleast_2d(np.cov(sims, rowvar=False))
    eigenvalues, vectors = np.linalg.eigh(cov)
    if eigenvalues[0] <= SINGULAR * eigenvalues[-1]:
        return None
    inverse_root = (vectors / np.sqrt(eigenvalues)) @ vectors.T
    decorrelated_sims = (sims - mean) @ inverse_root
    decorrelated = (y - mean) @ inverse_root
    return (decorrelated_sims < decorrelated).mean(axis=0)


def _untie(p, K: int):
    """``0 -> 1/(2K)`` and ``1 -> 1 - 1/(2K)``, as the npde package (``ties=TRUE``)."""
    return np.where(p == 0, 1 / (2 * K), np.where(p == 1, 1 - 1 / (2 * K), p))
