"""``cartpk nca DATA.csv --out DIR``: non-compartmental analysis of each subject's profile after
its first dose.

Prints the units and rules used and a summary over subjects, and writes ``subjects.csv`` (one
row per subject), ``summary.csv`` (one row per parameter, with its unit), ``inputs/data.csv``
and ``manifest.json`` (``docs/nca.md``)."""

from __future__ import annotations

import argparse
import math

import pandas as pd

from ..errors import CartpkError
from ..nca import AUC_METHODS, BLQ_ACTIONS, ROUTES, BLQRule, LambdaZ, NCAResult, nca
from ..nonmem import read_nonmem
from ._console import Console
from ._folder import ResultsFolder
from .fit import add_dataset_options, dataset_options

#: Parameters printed in the terminal summary (every one is in summary.csv).
PRINTED = (
    "cmax",
    "tmax",
    "auc_last",
    "auc_inf_obs",
    "auc_pct_extrap_obs",
    "lambda_z",
    "t_half",
    "mrt_inf_obs",
    "cl_f_obs",
    "vz_f_obs",
    "c0",
    "cl_obs",
    "vz_obs",
)
#: Rough bytes on disk per subject (both tables).
_ROW_BYTES = 2_000


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "nca",
        help="non-compartmental analysis (Cmax, AUC, lambda_z, CL/F, ...) of a dataset",
        description=__doc__,
    )
    parser.add_argument(
        "data", help="NONMEM-style CSV with ID, TIME, DV, AMT (the doses) and optionally CENS, ..."
    )
    add_dataset_options(parser)
    parser.add_argument("--out", required=True, help="results folder (created; see --force)")
    parser.add_argument(
        "--force", action="store_true", help="replace an earlier cartpk results folder in --out"
    )
    parser.add_argument(
        "--auc-method",
        choices=AUC_METHODS,
        default="linear-up-log-down",
        help="trapezoidal rule of AUC and AUMC: linear where the concentration rises and log "
        "where it falls, or linear throughout (default: %(default)s)",
    )
    parser.add_argument(
        "--route",
        choices=ROUTES,
        default="extravascular",
        help="extravascular (C = 0 at the dose unless observed) or iv (bolus; C0 "
        "back-extrapolated from the first two concentrations) (default: %(default)s)",
    )
    parser.add_argument(
        "--lambda-z-points",
        type=int,
        metavar="N",
        help="estimate lambda_z on the last N (>= 3) concentrations after Cmax (default: best "
        "fit: at least 3 points, largest adjusted R^2, within 1e-4 the most points)",
    )
    parser.add_argument(
        "--blq-before",
        choices=BLQ_ACTIONS,
        default="zero",
        help="BLQ values before the first measurable concentration: set to 0 or drop them "
        "(default: %(default)s; BLQ values after the last measurable one are always dropped)",
    )
    parser.add_argument(
        "--blq-between",
        choices=BLQ_ACTIONS,
        default="drop",
        help="BLQ values between measurable concentrations: drop them or set them to 0 "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--dvid",
        type=int,
        metavar="N",
        help="observation type (DVID) to analyse (default: the only one in the data)",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing but warnings")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    say = Console(args.quiet)
    if args.lambda_z_points is not None and args.lambda_z_points < 3:
        raise CartpkError(f"--lambda-z-points must be at least 3, got {args.lambda_z_points}")
    reading = dataset_options(args)
    options = {
        "auc_method": args.auc_method,
        "route": args.route,
        "lambda_z": LambdaZ(points=args.lambda_z_points),
        "blq": BLQRule(before=args.blq_before, between=args.blq_between),
        "dvid": args.dvid,
    }
    with (
        ResultsFolder(args.out, command="cartpk nca", force=args.force) as results,
        say.showing_warnings() as shown,
    ):
        content = results.read_input("data", args.data, suffix=".csv")
        data = read_nonmem(content, name=args.data, **reading)
        results.reserve(len(data.ids) * _ROW_BYTES)
        result = nca(data, **options)
        results.write(
            {
                "subjects.csv": lambda path: result.subjects.to_csv(path, index=False),
                "summary.csv": lambda path: result.summary.to_csv(path, index=False),
            },
            options={**reading, **result.options},
            result={
                "subjects": len(result.subjects),
                "lambda_z_estimated": int(result.subjects["lambda_z"].notna().sum()),
                "units": result.units,
                "conventions": list(result.conventions),
                "notes": _notes(result),
                "run_warnings": list(shown),
            },
        )
    say(f"cartpk nca: {result.source}, {len(result.subjects)} subjects")
    for line in result.conventions:
        say(f"  {line}")
    say("")
    say(format_summary(result))
    notes = _notes(result)
    if notes:
        say("")
        for subject, note in notes.items():
            say(f"ID {subject}: {note}")
    say("")
    say(f"results in {args.out}/ (subjects.csv, summary.csv, manifest.json)")


def _notes(result: NCAResult) -> dict[str, str]:
    rows = result.subjects[result.subjects["note"] != ""]
    return {str(subject): note for subject, note in zip(rows["ID"], rows["note"], strict=True)}


def format_summary(result: NCAResult) -> str:
    """A terminal table of the main parameters of :attr:`NCAResult.summary`."""
    summary = result.summary.set_index("parameter")
    shown = [name for name in PRINTED if name in summary.index]
    columns = [
        ("geometric_mean", "geo. mean"),
        ("geometric_cv_percent", "geo. CV %"),
        ("mean", "mean"),
        ("sd", "SD"),
        ("median", "median"),
        ("min", "min"),
        ("max", "max"),
    ]
    header = ["parameter", "unit", "n"] + [label for _, label in columns]
    body = [
        [name, summary.at[name, "unit"], str(summary.at[name, "n"])]
        + [_number(summary.at[name, key]) for key, _ in columns]
        for name in shown
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells):
        return "  ".join(
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body)])


def _number(value) -> str:
    return "-" if pd.isna(value) or not math.isfinite(value) else f"{value:.4g}"
