"""Progress of long steps, for the ``progress`` callables the library takes.

The library reports lines (``progress(line)``) and long steps (:func:`step`): compiling, the
iterations of a fit, a covariance step, the batches of a virtual population. A reporter with a
``task(label, total)`` method (the command line's console on a terminal) shows each step as a
live bar with elapsed time, rate and time left, or a spinner with the elapsed time when the
length is unknown (compiling). Any other callable (``print``) gets lines: the step's label, at
most one line every :data:`EVERY` seconds with the count, rate and time left, and one when a
step of a second or more ends, with its duration.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")

#: seconds between two progress lines of a step (when not shown as a live bar)
EVERY = 10.0


class Task(Protocol):
    def advance(self, n: int = 1) -> None:
        """``n`` more units of the step are done."""


class Silent:
    """A step shown nowhere."""

    def advance(self, n: int = 1) -> None:
        pass


@contextlib.contextmanager
def step(
    report: Callable[[str], None] | None, label: str, total: int | None = None
) -> Iterator[Task]:
    """A long step of ``total`` units (``None``: unknown), reported by ``report``."""
    if report is None:
        yield Silent()
        return
    task = getattr(report, "task", None)
    if task is not None:
        with task(label, total) as shown:
            yield shown
        return
    with lines(report, label, total) as shown:
        yield shown


def track(items: Sequence[T], report: Callable[[str], None] | None, label: str) -> Iterator[T]:
    """``items`` one by one, each a unit of a step of ``len(items)``."""
    with step(report, label, len(items)) as task:
        for item in items:
            yield item
            task.advance()


@contextlib.contextmanager
def lines(report: Callable[[str], None], label: str, total: int | None) -> Iterator[Task]:
    """``step`` as lines of text (see the module's documentation)."""
    shown = _Lines(report, label, total)
    report(label)
    yield shown
    elapsed = shown.elapsed()
    if elapsed >= 1.0:  # a quick step's label is enough
        report(f"{label}: done in {duration(elapsed)}")


class _Lines:
    def __init__(self, report, label, total):
        self.report, self.label, self.total = report, label, total
        self.done = 0
        self.started = self.last = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last < EVERY or (self.total and self.done >= self.total):
            return
        self.last = now
        elapsed = self.elapsed()
        text = f"{self.label}: {self.done}" + (f"/{self.total}" if self.total else "")
        text += f" in {duration(elapsed)}, {self.done / elapsed:.3g}/s"
        if self.total:
            text += f", about {duration(elapsed * (self.total - self.done) / self.done)} left"
        self.report(text)


def duration(seconds: float) -> str:
    """``12 s``, ``3 min 05 s``, ``1 h 02 min``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
