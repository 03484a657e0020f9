"""Curated published CAR-T cellular kinetic data shipped with cartpk.

Each dataset is a tidy CSV table with a JSON sidecar of the same name that describes the
table (``title``, ``description``) and every column (``name``, ``description``, ``unit``,
``dtype``). Every row carries its citation (``source``, ``doi``, ``url``) and a
``verification`` flag:

``verified``
    checked against the source's own text, tables or abstract (or the authors' code);
``secondary``
    checked only against a curated secondary transcription (for example nlmixr2lib);
``unverified``
    recalled or not confirmable. Such rows are kept for reference but must never be used
    to fit or calibrate a model; load with ``verified_only=True`` to drop them.

Numbers are stored as published: no unit conversion is applied. Units are given per column
in ``df.attrs["units"]`` and, where they vary by row, in a ``unit`` (or ``*_unit``) column.
The provenance of every table is described in ``data/README.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .errors import DatasetError

__all__ = ["VERIFICATION_LEVELS", "USABLE_LEVELS", "data_dir", "list_datasets", "load_dataset"]

#: Allowed values of the ``verification`` column, from strongest to weakest.
VERIFICATION_LEVELS: tuple[str, ...] = ("verified", "secondary", "unverified")

#: Levels kept by ``load_dataset(..., verified_only=True)``; the only rows fits may use.
USABLE_LEVELS: frozenset[str] = frozenset({"verified", "secondary"})

_REQUIRED_COLUMNS = ("source", "doi", "verification", "verification_note")
_SIDECAR_KEYS = ("name", "description", "unit", "dtype")
_DTYPES = ("string", "float", "int")


def data_dir() -> Path:
    """Return the folder that holds the dataset CSV files and their JSON sidecars.

    Returns
    -------
    pathlib.Path
        ``cartpk/_data`` inside an installed wheel, otherwise the repository's ``data/``
        folder (editable install or source checkout).

    Raises
    ------
    DatasetError
        If neither folder exists.
    """
    packaged = Path(__file__).parent / "_data"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "data"
    if checkout.is_dir():
        return checkout
    raise DatasetError(
        f"dataset folder not found: neither {packaged} nor {checkout} exists; "
        "reinstall cartpk or run from a source checkout"
    )


def _names() -> list[str]:
    folder = data_dir()
    return sorted(p.stem for p in folder.glob("*.csv") if p.with_suffix(".json").is_file())


def _read_sidecar(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path.name}: cannot read the sidecar ({exc})") from exc
    for key in ("title", "description", "columns"):
        if key not in meta:
            raise DatasetError(f"{path.name}: sidecar lacks the '{key}' key; add it")
    for i, col in enumerate(meta["columns"]):
        missing = [k for k in _SIDECAR_KEYS if k not in col]
        if missing:
            raise DatasetError(
                f"{path.name}: column entry {i} lacks {', '.join(missing)}; every column needs "
                "name, description, unit (may be null) and dtype"
            )
        if col["dtype"] not in _DTYPES:
            raise DatasetError(
                f"{path.name}: column '{col['name']}' has dtype '{col['dtype']}'; "
                f"use one of {', '.join(_DTYPES)}"
            )
    return meta


def _convert(df: pd.DataFrame, meta: dict, csv_name: str) -> pd.DataFrame:
    for col in meta["columns"]:
        name, dtype = col["name"], col["dtype"]
        raw = df[name]
        if dtype == "string":
            df[name] = raw.astype("string")
            continue
        values = pd.to_numeric(raw.where(raw != "", None), errors="coerce")
        bad = raw[(raw != "") & values.isna()]
        if not bad.empty:
            rows = ", ".join(str(i + 2) for i in bad.index[:5])
            raise DatasetError(
                f"{csv_name}: column '{name}' is declared {dtype} "
                f"but line(s) {rows} are not numbers"
            )
        if dtype == "int":
            frac = values.dropna() % 1 != 0
            if frac.any():
                rows = ", ".join(str(i + 2) for i in frac[frac].index[:5])
                raise DatasetError(
                    f"{csv_name}: column '{name}' is declared int but line(s) {rows} have decimals"
                )
            df[name] = values.astype("Int64")
        else:
            df[name] = values.astype("float64")
    return df


def _load(name: str) -> pd.DataFrame:
    folder = data_dir()
    csv_path = folder / f"{name}.csv"
    meta = _read_sidecar(folder / f"{name}.json")
    df = pd.read_csv(csv_path, dtype=str, keep_default_na=False, encoding="utf-8")

    declared = [c["name"] for c in meta["columns"]]
    if list(df.columns) != declared:
        extra = [c for c in df.columns if c not in declared]
        missing = [c for c in declared if c not in df.columns]
        raise DatasetError(
            f"{csv_path.name}: columns do not match {name}.json "
            f"(undescribed: {extra or 'none'}; absent: {missing or 'none'}; or order differs)"
        )
    for col in _REQUIRED_COLUMNS:
        if col not in df.columns:
            raise DatasetError(f"{csv_path.name}: required column '{col}' is missing")

    bad = df.index[~df["verification"].isin(VERIFICATION_LEVELS)]
    if len(bad):
        lines = ", ".join(str(i + 2) for i in bad[:5])
        raise DatasetError(
            f"{csv_path.name}: column 'verification' on line(s) {lines} is not one of "
            f"{', '.join(VERIFICATION_LEVELS)}"
        )
    empty = df.index[df["source"].str.strip() == ""]
    if len(empty):
        lines = ", ".join(str(i + 2) for i in empty[:5])
        raise DatasetError(f"{csv_path.name}: column 'source' is empty on line(s) {lines}")

    df = _convert(df, meta, csv_path.name)
    df.attrs["name"] = name
    df.attrs["title"] = meta["title"]
    df.attrs["description"] = meta["description"]
    df.attrs["units"] = {c["name"]: c["unit"] for c in meta["columns"]}
    df.attrs["descriptions"] = {c["name"]: c["description"] for c in meta["columns"]}
    df.attrs["dtypes"] = {c["name"]: c["dtype"] for c in meta["columns"]}
    return df


def list_datasets() -> pd.DataFrame:
    """List the curated datasets shipped with cartpk.

    Returns
    -------
    pandas.DataFrame
        One row per dataset with columns ``name`` (pass it to :func:`load_dataset`),
        ``title`` and ``n_rows`` (all rows, whatever their verification level), sorted by
        name.
    """
    records = []
    for name in _names():
        df = _load(name)
        records.append({"name": name, "title": df.attrs["title"], "n_rows": len(df)})
    return pd.DataFrame.from_records(records, columns=["name", "title", "n_rows"])


def load_dataset(name: str, verified_only: bool = False) -> pd.DataFrame:
    """Load one curated dataset with its units and column descriptions.

    Parameters
    ----------
    name : str
        Dataset name as listed by :func:`list_datasets`, for example
        ``"stein2019_tisagenlecleucel_parameters"`` or ``"zuma1_axicel_medians"``.
    verified_only : bool, default False
        If True, keep only rows whose ``verification`` is ``"verified"`` or ``"secondary"``
        (see :data:`USABLE_LEVELS`), i.e. drop every ``"unverified"`` row. Use this for any
        fit or calibration; unverified rows must never enter a fit.

    Returns
    -------
    pandas.DataFrame
        The table with numbers as published (no unit conversion); numeric columns are
        ``float64`` or nullable ``Int64`` with missing values as NaN/<NA>, text columns are
        ``string`` with empty strings where a field is blank. ``df.attrs`` holds:

        ``"title"``, ``"description"``, ``"name"``
            table-level metadata;
        ``"units"``
            ``{column: unit or None}``, e.g. ``"cells/uL"``, ``"d"`` (day), ``"1/d"``,
            ``"copies/ug gDNA"``; ``None`` for text columns and for value columns whose
            unit varies by row and is given in a ``unit``/``*_unit`` column;
        ``"descriptions"``
            ``{column: description}``;
        ``"dtypes"``
            ``{column: "string" | "float" | "int"}``.

    Raises
    ------
    DatasetError
        If ``name`` is unknown (the message lists the available names) or the files fail
        validation (the message names the file, column and line).

    Examples
    --------
    >>> from cartpk.datasets import load_dataset
    >>> df = load_dataset("zuma1_axicel_medians")
    >>> df.attrs["units"]["median"]
    'cells/uL'
    """
    available = _names()
    if name not in available:
        raise DatasetError(f"unknown dataset '{name}'; available: {', '.join(available)}")
    df = _load(name)
    if verified_only:
        attrs = dict(df.attrs)
        df = df[df["verification"].isin(USABLE_LEVELS)].reset_index(drop=True)
        df.attrs.update(attrs)
    return df
