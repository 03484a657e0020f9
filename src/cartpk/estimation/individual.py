"""Individual fits: maximum likelihood (or MAP with priors) for each subject separately.

The objective of subject ``i`` over its free typical values ``u`` (unconstrained scale) and free
residual SDs (log scale) is

    J_i(u) = sum_j -2 log p(y_ij | u)  +  sum_k ((u_k - m_k) / s_k)^2

where the second sum (MAP) runs over parameters given a prior ``(m_k, s_k)`` (typical value and
SD on the unconstrained scale). Every subject is fitted from ``starts`` starting points (the
initial values and random perturbations of them), all at once with ``vmap``; the best converged
one is kept. Standard errors: ``Cov(u) = 2 H^-1`` with ``H`` the Hessian of ``J_i``.

The summary table (:attr:`IndividualResult.estimates`) is the standard two-stage one: the
typical value is the back-transformed mean of the individual estimates on the unconstrained
scale, ``omega_<name>`` their SD.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pandas as pd

from ..errors import CartpkError
from ..progress import step
from .bfgs import TrustRegionBFGS
from .objective import Spec, data_terms, forward_gradient, predictions, residual_sd
from .outer import RUNTIME_ERRORS, fallback_solver
from .problem import Problem, SubjectArrays
from .results import ESTIMATE_COLUMNS, Z95
from .strategy import AbstractStrategy, Settings


@dataclass(frozen=True)
class Individual(AbstractStrategy):
    """Per-subject ML/MAP estimation with multi-start.

    Args:
        starts: starting points per subject (the first is the initial values).
        spread: SD of the random perturbation of the other starts (unconstrained scale).
        prior: parameter -> ``(typical value, omega)`` (natural scale, SD on the unconstrained
            scale) for MAP estimation; or a population fit result, whose typical values,
            omegas and residual SDs are then used (residual SDs fixed: the EBEs).
        seed: random seed of the starts.
        tol: convergence tolerance (unconstrained scale and objective).
        max_steps: most BFGS steps per start.
    """

    starts: int = 8
    spread: float = 0.5
    prior: Mapping[str, tuple[float, float]] | object | None = None
    seed: int = 0
    tol: float = 1e-8
    max_steps: int = 500

    def __post_init__(self):
        if not (isinstance(self.starts, int) and self.starts >= 1):
            raise CartpkError(f"starts must be a positive integer, got {self.starts!r}")

    def run(self, model, data, settings: Settings, progress=None) -> IndividualResult:
        problem = settings.problem(model, data)
        return run_individual(problem, self, settings.spec(problem.layout), progress=progress)


@dataclass(frozen=True)
class IndividualLayout:
    """Which elements of the problem's ``x`` each subject estimates, and the priors."""

    free: tuple[int, ...]  # label indices estimated per subject
    prior_index: tuple[int, ...]  # label indices with a prior
    prior_sd: tuple[float, ...]


def _x_of(layout: IndividualLayout, x_base, v):
    return x_base.at[jnp.asarray(layout.free, dtype=int)].set(v)


def individual_objective(spec: Spec, ilayout: IndividualLayout, v, x_base, prior_mean, d):
    """``J_i(v)`` for one subject (``+inf`` where the solve fails)."""
    layout = spec.layout
    x = _x_of(ilayout, x_base, v)
    # covariate effects do not apply to a subject's own parameters; regressors do
    n_effects = len(layout.effects)
    phi = layout.typical(x, jnp.zeros_like(d.design).at[n_effects:].set(d.design[n_effects:]))
    g, status = predictions(spec, phi, d)
    sd = residual_sd(spec, g, layout.sigmas(x), d)
    value = jnp.sum(data_terms(g, sd, d))
    if ilayout.prior_index:
        u = x[jnp.asarray(ilayout.prior_index)]
        value = value + jnp.sum(((u - prior_mean) / jnp.asarray(ilayout.prior_sd)) ** 2)
    return jnp.where((status == 0) & jnp.isfinite(value), value, jnp.inf)


