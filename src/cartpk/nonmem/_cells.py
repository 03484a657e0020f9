"""Single cells of a dataset as numbers, IDs and compartment keys, and numbers as written."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

MISSING_TEXT = frozenset({"", ".", "nan", "na"})  # compared in lower case
MAX_INT = 2**31  # bound of integer codes (DVID, CMT)
EXACT_FLOAT = 2**53  # integers from here on are not all representable as float64
BAD = object()  # a compartment cell that is neither a positive integer nor a name
INF = object()  # an infinite compartment cell

_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_DECIMAL_COMMA = re.compile(r"^\s*[+-]?\d*,\d+([eE][+-]?\d+)?\s*$")


def cells(column: Any) -> list[Any]:
    """The cells of a column (a DataFrame's Series or an array of text) as a list."""
    if isinstance(column, pd.Series):
        return column.to_numpy(dtype=object).tolist()
    return list(column)


def decimal_point(cell: str) -> str:
    """``1,5`` as ``1.5`` (files written with a decimal comma); other cells as they are."""
    return cell.replace(",", ".") if _DECIMAL_COMMA.match(cell) else cell


def number(cell: Any) -> float | None:
    """A cell as a float (NaN if missing), or None if it is not a number."""
    if cell is None or cell is pd.NA or cell is pd.NaT:
        return math.nan
    if isinstance(cell, str):
        text = cell.strip()
        if text.lower() in MISSING_TEXT:
            return math.nan
        if "_" in text:
            return None
        try:
            return float(text)
        except ValueError:
            return None
    if isinstance(cell, bool | np.bool_ | int | float | np.integer | np.floating):
        try:
            return float(cell)
        except OverflowError:
            return math.inf
    return None


def to_float(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """Values as float64 (NaN where missing) and a mask of non-numeric cells."""
    if isinstance(column, pd.Series) and column.dtype.kind in "biuf":
        try:
            numbers = column.to_numpy(dtype=np.float64, na_value=np.nan)
            return numbers, np.zeros(len(numbers), dtype=bool)
        except (TypeError, ValueError):
            pass
    values = cells(column)
    numbers = np.empty(len(values))
    bad = np.zeros(len(values), dtype=bool)
    cache: dict[str, float | None] = {}
    for i, cell in enumerate(values):
        if isinstance(cell, str):
            if cell not in cache:
                cache[cell] = number(cell)
            value = cache[cell]
        else:
            value = number(cell)
        if value is None:
            bad[i] = True
            numbers[i] = np.nan
        else:
            numbers[i] = value
    return numbers, bad


def id_key(cell: Any, value: float) -> int | float | None:
    """The identity of an ID cell whose float value is ``value``: the exact integer when the
    cell is written as one (``12345678901234567`` stays apart from ``12345678901234568``), an int
    for other whole numbers that float64 holds exactly (``1.0`` is ``1``), else the float (None
    where missing)."""
    if isinstance(cell, int | np.integer) and not isinstance(cell, bool | np.bool_):
        return int(cell)
    if isinstance(cell, str) and _INTEGER.match(cell):
        return int(cell)
    if math.isnan(value):
        return None
    if value.is_integer() and abs(value) < EXACT_FLOAT:
        return int(value)
    return value


def compartment_key(cell: Any) -> Any:
    """A ``CMT`` cell as a compartment key: a positive int, a name, None (missing), or a flag."""
    if isinstance(cell, str):
        text = cell.strip()
        if text.lower() in MISSING_TEXT:
            return None
        value = number(text)
        if value is None:
            return text
    else:
        value = number(cell)
        if value is None:
            return BAD
    if math.isnan(value):
        return None
    if math.isinf(value):
        return INF
    if value != round(value) or not 0 < value < MAX_INT:
        return BAD
    return int(value)


def example(column: Any, bad: np.ndarray) -> str:
    """The first flagged cell of a column, as Python writes it (``'abc'``)."""
    return repr(cells(column)[int(np.flatnonzero(bad)[0])])


def fmt(value: Any) -> str:
    """A number as written in a dataset (integers without a decimal point)."""
    if isinstance(value, np.ndarray):
        return ", ".join(fmt(v) for v in value.tolist())
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
