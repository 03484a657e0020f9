"""What a command prints: progress and results on stdout, errors (one line) on stderr.

Warnings (Python ``UserWarning`` raised by the library, e.g. a dose-independent model counting
time from each subject's dose) are printed on stdout as one ``warning: ...`` line each, even when
quiet, never as a Python warning with its source line; stderr holds only the error line.

Long steps (:func:`cartpk.progress.step`) show as live bars (rich) with elapsed time, rate and
time left when stdout is a terminal, and as plain lines otherwise (a log file, a pipe, CI).

A closed standard output (``cartpk simulate ... | head -3``) silences the rest of the output
instead of ending the run: the results folder is still written.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator

from ..progress import Silent, Task, lines


class Console:
    """``say(line)`` prints a line unless quiet; never raises for a closed pipe."""

    def __init__(self, quiet: bool = False, live: bool | None = None):
        """``live``: show long steps as live bars (default: when stdout is a terminal)."""
        self.quiet = quiet
        self.closed = False
        self.live = _terminal() if live is None else live
        self._bars = None  # the rich Progress while a step is shown

    def __call__(self, line: str = "") -> None:
        if self.quiet or self.closed:
            return
        try:
            if self._bars is not None:  # above the bars
                self._bars.console.print(line, markup=False, highlight=False, soft_wrap=True)
            else:
                print(line, flush=True)
        except (BrokenPipeError, ValueError):  # ValueError: stdout itself was closed
            self._silence()
        except OSError as error:  # e.g. EIO from a terminal that went away
            if error.errno is None:
                raise
            self._silence()

    @contextlib.contextmanager
    def task(self, label: str, total: int | None = None) -> Iterator[Task]:
        """A long step: a live bar on a terminal, else lines; nothing when quiet."""
        if self.quiet or self.closed:
            yield Silent()
        elif not self.live:
            with lines(self, label, total) as shown:
                yield shown
        else:
            with self._bar(label, total) as shown:
                yield shown

    @contextlib.contextmanager
    def _bar(self, label, total):
        outer = self._bars is None
        if outer:
            self._bars = _progress()
            self._bars.start()
        bars = self._bars
        task = bars.add_task(label, total=total, spinner=total is None)
        try:
            yield _Bar(bars, task)
        finally:
            if total is None:  # a finished spinner shows as a full bar
                bars.update(task, total=1, completed=1)
            if outer:
                bars.stop()
                self._bars = None
            else:  # a step within a step leaves its line when done
                bars.remove_task(task)

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


def _terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced by an object without it, or closed
        return False


class _Bar:
    def __init__(self, bars, task):
        self.bars, self.task = bars, task

    def advance(self, n: int = 1) -> None:
        self.bars.advance(self.task, n)


def _progress():
    """Label, bar, count, rate, elapsed time and time left (the last three while known)."""
    from rich.console import Console as Terminal
    from rich.progress import (
        BarColumn,
        Progress,
        ProgressColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    from ..progress import duration

    class Known(ProgressColumn):
        """Count, rate and time left of a step of known length; blank for a spinner."""

        def render(self, task):
            if task.fields["spinner"]:
                return Text("")
            text = f"{task.completed:.0f}/{task.total:.0f}"
            if not task.finished and task.speed and task.time_remaining is not None:
                text += f"  {task.speed:.3g}/s  about {duration(task.time_remaining)} left"
            return Text(text)

    return Progress(
        SpinnerColumn(finished_text=" "),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        Known(),
        console=Terminal(file=sys.stdout),
    )


def error_line(message: str) -> None:
    """Print ``error: MESSAGE`` as one line on stderr (a closed stderr is ignored)."""
    text = " ".join(str(message).split("\n"))
    try:
        print(f"error: {text}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
