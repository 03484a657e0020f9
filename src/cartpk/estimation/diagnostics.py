"""Goodness-of-fit diagnostics: PRED, IPRED, IWRES, CWRES, and the visual predictive check.

On each observation type's transformed scale ``g`` (log for the exponential error model):

- ``PRED``: the prediction of the typical subject (``eta = 0``, with the subject's covariates);
- ``IPRED``: the individual prediction at the EBE ``eta*``;
- ``IWRES = (g(DV) - g(IPRED)) / sd(IPRED)``;
- ``CWRES``: conditional weighted residuals (Hooker et al. 2007): with ``G = dg/d eta`` at
  ``eta*``, the linearised population mean ``E = g(IPRED) - G eta*`` and covariance
  ``C = G Omega G^T + diag(sd(IPRED)^2)``, ``CWRES = C^-1/2 (g(DV) - E)`` with ``C^-1/2`` the
  symmetric inverse square root (from the eigendecomposition of ``C``), as NONMEM decorrelates;
  a Cholesky factor would give residuals that depend on the order of the rows. cartpk's CWRES
  equal NONMEM 7.5's on its phenobarbital example to 5e-5 (``tests/test_nonmem_reference.py``).

Censored rows have no residuals (blank). ``PRED`` and ``IPRED`` are reported on the observation
scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .objective import Spec, predictions, residual_sd, subject_contexts
from .outer import default_workers, map_chunks, on_host_device
from .problem import SubjectArrays


@eqx.filter_jit
def _predict_chunk(spec: Spec, arrays: SubjectArrays, phi):
    g, status = jax.vmap(lambda p, d: predictions(spec, p, d))(phi, arrays)
    return dict(g=g, status=status)


def predict_all(spec: Spec, arrays: SubjectArrays, phi, subjects=None):
    """Transformed predictions ``(R, n)`` and solver statuses ``(R,)`` of rows ``phi`` ``(R, K)``
    for the given subjects (default: row ``i`` is subject ``i``), in compiled chunks."""
    host = jax.tree.map(np.asarray, arrays)
    phi = np.asarray(phi)
    subjects = np.arange(len(phi)) if subjects is None else np.asarray(subjects)

    def run(idx):
        chunk = jax.tree.map(lambda a: jnp.asarray(a[subjects[idx]]), host)
        with on_host_device():
            out = _predict_chunk(spec, chunk, jnp.asarray(phi[idx]))
            return {k: np.asarray(v) for k, v in out.items()}

    out = map_chunks(len(phi), run, default_workers())
    return out["g"], out["status"]


@dataclass
class Diagnostics:
    """Per-observation arrays ``(P, n)`` on the transformed scales."""

    pred: np.ndarray
    ipred: np.ndarray
    sd: np.ndarray
    iwres: np.ndarray
    cwres: np.ndarray


def compute(spec: Spec, arrays: SubjectArrays, x, z, g, jac) -> Diagnostics:
    """PRED, IPRED, IWRES and CWRES.

    Args:
        x: the estimates (internal scale).
        z: standardised EBEs ``(P, k)``.
        g, jac: transformed predictions at the EBEs and their derivatives in the varying
            parameters (from :func:`~.objective.evaluate`).
    """
    layout = spec.layout
    x = jnp.asarray(x)
    mu, chol, sigmas = subject_contexts(layout, x, arrays.design)
    pred, _ = predict_all(spec, arrays, mu)
    g = np.asarray(g)
    sd = np.asarray(residual_sd(spec, jnp.asarray(g), sigmas, arrays))
    keep = np.asarray(arrays.mask & ~arrays.censored & ~arrays.censored_above)
    g_obs = np.asarray(arrays.g_obs)
    iwres = np.where(keep, (g_obs - g) / sd, np.nan)
    cols = [layout.varying_index.index(layout.names.index(n)) for n in layout.etas]
    chol = np.asarray(chol)
    cwres = np.full(g.shape, np.nan)
    for i in range(g.shape[0]):
        rows = np.flatnonzero(keep[i])
        if rows.size == 0:
            continue
        jz = np.asarray(jac[i])[np.ix_(rows, cols)] @ chol
        cov = jz @ jz.T + np.diag(sd[i, rows] ** 2)
        residual = g_obs[i, rows] - (g[i, rows] - jz @ z[i])
        eigenvalues, vectors = np.linalg.eigh(cov)
        cwres[i, rows] = vectors @ ((vectors.T @ residual) / np.sqrt(eigenvalues))
    return Diagnostics(pred=np.asarray(pred), ipred=g, sd=sd, iwres=iwres, cwres=cwres)


def to_observation_scale(spec: Spec, g, obs_type) -> np.ndarray:
    """Transformed values back to the observation scale, row by row."""
    out = np.array(g, dtype=float)
    for t, obs in enumerate(spec.layout.observations):
        if obs.error.log_scale:
            out = np.where(obs_type == t, np.exp(g), out)
    return out


# ------------------------------------------------------------------------------------------------
# Visual predictive check


def time_bins(times: np.ndarray, max_bins: int = 12) -> np.ndarray:
    """Bin edges: between distinct nominal times if there are few, else quantiles."""
    distinct = np.unique(times)
    if len(distinct) <= max_bins:
        mids = 0.5 * (distinct[1:] + distinct[:-1])
        return np.concatenate([[-np.inf], mids, [np.inf]])
    edges = np.unique(np.quantile(times, np.linspace(0, 1, max_bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    return edges


def vpc_table(
    spec: Spec,
    arrays: SubjectArrays,
    x,
    limits: np.ndarray,
    *,
    replicates: int = 200,
    seed: int = 0,
    percentiles=(5, 50, 95),
    progress=None,
) -> pd.DataFrame:
    """Visual predictive check: percentiles of observed and simulated data per time bin.

    Simulated subjects keep each subject's design (times, doses, covariates, limits). Values
    below a row's limit count as below the limit and are placed at ``-inf`` when computing
    percentiles, so a percentile below the limit is reported as ``nan``.

    Returns:
        One row per (DVID, bin, percentile): ``dvid, bin, time`` (median time), the observed
        percentile, the simulated median and 95 % interval of that percentile; and per
        (DVID, bin) the observed and simulated (median, 95 % interval) fraction below the limit,
        as rows with ``percentile = "blq"``.
    """
    layout = spec.layout
    x = jnp.asarray(x)
    mu, chol, sigmas = subject_contexts(layout, x, arrays.design)
    mask = np.asarray(arrays.mask)
    obs_type = np.asarray(arrays.obs_type)
    time = np.asarray(arrays.time)
    censored = np.asarray(arrays.censored)
    observed = to_observation_scale(spec, np.asarray(arrays.g_obs), obs_type)
    observed = np.where(censored, -np.inf, observed)
    rng = np.random.default_rng(seed)
    n_subjects = mask.shape[0]
    where = np.array([layout.names.index(n) for n in layout.etas], dtype=int)
    phi = np.tile(np.asarray(mu), (replicates, 1))
    if len(where):
        z = rng.standard_normal((replicates * n_subjects, len(where)))
        phi[:, where] += z @ np.asarray(chol).T
    if progress is not None:
        progress(f"VPC: simulating {replicates} replicates of {n_subjects} subjects")
    subjects = np.tile(np.arange(n_subjects), replicates)
    g, status = predict_all(spec, arrays, phi, subjects)
    tiled = jax.tree.map(lambda a: np.asarray(a)[subjects], arrays)
    sd = np.asarray(residual_sd(spec, jnp.asarray(g), sigmas, tiled))
    y = to_observation_scale(spec, g + sd * rng.standard_normal(g.shape), tiled.obs_type)
    y = np.where(status[:, None] == 0, y, np.nan)
    lim = np.tile(limits, (replicates, 1))
    y = np.where((lim > 0) & (y < lim), -np.inf, y)
    sims = y.reshape((replicates,) + mask.shape)
    rows = []
    for t, dvid in enumerate(layout.dvids):
        here = mask & (obs_type == t)
        edges = time_bins(time[here])
        which = np.digitize(time, edges) - 1
        for b in range(len(edges) - 1):
            sel = here & (which == b)
            if not sel.any():
                continue
            obs_values = observed[sel]
            sim_values = sims[:, sel]
            t_mid = float(np.median(time[sel]))
            for q in percentiles:
                obs_q = _percentile(obs_values, q)
                sim_q = np.array([_percentile(s, q) for s in sim_values])
                lo, mid, hi = _nan_band(sim_q)
                rows.append(
                    dict(
                        dvid=dvid,
                        bin=b,
                        time=t_mid,
                        percentile=str(q),
                        observed=obs_q,
                        sim_median=mid,
                        sim_low=lo,
                        sim_high=hi,
                        n=int(sel.sum()),
                    )
                )
            frac = np.mean(np.isneginf(sim_values), axis=1)
            lo, mid, hi = np.percentile(frac, [2.5, 50, 97.5])
            rows.append(
                dict(
                    dvid=dvid,
                    bin=b,
                    time=t_mid,
                    percentile="blq",
                    observed=float(np.mean(np.isneginf(obs_values))),
                    sim_median=mid,
                    sim_low=lo,
                    sim_high=hi,
                    n=int(sel.sum()),
                )
            )
    return pd.DataFrame(rows)


def _percentile(values: np.ndarray, q: float) -> float:
    """Percentile counting values below the limit (``-inf``); ``nan`` if it falls among them."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return np.nan
    value = np.percentile(np.where(np.isneginf(values), -1e300, values), q)
    return float(value) if value > -1e290 else np.nan


def _nan_band(values: np.ndarray) -> tuple[float, float, float]:
    """2.5 %, 50 % and 97.5 % of simulated percentiles; ``-inf`` (below the limit) stays low."""
    filled = np.where(np.isnan(values), -np.inf, values)
    lo, mid, hi = np.percentile(np.sort(filled), [2.5, 50, 97.5], method="nearest")
    return tuple(float(v) if np.isfinite(v) else np.nan for v in (lo, mid, hi))
