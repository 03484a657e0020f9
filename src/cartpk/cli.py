"""The ``cartpk`` command line.

This module only registers the commands (``cartpk/commands/``, one module each) and turns every
user error (a :class:`~cartpk.errors.CartpkError`, a missing file, a bad argument) into one
``error: ...`` line on stderr with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from collections.abc import Sequence

from .errors import CartpkError, Terminated

#: reStructuredText roles and literals as plain text: ``x`` -> x, :func:`~a.b` -> b
_MARKUP = re.compile(r":\w+:`~?(?:[\w.]*\.)?([^`]+)`|``([^`]+)``")


def plain(text: str) -> str:
    """A docstring or help text without its reStructuredText markup."""
    return _MARKUP.sub(lambda m: m.group(1) or m.group(2), text)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written (paragraphs kept), without markup; every option's help ends with
    its default unless it already names one."""

    def _format_text(self, text):
        return super()._format_text(plain(text))

    def _get_help_string(self, action):
        text = plain(action.help or "")
        default = action.default
        if (
            "default" not in text
            and action.option_strings
            and default not in (None, False, argparse.SUPPRESS)
        ):
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message):  # argparse's own usage errors: one line, exit status 2
        self.exit(2, f"error: {message} (see 'cartpk --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from .commands import COMMANDS

    parser = _Parser(
        prog="cartpk",
        description="Differentiable PK/PD of CAR-T cells: what-if scenarios and fits.",
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command in COMMANDS:
        command.add_parser(commands)
    _complete_paths(commands)
    return parser


def _complete_paths(commands) -> None:
    """Tab completion (``cartpk completion``) offers files for the input arguments and folders
    for ``--out``."""
    import shtab

    for parser in commands.choices.values():
        for action in parser._actions:
            if action.dest in ("data", "scenario"):
                action.complete = shtab.FILE
            elif action.dest == "out":
                action.complete = shtab.DIRECTORY


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
    from .commands import error_line

    args = build_parser().parse_args(argv)
    from .cache import enable_compilation_cache
    from .commands import Console
    from .precision import enable_x64

    enable_x64()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        enable_compilation_cache()
    for warning in caught:
        Console().warning(warning.message)
    try:
        args.run(args)
    except (CartpkError, OSError) as error:
        error_line(_message(error))
        return 2
    except Terminated as signal:
        error_line(f"terminated ({signal})")
        return 143
    except KeyboardInterrupt:
        error_line("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
