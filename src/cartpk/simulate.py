"""The one entry point for trajectories: :func:`simulate` (and :func:`simulate_population`).

Integration is segment-wise: between two dose events the vector field is smooth (boluses are added
to the state at the event; infusion rates are constant in between), so an adaptive solver can never
step over a dose. Segments are a ``lax.scan`` over the padded events of :class:`~cartpk.DoseArrays`,
so patients with different regimens share one compiled function and ``vmap`` over patients.

Output times equal to a dose time report the value just *before* the dose (as NONMEM does when the
observation record precedes the dose record); use ``t + 1e-9`` for the post-dose value. Doses into
a state with a ``lag`` (:class:`~cartpk.State`, NONMEM's ``ALAG``) are delayed by that parameter's
value before anything else sees them. A model with a closed-form solution
(:meth:`~cartpk.AbstractModel.solution`) is evaluated instead of integrated, with the same
semantics, unless ``closed_form=False``.

Failures never come back as silent NaNs: each patient carries a ``status`` code, the position of
a :class:`Status` member; :meth:`Solution.failures` turns codes into messages that name the
patient.

Arguments are checked before anything is traced, by validators shared by all three entry points:
a tolerance, step limit, output time or chunk size that no solve can honour raises a one-line
:class:`~cartpk.ArgumentError`. Values traced by ``jax.jit`` cannot be checked; they are used as
given.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, Float, Int

from .errors import ArgumentError, CartpkError, SimulationWarning
from .models.base import AbstractModel
from .precision import require_x64
from .regimen import DoseArrays, Regimen, stack_regimens


class Status(eqx.Enumeration):
    """The outcome of one patient's solve; each member's value is its user-facing message.

    ``Solution.status`` (and the ``status`` column of every table cartpk writes) holds a member's
    integer code, its position in this class: 0 ``successful``, 1 ``max_steps_reached``,
    2 ``nonfinite_state``, 3 ``illegal_parameters``, 4 ``solver_failed``, 5 ``negative_state``.
    New members are only ever appended, so codes keep their meaning. ``Solution.result`` gives
    the members (usable under ``jit``/``vmap``) and ``Status[member]`` the message.
    """

    successful = ""
    max_steps_reached = (
        "the solver reached max_steps within one dose interval (raise max_steps, or check for "
        "extreme parameters that make the system very stiff)"
    )
    nonfinite_state = "a state became NaN or infinite"
    illegal_parameters = "a parameter is non-finite or outside its legal range"
    solver_failed = "the solver failed (step size underflow or divergent implicit solve)"
    negative_state = "a state that must stay non-negative became negative beyond the tolerance"


_STATUS_TREE = jax.tree.structure(Status.successful)


def status_code(member: Status) -> int:
    """The integer code of a :class:`Status` member."""
    (value,) = jax.tree.leaves(member)
    return int(value)


def status_member(codes) -> Status:
    """The :class:`Status` member(s) of integer code(s), any shape (traced or not)."""
    return jax.tree.unflatten(_STATUS_TREE, [codes])


def status_message(code: int) -> str:
    """The user-facing message of a :class:`Status` code ("" for success)."""
    return Status[status_member(np.asarray(code, dtype=np.int32))]


#: Default solver and tolerances, chosen by measurement (see ``docs/numerics.md``).
DEFAULT_SOLVER = dfx.Kvaerno5()
DEFAULT_RTOL = 1e-8
DEFAULT_MAX_STEPS = 4096
DEFAULT_ADJOINT = dfx.RecursiveCheckpointAdjoint()


class Solution(eqx.Module):
    """Trajectories at the requested times. Under ``vmap`` every leaf gains leading batch axes.

    Attributes:
        times: output times (d).
        states: state name -> values at ``times`` (state units).
        observables: observable name -> values at ``times``.
        status: the integer code of each patient's :class:`Status` (0: successful).
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
        return self.status == status_code(Status.successful)

    @property
    def result(self) -> Status:
        """``status`` as :class:`Status` members: ``solution.result == Status.max_steps_reached``
        is a per-patient boolean array, also under ``jit`` and ``vmap``."""
        return status_member(jnp.asarray(self.status))

    def failures(self, params: Mapping | None = None) -> list[str]:
        """One message per failed patient, naming it and, if ``params`` given, its parameters."""
        single = np.ndim(self.status) == 0
        status = np.atleast_1d(np.asarray(self.status))
        messages = []
        for index in np.flatnonzero(status.ravel() != status_code(Status.successful)):
            where = np.unravel_index(index, status.shape)
            label = "the patient" if single else "patient " + ",".join(str(i) for i in where)
            message = f"{label}: {Status[status_member(np.asarray(status.ravel()[index]))]}"
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
    closed_form: bool = True,
) -> Solution:
    """Simulate one patient.

    Args:
        model: a cartpk model (e.g. :class:`~cartpk.models.Multiphasic`).
        params: parameter name -> value (model units); ``model.default_params()`` gives all.
        regimen: the doses (a :class:`~cartpk.Regimen`, its :class:`~cartpk.DoseArrays`, or
            ``None`` for no dose).
        times: output times (d): a non-empty 1-D array, finite and non-decreasing (negative
            days are allowed, e.g. for therapies before the infusion). Integration starts at the
            earliest of day 0, the first time and the first dose.
        solver: a diffrax solver; the default, Kvaerno5 (implicit, 5th order), handles the stiff
            phases of CAR-T kinetics.
        rtol: relative tolerance of the step-size controller, in (0, 1).
        atol_scale: multiplies each state's absolute tolerance (``State.atol``); positive and
            finite.
        max_steps: solver step limit per dose interval, a positive integer.
        adjoint: how to differentiate the solve (reverse mode by default; use
            ``diffrax.ForwardMode()`` for ``jax.jacfwd``).
        closed_form: use the model's closed-form solution when it has one (then the solver
            settings are unused and ``num_steps`` is 0); False integrates its rates.

    Returns:
        A :class:`Solution`. Works under ``jax.jit``, ``jax.vmap`` and ``jax.grad``. With concrete
        inputs, bad arguments raise :class:`~cartpk.ArgumentError`, bad parameters raise
        :class:`~cartpk.ParameterError` and failed solves warn
        (:class:`~cartpk.SimulationWarning`); under transformations traced values are not
        checked, and bad parameters and failed solves set ``status`` instead.
    """
    require_x64()
    doses = _as_dose_arrays(regimen, model)
    times = _check_times(times, model)
    _check_solve(rtol, atol_scale, max_steps, closed_form)
    _check_lags(model)
    if _is_concrete(params, times):
        model.parameter_set.validate(params)
    solution = _solve(
        model,
        solver,
        adjoint,
        int(max_steps),
        dict(params),
        doses,
        times,
        jnp.asarray(rtol, dtype=float),
        jnp.asarray(atol_scale, dtype=float),
        closed_form,
    )
    if _is_concrete(solution.status) and not bool(np.all(np.asarray(solution.ok))):
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
    stepping: str = "auto",
    devices: Sequence[jax.Device] | None = None,
    solver: dfx.AbstractSolver = DEFAULT_SOLVER,
    rtol: float = DEFAULT_RTOL,
    atol_scale: float = 1.0,
    max_steps: int = DEFAULT_MAX_STEPS,
    adjoint: dfx.AbstractAdjoint = DEFAULT_ADJOINT,
    closed_form: bool = True,
) -> Solution:
    """Simulate many patients at once, in compiled chunks (optionally sharded over devices).

    Args:
        model: a cartpk model.
        params: parameter name -> array of shape ``(patients,)`` (or scalar, shared by all).
        regimens: one regimen for everyone, a list with one per patient, or stacked DoseArrays.
            There must be at least one patient.
        times: output times (d), shared by all patients (as in :func:`simulate`).
        chunk_size: patients per compiled batch, a positive integer (default: all at once).
            Chunks are padded to this size, so every chunk reuses one compiled function. On a
            CPU, 256-1024 per device is fastest (``docs/scaling.md``).
        progress: called as ``progress(done, total)`` after each chunk.
        stepping: ``"shared"`` integrates a chunk as one system with one adaptive step size,
            accepted only when *every* patient's error meets the tolerance (the error norm is
            the maximum over patients of each patient's RMS norm). ``"per_patient"`` runs one
            adaptive solve per patient under ``vmap``. ``"auto"`` (default): shared for
            explicit Runge-Kutta solvers (much faster, see ``docs/scaling.md``), per patient
            for implicit ones (whose Newton solves would couple the patients). If a shared
            chunk fails (step limit or solver failure), it is re-solved per patient, so a
            failure stays with its patient. Models with dose lags (their event times differ
            between patients) or solved in closed form are always solved per patient.
        devices: shard each chunk over these devices along the patient axis (one host); e.g.
            ``jax.devices()``. Default: JAX's default device.
        solver, rtol, atol_scale, max_steps, adjoint, closed_form: as in :func:`simulate`.

    Returns:
        A :class:`Solution` whose leaves have a leading patient axis. Failed patients have a
        non-zero ``status``; they never spoil the others. Bad parameter values are reported per
        patient through ``status``, not raised; bad arguments raise
        :class:`~cartpk.ArgumentError` before anything is compiled. With shared stepping,
        ``num_steps`` is the chunk's step count. For populations too large to hold, use
        :func:`simulate_population_chunks`.
    """
    pieces = list(
        simulate_population_chunks(
            model,
            params,
            regimens,
            times,
            chunk_size=chunk_size,
            progress=progress,
            stepping=stepping,
            devices=devices,
            solver=solver,
            rtol=rtol,
            atol_scale=atol_scale,
            max_steps=max_steps,
            adjoint=adjoint,
            closed_form=closed_form,
            _keep_on_device=True,
        )
    )
    if len(pieces) == 1:
        solution = pieces[0][1]
    else:
        solution = jax.tree.map(lambda *a: jnp.asarray(np.concatenate(a)), *(s for _, s in pieces))
    ok = np.asarray(solution.ok)
    if not bool(np.all(ok)):
        failed = solution.failures(params)
        warnings.warn(
            f"{len(failed)} of {ok.size} patients failed: " + "; ".join(failed[:5]),
            SimulationWarning,
            stacklevel=2,
        )
    return solution


