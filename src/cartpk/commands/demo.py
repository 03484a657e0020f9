"""``cartpk demo``: the bundled ``combinations`` scenario on a small population.

A solid tumour receives 1e8 CAR-T IV on day 0, alone, with one barrier-breaking therapy per arm,
or with two combinations (``scenarios/combinations.toml``). Same outputs as ``cartpk simulate``.
"""

from __future__ import annotations

import argparse

from ..scenario import bundled_scenario
from ._console import Console
from .simulate import simulate_to_folder


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "demo",
        help="what-if comparison on a solid tumour: CAR-T alone vs combination therapies",
        description=__doc__,
    )
    parser.add_argument("--out", default="results/", help="results folder (default: results/)")
    parser.add_argument(
        "--patients", type=int, default=32, help="virtual patients per arm (default: 32)"
    )
    parser.add_argument(
        "--force", action="store_true", help="replace an earlier cartpk results folder in --out"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress messages")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    simulate_to_folder(
        bundled_scenario("combinations"),
        args.out,
        patients=args.patients,
        force=args.force,
        command="demo",
        say=Console(args.quiet),
    )
