"""Population (nonlinear mixed-effects) fits: FOCE-I or Laplace, with standard errors.

:class:`Population` is the strategy object passed to :func:`~cartpk.estimation.fit`. The fit
minimises the OFV (``-2 log L``, :mod:`.objective`) with BFGS, then computes the covariance of the
estimates from the Hessian ``R`` of the OFV (central differences of its exact gradient):
``Cov = 2 R^-1``; the sandwich estimator is ``R^-1 S R^-1`` with ``S = sum_i g_i g_i^T`` (``g_i``
the gradient of subject ``i``'s contribution).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import diffrax as dfx
import numpy as np

from ..errors import CartpkError, ConvergenceError
from ..progress import step
from ..simulate import status_message
from .objective import METHODS, Spec
from .outer import Evaluator, Outcome, fallback_solver, minimise, scaling
from .problem import Problem
from .strategy import AbstractStrategy, Settings

SE_METHODS = ("hessian", "sandwich", "none")


@dataclass(frozen=True)
class Population(AbstractStrategy):
    """Nonlinear mixed-effects estimation.

    Args:
        method: ``"foce"`` (FOCE with interaction) or ``"laplace"``.
        max_iter: most OFV evaluations of the outer optimisation.
        tol: convergence tolerance: change of every parameter between accepted steps, in units of
            its approximate standard error, and change of the OFV.
        se: ``"sandwich"`` (``R^-1 S R^-1``, NONMEM's ``$COV`` default), ``"hessian"``
            (``2 R^-1``, NONMEM's ``MATRIX=R``) or ``"none"``.
        fd_step: central-difference step of the covariance step, in approximate standard errors
            (not smaller: at ``rtol=1e-6`` the gradient is noisy at about 1e-3).
        inner_tol: tolerance of the random-effect searches (see :class:`.objective.Spec`).
    """

    method: str = "foce"
    max_iter: int = 500
    tol: float = 1e-3
    se: str = "sandwich"
    fd_step: float = 0.05
    inner_tol: float = 1e-5

    def __post_init__(self):
        if self.method not in METHODS:
            raise CartpkError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.se not in SE_METHODS:
            raise CartpkError(f"se must be one of {', '.join(SE_METHODS)}, got {self.se!r}")
        if not (isinstance(self.max_iter, int) and self.max_iter >= 1):
            raise CartpkError(f"max_iter must be a positive integer, got {self.max_iter!r}")

    def run(self, model, data, settings: Settings, progress=None):
        problem = settings.problem(model, data)
        spec = settings.spec(problem.layout, method=self.method, inner_tol=self.inner_tol)
        return run_population(problem, self, spec, progress=progress)


@dataclass
class Covariance:
    """Covariance of the internal parameters ``x`` (labels x labels; zero rows for fixed ones)."""

    hessian: np.ndarray | None  # 2 R^-1
    sandwich: np.ndarray | None  # R^-1 S R^-1
    r_matrix: np.ndarray | None  # Hessian of the OFV in the scaled coordinates s
    message: str  # "ok" or why the covariance is unavailable
    condition_number: float | None = None


def run_population(
    problem: Problem,
    strategy: Population,
    spec: Spec,
    *,
    progress: Callable[[str], None] | None = None,
):
    """Fit ``problem`` and return a :class:`~.results.PopulationResult`."""
    from .results import PopulationResult

    started = time.perf_counter()
    evaluator = Evaluator(spec, problem.arrays)
    n = problem.arrays.n_subjects
    k = len(problem.layout.etas)
    weights = np.ones(n)
    z0 = np.zeros((n, k))
    say = progress or (lambda line: None)
    say(
        f"fitting {type(problem.layout.model).__name__} to {n} subjects "
        f"({int(np.asarray(problem.arrays.mask).sum())} observations) by "
        f"{strategy.method.upper()}: {problem.layout.n_free} parameters"
    )
    with step(progress, "compiling the model and evaluating the OFV at the initial estimates"):
        V, first = scaling(evaluator, problem.x0, problem.free_index, weights, z0)
    check_finite(problem, first)
    with step(progress, "minimising the OFV"):
        outcome = minimise(
            evaluator,
            problem.x0[None],
            V[None],
            weights[None],
            first["z"][None],
            max_iter=strategy.max_iter,
            tol=strategy.tol,
            progress=say,
        )
    x = outcome.x[0]
    final = evaluate_at(evaluator, x, V, weights, outcome.z[0])
    if not final["ofv"] <= outcome.ofv[0] + strategy.tol * max(1.0, abs(outcome.ofv[0])):
        # an EBE search warm-started at the last accepted point found a worse mode for some
        # subjects: keep each subject's better mode, so that every report shows one best point
        cold = evaluate_at(evaluator, x, V, weights, np.zeros_like(z0))
        final = better_modes(final, cold, weights)
    covariance = Covariance(None, None, None, "not requested")
    if strategy.se != "none" and np.isfinite(final["ofv"]):
        with step(progress, "covariance step (R by central differences of the OFV gradient)"):
            covariance = covariance_step(evaluator, x, V, weights, final, strategy.fd_step)
    return PopulationResult(
        problem=problem,
        spec=spec,
        strategy=strategy,
        x=x,
        V=V,
        ofv=float(final["ofv"]),
        ofv_i=final["ofv_i"],
        grad=final["grad"],
        grad_i=final["grad_i"],
        z=final["z"],
        g=final["g"],
        jac=final["jac"],
        ebe_converged=final["ok"].astype(bool),
        reasons=[
            subject_reason(final, i, spec.solver) or _fallback_note(evaluator, i) for i in range(n)
        ],
        converged=bool(outcome.converged[0]),
        message=outcome.message[0],
        iterations=int(outcome.steps[0]),
        evaluations=evaluator.evaluations,
        covariance=covariance,
        seconds=time.perf_counter() - started,
        extra={"history": outcome.history[0]},
    )


def better_modes(a: dict, b: dict, weights) -> dict:
    """Per subject, the evaluation (of two at the same point) with the lower contribution."""
    take_b = ~(a["ofv_i"] <= b["ofv_i"])
    out = {
        k: np.where(take_b.reshape((-1,) + (1,) * (v.ndim - 1)), b[k], v)
        for k, v in a.items()
        if k not in ("ofv", "grad")
    }
    finite = np.all(np.isfinite(out["ofv_i"]))
    out["ofv"] = float(weights @ out["ofv_i"]) if finite else np.inf
    out["grad"] = weights @ out["grad_i"]
    return out


def evaluate_at(evaluator: Evaluator, x, V, weights, z0) -> dict:
    """One evaluation at ``x`` (unbatched result)."""
    m = V.shape[1]
    out = evaluator(x[None], V[None], np.zeros((1, m)), weights[None], z0[None])
    return {k: v[0] for k, v in out.items()}


def _fallback_note(evaluator: Evaluator, i: int) -> str:
    """What the fallback solver did for subject ``i`` during the fit ("" if nothing)."""
    if not evaluator.fallbacks.get(i, 0):
        return ""
    failed, used = (type(e.solver).__name__ for e in (evaluator.spec, evaluator.fallback))
    return f"{failed} failed on trial points of the fit, {used} solved them"


def check_finite(problem: Problem, out: dict) -> None:
    """Raise if some subjects' contributions are not finite at the initial estimates, naming
    them and why."""
    bad = np.flatnonzero(~np.isfinite(out["ofv_i"]))
    if bad.size:
        by_reason: dict[str, list[str]] = {}
        for i in bad:
            by_reason.setdefault(subject_reason(out, i), []).append(str(problem.ids[i]))
        reasons = "; ".join(
            f"ID {', '.join(ids[:10])}{' ...' if len(ids) > 10 else ''}: {reason}"
            for reason, ids in by_reason.items()
        )
        raise CartpkError(
            f"the objective is not finite at the initial estimates for {bad.size} subject(s) "
            f"({reasons}); change the initial values"
        )


def subject_reason(out: dict, i: int, solver: dfx.AbstractSolver | None = None) -> str:
    """Why subject ``i``'s evaluation in ``out`` (of :class:`Evaluator`) is not plain, or ""."""
    failure = status_message(int(out["status"][i]))
    if failure:
        return f"the ODE solve failed: {failure}"
    if not np.isfinite(out["ofv_i"][i]):
        return "a prediction is not positive where a log-normal or proportional error needs it"
    if not out["ok"][i]:
        return "the EBE search did not converge"
    if out["fallback"][i] and solver is not None:
        used = type(fallback_solver(solver)).__name__
        return f"solved by {used} after {type(solver).__name__} failed"
    return ""


def covariance_step(evaluator: Evaluator, x, V, weights, final: dict, step: float) -> Covariance:
    """``R`` by central differences of the exact gradient in the scaled coordinates (all
    ``2 m`` points in one batched evaluation)."""
    m = V.shape[1]
    steps = np.concatenate([np.eye(m), -np.eye(m)]) * step
    batch = 2 * m
    out = evaluator(
        np.broadcast_to(x, (batch, x.size)),
        np.broadcast_to(V, (batch,) + V.shape),
        steps,
        np.broadcast_to(weights, (batch, weights.size)),
        np.broadcast_to(final["z"], (batch,) + final["z"].shape),
    )
    columns = (out["grad"][:m] - out["grad"][m:]) / (2 * step)
    r_matrix = columns.T
    r_matrix = 0.5 * (r_matrix + r_matrix.T)
    if not np.all(np.isfinite(r_matrix)):
        return Covariance(None, None, r_matrix, "the R matrix is not finite")
    eigenvalues = np.linalg.eigvalsh(r_matrix)
    if eigenvalues[0] <= 0:
        return Covariance(
            None,
            None,
            r_matrix,
            "the R matrix is not positive definite (smallest eigenvalue "
            f"{eigenvalues[0]:.3g}): some parameters are not identifiable from these data",
        )
    r_inv = np.linalg.inv(r_matrix)
    g = final["grad_i"] * np.sqrt(weights)[:, None]
    s_matrix = g.T @ g
    hessian = V @ (2 * r_inv) @ V.T
    sandwich = V @ (r_inv @ s_matrix @ r_inv) @ V.T
    return Covariance(hessian, sandwich, r_matrix, "ok", float(eigenvalues[-1] / eigenvalues[0]))


def raise_if_not_converged(result) -> None:
    """Raise :class:`ConvergenceError` for a fit that did not converge, naming its best point."""
    if result.converged:
        return
    table = result.estimates
    best = ", ".join(f"{r.parameter}={r.estimate:.4g}" for r in table.itertuples())
    raise ConvergenceError(
        f"the fit did not converge ({result.message}); best point reached: OFV "
        f"{result.ofv:.4f} at {best}"
    )


__all__ = ["ConvergenceError", "Covariance", "Outcome", "Population", "run_population"]
