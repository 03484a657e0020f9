"""Stage 3, validate: every rule of the format, each checked once, in a fixed order.

The first rule broken raises one :class:`~cartpk.errors.DatasetError` naming the column and the
rows; what passes is a :class:`Records` the build stage turns into a dataset without further
checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DatasetError
from ._cells import (
    BAD,
    EXACT_FLOAT,
    INF,
    MAX_INT,
    cells,
    compartment_key,
    example,
    fmt,
    id_key,
    number,
    to_float,
)
from ._parse import RawTable
from ._report import Report
from ._resolve import Columns

MAX_ADDL = 10_000  # additional doses per record
_MAX_ID = 2**63  # IDs are held as int64


@dataclass(frozen=True, eq=False)
class Records:
    """The validated records, one entry per data row, with every column the dataset keeps.

    Attributes
    ----------
    name : str
        The source in messages.
    rows : numpy.ndarray
        The 1-based data row of each record.
    id : numpy.ndarray
        Each record's ID: int64 when every ID is a whole number, else float64.
    ids : tuple
        The subject IDs in dataset order.
    time, dv, amt, limit, dvid : numpy.ndarray
        float64, NaN where missing (``LIMIT`` is the row's ``LIMIT`` or else ``LLOQ``).
    evid, mdv, cens : numpy.ndarray
        int64 codes, derived where the column is absent.
    cmt : numpy.ndarray
        Compartment keys (int or str, None where missing), object dtype.
    duration, addl, ii : numpy.ndarray
        Infusion duration, additional doses and interval of each record (0 where none).
    given : dict
        ``RATE, DUR, ADDL, II, SS`` values as in the source, for the columns present.
    covariates : dict
        Numeric covariate name (as spelled) -> float64 values.
    text : dict
        Covariate columns holding text (as spelled) -> their cells (str, None where missing):
        carried, not covariates until a categorical covariate uses them.
    compartments : dict or None
        The normalised ``compartments`` mapping, or None.
    ignored : dict
        Rule -> the data rows it skipped (see :mod:`._select`).
    """

    name: str
    rows: np.ndarray
    id: np.ndarray
    ids: tuple
    time: np.ndarray
    dv: np.ndarray
    amt: np.ndarray
    evid: np.ndarray
    mdv: np.ndarray
    cmt: np.ndarray
    cens: np.ndarray
    limit: np.ndarray
    dvid: np.ndarray
    duration: np.ndarray
    addl: np.ndarray
    ii: np.ndarray
    given: dict[str, np.ndarray]
    covariates: dict[str, np.ndarray]
    text: dict[str, np.ndarray]
    compartments: dict | None
    ignored: dict[str, tuple[int, ...]]

    @property
    def dosing(self) -> np.ndarray:
        """True on dose records (``EVID=1``)."""
        return self.evid == 1


def normalise_compartments(mapping: Mapping[Any, str] | None, name: str) -> dict | None:
    """The ``compartments`` argument with keys as :func:`compartment_key` reads ``CMT`` cells."""
    if mapping is None:
        return None
    if not isinstance(mapping, Mapping):
        raise TypeError("compartments must be a mapping of CMT value -> state name")
    out = {}
    for key, state in mapping.items():
        normal = compartment_key(key)
        if normal is None or normal is BAD or normal is INF:
            raise DatasetError(
                f"{name}: compartments: invalid CMT key {key!r}; use a positive integer or a name"
            )
        if not isinstance(state, str) or not state:
            raise DatasetError(
                f"{name}: compartments: the state name for CMT {key!r} must be a non-empty "
                f"string, got {state!r}"
            )
        out[normal] = state
    return out


def validate(table: RawTable, columns: Columns, compartments: dict | None) -> Records:
    """Check every rule on the records of ``table``.

    Parameters
    ----------
    table : RawTable
        The parsed cells.
    columns : Columns
        The roles of the columns.
    compartments : dict or None
        The mapping from :func:`normalise_compartments`.

    Raises
    ------
    DatasetError
        On the first rule broken.
    """
    report = Report(table.name, table.rows)
    n = len(table.rows)
    if n == 0:
        report.fail("no data rows")
    col = columns.label
    values, text, id_keys = _typed_columns(table, columns, report)
    nan = np.full(n, np.nan)
    get = values.get
    time = values["TIME"]

    # records and their order
    report.check(np.isnan(values["ID"]), col("ID"), "missing value(s)")
    report.check(np.isnan(time), col("TIME"), "missing value(s)")
    report.check(time < 0, col("TIME"), "negative time")
    code = _codes(id_keys)
    new_block = np.r_[True, code[1:] != code[:-1]]
    starts = np.flatnonzero(new_block)
    _, first_block = np.unique(code[starts], return_index=True)
    again = np.zeros(n, dtype=bool)
    again[starts] = True
    again[starts[first_block]] = False
    if again.any():
        which = [fmt(k) for k in dict.fromkeys(id_keys[i] for i in np.flatnonzero(again))]
        report.check(
            again,
            col("ID"),
            f"ID {which[0]} reappears after other IDs"
            if len(which) == 1
            else f"IDs {', '.join(which)} reappear after other IDs",
            "records of one subject must be contiguous",
        )
    decreasing = np.r_[False, (time[1:] < time[:-1]) & ~new_block[1:]]
    report.check(
        decreasing,
        col("TIME"),
        "time decreases within an ID",
        "records must be sorted by time within each ID",
    )
    duplicated = pd.DataFrame({**values, "ID": code}).duplicated(keep="first").to_numpy()
    report.check(duplicated, None, "duplicated record(s)", "identical to an earlier row")

    # codes
    evid, mdv = get("EVID"), get("MDV")
    if evid is not None:
        report.check(np.isnan(evid), col("EVID"), "missing value(s)")
        for code, event in ((3, "reset"), (4, "reset and dose")):
            report.check(
                evid == code,
                col("EVID"),
                f"EVID={code} ({event}) is not supported",
                "the solver carries each subject's state from event to event and cannot reset "
                "it; give each period after a reset its own ID",
            )
        invalid = ~np.isin(evid, (0, 1, 2))
        report.check(
            invalid,
            col("EVID"),
            "invalid EVID",
            f"e.g. {fmt(evid[invalid][:1])}; allowed: 0 observation, 1 dose, 2 other",
        )
    if mdv is not None:
        report.check(np.isnan(mdv), col("MDV"), "missing value(s)")
        invalid = ~np.isin(mdv, (0, 1))
        report.check(
            invalid, col("MDV"), "invalid MDV", f"e.g. {fmt(mdv[invalid][:1])}; allowed: 0, 1"
        )
    cens = get("CENS")
    if cens is not None:
        allowed = (0, 1) if col("CENS").upper() == "BLQ" else (0, 1, -1)
        invalid = ~np.isnan(cens) & ~np.isin(cens, allowed)
        report.check(
            invalid,
            col("CENS"),
            f"invalid {col('CENS')} value(s)",
            f"e.g. {fmt(cens[invalid][:1])}; allowed: {', '.join(map(str, allowed))}",
        )
        cens = np.nan_to_num(cens, nan=0.0).astype(np.int64)
    else:
        cens = np.zeros(n, dtype=np.int64)
    dvid = get("DVID")
    if dvid is not None:
        invalid = ~np.isnan(dvid) & ((dvid != np.round(dvid)) | (np.abs(dvid) >= MAX_INT))
        report.check(invalid, col("DVID"), "non-integer observation type(s)")
    ss = get("SS")
    if ss is not None:
        report.check(
            ~np.isnan(ss) & (ss != 0), col("SS"), "steady-state dosing (SS≠0) is not supported"
        )
    amt = get("AMT", nan)
    report.check(amt < 0, col("AMT"), "negative amount")
    rate, dur = get("RATE"), get("DUR")
    if rate is not None:
        report.check(rate == -1, col("RATE"), "modelled infusion rate (RATE=-1) is not supported")
        report.check(
            rate == -2, col("RATE"), "modelled infusion duration (RATE=-2) is not supported"
        )
        report.check(rate < 0, col("RATE"), "negative rate")
    if dur is not None:
        report.check(dur < 0, col("DUR"), "negative duration")
    addl, ii = get("ADDL"), get("II")
    if addl is not None:
        invalid = ~np.isnan(addl) & ((addl < 0) | (addl != np.round(addl)))
        report.check(invalid, col("ADDL"), "ADDL must be a non-negative integer")
        report.check(addl > MAX_ADDL, col("ADDL"), f"more than {MAX_ADDL} additional doses")
    if ii is not None:
        report.check(ii < 0, col("II"), "negative dosing interval")
    if addl is not None:
        no_interval = np.isnan(ii) | (ii <= 0) if ii is not None else np.ones(n, dtype=bool)
        report.check(
            (addl > 0) & no_interval,
            col("II"),
            "ADDL > 0 needs a dosing interval II > 0",
            "" if ii is not None else "the file has no II column",
        )

    # event types
    dv = get("DV", nan)
    dose_amount = ~np.isnan(amt) & (amt > 0)
    if evid is None:
        if mdv is None:
            report.check(
                dose_amount & ~np.isnan(dv) & (dv != 0),
                col("DV"),
                "record with both AMT > 0 and DV",
                "ambiguous without EVID or MDV: add MDV=1 to doses",
            )
            evid = np.where(dose_amount, 1, 0)
        else:
            report.check(
                dose_amount & (mdv == 0),
                col("MDV"),
                "record with AMT > 0 and MDV=0",
                "a dose needs MDV=1, an observation AMT=0 or empty",
            )
            evid = np.where(dose_amount, 1, np.where(mdv == 0, 0, 2))
    evid = evid.astype(np.int64)
    if mdv is None:
        mdv = (evid != 0).astype(np.int64)
    else:
        report.check((evid == 1) & (mdv == 0), col("MDV"), "dose record (EVID=1) with MDV=0")
        mdv = mdv.astype(np.int64)
    report.check((evid == 0) & dose_amount, col("AMT"), "observation record (EVID=0) with AMT > 0")
    report.check(
        (evid == 2) & dose_amount,
        col("AMT"),
        "other-event record (EVID=2) with AMT > 0",
        "a dose needs EVID 1 or 4; with EVID 2 it would be ignored",
    )

    # observations
    observed = (evid == 0) & (mdv == 0)
    censored = observed & (cens != 0)
    report.check(
        observed & np.isnan(dv) & ~censored,
        col("DV"),
        "missing observation",
        "not MDV=1 and not censored",
    )
    if dvid is not None:
        report.check(observed & np.isnan(dvid), col("DVID"), "missing value(s)")
    else:
        dvid = np.ones(n)
    limit, lloq = get("LIMIT"), get("LLOQ")
    if limit is not None and lloq is not None:
        report.check(
            ~np.isnan(limit) & ~np.isnan(lloq) & (limit != lloq),
            col("LIMIT"),
            f"{col('LIMIT')} and {col('LLOQ')} disagree",
        )
    lloq = nan if lloq is None else lloq
    if limit is not None:
        report.check(
            censored & ~np.isnan(dv) & ~np.isnan(limit) & (limit != dv) & np.isnan(lloq),
            col("LIMIT"),
            "interval censoring is not supported",
            f"{col('CENS')}≠0 with {col('DV')} and a different {col('LIMIT')}: as in Monolix, "
            f"{col('DV')} is the limit and {col('LIMIT')} the other bound of an interval, which "
            f"the M3 likelihood cannot fit; leave {col('LIMIT')} empty to censor at {col('DV')}",
        )
    given = np.where(np.isnan(limit), lloq, limit) if limit is not None else lloq
    # a censored record's limit: LLOQ (NONMEM; DV is then ignored), else DV (Monolix), else LIMIT
    at_limit = np.where(~np.isnan(lloq), lloq, np.where(np.isnan(dv), given, dv))
    limit = np.where(censored, at_limit, given)
    report.check(
        censored & np.isnan(limit),
        col("CENS"),
        "censored observation without a limit",
        f"{col('DV')} is empty; give the limit in {col('DV')}, LIMIT or LLOQ"
        if "LIMIT" in columns or "LLOQ" in columns
        else f"{col('DV')} is empty and the file has no LIMIT or LLOQ column",
    )
    if not observed.any():
        report.fail("no observations (no record with EVID=0 and MDV=0)")

    # doses
    dosing = evid == 1
    report.check(dosing & ~dose_amount, col("AMT"), "dose with zero or missing amount")
    cmt = _check_compartments(get("CMT"), dosing, columns, compartments, report)
    given_rate = ~np.isnan(rate) & (rate != 0) if rate is not None else np.zeros(n, bool)
    given_dur = ~np.isnan(dur) & (dur != 0) if dur is not None else np.zeros(n, bool)
    report.check(
        dosing & given_rate & given_dur,
        None,
        f"{col('RATE')} and {col('DUR')} both given",
        "give one of them",
    )
    infusion_column = np.where(given_dur, col("DUR"), col("RATE"))
    with np.errstate(all="ignore"):
        duration = np.zeros(n)
        if rate is not None:
            duration = np.where(given_rate, amt / np.where(given_rate, rate, 1.0), 0.0)
        if dur is not None:
            duration = np.where(given_dur, dur, duration)
        report.check(
            dosing & ~np.isfinite(duration), col("RATE"), "infusion duration AMT/RATE is not finite"
        )
        addl = np.zeros(n) if addl is None else np.nan_to_num(addl, nan=0.0)
        ii = np.zeros(n) if ii is None else np.nan_to_num(ii, nan=0.0)
        last_start = time + addl * ii
        report.check(
            dosing & ~np.isfinite(last_start + duration),
            col("TIME"),
            "dose times overflow",
            "TIME + ADDL*II + duration is not finite",
        )
        infused = dosing & (duration > 0)
        too_fast = infused & ~np.isfinite(amt / np.where(infused, duration, 1.0))
        report.check(
            too_fast,
            str(infusion_column[too_fast][0]) if too_fast.any() else None,
            "infusion rate AMT/duration is not finite",
        )
        too_short = infused & (last_start + duration == last_start)
        report.check(
            too_short,
            str(infusion_column[too_short][0]) if too_short.any() else None,
            "infusion too short to resolve at its time in float64",
            "give a longer infusion or a bolus",
        )

    id_column = _id_column(id_keys)
    return Records(
        name=table.name,
        rows=table.rows,
        id=id_column,
        ids=tuple(id_column[starts].tolist()),
        time=time,
        dv=dv,
        amt=amt,
        evid=evid,
        mdv=mdv,
        cmt=cmt,
        cens=cens,
        limit=limit,
        dvid=dvid,
        duration=duration,
        addl=addl,
        ii=ii,
        given={k: values[k] for k in ("RATE", "DUR", "ADDL", "II", "SS") if k in values},
        covariates={name: values[name] for name in columns.covariates if name in values},
        text=text,
        compartments=compartments,
        ignored=table.ignored,
    )


def _typed_columns(
    table: RawTable, columns: Columns, report: Report
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list]:
    """The used columns as float64 (NaN where missing; ``CMT`` as compartment keys), checked in
    file order; covariate columns holding text as text; each record's ID key
    (:func:`~._cells.id_key`)."""
    values: dict[str, np.ndarray] = {}
    text: dict[str, np.ndarray] = {}
    id_keys: list = []
    for key, j in sorted(columns.position.items(), key=lambda item: item[1]):
        column, label = table.columns[j], table.names[j]
        if key == "CMT":
            values[key] = _compartment_keys(column, label, report)
            continue
        if key == "C":
            continue  # applied by the selection stage
        numbers, bad = to_float(column)
        if bad.any() and key in columns.covariates:
            text[key] = _text(column, numbers)
            continue
        if bad.any():
            report.check(bad, label, "non-numeric value(s)", f"e.g. {example(column, bad)}")
        infinite = np.isinf(numbers)
        if infinite.any():
            report.check(
                infinite, label, "non-finite value(s)", f"e.g. {example(column, infinite)}"
            )
        if key == "ID":
            id_keys = _id_keys(column, numbers, label, report)
        values[key] = numbers
    return values, text, id_keys


def _text(column: Any, numbers: np.ndarray) -> np.ndarray:
    """A text column's cells: stripped text, None where missing."""
    out = np.empty(len(numbers), dtype=object)
    for i, cell in enumerate(cells(column)):
        out[i] = None if np.isnan(numbers[i]) and number(cell) is not None else str(cell).strip()
    return out


def _id_keys(column: Any, numbers: np.ndarray, label: str, report: Report) -> list:
    """Each record's ID as compared: exact integers when written so (17-digit IDs stay apart)."""
    keys = []
    known: dict[str, int | float | None] = {}  # text cells repeat: one key per distinct text
    for cell, value in zip(cells(column), numbers.tolist(), strict=True):
        if not isinstance(cell, str):
            keys.append(id_key(cell, value))
        elif cell in known:
            keys.append(known[cell])
        else:
            keys.append(known.setdefault(cell, id_key(cell, value)))
    if any(isinstance(k, int) and abs(k) >= EXACT_FLOAT for k in keys):
        report.check(
            np.array([isinstance(k, float) for k in keys]),
            label,
            "non-integer ID(s) among IDs of 16 or more digits",
            "write every ID as a whole number",
        )
        report.check(
            np.array([isinstance(k, int) and abs(k) >= _MAX_ID for k in keys]),
            label,
            "ID(s) too large (IDs must be below 2^63)",
        )
    return keys


def _codes(keys: list) -> np.ndarray:
    """Consecutive integer codes of the ID keys, in order of first appearance."""
    index: dict = {}
    return np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.int64)


