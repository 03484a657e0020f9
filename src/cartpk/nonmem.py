"""Read NONMEM-style (and Monolix-style) datasets, validate them and turn them into arrays.

A dataset is a table with one record per row: observations (``EVID=0``), doses (``EVID=1``) and
other events (``EVID=2``). :func:`read_nonmem` reads it from a CSV file or a pandas DataFrame,
checks every rule below, and returns a :class:`NonmemData` holding the validated table, one
:class:`~cartpk.regimen.Regimen` per subject and the observations as padded arrays for jitted
code (:meth:`NonmemData.to_arrays`). :func:`to_frame` goes back from arrays (plus model outputs
such as ``PRED``) to a long table. Bad data never gets through: every problem raises one
:class:`~cartpk.errors.DatasetError` whose one-line message names the file, the column and the
first offending rows (1-based data rows, the header excluded).

Columns (names are case-insensitive):

``ID``, ``TIME``
    Required. Records of one subject must be contiguous and sorted by time; times are >= 0.
``DV``, ``AMT``
    At least one is required; ``DV`` is required unless every observation is censored.
``EVID``, ``MDV``
    Derived NONMEM-style when absent: ``AMT > 0`` makes a dose, any other record is an
    observation (``MDV=0``) or, with ``MDV=1``, an other-type event. ``EVID`` 3 and 4 (resets)
    are not supported.
``CMT`` (Monolix ``ADM``)
    Compartment of a dose: a positive integer or a name. Defaults to 1 when the column is absent.
``RATE``, ``DUR``
    Zero-order infusion (duration ``AMT/RATE`` or ``DUR``). Modelled rates/durations
    (``RATE=-1``/``-2``) are not supported.
``ADDL``, ``II``
    Additional doses, expanded into single doses every ``II`` after the record.
``CENS`` (or a ``BLQ`` flag), ``LIMIT``, ``LLOQ``
    ``CENS=1``: below the limit, ``-1``: above it. The limit comes from ``LIMIT`` or else
    ``LLOQ``; ``DV`` may be empty on censored records.
``DVID`` (Monolix ``YTYPE`` or ``Y``)
    Integer observation type; 1 when absent.
``SS``
    Steady-state dosing is not supported (only ``SS=0`` is accepted).

Every other column is a numeric covariate, constant or time-varying. In a CSV file an empty field
or NONMEM's ``.`` means missing.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array

from .errors import DatasetError, RegimenError
from .precision import require_x64
from .regimen import Dose, DoseArrays, Regimen, stack_regimens

__all__ = ["NonmemData", "ObservationArrays", "read_nonmem", "to_frame"]

_SHOWN = 5  # offending rows listed in a message before "and N more"
_MAX_ADDL = 10_000  # additional doses per record
_MAX_INT = 2**31  # bound of integer codes (DVID, CMT)
_MISSING_TEXT = frozenset({"", ".", "nan", "na"})  # compared in lower case
_DATAFRAME = "<DataFrame>"

# Canonical column -> accepted names (upper case). Aliases of one column may not appear together.
_ALIASES: dict[str, tuple[str, ...]] = {
    "ID": ("ID",),
    "TIME": ("TIME",),
    "DV": ("DV",),
    "AMT": ("AMT",),
    "EVID": ("EVID",),
    "MDV": ("MDV",),
    "CMT": ("CMT", "ADM"),
    "RATE": ("RATE",),
    "DUR": ("DUR",),
    "ADDL": ("ADDL",),
    "II": ("II",),
    "SS": ("SS",),
    "CENS": ("CENS", "BLQ"),
    "LIMIT": ("LIMIT",),
    "LLOQ": ("LLOQ",),
    "DVID": ("DVID", "YTYPE", "Y"),
}
_CANONICAL = {alias: name for name, aliases in _ALIASES.items() for alias in aliases}


# ------------------------------------------------------------------------------------------------
# Arrays


class ObservationArrays(eqx.Module):
    """Observations of ``P`` subjects padded to ``n`` records each, for jitted code.

    Entries where ``mask`` is False are padding: ``time`` repeats the subject's last observation
    time (so times stay sorted), every other value is 0 or False. No array contains NaN except
    ``covariates`` (where the dataset has no value), so likelihoods can safely use ``jnp.where``.

    Attributes
    ----------
    id : Float[Array, "P"]
        Subject ID of each row, in dataset order.
    time : Float[Array, "P n"]
        Observation times.
    dv : Float[Array, "P n"]
        Observed values. Censored records without a ``DV`` hold their limit instead.
    mask : Bool[Array, "P n"]
        True for real observations, False for padding.
    censored : Bool[Array, "P n"]
        True where the observation is below ``limit`` (``CENS=1``).
    censored_above : Bool[Array, "P n"]
        True where the observation is above ``limit`` (``CENS=-1``).
    limit : Float[Array, "P n"]
        Censoring limit (``LIMIT`` or ``LLOQ``); 0 where none is given.
    dvid : Int[Array, "P n"]
        Observation type (``DVID``).
    dv_missing : Bool[Array, "P n"]
        True where the dataset's ``DV`` is empty (censored records only).
    limit_missing : Bool[Array, "P n"]
        True on observations without a limit.
    covariates : dict[str, Float[Array, "P n"]]
        Covariate values on the observation records (NaN where missing).
    doses : DoseArrays or None
        The subjects' regimens stacked by :func:`~cartpk.regimen.stack_regimens`, when state
        names were given to :meth:`NonmemData.to_arrays`.
    """

    id: Array
    time: Array
    dv: Array
    mask: Array
    censored: Array
    censored_above: Array
    limit: Array
    dvid: Array
    dv_missing: Array
    limit_missing: Array
    covariates: dict[str, Array]
    doses: DoseArrays | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """``(P, n)``: subjects and padded observations per subject."""
        return tuple(self.mask.shape)


_OBS_COLUMNS = ("ID", "TIME", "DV", "DVID", "CENS", "LIMIT")


def to_frame(arrays: ObservationArrays, **columns: Any) -> pd.DataFrame:
    """Turn padded observation arrays back into a long table, one row per observation.

    Parameters
    ----------
    arrays : ObservationArrays
        Arrays from :meth:`NonmemData.to_arrays`.
    **columns
        Extra per-observation arrays of shape ``(P, n)``, e.g. ``PRED=pred, IPRED=ipred``;
        each becomes a column (padding dropped).

    Returns
    -------
    pandas.DataFrame
        Columns ``ID, TIME, DV, DVID, CENS, LIMIT``, the covariates, then the extra columns.
        ``DV`` is NaN where the dataset's ``DV`` was empty and ``LIMIT`` where no limit was given;
        it equals :meth:`NonmemData.observations` for the arrays of that dataset.

    Raises
    ------
    DatasetError
        If an extra column has the wrong shape or clashes with a standard column.
    """
    mask = np.asarray(arrays.mask, dtype=bool)
    subject, _ = np.nonzero(mask)
    ids = np.asarray(arrays.id, dtype=np.float64)
    taken = set(_OBS_COLUMNS) | set(arrays.covariates)
    for name, value in columns.items():
        if name in taken:
            raise DatasetError(f"to_frame: extra column {name} clashes with a standard column")
        if np.shape(value) != mask.shape:
            raise DatasetError(
                f"to_frame: column {name} has shape {np.shape(value)}, expected {mask.shape}"
            )
    censored = np.asarray(arrays.censored, dtype=bool)[mask]
    above = np.asarray(arrays.censored_above, dtype=bool)[mask]
    out = {
        "ID": _id_column(ids)[subject],
        "TIME": np.asarray(arrays.time, dtype=np.float64)[mask],
        "DV": np.where(
            np.asarray(arrays.dv_missing, dtype=bool)[mask],
            np.nan,
            np.asarray(arrays.dv, dtype=np.float64)[mask],
        ),
        "DVID": np.asarray(arrays.dvid).astype(np.int64)[mask],
        "CENS": np.where(censored, 1, np.where(above, -1, 0)).astype(np.int64),
        "LIMIT": np.where(
            np.asarray(arrays.limit_missing, dtype=bool)[mask],
            np.nan,
            np.asarray(arrays.limit, dtype=np.float64)[mask],
        ),
    }
    for name, value in arrays.covariates.items():
        out[name] = np.asarray(value, dtype=np.float64)[mask]
    for name, value in columns.items():
        out[name] = np.asarray(value)[mask]
    return pd.DataFrame(out)


def _id_column(ids: np.ndarray) -> np.ndarray:
    """IDs as int64 when all are integers (exactly representable), else as float64."""
    ids = np.asarray(ids, dtype=np.float64)
    if np.all(np.isfinite(ids)) and np.all(ids == np.round(ids)) and np.all(np.abs(ids) < 2**53):
        return ids.astype(np.int64)
    return ids


# ------------------------------------------------------------------------------------------------
# The validated dataset


@dataclass(frozen=True, eq=False, repr=False)
class NonmemData:
    """A validated dataset.

    Attributes
    ----------
    source : str
        The file path as given, or ``"<DataFrame>"``.
    frame : pandas.DataFrame
        The validated records, indexed by their 1-based data row in the source (index name
        ``row``). Columns: ``ID, TIME, DV, AMT, EVID, MDV, CMT, CENS, LIMIT, DVID``, then
        ``RATE, DUR, ADDL, II, SS`` when present, then the covariates. Aliases are renamed
        (``ADM`` to ``CMT``, ``BLQ`` to ``CENS``, ``YTYPE``/``Y`` to ``DVID``); ``LIMIT`` is the
        row's ``LIMIT`` or else ``LLOQ``; ``EVID``/``MDV`` are derived when absent. ``CMT`` holds
        compartment keys (int or str, None when missing); doses use state names from
        :attr:`regimens`.
    ids : tuple
        Subject IDs in dataset order.
    regimens : dict
        One :class:`~cartpk.regimen.Regimen` per ID (``ADDL`` expanded, infusions with their
        durations); empty for subjects without doses.
    covariates : tuple of str
        Covariate column names as spelled in the source.
    compartments : dict or None
        The ``compartments`` mapping used (keys normalised), or None.
    """

    source: str
    frame: pd.DataFrame
    ids: tuple
    regimens: dict
    covariates: tuple[str, ...] = ()
    compartments: dict | None = None
    _dose_names: tuple[str, ...] = field(default=(), repr=False)

    def __repr__(self) -> str:
        n_obs = int(self._observed().sum())
        return (
            f"NonmemData({self.source}: {len(self.ids)} subjects, {n_obs} observations, "
            f"{sum(len(r) for r in self.regimens.values())} doses)"
        )

    def _observed(self) -> pd.Series:
        return (self.frame["EVID"] == 0) & (self.frame["MDV"] == 0)

    def observations(self) -> pd.DataFrame:
        """The observation records (``EVID=0``, ``MDV=0``) as a long table.

        Returns
        -------
        pandas.DataFrame
            Columns ``ID, TIME, DV, DVID, CENS, LIMIT`` and the covariates, with a fresh index;
            the same table :func:`to_frame` rebuilds from :meth:`to_arrays`.
        """
        obs = self.frame.loc[self._observed(), [*_OBS_COLUMNS, *self.covariates]]
        obs = obs.reset_index(drop=True)
        obs["DVID"] = obs["DVID"].astype(np.int64)
        obs["CENS"] = obs["CENS"].astype(np.int64)
        return obs

    def to_arrays(self, state_names: Sequence[str] | None = None) -> ObservationArrays:
        """Observations as padded float64 arrays (and the stacked regimens).

        Parameters
        ----------
        state_names : sequence of str, optional
            The model's state names. When given, ``doses`` holds the regimens stacked with
            :func:`~cartpk.regimen.stack_regimens`; every dose compartment must be one of them.

        Returns
        -------
        ObservationArrays
            Shapes ``(P, n)`` with ``P`` subjects (all IDs, in dataset order) and ``n`` the
            largest number of observations of one subject.
        """
        require_x64()
        obs = self.observations()
        index = {value: p for p, value in enumerate(self.ids)}
        subject = np.array([index[v] for v in obs["ID"].tolist()], dtype=np.int64)
        position = obs.groupby(subject, sort=False).cumcount().to_numpy()
        counts = np.bincount(subject, minlength=len(self.ids))
        shape = (len(self.ids), max(int(counts.max(initial=0)), 1))

        def fill(values, dtype, pad):
            out = np.full(shape, pad, dtype=dtype)
            out[subject, position] = values
            return out

        mask = fill(True, bool, False)
        time = obs["TIME"].to_numpy(np.float64)
        last_time = np.zeros(len(self.ids))
        last_time[subject] = time  # rows are sorted by time within each subject
        dv = obs["DV"].to_numpy(np.float64)
        limit = obs["LIMIT"].to_numpy(np.float64)
        cens = obs["CENS"].to_numpy(np.int64)
        doses = None
        if state_names is not None:
            doses = stack_regimens([self.regimens[i] for i in self.ids], list(state_names))
        return ObservationArrays(
            id=jnp.asarray(np.array(self.ids, dtype=np.float64)),
            time=jnp.asarray(np.where(mask, fill(time, np.float64, 0.0), last_time[:, None])),
            dv=jnp.asarray(fill(np.where(np.isnan(dv), limit, dv), np.float64, 0.0)),
            mask=jnp.asarray(mask),
            censored=jnp.asarray(fill(cens == 1, bool, False)),
            censored_above=jnp.asarray(fill(cens == -1, bool, False)),
            limit=jnp.asarray(fill(np.nan_to_num(limit, nan=0.0), np.float64, 0.0)),
            dvid=jnp.asarray(fill(obs["DVID"].to_numpy(np.int64), np.int64, 0)),
            dv_missing=jnp.asarray(fill(np.isnan(dv), bool, False)),
            limit_missing=jnp.asarray(fill(np.isnan(limit), bool, False)),
            covariates={
                name: jnp.asarray(fill(obs[name].to_numpy(np.float64), np.float64, 0.0))
                for name in self.covariates
            },
            doses=doses,
        )

    def to_frame(self, arrays: ObservationArrays, **columns: Any) -> pd.DataFrame:
        """Same as the module-level :func:`to_frame`."""
        return to_frame(arrays, **columns)

    def summary(self) -> str:
        """A short human-readable summary of the dataset.

        Returns
        -------
        str
            Several lines: subjects and records, observations (censored, excluded), doses,
            observation types, covariates and compartments.
        """
        frame = self.frame
        observed = self._observed()
        cens = frame.loc[observed, "CENS"]
        excluded = int(((frame["EVID"] == 0) & (frame["MDV"] == 1)).sum())
        dose_records = int((frame["EVID"] == 1).sum())
        doses = [d for r in self.regimens.values() for d in r.doses]
        infusions = sum(1 for d in doses if d.duration > 0)
        dvid_counts = frame.loc[observed, "DVID"].astype(np.int64).value_counts().sort_index()
        lines = [
            f"{self.source}: {len(self.ids)} subjects, {len(frame)} records",
            f"  observations: {int(observed.sum())} ({int((cens == 1).sum())} censored below, "
            f"{int((cens == -1).sum())} censored above the limit; {excluded} excluded with MDV=1)",
            f"  doses: {dose_records} records, {len(doses)} doses after ADDL expansion "
            f"({len(doses) - infusions} bolus, {infusions} infusion)",
            "  DVIDs: " + ", ".join(f"{k} ({v} obs)" for k, v in dvid_counts.items()),
        ]
        if self.covariates:
            varying = [
                name
                for name in self.covariates
                if (frame.groupby("ID", sort=False)[name].nunique(dropna=True) > 1).any()
            ]
            text = ", ".join(self.covariates)
            lines.append(
                f"  covariates: {text}"
                + (f" (time-varying: {', '.join(varying)})" if varying else " (all constant)")
            )
        else:
            lines.append("  covariates: none")
        if self.compartments is not None:
            used = ", ".join(f"{_fmt(k)} -> {v}" for k, v in self.compartments.items())
            lines.append(f"  compartments: {used}")
        else:
            dosed = ", ".join(self._dose_names) or "none"
            lines.append(f"  compartments: {dosed} (dose targets; no mapping given)")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Reading


def read_nonmem(
    source: str | os.PathLike | pd.DataFrame,
    *,
    compartments: Mapping[Any, str] | None = None,
    covariates: Sequence[str] | None = None,
) -> NonmemData:
    """Read and validate a NONMEM-style dataset.

    Parameters
    ----------
    source : str, path-like or pandas.DataFrame
        A CSV file (comma-separated, header line first; opened read-only) or a DataFrame (named
        ``"<DataFrame>"`` in messages; not modified).
    compartments : mapping, optional
        ``CMT`` (or Monolix ``ADM``) value -> model state name, e.g. ``{1: "blood_effector"}``.
        When given, a dose into a compartment not in the mapping is an error. When omitted,
        doses target the state named by the ``CMT`` value as a string (``"1"``, ``"central"``).
    covariates : sequence of str, optional
        Covariate columns to keep (case-insensitive; each must exist). Other non-standard
        columns are then ignored. By default every non-standard column is a covariate.

    Returns
    -------
    NonmemData
        The validated dataset.

    Raises
    ------
    DatasetError
        On the first problem found, with a one-line message naming the file, the column and up
        to five offending rows (1-based data rows).
    """
    return _Reader(source, compartments, covariates).read()


class _Reader:
    def __init__(self, source, compartments, covariates):
        self.source = source
        self.compartment_map = compartments
        self.covariate_names = covariates
        self.name = _DATAFRAME

    # -- messages --------------------------------------------------------------------------------

    def fail(self, message: str) -> NoReturn:
        raise DatasetError(f"{self.name}: {message}")

    def check(self, bad, column: str | None, problem: str, detail: str = "") -> None:
        """Raise if any row is flagged in ``bad``."""
        bad = np.asarray(bad, dtype=bool)
        if not bad.any():
            return
        rows = self.rows[bad]
        listed = ", ".join(str(r) for r in rows[:_SHOWN])
        if len(rows) > _SHOWN:
            listed += f" and {len(rows) - _SHOWN} more"
        where = f"column {column}: " if column else ""
        self.fail(f"{where}{problem} in row(s) {listed}" + (f" ({detail})" if detail else ""))

    def col(self, canonical: str) -> str:
        """The column's name as spelled in the source."""
        return self.spelling.get(canonical, canonical)

    # -- loading ---------------------------------------------------------------------------------

    def load(self) -> tuple[list[str], list[Any]]:
        source = self.source
        if isinstance(source, pd.DataFrame):
            self.rows = np.arange(1, len(source) + 1)
            names = [str(c).strip() for c in source.columns]
            for j, name in enumerate(names):
                if not name:
                    self.fail(f"column {j + 1} has no name")
            return names, [source.iloc[:, j] for j in range(source.shape[1])]
        if not isinstance(source, str | os.PathLike):
            raise TypeError(
                f"read_nonmem needs a CSV path or a pandas DataFrame, got {type(source).__name__}"
            )
        self.name = os.fsdecode(source)
        try:
            with open(source, "rb") as handle:  # read-only: the file is never modified
                raw = handle.read()
        except FileNotFoundError:
            self.fail("file not found")
        except IsADirectoryError:
            self.fail("not a file (it is a directory)")
        except OSError as error:
            self.fail(f"cannot read the file ({error.strerror or error})")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            self.fail("not a CSV file (not UTF-8 text)")
        if "\x00" in text:
            self.fail("not a CSV file (binary content)")
        try:
            records = list(csv.reader(io.StringIO(text, newline="")))
        except csv.Error as error:
            self.fail(f"not a CSV file ({error})")
        blank = [not any(f.strip() for f in r) for r in records]
        if all(blank):
            self.fail("empty file (no header line)")
        start = blank.index(False)
        header = [h.strip() for h in records[start]]
        if header[0].startswith("#"):  # NONMEM-style commented header "#ID,TIME,..."
            header[0] = header[0][1:].strip()
        data = [(k, r) for k, r in enumerate(records[start + 1 :], 1) if not blank[start + k]]
        self.rows = np.array([k for k, _ in data], dtype=np.int64)
        width = len(header)
        body = []
        ragged = []
        for _, record in data:
            if len(record) > width and not any(f.strip() for f in record[width:]):
                record = record[:width]  # trailing empty fields, e.g. from spreadsheets
            ragged.append(len(record) != width)
            body.append(record)
        self.check(ragged, None, f"wrong number of fields (the header has {width})")
        columns = [np.array([r[j] for r in body], dtype=object) for j in range(width)]
        keep = [j for j in range(width) if header[j] or any(v.strip() for v in columns[j].tolist())]
        for j in range(width):
            if not header[j] and j in keep:
                self.fail(f"column {j + 1} has no name in the header")
        if width == 1 and any(c in header[0] for c in " \t;|"):
            self.fail(f"not a comma-separated file (the header is one column {header[0]!r})")
        return [header[j] for j in keep], [columns[j] for j in keep]

    # -- the pipeline ----------------------------------------------------------------------------

    def read(self) -> NonmemData:
        names, columns = self.load()
        self.resolve_columns(names)
        if len(self.rows) == 0:
            self.fail("no data rows")
        values = self.parse(names, columns)
        return self.validate(values)

    def resolve_columns(self, names: list[str]) -> None:
        """Map source columns to canonical roles and covariates."""
        self.spelling: dict[str, str] = {}  # canonical -> source spelling
        self.position: dict[str, int] = {}  # canonical or covariate -> source column index
        seen: dict[str, str] = {}
        for j, name in enumerate(names):
            upper = name.upper()
            if upper in seen:
                self.fail(f"duplicate column {name} (same as {seen[upper]}; names ignore case)")
            seen[upper] = name
            canonical = _CANONICAL.get(upper)
            if canonical is None:
                continue
            if canonical in self.spelling:
                self.fail(
                    f"columns {self.spelling[canonical]} and {name} both given; "
                    f"they mean the same ({canonical}), keep one"
                )
            self.spelling[canonical] = name
            self.position[canonical] = j
        found = ", ".join(names) if names else "none"
        for required in ("ID", "TIME"):
            if required not in self.spelling:
                self.fail(f"missing required column {required} (found: {found})")
        if "DV" not in self.spelling:
            if "AMT" not in self.spelling:
                self.fail(f"missing required column DV or AMT (found: {found})")
            if "CENS" not in self.spelling:
                self.fail(f"missing required column DV (found: {found})")
        others = {n.upper(): j for j, n in enumerate(names) if n.upper() not in _CANONICAL}
        if self.covariate_names is None:
            chosen = list(others)
        else:
            if isinstance(self.covariate_names, str):
                raise TypeError("covariates must be a sequence of column names, not a string")
            chosen = []
            for wanted in self.covariate_names:
                upper = str(wanted).strip().upper()
                if upper in _CANONICAL:
                    self.fail(f"covariate {wanted} is a standard NONMEM column, not a covariate")
                if upper not in others:
                    self.fail(f"missing covariate column {wanted} (found: {found})")
                if upper not in chosen:
                    chosen.append(upper)
        self.covariates = [names[others[u]] for u in chosen]
        for name in self.covariates:
            self.position[name] = others[name.upper()]

    def parse(self, names: list[str], columns: list[Any]) -> dict[str, np.ndarray]:
        """Numeric values (NaN where missing) of every used column, checked in file order."""
        values: dict[str, np.ndarray] = {}
        for key, j in sorted(self.position.items(), key=lambda item: item[1]):
            label = names[j]
            if key == "CMT":
                values[key] = self.parse_compartments(columns[j], label)
                continue
            numbers, bad = _to_float(columns[j])
            hint = ""
            if key in self.covariates:
                hint = "; covariates must be numeric, choose them with covariates=[...]"
            if bad.any():
                example = _example(columns[j], bad)
                self.check(bad, label, "non-numeric value(s)", f"e.g. {example}{hint}")
            infinite = np.isinf(numbers)
            if infinite.any():
                self.check(
                    infinite, label, "non-finite value(s)", f"e.g. {_example(columns[j], infinite)}"
                )
            values[key] = numbers
        return values

    def parse_compartments(self, column: Any, label: str) -> np.ndarray:
        cells = _cells(column)
        keys = np.empty(len(cells), dtype=object)
        bad = np.zeros(len(cells), dtype=bool)
        infinite = np.zeros(len(cells), dtype=bool)
        for i, cell in enumerate(cells):
            key = _compartment_key(cell)
            if key is _BAD:
                bad[i] = True
            elif key is _INF:
                infinite[i] = True
            else:
                keys[i] = key
        if bad.any():
            self.check(
                bad,
                label,
                "invalid compartment(s)",
                f"e.g. {_example(column, bad)}; use a positive integer or a name",
            )
        self.check(infinite, label, "non-finite value(s)", "inf")
        return keys

    def validate(self, values: dict[str, np.ndarray]) -> NonmemData:
        n = len(self.rows)
        nan = np.full(n, np.nan)
        get = values.get
        ids, time = values["ID"], values["TIME"]
        col = self.col

        # records and their order
        self.check(np.isnan(ids), col("ID"), "missing value(s)")
        self.check(np.isnan(time), col("TIME"), "missing value(s)")
        self.check(time < 0, col("TIME"), "negative time")
        new_block = np.r_[True, ids[1:] != ids[:-1]]
        block_ids = ids[new_block]
        _, first_block = np.unique(block_ids, return_index=True)
        repeated_block = np.ones(len(block_ids), dtype=bool)
        repeated_block[first_block] = False
        again = np.zeros(n, dtype=bool)
        again[np.flatnonzero(new_block)[repeated_block]] = True
        if again.any():
            which = list(dict.fromkeys(ids[again].tolist()))
            self.check(
                again,
                col("ID"),
                f"ID {_fmt(which[0])} reappears after other IDs"
                if len(which) == 1
                else f"IDs {', '.join(map(_fmt, which))} reappear after other IDs",
                "records of one subject must be contiguous",
            )
        decreasing = np.r_[False, (time[1:] < time[:-1]) & ~new_block[1:]]
        self.check(
            decreasing,
            col("TIME"),
            "time decreases within an ID",
            "records must be sorted by time within each ID",
        )
        self.check_duplicates(values)

        # codes
        evid, mdv = get("EVID"), get("MDV")
        if evid is not None:
            self.check(np.isnan(evid), col("EVID"), "missing value(s)")
            self.check(evid == 3, col("EVID"), "EVID=3 (reset) is not supported")
            self.check(evid == 4, col("EVID"), "EVID=4 (reset and dose) is not supported")
            invalid = ~np.isin(evid, (0, 1, 2))
            self.check(
                invalid,
                col("EVID"),
                "invalid EVID",
                f"e.g. {_fmt(evid[invalid][:1])}; allowed: 0 observation, 1 dose, 2 other",
            )
        if mdv is not None:
            self.check(np.isnan(mdv), col("MDV"), "missing value(s)")
            invalid = ~np.isin(mdv, (0, 1))
            self.check(
                invalid, col("MDV"), "invalid MDV", f"e.g. {_fmt(mdv[invalid][:1])}; allowed: 0, 1"
            )
        cens = get("CENS")
        if cens is not None:
            allowed = (0, 1) if col("CENS").upper() == "BLQ" else (0, 1, -1)
            invalid = ~np.isnan(cens) & ~np.isin(cens, allowed)
            self.check(
                invalid,
                col("CENS"),
                f"invalid {col('CENS')} value(s)",
                f"e.g. {_fmt(cens[invalid][:1])}; allowed: {', '.join(map(str, allowed))}",
            )
            cens = np.nan_to_num(cens, nan=0.0).astype(np.int64)
        else:
            cens = np.zeros(n, dtype=np.int64)
        dvid = get("DVID")
        if dvid is not None:
            invalid = ~np.isnan(dvid) & ((dvid != np.round(dvid)) | (np.abs(dvid) >= _MAX_INT))
            self.check(invalid, col("DVID"), "non-integer observation type(s)")
        ss = get("SS")
        if ss is not None:
            self.check(
                ~np.isnan(ss) & (ss != 0), col("SS"), "steady-state dosing (SS≠0) is not supported"
            )
        amt = get("AMT", nan)
        self.check(amt < 0, col("AMT"), "negative amount")
        rate, dur = get("RATE"), get("DUR")
        if rate is not None:
            self.check(rate == -1, col("RATE"), "modelled infusion rate (RATE=-1) is not supported")
            self.check(
                rate == -2, col("RATE"), "modelled infusion duration (RATE=-2) is not supported"
            )
            self.check(rate < 0, col("RATE"), "negative rate")
        if dur is not None:
            self.check(dur < 0, col("DUR"), "negative duration")
        addl, ii = get("ADDL"), get("II")
        if addl is not None:
            invalid = ~np.isnan(addl) & ((addl < 0) | (addl != np.round(addl)))
            self.check(invalid, col("ADDL"), "ADDL must be a non-negative integer")
            self.check(addl > _MAX_ADDL, col("ADDL"), f"more than {_MAX_ADDL} additional doses")
        if ii is not None:
            self.check(ii < 0, col("II"), "negative dosing interval")
        if addl is not None:
            no_interval = np.isnan(ii) | (ii <= 0) if ii is not None else np.ones(n, dtype=bool)
            self.check(
                (addl > 0) & no_interval,
                col("II"),
                "ADDL > 0 needs a dosing interval II > 0",
                None if ii is not None else "the file has no II column",
            )

        # event types
        dv = get("DV", nan)
        dose_amount = ~np.isnan(amt) & (amt > 0)
        if evid is None:
            if mdv is None:
                self.check(
                    dose_amount & ~np.isnan(dv) & (dv != 0),
                    col("DV"),
                    "record with both AMT > 0 and DV",
                    "ambiguous without EVID or MDV: add MDV=1 to doses",
                )
                evid = np.where(dose_amount, 1, 0)
            else:
                self.check(
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
            self.check((evid == 1) & (mdv == 0), col("MDV"), "dose record (EVID=1) with MDV=0")
            mdv = mdv.astype(np.int64)
        self.check(
            (evid == 0) & dose_amount, col("AMT"), "observation record (EVID=0) with AMT > 0"
        )

        # observations
        observed = (evid == 0) & (mdv == 0)
        censored = observed & (cens != 0)
        self.check(
            observed & np.isnan(dv) & ~censored,
            col("DV"),
            "missing observation",
            "not MDV=1 and not censored",
        )
        if dvid is not None:
            self.check(observed & np.isnan(dvid), col("DVID"), "missing value(s)")
        else:
            dvid = np.ones(n)
        limit, lloq = get("LIMIT"), get("LLOQ")
        if limit is not None and lloq is not None:
            self.check(
                ~np.isnan(limit) & ~np.isnan(lloq) & (limit != lloq),
                col("LIMIT"),
                f"{col('LIMIT')} and {col('LLOQ')} disagree",
            )
        if limit is None:
            limit = lloq if lloq is not None else nan
        elif lloq is not None:
            limit = np.where(np.isnan(limit), lloq, limit)
        self.check(
            censored & np.isnan(limit),
            col("CENS"),
            "censored observation without a limit",
            "give LIMIT or LLOQ"
            if "LIMIT" in self.spelling or "LLOQ" in self.spelling
            else "the file has no LIMIT or LLOQ column",
        )
        if not observed.any():
            self.fail("no observations (no record with EVID=0 and MDV=0)")

        # doses
        dosing = evid == 1
        self.check(dosing & ~dose_amount, col("AMT"), "dose with zero or missing amount")
        regimens, dose_names, cmt = self.build_regimens(values, ids, time, amt, dosing)

        frame = self.build_frame(values, ids, time, dv, amt, evid, mdv, cmt, cens, limit, dvid)
        ordered_ids = tuple(_id_column(block_ids).tolist())
        return NonmemData(
            source=self.name,
            frame=frame,
            ids=ordered_ids,
            regimens={i: Regimen(tuple(regimens.get(i, ()))) for i in ordered_ids},
            covariates=tuple(self.covariates),
            compartments=self.mapping,
            _dose_names=tuple(sorted(dose_names)),
        )

    def check_duplicates(self, values: dict[str, np.ndarray]) -> None:
        duplicated = pd.DataFrame(values).duplicated(keep="first").to_numpy()
        self.check(duplicated, None, "duplicated record(s)", "identical to an earlier row")

    def build_regimens(self, values, ids, time, amt, dosing):
        n = len(self.rows)
        col = self.col
        self.mapping = _normalise_mapping(self.compartment_map, self.name)
        keys = values.get("CMT")
        if keys is None:
            keys = np.full(n, 1, dtype=object)
        else:
            self.check(
                dosing & np.array([k is None for k in keys]),
                col("CMT"),
                "dose without a compartment",
            )
        if self.mapping is not None:
            unknown = dosing & np.array([k not in self.mapping for k in keys])
            if unknown.any():
                which = ", ".join(_fmt(k) for k in dict.fromkeys(keys[unknown].tolist()))
                known = ", ".join(_fmt(k) for k in self.mapping)
                self.check(
                    unknown,
                    col("CMT"),
                    f"dose into unknown compartment {which}",
                    f"known: {known}"
                    + ("" if "CMT" in self.spelling else "; no CMT column, so doses go to 1"),
                )
        rate, dur = values.get("RATE"), values.get("DUR")
        given_rate = ~np.isnan(rate) & (rate != 0) if rate is not None else np.zeros(n, bool)
        given_dur = ~np.isnan(dur) & (dur != 0) if dur is not None else np.zeros(n, bool)
        self.check(
            dosing & given_rate & given_dur,
            None,
            f"{col('RATE')} and {col('DUR')} both given",
            "give one of them",
        )
        with np.errstate(all="ignore"):
            duration = np.zeros(n)
            if rate is not None:
                duration = np.where(given_rate, amt / np.where(given_rate, rate, 1.0), 0.0)
            if dur is not None:
                duration = np.where(given_dur, dur, duration)
            self.check(
                dosing & ~np.isfinite(duration),
                col("RATE"),
                "infusion duration AMT/RATE is not finite",
            )
            addl = values.get("ADDL")
            addl = np.zeros(n) if addl is None else np.nan_to_num(addl, nan=0.0)
            ii = values.get("II")
            ii = np.zeros(n) if ii is None else np.nan_to_num(ii, nan=0.0)
            last_end = time + addl * ii + duration
            self.check(
                dosing & ~np.isfinite(last_end),
                col("TIME"),
                "dose times overflow",
                "TIME + ADDL*II + duration is not finite",
            )
        regimens: dict[Any, list[Dose]] = {}
        names: set[str] = set()
        id_values = _id_column(ids)
        for i in np.flatnonzero(dosing):
            key = keys[i]
            name = self.mapping[key] if self.mapping is not None else _fmt(key)
            names.add(name)
            try:
                doses = [
                    Dose(float(time[i] + k * ii[i]), float(amt[i]), name, float(duration[i]))
                    for k in range(int(addl[i]) + 1)
                ]
            except RegimenError as error:  # defensive: the checks above should prevent this
                self.check(np.arange(n) == i, None, f"invalid dose ({error})")
            regimens.setdefault(id_values[i].item(), []).extend(doses)
        return regimens, names, keys

    def build_frame(self, values, ids, time, dv, amt, evid, mdv, cmt, cens, limit, dvid):
        data = {
            "ID": _id_column(ids),
            "TIME": time,
            "DV": dv,
            "AMT": amt,
            "EVID": evid,
            "MDV": mdv,
            "CMT": pd.Series(cmt, dtype=object).to_numpy(),
            "CENS": cens,
            "LIMIT": limit,
            "DVID": dvid,
        }
        for key in ("RATE", "DUR", "ADDL", "II", "SS"):
            if key in values:
                data[key] = values[key]
        for name in self.covariates:
            data[name] = values[name]
        frame = pd.DataFrame(data, index=pd.Index(self.rows, name="row"))
        frame["CMT"] = frame["CMT"].astype(object)
        return frame


# ------------------------------------------------------------------------------------------------
# Cell parsing

_BAD = object()
_INF = object()


def _cells(column: Any) -> list[Any]:
    if isinstance(column, pd.Series):
        return column.to_numpy(dtype=object).tolist()
    return list(column)


def _to_float(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """Values as float64 (NaN where missing) and a mask of non-numeric cells."""
    if isinstance(column, pd.Series) and column.dtype.kind in "biuf":
        try:
            numbers = column.to_numpy(dtype=np.float64, na_value=np.nan)
            return numbers, np.zeros(len(numbers), dtype=bool)
        except (TypeError, ValueError):
            pass
    cells = _cells(column)
    numbers = np.empty(len(cells))
    bad = np.zeros(len(cells), dtype=bool)
    cache: dict[str, float | None] = {}
    for i, cell in enumerate(cells):
        if isinstance(cell, str):
            value = cache.get(cell, _BAD)
            if value is _BAD:
                value = cache[cell] = _number(cell)
        else:
            value = _number(cell)
        if value is None:
            bad[i] = True
            numbers[i] = np.nan
        else:
            numbers[i] = value
    return numbers, bad


def _number(cell: Any) -> float | None:
    """A cell as a float (NaN if missing), or None if it is not a number."""
    if cell is None or cell is pd.NA or cell is pd.NaT:
        return math.nan
    if isinstance(cell, str):
        text = cell.strip()
        if text.lower() in _MISSING_TEXT:
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


def _compartment_key(cell: Any) -> Any:
    """A ``CMT`` cell as a compartment key: a positive int, a name, None (missing), or a flag."""
    if isinstance(cell, str):
        text = cell.strip()
        if text.lower() in _MISSING_TEXT:
            return None
        number = _number(text)
        if number is None:
            return text
    else:
        number = _number(cell)
        if number is None:
            return _BAD
    if math.isnan(number):
        return None
    if math.isinf(number):
        return _INF
    if number != round(number) or not 0 < number < _MAX_INT:
        return _BAD
    return int(number)


def _normalise_mapping(mapping: Mapping[Any, str] | None, name: str) -> dict | None:
    if mapping is None:
        return None
    if not isinstance(mapping, Mapping):
        raise TypeError("compartments must be a mapping of CMT value -> state name")
    out = {}
    for key, state in mapping.items():
        normal = _compartment_key(key)
        if normal is None or normal is _BAD or normal is _INF:
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


def _example(column: Any, bad: np.ndarray) -> str:
    cells = _cells(column)
    return repr(cells[int(np.flatnonzero(bad)[0])])


def _fmt(value: Any) -> str:
    """A number as written in a dataset (integers without a decimal point)."""
    if isinstance(value, np.ndarray):
        return ", ".join(_fmt(v) for v in value.tolist())
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
