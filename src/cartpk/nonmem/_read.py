"""The reader: parse, resolve, select, validate, build."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ._build import build
from ._data import NonmemData
from ._parse import parse
from ._resolve import resolve
from ._select import character_rules, conditions, select
from ._validate import normalise_compartments, validate


def read_nonmem(
    source: str | os.PathLike | bytes | pd.DataFrame,
    *,
    name: str | None = None,
    compartments: Mapping[Any, str] | None = None,
    covariates: Sequence[str] | None = None,
    columns: Mapping[str, str] | Sequence[str] | None = None,
    ignore: Sequence[str] | None = None,
    accept: Sequence[str] | None = None,
) -> NonmemData:
    """Read and validate a NONMEM-style (or Monolix-style) dataset.

    Parameters
    ----------
    source : str, path-like, bytes or pandas.DataFrame
        A CSV file (opened read-only), its content as bytes (so that a caller who hashes what
        it read passes the same bytes), or a DataFrame (not modified). A file is UTF-8 text (a
        byte-order mark is allowed); its separator is found from the header line (comma,
        semicolon or tab; with a semicolon or a tab a decimal comma is read as a decimal point);
        empty lines and ``#`` comment lines are skipped.
    name : str, optional
        The source's name in messages and in :attr:`NonmemData.source` (default: the path,
        ``"<bytes>"`` or ``"<DataFrame>"``).
    compartments : mapping, optional
        ``CMT`` (or Monolix ``ADM``) value -> model state name, e.g. ``{1: "blood_effector"}``.
        When given, a dose into a compartment not in the mapping is an error. When omitted,
        doses target the state named by the ``CMT`` value as a string (``"1"``, ``"central"``).
    covariates : sequence of str, optional
        Covariate columns to keep (case-insensitive; each must exist). Other non-standard
        columns are then ignored. By default every non-standard column is a covariate; one
        holding text is carried as a text column (:attr:`NonmemData.text_columns`).
    columns : mapping or sequence, optional
        Roles of the file's columns, for files with their own names: file column -> role, e.g.
        ``{"time": "TIME", "y": "DV", "y_ID": "DVID"}``, or one role per column in file order
        (Monolix's header types, NONMEM's ``$INPUT``). A role is a NONMEM name (``DV``, ``CENS``
        ...), a Monolix column type or Mlxtran ``use=`` keyword (``OBSERVATION``,
        ``OBSERVATION ID``, ``observationtype``, ``censored``, ``regressor`` ...),
        ``COVARIATE`` or ``IGNORE`` (the column is dropped).
    ignore : sequence of str, optional
        NONMEM's ``IGNORE``: single characters (``"@"``: records whose first non-blank
        character is a letter or ``@``; ``"C"``: records starting with ``C``) and conditions
        ``COLUMN OP VALUE`` (``"DVID==2"``, ``"DVID.EQ.2"``); a record is dropped when any
        holds. ``#`` lines are always skipped.
    accept : sequence of str, optional
        NONMEM's ``ACCEPT``: only records for which some condition holds are kept (not together
        with ``ignore`` conditions). :attr:`NonmemData.ignored` says how many rows each rule
        dropped.

    Returns
    -------
    NonmemData
        The validated dataset.

    Raises
    ------
    DatasetError
        On the first problem found, with a one-line message naming the source, the column and
        up to five offending rows (1-based data rows: data row *k* is the *k*-th line after the
        header); its ``column`` and ``rows`` attributes hold the column as spelled in the source
        (None for a problem of the whole file) and every offending row.
    """
    dropping, keeping = conditions(ignore, "ignore"), conditions(accept, "accept")
    table = parse(source, name, character_rules(ignore))
    mapping = normalise_compartments(compartments, table.name)
    roles = resolve(table, covariates, columns)
    return build(validate(select(table, roles, dropping, keeping), roles, mapping))
