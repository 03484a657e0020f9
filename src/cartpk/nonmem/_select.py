"""Between resolve and validate: NONMEM's record selection by column values.

Records are dropped, in this order and each counted under its rule, by

- a ``C`` column: a record whose ``C`` cell is neither empty, ``.`` nor 0 is a comment (the
  NONMEM convention of a first column ``C`` holding ``C`` on commented records);
- ``ignore`` conditions (``IGNORE=(list)``): a record is dropped when any condition holds;
- ``accept`` conditions (``ACCEPT=(list)``): a record is kept only when some condition holds.

A condition is ``COLUMN OP VALUE`` with OP one of ``== != < <= > >=`` or NONMEM's ``.EQ. .NE.
.LT. .LE. .GT. .GE.`` (and ``/=``); ``(A.EQ.1,B.GT.2)`` is a list of two. COLUMN is a column as
spelled in the file or its role (``DVID`` for a Monolix ``y_ID`` mapped to it). A numeric VALUE
compares numbers, an empty or ``.`` cell reading as 0 as NM-TRAN reads it; any other VALUE
(quotes optional) compares text with ``==`` or ``!=``. Selection runs before validation, so a
dropped record may hold anything.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ._cells import cells, number, to_float
from ._parse import RawTable
from ._report import Report, listed
from ._resolve import CANONICAL, Columns

_OPERATORS = {
    "==": operator.eq,
    "!=": operator.ne,
    "/=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    ".EQ.": operator.eq,
    ".NE.": operator.ne,
    ".LT.": operator.lt,
    ".LE.": operator.le,
    ".GT.": operator.gt,
    ".GE.": operator.ge,
}
_CONDITION = re.compile(
    r"^\s*([^\s=!<>/.]+?)\s*(==|!=|/=|<=|>=|<|>|\.EQ\.|\.NE\.|\.LT\.|\.LE\.|\.GT\.|\.GE\.)\s*(.+?)\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Condition:
    """One ``COLUMN OP VALUE`` test, as written."""

    text: str
    column: str
    op: str
    value: float | str


def conditions(rules: Sequence[str] | None, what: str) -> list[Condition]:
    """The conditions of ``ignore``/``accept`` entries (single characters are not conditions).

    Raises
    ------
    DatasetError
        On an entry that is not ``COLUMN OP VALUE``.
    """
    if rules is None:
        return []
    if isinstance(rules, str):
        raise TypeError(f"{what} must be a list of conditions such as ['DVID==2'], not a string")
    out = []
    for rule in rules:
        text = str(rule).strip()
        if len(text) == 1 and what == "ignore":
            continue  # a character rule, applied while parsing
        if text.startswith("(") and text.endswith(")"):
            parts = [p for p in text[1:-1].split(",") if p.strip()]
        else:
            parts = [text]
        for part in parts:
            match = _CONDITION.match(part)
            if match is None:
                Report(what).fail(
                    f"{part.strip()!r} is not a condition COLUMN OP VALUE (OP: == != < <= > >= "
                    "or .EQ. .NE. .LT. .LE. .GT. .GE.), e.g. 'DVID==2'"
                )
            column, op, value = match.groups()
            op = op.upper()
            parsed = number(value)
            if parsed is None or np.isnan(parsed):
                value = value.strip("'\"")
                if _OPERATORS[op] not in (operator.eq, operator.ne):
                    Report(what).fail(f"{part.strip()}: compare text only with == or !=")
            else:
                value = parsed
            out.append(Condition(part.strip(), column, op, value))
    return out


def character_rules(rules: Sequence[str] | None) -> str:
    """The single-character ``ignore`` entries (``"@"``, ``"C"``), applied while parsing."""
    if rules is None or isinstance(rules, str):
        return ""
    return "".join(str(r).strip() for r in rules if len(str(r).strip()) == 1)


def select(
    table: RawTable, columns: Columns, ignore: list[Condition], accept: list[Condition]
) -> RawTable:
    """``table`` without the records dropped by the ``C`` column and the conditions.

    Raises
    ------
    DatasetError
        When both ``ignore`` and ``accept`` conditions are given (as NONMEM refuses), a
        condition names no column, compares a non-numeric cell with a number, or no record
        is left.
    """
    report = Report(table.name, table.rows)
    if ignore and accept:
        report.fail(
            "give ignore conditions or accept conditions, not both (NONMEM's IGNORE=(list) and "
            "ACCEPT=(list) exclude each other)"
        )
    keep = np.ones(len(table.rows), dtype=bool)
    ignored = {rule: list(rows) for rule, rows in table.ignored.items()}

    def drop(rule: str, dropped: np.ndarray) -> None:
        dropped &= keep
        if dropped.any():
            ignored.setdefault(rule, []).extend(int(r) for r in table.rows[dropped])
            keep[dropped] = False

    if "C" in columns:
        values = [number(c) for c in cells(table.columns[columns.position["C"]])]
        comment = [v is None or not (np.isnan(v) or v == 0) for v in values]
        drop(columns.label("C"), np.array(comment, dtype=bool))
    for condition in ignore:
        drop(condition.text, _holds(condition, table, columns, keep, report))
    if accept:
        held = np.zeros(len(table.rows), dtype=bool)
        for condition in accept:
            held |= _holds(condition, table, columns, keep, report)
        drop("accept " + ", ".join(c.text for c in accept), ~held)
    if keep.all():
        return table
    if not keep.any():
        report.fail(
            "no data rows left after "
            + ", ".join(f"{rule} ({len(rows)} rows)" for rule, rows in ignored.items())
        )
    return replace(
        table,
        columns=tuple(_take(column, keep) for column in table.columns),
        rows=table.rows[keep],
        ignored={rule: tuple(sorted(rows)) for rule, rows in ignored.items()},
    )


def _take(column, keep: np.ndarray):
    return column[keep] if isinstance(column, np.ndarray) else column.iloc[keep]


def _holds(
    condition: Condition, table: RawTable, columns: Columns, keep: np.ndarray, report: Report
) -> np.ndarray:
    """Where ``condition`` holds (only records still kept are checked)."""
    index = {n.upper(): j for j, n in enumerate(table.names)}
    name = condition.column.upper()
    j = index.get(name)
    if j is None and CANONICAL.get(name) in columns:
        j = columns.position[CANONICAL[name]]
    if j is None and name in columns:
        j = columns.position[name]
    if j is None:
        report.fail(
            f"{condition.text}: no column {condition.column} in the file "
            f"(found: {', '.join(table.names)})",
            condition.column,
        )
    label = table.names[j]
    compare = _OPERATORS[condition.op]
    if isinstance(condition.value, str):
        text = np.array([str(c).strip() if c is not None else "" for c in cells(table.columns[j])])
        return compare(text, condition.value) & keep
    values, bad = to_float(table.columns[j])
    bad &= keep
    if bad.any():
        rows = [str(r) for r in table.rows[bad]]
        report.fail(
            f"{condition.text}: column {label} has non-numeric value(s) in row(s) {listed(rows)}",
            label,
            table.rows[bad].tolist(),
        )
    with np.errstate(invalid="ignore"):
        return compare(np.nan_to_num(values, nan=0.0), condition.value) & keep