def simulate_population_chunks(
    model: AbstractModel,
    params: Mapping,
    regimens: Regimen | Sequence[Regimen] | DoseArrays | None,
    times,
    *,
    chunk_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    stepping: str = "auto",
    devices: Sequence[jax.Device] | None = None,
    solver: dfx.AbstractSolver = DEFAULT_SOLVER,
    rtol: float = DEFAULT_RTOL,
    atol_scale: float = 1.0,
    max_steps: int = DEFAULT_MAX_STEPS,
    adjoint: dfx.AbstractAdjoint = DEFAULT_ADJOINT,
    closed_form: bool = True,
    _keep_on_device: bool = False,
) -> Iterator[tuple[slice, Solution]]:
    """Like :func:`simulate_population`, but yields ``(patients, solution)`` per chunk.

    ``patients`` is the slice of the population in the chunk and ``solution`` its
    :class:`Solution` with NumPy leaves. Only one chunk is held at a time (the next one is
    already computing while you consume this one), so memory stays bounded for any number of
    patients: reduce each chunk to what you need (endpoints, quantiles) or write it to disk.
    Failures are reported through ``status`` only (no warning). The arguments are those of
    :func:`simulate_population`: ``times`` are output times (d). They are checked when this
    function is called, before the first chunk is asked for.
    """
    require_x64()
    batched, shared, n = _split_params(params, regimens)
    _check_population(n, chunk_size, progress, stepping)
    model.parameter_set.check_names({**batched, **shared})
    doses = _population_doses(model, regimens, n)
    times = _check_times(times, model)
    _check_solve(rtol, atol_scale, max_steps, closed_form)
    _check_lags(model)
    mesh = _mesh(devices)
    if stepping == "auto":
        stepping = "shared" if isinstance(solver, dfx.AbstractERK) else "per_patient"
    if any(s.lag for s in model.states) or (closed_form and _has_solution(model)):
        stepping = "per_patient"
    rtol = jnp.asarray(rtol, dtype=float)
    atol_scale = jnp.asarray(atol_scale, dtype=float)

    n_devices = 1 if mesh is None else mesh.size
    chunk = min(chunk_size or n, n)
    chunk = -(-chunk // n_devices) * n_devices  # a multiple of the number of devices
    statics = (model, solver, adjoint, int(max_steps), closed_form)
    n_events = _max_events(doses, n, chunk) if stepping == "shared" else None
    retry = [status_code(Status.max_steps_reached), status_code(Status.solver_failed)]

    def launch(part, how):
        pb = {k: _pad(v[part], chunk) for k, v in batched.items()}
        d = doses if doses.times.ndim == 1 else jax.tree.map(lambda a: _pad(a[part], chunk), doses)
        if how == "shared":
            d = _common_events(d, n_events)
        pb, d = _place(mesh, pb, d)
        return _run_chunk(*statics, how, mesh, pb, shared, d, times, rtol, atol_scale)

    def finish(part, how, result):
        size = part.stop - part.start
        if how == "shared" and size > 1 and bool(np.any(np.isin(np.asarray(result.status), retry))):
            result = launch(part, "per_patient")  # one stiff patient must not fail the rest
        if _keep_on_device:
            return jax.tree.map(lambda a: a[:size], result)
        return jax.tree.map(lambda a: np.asarray(a)[:size], result)

    parts = [slice(s, min(s + chunk, n)) for s in range(0, n, chunk)]
    return _stream(parts, stepping, launch, finish, progress, n)


def _stream(parts, stepping, launch, finish, progress, n):
    """Yield each chunk's ``(patients, solution)`` while the next chunk is computing."""
    pending = launch(parts[0], stepping)
    for k, part in enumerate(parts):
        following = launch(parts[k + 1], stepping) if k + 1 < len(parts) else None
        solution = finish(part, stepping, pending)
        if progress is not None:
            progress(part.stop, n)
        yield part, solution
        pending = following


def _solve_one(
    model, solver, adjoint, max_steps, params, doses, times, rtol, atol_scale, closed_form=True
):
    doses = _lagged(model, params, doses)
    params_ok = model.parameter_set.all_in_bounds(params)
    status = jnp.where(
        params_ok, status_code(Status.successful), status_code(Status.illegal_parameters)
    )
    states = model.solution(times, doses, params) if closed_form else None
    if states is None:
        ys, status, steps = _integrate(
            dfx.ODETerm(model.vector_field),
            solver,
            dfx.PIDController(rtol=rtol, atol=atol_scale * model.atol()),
            adjoint,
            max_steps,
            params,
            times,
            model.pack(model.initial_state(params)),
            (doses.times, doses.bolus, doses.rate),
            status,
        )
    else:
        ys, steps = model.pack(states), jnp.zeros((), dtype=int)
    status, named, observables = _outputs(model, params, times, ys, status, atol_scale)
    return Solution(times, named, observables, status, steps)


def _integrate(term, solver, controller, adjoint, max_steps, params, times, y0, doses, status):
    """Integrate from the earliest of day 0, the first output and the first dose to the last
    output, one segment between consecutive dose events at a time: each event's bolus is added at
    its start, and its infusion rate holds until the next event.

    Args:
        params: the vector field's parameters (its args are ``(params, rate)``).
        y0: initial state, any shape (states, or states x patients).
        doses: ``(event times, boluses, rates)``, one bolus and rate per event, shaped like
            ``y0`` (rates may also be shared).
        status: initial status code (``successful``, or ``illegal_parameters``).

    Returns:
        ``(ys, status, steps)``: the states at ``times`` (pre-dose at a dose time), the code of
        the first failure (``max_steps_reached`` or ``solver_failed``) and the number of solver
        steps.
    """
    event_times, bolus, rates = doses
    t_start = jnp.minimum(jnp.minimum(times[0], event_times[0]), 0.0)
    t_end = times[-1]
    event_times = jnp.clip(event_times, t_start, t_end)
    starts = jnp.concatenate([t_start[None], event_times])
    ends = jnp.concatenate([event_times, t_end[None]])
    bolus = jnp.concatenate([jnp.zeros((1,) + bolus.shape[1:]), bolus])
    rates = jnp.concatenate([jnp.zeros((1,) + rates.shape[1:]), rates])
    first = jnp.arange(starts.shape[0]) == 0

    def segment(carry, inputs):
        y, ys, status, steps = carry
        t0, t1, b, rate, is_first = inputs
        sol = dfx.diffeqsolve(
            term,
            solver,
            t0,
            t1,
            None,
            y + b,
            args=(params, rate),
            saveat=dfx.SaveAt(ts=jnp.clip(times, t0, t1), t1=True),
            stepsize_controller=controller,
            adjoint=adjoint,
            max_steps=max_steps,
            throw=False,
        )
        here = ((times > t0) & (times <= t1)) | (is_first & (times == t0))
        ys = jnp.where(here.reshape((-1,) + (1,) * y0.ndim), sol.ys[:-1], ys)
        code = jnp.where(
            sol.result == dfx.RESULTS.successful,
            status_code(Status.successful),
            jnp.where(
                sol.result == dfx.RESULTS.max_steps_reached,
                status_code(Status.max_steps_reached),
                status_code(Status.solver_failed),
            ),
        )
        status = jnp.where(status == status_code(Status.successful), code, status)
        return (sol.ys[-1], ys, status, steps + sol.stats["num_steps"]), None

    init = (y0, jnp.zeros((times.shape[0],) + y0.shape), status, 0)
    (_, ys, status, steps), _ = jax.lax.scan(segment, init, (starts, ends, bolus, rates, first))
    return ys, status, steps


def _lagged(model, params, doses: DoseArrays) -> DoseArrays:
    """``doses`` with the doses into each state that has a ``lag`` delayed by it.

    The events of the unlagged states and those of each lagged state (shifted by its lag) are
    merged and sorted; at every merged event each state gets its own bolus, and the infusion
    rate of its latest own event at or before it. Zero-length segments at ties are harmless.
    """
    lags = [(j, s.lag) for j, s in enumerate(model.states) if s.lag is not None]
    if not lags:
        return doses
    n = len(model.states)
    plain = jnp.ones(n).at[jnp.asarray([j for j, _ in lags])].set(0.0)
    groups = [(jnp.zeros(()), plain)] + [
        (jnp.asarray(params[name], dtype=float), jnp.zeros(n).at[j].set(1.0)) for j, name in lags
    ]
    shifted = [doses.times + lag for lag, _ in groups]
    times = jnp.concatenate(shifted)
    order = jnp.argsort(times)
    times = times[order]
    bolus = jnp.concatenate([doses.bolus * mask for _, mask in groups])[order]
    rate = jnp.zeros((times.shape[0], n))
    for own, (_, mask) in zip(shifted, groups, strict=True):
        latest = jnp.searchsorted(own, times, side="right") - 1
        rows = jnp.where((latest >= 0)[:, None], doses.rate[jnp.maximum(latest, 0)], 0.0)
        rate = rate + rows * mask
    return DoseArrays(times, bolus, rate)


def _check_lags(model) -> None:
    """Raise :class:`~cartpk.CartpkError` for a state whose ``lag`` names no model parameter."""
    names = model.parameter_set.names
    for s in model.states:
        if s.lag is not None and s.lag not in names:
            raise CartpkError(
                f"state {s.name} of {type(model).__name__}: its lag {s.lag!r} is not one of the "
                f"model's parameters ({', '.join(names)})"
            )


def _has_solution(model) -> bool:
    """Whether the model overrides :meth:`~cartpk.AbstractModel.solution` (a closed form)."""
    return type(model).solution is not AbstractModel.solution


def _solve_shared(model, solver, adjoint, max_steps, pb, ps, doses, times, rtol, atol_scale):
    """A chunk of patients as one system (states x patients) with one shared step size.

    ``pb``: batched parameters ``(patients,)``; ``ps``: shared scalars; ``doses``: event times
    shared by the chunk, boluses/rates either shared ``(events, states)`` or per patient
    ``(patients, events, states)``."""
    n = next(iter(jax.tree.leaves(pb)), jnp.zeros(1)).shape[0]
    ok = jax.vmap(lambda b: model.parameter_set.all_in_bounds({**ps, **b}))(pb)
    # a patient with illegal parameters integrates a legal stand-in, so it cannot stall the
    # shared step size; its status says it failed
    stand_in = jnp.argmax(ok)
    pb = jax.tree.map(lambda a: jnp.where(ok, a, a[stand_in]), pb)
    y0 = jax.vmap(lambda b: model.pack(model.initial_state({**ps, **b})))(pb).T

    per_patient = doses.bolus.ndim == 3
    if per_patient:  # (patients, events, states) -> (events, states, patients)
        bolus = jnp.transpose(doses.bolus, (1, 2, 0))
        rates = jnp.transpose(doses.rate, (1, 2, 0))
    else:
        bolus, rates = doses.bolus[..., None], doses.rate
    rate_axis = 1 if per_patient else None

    def field(t, y, args):
        b, rate = args
        one = lambda y_i, b_i, r_i: model.vector_field(t, y_i, ({**ps, **b_i}, r_i))  # noqa: E731
        return jax.vmap(one, in_axes=(1, 0, rate_axis), out_axes=1)(y, b, rate)

    term = dfx.ODETerm(field)
    # a PI controller: an explicit solver at its stability limit (the slow tail of CAR-T
    # kinetics) then needs about 20 % fewer steps than with the I controller (measured,
    # docs/scaling.md)
    controller = dfx.PIDController(
        rtol=rtol,
        atol=(atol_scale * model.atol())[:, None],
        norm=_max_patient_norm,
        pcoeff=SHARED_PCOEFF,
        icoeff=SHARED_ICOEFF,
    )

    ys, code, steps = _integrate(
        term,
        solver,
        controller,
        adjoint,
        max_steps,
        pb,
        times,
        y0,
        (doses.times, bolus, rates),
        status_code(Status.successful),
    )
    ys = jnp.transpose(ys, (2, 0, 1))  # (patients, times, states)
    status = jnp.where(ok, code, status_code(Status.illegal_parameters))
    status, named, observables = jax.vmap(
        lambda y, b, s: _outputs(model, {**ps, **b}, times, y, s, atol_scale)
    )(ys, pb, status)
    return Solution(
        jnp.broadcast_to(times, (n, times.shape[0])),
        named,
        observables,
        status,
        jnp.broadcast_to(steps, (n,)),
    )


def _max_patient_norm(scaled_error):
    """Error norm of a shared step: the worst patient's RMS norm (non-finite patients, which
    are reported through their status, do not stall the others)."""
    per_patient = jax.vmap(optx.rms_norm, in_axes=1)(scaled_error)
    return jnp.max(jnp.where(jnp.isfinite(per_patient), per_patient, 0.0))


def _outputs(model, params, times, ys, status, atol_scale):
    finite = jnp.all(jnp.isfinite(ys))
    floor = -10 * atol_scale * model.atol() - 1e-6 * jnp.max(jnp.abs(ys), axis=0)
    nonneg = jnp.asarray([s.nonnegative for s in model.states])
    positive = jnp.all(jnp.where(nonneg, ys >= floor, True))
    found = jnp.where(
        ~finite,
        status_code(Status.nonfinite_state),
        jnp.where(~positive, status_code(Status.negative_state), status_code(Status.successful)),
    )
    status = jnp.where(status == status_code(Status.successful), found, status)
    named = model.unpack(ys)
    observables = jax.vmap(lambda t, y: model.observables(t, model.unpack(y), params))(times, ys)
    return status, named, observables


def _solve_per_patient(
    model, solver, adjoint, max_steps, pb, ps, doses, times, rtol, atol_scale, closed_form=True
):
    dose_axis = 0 if doses.bolus.ndim == 3 else None

    def one(b, d):
        return _solve_one(
            model, solver, adjoint, max_steps, {**ps, **b}, d, times, rtol, atol_scale, closed_form
        )

    return jax.vmap(one, in_axes=(0, dose_axis))(pb, doses)


_solve = eqx.filter_jit(_solve_one)


@eqx.filter_jit
def _run_chunk(
    model, solver, adjoint, max_steps, closed_form, stepping, mesh, pb, ps, doses, times, *tols
):
    """One compiled chunk; with a mesh, each device solves its own slice of patients (its own
    step sizes: devices never wait for each other inside the solve)."""

    def local(pb, doses):
        if stepping == "shared":
            return _solve_shared(model, solver, adjoint, max_steps, pb, ps, doses, times, *tols)
        return _solve_per_patient(
            model, solver, adjoint, max_steps, pb, ps, doses, times, *tols, closed_form
        )

    if mesh is None:
        return local(pb, doses)
    spec = jax.sharding.PartitionSpec(_AXIS)
    dose_spec = DoseArrays(
        jax.sharding.PartitionSpec(_AXIS if doses.times.ndim == 2 else None),
        jax.sharding.PartitionSpec(_AXIS if doses.bolus.ndim == 3 else None),
        jax.sharding.PartitionSpec(_AXIS if doses.rate.ndim == 3 else None),
    )
    return jax.shard_map(
        local, mesh=mesh, in_specs=(spec, dose_spec), out_specs=spec, check_vma=False
    )(pb, doses)


_AXIS = "patients"
SHARED_PCOEFF, SHARED_ICOEFF = 0.4, 0.3
STEPPINGS = ("auto", "shared", "per_patient")


def _mesh(devices):
    if devices is None:
        return None
    devices = list(devices)
    if not devices:
        raise ArgumentError("devices must name at least one device, e.g. jax.devices()")
    return jax.sharding.Mesh(np.array(devices), (_AXIS,))


def _place(mesh, pb, doses):
    """Put a chunk's per-patient arrays on the devices (split along patients)."""
    if mesh is None:
        return pb, doses
    split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(_AXIS))
    whole = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

    def put(a, batched):
        return jax.device_put(a, split if batched else whole)

    pb = {k: put(v, True) for k, v in pb.items()}
    doses = DoseArrays(
        put(doses.times, doses.times.ndim == 2),
        put(doses.bolus, doses.bolus.ndim == 3),
        put(doses.rate, doses.rate.ndim == 3),
    )
    return pb, doses


