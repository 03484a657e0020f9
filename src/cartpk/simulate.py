"""The one entry point for trajectories: :func:`simulate` (and :func:`simulate_population`).

Integration is segment-wise: between two dose events the vector field is smooth (boluses are added
to the state at the event; infusion rates are constant in between), so an adaptive solver can never
step over a dose. Segments are a ``lax.scan`` over the padded events of :class:`~cartpk.DoseArrays`,
so patients with different regimens share one compiled function and ``vmap`` over patients.

Output times equal to a dose time report the value just *before* the dose (as NONMEM does when the
observation record precedes the dose record); use ``t + 1e-9`` for the post-dose value.

Failures never come back as silent NaNs: each patient carries a ``status`` code (see
:data:`FAILURES`); :meth:`Solution.failures` turns codes into messages that name the patient.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .errors import CartpkError, ParameterError
from .models.base import AbstractModel
from .precision import require_x64
from .regimen import DoseArrays, Regimen, stack_regimens

#: status code -> message. Code 0 is success.
FAILURES = (
    "ok",
    "the solver reached max_steps within one dose interval (raise max_steps, or check for "
    "extreme parameters that make the system very stiff)",
    "a state became NaN or infinite",
    "a parameter is non-finite or outside its legal range",
    "the solver failed (step size underflow or divergent implicit solve)",
    "a state that must stay non-negative became negative beyond the tolerance",
)

#: Default solver and tolerances, chosen by measurement (see ``docs/numerics.md``).
DEFAULT_SOLVER = dfx.Kvaerno5()
DEFAULT_RTOL = 1e-8
DEFAULT_MAX_STEPS = 4096
DEFAULT_ADJOINT = dfx.RecursiveCheckpointAdjoint()


class SimulationWarning(UserWarning):
    """Some patients failed to simulate; :meth:`Solution.failures` says which and why."""


class Solution(eqx.Module):
    """Trajectories at the requested times. Under ``vmap`` every leaf gains leading batch axes.

    Attributes:
        times: output times (d).
        states: state name -> values at ``times`` (state units).
        observables: observable name -> values at ``times``.
        status: 0 if the solve succeeded, else an index into :data:`FAILURES`.
        num_steps: accepted + rejected solver steps over all dose intervals.
    """

    times: Float[Array, "... times"]
    states: dict
    observables: dict
    status: Int[Array, ...]
    num_steps: Int[Array, ...]

    @property
    def ok(self):
        """Boolean (per patient): the solve succeeded."""
        return self.status == 0

    def failures(self, params: Mapping | None = None) -> list[str]:
        """One message per failed patient, naming it and, if ``params`` given, its parameters."""
        status = np.atleast_1d(np.asarray(self.status))
        messages = []
        for index in np.flatnonzero(status.ravel()):
            where = np.unravel_index(index, status.shape)
            label = "patient " + ",".join(str(i) for i in where) if status.ndim else "the patient"
            message = f"{label}: {FAILURES[int(status.ravel()[index])]}"
            if params is not None:
                values = ", ".join(
                    f"{k}={float(np.broadcast_to(np.asarray(v), status.shape)[where]):.4g}"
                    for k, v in params.items()
                )
                message += f" [{values}]"
            messages.append(message)
        return messages

    def to_frame(self):
        """Long pandas DataFrame: one row per (patient, time) with every state and observable."""
        import pandas as pd

        columns = {**self.states, **self.observables}
        times = np.asarray(self.times)
        data = {name: np.asarray(v) for name, v in columns.items()}
        shape = next(iter(data.values())).shape if data else times.shape
        frame = {}
        if len(shape) > 1:
            frame["patient"] = np.repeat(np.arange(int(np.prod(shape[:-1]))), shape[-1])
        frame["time"] = np.broadcast_to(times, shape).ravel()
        frame.update({name: v.ravel() for name, v in data.items()})
        frame["status"] = np.repeat(np.asarray(self.status).ravel(), shape[-1])
        return pd.DataFrame(frame)


def simulate(
    model: AbstractModel,
    params: Mapping,
    regimen: Regimen | DoseArrays | None,
    times,
    *,
    solver: dfx.AbstractSolver = DEFAULT_SOLVER,
    rtol: float = DEFAULT_RTOL,
    atol_scale: float = 1.0,
    max_steps: int = DEFAULT_MAX_STEPS,
    adjoint: dfx.AbstractAdjoint = DEFAULT_ADJOINT,
) -> Solution:
    """Simulate one patient.

    Args:
        model: a cartpk model (e.g. :class:`~cartpk.models.Multiphasic`).
        params: parameter name -> value (model units); ``model.default_params()`` gives all.
        regimen: the doses (a :class:`~cartpk.Regimen`, its :class:`~cartpk.DoseArrays`, or
            ``None`` for no dose).
        times: output times (d), non-decreasing. Integration starts at the earlier of the first
            time and the first dose.
        solver: a diffrax solver; the default, Kvaerno5 (implicit, 5th order), handles the stiff
            phases of CAR-T kinetics.
        rtol: relative tolerance of the step-size controller.
        atol_scale: multiplies each state's absolute tolerance (``State.atol``).
        max_steps: solver step limit per dose interval.
        adjoint: how to differentiate the solve (reverse mode by default; use
            ``diffrax.ForwardMode()`` for ``jax.jacfwd``).

    Returns:
        A :class:`Solution`. Works under ``jax.jit``, ``jax.vmap`` and ``jax.grad``. With concrete
        inputs, bad parameters raise :class:`~cartpk.ParameterError` and failed solves warn
        (:class:`SimulationWarning`); under transformations they set ``status`` instead.
    """
    require_x64()
    doses = _as_dose_arrays(regimen, model)
    times = jnp.asarray(times, dtype=float)
    if times.ndim != 1 or times.size == 0:
        raise CartpkError(f"times must be a non-empty 1-D array of days, got shape {times.shape}")
    if _is_concrete(params, times):
        _check_times(np.asarray(times))
        model.parameter_set.validate(params)
    solution = _solve(
        model,
        solver,
        adjoint,
        max_steps,
        dict(params),
        doses,
        times,
        jnp.asarray(rtol, dtype=float),
        jnp.asarray(atol_scale, dtype=float),
    )
    if _is_concrete(solution.status) and not bool(np.all(np.asarray(solution.status) == 0)):
        warnings.warn("; ".join(solution.failures(params)), SimulationWarning, stacklevel=2)
    return solution


def simulate_population(
    model: AbstractModel,
    params: Mapping,
    regimens: Regimen | Sequence[Regimen] | DoseArrays | None,
    times,
    *,
    chunk_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    **options,
) -> Solution:
    """Simulate many patients at once (``vmap``, optionally in chunks to bound memory).

    Args:
        model: a cartpk model.
        params: parameter name -> array of shape ``(patients,)`` (or scalar, shared by all).
        regimens: one regimen for everyone, a list with one per patient, or stacked DoseArrays.
        times: output times (d), shared by all patients.
        chunk_size: patients per compiled batch (default: all at once).
        progress: called as ``progress(done, total)`` after each chunk.
        **options: passed to :func:`simulate` (solver, rtol, ...).

    Returns:
        A :class:`Solution` whose leaves have a leading patient axis. Failed patients have a
        non-zero ``status``; they never spoil the others. Bad parameter values are reported per
        patient through ``status``, not raised.
    """
    require_x64()
    sizes = {np.shape(v)[0] for v in params.values() if np.ndim(v) > 0}
    if isinstance(regimens, Sequence):
        sizes.add(len(regimens))
    if len(sizes) > 1:
        raise CartpkError(f"inconsistent numbers of patients in params/regimens: {sorted(sizes)}")
    n = sizes.pop() if sizes else 1
    params = {k: jnp.broadcast_to(jnp.asarray(v, dtype=float), (n,)) for k, v in params.items()}
    model.parameter_set._check_names(params)
    if isinstance(regimens, Sequence):
        doses = stack_regimens(regimens, model.state_names)
    else:
        single = _as_dose_arrays(regimens, model)
        doses = (
            single if single.times.ndim == 2 else jax.tree.map(lambda a: jnp.stack([a] * n), single)
        )
    times = jnp.asarray(times, dtype=float)
    _check_times(np.asarray(times))

    solver = options.pop("solver", DEFAULT_SOLVER)
    adjoint = options.pop("adjoint", DEFAULT_ADJOINT)
    max_steps = options.pop("max_steps", DEFAULT_MAX_STEPS)
    rtol = jnp.asarray(options.pop("rtol", DEFAULT_RTOL), dtype=float)
    atol_scale = jnp.asarray(options.pop("atol_scale", 1.0), dtype=float)
    if options:
        raise CartpkError(f"unknown simulate option(s): {', '.join(options)}")
    chunk = chunk_size or n
    pieces = []
    for start in range(0, n, chunk):
        part = slice(start, min(start + chunk, n))

        def take(tree, part=part):
            return jax.tree.map(lambda a: a[part], tree)

        pieces.append(
            _solve_batch(
                model,
                solver,
                adjoint,
                max_steps,
                take(params),
                take(doses),
                times,
                rtol,
                atol_scale,
            )
        )
        if progress is not None:
            progress(part.stop, n)
    solution = jax.tree.map(lambda *a: jnp.concatenate(a), *pieces)
    if not bool(np.all(np.asarray(solution.status) == 0)):
        failed = solution.failures(params)
        warnings.warn(
            f"{len(failed)} of {n} patients failed: " + "; ".join(failed[:5]),
            SimulationWarning,
            stacklevel=2,
        )
    return solution


def _solve_one(model, solver, adjoint, max_steps, params, doses, times, rtol, atol_scale):
    n_states = len(model.states)
    y0 = model.pack(model.initial_state(params))
    t_start = jnp.minimum(jnp.minimum(times[0], doses.times[0]), 0.0)
    t_end = times[-1]
    event_times = jnp.clip(doses.times, t_start, t_end)
    starts = jnp.concatenate([t_start[None], event_times])
    ends = jnp.concatenate([event_times, t_end[None]])
    zeros = jnp.zeros((1, n_states))
    boluses = jnp.concatenate([zeros, doses.bolus])
    rates = jnp.concatenate([zeros, doses.rate])
    first = jnp.arange(starts.shape[0]) == 0

    term = dfx.ODETerm(model.vector_field)
    controller = dfx.PIDController(rtol=rtol, atol=atol_scale * model.atol())
    params_ok = model.parameter_set.all_in_bounds(params)

    def segment(carry, inputs):
        y, ys, status, steps = carry
        t0, t1, bolus, rate, is_first = inputs
        y = y + bolus
        sol = dfx.diffeqsolve(
            term,
            solver,
            t0,
            t1,
            None,
            y,
            args=(params, rate),
            saveat=dfx.SaveAt(ts=jnp.clip(times, t0, t1), t1=True),
            stepsize_controller=controller,
            adjoint=adjoint,
            max_steps=max_steps,
            throw=False,
        )
        here = ((times > t0) & (times <= t1)) | (is_first & (times == t0))
        ys = jnp.where(here[:, None], sol.ys[:-1], ys)
        code = jnp.where(
            sol.result == dfx.RESULTS.successful,
            0,
            jnp.where(sol.result == dfx.RESULTS.max_steps_reached, 1, 4),
        )
        status = jnp.where(status == 0, code, status)
        steps = steps + sol.stats["num_steps"]
        return (sol.ys[-1], ys, status, steps), None

    init = (y0, jnp.zeros((times.shape[0], n_states)), jnp.where(params_ok, 0, 3), 0)
    (_, ys, status, steps), _ = jax.lax.scan(segment, init, (starts, ends, boluses, rates, first))
    finite = jnp.all(jnp.isfinite(ys))
    floor = -10 * atol_scale * model.atol() - 1e-6 * jnp.max(jnp.abs(ys), axis=0)
    nonneg = jnp.asarray([s.nonnegative for s in model.states])
    positive = jnp.all(jnp.where(nonneg, ys >= floor, True))
    status = jnp.where(status != 0, status, jnp.where(~finite, 2, jnp.where(~positive, 5, 0)))

    named = model.unpack(ys)
    observables = jax.vmap(lambda t, y: model.observables(t, model.unpack(y), params))(times, ys)
    return Solution(times, named, observables, status, steps)


_solve = eqx.filter_jit(_solve_one)
_solve_batch = eqx.filter_jit(
    eqx.filter_vmap(_solve_one, in_axes=(None, None, None, None, 0, 0, None, None, None))
)


def _as_dose_arrays(regimen, model) -> DoseArrays:
    if regimen is None:
        regimen = Regimen()
    if isinstance(regimen, Regimen):
        return regimen.to_arrays(model.state_names)
    if isinstance(regimen, DoseArrays):
        if regimen.bolus.shape[-1] != len(model.states):
            raise CartpkError(
                f"dose arrays have {regimen.bolus.shape[-1]} states but {type(model).__name__} "
                f"has {len(model.states)}"
            )
        return regimen
    raise CartpkError(
        f"regimen must be a Regimen, DoseArrays or None, got {type(regimen).__name__}"
    )


def _check_times(times: np.ndarray) -> None:
    if not np.all(np.isfinite(times)):
        raise CartpkError("times must be finite")
    if np.any(np.diff(times) < 0):
        raise CartpkError("times must be non-decreasing")


def _is_concrete(*trees) -> bool:
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(trees))


__all__ = [
    "FAILURES",
    "ParameterError",
    "SimulationWarning",
    "Solution",
    "simulate",
    "simulate_population",
]
