"""Non-compartmental analysis (NCA) of observed concentrations after each subject's first dose.

:func:`nca` reads a NONMEM-style dataset (a path, a DataFrame or a
:class:`~cartpk.nonmem.NonmemData`) and returns an :class:`NCAResult`: one row of parameters per
subject (Cmax, Tmax, AUClast, AUMClast, λz, t½, AUCinf, CL/F, Vz/F, MRT, ...) and a summary over
subjects (geometric mean and CV %, arithmetic mean and SD, median and range). The definitions,
the λz selection rule, the BLQ rules and the validation against Phoenix WinNonlin are in
``docs/nca.md``; ``cartpk nca DATA.csv --out DIR`` runs it from the command line.

Units are those of the data: concentrations in the unit of ``DV``, times in the unit of ``TIME``,
doses in the unit of ``AMT``; :attr:`NCAResult.units` gives each column's unit in those terms
(e.g. ``AMT/(DV·TIME)`` for CL/F). Everything is computed in float64 with numpy.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import ArgumentError, DatasetError
from .nonmem import NonmemData, read_nonmem
from .nonmem._cells import fmt as _fmt
from .nonmem._report import Report

#: AUC methods: linear up/log down (log trapezoids where the concentration falls) or linear.
AUC_METHODS = ("linear-up-log-down", "linear")
#: Routes: extravascular (C = 0 at the dose) or IV bolus (C0 back-extrapolated).
ROUTES = ("extravascular", "iv")
_AUC_RULES = {
    "linear-up-log-down": "linear trapezoids, log trapezoids where the concentration falls",
    "linear": "linear trapezoids",
}
#: What a BLQ concentration before or between measurable ones becomes.
BLQ_ACTIONS = ("zero", "drop")

#: Units of the per-subject columns, in the units of the data's DV, TIME and AMT.
UNITS = {
    "dose": "AMT",
    "dose_time": "TIME",
    "cmax": "DV",
    "tmax": "TIME",
    "clast": "DV",
    "tlast": "TIME",
    "c0": "DV",
    "auc_last": "DV·TIME",
    "aumc_last": "DV·TIME²",
    "mrt_last": "TIME",
    "lambda_z": "1/TIME",
    "lambda_z_points": "-",
    "lambda_z_lower": "TIME",
    "lambda_z_upper": "TIME",
    "r_squared": "-",
    "adj_r_squared": "-",
    "t_half": "TIME",
    "clast_pred": "DV",
    "auc_inf_obs": "DV·TIME",
    "auc_inf_pred": "DV·TIME",
    "auc_pct_extrap_obs": "%",
    "auc_pct_extrap_pred": "%",
    "aumc_inf_obs": "DV·TIME²",
    "aumc_inf_pred": "DV·TIME²",
    "mrt_inf_obs": "TIME",
    "mrt_inf_pred": "TIME",
    "cl_f_obs": "AMT/(DV·TIME)",
    "cl_f_pred": "AMT/(DV·TIME)",
    "vz_f_obs": "AMT/DV",
    "vz_f_pred": "AMT/DV",
}
#: Columns summarised over subjects without geometric statistics (times of observations and
#: percentages), as customary.
_ARITHMETIC_ONLY = {"tmax", "tlast", "auc_pct_extrap_obs", "auc_pct_extrap_pred"}
#: Columns not summarised: the dose, and how λz was estimated.
_NOT_SUMMARISED = {
    "dose",
    "dose_time",
    "lambda_z_points",
    "lambda_z_lower",
    "lambda_z_upper",
    "r_squared",
    "adj_r_squared",
}


@dataclass(frozen=True)
class LambdaZ:
    """How the terminal rate constant λz is estimated: an unweighted regression of log
    concentration on time over the last points of the profile.

    Args:
        points: use exactly the last ``points`` measurable concentrations (at least 3); None
            (default): the best fit, the set of at least 3 last points that maximises the
            adjusted R², preferring more points among sets within ``tolerance`` of the best.
        tolerance: adjusted R² difference counted as equal (default 1e-4, as WinNonlin and
            PKNCA).
        include_cmax: whether the regression may include Cmax (default False: only the
            concentrations after Tmax).

    Raises:
        ArgumentError: for ``points`` below 3 or a negative ``tolerance``.
    """

    points: int | None = None
    tolerance: float = 1e-4
    include_cmax: bool = False

    def __post_init__(self):
        if self.points is not None and (
            isinstance(self.points, bool) or not isinstance(self.points, int) or self.points < 3
        ):
            raise ArgumentError(f"LambdaZ points must be an integer >= 3, got {self.points!r}")
        if not (isinstance(self.tolerance, int | float) and self.tolerance >= 0):
            raise ArgumentError(f"LambdaZ tolerance must be >= 0, got {self.tolerance!r}")

    def describe(self) -> str:
        """One line saying how λz is chosen."""
        after = "from Cmax on" if self.include_cmax else "after Cmax"
        if self.points is not None:
            return f"lambda_z: log-linear regression on the last {self.points} points {after}"
        return (
            f"lambda_z: best fit, at least 3 points {after}, largest adjusted R^2 (within "
            f"{self.tolerance:g}, the most points)"
        )


@dataclass(frozen=True)
class BLQRule:
    """What is done with concentrations below the limit of quantification (BLQ: ``CENS=1``,
    a ``DV`` below the row's ``LLOQ``/``LIMIT``, or a ``DV`` of 0).

    BLQ values after the last measurable concentration are always dropped: AUClast ends at
    Tlast.

    Args:
        before: BLQ values before the first measurable concentration: ``"zero"`` (default: set
            to 0) or ``"drop"``.
        between: BLQ values between measurable concentrations: ``"drop"`` (default) or
            ``"zero"`` (a zero is used in the AUC, never in the λz regression).

    Raises:
        ArgumentError: for any other value.
    """

    before: str = "zero"
    between: str = "drop"

    def __post_init__(self):
        for name in ("before", "between"):
            if getattr(self, name) not in BLQ_ACTIONS:
                raise ArgumentError(
                    f"BLQRule {name} must be one of {', '.join(BLQ_ACTIONS)}, "
                    f"got {getattr(self, name)!r}"
                )

    def describe(self) -> str:
        """One line stating the rule."""
        word = {"zero": "set to 0", "drop": "dropped"}
        return (
            f"BLQ: before the first measurable concentration {word[self.before]}, between "
            f"measurable ones {word[self.between]}, after the last one dropped"
        )


@dataclass(frozen=True, eq=False)
class NCAResult:
    """The result of :func:`nca`.

    Attributes:
        subjects: one row per subject: ``ID``, the parameters (columns in :data:`UNITS`; with
            ``route="iv"`` ``cl_obs``, ``vz_obs``, ... instead of ``cl_f_obs``, ``vz_f_obs``)
            and ``note``: why λz-dependent values are NaN, or which records were not used
            (empty when nothing needs saying).
        summary: one row per parameter: ``parameter``, ``unit``, ``n`` (subjects with a value),
            ``geometric_mean``, ``geometric_cv_percent`` (``100·sqrt(exp(s²) - 1)``, ``s`` the
            SD of the logs; NaN for Tmax, Tlast and percentages), ``mean``, ``sd``, ``median``,
            ``min``, ``max``, over the subjects with a value.
        units: column -> unit, in the units of the data's ``DV`` (concentration), ``TIME`` and
            ``AMT`` (dose).
        conventions: one line each: the units assumed, the AUC method, the route, the λz rule
            and the BLQ rule.
        source: the dataset's name.
        options: the options of the analysis, as :func:`nca` was called.
    """

    subjects: pd.DataFrame
    summary: pd.DataFrame
    units: dict[str, str]
    conventions: tuple[str, ...]
    source: str
    options: dict[str, Any] = field(default_factory=dict)


def nca(
    data,
    *,
    auc_method: str = "linear-up-log-down",
    route: str = "extravascular",
    lambda_z: LambdaZ = LambdaZ(),
    blq: BLQRule = BLQRule(),
    dvid: int | None = None,
) -> NCAResult:
    """Non-compartmental analysis of each subject's profile after its first dose.

    Each subject's concentrations (``EVID=0``, ``MDV=0``) from its first dose (inclusive) up to
    its next dose (exclusive) are analysed; time is counted from the first dose. Doses at the
    same time add up; later doses are noted in ``note``. An observation at the dose time is
    the profile's first point; without one the profile starts at C(dose) = 0 (extravascular)
    or at C0 back-extrapolated log-linearly from the first two measurable concentrations if
    they fall (else C0 is the first measurable one; ``route="iv"``, bolus).

    Args:
        data: a NONMEM-style dataset: a CSV path, its bytes, a DataFrame (read with
            :func:`~cartpk.nonmem.read_nonmem`) or a :class:`~cartpk.nonmem.NonmemData`.
        auc_method: ``"linear-up-log-down"`` (default: linear trapezoids where the
            concentration rises or stays, log trapezoids where it falls and stays positive) or
            ``"linear"``. The same rule integrates the AUMC.
        route: ``"extravascular"`` (default) or ``"iv"`` (bolus). Infusions are refused.
        lambda_z: how λz is estimated (default: best fit, see :class:`LambdaZ`).
        blq: what is done with BLQ values (default: 0 before the first measurable value,
            dropped between and after measurable values; see :class:`BLQRule`).
        dvid: the observation type to analyse; None (default) if the data hold one type.

    Returns:
        The per-subject table, the summary, the units (those of ``DV``, ``TIME`` and ``AMT``:
        no conversion is made) and the conventions used.

    Raises:
        ArgumentError: for an unknown option value.
        DatasetError: for data NCA cannot use, in one line naming the row(s) and the subject: a
            subject without a dose, an infusion, two concentrations at one time, a negative
            concentration, one censored above its limit, or several observation types without
            ``dvid``.
    """
    if auc_method not in AUC_METHODS:
        raise ArgumentError(
            f"auc_method must be one of {', '.join(AUC_METHODS)}, got {auc_method!r}"
        )
    if route not in ROUTES:
        raise ArgumentError(f"route must be one of {', '.join(ROUTES)}, got {route!r}")
    if not isinstance(lambda_z, LambdaZ):
        raise ArgumentError(f"lambda_z must be a LambdaZ, got {lambda_z!r:.60}")
    if not isinstance(blq, BLQRule):
        raise ArgumentError(f"blq must be a BLQRule, got {blq!r:.60}")
    data = _read(data)
    observations = _observations(data, dvid)
    rows = []
    for subject in data.ids:
        start, dose, later = _doses(data, subject)
        concentrations = observations[observations["ID"] == subject]
        parameters = _subject(concentrations, start, dose, later, auc_method, route, lambda_z, blq)
        rows.append({"ID": subject, **parameters})
    subjects = pd.DataFrame(rows)
    if route == "iv":
        subjects = subjects.rename(columns=_iv_name)
    else:
        subjects = subjects.drop(columns="c0")
    units = {name: UNITS[_ev_name(name)] for name in subjects.columns if _ev_name(name) in UNITS}
    conventions = (
        "units: concentrations in the unit of DV, times in the unit of TIME (from each "
        "subject's first dose), doses in the unit of AMT; no conversion is made",
        f"AUC and AUMC from the dose to Tlast: {_AUC_RULES[auc_method]}",
        "route: "
        + (
            "extravascular, C = 0 at the dose unless observed"
            if route == "extravascular"
            else "IV bolus, C0 at the dose back-extrapolated unless observed"
        ),
        lambda_z.describe(),
        blq.describe(),
    )
    return NCAResult(
        subjects=subjects,
        summary=summarise(subjects, units),
        units=units,
        conventions=conventions,
        source=data.source,
        options={
            "auc_method": auc_method,
            "route": route,
            "lambda_z_points": lambda_z.points,
            "lambda_z_tolerance": lambda_z.tolerance,
            "lambda_z_include_cmax": lambda_z.include_cmax,
            "blq_before": blq.before,
            "blq_between": blq.between,
            "dvid": dvid,
        },
    )


def summarise(subjects: pd.DataFrame, units: dict[str, str]) -> pd.DataFrame:
    """Summary statistics over subjects of every parameter column of ``subjects`` (an
    :attr:`NCAResult.subjects` table), each over the subjects with a finite value.

    Args:
        subjects: one row per subject.
        units: column -> unit (:attr:`NCAResult.units`).

    Returns:
        One row per parameter, the columns of :attr:`NCAResult.summary`.
    """
    rows = []
    for name in subjects.columns:
        if name not in units or _ev_name(name) in _NOT_SUMMARISED:
            continue
        values = subjects[name].to_numpy(np.float64)
        values = values[np.isfinite(values)]
        n = len(values)
        geometric = _ev_name(name) not in _ARITHMETIC_ONLY and n > 0 and bool(np.all(values > 0))
        logs = np.log(values) if geometric else None
        rows.append(
            {
                "parameter": name,
                "unit": units[name],
                "n": n,
                "geometric_mean": float(np.exp(logs.mean())) if geometric else math.nan,
                "geometric_cv_percent": (
                    100.0 * math.sqrt(math.expm1(float(np.var(logs, ddof=1))))
                    if geometric and n > 1
                    else math.nan
                ),
                "mean": float(values.mean()) if n else math.nan,
                "sd": float(values.std(ddof=1)) if n > 1 else math.nan,
                "median": float(np.median(values)) if n else math.nan,
                "min": float(values.min()) if n else math.nan,
                "max": float(values.max()) if n else math.nan,
            }
        )
    return pd.DataFrame(rows)


# -- the data --------------------------------------------------------------------------------


def _read(data) -> NonmemData:
    if isinstance(data, NonmemData):
        return data
    if isinstance(data, str | os.PathLike | bytes | pd.DataFrame):
        return read_nonmem(data)
    raise ArgumentError(
        f"nca: data must be a CSV path, its bytes, a DataFrame or a NonmemData, got "
        f"{type(data).__name__}"
    )


def _observations(data, dvid: int | None) -> pd.DataFrame:
    """The observation records to analyse (indexed by data row), checked; a ``BLQ`` column
    flags those below the limit."""
    frame = data.frame
    obs = frame[(frame["EVID"] == 0) & (frame["MDV"] == 0)]
    types = sorted(int(v) for v in obs["DVID"].unique())
    if dvid is None and len(types) > 1:
        raise DatasetError(
            f"{data.source}: column DVID: the data hold observation types "
            f"{', '.join(map(str, types))}; NCA analyses one: choose it (dvid=N, or "
            "cartpk nca --dvid N)",
            column="DVID",
        )
    if dvid is not None:
        if dvid not in types:
            raise DatasetError(
                f"{data.source}: column DVID: no observation of type {dvid} (types: "
                f"{', '.join(map(str, types))})",
                column="DVID",
            )
        obs = obs[obs["DVID"] == dvid]
    obs = obs[["ID", "TIME", "DV", "CENS", "LIMIT"]].copy()
    report = Report(data.source, obs.index.to_numpy())

    def check(bad, column: str, problem: str, need: str) -> None:
        if bad.any():  # the first offending subject beside the rows
            report.check(bad, column, problem, f"ID {_fmt(obs['ID'][bad].iloc[0])}; {need}")

    measured = (obs["CENS"] == 0).to_numpy()
    check(
        (obs["CENS"] == -1).to_numpy(),
        "CENS",
        "concentration censored above its limit (CENS=-1)",
        "NCA needs the measured value",
    )
    check(
        measured & (obs["DV"] < 0).to_numpy(),
        "DV",
        "negative concentration",
        "NCA needs concentrations >= 0",
    )
    check(
        obs.duplicated(["ID", "TIME"], keep=False).to_numpy(),
        "TIME",
        "two concentrations at the same time",
        "NCA needs one concentration per time",
    )
    limit = obs["LIMIT"].to_numpy(np.float64)
    dv = obs["DV"].to_numpy(np.float64)
    with np.errstate(invalid="ignore"):
        below = (dv == 0) | (np.isfinite(limit) & (dv < limit))
    obs["BLQ"] = ~measured | below
    return obs


def _doses(data, subject) -> tuple[float, float, list[float]]:
    """The time and amount of the subject's first dose (doses at that time summed) and the
    times of its later doses; a subject without a dose, or whose first dose is an infusion, is
    refused."""
    frame = data.frame
    if not len(data.regimens[subject]):
        rows = frame.index[frame["ID"] == subject]
        raise DatasetError(
            f"{data.source}: ID {_fmt(subject)} (rows {rows[0]} to {rows[-1]}) has no dose "
            "(no record with EVID=1 and AMT > 0); NCA needs each subject's dose",
            column="AMT",
            rows=tuple(int(r) for r in rows),
        )
    doses = data.regimens[subject].doses
    start = doses[0].time
    first = [d for d in doses if d.time == start]
    records = frame[(frame["ID"] == subject) & (frame["EVID"] == 1) & (frame["TIME"] == start)]
    row = int(records.index[0])
    if any(d.duration > 0 for d in first):
        raise DatasetError(
            f"{data.source}: ID {_fmt(subject)}: the first dose (row {row}) is an infusion "
            "(RATE or DUR); NCA here handles extravascular and IV bolus doses only",
            rows=(row,),
        )
    later = sorted({d.time for d in doses if d.time > start})
    return start, float(sum(d.amount for d in first)), later


# -- one subject -----------------------------------------------------------------------------


def _subject(obs, start, dose, later, auc_method, route, lambda_z, blq) -> dict:
    """The parameters and ``note`` of one subject (``obs``: its observations, with ``BLQ``)."""
    time = obs["TIME"].to_numpy(np.float64)
    notes = []
    end = later[0] if later else math.inf
    used = (time >= start) & (time < end)
    if later:
        notes.append(
            f"{len(later)} later dose(s): only the interval before the second dose at TIME "
            f"{_fmt(end)} is analysed ({int((time >= end).sum())} later concentration(s) not "
            "used)"
        )
    out = dict.fromkeys(UNITS, math.nan)
    out.update(dose=dose, dose_time=start, lambda_z_points=0)
    t, c = _clean(
        time[used] - start,
        obs["DV"].to_numpy(np.float64)[used],
        obs["BLQ"].to_numpy(bool)[used],
        blq,
    )
    if not len(t):
        notes.append(
            "no measurable concentration after the first dose"
            if used.any()
            else "no concentration after the first dose"
        )
        return {**out, "note": "; ".join(notes)}

    peak = int(np.argmax(c))  # the first maximum
    out.update(cmax=c[peak], tmax=t[peak], clast=c[-1], tlast=t[-1])
    # the profile from the dose: C(0) observed, else 0 (extravascular) or C0 (IV bolus)
    if route == "iv":
        measurable = c > 0
        at_dose = t[0] == 0 and measurable[0]
        out["c0"] = c[0] if at_dose else _back_extrapolate(t[measurable], c[measurable])
        profile_t = t if at_dose else np.r_[0.0, t[t > 0]]
        profile_c = c if at_dose else np.r_[out["c0"], c[t > 0]]
    elif t[0] > 0:
        profile_t, profile_c = np.r_[0.0, t], np.r_[0.0, c]
    else:
        profile_t, profile_c = t, c
    auc, aumc = _areas(profile_t, profile_c, auc_method)
    out.update(auc_last=auc, aumc_last=aumc, mrt_last=aumc / auc if auc > 0 else math.nan)

    terminal = np.arange(len(t)) >= (peak if lambda_z.include_cmax else peak + 1)
    terminal &= c > 0
    fit, reason = _terminal_fit(t[terminal], c[terminal], lambda_z)
    if fit is None:
        notes.append(f"lambda_z not estimated: {reason}")
        return {**out, "note": "; ".join(notes)}
    k, intercept, r2, adj, n, lower = fit
    out.update(
        lambda_z=k,
        lambda_z_points=n,
        lambda_z_lower=lower,
        lambda_z_upper=t[-1],
        r_squared=r2,
        adj_r_squared=adj,
        t_half=math.log(2.0) / k,
        clast_pred=math.exp(intercept - k * t[-1]),
    )
    for kind, clast in (("obs", out["clast"]), ("pred", out["clast_pred"])):
        auc_inf = auc + clast / k
        aumc_inf = aumc + clast * t[-1] / k + clast / k**2
        out[f"auc_inf_{kind}"] = auc_inf
        out[f"auc_pct_extrap_{kind}"] = 100.0 * (auc_inf - auc) / auc_inf
        out[f"aumc_inf_{kind}"] = aumc_inf
        out[f"mrt_inf_{kind}"] = aumc_inf / auc_inf
        out[f"cl_f_{kind}"] = dose / auc_inf
        out[f"vz_f_{kind}"] = dose / (k * auc_inf)
    return {**out, "note": "; ".join(notes)}


def _clean(t, c, below, rule: BLQRule) -> tuple[np.ndarray, np.ndarray]:
    """The concentrations used, BLQ values handled by ``rule``: ``(times, concentrations)``
    ending at the last measurable one (empty if there is none)."""
    measurable = np.flatnonzero(~below)
    if not len(measurable):
        return t[:0], c[:0]
    index = np.arange(len(t))
    keep = ~below
    keep |= below & (index < measurable[0]) & (rule.before == "zero")
    keep |= below & (index > measurable[0]) & (index < measurable[-1]) & (rule.between == "zero")
    return t[keep], np.where(below, 0.0, c)[keep]


def _back_extrapolate(t, c) -> float:
    """C0 of an IV bolus: log-linear back-extrapolation of the first two measurable
    concentrations if they fall, else the first one."""
    if len(t) >= 2 and c[1] < c[0]:
        return float(math.exp(math.log(c[0]) - t[0] * math.log(c[1] / c[0]) / (t[1] - t[0])))
    return float(c[0])


def _areas(t, c, method: str) -> tuple[float, float]:
    """AUC and AUMC from ``t[0]`` to ``t[-1]``: linear trapezoids, or log trapezoids where
    the concentration falls and stays positive (``linear-up-log-down``)."""
    t1, t2, c1, c2 = t[:-1], t[1:], c[:-1], c[1:]
    dt = t2 - t1
    auc = dt * (c1 + c2) / 2
    aumc = dt * (t1 * c1 + t2 * c2) / 2
    if method == "linear-up-log-down":
        down = (c2 < c1) & (c2 > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            k = np.log1p((c1 - c2) / c2) / dt  # ln(c1/c2)/dt, accurate when c2 is near c1
            log_auc = (c1 - c2) / k
            log_aumc = (t1 * c1 - t2 * c2) / k + log_auc / k
        auc = np.where(down, log_auc, auc)
        aumc = np.where(down, log_aumc, aumc)
    return float(auc.sum()), float(aumc.sum())


def _terminal_fit(t, c, rule: LambdaZ):
    """``((λz, intercept, R², adjusted R², points, first time), None)`` of the terminal
    regression chosen by ``rule``, or ``(None, reason)``."""
    counts = [rule.points] if rule.points is not None else range(3, len(t) + 1)
    after = "from Cmax on" if rule.include_cmax else "after Cmax"
    if not counts or counts[-1] > len(t):
        fewest = rule.points or 3
        return None, f"{len(t)} measurable concentration(s) {after}, {fewest} needed"
    fits = [_regression(t[-n:], np.log(c[-n:])) for n in counts]
    falling = [f for f in fits if f[0] > 0]
    if not falling:
        return None, "the terminal slope is not negative"
    best = max(f[3] for f in falling)
    chosen = max((f for f in falling if f[3] >= best - rule.tolerance), key=lambda f: f[4])
    return chosen, None


def _regression(t, y) -> tuple[float, float, float, float, int, float]:
    """Least squares of ``y = a - λz·t``: ``(λz, a, R², adjusted R², n, t[0])``."""
    n = len(t)
    dt, dy = t - t.mean(), y - y.mean()
    slope = float(dt @ dy / (dt @ dt))
    intercept = float(y.mean() - slope * t.mean())
    total = float(dy @ dy)
    residual = y - intercept - slope * t
    r2 = 1.0 - float(residual @ residual) / total if total > 0 else math.nan
    adj = 1.0 - (1.0 - r2) * (n - 1) / (n - 2)
    return -slope, intercept, r2, adj, n, float(t[0])


def _iv_name(name: str) -> str:
    return name.replace("_f_", "_")


def _ev_name(name: str) -> str:
    """The :data:`UNITS` key of a column (``cl_obs`` -> ``cl_f_obs``)."""
    for stem in ("cl", "vz"):
        for kind in ("obs", "pred"):
            if name == f"{stem}_{kind}":
                return f"{stem}_f_{kind}"
    return name