def _id_column(keys: list) -> np.ndarray:
    """The IDs as int64 when every one is a whole number, else as float64."""
    if all(isinstance(k, int) for k in keys):
        return np.array(keys, dtype=np.int64)
    return np.array(keys, dtype=np.float64)


def _compartment_keys(column: Any, label: str, report: Report) -> np.ndarray:
    values = cells(column)
    keys = np.empty(len(values), dtype=object)
    bad = np.zeros(len(values), dtype=bool)
    infinite = np.zeros(len(values), dtype=bool)
    for i, cell in enumerate(values):
        key = compartment_key(cell)
        if key is BAD:
            bad[i] = True
        elif key is INF:
            infinite[i] = True
        else:
            keys[i] = key
    if bad.any():
        report.check(
            bad,
            label,
            "invalid compartment(s)",
            f"e.g. {example(column, bad)}; use a positive integer or a name",
        )
    report.check(infinite, label, "non-finite value(s)", "inf")
    return keys


def _check_compartments(
    keys: np.ndarray | None,
    dosing: np.ndarray,
    columns: Columns,
    compartments: dict | None,
    report: Report,
) -> np.ndarray:
    """The compartment key of every record (1 when there is no ``CMT`` column); a dose needs
    one, and one the mapping knows when a mapping is given."""
    col = columns.label
    if keys is None:
        keys = np.full(len(dosing), 1, dtype=object)
    else:
        missing = np.array([k is None for k in keys.tolist()], dtype=bool)
        report.check(dosing & missing, col("CMT"), "dose without a compartment")
    if compartments is not None:
        unknown = dosing & np.array([k not in compartments for k in keys.tolist()], dtype=bool)
        if unknown.any():
            which = ", ".join(fmt(k) for k in dict.fromkeys(keys[unknown].tolist()))
            known = ", ".join(fmt(k) for k in compartments)
            report.check(
                unknown,
                col("CMT"),
                f"dose into unknown compartment {which}",
                f"known: {known}"
                + ("" if "CMT" in columns else "; no CMT column, so doses go to 1"),
            )
    return keys
