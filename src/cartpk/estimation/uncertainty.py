"""Uncertainty beyond standard errors: profile likelihood and the nonparametric bootstrap.

Both re-optimise the OFV with the compiled objective of the original fit (same structure and
shapes, so nothing recompiles):

- :func:`profile` fixes one parameter at a grid of values (on its internal scale) and
  re-estimates the others; the 95 % interval is where ``OFV - OFV_min`` stays below the 95 %
  quantile of chi-square with 1 degree of freedom (3.841).
- :func:`bootstrap` resamples subjects with replacement; a replicate is the original dataset with
  subject weights equal to the number of times each subject was drawn, so all replicates share
  one set of arrays and run as one batch (``vmap``).
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..errors import CartpkError
from ..progress import step
from .outer import Evaluator, minimise
from .results import PopulationResult

CHI2_95 = 3.841458820694124


def estimated_index(layout, name: str) -> int:
    """Index of an estimated quantity by its reported name (raises naming the known ones)."""
    for i, label in enumerate(layout.labels):
        if layout.label_name(label) == name:
            if not layout.free[i]:
                raise CartpkError(f"profile: {name} is fixed in this fit")
            return i
    known = [layout.label_name(lab) for lab, f in zip(layout.labels, layout.free, strict=True) if f]
    raise CartpkError(f"profile: unknown parameter {name!r}; estimated: {', '.join(known)}")


def profile(
    result: PopulationResult,
    parameter: str,
    *,
    span: float = 3.0,
    points: int = 9,
    max_iter: int = 300,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Profile likelihood of one estimated parameter.

    Args:
        result: a converged population fit.
        parameter: a reported name (typical value, ``beta_...``, ``omega_<name>`` of a diagonal
            ``Omega``, or ``sigma_<name>``).
        span: the grid spans ``estimate +- span`` standard errors on the internal scale (or
            ``+- 0.3 * span`` units without standard errors).
        points: grid points (odd numbers include the estimate).

    Returns:
        One row per grid point: ``parameter, value`` (natural scale), ``ofv``, ``delta_ofv``,
        ``converged``; the 95 % interval is in ``df.attrs["ci"]`` (``nan`` where the profile
        does not cross 3.84 within the grid; between grid points the signed root
        ``sqrt(delta_ofv)`` is interpolated linearly on the internal scale).
    """
    i = estimated_index(result.layout, parameter)
    layout = result.layout
    evaluator = Evaluator(result.spec, result.problem.arrays)
    column = int(np.flatnonzero(result.V[i])[0])
    V = result.V.copy()
    V[:, column] = 0.0
    cov = result.covariance_matrix("hessian")
    se = float(np.sqrt(cov[i, i])) if cov is not None else 0.1
    grid = result.x[i] + se * np.linspace(-span, span, points)
    n = result.problem.arrays.n_subjects
    weights = np.ones(n)
    center = int(np.argmin(np.abs(grid - result.x[i])))
    rows: dict[int, dict] = {}
    with step(progress, f"profile likelihood of {parameter}", points) as task:
        for path in (range(center, points), range(center, -1, -1)):
            x_start, z_start = result.x, result.z  # walk outwards, warm-started by the neighbour
            for j in path:
                if j in rows:
                    x_start, z_start = rows[j]["x"], rows[j]["z"]
                    continue
                x0 = x_start.copy()
                x0[i] = grid[j]
                outcome = minimise(
                    evaluator, x0[None], V[None], weights[None], z_start[None], max_iter=max_iter
                )
                x_start, z_start = outcome.x[0], outcome.z[0]
                rows[j] = dict(
                    ofv=float(outcome.ofv[0]),
                    converged=bool(outcome.converged[0]),
                    x=x_start,
                    z=z_start,
                )
                task.advance()
                if progress is not None:
                    progress(
                        f"profile {parameter}: point {len(rows)}/{points}, OFV {rows[j]['ofv']:.3f}"
                    )
    values = [float(layout.from_scaled(parameter, jnp.asarray(g))) for g in grid]
    ofv = np.array([rows[j]["ofv"] for j in range(points)])
    best = min(result.ofv, float(np.min(ofv)))
    frame = pd.DataFrame(
        {
            "parameter": parameter,
            "value": values,
            "ofv": ofv,
            "delta_ofv": ofv - best,
            "converged": [rows[j]["converged"] for j in range(points)],
        }
    )
    low, high = _crossings(grid, ofv - best, result.x[i])
    frame.attrs["ci"] = tuple(
        float(layout.from_scaled(parameter, jnp.asarray(v))) if np.isfinite(v) else np.nan
        for v in (low, high)
    )
    return frame


def _crossings(grid, delta, estimate) -> tuple[float, float]:
    """Where the profile crosses ``CHI2_95`` on each side of the estimate (internal scale).

    Interpolates the signed root ``sqrt(delta)``, which is linear in the parameter when the
    profile is quadratic, so a coarse grid still gives the right crossing.
    """
    root = np.sqrt(np.clip(delta, 0.0, None))
    target = np.sqrt(CHI2_95)
    out = []
    for side in (-1, 1):
        idx = np.flatnonzero(np.sign(grid - estimate) == side)
        idx = idx[np.argsort(np.abs(grid[idx] - estimate))]
        prev_v, prev_r = estimate, 0.0
        found = np.nan
        for j in idx:
            if root[j] >= target:
                w = (target - prev_r) / (root[j] - prev_r)
                found = prev_v + w * (grid[j] - prev_v)
                break
            prev_v, prev_r = grid[j], root[j]
        out.append(float(found))
    return out[0], out[1]


def bootstrap(
    result: PopulationResult,
    replicates: int = 20,
    *,
    seed: int = 0,
    max_iter: int = 300,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Nonparametric bootstrap over subjects, all replicates as one vmapped batch.

    Returns:
        One row per replicate: ``replicate, ofv, converged`` and every reported estimate; the
        2.5-97.5 % percentile intervals of converged replicates are in ``df.attrs["ci"]``
        (name -> (low, high)).
    """
    if replicates < 2:
        raise CartpkError(f"bootstrap needs at least 2 replicates, got {replicates}")
    layout = result.layout
    n = result.problem.arrays.n_subjects
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(replicates, n))
    weights = np.stack([np.bincount(d, minlength=n) for d in draws]).astype(float)
    evaluator = Evaluator(result.spec, result.problem.arrays)
    with step(progress, f"bootstrap: {replicates} refits as one batch (the first compiles)"):
        outcome = minimise(
            evaluator,
            np.broadcast_to(result.x, (replicates, result.x.size)).copy(),
            np.broadcast_to(result.V, (replicates,) + result.V.shape).copy(),
            weights,
            np.broadcast_to(result.z, (replicates,) + result.z.shape).copy(),
            max_iter=max_iter,
            tol=result.strategy.tol,
            progress=progress,
            label="bootstrap: ",
        )
    names = layout.report_names()
    table = {"replicate": np.arange(replicates), "ofv": outcome.ofv, "converged": outcome.converged}
    scaled = np.stack([np.asarray(layout.report_scaled(jnp.asarray(x))) for x in outcome.x])
    for j, name in enumerate(names):
        table[name] = np.asarray(layout.from_scaled(name, jnp.asarray(scaled[:, j])))
    frame = pd.DataFrame(table)
    good = frame[frame["converged"]]
    frame.attrs["ci"] = {
        name: tuple(np.percentile(good[name], [2.5, 97.5])) if len(good) > 1 else (np.nan, np.nan)
        for name in names
    }
    return frame
