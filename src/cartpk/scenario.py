"""What-if scenarios: a TOML file of population, CAR-T product, arms and outputs, run over a virtual
population (``cartpk simulate SCENARIO.toml --out DIR``).

The file format is documented with examples in ``docs/scenarios.md``. Every key is checked: an
unknown key, a wrong type or an out-of-range value raises :class:`~cartpk.errors.ScenarioError`
naming the file and the key (``arms[2].therapies[0].dose``).
"""

from __future__ import annotations

import itertools
import math
import time
import tomllib
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .endpoints import ENDPOINTS, EndpointOptions, endpoint_table
from .errors import CartpkError, ScenarioError
from .models import BloodStromaTumour
from .models.blood_stroma_tumour import MODES
from .plots import band_frame
from .population import MAX_PATIENTS, Covariate, Subgroup, VirtualPopulation
from .regimen import Regimen, stack_regimens
from .simulate import SimulationWarning, simulate_population
from .therapies import THERAPIES, combine

#: CAR-T delivery route -> the state that receives the cells.
ROUTES = {
    "intravenous": "blood_effector",
    "locoregional": "stroma_effector",
    "intratumoural": "tumour_effector",
}
#: Armoured or engineered CAR-T products (therapy modules without a dose), plus the plain one.
PRODUCTS = ("conventional",) + tuple(n for n, c in THERAPIES.items() if c.product_neutral)
#: Observables whose population bands are written to ``trajectories.csv`` by default.
TRAJECTORIES = ("blood_cells_per_ul", "tumour_car_t", "tumour_burden", "exhausted_fraction")
#: Reference body weight (kg) for per-kg doses when the population has no ``weight_kg``.
REFERENCE_WEIGHT_KG = 70.0
#: Variables a parameter grid or the optimiser may vary in a therapy's schedule.
SCHEDULE_VARIABLES = ("start_day", "dose", "interval_days", "count")


@dataclass(frozen=True)
class TherapyCourse:
    """One therapy in an arm: its schedule (missing values are the therapy's standard ones)."""

    name: str
    dose: float
    start_day: float
    interval_days: float
    count: int
    infusion_days: float = 0.0

    def regimen(self, weight_kg: float) -> Regimen:
        return THERAPIES[self.name].dosing.regimen(
            self.dose, self.start_day, self.interval_days, self.count, weight_kg, self.infusion_days
        )


@dataclass(frozen=True)
class Product:
    """The CAR-T product: dose (cells per administration), kind, delivery route and schedule."""

    dose_cells: float = 1e8
    kind: str = "conventional"
    route: str = "intravenous"
    day: float = 0.0
    count: int = 1
    interval_days: float = 7.0

    def regimen(self) -> Regimen:
        return Regimen.schedule(
            self.dose_cells,
            ROUTES[self.route],
            start=self.day,
            interval=self.interval_days,
            count=self.count,
        )


@dataclass(frozen=True)
class Arm:
    """A treatment arm: disease setting, product, therapies and parameter overrides."""

    name: str
    disease: str
    product: Product
    therapies: tuple[TherapyCourse, ...] = ()
    parameters: Mapping[str, float] = field(default_factory=dict)
    grid: Mapping[str, float] = field(default_factory=dict)

    def regimen(self, weight_kg: float) -> Regimen:
        regimen = self.product.regimen()
        for course in self.therapies:
            regimen = regimen + course.regimen(weight_kg)
        return regimen


@dataclass(frozen=True)
class Grid:
    """A parameter grid over one arm's therapy schedule (e.g. start day x dose)."""

    arm: str
    therapy: str
    values: Mapping[str, tuple[float, ...]]
    endpoint: str = "tumour_car_t_auc_cell_d"


@dataclass(frozen=True)
class OptimizeSpec:
    """What ``cartpk optimize`` varies and maximises (see :mod:`cartpk.optimize`)."""

    arm: Arm
    therapy: str
    bounds: Mapping[str, tuple[float, float]]
    endpoint: str = "tumour_car_t_auc_cell_d"
    goal: str = "maximize"
    patients: int = 16
    starts: int = 4
    iterations: int = 60


