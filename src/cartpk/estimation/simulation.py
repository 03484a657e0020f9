"""Simulated studies: virtual subjects from a population model, written as a NONMEM dataset.

Used to test estimation by simulate-and-re-estimate (tests, ``fits/``, benchmarks and the coverage
study in ``docs/estimation.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..errors import CartpkError
from ..models.base import AbstractModel
from ..simulate import simulate_population
from .error_models import ErrorModel, Exponential
from .problem import model_observables


def sample_parameters(
    model: AbstractModel,
    n: int,
    *,
    typical: Mapping[str, float] | None = None,
    omega: float | Mapping[str, float] = 0.3,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """``n`` subjects' parameters: ``phi = theta + eta`` on each parameter's unconstrained scale.

    Args:
        model: the structural model.
        n: number of subjects.
        typical: typical values (natural scale); default the model defaults.
        omega: SD of ``eta`` (unconstrained scale: log-normal for log-transformed parameters),
            one value for every parameter or name -> SD (missing names: no variability).
        seed: random seed.

    Returns:
        name -> array of ``n`` values (model units).
    """
    rng = np.random.default_rng(seed)
    specs = model.parameter_set.specs
    values = model.default_params(**dict(typical or {}))
    out = {}
    for name, spec in specs.items():
        sd = omega.get(name, 0.0) if isinstance(omega, Mapping) else float(omega)
        u = float(spec.to_unconstrained(values[name]))
        out[name] = np.asarray(
            spec.from_unconstrained(jnp.asarray(u + sd * rng.standard_normal(n)))
        )
    return out


def simulate_study(
    model: AbstractModel,
    params: Mapping[str, np.ndarray],
    times: Sequence[float],
    *,
    observable: str | None = None,
    error: ErrorModel | None = None,
    lloq: float | None = None,
    covariates: Mapping[str, np.ndarray] | None = None,
    seed: int = 0,
    **options,
) -> pd.DataFrame:
    """Simulate observations of a study and return them as a NONMEM-style table.

    Args:
        model: the structural model (simulated without doses: pass dose-independent models, or
            models whose initial state carries the dose).
        params: name -> one value per subject (e.g. from :func:`sample_parameters`).
        times: sampling times (d), the same for every subject.
        observable: the observable to record; default the model's first.
        error: residual error model with its SDs (default ``Exponential(0.3)``).
        lloq: lower limit of quantification: values below it become ``CENS=1`` records with
            ``DV`` equal to the limit. ``None``: no censoring.
        covariates: column -> one value per subject, written on every record.
        seed: random seed of the residual errors.
        **options: passed to :func:`~cartpk.simulate_population` (solver, rtol, ...).

    Returns:
        DataFrame with ``ID, TIME, DV, MDV, EVID, CENS, LLOQ`` (the last two if ``lloq``) and the
        covariates.
    """
    error = error or Exponential(0.3)
    observable = observable or model_observables(model)[0]
    n = len(np.atleast_1d(next(iter(params.values()))))
    solution = simulate_population(model, dict(params), None, np.asarray(times, float), **options)
    if not np.all(np.asarray(solution.ok)):
        raise CartpkError("simulate_study: " + "; ".join(solution.failures(params)[:3]))
    f = np.asarray(solution.observables[observable])
    rng = np.random.default_rng(seed)
    y = np.asarray(error.simulate(jnp.asarray(f), error.initial(), rng.standard_normal(f.shape)))
    frame = pd.DataFrame(
        {
            "ID": np.repeat(np.arange(1, n + 1), len(times)),
            "TIME": np.tile(np.asarray(times, float), n),
            "DV": y.ravel(),
            "MDV": 0,
            "EVID": 0,
        }
    )
    if lloq is not None:
        below = frame["DV"].to_numpy() < lloq
        frame["CENS"] = below.astype(int)
        frame["LLOQ"] = float(lloq)
        frame.loc[below, "DV"] = float(lloq)
    for name, values in (covariates or {}).items():
        frame[name] = np.repeat(np.asarray(values), len(times))
    return frame
