"""Fits to published summary statistics (medians, IQRs, geometric means) instead of individual data.

Most CAR-T trials publish only summaries: the median and IQR of Cmax, Tmax and AUC0-28, or a
median level at a few days. The strategy :class:`SummaryStatistics`
(``fit(model, targets, SummaryStatistics(...))``) fits typical values (and, optionally,
between-subject variabilities) by simulating a virtual trial and matching its summaries:

    theta_i = theta exp(omega z_i),   z_i ~ N(0, I)   (i = 1..n_virtual; z drawn once, fixed)
    loss    = sum_k w_k (ln S_k(theta, omega) - ln s_k)^2

where ``s_k`` is a reported statistic and ``S_k`` the same statistic of the virtual trial. The
draws ``z`` are fixed (common random numbers), so the loss is a smooth function of
``(ln theta, ln omega)`` and is minimised with BFGS (optimistix) on gradients through the solver.
Sample quantiles are differentiable almost everywhere (a sort), geometric means are smooth; the
peak time uses a parabolic refinement of the grid maximum of ``ln C`` so that it is continuous.

Weights default to ``n_k`` (the number of subjects behind statistic ``k``), so a statistic from
62 patients counts more than one from 8.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pandas as pd

from ..errors import CartpkError
from ..models.base import AbstractModel
from ..regimen import Regimen
from ..simulate import simulate
from .problem import model_observables
from .strategy import AbstractStrategy, Settings

#: Statistics of a subject's curve that a target may summarise.
STATISTICS = ("level", "cmax", "tmax", "auc0_28")
#: How a target summarises them over subjects.
SUMMARIES = ("median", "quantile", "geometric_mean")


@dataclass(frozen=True)
class Target:
    """One published summary statistic.

    Attributes:
        statistic: ``level`` (the observable at ``day``), ``cmax``, ``tmax`` or ``auc0_28``.
        summary: ``median``, ``quantile`` (with ``q``) or ``geometric_mean``.
        value: the reported value (observable unit; d for ``tmax``; unit x d for ``auc0_28``).
        day: the day of a ``level`` (d after infusion).
        q: the quantile of a ``quantile`` summary (0.25 and 0.75 for an IQR).
        n: subjects behind the statistic (the weight of the target).
    """

    statistic: str
    summary: str
    value: float
    day: float | None = None
    q: float = 0.5
    n: int = 1

    def __post_init__(self):
        if self.statistic not in STATISTICS:
            raise CartpkError(
                f"target statistic must be one of {STATISTICS}, got {self.statistic!r}"
            )
        if self.summary not in SUMMARIES:
            raise CartpkError(f"target summary must be one of {SUMMARIES}, got {self.summary!r}")
        if not (np.isfinite(self.value) and self.value > 0):
            raise CartpkError(f"target {self.label}: value must be a positive number")
        if (self.statistic == "level") != (self.day is not None):
            raise CartpkError(f"target {self.label}: a day is needed for (and only for) a level")
        if not 0 < self.q < 1:
            raise CartpkError(f"target {self.label}: q must be in (0, 1)")

    @property
    def label(self) -> str:
        what = f"level day {self.day:g}" if self.day is not None else self.statistic
        how = f"q{self.q:g}" if self.summary == "quantile" else self.summary
        return f"{what} {how}"


@dataclass(frozen=True)
class SummaryStatistics(AbstractStrategy):
    """Typical values (and optionally omegas) fitted to published summary statistics.

    With :func:`~cartpk.estimation.fit`, ``data`` is the sequence of :class:`Target` statistics;
    the typical values not in ``fixed`` are estimated, starting at ``initial`` (default: the
    model's defaults); ``variability`` gives the omegas (SD of the log) of the virtual trial, and
    the observable is that of DVID 1 in ``observations`` (default: the model's first).

    Args:
        estimate_omegas: parameters whose omega is estimated too (the others stay fixed).
        regimen: doses (``None`` for dose-independent models such as Multiphasic).
        n_virtual: virtual subjects (fixed draws).
        seed: seed of the draws.
        horizon_days: end of the simulated time grid (default: the latest target day or 28 d).
        max_iter: BFGS step limit.
    """

    estimate_omegas: tuple[str, ...] = ()
    regimen: Regimen | None = None
    n_virtual: int = 500
    seed: int = 0
    horizon_days: float | None = None
    max_iter: int = 200

    def __post_init__(self):
        if not (isinstance(self.n_virtual, int) and self.n_virtual >= 2):
            raise CartpkError(f"n_virtual must be an integer >= 2, got {self.n_virtual!r}")
        if not (isinstance(self.max_iter, int) and self.max_iter >= 1):
            raise CartpkError(f"max_iter must be a positive integer, got {self.max_iter!r}")

    def run(self, model, data, settings: Settings, progress=None) -> SummaryFit:
        settings.unsupported("SummaryStatistics", "block", "covariates", "compartments")
        targets = list(data)
        if not targets or not all(isinstance(t, Target) for t in targets):
            raise CartpkError("SummaryStatistics fits need data as a non-empty list of Target")
        observations = dict(settings.observations or {})
        if len(observations) > 1:
            raise CartpkError("SummaryStatistics fits one observable: give one observation")
        observable = (
            next(iter(observations.values())).observable
            if observations
            else model_observables(model)[0]
        )
        fixed = settings.fixed or {}
        initial = {**model.default_params(), **dict(settings.initial or {})}
        if isinstance(fixed, Mapping):
            initial.update({k: v for k, v in fixed.items() if v is not None})
        names = model.parameter_set.names
        estimate = [n for n in names if n not in set(fixed)]
        variability = settings.variability or {}
        if not isinstance(variability, Mapping):
            raise CartpkError("SummaryStatistics needs variability as parameter -> omega")
        say = progress or (lambda line: None)
        say(
            f"summary-statistic fit of {', '.join(estimate)} to {len(targets)} targets "
            f"({self.n_virtual} virtual subjects)"
        )
        return _fit_summary_statistics(
            model,
            targets,
            estimate,
            variability,
            estimate_omegas=self.estimate_omegas,
            observable=observable,
            regimen=self.regimen,
            params=initial,
            n_virtual=self.n_virtual,
            seed=self.seed,
            horizon_days=self.horizon_days,
            max_steps=self.max_iter,
        )


@dataclass
class SummaryFit:
    """Result of a :class:`SummaryStatistics` fit.

    Attributes:
        estimates: parameter -> typical value; ``omega_<name>`` -> SD of its log.
        table: one row per target: reported value, fitted value and their ratio.
        loss: the weighted sum of squared log errors at the optimum.
        converged: whether BFGS met its tolerance within the step limit.
    """

    estimates: dict[str, float]
    table: pd.DataFrame
    loss: float
    converged: bool


class _Trial(eqx.Module):
    """The virtual trial: its summaries as a differentiable function of the free parameters."""

    model: AbstractModel
    base: dict
    z: jax.Array
    varied: tuple[str, ...] = eqx.field(static=True)
    typical: tuple[str, ...] = eqx.field(static=True)
    free_omegas: tuple[str, ...] = eqx.field(static=True)
    fixed_omegas: tuple[tuple[str, float], ...] = eqx.field(static=True)
    observable: str = eqx.field(static=True)
    times: tuple[float, ...] = eqx.field(static=True)
    targets: tuple[Target, ...] = eqx.field(static=True)
    regimen: Regimen | None = eqx.field(static=True)

    def unpack(self, x):
        n = len(self.typical)
        theta = {k: jnp.exp(x[i]) for i, k in enumerate(self.typical)}
        omega = dict(self.fixed_omegas)
        omega.update({k: jnp.exp(x[n + i]) for i, k in enumerate(self.free_omegas)})
        return theta, omega

    def summaries(self, x):
        theta, omega = self.unpack(x)
        params = {k: jnp.broadcast_to(v, self.z.shape[:1]) for k, v in self.base.items()}
        params.update({k: jnp.broadcast_to(v, self.z.shape[:1]) for k, v in theta.items()})
        for j, name in enumerate(self.varied):
            params[name] = params[name] * jnp.exp(omega[name] * self.z[:, j])
        times = np.asarray(self.times)

        def curve(p):
            return simulate(self.model, p, self.regimen, times).observables[self.observable]

        curves = jax.vmap(curve)(params)
        stats = subject_statistics(curves, times)
        out = []
        for target in self.targets:
            if target.statistic == "level":
                values = curves[:, int(np.flatnonzero(np.isclose(times, target.day))[0])]
            else:
                values = stats[target.statistic]
            if target.summary == "geometric_mean":
                out.append(jnp.exp(jnp.mean(jnp.log(values))))
            else:
                q = 0.5 if target.summary == "median" else target.q
                out.append(jnp.quantile(values, q))
        return jnp.stack(out)

    def loss(self, x, weights):
        observed = jnp.asarray([t.value for t in self.targets])
        return jnp.sum(weights * (jnp.log(self.summaries(x)) - jnp.log(observed)) ** 2)


def subject_statistics(curves, times: np.ndarray) -> dict:
    """Cmax, Tmax (parabolic refinement of ln C at the grid maximum) and AUC0-28 per subject.

    Args:
        curves: ``(subjects, times)`` levels, any concentration unit.
        times: output times (d), evenly spaced near the peaks.

    Returns:
        ``cmax`` (the curves' unit), ``tmax`` (d) and ``auc0_28`` (unit x d), one per subject;
        differentiable in the curves (``jax.numpy``).
    """
    after = times >= 0
    c, t = curves[:, after], times[after]
    k = jnp.clip(jax.lax.stop_gradient(jnp.argmax(c, axis=1)), 1, len(t) - 2)
    logs = jnp.log(jnp.maximum(c, 1e-300))
    y0, y1, y2 = (jnp.take_along_axis(logs, (k + d)[:, None], 1)[:, 0] for d in (-1, 0, 1))
    h = np.diff(t).mean()  # the refinement assumes an even grid near the peak
    curvature = y0 - 2 * y1 + y2
    shift = jnp.where(curvature < 0, 0.5 * (y0 - y2) / jnp.where(curvature < 0, curvature, -1.0), 0)
    tmax = jnp.asarray(t)[k] + h * jnp.clip(shift, -0.5, 0.5)
    window = (t >= 0) & (t <= 28)
    return {
        "cmax": jnp.max(c, axis=1),
        "tmax": tmax,
        "auc0_28": jnp.trapezoid(c[:, window], t[window], axis=1),
    }


def _trial(
    model,
    targets,
    estimate,
    variability,
    estimate_omegas,
    observable,
    regimen,
    params,
    n_virtual,
    seed,
    horizon_days,
):
    base = dict(model.default_params(**(params or {})))
    unknown = [k for k in [*estimate, *variability] if k not in base]
    if unknown:
        raise CartpkError(f"unknown parameter(s) of {type(model).__name__}: {', '.join(unknown)}")
    missing = [k for k in estimate_omegas if k not in variability]
    if missing:
        raise CartpkError(f"no starting omega for: {', '.join(missing)}")
    days = [t.day for t in targets if t.day is not None]
    horizon = horizon_days or max([28.0, *days])
    times = np.unique(np.concatenate([np.arange(0.0, horizon + 1e-9, 0.25), days]))
    varied = tuple(variability)
    trial = _Trial(
        model=model,
        base={k: jnp.asarray(v) for k, v in base.items()},
        z=jax.random.normal(jax.random.key(seed), (n_virtual, len(varied))),
        varied=varied,
        typical=tuple(estimate),
        free_omegas=tuple(estimate_omegas),
        fixed_omegas=tuple((k, float(v)) for k, v in variability.items()),
        observable=observable,
        times=tuple(times.tolist()),
        targets=tuple(targets),
        regimen=regimen,
    )
    x0 = jnp.log(
        jnp.asarray(
            [float(base[k]) for k in estimate] + [float(variability[k]) for k in estimate_omegas]
        )
    )
    return trial, x0


def simulate_summaries(
    model: AbstractModel,
    targets: Sequence[Target],
    variability: Mapping[str, float],
    *,
    params: Mapping[str, float] | None = None,
    observable: str = "blood_copies_per_ug",
    regimen: Regimen | None = None,
    n_virtual: int = 500,
    seed: int = 0,
    horizon_days: float | None = None,
) -> np.ndarray:
    """The targets' statistics (their ``value`` is ignored) of a virtual trial with typical
    values ``params`` and log-normal variability ``variability`` (parameter -> omega)."""
    trial, x0 = _trial(
        model,
        targets,
        (),
        variability,
        (),
        observable,
        regimen,
        params,
        n_virtual,
        seed,
        horizon_days,
    )
    return np.asarray(trial.summaries(x0))


def _fit_summary_statistics(
    model: AbstractModel,
    targets: Sequence[Target],
    estimate: Sequence[str],
    variability: Mapping[str, float],
    *,
    estimate_omegas: Sequence[str] = (),
    observable: str = "blood_copies_per_ug",
    regimen: Regimen | None = None,
    params: Mapping[str, float] | None = None,
    n_virtual: int = 500,
    seed: int = 0,
    horizon_days: float | None = None,
    max_steps: int = 200,
) -> SummaryFit:
    """Fit typical values (and optionally omegas) to published summary statistics.

    Args:
        model: the model (e.g. :class:`~cartpk.Multiphasic`).
        targets: the reported statistics.
        estimate: parameters whose typical values are fitted (starting at ``params``).
        variability: parameter -> omega (SD of the log) of the virtual trial; omegas not in
            ``estimate_omegas`` stay fixed at these values.
        estimate_omegas: parameters whose omega is fitted too.
        observable: the model observable the statistics describe.
        regimen: doses (``None`` for dose-independent models such as Multiphasic).
        params: typical values of all parameters (default: the model's defaults).
        n_virtual: virtual subjects (fixed draws).
        seed: seed of the draws.
        horizon_days: end of the simulated time grid (default: the latest target day or 28 d).
        max_steps: BFGS step limit.

    Returns:
        A :class:`SummaryFit`.
    """
    trial, x0 = _trial(
        model,
        targets,
        estimate,
        variability,
        estimate_omegas,
        observable,
        regimen,
        params,
        n_virtual,
        seed,
        horizon_days,
    )
    weights = jnp.asarray([float(t.n) for t in targets])
    weights = weights / weights.sum()
    solver = optx.BFGS(rtol=1e-8, atol=1e-10)
    solution = optx.minimise(
        lambda x, _: trial.loss(x, weights), solver, x0, max_steps=max_steps, throw=False
    )
    x = solution.value
    theta, omega = trial.unpack(x)
    fitted = np.asarray(trial.summaries(x))
    table = pd.DataFrame(
        {
            "target": [t.label for t in targets],
            "n": [t.n for t in targets],
            "reported": [t.value for t in targets],
            "fitted": fitted,
            "ratio": fitted / np.asarray([t.value for t in targets]),
        }
    )
    estimates = {k: float(v) for k, v in theta.items()}
    estimates.update({f"omega_{k}": float(omega[k]) for k in estimate_omegas})
    return SummaryFit(
        estimates=estimates,
        table=table,
        loss=float(trial.loss(x, weights)),
        converged=bool(solution.result == optx.RESULTS.successful),
    )
