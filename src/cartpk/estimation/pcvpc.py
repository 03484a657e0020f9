"""Prediction-corrected visual predictive check (pcVPC).

Bergstrand M, Hooker AC, Wallin JE, Karlsson MO. Prediction-corrected visual predictive checks for
diagnosing nonlinear mixed-effects models. AAPS J 2011;13(2):143-151,
doi:10.1208/s12248-011-9255-z.

A plain VPC pools, in one time bin, subjects whose predictions differ (by dose, covariates or
sampling time within the bin): the spread of the bin then mixes variability with the design. The
pcVPC removes the part explained by the typical prediction ``PRED``: each observed and
simulated value ``y_ij`` of a bin is scaled to the bin's median prediction ``PRED_bin``,

    pcY_ij = y_ij PRED_bin / PRED_ij                 (with the lower bound 0)
    pcY_ij = y_ij + (PRED_bin - PRED_ij)             (on the log scale, for log-normal errors)

(the second is the first on the log scale, where the exponential error model's residual is
normal). Values below a row's limit stay below the limit: the fraction below the limit is that of
the plain VPC. Above-limit observations (``CENS=-1``, rare) enter at their limit. The
percentiles are then tabulated as by :func:`~.diagnostics.vpc_table`. Rows whose ``PRED`` is
not positive where the correction divides by it (e.g. samples at or before the dose) cannot be
corrected: they are left out, with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .diagnostics import time_bins, to_observation_scale
from .npde import dataset_limits, simulate_replicates, transformed_limits

#: the 2.5 %, 50 % and 97.5 % of the simulated percentiles: their median and 95 % interval
BAND = (2.5, 50.0, 97.5)


def pcvpc_table(
    result, replicates: int = 200, seed: int = 0, percentiles: Sequence[float] = (5, 50, 95)
) -> pd.DataFrame:
    """Prediction-corrected VPC of a population fit, in the layout of
    :func:`~.diagnostics.vpc_table` (see :func:`percentile_table`)."""
    spec, arrays = result.spec, result.problem.arrays
    sims = simulate_replicates(spec, arrays, result.x, replicates, np.random.default_rng(seed))
    below = np.asarray(arrays.censored)
    above = np.asarray(arrays.censored_above)
    observed = np.where(above, np.asarray(arrays.g_limit), np.asarray(arrays.g_obs))
    raw = np.concatenate([observed[None], sims])
    # simulated values below a row's lower limit would have been reported as censored
    lower = np.where(above, -np.inf, transformed_limits(spec, arrays, dataset_limits(result)))
    censored = (raw < lower) | below
    obs_type = np.asarray(arrays.obs_type)
    corrected = _to_observation(spec, _prediction_corrected(result, raw, warn=True), obs_type)
    values = np.where(np.isnan(corrected), np.nan, np.where(censored, -np.inf, corrected))
    return percentile_table(
        values[0],
        values[1:],
        np.asarray(arrays.time),
        np.asarray(arrays.mask),
        obs_type,
        spec.layout.dvids,
        percentiles,
    )


def observation_points(result, prediction_corrected: bool = True) -> pd.DataFrame:
    """The observations of a fit as points for :func:`cartpk.plots.visual_predictive_check`:
    ``ID, dvid, time, value, censored``, prediction-corrected as in :func:`pcvpc_table` or not.
    Censored rows carry their (corrected) limit as ``value``; ``time`` is the model's time, the
    VPC's axis (counted from each subject's dose for a dose-independent model)."""
    spec, arrays = result.spec, result.problem.arrays
    censored = np.asarray(arrays.censored | arrays.censored_above)
    g = np.where(censored, np.asarray(arrays.g_limit), np.asarray(arrays.g_obs))
    if prediction_corrected:
        g = _prediction_corrected(result, g[None])[0]
    obs_type = np.asarray(arrays.obs_type)
    frame = result.problem.data.to_frame(
        result.problem.data.to_arrays(),
        value=_to_observation(spec, g, obs_type),
        censored=censored,
        model_time=np.asarray(arrays.time),
    )
    return pd.DataFrame(
        dict(
            ID=frame["ID"],
            dvid=frame["DVID"],
            time=frame["model_time"],  # the VPC's time axis (from the dose for Multiphasic)
            value=frame["value"],
            censored=frame["censored"].astype(bool),
        )
    ).dropna(subset=["value"])  # rows the correction leaves out


def percentile_table(
    observed: np.ndarray,
    sims: np.ndarray,
    time: np.ndarray,
    mask: np.ndarray,
    obs_type: np.ndarray,
    dvids: Sequence[int],
    percentiles: Sequence[float] = (5, 50, 95),
) -> pd.DataFrame:
    """Observed and simulated percentiles per observation type and time bin.

    Args:
        observed: observed values ``(P, n)``; ``-inf`` below the limit.
        sims: simulated values ``(R, P, n)``; ``-inf`` below the limit, ``nan`` where the
            solve failed.
        time, mask, obs_type: the rows' times, which rows are observations, their type index.
        dvids: the DVID of each type index.
        percentiles: the percentiles to tabulate (%).

    Values below the limit rank lowest; a percentile that falls among them is ``nan``. Bins are
    those of :func:`~.diagnostics.time_bins` per DVID.

    Returns:
        One row per (DVID, bin, percentile): ``dvid, bin, time`` (median time), ``percentile``,
        ``observed``, ``sim_median, sim_low, sim_high`` (median and 95 % interval of the simulated
        percentile), ``n``; and per (DVID, bin) a row with ``percentile = "blq"`` for the fraction
        below the limit.
    """
    qs = np.asarray(percentiles, dtype=float)
    rows = []
    for t, dvid in enumerate(dvids):
        here = mask & (obs_type == t)
        if not here.any():
            continue
        edges = time_bins(time[here])
        which = np.digitize(time, edges) - 1
        for b in range(len(edges) - 1):
            sel = here & (which == b)
            if not sel.any():
                continue
            common = dict(dvid=dvid, bin=b, time=float(np.median(time[sel])), n=int(sel.sum()))
            obs_q = _percentiles(observed[sel][None], qs)[0]
            sim_q = _percentiles(sims[:, sel], qs)
            for k, q in enumerate(percentiles):
                low, mid, high = _percentiles(sim_q[None, :, k], np.asarray(BAND))[0]
                rows.append(
                    dict(
                        common,
                        percentile=str(q),
                        observed=obs_q[k],
                        sim_median=mid,
                        sim_low=low,
                        sim_high=high,
                    )
                )
            simulated = sims[:, sel]
            fraction = np.nanmean(np.where(np.isnan(simulated), np.nan, np.isneginf(simulated)), 1)
            low, mid, high = np.nanpercentile(fraction, BAND)
            rows.append(
                dict(
                    common,
                    percentile="blq",
                    observed=float(np.mean(np.isneginf(observed[sel]))),
                    sim_median=mid,
                    sim_low=low,
                    sim_high=high,
                )
            )
    columns = ["dvid", "bin", "time", "percentile", "observed", "sim_median", "sim_low", "sim_high"]
    table = pd.DataFrame(rows, columns=columns + ["n"])
    table[columns[4:]] = table[columns[4:]].replace(-np.inf, np.nan)
    return table


def _percentiles(values: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """Percentiles ``qs`` of each row of ``values`` ``(R, m)`` (numpy's linear rule), ignoring
    ``nan``; ``-inf`` ranks lowest, and a percentile interpolated from it is ``-inf``; ``nan``
    for a row without values. Returns ``(R, len(qs))``."""
    ordered = np.sort(values, axis=1)  # nan last
    count = np.sum(~np.isnan(values), axis=1)[:, None]
    position = np.maximum(count - 1, 0) * qs[None, :] / 100
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, np.maximum(count - 1, 0))
    a = np.take_along_axis(ordered, low, axis=1)
    b = np.take_along_axis(ordered, high, axis=1)
    with np.errstate(invalid="ignore"):
        out = np.where(np.isneginf(a), -np.inf, a + (position - low) * (b - a))
    return np.where(count > 0, out, np.nan)


def _prediction_corrected(result, g: np.ndarray, warn: bool = False) -> np.ndarray:
    """``g`` ``(R, P, n)`` on the transformed scales, corrected to each bin's median ``PRED``
    (``nan`` on rows that cannot be: ``PRED <= 0`` on the linear scale)."""
    spec, arrays = result.spec, result.problem.arrays
    pred = np.asarray(result.diagnostics_arrays.pred)
    mask, obs_type, time = (np.asarray(a) for a in (arrays.mask, arrays.obs_type, arrays.time))
    out = np.array(g, dtype=float)
    for t, obs in enumerate(spec.layout.observations):
        here = mask & (obs_type == t)
        if not here.any():
            continue
        if not obs.error.log_scale and np.any(pred[here] <= 0):
            left_out = here & (pred <= 0)
            if warn:
                warnings.warn(
                    f"pcVPC: {int(left_out.sum())} observation(s) of DVID "
                    f"{spec.layout.dvids[t]} with PRED <= 0 (e.g. at or before the dose) left "
                    "out: the correction y PRED_bin / PRED needs a positive prediction",
                    stacklevel=3,
                )
            out[:, left_out] = np.nan
            here = here & ~left_out
        edges = time_bins(time[here])
        which = np.digitize(time, edges) - 1
        for b in range(len(edges) - 1):
            sel = here & (which == b)
            if not sel.any():
                continue
            pred_bin = np.median(pred[sel])
            if obs.error.log_scale:
                out[:, sel] = g[:, sel] + (pred_bin - pred[sel])
            else:
                out[:, sel] = g[:, sel] * (pred_bin / pred[sel])
    return out


def _to_observation(spec, g: np.ndarray, obs_type: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return to_observation_scale(spec, g, obs_type)
