"""The outer optimisation: BFGS (optimistix) on the OFV, for one fit or a batch of fits.

The OFV and its gradient come from one compiled function (:func:`~.objective.evaluate_rows`),
called from the optimiser through a host callback. This keeps the expensive compile (ODE solves
with nested forward-mode derivatives) separate from the optimiser's own, small one, so fits,
covariance steps, profiles and bootstraps with the same structure share it.

The optimiser works on scaled coordinates ``s`` with ``x = x0 + V s``; the columns of ``V`` are
the free parameters scaled by ``1 / sqrt(R_kk)``, ``R`` the outer-product (BHHH) approximation
of the OFV Hessian at the start, so that one unit of ``s`` is about one standard error.
Convergence: successive accepted points differ by less than ``tol`` in every ``s`` (standard
errors) and in OFV; or the OFV changed by less than ``tol`` and the gradient in ``s`` is below
:data:`GRADIENT_TOL`; or no step longer than ``tol`` decreases the OFV (the trust region has
shrunk below ``tol``: the OFV's numerical noise) and the gradient is below
:data:`STALL_GRADIENT_TOL`. A search that stalls with a larger gradient has not converged.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from ..simulate import Status, status_code
from .bfgs import TrustRegionBFGS
from .objective import Spec, evaluate_chunk
from .problem import SubjectArrays

#: bounds of the scale of one ``s`` unit (internal scale units)
SCALE_RANGE = (1e-4, 0.2)
#: first-order optimality in scaled units (an OFV gradient of 2e-3 per standard error is about
#: 1e-3 standard errors from the minimum)
GRADIENT_TOL = 2e-3

#: largest gradient in scaled units at which a stalled search counts as converged (about 0.025
#: standard errors from the minimum); with many subjects the gradient's noise from the adaptive
#: ODE steps (about 1e-3 per subject-sized contribution at rtol 1e-6) can exceed GRADIENT_TOL
STALL_GRADIENT_TOL = 0.05
#: result code of a stalled search (not one of optimistix's)
_STALLED = -1


#: subjects per compiled chunk: every problem size runs through the same compiled function
CHUNK = 8


def default_workers() -> int:
    """Threads evaluating chunks concurrently (XLA releases the GIL): one per core, up to 8."""
    return max(1, min(os.cpu_count() or 1, 8))


def map_chunks(rows: int, run: Callable[[np.ndarray], dict], workers: int) -> dict:
    """Apply ``run`` to row indices in chunks of :data:`CHUNK` (the last padded by repeating its
    last row), in ``workers`` threads, and concatenate the per-row outputs."""
    padded = -(-rows // CHUNK) * CHUNK
    take = np.concatenate([np.arange(rows), np.full(padded - rows, rows - 1)])
    jobs = [take[i : i + CHUNK] for i in range(0, padded, CHUNK)]
    if workers > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(run, jobs))
    else:
        parts = [run(idx) for idx in jobs]
    return {k: np.concatenate([part[k] for part in parts])[:rows] for k in parts[0]}


def on_host_device():
    """JAX sets a default device inside host callbacks, which is part of the compilation cache
    key: setting it for direct calls as well lets them share one compile with callbacks."""
    return jax.default_device(jax.devices()[0])


#: failures a compiled evaluation raises at run time instead of returning a status: lineax's
#: check "A linear solver received non-finite input", raised from the forward-mode derivative
#: of an implicit solver's Newton iteration when a trial step leaves the model's domain
RUNTIME_ERRORS = (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError)
_ILLEGAL = status_code(Status.illegal_parameters)
_SOLVER_FAILED = status_code(Status.solver_failed)


def fallback_solver(solver: dfx.AbstractSolver) -> dfx.AbstractSolver:
    """The other solver family: explicit Tsit5 for an implicit solver, Kvaerno5 otherwise."""
    return dfx.Tsit5() if isinstance(solver, dfx.AbstractImplicitSolver) else dfx.Kvaerno5()


class _QuietSolverErrors(logging.Filter):
    """Drops JAX's log record of a callback that raised a solver check (it is handled here)."""

    def filter(self, record):
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, eqx.EquinoxRuntimeError)


_CALLBACK_LOGGER = logging.getLogger("jax._src.callback")
_CALLBACK_LOGGER.addFilter(_QuietSolverErrors())


