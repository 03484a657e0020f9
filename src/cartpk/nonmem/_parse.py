"""Stage 1, parse: a CSV file (path or bytes) or a DataFrame as named columns of raw cells.

Text is UTF-8 (a byte-order mark is allowed). The header is the first line that is neither
empty nor a ``#`` comment, or a commented header ``#ID,TIME,...`` (as NONMEM writes its tables)
when the first other line is data. The header line fixes the separator: the most frequent of
comma, semicolon and tab. In semicolon- and tab-separated files a decimal comma is read as a
decimal point (``1,5`` is 1.5). Empty lines and ``#`` lines (NONMEM's ``IGNORE=#``) are skipped
but keep their place in the row numbering: data row *k* is the *k*-th line after the header.
NONMEM's other character rules are applied here too when asked: ``IGNORE=c1`` skips records
whose first character is ``c1``, ``IGNORE=@`` records whose first non-blank character is a
letter or ``@`` (NONMEM Users Guide VIII, ``$DATA``).
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._cells import decimal_point
from ._report import Report, listed

SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab"}
_HEADER_NAMES = frozenset({"ID", "TIME"})


@dataclass(frozen=True, eq=False)
class RawTable:
    """A dataset's column names and cells, before any interpretation.

    Attributes
    ----------
    name : str
        The source in messages: the path, ``"<bytes>"``, ``"<DataFrame>"`` or the name given.
    names : tuple of str
        Column names as spelled in the source (surrounding white space removed).
    columns : tuple
        The cells of each column: an object array of text for a file, the Series of a DataFrame.
    rows : numpy.ndarray
        The 1-based data row of each record.
    ignored : dict
        Rule (``"#"``, ``"@"``, ``"C"``, ``"DVID==2"``...) -> the data rows it skipped.
    """

    name: str
    names: tuple[str, ...]
    columns: tuple[Any, ...]
    rows: np.ndarray
    ignored: dict[str, tuple[int, ...]] = field(default_factory=dict)


def skipped_by(first: str, rules: str) -> str | None:
    """The character rule of ``rules`` that skips a record starting with ``first`` (its first
    non-blank text), or None: ``@`` matches a letter or ``@``, any other character itself."""
    for rule in rules:
        if rule == "@" and first[:1] and (first[0].isalpha() or first[0] == "@"):
            return rule
        if rule != "@" and first.startswith(rule):
            return rule
    return None


def parse(source: Any, name: str | None = None, rules: str = "") -> RawTable:
    """Read ``source`` (a path, the bytes of a file, or a DataFrame) into a :class:`RawTable`,
    skipping records by the character ``rules`` (``"@"``, ``"C"``; a DataFrame's record text
    is its first cell)."""
    if isinstance(source, pd.DataFrame):
        report = Report(name or "<DataFrame>")
        names = [str(c).strip() for c in source.columns]
        for j, label in enumerate(names):
            if not label:
                report.fail(f"column {j + 1} has no name")
        rows = np.arange(1, len(source) + 1)
        keep = np.ones(len(source), dtype=bool)
        ignored: dict[str, list[int]] = {}
        if rules and source.shape[1]:
            for i, cell in enumerate(source.iloc[:, 0].tolist()):
                rule = skipped_by(str(cell).lstrip(), rules) if isinstance(cell, str) else None
                if rule is not None:
                    keep[i] = False
                    ignored.setdefault(rule, []).append(i + 1)
        return RawTable(
            report.name,
            tuple(names),
            tuple(source.iloc[keep, j] for j in range(source.shape[1])),
            rows[keep],
            {rule: tuple(r) for rule, r in ignored.items()},
        )
    if isinstance(source, bytes | bytearray | memoryview):
        return parse_bytes(bytes(source), name or "<bytes>", rules)
    if isinstance(source, str | os.PathLike):
        report = Report(name or os.fsdecode(source))
        try:
            with open(source, "rb") as handle:  # read-only: the file is never modified
                raw = handle.read()
        except FileNotFoundError:
            report.fail("file not found")
        except IsADirectoryError:
            report.fail("not a file (it is a directory)")
        except OSError as error:
            report.fail(f"cannot read the file ({error.strerror or error})")
        return parse_bytes(raw, report.name, rules)
    raise TypeError(
        f"read_nonmem needs a CSV path, bytes or a pandas DataFrame, got {type(source).__name__}"
    )


def parse_bytes(raw: bytes, name: str, rules: str = "") -> RawTable:
    """The content of a CSV file as a :class:`RawTable` (``rules``: as :func:`parse`)."""
    report = Report(name)
    lines = io.StringIO(_decode(raw, report), newline="").readlines()
    start, commented = _find_header(lines, report)
    separator = _separator(lines[start])
    header = [h.strip() for h in next(csv.reader([lines[start]], delimiter=separator), [""])]
    if commented:
        header[0] = header[0].lstrip("#").strip()
    named = len(header)
    width = max((j + 1 for j, h in enumerate(header) if h), default=1)  # without empty tail names
    header = header[:width]
    if width == 1 and any(c in header[0] for c in " |"):
        report.fail(
            "not a comma-, semicolon- or tab-separated file (the header is one column "
            f"{header[0]!r})"
        )

    reader = csv.reader(iter(lines[start + 1 :]), delimiter=separator)
    rows, line_numbers, records = [], [], []
    ignored: dict[str, list[int]] = {}
    try:
        for row, record in enumerate(reader, 1):
            first = record[0].lstrip() if record else ""
            if not (first or "".join(record).strip()):
                continue  # an empty line
            rule = skipped_by(first, "#" + rules)
            if rule is not None:
                ignored.setdefault(rule, []).append(row)
                continue
            if len(record) > width:
                filled = [j for j in range(width, len(record)) if record[j].strip()]
                if not filled:
                    record = record[:width]  # trailing empty fields, e.g. from spreadsheets
                elif filled[0] < named:
                    report.fail(f"column {filled[0] + 1} has no name in the header")
            rows.append(row)
            line_numbers.append(start + 1 + reader.line_num)
            records.append(record)
    except csv.Error as error:
        report.fail(f"not a CSV file ({error} on line {start + 1 + reader.line_num})")
    _check_widths(records, rows, line_numbers, width, report)
    if separator != ",":
        records = [[decimal_point(f) for f in r] for r in records]

    columns = [np.array([r[j] for r in records], dtype=object) for j in range(width)]
    keep = []
    for j in range(width):
        if header[j]:
            keep.append(j)
        elif any(cell.strip() for cell in columns[j].tolist()):
            report.fail(f"column {j + 1} has no name in the header")
    return RawTable(
        name,
        tuple(header[j] for j in keep),
        tuple(columns[j] for j in keep),
        np.array(rows, dtype=np.int64),
        {rule: tuple(r) for rule, r in ignored.items()},
    )


def _decode(raw: bytes, report: Report) -> str:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or _utf16_without_bom(raw):
        report.fail("not a CSV file (UTF-16 text, not UTF-8): save it as UTF-8")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        report.fail(
            f"not a CSV file (not UTF-8 text): byte 0x{raw[error.start]:02x} on line {line}; "
            "save it as UTF-8"
        )
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        report.fail(f"not a CSV file (binary content): a NUL byte on line {line}")
    return text


def _utf16_without_bom(raw: bytes) -> bool:
    """Whether the start of ``raw`` is ASCII text in UTF-16 (every other byte zero)."""
    sample = raw[:64]
    if len(sample) < 4:
        return False
    even, odd = sample[0::2], sample[1::2]
    return (not odd.strip(b"\x00") and 0 not in even) or (not even.strip(b"\x00") and 0 not in odd)


def _find_header(lines: list[str], report: Report) -> tuple[int, bool]:
    """The index of the header line, and whether it is a commented header ``#ID,TIME,...``."""
    filled = [k for k, line in enumerate(lines) if line.strip()]
    if not filled:
        report.fail("empty file (no header line)")
    comment = {k for k in filled if lines[k].lstrip().startswith("#")}
    first = next((k for k in filled if k not in comment), None)
    leading = [k for k in filled if k in comment and (first is None or k < first)]
    if first is not None and (_looks_like_header(lines[first]) or not leading):
        return first, False
    if leading and _looks_like_header(lines[leading[-1]]):
        return leading[-1], True
    if first is None:
        report.fail("empty file (no header line, only '#' comment lines)")
    return first, False


def _looks_like_header(line: str) -> bool:
    """Whether a line names the ID or the TIME column."""
    for separator in SEPARATORS:
        line = line.replace(separator, ",")
    names = {f.strip().lstrip("#").strip().strip('"').upper() for f in line.split(",")}
    return bool(names & _HEADER_NAMES)


def _separator(header: str) -> str:
    """The field separator of a header line: comma, semicolon or tab, the most frequent."""
    counts = {separator: header.count(separator) for separator in SEPARATORS}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


def _check_widths(records, rows, line_numbers, width: int, report: Report) -> None:
    ragged = [k for k, record in enumerate(records) if len(record) != width]
    if ragged:
        report.fail(
            f"wrong number of fields (the header has {width}) in row(s) "
            + listed(
                [f"{rows[k]} (line {line_numbers[k]}, {len(records[k])} fields)" for k in ragged]
            ),
            None,
            (rows[k] for k in ragged),
        )
