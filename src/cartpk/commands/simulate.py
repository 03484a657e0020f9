"""``cartpk simulate SCENARIO.toml --out DIR``: a what-if scenario over its virtual population.

Writes ``endpoints.csv`` (one row per patient x arm), ``summary.csv`` (per arm, and per arm x
subgroup), ``trajectories.csv`` (population bands), ``grid.csv`` for a schedule grid, plots,
``inputs/scenario.toml`` and ``manifest.json``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .. import plots
from ..scenario import Scenario, ScenarioResult, load_scenario, run_scenario
from ..therapies import THERAPIES
from ._console import Console
from ._folder import ResultsFolder

#: Endpoints drawn in ``endpoints.png``.
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
#: Rough size of one endpoint row and one figure on disk (bytes), for the free-space check.
_ROW_BYTES, _FIGURE_BYTES = 1_000, 300_000


def add_scenario_arguments(parser: argparse.ArgumentParser, patients_help: str) -> None:
    """The arguments ``simulate`` and ``optimize`` share."""
    parser.add_argument("scenario", help="scenario TOML file (see docs/scenarios.md)")
    parser.add_argument("--out", required=True, help="results folder (created; see --force)")
    parser.add_argument("--patients", type=int, help=patients_help)
    parser.add_argument(
        "--force", action="store_true", help="replace an earlier cartpk results folder in --out"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress messages")


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "simulate",
        help="run a what-if scenario file over its virtual population",
        description=__doc__,
    )
    add_scenario_arguments(parser, "virtual patients per arm (default: the file's population.size)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    simulate_to_folder(
        args.scenario,
        args.out,
        patients=args.patients,
        force=args.force,
        say=Console(args.quiet),
    )


def simulate_to_folder(
    path: str | Path,
    out: str | Path,
    *,
    patients: int | None = None,
    force: bool = False,
    command: str = "simulate",
    say=None,
) -> pd.DataFrame:
    """Load, run and write a scenario (the folder appears only once complete); returns the
    summary table."""
    say = say or Console(quiet=True)
    with ResultsFolder(out, command=f"cartpk {command}", force=force) as results:
        content = results.read_input("scenario", path, suffix=".toml")
        scenario = load_scenario(content, name=str(path), patients=patients)
        n_rows = scenario.size * len(scenario.arms)
        results.reserve(n_rows * _ROW_BYTES + (len(scenario.trajectories) + 8) * _FIGURE_BYTES)
        say(f"cartpk {command}: scenario {scenario.name!r} ({path})")
        result = run_scenario(scenario, progress=say)
        results.write(
            scenario_files(result, scenario),
            options={"patients": scenario.size, "seed": scenario.population.seed},
            result={
                "simulations": len(result.endpoints),
                "failed": int((result.endpoints.status != 0).sum()),
                "seconds": round(result.seconds, 2),
            },
        )
    say("")
    say(format_summary(result.summary, mechanisms(scenario)))
    say("")
    say(
        f"{len(result.endpoints)} simulations in {result.seconds:.1f} s; results in {out}/ "
        "(endpoints.csv, summary.csv, trajectories.csv, *.png, manifest.json)"
    )
    return result.summary


def scenario_files(result: ScenarioResult, scenario: Scenario) -> dict:
    """File name -> writer, for the tables and figures of a scenario run."""
    files = {
        "endpoints.csv": _csv(result.endpoints),
        "summary.csv": _csv(result.summary),
        "trajectories.csv": _csv(result.trajectories),
    }
    limit = scenario.outputs.persistence_limit_cells_per_ul
    for name in scenario.trajectories:
        files[f"{name}.png"] = _figure(
            plots.trajectories, result.trajectories, name, persistence_limit=limit
        )
    files["endpoints.png"] = _figure(
        plots.endpoint_distributions, result.endpoints, PLOTTED_ENDPOINTS, persistence_limit=limit
    )
    if "objective_response_percent" in result.summary:
        files["response.png"] = _figure(plots.response_bars, result.summary)
    for subgroup in scenario.population.subgroup_names if scenario.population.subgroups else ():
        rows = result.endpoints[result.endpoints.subgroup == subgroup]
        files[f"endpoints_{_slug(subgroup)}.png"] = _figure(
            plots.endpoint_distributions,
            rows,
            PLOTTED_ENDPOINTS,
            title=f"subgroup: {subgroup}",
            persistence_limit=limit,
        )
    if result.grid is not None:
        files["grid.csv"] = _csv(result.grid)
        variables = list(scenario.grid.values)
        if len(variables) == 2:
            files["grid.png"] = _figure(
                plots.grid_heatmap, result.grid, scenario.grid.endpoint, *variables
            )
        else:
            files["grid.png"] = _figure(
                plots.grid_lines, result.grid, scenario.grid.endpoint, variables[0]
            )
    return files


def _csv(frame: pd.DataFrame):
    return lambda path: frame.to_csv(path, index=False)


def _figure(draw, *args, title: str | None = None, **kwargs):
    def write(path: Path) -> None:
        figure = draw(*args, **kwargs)
        if title:
            figure.suptitle(title)
        plots.save(figure, path)

    return write


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").lower()


def mechanisms(scenario: Scenario) -> dict[str, str]:
    """Arm -> how it acts: the description of its product and of each of its therapies (what
    the therapy module changes), for the arms that differ from a conventional product alone."""
    out = {}
    for arm in scenario.arms:
        names = [arm.product.kind] if arm.product.kind in THERAPIES else []
        names += [course.name for course in arm.therapies]
        described = [THERAPIES[n].description for n in dict.fromkeys(names) if n in THERAPIES]
        if described:
            out[arm.name] = "; ".join(d for d in described if d)
    return out


def format_summary(summary: pd.DataFrame, mechanisms: Mapping[str, str] | None = None) -> str:
    """A terminal table of the main endpoints (medians over patients, all subgroups), then
    what differs between the arms (:func:`explain_arms`; ``mechanisms``: arm -> how it acts,
    from :func:`mechanisms`)."""
    columns = {
        "cmax_cells_per_ul": ("Cmax", "{:.3g}"),
        "auc0_28_cells_per_ul_d": ("AUC0-28", "{:.3g}"),
        "persistence_d": ("persist d", "{:.0f}"),
        "tumour_car_t_auc_cell_d": ("tumour AUC", "{:.3g}"),
        "infiltration_ratio": ("infiltr.", "{:.3g}"),
        "tumour_change_percent": ("tumour %", "{:+.0f}"),
        "objective_response_percent": ("ORR %", "{:.0f}"),
    }
    rows = _all_patients(summary)
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
    table = [line(header), line(["-" * w for w in widths]), *map(line, body), units]
    explanation = explain_arms(summary, mechanisms)
    return "\n".join(table + ([""] + explanation if explanation else []))


#: Endpoints compared arm by arm (:func:`explain_arms`): median column stem -> (name in the
#: text, how two arms are compared: "ratio" of medians, "days" or "points" (percentage points)
#: of difference, and for "points" the factor to percent: 100 for a fraction).
COMPARED = {
    "cmax_cells_per_ul": ("Cmax", "ratio", 1),
    "auc0_28_cells_per_ul_d": ("AUC0-28", "ratio", 1),
    "persistence_d": ("persistence", "days", 1),
    "tumour_car_t_auc_cell_d": ("intratumoural CAR-T AUC", "ratio", 1),
    "infiltration_ratio": ("infiltration ratio", "ratio", 1),
    "exhausted_fraction_d28": ("exhausted fraction d28", "points", 100),
    "tumour_nadir_percent": ("tumour nadir", "points", 1),
    "tumour_change_percent": ("tumour change at horizon", "points", 1),
}
#: What a compared endpoint measures, for the line on a shared response.
ASPECTS = {
    "cmax_cells_per_ul": "CAR-T exposure",
    "auc0_28_cells_per_ul_d": "CAR-T exposure",
    "persistence_d": "CAR-T exposure",
    "tumour_car_t_auc_cell_d": "CAR-T exposure",
    "infiltration_ratio": "CAR-T exposure",
    "exhausted_fraction_d28": "exhaustion",
    "tumour_nadir_percent": "tumour growth",
    "tumour_change_percent": "tumour growth",
}
#: Smallest difference worth a mention: ratio 1.02 (2 %), 1 d, 1 percentage point.
SMALLEST = {"ratio": np.log(1.02), "days": 1.0, "points": 1.0}
#: At most this many endpoints per arm in the arm-by-arm lines (the largest differences).
MOST_DIFFERENT = 4
#: arms explained line by line (a grid's further arms are in summary.csv)
MOST_ARMS = 12


def _all_patients(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary rows over all patients (not per subgroup)."""
    return summary[summary.subgroup == "all"] if "subgroup" in summary else summary