class Evaluator:
    """The compiled OFV of one problem, callable on batches of parameter vectors from the host.

    Rows (one per subject and parameter vector) are evaluated in chunks of :data:`CHUNK`, in
    parallel threads, so any number of subjects or bootstrap replicates shares one compile.

    A chunk whose solve raises (:data:`RUNTIME_ERRORS`) or whose rows fail to solve is solved
    again with :func:`fallback_solver`; rows that fail with both get ``ofv_i = +inf`` and their
    :class:`~cartpk.simulate.Status`. ``out["fallback"]`` marks the rows the fallback solved.
    """

    def __init__(self, spec: Spec, arrays: SubjectArrays, workers: int | None = None):
        self.spec = spec
        self.fallback = dataclasses.replace(spec, solver=fallback_solver(spec.solver))
        self.host = jax.tree.map(np.asarray, arrays)
        self.n_subjects = arrays.n_subjects
        self.workers = workers or default_workers()
        self.evaluations = 0
        #: subject index -> rows the fallback solver evaluated (trial points included)
        self.fallbacks: collections.Counter = collections.Counter()
        self._lock = threading.Lock()

    def _solve(self, spec, arrays, args) -> dict | None:
        with on_host_device():
            try:
                out = evaluate_chunk(spec, arrays, *args)
            except RUNTIME_ERRORS:
                return None
            return {k: np.asarray(v) for k, v in out.items()}

    def _chunk(self, subjects, x0, V, s, z0):
        out = self._evaluate(subjects, x0, V, s, z0)
        with self._lock:
            self.fallbacks.update(subjects[out["fallback"]].tolist())
        return out

    def _evaluate(self, subjects, x0, V, s, z0):
        arrays = jax.tree.map(lambda a: jnp.asarray(a[subjects]), self.host)
        args = tuple(map(jnp.asarray, (x0, V, s, z0)))
        out = self._solve(self.spec, arrays, args)
        retry = None if out is None else (out["status"] != 0) & (out["status"] != _ILLEGAL)
        if out is None or retry.any():
            other = self._solve(self.fallback, arrays, args)
            if out is None:
                out = other if other is not None else self._failed(arrays, args)
                out["fallback"] = np.full(len(subjects), other is not None)
                return out
            if other is not None:
                use = retry & (other["status"] == 0)
                out = {k: np.where(_expand(use, v), other[k], v) for k, v in out.items()}
                out["fallback"] = use
                return out
        out["fallback"] = np.zeros(len(subjects), dtype=bool)
        return out

    def _failed(self, arrays, args) -> dict:
        """Rows of a chunk that no solver could evaluate."""
        shapes = jax.eval_shape(evaluate_chunk, self.spec, arrays, *args)
        out = {k: np.zeros(v.shape, v.dtype) for k, v in shapes.items()}
        out["ofv_i"][:] = np.inf
        out["z"] = np.asarray(args[3])
        out["status"][:] = _SOLVER_FAILED
        return out

    def __call__(self, x0, V, s, weights, z0) -> dict:
        """OFVs and gradients of ``B`` parameter vectors.

        Args:
            x0 ``(B, labels)``, V ``(B, labels, m)``, s ``(B, m)``, weights ``(B, P)``,
            z0 ``(B, P, k)`` (see :func:`~.objective.evaluate_rows`).

        Returns:
            ``ofv`` ``(B,)`` and ``grad`` ``(B, m)`` (weighted sums over subjects), and the
            per-subject ``ofv_i, grad_i, z, ok, g, jac`` with leading axes ``(B, P)``.
        """
        x0, V, s, weights, z0 = (np.asarray(a, dtype=float) for a in (x0, V, s, weights, z0))
        batch, n = weights.shape
        self.evaluations += batch
        replicate, subject = np.divmod(np.arange(batch * n), n)
        z_rows = z0.reshape(batch * n, -1)

        def run(idx):
            r, p = replicate[idx], subject[idx]
            return self._chunk(p, x0[r], V[r], s[r], z_rows[idx])

        out = map_chunks(batch * n, run, self.workers)
        out = {k: v.reshape((batch, n) + v.shape[1:]) for k, v in out.items()}
        used = weights > 0
        contribution = np.where(used, weights * np.where(used, out["ofv_i"], 0.0), 0.0)
        out["ofv"] = contribution.sum(axis=1)
        out["ofv"] = np.where(np.all(np.isfinite(out["ofv_i"]) | ~used, axis=1), out["ofv"], np.inf)
        out["grad"] = np.einsum(
            "bp,bpm->bm",
            np.where(used, weights, 0.0),
            np.where(used[..., None], out["grad_i"], 0.0),
        )
        return out


