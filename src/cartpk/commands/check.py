"""``cartpk check DATA.csv``: validate a NONMEM-style dataset and summarise it."""

from __future__ import annotations

import argparse

from ..nonmem import read_nonmem
from ._console import Console


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "check",
        help="validate a NONMEM-style dataset and summarise it",
        description=__doc__,
    )
    parser.add_argument(
        "data", help="CSV file with ID, TIME, DV and optionally AMT, EVID, MDV, CMT, CENS, ..."
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    Console()(read_nonmem(args.data).summary())