def _split_params(params, regimens):
    """Per-patient parameters (host arrays) and shared scalars, and the number of patients."""
    sizes = {np.shape(v)[0] for v in params.values() if np.ndim(v) > 0}
    if isinstance(regimens, Sequence):
        sizes.add(len(regimens))
    elif isinstance(regimens, DoseArrays) and regimens.times.ndim == 2:
        sizes.add(regimens.times.shape[0])
    if len(sizes) > 1:
        raise ArgumentError(f"inconsistent numbers of patients in params/regimens: {sorted(sizes)}")
    n = sizes.pop() if sizes else 1
    batched = {k: np.asarray(v, dtype=float) for k, v in params.items() if np.ndim(v) > 0}
    shared = {k: jnp.asarray(v, dtype=float) for k, v in params.items() if np.ndim(v) == 0}
    if not batched and shared:  # one per-patient leaf carries the patient axis
        name = next(iter(shared))
        batched[name] = np.full(n, float(shared.pop(name)))
    for name, value in batched.items():
        if value.ndim != 1:
            raise CartpkError(f"parameter {name} must be a scalar or 1-D, got {value.shape}")
    return batched, shared, n


def _population_doses(model, regimens, n) -> DoseArrays:
    """Dose arrays: shared ``(events, ...)`` for one regimen, else ``(patients, events, ...)``
    as host arrays (chunks are sliced from them on the host)."""
    if isinstance(regimens, Sequence):
        doses = stack_regimens(regimens, model.state_names)
    else:
        doses = _as_dose_arrays(regimens, model)
    if doses.times.ndim == 1:
        return doses
    return jax.tree.map(np.asarray, doses)