@dataclass(frozen=True)
class Scenario:
    """A parsed, validated scenario file."""

    name: str
    description: str
    horizon_days: float
    output_step_days: float
    size: int
    chunk_size: int
    population: VirtualPopulation
    parameters: Mapping[str, float]
    arms: tuple[Arm, ...]
    outputs: EndpointOptions
    trajectories: tuple[str, ...] = TRAJECTORIES
    band_patients: int = 1000
    grid: Grid | None = None
    optimize: OptimizeSpec | None = None
    path: Path | None = None

    def times(self, earliest_dose: float = 0.0) -> np.ndarray:
        """Output grid (d): from the earliest dose (or day 0) to the horizon, plus endpoint days.

        The first output is the pre-treatment baseline; ``earliest_dose`` moves it earlier (e.g.
        for a schedule search whose doses may start before any arm's).
        """
        first = min(
            [0.0, earliest_dose]
            + [a.product.day for a in self.arms]
            + [c.start_day for a in self.arms for c in a.therapies]
        )
        start = min(first, math.floor(first / self.output_step_days) * self.output_step_days)
        regular = np.arange(start, self.horizon_days + 1e-9, self.output_step_days)
        needed = self.outputs.required_times(self.horizon_days)
        return np.unique(np.concatenate([regular, needed, [start]]))

    def model(self, disease: str):
        """The compiled model for one disease setting: the core plus every therapy any arm uses."""
        used = {c.name for a in self.arms for c in a.therapies}
        used |= {a.product.kind for a in self.arms if a.product.kind != "conventional"}
        therapies = [cls() for name, cls in THERAPIES.items() if name in used]
        return combine(BloodStromaTumour(disease), *therapies)

    def arm_parameters(self, arm: Arm, model) -> dict[str, float]:
        """Typical-value overrides of one arm (product properties off unless it uses them)."""
        names = {p.name for p in model.parameters}
        neutral = {
            k: v
            for name, cls in THERAPIES.items()
            if name != arm.product.kind
            for k, v in cls.product_neutral.items()
            if k in names
        }
        return {**neutral, **self.parameters, **arm.parameters}


def bundled_scenario(name: str) -> Path:
    """Path of an example scenario shipped with cartpk (``scenarios/NAME.toml``)."""
    for folder in (
        Path(__file__).parent / "_scenarios",
        Path(__file__).resolve().parents[2] / "scenarios",
    ):
        path = folder / f"{name}.toml"
        if path.is_file():
            return path
    raise ScenarioError(f"no bundled scenario named {name!r}")


# -- reading -----------------------------------------------------------------------------------


class _Table:
    """A TOML table with its location, for validated reads that name the bad key."""

    def __init__(self, data, where: str, source: str):
        if not isinstance(data, dict):
            raise ScenarioError(f"{source}: {where} must be a table")
        self.data, self.where, self.source, self.used = data, where, source, set()

    def _key(self, key):
        return f"{self.where}.{key}" if self.where and key else self.where or key

    def error(self, key, message) -> ScenarioError:
        return ScenarioError(f"{self.source}: {self._key(key)} {message}")

    def get(self, key, kind, default=..., rule: tuple[Callable, str] | None = None):
        """The value at ``key`` (``default`` if absent; ``...`` if required), checked to be of
        ``kind`` and, with ``rule = (check, message)``, to satisfy ``check``."""
        self.used.add(key)
        if key not in self.data:
            if default is ...:
                raise self.error(key, "is required")
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.error(key, f"must be a {names}, got {value!r}")
        if kind is float and not math.isfinite(value):
            raise self.error(key, f"must be finite, got {value!r}")
        if rule is not None and not rule[0](value):
            raise self.error(key, f"{rule[1]}, got {value!r}")
        return value

    def table(self, key, required=False) -> _Table:
        value = self.get(key, dict, ... if required else {})
        return _Table(value, self._key(key), self.source)

    def tables(self, key) -> list[_Table]:
        value = self.get(key, list, [])
        return [_Table(v, f"{self._key(key)}[{i}]", self.source) for i, v in enumerate(value)]

    def numbers(self, key, check=None, message="") -> dict[str, float]:
        """A table of name -> finite number (each satisfying ``check`` if given)."""
        table = self.table(key)
        rule = (check, message) if check else None
        return {k: table.get(k, float, ..., rule) for k in table.data}

    def finish(self):
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ScenarioError(
                f"{self.source}: unknown key {self._key(unknown[0])!r}"
                f" (allowed here: {', '.join(sorted(self.used))})"
            )


def _between(lo: float, hi: float, unit: str = "", open_low: bool = False):
    """``(check, rule)`` for ``lo <= v <= hi`` (``lo < v`` if ``open_low``)."""
    check = (lambda v: lo < v <= hi) if open_low else (lambda v: lo <= v <= hi)
    rule = f"must be in {'(' if open_low else '['}{lo:g}, {hi:g}]" + (f" {unit}" if unit else "")
    return check, rule


def _one_of(options, what: str = "one of"):
    return (lambda v: v in options), f"must be {what} {', '.join(options)}"


_POSITIVE = (lambda v: v > 0), "must be > 0"
_NAME = (lambda v: bool(v.strip())), "must not be empty"
_CV = _between(0, 10)
#: Days between doses of a schedule (the same span as start days).
_INTERVAL = _between(0, 3650, "d", open_low=True)
#: Output times a scenario may ask for (``horizon / output_step_days`` and the assessments):
#: every one is kept for every patient of a chunk, so this bounds memory.
MAX_OUTPUT_TIMES = 10_000
#: Grid points a ``[grid]`` may expand to (each is an arm simulated for every patient).
MAX_GRID_POINTS = 10_000
#: Endpoints use days 0-28 (AUC0-28, exhausted fraction on day 28).
MIN_HORIZON_DAYS = 28.0
#: Result columns a covariate may not be named after.
RESERVED_COLUMNS = ("arm", "patient", "subgroup", "status", *SCHEDULE_VARIABLES, *ENDPOINTS)


