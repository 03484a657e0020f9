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

    run_demo(args.out, n_patients=args.patients, seed=args.seed, force=args.force)


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
    demo.add_argument("--seed", type=int, default=0, help="random seed of the population")
    demo.add_argument("--force", action="store_true", help="overwrite existing results in --out")
    demo.set_defaults(run=_demo)

    check = commands.add_parser("check", help="validate a NONMEM-style dataset and summarise it")
    check.add_argument("data", help="CSV file with ID, TIME, DV, AMT, EVID, MDV, CMT columns")
    check.set_defaults(run=_check)
    return parser


def _version() -> str:
    from . import __version__

    return f"cartpk {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .precision import enable_x64

    enable_x64()
    try:
        args.run(args)
    except (CartpkError, FileNotFoundError, PermissionError, IsADirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