def _pad(a, size):
    """Pad the patient axis to ``size`` by repeating the last patient (no recompilation for a
    short last chunk)."""
    a = np.asarray(a)
    if a.shape[0] == size:
        return a
    return np.concatenate([a, np.repeat(a[-1:], size - a.shape[0], axis=0)])


def _union_events(times):
    finite = times[np.isfinite(times)]
    return np.unique(finite)


def _max_events(doses, n, chunk) -> int:
    """Events per chunk on the chunk's common event grid (the same for every chunk)."""
    if doses.times.ndim == 1:
        return doses.times.shape[0]
    times = np.asarray(doses.times)
    sizes = [_union_events(times[s : s + chunk]).size for s in range(0, n, chunk)]
    return max(max(sizes), 1)


def _common_events(doses, n_events):
    """Put per-patient regimens of one chunk on one event grid (the union of their event
    times), so that the chunk can share step sizes. At another patient's event a patient gets
    no bolus and keeps its infusion rate; the extra segment boundary does not change its
    solution beyond the solver tolerance."""
    if doses.times.ndim == 1:
        return doses
    times, bolus, rate = (np.asarray(a) for a in (doses.times, doses.bolus, doses.rate))
    grid = np.full(n_events, np.inf)
    union = _union_events(times)
    grid[: union.size] = union
    # each patient's latest own event at or before each grid time
    index = np.stack([np.searchsorted(t, grid, side="right") - 1 for t in times])
    valid = (index >= 0) & np.isfinite(grid)[None, :]
    safe = np.maximum(index, 0)
    take = np.take_along_axis
    own_time = take(times, safe, axis=1)
    at_event = valid & (own_time == grid[None, :])
    new_bolus = np.where(at_event[..., None], take(bolus, safe[..., None], axis=1), 0.0)
    new_rate = np.where(valid[..., None], take(rate, safe[..., None], axis=1), 0.0)
    return DoseArrays(jnp.asarray(grid), jnp.asarray(new_bolus), jnp.asarray(new_rate))


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


