"""The ``cartpk`` command line.

Every user error (a :class:`~cartpk.errors.CartpkError`, a missing file, a bad argument) is printed
as one ``error: ...`` line on stderr with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .errors import CartpkError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors: one line, exit status 2
        self.exit(2, f"error: {message} (see 'cartpk --help')\n")


def _demo(args) -> None:
    from .demo import run_demo

    run_demo(args.out, n_patients=args.patients, force=args.force)


def _simulate(args) -> None:
    from .scenario import simulate_to_folder

    _scenario_to_folder(simulate_to_folder, args)


def _optimize(args) -> None:
    from .optimize import optimize_to_folder

    _scenario_to_folder(optimize_to_folder, args)


def _scenario_to_folder(run, args) -> None:
    progress = None if args.quiet else print
    run(args.scenario, args.out, patients=args.patients, force=args.force, progress=progress)


def _add_scenario_arguments(command, scenario_help: str, patients_help: str) -> None:
    command.add_argument("scenario", help=scenario_help)
    command.add_argument("--out", required=True, help="output directory")
    command.add_argument("--patients", type=int, help=patients_help)
    command.add_argument("--force", action="store_true", help="overwrite existing results")
    command.add_argument("--quiet", action="store_true", help="no progress messages")


def _check(args) -> None:
    from .nonmem import read_nonmem

    data = read_nonmem(args.data)
    print(data.summary())


def _fit(args) -> None:
    from .estimation.command import run_fit

    run_fit(args)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cartpk", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = commands.add_parser(
        "demo",
        help="what-if comparison on the default solid-tumour model: CAR-T alone vs combinations",
    )
    demo.add_argument("--out", default="results/", help="output directory (default: results/)")
    demo.add_argument("--patients", type=int, default=32, help="virtual patients per arm")
    demo.add_argument("--force", action="store_true", help="overwrite existing results in --out")
    demo.set_defaults(run=_demo)

    simulate = commands.add_parser(
        "simulate", help="run a what-if scenario file over its virtual population"
    )
    _add_scenario_arguments(
        simulate, "scenario TOML file (see docs/scenarios.md)", "override population.size"
    )
    simulate.set_defaults(run=_simulate)

    optimize = commands.add_parser(
        "optimize",
        help="find the start day and dose of a combination drug by gradient (scenario [optimize])",
    )
    _add_scenario_arguments(
        optimize, "scenario TOML file with an [optimize] table", "override optimize.patients"
    )
    optimize.set_defaults(run=_optimize)

    check = commands.add_parser("check", help="validate a NONMEM-style dataset and summarise it")
    check.add_argument("data", help="CSV file with ID, TIME, DV, AMT, EVID, MDV, CMT columns")
    check.set_defaults(run=_check)

    fit = commands.add_parser(
        "fit", help="fit a model to a NONMEM-style dataset (FOCE-I, Laplace or individual fits)"
    )
    fit.add_argument("data", help="NONMEM-style CSV (ID, TIME, DV, CENS/LLOQ, DVID, ...)")
    fit.add_argument(
        "--model", required=True, help="multiphasic, blood_stroma_tumour or path/file.py:Class"
    )
    fit.add_argument("--out", required=True, help="output directory")
    fit.add_argument("--method", choices=("foce", "laplace", "individual"), default="foce")
    fit.add_argument("--force", action="store_true", help="overwrite existing results in --out")
    fit.add_argument(
        "--observable", action="append", metavar="NAME", help="of DVID 1, 2, ... (repeat)"
    )
    fit.add_argument(
        "--error",
        action="append",
        choices=("additive", "proportional", "combined", "exponential"),
        help="residual error per observable (repeat, or once for all; default exponential)",
    )
    fit.add_argument("--fix", action="append", metavar="NAME[=VALUE]", help="fix a parameter")
    fit.add_argument("--init", action="append", metavar="NAME=VALUE", help="initial value")
    fit.add_argument(
        "--omega", action="append", metavar="NAME[=SD]", help="between-subject variability on"
    )
    fit.add_argument("--block", action="store_true", help="full covariance of the etas")
    fit.add_argument(
        "--covariate",
        action="append",
        metavar="PARAM:COLUMN[:KIND[:REF]]",
        help="KIND power (default), exponential or categorical",
    )
    fit.add_argument("--cmt", action="append", metavar="CMT=STATE", help="dose compartment")
    fit.add_argument("--ignore-doses", action="store_true", help="drop dose records")
    fit.add_argument("--solver", choices=("kvaerno5", "tsit5", "dopri5"), default="kvaerno5")
    fit.add_argument("--rtol", type=float, default=1e-8, help="ODE relative tolerance")
    fit.add_argument("--se", choices=("hessian", "sandwich", "none"), default="hessian")
    fit.add_argument("--max-iter", type=int, default=500, help="most OFV evaluations")
    fit.add_argument("--profile", metavar="NAME[,NAME...]", help="profile likelihoods of")
    fit.add_argument("--bootstrap", type=int, default=0, metavar="N", help="replicates")
    fit.add_argument("--vpc", type=int, default=200, metavar="N", help="VPC replicates (0: no)")
    fit.add_argument("--starts", type=int, default=8, help="starts per subject (individual)")
    fit.add_argument("--seed", type=int, default=0, help="seed of VPC, bootstrap and starts")
    fit.set_defaults(run=_fit)
    return parser


def _version() -> str:
    from . import __version__

    return f"cartpk {__version__}"


def _message(error: Exception) -> str:
    """One line: a cartpk error as it is, an operating-system error as "reason: path"."""
    if isinstance(error, OSError) and not isinstance(error, CartpkError) and error.strerror:
        text = f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    else:
        text = str(error)
    return " ".join(text.splitlines())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .precision import enable_x64

    enable_x64()
    try:
        args.run(args)
    except (CartpkError, OSError) as error:
        print(f"error: {_message(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
