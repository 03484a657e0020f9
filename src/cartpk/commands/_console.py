"""What a command prints: progress and results on stdout, errors (one line) on stderr.

Warnings (Python ``UserWarning`` raised by the library, e.g. a dose-independent model counting
time from each subject's dose) are printed on stdout as one ``warning: ...`` line each, even when
quiet, never as a Python warning with its source line; stderr holds only the error line.

A closed standard output (``cartpk simulate ... | head -3``) silences the rest of the output
instead of ending the run: the results folder is still written.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator


class Console:
    """``say(line)`` prints a line unless quiet; never raises for a closed pipe."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.closed = False

    def __call__(self, line: str = "") -> None:
        if self.quiet or self.closed:
            return
        try:
            print(line, flush=True)
        except (BrokenPipeError, ValueError):  # ValueError: stdout itself was closed
            self._silence()
        except OSError as error:  # e.g. EIO from a terminal that went away
            if error.errno is None:
                raise
            self._silence()

    def warning(self, message) -> None:
        """Print ``warning: MESSAGE`` as one line, even when quiet."""
        text = " ".join(str(message).split())
        quiet, self.quiet = self.quiet, False
        try:
            self(f"warning: {text}")
        finally:
            self.quiet = quiet

    @contextlib.contextmanager
    def showing_warnings(self) -> Iterator[list[str]]:
        """Within the block, every ``UserWarning`` (and subclass) is printed by :meth:`warning`,
        each distinct message once, and collected in the list yielded; other warnings keep
        Python's handling."""
        shown: list[str] = []
        with warnings.catch_warnings():
            warnings.simplefilter("always", UserWarning)
            previous = warnings.showwarning

            def show(message, category, filename, lineno, file=None, line=None):
                if not issubclass(category, UserWarning):
                    previous(message, category, filename, lineno, file, line)
                    return
                text = " ".join(str(message).split())
                if text not in shown:
                    shown.append(text)
                    self.warning(text)

            warnings.showwarning = show
            yield shown

    def _silence(self) -> None:
        """Point stdout at /dev/null so that nothing, not even the exit flush, writes again."""
        self.closed = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass


def error_line(message: str) -> None:
    """Print ``error: MESSAGE`` as one line on stderr (a closed stderr is ignored)."""
    text = " ".join(str(message).split("\n"))
    try:
        print(f"error: {text}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
