"""The reader's one violation type: a :class:`~cartpk.errors.DatasetError` naming the source,
the column and the rows at fault."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NoReturn

import numpy as np

from ..errors import DatasetError

SHOWN = 5  # offending rows listed in a message before "and N more"


def listed(items: Sequence[str]) -> str:
    """The first :data:`SHOWN` items joined by commas, then how many more there are."""
    text = ", ".join(items[:SHOWN])
    if len(items) > SHOWN:
        text += f" and {len(items) - SHOWN} more"
    return text


class Report:
    """Raises :class:`~cartpk.errors.DatasetError` for the source called ``name`` whose
    records are the 1-based data rows ``rows``."""

    def __init__(self, name: str, rows: np.ndarray | None = None):
        self.name = name
        self.rows = np.zeros(0, dtype=np.int64) if rows is None else rows

    def fail(self, message: str, column: str | None = None, rows: Iterable[int] = ()) -> NoReturn:
        raise DatasetError(f"{self.name}: {message}", column=column, rows=tuple(rows))

    def check(self, bad, column: str | None, problem: str, detail: str = "") -> None:
        """Raise if any record is flagged in ``bad``: ``column C: PROBLEM in row(s) R (DETAIL)``."""
        bad = np.asarray(bad, dtype=bool)
        if not bad.any():
            return
        rows = [int(r) for r in self.rows[bad]]
        where = f"column {column}: " if column else ""
        self.fail(
            f"{where}{problem} in row(s) {listed([str(r) for r in rows])}"
            + (f" ({detail})" if detail else ""),
            column,
            rows,
        )
