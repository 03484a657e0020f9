"""Schedule optimisation by gradient: the start day and dose of a combination drug, relative to
the CAR-T infusion, that maximise (or minimise) a population endpoint.

The objective is the mean of a differentiable endpoint (:data:`cartpk.endpoints.ENDPOINTS`) over
a fixed set of virtual patients, so it is a smooth function of the schedule. Its gradient comes
from differentiating through the ODE solver: dose times enter the solve as the ends of the
integration segments and dose amounts as jumps of the state, both differentiable.

Search: the box ``[lower, upper]`` of each variable is scaled to ``[0, 1]``; a coarse grid seeds
``starts`` local searches (the best grid points), each refined by projected Adam steps on the
scaled variables; the best point reached is returned. ``cartpk optimize SCENARIO.toml`` reads the
problem from the scenario's ``[optimize]`` table.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from .endpoints import EndpointOptions, numeric_endpoints
from .errors import ScenarioError
from .models.base import AbstractModel
from .progress import step, track
from .regimen import DoseArrays, stack_regimens
from .scenario import REFERENCE_WEIGHT_KG, OptimizeSpec, Scenario
from .simulate import simulate
from .therapies import THERAPIES


@dataclass
class OptimizeResult:
    """The optimum and how it was found.

    Attributes:
        best: variable -> optimal value (``start_day`` in d, ``dose`` in the therapy's unit).
        value: population-mean endpoint at the optimum.
        seed_grid: the coarse grid's points and objective values.
        history: every Adam step of every local search (``start``, ``iteration``, variables,
            ``objective``).
        seconds: wall time.
    """

    best: dict[str, float]
    value: float
    seed_grid: pd.DataFrame
    history: pd.DataFrame
    seconds: float


class _Objective(eqx.Module):
    """The data of ``J(x)``: arrays are traced, configuration is static, so every problem of the
    same shape and configuration shares one compiled function (module-level jit caches)."""

    model: AbstractModel
    params: dict
    base: DoseArrays
    dose_scale: jax.Array
    times: tuple[float, ...] = eqx.field(static=True)
    variables: tuple[str, ...] = eqx.field(static=True)
    fixed: tuple[tuple[str, float], ...] = eqx.field(static=True)
    interval: float = eqx.field(static=True)
    count: int = eqx.field(static=True)
    dose_state: int = eqx.field(static=True)
    endpoint: str = eqx.field(static=True)
    options: EndpointOptions = eqx.field(static=True)
    simulate_options: tuple[tuple[str, object], ...] = eqx.field(static=True, default=())

    def doses(self, x, base: DoseArrays, scale) -> DoseArrays:
        """The base regimen plus the optimised therapy's doses, as sorted dose arrays."""
        values = dict(self.fixed) | {name: x[i] for i, name in enumerate(self.variables)}
        times = values["start_day"] + self.interval * jnp.arange(self.count)
        bolus = jnp.zeros((self.count, base.bolus.shape[-1]))
        bolus = bolus.at[:, self.dose_state].set(values["dose"] * scale)
        all_times = jnp.concatenate([base.times, times])
        order = jnp.argsort(all_times)
        all_bolus = jnp.concatenate([base.bolus, bolus])[order]
        return DoseArrays(all_times[order], all_bolus, jnp.zeros_like(all_bolus))

    def __call__(self, x):
        times = np.asarray(self.times)

        def one(params, base, scale):
            doses = self.doses(x, base, scale)
            solution = simulate(self.model, params, doses, times, **dict(self.simulate_options))
            value = numeric_endpoints(solution.observables, times, self.options)[self.endpoint]
            return jnp.where(solution.status == 0, value, jnp.nan)

        return jnp.mean(jax.vmap(one)(self.params, self.base, self.dose_scale))


@eqx.filter_jit
def _value_and_grad(objective: _Objective, x):
    if isinstance(dict(objective.simulate_options).get("adjoint"), dfx.ForwardMode):
        return objective(x), jax.jacfwd(objective)(x)
    return jax.value_and_grad(objective)(x)


@eqx.filter_jit
def _evaluate(objective: _Objective, points):
    return jax.vmap(objective)(points)


class ScheduleProblem:
    """The objective ``J(x)`` of a schedule ``x`` (a vector of the spec's variables, in the order
    of ``variables``): the mean endpoint over the first ``spec.patients`` patients of the
    scenario's population, in the spec's arm, with the spec's therapy given at ``x``.

    ``simulate_options`` go to :func:`~cartpk.simulate` (default: its solver and tolerances).
    An explicit solver (``solver=diffrax.Tsit5()``) compiles several times faster;
    ``adjoint=diffrax.ForwardMode()`` computes the gradient in forward mode, cheaper than the
    default reverse mode for a few variables.
    """

    def __init__(self, scenario: Scenario, spec: OptimizeSpec | None = None, **simulate_options):
        spec = spec or scenario.optimize
        if spec is None:
            raise ScenarioError("the scenario has no [optimize] table")
        self.spec = spec
        self.variables = tuple(spec.bounds)
        self.lower = np.asarray([spec.bounds[v][0] for v in self.variables])
        self.upper = np.asarray([spec.bounds[v][1] for v in self.variables])
        arm = spec.arm
        course = next(c for c in arm.therapies if c.name == spec.therapy)
        model = scenario.model(arm.disease)
        params, patients = scenario.population.sample(
            model, 0, spec.patients, scenario.arm_parameters(arm, model)
        )
        weights = (
            patients["weight_kg"].to_numpy()
            if "weight_kg" in patients
            else np.full(spec.patients, REFERENCE_WEIGHT_KG)
        )
        others = replace(arm, therapies=tuple(c for c in arm.therapies if c is not course))
        regimens = [others.regimen(w) for w in weights]
        if any(d.duration > 0 for r in regimens for d in r.doses) or course.infusion_days:
            raise ScenarioError(
                f"optimize: arm {arm.name!r} has infusions; schedule optimisation needs bolus doses"
            )
        dosing = THERAPIES[spec.therapy].dosing
        self.objective = _Objective(
            model=model,
            params={k: jnp.asarray(v) for k, v in params.items()},
            base=stack_regimens(regimens, model.state_names),
            dose_scale=jnp.asarray(weights if dosing.per_kg else np.ones_like(weights)),
            times=tuple(scenario.times(spec.bounds.get("start_day", (0.0, 0.0))[0]).tolist()),
            variables=self.variables,
            fixed=(("start_day", course.start_day), ("dose", course.dose)),
            interval=course.interval_days,
            count=course.count,
            dose_state=model.state_names.index(dosing.state),
            endpoint=spec.endpoint,
            options=scenario.outputs,
            simulate_options=tuple(sorted(simulate_options.items())),
        )

    def value_and_grad(self, x):
        """``(J(x), dJ/dx)`` by differentiating through the solver."""
        return _value_and_grad(self.objective, jnp.asarray(x, dtype=float))

    def evaluate(self, points, block: int = 8) -> np.ndarray:
        """``J`` at many schedules (rows of ``points``), in fixed-size blocks (one compile)."""
        points = np.atleast_2d(np.asarray(points, dtype=float))
        values = []
        for i in range(0, len(points), block):
            part = points[i : i + block]
            padded = np.concatenate([part, np.repeat(part[-1:], block - len(part), axis=0)])
            values.append(np.asarray(_evaluate(self.objective, jnp.asarray(padded)))[: len(part)])
        return np.concatenate(values)

    def unscaled(self, u) -> np.ndarray:
        """Schedule from the box-scaled variables ``u`` in [0, 1]."""
        return self.lower + np.asarray(u) * (self.upper - self.lower)


def optimize_schedule(
    scenario: Scenario,
    spec: OptimizeSpec | None = None,
    *,
    grid_points: int = 5,
    learning_rate: float = 0.05,
    progress: Callable[[str], None] | None = print,
    **simulate_options,
) -> OptimizeResult:
    """Find the schedule that optimises the spec's endpoint (see the module docstring).

    Args:
        scenario: a scenario with the arm and therapy to optimise.
        spec: what to vary and optimise (default: the scenario's ``[optimize]`` table).
        grid_points: points per variable of the seeding grid.
        learning_rate: Adam step on the scaled ``[0, 1]`` variables.
        progress: called with a line of text after each stage.
        **simulate_options: passed to :func:`~cartpk.simulate` through
            :class:`ScheduleProblem` (``solver``, ``rtol``, ``adjoint`` ...).

    Raises:
        ScenarioError: if the objective is not finite at the seeding grid (failed solves).
    """
    started = time.perf_counter()
    say = progress or (lambda message: None)
    problem = ScheduleProblem(scenario, spec, **simulate_options)
    spec = problem.spec
    sign = -1.0 if spec.goal == "maximize" else 1.0
    say(
        f"optimize: {spec.goal} mean {spec.endpoint} over {spec.patients} patients, "
        f"varying {', '.join(problem.variables)} of {spec.therapy} in arm {spec.arm.name!r} "
        "(compiling the solver and its gradient: a few minutes)"
    )
    axes = [np.linspace(0.0, 1.0, grid_points) for _ in problem.variables]
    seeds_u = np.asarray(list(itertools.product(*axes)))
    with step(progress, f"seeding grid of {len(seeds_u)} points (the first compiles)"):
        seed_values = problem.evaluate(problem.unscaled(seeds_u))
    if not np.all(np.isfinite(seed_values)):
        bad = problem.unscaled(seeds_u[~np.isfinite(seed_values)][0])
        raise ScenarioError(
            f"optimize: the simulation failed at {dict(zip(problem.variables, bad, strict=True))}"
        )
    seed_grid = pd.DataFrame(problem.unscaled(seeds_u), columns=list(problem.variables))
    seed_grid["objective"] = seed_values
    best_seed = seed_values[np.argmin(sign * seed_values)]
    say(f"  seeding grid: {len(seeds_u)} points, best {best_seed:.6g}")

    order = np.argsort(sign * seed_values)[: spec.starts]
    scale = abs(float(seed_values[order[0]])) or 1.0
    optimiser = optax.adam(learning_rate)
    rows = []
    best_u, best_value = seeds_u[order[0]], float(seed_values[order[0]])
    label = f"local searches ({spec.iterations} gradient steps each)"
    for start, index in track(list(enumerate(order)), progress, label):
        u = jnp.asarray(seeds_u[index])
        state = optimiser.init(u)
        for iteration in range(spec.iterations):
            x = jnp.asarray(problem.unscaled(u))
            value, grad = problem.value_and_grad(x)
            value = float(value)
            rows.append(
                {
                    "start": start,
                    "iteration": iteration,
                    **dict(zip(problem.variables, np.asarray(x), strict=True)),
                    "objective": value,
                }
            )
            if np.isfinite(value) and sign * value < sign * best_value:
                best_u, best_value = np.asarray(u), value
            grad_u = sign * np.asarray(grad) * (problem.upper - problem.lower) / scale
            if not np.all(np.isfinite(grad_u)):
                break
            updates, state = optimiser.update(jnp.asarray(grad_u), state)
            u = jnp.clip(optax.apply_updates(u, updates), 0.0, 1.0)
        say(f"  local search {start + 1}/{len(order)}: best so far {best_value:.6g}")
    best = dict(zip(problem.variables, problem.unscaled(best_u).tolist(), strict=True))
    return OptimizeResult(
        best, best_value, seed_grid, pd.DataFrame(rows), time.perf_counter() - started
    )
