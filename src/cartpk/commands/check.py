"""``cartpk check DATA.csv``: validate a NONMEM-style dataset and summarise it.

``--columns``, ``--ignore`` and ``--accept`` read the file as ``cartpk fit`` does (column roles,
NONMEM's IGNORE/ACCEPT rules); warnings are printed as one ``warning: ...`` line each."""

from __future__ import annotations

import argparse

from ..nonmem import read_nonmem
from ._console import Console
from .fit import add_dataset_options, dataset_options


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "check",
        help="validate a NONMEM-style dataset and summarise it",
        description=__doc__,
    )
    parser.add_argument(
        "data", help="CSV file with ID, TIME, DV and optionally AMT, EVID, MDV, CMT, CENS, ..."
    )
    add_dataset_options(parser)
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="print only warnings and errors (the exit status says whether the dataset is valid)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    say = Console(args.quiet)
    options = dataset_options(args)
    with say.showing_warnings():
        data = read_nonmem(args.data, **options)
    say(data.summary())