def load_scenario(path: str | Path, patients: int | None = None) -> Scenario:
    """Read and validate a scenario file (``patients`` overrides ``population.size``)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise ScenarioError(f"cannot read scenario {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not a TOML file (not UTF-8 text)") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(f"{path}: not valid TOML: {error}") from None
    return parse_scenario(data, source=str(path), patients=patients, path=path)


def parse_scenario(
    data: Mapping, source: str = "scenario", patients: int | None = None, path: Path | None = None
) -> Scenario:
    """Validate a scenario given as a dict (the parsed TOML)."""
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{source}: a scenario must be a table of keys, got {data!r:.40}")
    top = _Table(dict(data), "", source)
    name = top.get("name", str, ..., _NAME)
    description = top.get("description", str, "")
    disease = top.get("disease", str, "solid", _one_of(MODES))
    horizon = top.get("horizon_days", float, 180.0, _between(0, 3650, open_low=True))
    if horizon < MIN_HORIZON_DAYS:
        raise top.error(
            "horizon_days",
            f"must be >= {MIN_HORIZON_DAYS:g} (endpoints use days 0-28), got {horizon}",
        )
    step = top.get("output_step_days", float, 1.0, _between(0, horizon, open_low=True))
    if horizon / step > MAX_OUTPUT_TIMES:
        raise top.error(
            "output_step_days",
            f"gives {horizon / step:.3g} output times, more than {MAX_OUTPUT_TIMES}; "
            f"use a step >= {horizon / MAX_OUTPUT_TIMES:.3g} d",
        )

    known = {p.name for p in BloodStromaTumour(disease).parameters}
    known |= {p.name for cls in THERAPIES.values() for p in cls.parameters}

    def parameters_of(table: _Table) -> dict[str, float]:
        values = table.numbers("parameters")
        for k in values:
            if k not in known:
                raise table.error(
                    f"parameters.{k}", "is not a parameter of the model or any therapy"
                )
        return values

    parameters = parameters_of(top)
    population, size, chunk = _population(top.table("population", required=True), patients)
    product = _product(top.table("product"), Product())

    arms = []
    for table in top.tables("arms"):
        arm = Arm(
            name=table.get("name", str, ..., _NAME),
            disease=table.get("disease", str, disease, _one_of(MODES)),
            product=_product(table.table("product"), product),
            therapies=tuple(_course(t) for t in table.tables("therapies")),
            parameters=parameters_of(table),
        )
        table.finish()
        arms.append(arm)
    if not arms:
        raise ScenarioError(f"{source}: arms: at least one [[arms]] table is required")
    names = [a.name for a in arms]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ScenarioError(f"{source}: arms: two arms are named {duplicate!r}")

    grid = _grid(top.table("grid"), arms) if "grid" in top.data else None
    optimize = _optimize(top.table("optimize"), arms) if "optimize" in top.data else None
    if grid is not None:
        arms = _expand_grid(arms, grid)
        names = [a.name for a in arms]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate:
            raise ScenarioError(f"{source}: grid: two arms would be named {duplicate!r}")

    table = top.table("outputs")
    defaults = EndpointOptions()
    options = {
        key: table.get(key, float, getattr(defaults, key), _POSITIVE)
        for key in EndpointOptions.__dataclass_fields__
    }
    if options["tumour_exposure_days"] > horizon:
        raise table.error(
            "tumour_exposure_days",
            f"must be <= horizon_days ({horizon:g}), got {options['tumour_exposure_days']}",
        )
    if horizon / options["assessment_interval_days"] > MAX_OUTPUT_TIMES:
        raise table.error(
            "assessment_interval_days",
            f"gives more than {MAX_OUTPUT_TIMES} assessments, got "
            f"{options['assessment_interval_days']}",
        )
    trajectories = tuple(
        table.get(
            "trajectories",
            list,
            list(TRAJECTORIES),
            (_unique_names, "must be a non-empty list of distinct observable names"),
        )
    )
    band_patients = table.get("band_patients", int, 1000, _POSITIVE)
    table.finish()
    top.finish()
    first = min(
        [0.0]
        + [a.product.day for a in arms]
        + [c.start_day for a in arms for c in a.therapies]
        + ([optimize.bounds["start_day"][0]] if optimize and "start_day" in optimize.bounds else [])
    )
    if (horizon - first) / step > MAX_OUTPUT_TIMES:
        raise top.error(
            "output_step_days",
            f"gives {(horizon - first) / step:.3g} output times from the first dose (day "
            f"{first:g}) to the horizon, more than {MAX_OUTPUT_TIMES}",
        )

    scenario = Scenario(
        name=name,
        description=description,
        horizon_days=horizon,
        output_step_days=step,
        size=size,
        chunk_size=chunk,
        population=population,
        parameters=parameters,
        arms=tuple(arms),
        outputs=EndpointOptions(**options),
        trajectories=trajectories,
        band_patients=band_patients,
        grid=grid,
        optimize=optimize,
        path=path,
    )
    _check_models(scenario, source)
    return scenario


def _population(table: _Table, patients: int | None):
    size = table.get("size", int, 100, _between(1, MAX_PATIENTS))
    if patients is not None:
        if not 1 <= patients <= MAX_PATIENTS:
            raise ScenarioError(f"--patients must be in [1, {MAX_PATIENTS}], got {patients}")
        size = patients
    seed = table.get("seed", int, 0, _between(0, 2**32 - 1))
    chunk = table.get("chunk_size", int, 256, _between(1, 1_000_000))
    variability = table.numbers("variability", *_CV)
    correlations = {}
    for entry in table.tables("correlations"):
        pair = entry.get("parameters", list, ..., (_is_pair, "must be two parameter names"))
        if any(set(pair) == set(other) for other in correlations):
            raise entry.error("parameters", f"{pair[0]}/{pair[1]} are correlated twice")
        correlations[tuple(pair)] = entry.get(
            "r", float, ..., ((lambda v: -1 < v < 1), "must be in (-1, 1)")
        )
        entry.finish()
    subgroups = []
    for entry in table.tables("subgroups"):
        name = entry.get("name", str, ..., _NAME)
        if name in [g.name for g in subgroups] + ["reference"]:
            raise entry.error(
                "name", f"{name!r} is taken (by another subgroup; 'reference' means in none)"
            )
        subgroups.append(
            Subgroup(
                name,
                entry.get("fraction", float, ..., _between(0, 1, open_low=True)),
                entry.numbers("scale", *_POSITIVE),
                entry.numbers("set"),
            )
        )
        entry.finish()
    covariates = []
    covariate_tables = table.table("covariates")
    for name in covariate_tables.data:
        if not name.strip() or name in RESERVED_COLUMNS:
            raise covariate_tables.error(
                repr(name), "is not a usable covariate name (empty or a result column)"
            )
        entry = covariate_tables.table(name)
        covariates.append(
            Covariate(
                name,
                entry.get("median", float, ..., _POSITIVE),
                entry.get("cv", float, 0.0, _CV),
                entry.numbers("effects"),
            )
        )
        entry.finish()
    covariate_tables.finish()
    table.finish()
    population = VirtualPopulation(
        variability, correlations, tuple(subgroups), tuple(covariates), seed
    )
    return population, size, chunk


def _is_pair(value) -> bool:
    return len(value) == 2 and all(isinstance(x, str) for x in value)


def _unique_names(value) -> bool:
    return bool(value) and all(isinstance(x, str) for x in value) and len(set(value)) == len(value)


def _product(table: _Table, base: Product) -> Product:
    product = Product(
        dose_cells=table.get(
            "dose_cells", float, base.dose_cells, _between(0, 1e12, "cells", True)
        ),
        kind=table.get("type", str, base.kind, _one_of(PRODUCTS)),
        route=table.get("route", str, base.route, _one_of(tuple(ROUTES))),
        day=table.get("day", float, base.day, _between(-365, 365)),
        count=table.get("count", int, base.count, _between(1, 100)),
        interval_days=table.get("interval_days", float, base.interval_days, _INTERVAL),
    )
    table.finish()
    return product


def _schedule_rules(unit: str) -> dict[str, tuple[Callable, str]]:
    """The range of each schedule variable of a therapy course (also for grids and bounds)."""
    return {
        "dose": _between(0, 1e6, unit),
        "start_day": _between(-365, 3650),
        "interval_days": _INTERVAL,
        "count": _between(1, 1000),
    }


def _course(table: _Table) -> TherapyCourse:
    dosed = tuple(n for n, c in THERAPIES.items() if c.dosing)
    name = table.get(
        "name", str, ..., _one_of(dosed, "a dosed therapy (armoured products go in product.type):")
    )
    dosing = THERAPIES[name].dosing
    unit = dosing.amount_unit
    table.get("unit", str, unit, ((lambda v: v == unit), f"must be {unit!r} for {name}"))
    rules = _schedule_rules(unit)
    course = TherapyCourse(
        name=name,
        dose=table.get("dose", float, dosing.amount, rules["dose"]),
        start_day=table.get("start_day", float, dosing.start, rules["start_day"]),
        interval_days=table.get("interval_days", float, dosing.interval, rules["interval_days"]),
        count=table.get("count", int, dosing.count, rules["count"]),
        infusion_days=table.get("infusion_days", float, 0.0, _between(0, 30)),
    )
    table.finish()
    return course


def _arm_and_therapy(table: _Table, arms: Sequence[Arm]) -> tuple[Arm, str]:
    """The ``arm`` and ``therapy`` keys of a [grid] or [optimize] table."""
    arm_name = table.get("arm", str, ..., _one_of(tuple(a.name for a in arms), "one of the arms:"))
    arm = next(a for a in arms if a.name == arm_name)
    courses = tuple(c.name for c in arm.therapies)
    therapy = table.get("therapy", str, ..., _one_of(courses, f"a therapy of arm {arm_name!r}:"))
    if courses.count(therapy) > 1:
        raise table.error(
            "therapy",
            f"{therapy!r} has {courses.count(therapy)} courses in arm {arm_name!r}; "
            "which one to vary is ambiguous",
        )
    return arm, therapy


def _grid(table: _Table, arms: Sequence[Arm]) -> Grid:
    arm, therapy = _arm_and_therapy(table, arms)
    rules = _schedule_rules(THERAPIES[therapy].dosing.amount_unit)
    values = {}
    for variable in SCHEDULE_VARIABLES:
        if variable in table.data:
            raw = table.get(
                variable, list, ..., (lambda v: 0 < len(v) <= 1000, "must be a non-empty list")
            )
            items = _Table(
                {str(i): v for i, v in enumerate(raw)}, table._key(variable), table.source
            )
            kind = int if variable == "count" else float
            values[variable] = tuple(
                items.get(str(i), kind, ..., rules[variable]) for i in range(len(raw))
            )
            if len(set(values[variable])) < len(raw):
                raise table.error(variable, f"repeats a value, got {raw!r}")
    if not values:
        raise table.error("", f"needs at least one of {', '.join(SCHEDULE_VARIABLES)}")
    points = math.prod(len(v) for v in values.values())
    if points > MAX_GRID_POINTS:
        raise table.error("", f"has {points} points, more than {MAX_GRID_POINTS}; split it")
    endpoint = table.get("endpoint", str, "tumour_car_t_auc_cell_d", _one_of(tuple(ENDPOINTS)))
    table.finish()
    return Grid(arm.name, therapy, values, endpoint)


def _expand_grid(arms: list[Arm], grid: Grid) -> list[Arm]:
    """Replace the grid's arm by one arm per grid point."""
    out = []
    for arm in arms:
        if arm.name != grid.arm:
            out.append(arm)
            continue
        for point in itertools.product(*grid.values.values()):
            values = dict(zip(grid.values, point, strict=True))
            courses = tuple(
                replace(c, **values) if c.name == grid.therapy else c for c in arm.therapies
            )
            label = ", ".join(f"{k}={v:g}" for k, v in values.items())
            out.append(replace(arm, name=f"{arm.name} [{label}]", therapies=courses, grid=values))
    return out


