"""A scenario as data: the frozen dataclasses a scenario file becomes, and its limits."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..endpoints import ENDPOINTS, EndpointOptions
from ..errors import ScenarioError
from ..models import BloodStromaTumour
from ..population import VirtualPopulation
from ..regimen import Regimen
from ..therapies import THERAPIES, combine

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
        Path(__file__).parents[1] / "_scenarios",
        Path(__file__).resolve().parents[3] / "scenarios",
    ):
        path = folder / f"{name}.toml"
        if path.is_file():
            return path
    raise ScenarioError(f"no bundled scenario named {name!r}")


#: every one is kept for every patient of a chunk, so this bounds memory.
MAX_OUTPUT_TIMES = 10_000
#: Grid points a ``[grid]`` may expand to (each is an arm simulated for every patient).
MAX_GRID_POINTS = 10_000
#: Endpoints use days 0-28 (AUC0-28, exhausted fraction on day 28).
MIN_HORIZON_DAYS = 28.0
#: Result columns a covariate may not be named after.
RESERVED_COLUMNS = ("arm", "patient", "subgroup", "status", *SCHEDULE_VARIABLES, *ENDPOINTS)