def _check_times(times, model: AbstractModel) -> Array:
    """The output times as a float array; raises :class:`~cartpk.ArgumentError` unless they
    are a non-empty 1-D array and (when concrete) finite, non-decreasing and not before the
    model's ``start_time``."""
    try:
        array = jnp.asarray(times, dtype=float)
    except (TypeError, ValueError):
        raise ArgumentError(f"times must be an array of days, got {times!r}") from None
    if array.ndim != 1 or array.size == 0:
        raise ArgumentError(f"times must be a non-empty 1-D array of days, got shape {array.shape}")
    if _is_concrete(array):
        values = np.asarray(array)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise ArgumentError(
                f"times must be finite, got {values[bad[0]]} at index {bad[0]}: remove it"
            )
        down = np.flatnonzero(np.diff(values) < 0)
        if down.size:
            i = down[0]
            raise ArgumentError(
                f"times must be non-decreasing, got {values[i]:g} then {values[i + 1]:g} at "
                f"index {i + 1}: sort them (np.sort)"
            )
        start = model.start_time
        if start is not None and values[0] < start:
            raise ArgumentError(
                f"times must be >= {start:g} d for {type(model).__name__}, whose initial state "
                f"holds on day {start:g}; got {values[0]:g}"
            )
    return array


def _check_solve(rtol, atol_scale, max_steps, closed_form=True) -> None:
    """Raise :class:`~cartpk.ArgumentError` for a tolerance, step limit or closed-form switch no
    solve can honour (traced tolerances are not checked)."""
    if not isinstance(closed_form, bool):
        raise ArgumentError(f"closed_form must be True or False, got {closed_form!r}")
    _check_in("rtol", rtol, 1.0, f"use a relative tolerance such as {DEFAULT_RTOL:g} (the default)")
    _check_in("atol_scale", atol_scale, np.inf, "use a factor such as 1 (the default)")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int | np.integer) or max_steps < 1:
        raise ArgumentError(
            f"max_steps must be a positive integer (solver steps per dose interval), got "
            f"{max_steps!r}; the default is {DEFAULT_MAX_STEPS}"
        )