def _optimize(table: _Table, arms: Sequence[Arm]) -> OptimizeSpec:
    arm, therapy = _arm_and_therapy(table, arms)
    rules = _schedule_rules(THERAPIES[therapy].dosing.amount_unit)
    bounds = {}
    for variable in ("start_day", "dose"):
        if variable in table.data:
            pair = table.get(
                variable, list, ..., (_is_interval, "must be [lower, upper] with lower < upper")
            )
            check, rule = rules[variable]
            if not (check(pair[0]) and check(pair[1])):
                raise table.error(
                    variable, f"{rule.replace('must be', 'bounds must be')}, got {pair}"
                )
            bounds[variable] = (float(pair[0]), float(pair[1]))
    if not bounds:
        raise table.error("", "needs bounds for start_day and/or dose")
    differentiable = tuple(k for k, (_, d) in ENDPOINTS.items() if d)
    spec = OptimizeSpec(
        arm=arm,
        therapy=therapy,
        bounds=bounds,
        endpoint=table.get(
            "endpoint",
            str,
            "tumour_car_t_auc_cell_d",
            _one_of(differentiable, "a differentiable endpoint:"),
        ),
        goal=table.get("goal", str, "maximize", _one_of(("maximize", "minimize"))),
        patients=table.get("patients", int, 16, _between(1, 100_000)),
        starts=table.get("starts", int, 4, _between(1, 64)),
        iterations=table.get("iterations", int, 60, _between(1, 10_000)),
    )
    table.finish()
    return spec


