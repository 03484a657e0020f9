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

    simulate_to_folder(
        args.scenario,
        args.out,
        patients=args.patients,
        force=args.force,
        progress=None if args.quiet else print,
    )


def _optimize(args) -> None:
    from .optimize import optimize_to_folder

    optimize_to_folder(
        args.scenario,
        args.out,
        patients=args.patients,
        force=args.force,
        progress=None if args.quiet else print,
    )


def _check(args) -> None:
    from .nonmem import read_nonmem

    data = read_nonmem(args.data)
    print(data.summary())


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
    simulate.add_argument("scenario", help="scenario TOML file (see docs/scenarios.md)")
    simulate.add_argument("--out", required=True, help="output directory")
    simulate.add_argument("--patients", type=int, help="override population.size")
    simulate.add_argument("--force", action="store_true", help="overwrite existing results")
    simulate.add_argument("--quiet", action="store_true", help="no progress messages")
    simulate.set_defaults(run=_simulate)

    optimize = commands.add_parser(
        "optimize",
        help="find the start day and dose of a combination drug by gradient (scenario [optimize])",
    )
    optimize.add_argument("scenario", help="scenario TOML file with an [optimize] table")
    optimize.add_argument("--out", required=True, help="output directory")
    optimize.add_argument("--patients", type=int, help="override optimize.patients")
    optimize.add_argument("--force", action="store_true", help="overwrite existing results")
    optimize.add_argument("--quiet", action="store_true", help="no progress messages")
    optimize.set_defaults(run=_optimize)

    check = commands.add_parser("check", help="validate a NONMEM-style dataset and summarise it")
    check.add_argument("data", help="CSV file with ID, TIME, DV, AMT, EVID, MDV, CMT columns")
    check.set_defaults(run=_check)
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
