"""The validated dataset (:class:`NonmemData`), its observations as padded arrays
(:class:`ObservationArrays`) and back to a long table (:func:`to_frame`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array

from ..errors import DatasetError
from ..precision import require_x64
from ..regimen import DoseArrays, stack_regimens
from ._cells import fmt as _fmt


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


@dataclass(frozen=True, eq=False, repr=False)
class NonmemData:
    """A validated dataset.

    Attributes
    ----------
    source : str
        The source's name: the file path as given, ``"<bytes>"``, ``"<DataFrame>"`` or the
        ``name`` given to :func:`~cartpk.nonmem.read_nonmem`.
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
    text_columns : tuple of str
        Columns holding text (e.g. ``GROUP`` = ``CR``), carried in :attr:`frame` (str, None where
        missing) but not in :meth:`observations` or the arrays; a categorical covariate may use
        them.
    ignored : dict
        Rule -> the data rows it skipped: ``"#"`` comment lines, ``"@"`` and other character
        rules, the ``C`` column, each ``ignore`` condition, and ``"accept ..."``.
    """

    source: str
    frame: pd.DataFrame
    ids: tuple
    regimens: dict
    covariates: tuple[str, ...] = ()
    compartments: dict | None = None
    text_columns: tuple[str, ...] = ()
    ignored: dict = field(default_factory=dict)
    _dose_names: tuple[str, ...] = field(default=(), repr=False)

    def __repr__(self) -> str:
        n_obs = int(self._observed().sum())
        return (
            f"NonmemData({self.source}: {len(self.ids)} subjects, {n_obs} observations, "
            f"{sum(len(r) for r in self.regimens.values())} doses)"
        )

    def _observed(self) -> pd.Series:
        return (self.frame["EVID"] == 0) & (self.frame["MDV"] == 0)

    def varying(self, column: str) -> tuple | None:
        """``(ID, row)`` of the first record where ``column`` changes within a subject (missing
        values ignored), or None when it is constant within every subject."""
        for subject, group in self.frame.groupby("ID", sort=False)[column]:
            present = group.dropna()
            changed = present != present.iloc[0] if len(present) else present.astype(bool)
            if changed.any():
                return subject, int(present.index[np.flatnonzero(changed.to_numpy())[0]])
        return None

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
        """The module-level :func:`to_frame`, with the IDs exactly as in the dataset (the arrays
        hold them as float64, which cannot tell apart integers of 17 digits)."""
        frame = to_frame(arrays, **columns)
        if len(self.ids) == np.shape(arrays.mask)[0]:
            subject, _ = np.nonzero(np.asarray(arrays.mask, dtype=bool))
            frame["ID"] = np.asarray(self.ids)[subject]
        return frame

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
            varying = [name for name in self.covariates if self.varying(name) is not None]
            text = ", ".join(self.covariates)
            lines.append(
                f"  covariates: {text}"
                + (f" (time-varying: {', '.join(varying)})" if varying else " (all constant)")
            )
        else:
            lines.append("  covariates: none")
        if self.text_columns:
            lines.append(f"  text columns (carried): {', '.join(self.text_columns)}")
        if self.ignored:
            lines.append(
                "  ignored records: "
                + ", ".join(f"{len(rows)} by {rule}" for rule, rows in self.ignored.items())
            )
        if self.compartments is not None:
            used = ", ".join(f"{_fmt(k)} -> {v}" for k, v in self.compartments.items())
            lines.append(f"  compartments: {used}")
        else:
            dosed = ", ".join(self._dose_names) or "none"
            lines.append(f"  compartments: {dosed} (dose targets; no mapping given)")
        return "\n".join(lines)
