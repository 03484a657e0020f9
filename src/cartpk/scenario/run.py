"""Running a scenario: every arm over the virtual population, chunk by chunk, with endpoints,
summaries, population bands and grid tables (:func:`run_scenario`)."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..endpoints import ENDPOINTS, band_frame, endpoint_table
from ..models.blood_stroma_tumour import MODES
from ..progress import step
from ..regimen import stack_regimens
from ..simulate import SimulationWarning, simulate_population
from .spec import REFERENCE_WEIGHT_KG, Grid, Scenario


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
    its doses or parameters); its arms x patients run in batches of one shape, at most
    ``chunk_size`` simulations each (:func:`_batch_shape`), so the model compiles once whatever
    the population size or the number of grid arms.
    """
    started = time.perf_counter()
    times = scenario.times()
    say = progress or (lambda message: None)
    tables, bands = [], []
    for disease in sorted({a.disease for a in scenario.arms}, key=MODES.index):
        arms = [a for a in scenario.arms if a.disease == disease]
        model = scenario.model(disease)
        per_arm, per_batch = _batch_shape(len(arms), scenario.size, scenario.chunk_size)
        batch = per_arm * per_batch
        n_events = max(a.regimen(REFERENCE_WEIGHT_KG).n_events() for a in arms)
        say(
            f"{disease} setting: {len(arms)} arm(s) x {scenario.size} patients, batches of "
            f"{batch} (the first batch compiles the model: up to a few minutes)"
        )
        label = f"{disease} setting: simulations"
        with step(progress, label, len(arms) * scenario.size) as task:
            for group, start, stop in _batches(arms, scenario.size, per_arm, per_batch):
                table, band = _run_chunk(
                    scenario, model, group, start, stop, times, batch, n_events
                )
                tables.append(table)
                bands.append(band)
                task.advance(len(group) * (stop - start))
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


def _batch_shape(n_arms: int, n_patients: int, chunk_size: int) -> tuple[int, int]:
    """``(arms, patients)`` of one batch: at most ``chunk_size`` simulations (this bounds memory).

    A batch holds as many patients as ``chunk_size`` allows and as many arms as then fit (one
    arm when the population has ``chunk_size`` patients or more): a grid of thousands of arms
    runs arm group by arm group, never as one batch. Every batch is padded to this shape, so the
    model compiles once.
    """
    patients = min(n_patients, chunk_size)
    return min(n_arms, max(1, chunk_size // patients)), patients


def _batches(arms: list, n_patients: int, per_arm: int, per_batch: int):
    """``(arms, start, stop)`` of each batch: patients ``start .. stop - 1`` in those arms."""
    for first in range(0, len(arms), per_arm):
        for start in range(0, n_patients, per_batch):
            yield arms[first : first + per_arm], start, min(start + per_batch, n_patients)


def _run_chunk(scenario, model, arms, start, stop, times, batch, n_events):
    """Patients ``start .. stop - 1`` in ``arms`` (of one disease setting), as one batch of
    ``batch`` simulations (padded): their endpoint table, and arm -> observable -> the band
    patients' trajectories."""
    n = stop - start
    params, regimens, patients = {}, [], []
    drawn_for = {}  # arms with the same parameters (e.g. a grid's) draw the same patients
    for arm in arms:
        overrides = scenario.arm_parameters(arm, model)
        key = tuple(sorted(overrides.items()))
        if key not in drawn_for:
            drawn_for[key] = scenario.population.sample(model, start, stop, overrides)
        drawn, table = drawn_for[key]
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

    keep = np.flatnonzero(np.arange(start, stop) < scenario.band_patients)
    bands = {
        arm.name: {name: observables[name][k * n + keep] for name in scenario.trajectories}
        for k, arm in enumerate(arms)
    }
    return table, bands if len(keep) else {}


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
    per_arm = {a.name: [] for a in scenario.arms}
    for chunk in bands:
        for arm, values in chunk.items():
            per_arm[arm].append(values)
    frames = [
        band_frame(arm, name, times, np.concatenate([c[name] for c in chunks]))
        for name in scenario.trajectories
        for arm, chunks in per_arm.items()
        if chunks
    ]
    return pd.concat(frames, ignore_index=True)


def _grid_table(endpoints: pd.DataFrame, grid: Grid) -> pd.DataFrame:
    """Median of the grid's endpoint at every grid point."""
    variables = list(grid.values)
    rows = endpoints[endpoints.arm.str.startswith(f"{grid.arm} [") & (endpoints.status == 0)]
    table = rows.groupby(variables)[grid.endpoint].median().reset_index()
    return table.rename(columns={grid.endpoint: f"{grid.endpoint}_median"})