def _check_in(name, value, upper, fix) -> None:
    """``value`` must be a real scalar in the open interval ``(0, upper)``."""
    if not _is_concrete(value):
        return
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ArgumentError(f"{name} must be a number, got {value!r}: {fix}") from None
    if array.ndim != 0:
        raise ArgumentError(f"{name} must be a scalar, got shape {array.shape}: {fix}")
    if not 0.0 < float(array) < upper:
        raise ArgumentError(f"{name} = {float(array):g} is not in (0, {upper:g}): {fix}")


def _check_population(n, chunk_size, progress, stepping) -> None:
    """Raise :class:`~cartpk.ArgumentError` for a population setting that cannot run."""
    if n < 1:
        raise ArgumentError(
            "there are no patients to simulate: give params arrays of shape (patients,) or "
            "one regimen per patient, with at least one patient"
        )
    if chunk_size is not None and (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, int | np.integer)
        or chunk_size < 1
    ):
        raise ArgumentError(
            f"chunk_size must be a positive integer (patients per compiled batch) or None for "
            f"all at once, got {chunk_size!r}"
        )
    if progress is not None and not callable(progress):
        raise ArgumentError(
            f"progress must be a function progress(done, total) or None, got {progress!r}"
        )
    if stepping not in STEPPINGS:
        raise ArgumentError(f"stepping must be one of {STEPPINGS}, got {stepping!r}")


def _is_concrete(*trees) -> bool:
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(trees))


__all__ = [
    "Status",
    "Solution",
    "simulate",
    "simulate_population",
    "simulate_population_chunks",
]