@eqx.filter_jit
def _fit_all(spec, ilayout, strategy_tol, max_steps, starts, x_base, prior_mean, arrays):
    """Minimise every (subject, start) pair; then the Hessian at each subject's best start."""

    def one(v0, d):
        objective = forward_gradient(
            lambda v, args: individual_objective(spec, ilayout, v, x_base, prior_mean, args)
        )
        solution = optx.minimise(
            objective,
            TrustRegionBFGS(rtol=strategy_tol, atol=strategy_tol),
            v0,
            args=d,
            max_steps=max_steps,
            throw=False,
        )
        value = individual_objective(spec, ilayout, solution.value, x_base, prior_mean, d)
        return solution.value, value, solution.result == optx.RESULTS.successful

    def subject(v0s, d):
        values_v, values, ok = jax.vmap(lambda v0: one(v0, d))(v0s)
        score = jnp.where(ok & jnp.isfinite(values), values, jnp.inf)
        best = jnp.argmin(score)
        v = values_v[best]
        hessian = jax.jacfwd(
            jax.jacfwd(lambda v: individual_objective(spec, ilayout, v, x_base, prior_mean, d))
        )(v)
        return v, values[best], ok[best], jnp.sum(ok), hessian

    return jax.vmap(subject)(starts, arrays)


@dataclass(eq=False)
class IndividualResult:
    """Per-subject estimates (``table``) and their two-stage summary (``estimates``)."""

    problem: Problem
    spec: Spec
    strategy: Individual
    ilayout: IndividualLayout
    v: np.ndarray  # (P, q) estimates on the internal scale
    objective: np.ndarray  # (P,)
    converged_each: np.ndarray  # (P,) best start converged to a non-degenerate optimum
    notes: list[str]  # (P,) why not ("" where it did)
    starts_converged: np.ndarray  # (P,)
    covariance: np.ndarray  # (P, q, q) internal scale (nan where the Hessian is singular)
    seconds: float
    extra: dict = field(default_factory=dict)

    @property
    def converged(self) -> bool:
        return bool(np.all(self.converged_each))

    @property
    def message(self) -> str:
        failed = [str(self.problem.ids[i]) for i in np.flatnonzero(~self.converged_each)]
        if not failed:
            return "converged"
        return f"no start converged to a usable optimum for ID(s) {', '.join(failed[:10])}"

    @property
    def ofv(self) -> float:
        return float(np.sum(self.objective))

    def _names(self) -> list[str]:
        layout = self.problem.layout
        return [layout.label_name(layout.labels[i]) for i in self.ilayout.free]

    def _natural(self, name: str, value):
        layout = self.problem.layout
        return np.asarray(layout.from_scaled(name, jnp.asarray(value)))

    @cached_property
    def table(self) -> pd.DataFrame:
        """One row per subject: each estimate with its SE and 95 % CI, objective, convergence."""
        out = {"ID": list(self.problem.ids)}
        se_internal = np.sqrt(np.clip(np.diagonal(self.covariance, axis1=1, axis2=2), 0, None))
        for j, name in enumerate(self._names()):
            v = self.v[:, j]
            estimate = self._natural(name, v)
            _, slope = jax.jvp(
                lambda u, name=name: jnp.asarray(self.problem.layout.from_scaled(name, u)),
                (jnp.asarray(v),),
                (jnp.ones_like(jnp.asarray(v)),),
            )
            out[name] = estimate
            out[f"{name}_se"] = np.abs(np.asarray(slope)) * se_internal[:, j]
            out[f"{name}_ci_low"] = self._natural(name, v - Z95 * se_internal[:, j])
            out[f"{name}_ci_high"] = self._natural(name, v + Z95 * se_internal[:, j])
        out["objective"] = self.objective
        out["converged"] = self.converged_each
        out["note"] = self.notes
        out["starts_converged"] = self.starts_converged
        out["n_obs"] = np.asarray(self.problem.arrays.mask).sum(axis=1)
        return pd.DataFrame(out)

    @property
    def individual(self) -> pd.DataFrame:
        return self.table

    @cached_property
    def estimates(self) -> pd.DataFrame:
        """Standard two-stage summary: mean and SD of the individual internal estimates."""
        rows = []
        n = len(self.v)
        ok = self.converged_each
        for j, name in enumerate(self._names()):
            v = self.v[ok, j]
            mean, sd = float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else np.nan
            se_mean = sd / np.sqrt(len(v))
            estimate = float(self._natural(name, mean))
            _, slope = jax.jvp(
                lambda u, name=name: jnp.asarray(self.problem.layout.from_scaled(name, u)),
                (jnp.asarray(mean),),
                (jnp.asarray(1.0),),
            )
            se = abs(float(slope)) * se_mean
            rows.append(
                dict(
                    parameter=name,
                    estimate=estimate,
                    se=se,
                    rse_percent=100 * se / abs(estimate) if estimate else np.nan,
                    ci_low=float(self._natural(name, mean - Z95 * se_mean)),
                    ci_high=float(self._natural(name, mean + Z95 * se_mean)),
                )
            )
            if name in self.problem.layout.names:
                se_sd = sd / np.sqrt(2 * (len(v) - 1)) if len(v) > 1 else np.nan
                rows.append(
                    dict(
                        parameter=f"omega_{name}",
                        estimate=sd,
                        se=se_sd,
                        rse_percent=100 * se_sd / sd if sd else np.nan,
                        ci_low=sd * np.exp(-Z95 * se_sd / sd) if sd else np.nan,
                        ci_high=sd * np.exp(Z95 * se_sd / sd) if sd else np.nan,
                    )
                )
        del n
        return pd.DataFrame(rows, columns=ESTIMATE_COLUMNS)

    def summary(self) -> str:
        lines = [
            f"individual fits of {type(self.problem.layout.model).__name__} "
            f"({self.strategy.starts} starts per subject, {self.seconds:.0f} s): {self.message}",
            self.estimates.to_string(index=False, float_format=lambda v: f"{v:.4g}"),
        ]
        return "\n".join(lines)


