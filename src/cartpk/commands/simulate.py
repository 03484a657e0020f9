"""``cartpk simulate SCENARIO.toml --out DIR``: a what-if scenario over its virtual population.

Writes ``endpoints.csv`` (one row per patient x arm), ``summary.csv`` (per arm, and per arm x
subgroup), ``trajectories.csv`` (population bands), ``grid.csv`` for a schedule grid, plots,
``inputs/scenario.toml`` and ``manifest.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from .. import plots
from ..scenario import Scenario, ScenarioResult, load_scenario, run_scenario
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
    say(format_summary(result.summary))
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
    for name in scenario.trajectories:
        files[f"{name}.png"] = _figure(plots.trajectories, result.trajectories, name)
    files["endpoints.png"] = _figure(
        plots.endpoint_distributions, result.endpoints, PLOTTED_ENDPOINTS
    )
    if "objective_response_percent" in result.summary:
        files["response.png"] = _figure(plots.response_bars, result.summary)
    for subgroup in scenario.population.subgroup_names if scenario.population.subgroups else ():
        rows = result.endpoints[result.endpoints.subgroup == subgroup]
        files[f"endpoints_{_slug(subgroup)}.png"] = _figure(
            plots.endpoint_distributions, rows, PLOTTED_ENDPOINTS, title=f"subgroup: {subgroup}"
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
