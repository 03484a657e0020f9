"""Scenario files (TOML) to :class:`~.spec.Scenario`: every key checked, and every error named
by the file and the key (``arms[2].therapies[0].dose``). The format is in ``docs/scenarios.md``.
"""

from __future__ import annotations

import itertools
import math
import reprlib
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from ..endpoints import ENDPOINTS, EndpointOptions
from ..errors import CartpkError, PopulationError, ScenarioError
from ..models import BloodStromaTumour
from ..models.blood_stroma_tumour import MODES
from ..population import MAX_PATIENTS, Covariate, Subgroup, VirtualPopulation
from ..therapies import THERAPIES
from .spec import (
    MAX_GRID_POINTS,
    MAX_OUTPUT_TIMES,
    MIN_HORIZON_DAYS,
    PRODUCTS,
    RESERVED_COLUMNS,
    ROUTES,
    SCHEDULE_VARIABLES,
    TRAJECTORIES,
    Arm,
    Grid,
    OptimizeSpec,
    Product,
    Scenario,
    TherapyCourse,
)

#: A TOML table is a ``dict`` in Python; other kinds keep their Python names in messages.
_KINDS = {dict: "table"}
#: Integers beyond the largest float are not finite numbers.
_LARGEST = 2**1024
#: Values shown in messages: shortened, and nested structures cut at two levels.
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxlong, _SHOWN.maxother = 2, 40, 24, 40


def _show(value) -> str:
    return _SHOWN.repr(value)


class _Table:
    """A TOML table with its location, for validated reads that name the bad key."""

    def __init__(self, data, where: str, source: str):
        if not isinstance(data, dict):
            raise ScenarioError(f"{source}: {where} must be a table, got {_show(data)}")
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
            if not -_LARGEST < value < _LARGEST:
                raise self.error(key, f"must be finite, got {_show(value)}")
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(
                key, f"must be a {_KINDS.get(kind, kind.__name__)}, got {_show(value)}"
            )
        if kind is float and not math.isfinite(value):
            raise self.error(key, f"must be finite, got {_show(value)}")
        if rule is not None and not rule[0](value):
            raise self.error(key, f"{rule[1]}, got {_show(value)}")
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
#: Arm and subgroup names label result rows and are compared exactly, so no surrounding spaces.
_NAME = (lambda v: bool(v) and v == v.strip()), "must not be empty or start or end with a space"
#: The scenario's name is only a title.
_TITLE = (lambda v: bool(v.strip())), "must not be empty"
#: Days between doses of a schedule (the same span as start days).
_INTERVAL = _between(0, 3650, "d", open_low=True)


def load_scenario(
    source: str | Path | bytes, *, name: str | None = None, patients: int | None = None
) -> Scenario:
    """Read and validate a scenario file.

    Args:
        source: the file's path, or its content as bytes (read once by the caller, who hashes
            the same bytes).
        name: the file's name in messages (default: the path, or ``"<bytes>"``).
        patients: overrides ``population.size``.
    """
    if isinstance(source, bytes):
        content, name, path = source, name or "<bytes>", None
    else:
        path = Path(source)
        name = name or str(path)
        try:
            content = path.read_bytes()
        except OSError as error:
            raise ScenarioError(f"cannot read scenario {name}: {error.strerror or error}") from None
    return parse_scenario(_toml(content, name), source=name, patients=patients, path=path)


def _toml(content: bytes, name: str) -> dict:
    """TOML text to a dict: UTF-8 with or without a byte-order mark; one-line errors."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ScenarioError(f"{name}: not a TOML file (not UTF-8 text)") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(f"{name}: not valid TOML: {error}") from None
    except ValueError:  # tomllib's limit on integer digits (sys.get_int_max_str_digits())
        raise ScenarioError(f"{name}: not valid TOML: an integer has too many digits") from None
    except RecursionError:
        raise ScenarioError(f"{name}: not valid TOML: arrays or tables nested too deeply") from None


def parse_scenario(
    data: Mapping, source: str = "scenario", patients: int | None = None, path: Path | None = None
) -> Scenario:
    """Validate a scenario given as a dict (the parsed TOML)."""
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{source}: a scenario must be a table of keys, got {_show(data)}")
    top = _Table(dict(data), "", source)
    name = top.get("name", str, ..., _TITLE)
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
    for j, arm_name in enumerate(names):
        if arm_name in names[:j]:  # compared exactly (_NAME refuses surrounding spaces)
            i = names.index(arm_name)
            raise ScenarioError(
                f"{source}: arms[{j}].name: two arms are named {arm_name!r} "
                f"(arms[{i}] and arms[{j}])"
            )

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
    # values are checked by VirtualPopulation.validate (_check_models); here only their types
    variability = table.numbers("variability")
    correlations = {}
    for entry in table.tables("correlations"):
        pair = entry.get("parameters", list, ..., (_is_pair, "must be two parameter names"))
        if tuple(pair) in correlations:  # a mapping cannot hold the same pair twice
            raise entry.error("parameters", f"{pair[0]}/{pair[1]} are correlated twice")
        correlations[tuple(pair)] = entry.get("r", float)
        entry.finish()
    subgroups = []
    for entry in table.tables("subgroups"):
        subgroups.append(
            Subgroup(
                entry.get("name", str, ..., _NAME),
                entry.get("fraction", float),
                entry.numbers("scale"),
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
                entry.get("median", float),
                entry.get("cv", float, 0.0),
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
        except PopulationError as error:  # its fields are the keys of [population]
            raise ScenarioError(f"{source}: population.{error}") from None
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