def _is_interval(value) -> bool:
    numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in value)
    return (
        len(value) == 2
        and numbers
        and math.isfinite(value[0])
        and value[0] < value[1]
        and math.isfinite(value[1])
    )


def _check_models(scenario: Scenario, source: str) -> None:
    """Check what needs the assembled model: parameter values, trajectories, dose compartments."""
    for disease in sorted({a.disease for a in scenario.arms}):
        model = scenario.model(disease)
        names = {p.name for p in model.parameters}
        observables = set(
            model.observables(
                0.0, model.initial_state(model.default_params()), model.default_params()
            )
        )
        for name in scenario.trajectories:
            if name not in observables:
                raise ScenarioError(
                    f"{source}: outputs.trajectories: unknown observable {name!r} "
                    f"(known: {', '.join(sorted(observables))})"
                )
        try:
            scenario.population.validate(model)
        except ScenarioError as error:
            raise ScenarioError(f"{source}: {error}") from None
        checked = set()  # grid arms share their parameters
        for arm in scenario.arms:
            overrides = {k: v for k, v in scenario.arm_parameters(arm, model).items() if k in names}
            if arm.disease != disease or tuple(overrides.items()) in checked:
                continue
            checked.add(tuple(overrides.items()))
            where = f"arm {arm.name!r}"
            try:
                model.parameter_set.validate(model.default_params(**overrides))
                typical = {k: float(v) for k, v in model.default_params(**overrides).items()}
                for group in scenario.population.subgroups:  # typical values of each subgroup
                    where = f"arm {arm.name!r}, subgroup {group.name!r}"
                    scaled = {k: typical[k] * factor for k, factor in group.scale.items()}
                    values = {**overrides, **scaled, **group.set}
                    model.parameter_set.validate(model.default_params(**values))
            except CartpkError as error:
                raise ScenarioError(f"{source}: {where}: {error}") from None