@dataclass
class Outcome:
    """Result of a batch of outer optimisations (leading batch axis everywhere)."""

    s: np.ndarray
    x: np.ndarray
    ofv: np.ndarray
    grad: np.ndarray  # d OFV / d s at the end
    z: np.ndarray  # EBEs (standardised) at the end
    converged: np.ndarray
    steps: np.ndarray  # accepted BFGS steps
    evaluations: int
    message: list[str]
    seconds: float
    #: per batch element, ``(iteration, OFV, x)`` at the start and at every accepted step
    history: list[list[tuple[int, float, np.ndarray]]] | None = None


def scaling(evaluator: Evaluator, x0, free_index, weights, z0) -> tuple[np.ndarray, dict]:
    """Directions ``V`` from the outer-product approximation of the OFV Hessian at ``x0``."""
    n_labels = x0.shape[-1]
    basis = np.zeros((n_labels, len(free_index)))
    basis[free_index, np.arange(len(free_index))] = 1.0
    out = evaluator(x0[None], basis[None], np.zeros((1, len(free_index))), weights[None], z0[None])
    first = {k: v[0] for k, v in out.items()}
    g = first["grad_i"]
    bhhh = 0.5 * np.sum(weights[:, None] * g**2, axis=0)
    with np.errstate(divide="ignore"):
        scale = np.clip(1.0 / np.sqrt(bhhh), *SCALE_RANGE)
    scale = np.where(np.isfinite(scale), scale, SCALE_RANGE[1])
    return basis * scale[None, :], first


def _expand(flags, like):
    return flags.reshape((-1,) + (1,) * (like.ndim - 1))