def run_individual(
    problem: Problem,
    strategy: Individual,
    spec: Spec,
    *,
    progress: Callable[[str], None] | None = None,
) -> IndividualResult:
    started = time.perf_counter()
    layout = problem.layout
    say = progress or (lambda line: None)
    free = tuple(
        i
        for i, (label, f) in enumerate(zip(layout.labels, layout.free, strict=True))
        if f and label[0] in ("theta", "sigma")
    )
    if not free:
        raise CartpkError("individual fits: no typical value or residual SD to estimate")
    x_base = np.array(problem.x0)
    prior_index, prior_sd, prior_mean = [], [], []
    prior = strategy.prior
    if prior is not None and hasattr(prior, "x") and hasattr(prior, "layout"):
        # a population result: its estimates become starts, priors and fixed residual SDs
        pop_layout = prior.layout
        chol = np.asarray(pop_layout.omega_chol(jnp.asarray(prior.x)))
        omega = np.sqrt(np.sum(chol**2, axis=1))
        for label in layout.labels:
            if label in pop_layout.labels:
                x_base[layout.index(*label)] = prior.x[pop_layout.index(*label)]
        for k, name in enumerate(pop_layout.etas):
            if ("theta", name) in layout.labels:
                i = layout.index("theta", name)
                if i in free:
                    prior_index.append(i)
                    prior_sd.append(float(omega[k]))
                    prior_mean.append(float(x_base[i]))
        free = tuple(i for i in free if layout.labels[i][0] == "theta")
    elif prior is not None:
        for name, (value, sd) in dict(prior).items():
            if ("theta", name) not in layout.labels:
                raise CartpkError(f"prior: unknown parameter {name!r}")
            spec_p = layout.model.parameter_set.specs[name]
            i = layout.index("theta", name)
            prior_index.append(i)
            prior_sd.append(float(sd))
            prior_mean.append(float(spec_p.to_unconstrained(jnp.asarray(float(value)))))
    ilayout = IndividualLayout(free, tuple(prior_index), tuple(prior_sd))
    n = problem.arrays.n_subjects
    rng = np.random.default_rng(strategy.seed)
    v0 = x_base[list(free)]
    starts = np.broadcast_to(v0, (n, strategy.starts, len(free))).copy()
    starts[:, 1:, :] += strategy.spread * rng.standard_normal((n, strategy.starts - 1, len(free)))
    say(f"individual fits of {n} subjects x {strategy.starts} starts, {len(free)} parameters each")
    inputs = (
        ilayout,
        strategy.tol,
        strategy.max_steps,
        jnp.asarray(starts),
        jnp.asarray(x_base),
        jnp.asarray(prior_mean, dtype=float),
        problem.arrays,
    )
    try:
        with step(progress, "compiling the model and fitting every subject"):
            v, objective, ok, n_ok, hessian = _fit_all(spec, *inputs)
    except RUNTIME_ERRORS:
        fallback = dataclasses.replace(spec, solver=fallback_solver(spec.solver))
        say(
            f"{type(spec.solver).__name__} failed on a trial point; "
            f"fitting again with {type(fallback.solver).__name__}"
        )
        with step(progress, f"fitting every subject with {type(fallback.solver).__name__}"):
            v, objective, ok, n_ok, hessian = _fit_all(fallback, *inputs)
    v, hessian = np.asarray(v), np.asarray(hessian)
    covariance = np.full_like(hessian, np.nan)
    notes = []
    for i in range(n):
        h = 0.5 * (hessian[i] + hessian[i].T)
        if np.all(np.isfinite(h)) and np.linalg.eigvalsh(h)[0] > 0:
            covariance[i] = 2 * np.linalg.inv(h)
        notes.append(_degenerate(layout, free, v[i], v0, bool(ok[i]), covariance[i]))
    ok = np.asarray(ok, dtype=bool) & np.array([not note for note in notes])
    return IndividualResult(
        problem=problem,
        spec=spec,
        strategy=strategy,
        ilayout=ilayout,
        v=np.asarray(v),
        objective=np.asarray(objective),
        converged_each=ok,
        notes=notes,
        starts_converged=np.asarray(n_ok),
        covariance=covariance,
        seconds=time.perf_counter() - started,
    )