# -- running -----------------------------------------------------------------------------------


@dataclass
class ScenarioResult:
    """What :func:`run_scenario` computed."""

    endpoints: pd.DataFrame
    summary: pd.DataFrame
    trajectories: pd.DataFrame
    grid: pd.DataFrame | None
    seconds: float


def run_scenario(
    scenario: Scenario, progress: Callable[[str], None] | None = print
) -> ScenarioResult:
    """Simulate every arm over the virtual population, chunk by chunk, and compute endpoints.

    Each disease setting compiles one model (every therapy of every arm present, switched on by
    its doses or parameters); all arms of a chunk of patients run as one fixed-size batch, so the
    model compiles once whatever the population size.
    """
    started = time.perf_counter()
    times = scenario.times()
    say = progress or (lambda message: None)
    tables, bands = [], []
    for disease in sorted({a.disease for a in scenario.arms}, key=MODES.index):
        arms = [a for a in scenario.arms if a.disease == disease]
        model = scenario.model(disease)
        per_chunk = max(1, min(scenario.size, scenario.chunk_size // len(arms)))
        batch = per_chunk * len(arms)
        n_events = max(a.regimen(REFERENCE_WEIGHT_KG).n_events() for a in arms)
        say(
            f"{disease} setting: {len(arms)} arm(s) x {scenario.size} patients, batches of "
            f"{batch} (the first batch compiles the model: up to a few minutes)"
        )
        for start in range(0, scenario.size, per_chunk):
            stop = min(start + per_chunk, scenario.size)
            table, band = _run_chunk(scenario, model, arms, start, stop, times, batch, n_events)
            tables.append(table)
            bands.append(band)
            elapsed = time.perf_counter() - started
            say(
                f"  patients {stop}/{scenario.size} ({100 * stop / scenario.size:.0f} %), "
                f"{elapsed:.0f} s"
            )
    endpoints = pd.concat(tables, ignore_index=True)
    order = {a.name: i for i, a in enumerate(scenario.arms)}
    endpoints = endpoints.sort_values(
        ["arm", "patient"], key=lambda c: c.map(order) if c.name == "arm" else c, kind="stable"
    ).reset_index(drop=True)
    failed = endpoints[endpoints.status != 0]
    if len(failed):
        say(
            f"warning: {len(failed)} of {len(endpoints)} simulations failed "
            "(see the status column; their endpoints are NaN)"
        )
    summary = summarise(endpoints, with_subgroups=bool(scenario.population.subgroups))
    trajectories = _trajectory_bands(bands, times, scenario)
    grid = _grid_table(endpoints, scenario.grid) if scenario.grid else None
    return ScenarioResult(endpoints, summary, trajectories, grid, time.perf_counter() - started)


def _run_chunk(scenario, model, arms, start, stop, times, batch, n_events):
    """Patients ``start .. stop - 1`` in every arm of one disease setting, as one batch of
    ``batch`` simulations (padded): their endpoint table and the band patients' trajectories."""
    n = stop - start
    params, regimens, patients = {}, [], []
    for arm in arms:
        overrides = scenario.arm_parameters(arm, model)
        drawn, table = scenario.population.sample(model, start, stop, overrides)
        for k, v in drawn.items():
            params.setdefault(k, []).append(v)
        if "weight_kg" in table:  # per-kg doses follow each patient's weight
            regimens += [arm.regimen(w) for w in table["weight_kg"]]
        else:
            regimens += [arm.regimen(REFERENCE_WEIGHT_KG)] * n
        patients.append(table)
    params = {k: np.concatenate(v) for k, v in params.items()}
    pad = batch - len(regimens)  # keep every batch the same shape: one compile
    params = {k: np.concatenate([v, np.repeat(v[-1:], pad)]) for k, v in params.items()}
    doses = stack_regimens(regimens + [regimens[-1]] * pad, model.state_names, n_events)
    with warnings.catch_warnings():  # failures are reported per patient in the status column
        warnings.simplefilter("ignore", SimulationWarning)
        solution = simulate_population(model, params, doses, times)
    status = np.asarray(solution.status)[: len(regimens)]
    observables = {k: np.asarray(v)[: len(regimens)] for k, v in solution.observables.items()}

    table = endpoint_table(observables, times, scenario.outputs)
    numeric = [c for c in table.columns if table[c].dtype.kind == "f"]
    table.loc[status != 0, numeric] = np.nan
    if "best_response" in table:
        table.loc[status != 0, "best_response"] = None
    table["status"] = status
    covariates = pd.concat(patients, ignore_index=True)
    table = pd.concat([covariates, table], axis=1)
    table.insert(0, "arm", np.repeat([a.name for a in arms], n))
    for variable in scenario.grid.values if scenario.grid else ():
        table.insert(1, variable, np.repeat([a.grid.get(variable, np.nan) for a in arms], n))

    keep = covariates["patient"].to_numpy() < scenario.band_patients
    bands = {name: observables[name][keep] for name in scenario.trajectories}
    bands["arm"] = np.repeat([a.name for a in arms], n)[keep]
    return table, bands


def summarise(endpoints: pd.DataFrame, with_subgroups: bool = False) -> pd.DataFrame:
    """One row per arm (and per arm x subgroup): medians and 5-95 % ranges, response shares."""
    numeric = [c for c in ENDPOINTS if c in endpoints and endpoints[c].dtype.kind == "f"]
    keys = [c for c in ("start_day", "dose", "interval_days", "count") if c in endpoints]
    rows = []
    groups = [("all", endpoints)]
    if with_subgroups:
        groups += list(endpoints.groupby("subgroup", sort=True))
    for subgroup, frame in groups:
        for arm, group in frame.groupby("arm", sort=False):
            row = {"arm": arm, "subgroup": subgroup}
            row.update({k: group[k].iloc[0] for k in keys})
            ok = group[group.status == 0]
            row.update(patients=len(group), failed=len(group) - len(ok))
            for c in numeric:
                values = ok[c].dropna()
                if c == "time_to_progression_d":
                    continue
                q05, q50, q95 = np.percentile(values, [5, 50, 95]) if len(values) else (np.nan,) * 3
                row.update({f"{c}_median": q50, f"{c}_p05": q05, f"{c}_p95": q95})
            if "best_response" in ok:
                shares = ok["best_response"].value_counts(normalize=True)
                row["objective_response_percent"] = 100 * (
                    shares.get("CR", 0) + shares.get("PR", 0)
                )
                row["complete_response_percent"] = 100 * shares.get("CR", 0)
                row["progressed_percent"] = 100 * ok["progressed"].mean() if len(ok) else np.nan
                row["time_to_progression_d_median"] = _median_event_time(ok)
            rows.append(row)
    return pd.DataFrame(rows)


def _median_event_time(group: pd.DataFrame) -> float:
    """Median time to progression (NaN if fewer than half progressed before the horizon)."""
    if not len(group) or group["progressed"].mean() < 0.5:
        return np.nan
    times = np.sort(group.loc[group["progressed"], "time_to_progression_d"].to_numpy())
    return float(times[math.ceil(len(group) / 2) - 1])


def _trajectory_bands(bands, times, scenario) -> pd.DataFrame:
    frames = []
    arms = [a.name for a in scenario.arms]
    for name in scenario.trajectories:
        values = {arm: [] for arm in arms}
        for chunk in bands:
            for arm in arms:
                values[arm].append(chunk[name][chunk["arm"] == arm])
        for arm in arms:
            data = np.concatenate(values[arm]) if values[arm] else np.zeros((0, len(times)))
            if not len(data):
                continue
            frames.append(band_frame(arm, name, times, data))
    return pd.concat(frames, ignore_index=True)


def _grid_table(endpoints: pd.DataFrame, grid: Grid) -> pd.DataFrame:
    """Median of the grid's endpoint at every grid point."""
    variables = list(grid.values)
    rows = endpoints[endpoints.arm.str.startswith(f"{grid.arm} [") & (endpoints.status == 0)]
    table = rows.groupby(variables)[grid.endpoint].median().reset_index()
    return table.rename(columns={grid.endpoint: f"{grid.endpoint}_median"})


#: endpoints drawn in ``endpoints.png``.
PLOTTED_ENDPOINTS = (
    "cmax_cells_per_ul",
    "auc0_28_cells_per_ul_d",
    "persistence_d",
    "tumour_car_t_auc_cell_d",
    "infiltration_ratio",
    "exhausted_fraction_d28",
    "tumour_nadir_percent",
    "tumour_change_percent",
)


def write_results(result: ScenarioResult, scenario: Scenario, folder: Path) -> list[str]:
    """Write tables and plots of a scenario run into ``folder``; return the file names."""
    from . import plots

    result.endpoints.to_csv(folder / "endpoints.csv", index=False)
    result.summary.to_csv(folder / "summary.csv", index=False)
    result.trajectories.to_csv(folder / "trajectories.csv", index=False)
    for name in scenario.trajectories:
        plots.save(plots.trajectories(result.trajectories, name), folder / f"{name}.png")
    plots.save(
        plots.endpoint_distributions(result.endpoints, PLOTTED_ENDPOINTS),
        folder / "endpoints.png",
    )
    if "objective_response_percent" in result.summary:
        plots.save(plots.response_bars(result.summary), folder / "response.png")
    if scenario.population.subgroups:
        for subgroup in scenario.population.subgroup_names:
            rows = result.endpoints[result.endpoints.subgroup == subgroup]
            figure = plots.endpoint_distributions(rows, PLOTTED_ENDPOINTS)
            figure.suptitle(f"subgroup: {subgroup}")
            plots.save(figure, folder / f"endpoints_{_slug(subgroup)}.png")
    if result.grid is not None:
        result.grid.to_csv(folder / "grid.csv", index=False)
        variables = list(scenario.grid.values)
        if len(variables) == 2:
            figure = plots.grid_heatmap(result.grid, scenario.grid.endpoint, *variables)
        else:
            figure = plots.grid_lines(result.grid, scenario.grid.endpoint, variables[0])
        plots.save(figure, folder / "grid.png")
    return sorted(p.name for p in folder.iterdir())


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").lower()


def format_summary(summary: pd.DataFrame) -> str:
    """A terminal table of the main endpoints (medians over patients, all subgroups)."""
    columns = {
        "cmax_cells_per_ul": ("Cmax", "{:.3g}"),
        "auc0_28_cells_per_ul_d": ("AUC0-28", "{:.3g}"),
        "persistence_d": ("persist d", "{:.0f}"),
        "tumour_car_t_auc_cell_d": ("tumour AUC", "{:.3g}"),
        "infiltration_ratio": ("infiltr.", "{:.3g}"),
        "tumour_change_percent": ("tumour %", "{:+.0f}"),
        "objective_response_percent": ("ORR %", "{:.0f}"),
    }
    rows = summary[summary.subgroup == "all"]
    present = {c: v for c, v in columns.items() if f"{c}_median" in rows or c in rows}
    body = []
    for _, r in rows.iterrows():
        cells = [str(r["arm"])]
        for c, (_, fmt) in present.items():
            value = r[f"{c}_median"] if f"{c}_median" in r else r[c]
            cells.append("-" if pd.isna(value) else fmt.format(value))
        body.append(cells)
    header = ["arm (median of patients)"] + [label for label, _ in present.values()]
    widths = [max(len(x) for x in col) for col in zip(header, *body, strict=True)]

    def line(cells):
        return "  ".join(x.ljust(w) for x, w in zip(cells, widths, strict=True))

    units = (
        "Cmax: cells/µL; AUC0-28: cells/µL·d; tumour AUC: cells·d; infiltr.: tumour/blood AUC; "
        "tumour %: change from baseline at the horizon; ORR: CR + PR"
    )
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body), units])


