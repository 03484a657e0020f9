"""``cartpk export --model NAME --out DIR [DATA.csv]``: a model as SBML, or a fitting problem as
PEtab.

Without a dataset, writes ``model.xml``: the model (a built-in one, your own path/file.py:Class,
with ``--therapy`` modules combined in) as SBML Level 3 with its parameters (``--init`` values or
the defaults), units and initial states. With a dataset, writes the PEtab problem of fitting it
as ``cartpk fit`` would: ``model.xml``, ``conditions.tsv`` (each subject's doses),
``measurements.tsv``, ``observables.tsv``, ``parameters.tsv`` and ``problem.yaml``. Also
``inputs/`` and ``manifest.json``. Needs the ``sbml`` extra (docs/export.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import CartpkError
from ..estimation import load_model
from ..export import to_petab, to_sbml
from ..nonmem import read_nonmem
from ..therapies import THERAPIES, combine
from ._console import Console
from ._folder import ResultsFolder
from .fit import (
    add_dataset_options,
    add_model_options,
    dataset_options,
    model_options,
    save_model_file,
)


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "export",
        help="write a model as SBML, or a fitting problem (model and dataset) as PEtab",
        description=__doc__,
    )
    parser.add_argument(
        "data",
        nargs="?",
        help="NONMEM-style CSV: export the PEtab problem of fitting it (default: SBML only)",
    )
    add_model_options(parser)
    parser.add_argument(
        "--therapy",
        action="append",
        choices=tuple(THERAPIES),
        metavar="NAME",
        help=f"combine a therapy module with the model (repeat; {', '.join(THERAPIES)}; "
        "default: none)",
    )
    add_dataset_options(parser)
    parser.add_argument("--out", required=True, help="results folder (created; see --force)")
    parser.add_argument(
        "--force", action="store_true", help="replace an earlier cartpk results folder in --out"
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing but warnings")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    say = Console(args.quiet)
    reading = dataset_options(args)
    if args.data is None and (args.observable or args.error or args.unit or args.fix):
        raise CartpkError("--observable, --error, --unit and --fix need a dataset (PEtab)")
    with (
        ResultsFolder(args.out, command="cartpk export", force=args.force) as results,
        say.showing_warnings() as shown,
    ):
        model = load_model(args.model)
        save_model_file(results, model)
        if args.therapy:
            model = combine(model, *(THERAPIES[name]() for name in args.therapy))
        options = model_options(args, model)
        recorded = {"model": args.model, "therapies": args.therapy or []}
        if args.data is None:
            files = {"model.xml": _text(to_sbml(model, options["initial"]))}
            summary = {"format": "SBML Level 3 Version 2"}
        else:
            content = results.read_input("data", args.data, suffix=".csv")
            data = read_nonmem(
                content, name=args.data, compartments=options["compartments"], **reading
            )
            problem = to_petab(model, data, **options)
            files = problem.files
            summary = {
                "format": "PEtab 1",
                "conditions": len(problem.conditions),
                "measurements": len(problem.measurements),
                "censored_left_out": problem.censored,
            }
            recorded.update(reading)
        results.write(files, options=recorded, result={**summary, "run_warnings": list(shown)})
    say(f"cartpk export: {type(model).__name__} as {summary['format']} in {args.out}/")
    for name in sorted(files):
        say(f"  {name}")


def _text(content: str):
    return lambda path: Path(path).write_text(content)