#: a residual SD below this (in its error model's units) has collapsed onto the data
SIGMA_FLOOR = 1e-8
#: an estimate this far from its start on the unconstrained scale (e^23 = 1e10-fold for a
#: log-transformed parameter) has run off: the subject's data do not determine it
RUNAWAY = 23.0


def _degenerate(layout, free, v, v0, converged: bool, covariance) -> str:
    """Why a subject's optimum cannot be reported as converged ("" if it can)."""
    if not converged:
        return "no start converged"
    reasons = []
    for j, i in enumerate(free):
        label = layout.labels[i]
        name = layout.label_name(label)
        value = float(layout.from_scaled(name, jnp.asarray(v[j])))
        if label[0] == "sigma" and value < SIGMA_FLOOR:
            reasons.append(f"residual SD {name} = {value:.2g} has collapsed onto the data")
        elif abs(v[j] - v0[j]) > RUNAWAY:
            reasons.append(f"{name} = {value:.3g} ran off from its start")
    if reasons:
        return (
            "degenerate optimum: "
            + "; ".join(reasons)
            + " (too few observations for the parameters?)"
        )
    if not np.all(np.isfinite(covariance)):
        return "the Hessian is not positive definite at the optimum (no standard errors)"
    return ""


def _subject_slice(arrays: SubjectArrays, i: int) -> SubjectArrays:
    return jax.tree.map(lambda a: a[i], arrays)