def _median(row: pd.Series, stem: str) -> float:
    value = row.get(f"{stem}_median", row.get(stem, np.nan))
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def _difference(stem: str, value: float, reference: float) -> tuple[float, str] | None:
    """``(size, text)`` of how ``value`` differs from ``reference`` (medians of ``stem``), or
    None below :data:`SMALLEST` or when either is missing. ``size`` ranks the differences on a
    common scale: ``|ln ratio|`` of the CAR-T quantities and of the tumour burden relative to
    baseline (``1 + change / 100``), the change in the share for the exhausted fraction."""
    name, kind, scale = COMPARED[stem]
    if not (np.isfinite(value) and np.isfinite(reference)):
        return None
    if kind == "ratio":
        if value == reference:
            return None
        if value <= 0 or reference <= 0:
            return np.inf, f"{name} {value:.3g} (vs {reference:.3g})"
        ratio = value / reference
        if abs(np.log(ratio)) < SMALLEST[kind]:
            return None
        return abs(np.log(ratio)), f"{name} x{_ratio_text(ratio)}"
    delta = (value - reference) * scale
    if abs(delta) < SMALLEST[kind]:
        return None
    if kind == "days":
        size = abs(np.log(max(value, 1e-3) / max(reference, 1e-3)))
        return size, f"{name} {delta:+.0f} d ({value:.0f} d)"
    if scale == 1:  # a change of the tumour burden from baseline (%)
        burden = [max(1 + v / 100, 1e-3) for v in (value, reference)]
        size = abs(np.log(burden[0] / burden[1]))
        return size, f"{name} {delta:+.0f} pp ({value:+.0f} %)"
    return abs(delta) / 100, f"{name} {delta:+.0f} pp ({value * scale:.0f} %)"


