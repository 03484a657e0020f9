"""``cartpk optimize SCENARIO.toml --out DIR``: the start day and/or dose of one combination drug
that optimises a population endpoint, by gradient through the ODE solver (the scenario's
``[optimize]`` table).

Writes ``optimum.csv``, ``seed_grid.csv``, ``history.csv``, ``optimize.png``,
``inputs/scenario.toml`` and ``manifest.json``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import pandas as pd

from .. import plots
from ..errors import ScenarioError
from ..optimize import optimize_schedule
from ..scenario import load_scenario
from ..therapies import THERAPIES
from ._console import Console
from ._folder import ResultsFolder
from .simulate import add_scenario_arguments

#: Largest ``--patients`` for a gradient search.
MAX_PATIENTS = 100_000


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "optimize",
        help="find the start day and dose of a combination drug by gradient (scenario [optimize])",
        description=__doc__,
    )
    add_scenario_arguments(parser, "virtual patients (default: the file's optimize.patients)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    say = Console(args.quiet)
    with ResultsFolder(args.out, command="cartpk optimize", force=args.force) as results:
        content = results.read_input("scenario", args.scenario, suffix=".toml")
        scenario = load_scenario(content, name=args.scenario)
        if scenario.optimize is None:
            raise ScenarioError(f"{args.scenario}: no [optimize] table (see docs/scenarios.md)")
        spec = scenario.optimize
        if args.patients is not None:
            if not 1 <= args.patients <= MAX_PATIENTS:
                raise ScenarioError(
                    f"--patients must be in [1, {MAX_PATIENTS}], got {args.patients}"
                )
            spec = replace(spec, patients=args.patients)
        result = optimize_schedule(scenario, spec, progress=say)
        units = {
            "start_day": "d (CAR-T infusion on day 0)",
            "dose": THERAPIES[spec.therapy].dosing.amount_unit,
        }
        optimum = pd.DataFrame(
            [{"variable": k, "value": v, "unit": units[k]} for k, v in result.best.items()]
            + [{"variable": f"mean {spec.endpoint}", "value": result.value, "unit": "endpoint"}]
        )
        title = f"{spec.goal} {spec.endpoint}: {spec.therapy} schedule"
        figure = plots.schedule_search(
            result.seed_grid, result.history, result.best, result.value, title
        )
        results.write(
            {
                "optimum.csv": lambda path: optimum.to_csv(path, index=False),
                "seed_grid.csv": lambda path: result.seed_grid.to_csv(path, index=False),
                "history.csv": lambda path: result.history.to_csv(path, index=False),
                "optimize.png": lambda path: plots.save(figure, path),
            },
            options={"patients": spec.patients, "seed": scenario.population.seed},
            result={"best": result.best, "value": result.value, "seconds": result.seconds},
        )
    best = ", ".join(f"{k} = {v:.4g} {units[k].split(' ')[0]}" for k, v in result.best.items())
    say(f"optimum: {best}; mean {spec.endpoint} = {result.value:.6g}")
    say(f"{result.seconds:.0f} s; results in {args.out}/")