def minimise(
    evaluator: Evaluator,
    x0: np.ndarray,
    V: np.ndarray,
    weights: np.ndarray,
    z0: np.ndarray,
    *,
    max_iter: int = 500,
    tol: float = 1e-3,
    progress: Callable[[str], None] | None = None,
    label: str = "",
) -> Outcome:
    """Minimise the OFV from ``x0`` along ``V`` for each batch element.

    Args:
        x0: ``(B, labels)``; V: ``(B, labels, m)``; weights: ``(B, P)``; z0: ``(B, P, k)``.
        max_iter: most OFV evaluations (BFGS steps, accepted or not) per batch element.
        tol: convergence tolerance in scaled units and OFV (see the module docstring).
        progress: called with one line of text per reported iteration.
    """
    started = time.perf_counter()
    batch, m = V.shape[0], V.shape[-1]
    result_shapes = (
        jax.ShapeDtypeStruct((), jnp.float64),
        jax.ShapeDtypeStruct((m,), jnp.float64),
        jax.ShapeDtypeStruct(z0.shape[1:], jnp.float64),
        jax.ShapeDtypeStruct(weights.shape[1:], jnp.float64),
    )

    def host(x0, V, s, weights, z0):
        out = evaluator(x0, V, s, weights, z0)
        ofv = np.where(np.isfinite(out["ofv"]), out["ofv"], np.inf)
        return ofv, out["grad"], out["z"], out["ofv_i"]

    def callback(s, args):
        x0, V, weights, z0 = args
        return jax.pure_callback(
            host, result_shapes, x0, V, s, weights, z0, vmap_method="expand_dims"
        )

    @jax.custom_jvp
    def ofv(s, args):
        value, _, z, ofv_i = callback(s, args)
        return value, (z, ofv_i)

    @ofv.defjvp
    def ofv_jvp(primals, tangents):
        s, args = primals
        value, grad, z, ofv_i = callback(s, args)
        aux = (z, ofv_i)
        return (value, aux), (grad @ tangents[0], jax.tree.map(jnp.zeros_like, aux))

    solver = TrustRegionBFGS(rtol=0.0, atol=tol)
    f_struct = jax.ShapeDtypeStruct((), jnp.float64)
    aux_struct = (result_shapes[2], result_shapes[3])
    tags = frozenset()
    init = jax.jit(jax.vmap(lambda s, a: solver.init(ofv, s, a, {}, f_struct, aux_struct, tags)))
    step = jax.jit(jax.vmap(lambda s, st, a: solver.step(ofv, s, a, {}, st, tags)))
    stop = jax.jit(jax.vmap(lambda s, st, a: solver.terminate(ofv, s, a, {}, st, tags)))

    s = jnp.zeros((batch, m))
    args = tuple(jnp.asarray(a, dtype=float) for a in (x0, V, weights, z0))
    state = init(s, args)
    done = np.zeros(batch, dtype=bool)
    results = [None] * batch
    last_report = time.perf_counter()
    last_f = np.full(batch, np.inf)
    history = [[] for _ in range(batch)]
    iteration = 0
    for iteration in range(1, max_iter + 1):
        new_s, new_state, _ = step(s, state, args)
        # finished fits keep their state (vmapped steps run in lockstep)
        keep = jnp.asarray(done)
        s = jnp.where(keep[:, None], s, new_s)
        state = jax.tree.map(
            lambda new, old, keep=keep: jnp.where(_expand(keep, new), old, new),
            new_state,
            state,
        )
        # warm-start the random effects from the last accepted point
        args = (args[0], args[1], args[2], state.aux[0])
        finished, result = stop(s, state, args)
        finished = np.asarray(finished)
        codes = np.asarray(result._value)
        # also converged: the OFV barely changed and the gradient is small (a variance going to
        # zero is a flat direction in which the steps need not shrink)
        f, grad = np.asarray(state.f_info.f), np.asarray(state.f_info.grad)
        accepted = (f != last_f) & np.isfinite(last_f)
        flat = accepted & (last_f - f < tol) & (np.max(np.abs(grad), axis=1) < GRADIENT_TOL)
        codes = np.where(flat & ~finished, 0, codes)
        finished = finished | flat
        # stalled: the trust region shrank below tol without finding a lower OFV
        stalled = ~finished & (np.asarray(state.search_state.step_size) < tol)
        small = np.max(np.abs(grad), axis=1) < STALL_GRADIENT_TOL
        codes = np.where(stalled, np.where(small, 0, _STALLED), codes)
        finished = finished | stalled
        for b in np.flatnonzero((f != last_f) & ~done):
            x_b = np.asarray(x0[b]) + np.asarray(V[b]) @ np.asarray(s[b])
            history[b].append((iteration, float(f[b]), x_b))
        last_f = np.where(f != last_f, f, last_f)
        for b in np.flatnonzero(finished & ~done):
            results[b] = int(codes[b])
        done |= finished
        if progress is not None and (
            done.all() or iteration <= 3 or time.perf_counter() - last_report > 5.0
        ):
            last_report = time.perf_counter()
            f = np.asarray(state.f_info.f)
            elapsed = time.perf_counter() - started
            if batch == 1:
                progress(
                    f"{label}iteration {iteration:4d}  OFV {float(f[0]):.4f}  ({elapsed:.0f} s)"
                )
            else:
                progress(
                    f"{label}iteration {iteration:4d}  {int(done.sum())}/{batch} converged  "
                    f"({elapsed:.0f} s)"
                )
        if done.all():
            break

    s_final = np.asarray(s)
    x_final = np.asarray(x0) + np.einsum("blm,bm->bl", np.asarray(V), s_final)
    ofv_final = np.asarray(state.f_info.f)
    grad_final = np.asarray(state.f_info.grad)
    messages = []
    converged = np.zeros(batch, dtype=bool)
    for b in range(batch):
        if not done[b]:
            messages.append(f"no convergence within {max_iter} OFV evaluations")
        elif not np.isfinite(ofv_final[b]):
            messages.append("the OFV is not finite")
        elif results[b] == _STALLED:
            messages.append(
                f"no step longer than {tol:g} SE decreases the OFV, but the gradient "
                f"{np.max(np.abs(grad_final[b])):.2g} per SE is not small (OFV not smooth: "
                "tighten rtol)"
            )
        elif results[b] != 0:
            reason = optx.RESULTS._index_to_message[results[b]].splitlines()[0]
            messages.append(f"the optimiser stopped: {reason}")
        else:
            converged[b] = True
            messages.append("converged")
    return Outcome(
        s=s_final,
        x=x_final,
        ofv=ofv_final,
        grad=grad_final,
        z=np.asarray(state.aux[0]),
        converged=converged,
        steps=np.asarray(state.num_accepted_steps),
        evaluations=iteration,
        message=messages,
        seconds=time.perf_counter() - started,
        history=history,
    )