def simulate_to_folder(
    path: str | Path,
    out: str | Path,
    *,
    patients: int | None = None,
    force: bool = False,
    command: str = "simulate",
    progress: Callable[[str], None] | None = print,
) -> pd.DataFrame:
    """``cartpk simulate``: load, run and write a scenario (results appear in ``out`` only once
    complete, with ``manifest.json`` and a copy of the scenario file); returns the summary."""
    from .output import check_destination, staged_output, write_manifest

    started = time.perf_counter()
    scenario = load_scenario(path, patients=patients)
    check_destination(out, force, inputs=[path])  # fail before the long run, not after
    say = progress or (lambda message: None)
    say(f"cartpk {command}: scenario {scenario.name!r} ({path})")
    result = run_scenario(scenario, progress=progress)
    with staged_output(out, force, inputs=[path]) as folder:
        (folder / "scenario.toml").write_bytes(Path(path).read_bytes())
        write_results(result, scenario, folder)
        write_manifest(
            folder,
            command=f"cartpk {command}",
            inputs={"scenario": path},
            options={"patients": scenario.size, "seed": scenario.population.seed},
            started=started,
        )
    say("")
    say(format_summary(result.summary))
    say("")
    say(
        f"{len(result.endpoints)} simulations in {result.seconds:.1f} s; results in {out}/ "
        "(endpoints.csv, summary.csv, trajectories.csv, *.png, manifest.json)"
    )
    return result.summary