def _ratio_text(ratio: float) -> str:
    """Two significant digits (three near 1, where x1.0 would hide a 2-5 % change)."""
    if ratio >= 10:
        return f"{ratio:.0f}"
    return f"{ratio:.3g}" if 0.95 < ratio < 1.05 else f"{ratio:.2g}"


def explain_arms(summary: pd.DataFrame, mechanisms: Mapping[str, str] | None = None) -> list[str]:
    """What differs between the arms, in words: one line per arm after the first (the
    reference) with the endpoints whose medians differ most from the reference's (ratio of
    medians for CAR-T quantities, days of persistence, percentage points (pp) for tumour
    change, nadir, exhausted fraction and response), and one line when every arm has the same
    objective response. Endpoints missing from the summary are left out; no lines for one arm.
    """
    rows = _all_patients(summary)
    if len(rows) < 2 or "arm" not in rows:
        return []
    reference = rows.iloc[0]
    stems = [s for s in COMPARED if f"{s}_median" in rows or s in rows]
    response = "objective_response_percent" in rows
    lines = [
        f"arm by arm, against {reference['arm']} (medians of patients; x: ratio, "
        "pp: percentage points):"
    ]
    aspects = set()
    for _, row in rows.iloc[1 : 1 + MOST_ARMS].iterrows():
        found = []
        for stem in stems:
            difference = _difference(stem, _median(row, stem), _median(reference, stem))
            if difference is not None:
                found.append((difference[0], difference[1], stem))
                aspects.add(ASPECTS[stem])
        found.sort(key=lambda item: -item[0])
        parts = [text for _, text, _ in found[:MOST_DIFFERENT]]
        if len(found) > MOST_DIFFERENT:
            parts.append(f"{len(found) - MOST_DIFFERENT} more (summary.csv)")
        text = ", ".join(parts) or "no endpoint differs by 2 %, 1 d or 1 pp or more"
        if response:
            orr = _median(row, "objective_response_percent")
            base = _median(reference, "objective_response_percent")
            if not (np.isfinite(orr) and np.isfinite(base)):
                text += "; objective response not available"
            elif abs(orr - base) < 0.5:
                text += f"; objective response unchanged ({orr:.0f} %)"
            else:
                text += f"; objective response {orr:.0f} % ({orr - base:+.0f} pp)"
        lines.append(f"  {row['arm']}: {text}")
        if mechanisms and mechanisms.get(row["arm"]):
            lines.append(f"    how: {mechanisms[row['arm']]}")
    if len(rows) - 1 > MOST_ARMS:
        lines.append(f"  ... and {len(rows) - 1 - MOST_ARMS} more arms (summary.csv)")
    if response:
        orr = rows["objective_response_percent"].to_numpy(dtype=float)
        if np.isfinite(orr).all() and np.ptp(orr) < 1e-9:
            lines.append(_same_response(orr[0], rows, aspects))
    return lines


def _same_response(orr: float, rows: pd.DataFrame, aspects: set) -> str:
    """The line on a response every arm shares: what it means, and what differs instead."""
    change = rows.get("tumour_change_percent_median")
    no_tumour = change is None or not np.isfinite(change.to_numpy(dtype=float)).any()
    if orr == 0:
        meaning = (
            "no patient in any arm reaches a partial response (tumour diameter 30 % below baseline)"
        )
    elif orr == 100 and no_tumour:
        meaning = "without a tumour at baseline every patient counts as a complete response"
    elif orr == 100:
        meaning = "every patient in every arm responds"
    else:
        meaning = "the arms do not change how many patients respond"
    order = ("CAR-T exposure", "exhaustion", "tumour growth")
    found = [a for a in order if a in aspects]
    if found:
        listed = " and ".join([", ".join(found[:-1]), found[-1]] if len(found) > 1 else found)
        differ = f"the arms differ in {listed} (above), not in response"
    else:
        differ = "the arms do not differ in the endpoints above either"
    return f"every arm has the same objective response ({orr:.0f} %): {meaning}; {differ}"
