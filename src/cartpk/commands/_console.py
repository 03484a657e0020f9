"""What a command prints: progress and results on stdout, errors (one line) on stderr.

A closed standard output (``cartpk simulate ... | head -3``) silences the rest of the output
instead of ending the run: the results folder is still written.
"""

from __future__ import annotations

import os
import sys


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
