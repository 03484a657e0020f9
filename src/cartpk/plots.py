"""Plots of trajectories, observed data, endpoint distributions, parameter grids and
sensitivities (matplotlib).

Every function draws into a new figure and returns it (``save`` writes a PNG and closes it), so
the same calls serve notebooks and the command line. Axes carry units.

- population bands: :func:`solution_bands` (from a batched :class:`~cartpk.Solution`, one panel
  per compartment) and :func:`trajectories` (from the ``trajectories.csv`` table that
  :func:`~cartpk.endpoints.band_table` and ``cartpk simulate`` write);
- data: :func:`observed_data` (a :func:`~cartpk.read_nonmem` dataset, BLQ records marked);
- scenario results: :func:`endpoint_distributions`, :func:`response_bars`, :func:`grid_heatmap`,
  :func:`grid_lines`;
- sensitivity: :func:`tornado` (tables from :mod:`cartpk.sensitivity`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .endpoints import EndpointOptions, band_table

#: observable or endpoint -> axis label with its unit, and whether a log axis suits it.
LABELS: dict[str, tuple[str, bool]] = {
    "blood_cells_per_ul": ("circulating CAR-T (cells/µL)", True),
    "blood_copies_per_ug": ("circulating CAR-T (copies/µg gDNA)", True),
    "tumour_car_t": ("intratumoural CAR-T (cells)", True),
    "tumour_burden": ("tumour burden (cells)", True),
    "exhausted_fraction": ("exhausted share of tumour CAR-T (-)", False),
    "total_car_t": ("total CAR-T (cells)", True),
    "blood_car_t": ("CAR-T in the blood volume (cells)", True),
    "stroma_effector": ("stromal CAR-T (cells)", True),
    "tumour_car_t_per_g": ("intratumoural CAR-T (cells/g tumour)", True),
    "cmax_cells_per_ul": ("Cmax (cells/µL)", True),
    "cmax_copies_per_ug": ("Cmax (copies/µg gDNA)", True),
    "tmax_d": ("Tmax (d)", False),
    "auc0_28_cells_per_ul_d": ("AUC0-28 (cells/µL·d)", True),
    "persistence_d": ("persistence (d above limit)", False),
    "tumour_car_t_auc_cell_d": ("intratumoural CAR-T AUC (cells·d)", True),
    "infiltration_ratio": ("infiltration ratio tumour/blood (-)", True),
    "exhausted_fraction_d28": ("exhausted fraction, day 28 (-)", False),
    "tumour_nadir_percent": ("tumour nadir (% of baseline change)", False),
    "tumour_change_percent": ("tumour change at horizon (%)", False),
    "start_day": ("start day (d, CAR-T on day 0)", False),
    "dose": ("dose per administration", False),
}


#: compartment -> observables (or states) showing its CAR-T, the first one present is plotted.
COMPARTMENTS: dict[str, tuple[str, ...]] = {
    "blood": ("blood_cells_per_ul", "blood_copies_per_ug"),
    "stroma": ("stroma_effector",),
    "tumour": ("tumour_car_t",),
}

#: sensitivity table column -> axis label (see :mod:`cartpk.sensitivity`).
SENSITIVITY_LABELS: dict[str, str] = {
    "normalized": "normalized sensitivity d ln y / d ln p (-)",
    "derivative": "dy/dp (endpoint unit per parameter unit)",
    "mu": "Morris mean effect μ (endpoint unit per parameter range)",
    "mu_star": "Morris μ* (endpoint unit per parameter range)",
    "sigma": "Morris σ (endpoint unit per parameter range)",
    "mu_star_conf": "half-width of the 95 % interval of Morris μ* (endpoint unit per range)",
    "S1": "first-order Sobol index (-)",
    "S1_conf": "half-width of the 95 % interval of the first-order index (-)",
    "ST": "total-order Sobol index (-)",
    "ST_conf": "half-width of the 95 % interval of the total-order index (-)",
    "S2": "second-order Sobol index (-)",
}


def _pyplot():
    import matplotlib.pyplot as plt  # falls back to the Agg backend without a display

    return plt


def _label(name: str, model=None) -> tuple[str, bool]:
    """Axis label with unit, and whether a log axis suits it; a model's states label
    themselves (``description (unit)``)."""
    if name in LABELS:
        return LABELS[name]
    for state in getattr(model, "states", ()):
        if state.name == name:
            return f"{state.description or name} ({state.unit})", state.unit == "cells"
    return name, False


def _draw_bands(
    ax, data: pd.DataFrame, label: tuple[str, bool], arms=None, time_unit: str = "d"
) -> None:
    """Median lines and 5-95 % bands of one observable's rows of a band table."""
    arms = list(arms or dict.fromkeys(data.arm))
    for arm in arms:
        group = data[data.arm == arm]
        (line,) = ax.plot(group.time_d, group["median"], label=arm)
        ax.fill_between(group.time_d, group.p05, group.p95, color=line.get_color(), alpha=0.12)
    ylabel, log = label
    if log and (data["p95"] > 0).any():
        ax.set_yscale("log")
        # show six decades below the top: a trajectory decaying to 1e-30 cells says nothing more
        positive = data[["p05", "median", "p95"]].to_numpy()
        positive = positive[positive > 0]
        ax.set_ylim(bottom=max(positive.min(), 1e-6 * positive.max()))
    ax.axvline(0.0, color="0.6", lw=0.8, ls=":")
    ax.set_xlabel(f"time after CAR-T infusion ({time_unit})")
    ax.set_ylabel(ylabel)
    if len(arms) > 1 or arms[0] != "all":
        ax.legend(fontsize=8)


#: observables drawn with the persistence limit of circulating CAR-T (cells/µL), the limit
#: :attr:`~cartpk.endpoints.EndpointOptions.persistence_limit_cells_per_ul` of ``persistence_d``.
PERSISTENCE_OBSERVABLES = ("blood_cells_per_ul",)
#: an endpoint whose values (all arms and patients) span less than this share of their largest
#: magnitude is drawn as "no difference between arms" instead of a box plot.
CONSTANT_SPREAD = 1e-6
#: arm colours of the small multiples: matplotlib's tab10 without its grey (C7), which is the
#: reference arm's.
ARM_COLOURS = ("C0", "C1", "C2", "C3", "C4", "C5", "C6", "C8", "C9")
#: colour of the reference arm's median in every panel of :func:`trajectories`.
REFERENCE_COLOUR = "0.45"


def _default_persistence_limit() -> float:
    return EndpointOptions().persistence_limit_cells_per_ul


def _persistence_label(limit: float) -> str:
    return f"persistence (d with circulating CAR-T ≥ {limit:g} cell{'' if limit == 1 else 's'}/µL)"


def _panel_grid(n: int) -> tuple[int, int]:
    """``(rows, columns)`` of small multiples for ``n`` panels: one row up to 3 panels, 2 x 2
    for 4, three columns up to 9, four beyond."""
    cols = 2 if n == 4 else min(n, 3) if n <= 9 else 4
    return -(-n // cols), cols


def _short_number(value: float) -> str:
    """A tick label: ``0.06``, ``30``, ``10000`` from 1e-3 to 1e5 (4 significant digits), else
    ``1.5×10⁹`` style."""
    if not np.isfinite(value) or value == 0:
        return "0" if value == 0 else ""
    if 1e-3 <= abs(value) < 1e5:
        return f"{float(f'{value:.4g}'):f}".rstrip("0").rstrip(".")
    mantissa, exponent = f"{value:.3e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    power = f"10^{{{int(exponent)}}}"
    return f"${power}$" if mantissa in ("1", "-1") else rf"${mantissa}\times{power}$"


def _log_formatter(minor: bool):
    """matplotlib's log tick labels (which ticks are labelled) with :func:`_short_number`."""
    from matplotlib.ticker import LogFormatter

    class Short(LogFormatter):
        def _num_to_string(self, x, vmin, vmax):
            return _short_number(x)

    return Short(labelOnlyBase=not minor)


def _plain_numbers(ax, which: str) -> None:
    """Tick labels without an offset or a multiplier ("1e-9 + 2.1e1", "1e9" at the axis end):
    plain numbers (``1277.4``) on a linear axis within 1e-3 to 1e5, else each tick its own
    power of ten (``1.5×10⁹``); short numbers on a log axis (``0.2``, ``30``, ``10⁸``). Call it
    once the data are drawn (it looks at the axis limits)."""
    from matplotlib.ticker import FuncFormatter, ScalarFormatter

    axis = getattr(ax, f"{which}axis")
    if getattr(ax, f"get_{which}scale")() == "log":
        axis.set_major_formatter(_log_formatter(minor=False))
        axis.set_minor_formatter(_log_formatter(minor=True))
        return
    largest = np.abs(getattr(ax, f"get_{which}lim")()).max()
    if 1e-3 <= largest < 1e5:
        formatter = ScalarFormatter(useOffset=False)
        formatter.set_scientific(False)
        axis.set_major_formatter(formatter)
    else:
        axis.set_major_formatter(FuncFormatter(lambda value, _: _short_number(value)))


def trajectories(
    bands: pd.DataFrame,
    observable: str,
    arms: Sequence[str] | None = None,
    title: str = "",
    *,
    reference: str | None = None,
    persistence_limit: float | None = None,
):
    """Small multiples of one observable (``trajectories.csv`` layout): one panel per arm with
    its median and 5-95 % band, and the reference arm's median in grey in every other panel.

    The panels share their axes (log for cell counts); circulating CAR-T in cells/µL
    (:data:`PERSISTENCE_OBSERVABLES`) carries the persistence limit as a dashed line.

    Args:
        bands: the band table (``arm, observable, time_d, p05, median, p95``).
        observable: the observable to draw.
        arms: the arms, in panel order (default: the table's, in order of appearance).
        title: figure title (default: the observable and what the panels show).
        reference: the arm drawn in grey for comparison (default: the first arm).
        persistence_limit: limit of the ``persistence_d`` endpoint (cells/µL; default
            :class:`~cartpk.endpoints.EndpointOptions`' 1 cell/µL).
    """
    from matplotlib.patches import Patch

    from .errors import CartpkError

    plt = _pyplot()
    data = bands[bands.observable == observable]
    if data.empty:
        known = ", ".join(dict.fromkeys(bands.observable)) or "none"
        raise CartpkError(f"the band table has no rows of {observable!r} (it has: {known})")
    arms = list(arms or dict.fromkeys(data.arm))
    reference = arms[0] if reference is None else reference
    ylabel, log = _label(observable)
    rows, cols = _panel_grid(len(arms))
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(0.6 + 3.5 * cols, 0.9 + 2.7 * rows) if len(arms) > 1 else (8, 5),
        sharex=True,
        sharey=True,
        squeeze=False,
        constrained_layout=True,
    )
    panels = list(axes.flat[: len(arms)])
    base = data[data.arm == reference]
    limit = None
    if observable in PERSISTENCE_OBSERVABLES:
        limit = _default_persistence_limit() if persistence_limit is None else persistence_limit
    for index, (ax, arm) in enumerate(zip(panels, arms, strict=True)):
        group = data[data.arm == arm]
        colour = ARM_COLOURS[index % len(ARM_COLOURS)]
        if arm != reference and len(base):
            ax.plot(base.time_d, base["median"], color=REFERENCE_COLOUR, lw=1.3, zorder=3)
        ax.fill_between(group.time_d, group.p05, group.p95, color=colour, alpha=0.25, lw=0)
        ax.plot(group.time_d, group["median"], color=colour, lw=1.8, zorder=4)
        if not np.isfinite(group[["p05", "median", "p95"]].to_numpy(dtype=float)).any():
            ax.text(0.5, 0.5, "no values", transform=ax.transAxes, ha="center", color="0.3")
        ax.axvline(0.0, color="0.6", lw=0.8, ls=":")
        if limit is not None:
            text = f"persistence limit {limit:g} cell{'' if limit == 1 else 's'}/µL"
            ax.axhline(limit, color="k", lw=0.9, ls="--", label=text)
            ax.annotate(
                text,
                (1.0, limit),
                xycoords=("axes fraction", "data"),
                xytext=(-3, 2),
                textcoords="offset points",
                ha="right",
                va="bottom",
                fontsize=7,
            )
        ax.set_title(
            f"{arm} (reference)" if arm == reference and len(arms) > 1 else arm, fontsize=9
        )
        ax.tick_params(which="both", labelsize=8)
    values = data[["p05", "median", "p95"]].to_numpy(dtype=float)
    positive = values[np.isfinite(values) & (values > 0)]
    ax = panels[0]
    if log and positive.size:
        ax.set_yscale("log")  # shared: every panel
        # six decades below the top: a trajectory decaying to 1e-30 cells says nothing more
        bottom = max(positive.min(), 1e-6 * positive.max())
        if limit is not None:
            bottom = min(bottom, limit / 2)
        ax.set_ylim(bottom=bottom)
    else:
        for panel in panels:
            _plain_numbers(panel, "y")
    for panel in panels:
        _plain_numbers(panel, "x")
    # units on every axis that shows tick labels: the lowest panel of each column, the first
    # of each row (a row above a missing panel shows its time axis)
    for index, panel in enumerate(panels):
        if index + cols >= len(panels):
            panel.xaxis.set_tick_params(labelbottom=True)
            panel.set_xlabel("time after CAR-T infusion (d)", fontsize=8)
        if index % cols == 0:
            panel.set_ylabel(ylabel, fontsize=8)
    for panel in axes.flat[len(arms) :]:
        panel.set_visible(False)
    what = ylabel.split(" (")[0]
    if len(arms) > 1:
        handles = [
            plt.Line2D([], [], color="C0", lw=1.8, label="median of the arm"),
            Patch(color="C0", alpha=0.25, label="5-95 % of patients"),
            plt.Line2D([], [], color=REFERENCE_COLOUR, lw=1.3, label=f"{reference}: median"),
        ]
        if limit is not None:
            handles.append(
                plt.Line2D([], [], color="k", lw=0.9, ls="--", label="persistence limit")
            )
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
        fig.suptitle(title or f"{what}: median and 5-95 % band per arm, {reference} in grey")
    else:
        ax.set_title(title or f"{what}: median and 5-95 % band ({arms[0]})")
    return fig


def solution_bands(
    solution,
    observables: Sequence[str] | None = None,
    *,
    arms: Sequence[str] | None = None,
    model=None,
    title: str = "",
):
    """Population trajectories straight from a :class:`~cartpk.Solution`: one panel per
    observable, median and 5-95 % band per arm.

    Args:
        solution: a batched solution (``simulate_population``), or one patient's (a line).
        observables: observable or state names (default: the CAR-T of each compartment the
            model has, :data:`COMPARTMENTS`: blood, stroma, tumour).
        arms: one label per patient (e.g. ``np.repeat(["alone", "+ anti-VEGF"], n)``).
        model: the model, to label states with their units and time with its unit.
        title: figure title.
    """
    plt = _pyplot()
    if observables is None:
        present = {*solution.observables, *solution.states}
        observables = [
            next(n for n in names if n in present)
            for names in COMPARTMENTS.values()
            if any(n in present for n in names)
        ]
    table = band_table(solution, observables, arms)
    fig, axes = plt.subplots(
        1,
        len(observables),
        figsize=(4.6 * len(observables) if len(observables) > 1 else 7.0, 4.2),
        constrained_layout=True,
    )
    for ax, name in zip(np.atleast_1d(axes), observables, strict=True):
        label = _label(name, model)
        unit = model.time_unit if model is not None else "d"
        _draw_bands(ax, table[table.observable == name], label, None, unit)
        compartment = next((c for c, names in COMPARTMENTS.items() if name in names), None)
        ax.set_title(f"{compartment} CAR-T" if compartment else label[0].split(" (")[0])
    if title:
        fig.suptitle(title)
    return fig


def observed_data(
    data,
    *,
    dvid: int | None = None,
    ylabel: str = "observed value (DV units)",
    log: bool = True,
    ids: Sequence | None = None,
    prediction: pd.DataFrame | None = None,
    time_unit: str = "d",
):
    """Observations per subject over time, censored records marked.

    Below-limit records (``CENS=1``, BLQ) are drawn as open down-triangles at their limit
    (``LIMIT``/``LLOQ``), above-limit ones (``CENS=-1``) as open up-triangles; the limit is a
    dashed line when all records share it.

    Args:
        data: a :class:`~cartpk.nonmem.NonmemData` from :func:`~cartpk.read_nonmem`.
        dvid: the observation type to plot (default: all).
        ylabel: y-axis label with the unit of ``DV`` (the dataset does not carry units).
        log: log y axis.
        ids: subjects to plot (default: all).
        prediction: a band table (:func:`~cartpk.endpoints.band_table`, one arm) drawn as the
            model's median and 5-95 % band.
        time_unit: the unit of ``TIME`` (the model's ``time_unit``).
    """
    plt = _pyplot()
    obs = data.observations()
    if dvid is not None:
        obs = obs[obs.DVID == dvid]
    if ids is not None:
        obs = obs[obs.ID.isin(list(ids))]
    fig, ax = plt.subplots(figsize=(8, 5), constrained_layout=True)
    handles = []
    if prediction is not None:
        ax.fill_between(prediction.time_d, prediction.p05, prediction.p95, color="0.8")
        handles += ax.plot(
            prediction.time_d, prediction["median"], "k-", label="model median, 5-95 % band"
        )
    for index, (_, subject) in enumerate(obs.groupby("ID", sort=False)):
        colour = f"C{index % 10}"
        measured = subject[subject.CENS == 0]
        ax.plot(measured.TIME, measured.DV, "o-", color=colour, ms=4, lw=0.8, alpha=0.8)
        for flag, marker in ((1, "v"), (-1, "^")):
            censored = subject[subject.CENS == flag]
            ax.plot(censored.TIME, censored.LIMIT, marker, mfc="none", color=colour, ms=7)
    limits = obs.loc[obs.CENS != 0, "LIMIT"].dropna().unique()
    if len(limits) == 1:
        ax.axhline(limits[0], color="0.4", lw=0.8, ls="--")
    handles += [
        plt.Line2D([], [], marker="o", color="0.3", ms=4, lw=0.8, label="observed"),
        plt.Line2D([], [], marker="v", mfc="none", color="0.3", ls="", label="below limit (BLQ)"),
    ]
    if (obs.CENS == -1).any():
        handles.append(
            plt.Line2D([], [], marker="^", mfc="none", color="0.3", ls="", label="above limit")
        )
    ax.legend(handles=handles, fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(f"time ({time_unit})")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{obs.ID.nunique()} subjects, {len(obs)} observations")
    return fig


def tornado(table: pd.DataFrame, column: str | None = None, top: int | None = None):
    """Tornado plot of sensitivities: one panel per endpoint, parameters sorted by magnitude.

    Args:
        table: from :func:`cartpk.sensitivity.local_sensitivity`, :func:`~cartpk.sensitivity.
            morris`, :func:`~cartpk.sensitivity.sobol` or :func:`~cartpk.sensitivity.efast`
            (columns ``endpoint``, ``parameter``).
        column: the column to plot (default: ``normalized``, else ``mu_star``, else ``ST``).
        top: show only the ``top`` largest magnitudes per endpoint.
    """
    from .endpoints import ENDPOINTS

    plt = _pyplot()
    column = column or next(c for c in ("normalized", "mu_star", "ST") if c in table)
    endpoints = list(dict.fromkeys(table.endpoint))
    rows = [
        table[table.endpoint == e]
        .assign(_size=lambda t: t[column].abs())
        .sort_values("_size", ascending=False)
        .head(top)
        for e in endpoints
    ]
    height = max(len(r) for r in rows)
    fig, axes = plt.subplots(
        1,
        len(endpoints),
        figsize=(4.6 * len(endpoints), 1.0 + 0.32 * height),
        constrained_layout=True,
        squeeze=False,
    )
    for ax, endpoint, data in zip(axes[0], endpoints, rows, strict=True):
        values = data[column].to_numpy(dtype=float)
        y = np.arange(len(data))
        ax.barh(y, values, color=np.where(values >= 0, "C0", "C3"))
        if column == "mu_star" and "sigma" in data:
            ax.plot(data["sigma"], y, "k|", ms=10, label="σ")
            ax.legend(fontsize=8)
        ax.set_yticks(y, data.parameter, fontsize=8)
        ax.set_ylim(len(data) - 0.5, -0.5)
        ax.axvline(0.0, color="0.4", lw=0.8)
        ax.set_xlabel(SENSITIVITY_LABELS.get(column, column))
        unit = ENDPOINTS.get(endpoint, (None,))[0]
        ax.set_title(f"{endpoint} ({unit})" if unit else endpoint, fontsize=10)
    return fig


def endpoint_distributions(
    endpoints: pd.DataFrame,
    names: Sequence[str],
    by: str = "arm",
    *,
    persistence_limit: float | None = None,
):
    """Box plots (5-95 % whiskers) of endpoints per arm, one panel per endpoint.

    Endpoints without a finite value are left out (a note at the bottom names them); one whose
    values span less than :data:`CONSTANT_SPREAD` of their magnitude across all arms is drawn
    as the text "no difference between arms" rather than a box plot on a scale of rounding
    errors. Tick labels are plain numbers (no offset).

    Args:
        endpoints: the endpoint table (``endpoints.csv``: one row per patient x arm).
        names: the endpoint columns to draw (those missing from the table are skipped).
        by: the column that groups the rows (one box per value).
        persistence_limit: the limit of ``persistence_d`` for its axis label (cells/µL;
            default :class:`~cartpk.endpoints.EndpointOptions`' 1 cell/µL).
    """
    plt = _pyplot()
    groups = list(dict.fromkeys(endpoints[by]))
    columns = [n for n in names if n in endpoints]
    finite = {
        n: np.isfinite(pd.to_numeric(endpoints[n], errors="coerce").to_numpy(dtype=float)).any()
        for n in columns
    }
    shown = [n for n in columns if finite[n]]
    dropped = [n for n in columns if not finite[n]]
    limit = _default_persistence_limit() if persistence_limit is None else persistence_limit
    cols = max(1, min(3, len(shown)))
    rows = max(1, int(np.ceil(len(shown) / cols)))
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(4.2 * cols, 0.9 + 0.32 * len(groups) * rows + 0.6 * rows),
        constrained_layout=True,
        squeeze=False,
    )
    between = "arms" if by == "arm" else f"{by} groups"
    for ax, name in zip(axes.flat, shown, strict=False):
        data = [
            pd.to_numeric(endpoints.loc[endpoints[by] == g, name], errors="coerce").to_numpy(
                dtype=float
            )
            for g in groups
        ]
        data = [d[np.isfinite(d)] for d in data]
        label, log = _label(name)
        if name == "persistence_d":
            label = _persistence_label(limit)
        values = np.concatenate(data)
        spread = values.max() - values.min()
        filled = [i for i, d in enumerate(data) if len(d)]
        if spread <= CONSTANT_SPREAD * np.abs(values).max():
            text = f"no difference between {between}" if len(groups) > 1 else "one value"
            ax.text(
                0.5,
                0.5,
                f"{text}:\n{np.median(values):.6g} in every patient",
                transform=ax.transAxes,
                ha="center",
                va="center",
                fontsize=9,
                color="0.25",
            )
            ax.set_xticks([])
        else:
            ax.boxplot(
                [data[i] for i in filled],
                positions=[i + 1 for i in filled],
                orientation="horizontal",
                whis=(5, 95),
                showfliers=False,
                widths=0.6,
            )
            if log and (values > 0).all():
                ax.set_xscale("log")
            _plain_numbers(ax, "x")
        for i, d in enumerate(data):
            if not len(d):
                ax.text(0.02, i + 1, "no values", transform=ax.get_yaxis_transform(), fontsize=7)
        ax.set_xlabel(label, fontsize=9)
        ax.set_yticks(range(1, len(groups) + 1), groups if ax in axes[:, 0] else [""] * len(groups))
        ax.tick_params(axis="both", which="both", labelsize=8)
        ax.set_ylim(len(groups) + 0.5, 0.5)
    if not shown:
        axes[0, 0].text(
            0.5,
            0.5,
            "no finite endpoint values",
            transform=axes[0, 0].transAxes,
            ha="center",
            va="center",
        )
        axes[0, 0].set_axis_off()
    for ax in axes.flat[max(1, len(shown)) :]:
        ax.set_visible(False)
    if dropped:
        names = ", ".join(_label(n)[0].split(" (")[0] for n in dropped)
        fig.supxlabel(f"not shown, no finite values: {names}", fontsize=8, color="0.3")
    return fig


def response_bars(summary: pd.DataFrame):
    """Objective (CR + PR) and complete response rates per arm (``summary.csv`` rows of all
    patients), each bar labelled with its rates; when no arm has a response the bars (of
    width 0) are still labelled, and a note says so in place of the legend."""
    plt = _pyplot()
    rows = summary[summary.subgroup == "all"] if "subgroup" in summary else summary
    objective = rows["objective_response_percent"].to_numpy(dtype=float)
    complete = (
        rows["complete_response_percent"].to_numpy(dtype=float)
        if "complete_response_percent" in rows
        else np.full(len(rows), np.nan)
    )
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.35 * len(rows)), constrained_layout=True)
    y = np.arange(len(rows))
    ax.barh(y, np.nan_to_num(objective), color="C0", label="CR + PR")
    ax.barh(y, np.nan_to_num(complete), color="C2", label="CR")
    for k, (orr, cr) in enumerate(zip(objective, complete, strict=True)):
        text = "n/a" if np.isnan(orr) else f"{orr:.0f} %"
        if np.isfinite(cr) and np.isfinite(orr):
            text += f" (CR {cr:.0f} %)"
        inside = orr > 75  # a long bar carries its label inside
        x = orr - 1.0 if inside else np.nan_to_num(orr) + 1.0
        style = {"ha": "right", "color": "white"} if inside else {"ha": "left"}
        ax.text(x, k, text, va="center", fontsize=8, **style)
    ax.set_yticks(y, rows["arm"], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(0, 100)
    ax.set_xlabel("patients with response (%), RECIST-like best overall response")
    finite = objective[np.isfinite(objective)]
    if finite.size and (finite == 0).all():  # no bar to explain: a note instead of a legend
        ax.text(
            0.97,
            0.5,
            "no objective response in any arm:\nno patient's tumour diameter\n"
            "falls 30 % below baseline",
            transform=ax.transAxes,
            ha="right",
            va="center",
            fontsize=9,
            color="0.25",
            bbox={"facecolor": "white", "edgecolor": "0.7"},
        )
    else:
        fig.legend(*ax.get_legend_handles_labels(), loc="outside upper right", ncols=2, fontsize=8)
    return fig


def grid_heatmap(grid: pd.DataFrame, endpoint: str, x: str = "start_day", y: str = "dose"):
    """Heat map of a median endpoint over a two-variable grid (``grid.csv`` layout)."""
    plt = _pyplot()
    table = grid.pivot(index=y, columns=x, values=f"{endpoint}_median")
    fig, ax = plt.subplots(figsize=(7, 5), constrained_layout=True)
    image = ax.imshow(table.to_numpy(), origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(table.columns)), [f"{v:g}" for v in table.columns])
    ax.set_yticks(range(len(table.index)), [f"{v:g}" for v in table.index])
    ax.set_xlabel(_label(x)[0])
    ax.set_ylabel(_label(y)[0])
    best = np.unravel_index(np.nanargmax(table.to_numpy()), table.shape)
    ax.plot(best[1], best[0], marker="*", color="white", markersize=14, label="grid maximum")
    ax.legend(loc="upper right", fontsize=8)
    fig.colorbar(image, ax=ax, label=f"median {_label(endpoint)[0]}")
    return fig


def grid_lines(grid: pd.DataFrame, endpoint: str, x: str):
    """A one-variable grid: median endpoint against the variable."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    ax.plot(grid[x], grid[f"{endpoint}_median"], marker="o")
    ax.set_xlabel(_label(x)[0])
    ax.set_ylabel(f"median {_label(endpoint)[0]}")
    return fig


def save(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write a figure as PNG and close it."""
    plt = _pyplot()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return Path(path)


# -- schedule optimisation ---------------------------------------------------------------------


def schedule_search(
    seed_grid: pd.DataFrame, history: pd.DataFrame, best: dict, value: float, title: str
):
    """The seeding grid, the local searches and the optimum of ``cartpk optimize`` (tables
    ``seed_grid.csv`` and ``history.csv``), over one or two schedule variables."""
    plt = _pyplot()
    variables = list(best)
    fig, ax = plt.subplots(figsize=(7, 5), constrained_layout=True)
    if len(variables) == 2:
        x, y = variables
        points = ax.scatter(
            seed_grid[x], seed_grid[y], c=seed_grid["objective"], cmap="viridis", s=80
        )
        fig.colorbar(points, ax=ax, label="mean objective (endpoint unit)")
        for _, path in history.groupby("start"):
            ax.plot(path[x], path[y], color="white", lw=1)
            ax.plot(path[x].iloc[-1], path[y].iloc[-1], "o", color="white", ms=4)
        ax.plot(best[x], best[y], "*", color="red", ms=16, label="optimum")
        ax.set_ylabel(_label(y)[0])
    else:
        (x,) = variables
        ax.plot(seed_grid[x], seed_grid["objective"], "o", label="seeding grid")
        for start, path in history.groupby("start"):
            ax.plot(path[x], path["objective"], ".-", lw=0.8, label=f"local search {start + 1}")
        ax.plot(best[x], value, "*", color="red", ms=16, label="optimum")
        ax.set_ylabel("mean objective (endpoint unit)")
    ax.set_xlabel(_label(x)[0])
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


# -- fits ----------------------------------------------------------------------------------------


def goodness_of_fit(
    diagnostics: pd.DataFrame,
    log_scale: dict,
    title: str,
    time_unit: str = "d",
    *,
    value_label: str | None = None,
):
    """Goodness-of-fit panels from ``diagnostics.csv``: DV vs PRED and IPRED, CWRES vs time and
    vs PRED (``log_scale``: DVID -> whether that observable is drawn on log axes;
    ``value_label``: the DV axis, default ``DV (observation unit)``)."""
    plt = _pyplot()
    observed = diagnostics[diagnostics["CENS"] == 0]
    fig, axes = plt.subplots(2, 2, figsize=(10, 8.5), constrained_layout=True)
    for dvid, group in observed.groupby("DVID"):
        label = f"DVID {dvid}" if len(log_scale) > 1 else None
        for ax, column in ((axes[0, 0], "PRED"), (axes[0, 1], "IPRED")):
            ax.scatter(group[column], group["DV"], s=10, alpha=0.6, label=label)
            if log_scale.get(dvid):
                ax.set_xscale("log")
                ax.set_yscale("log")
        axes[1, 0].scatter(group["TIME"], group["CWRES"], s=10, alpha=0.6, label=label)
        axes[1, 1].scatter(group["PRED"], group["CWRES"], s=10, alpha=0.6, label=label)
        if log_scale.get(dvid):
            axes[1, 1].set_xscale("log")
    for ax, column in ((axes[0, 0], "PRED"), (axes[0, 1], "IPRED")):
        values = observed[[column, "DV"]].to_numpy(dtype=float)
        if np.isfinite(values).any():
            low, high = np.nanmin(values), np.nanmax(values)
            ax.plot([low, high], [low, high], color="k", lw=1)
        ax.set_xlabel(column + (value_label or "DV (observation unit)").removeprefix("DV"))
        ax.set_ylabel(value_label or "DV (observation unit)")
        ax.set_title(f"observations vs {column}")
    for ax, xlabel in ((axes[1, 0], f"time ({time_unit})"), (axes[1, 1], "PRED")):
        ax.axhline(0, color="k", lw=1)
        for y in (-1.96, 1.96):
            ax.axhline(y, color="k", lw=0.5, ls="--")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("CWRES (-)")
        ax.set_title(f"CWRES vs {xlabel.split(' ')[0]}")
    if len(log_scale) > 1:
        axes[0, 0].legend()
    n_censored = int((diagnostics["CENS"] != 0).sum())
    fig.suptitle(f"{title}: {len(observed)} observations shown ({n_censored} censored not shown)")
    return fig


def visual_predictive_check(
    vpc: pd.DataFrame,
    observables: dict,
    limit: float | None = None,
    time_unit: str = "d",
    observed: pd.DataFrame | None = None,
):
    """Percentile VPC from ``vpc.csv`` (5/50/95 % with simulated 95 % bands) and the fraction
    below the limit; ``observables``: DVID -> (name, log axis).

    ``observed``: points drawn under the bands, with columns ``dvid, time, value`` and optionally
    ``censored`` (drawn as open triangles at ``value``, their limit), e.g.
    :func:`cartpk.estimation.pcvpc.observation_points` (prediction-corrected for a pcVPC table
    from :func:`~cartpk.estimation.pcvpc.pcvpc_table`).
    """
    plt = _pyplot()
    fig, axes = plt.subplots(
        2,
        len(observables),
        figsize=(7 * len(observables), 8),
        squeeze=False,
        constrained_layout=True,
        gridspec_kw={"height_ratios": [3, 1]},
    )
    for c, (dvid, (name, log_axis)) in enumerate(observables.items()):
        top, bottom = axes[0, c], axes[1, c]
        table = vpc[vpc["dvid"] == dvid]
        if observed is not None:
            _draw_points(top, observed[observed["dvid"] == dvid])
        for q, color in (("5", "tab:blue"), ("50", "tab:red"), ("95", "tab:blue")):
            part = table[table["percentile"] == q].sort_values("time")
            top.fill_between(
                part["time"], part["sim_low"], part["sim_high"], color=color, alpha=0.2, lw=0
            )
            top.plot(part["time"], part["sim_median"], color=color, lw=1, ls="--")
            top.plot(
                part["time"],
                part["observed"],
                color=color,
                lw=2,
                marker="o",
                ms=3,
                label=f"observed {q}th percentile",
            )
        if limit is not None:
            top.axhline(limit, color="k", lw=0.8, ls=":", label="limit (median)")
        if log_axis:
            top.set_yscale("log")
        top.set_xlabel(f"time ({time_unit})")
        top.set_ylabel(_label(name)[0])
        top.set_title(f"VPC, DVID {dvid}: observed percentiles (lines), simulated 95 % bands")
        top.legend(fontsize=8)
        blq = table[table["percentile"] == "blq"].sort_values("time")
        bottom.fill_between(blq["time"], blq["sim_low"], blq["sim_high"], color="grey", alpha=0.3)
        bottom.plot(blq["time"], blq["observed"], color="k", marker="o", ms=3)
        bottom.set_ylim(-0.02, 1.02)
        bottom.set_xlabel(f"time ({time_unit})")
        bottom.set_ylabel("fraction < limit (-)")
    return fig


def likelihood_profiles(profiles: Sequence[pd.DataFrame], threshold: float):
    """Profile likelihoods from ``profile.csv`` tables: OFV above its minimum against each
    parameter, with the 95 % threshold (``threshold``, χ²₁ 0.95 quantile)."""
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(profiles), figsize=(4.5 * len(profiles), 3.8), squeeze=False, constrained_layout=True
    )
    for ax, table in zip(axes[0], profiles, strict=True):
        ax.plot(table["value"], table["delta_ofv"], marker="o")
        ax.axhline(threshold, color="k", ls="--", lw=0.8, label="95 % threshold")
        ax.set_xlabel(f"{table['parameter'].iloc[0]} (natural scale)")
        ax.set_ylabel("OFV − min OFV (-)")
        ax.legend(fontsize=8)
    return fig


# -- fit diagnostics -------------------------------------------------------------------------------

#: LOWESS span and robustness iterations: Cleveland WS. Robust locally weighted regression and
#: smoothing scatterplots. J Am Stat Assoc 1979;74(368):829-836, doi:10.1080/01621459.1979.10481038
#: (the defaults of R's ``lowess`` and of statsmodels)
LOWESS_FRACTION = 2 / 3
LOWESS_ITERATIONS = 3
#: the smoother is evaluated at this many quantiles of x (at every x when there are fewer points)
LOWESS_POINTS = 100
#: panels per row of :func:`individual_fits`
PANELS_PER_ROW = 4


def lowess(
    x,
    y,
    frac: float = LOWESS_FRACTION,
    iterations: int = LOWESS_ITERATIONS,
    points: int = LOWESS_POINTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Cleveland's LOWESS smoother: at each evaluation point, a linear fit to the
    ``floor(frac n)`` nearest points with tricube weights ``(1 - (d/d_max)^3)^3``, repeated
    ``iterations`` times with bisquare robustness weights ``(1 - (r / 6 median|r|)^2)^2``.

    Non-finite pairs are dropped. Returns the sorted evaluation points (every x when ``n <=
    points``, else ``points`` quantiles of x; residuals for the robustness weights are then
    interpolated) and the smoothed values.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    order = np.argsort(x[keep], kind="stable")
    x, y = x[keep][order], y[keep][order]
    if x.size < 2:
        return x, y
    k = min(x.size, max(2, int(frac * x.size + 1e-10)))  # the small term guards frac n = integer
    at = x if x.size <= points else np.quantile(x, np.linspace(0.0, 1.0, points))
    robustness = np.ones_like(x)
    for iteration in range(iterations + 1):
        fitted = _local_linear(x, y, at, k, robustness)
        if iteration == iterations:
            break
        residual = np.abs(y - np.interp(x, at, fitted))
        scale = 6.0 * np.median(residual)
        if scale == 0:
            break
        robustness = (1 - np.minimum(residual / scale, 1.0) ** 2) ** 2
    return at, fitted


def _local_linear(x, y, at, k, robustness):
    """Weighted linear fits at the points ``at``, each to its ``k`` nearest neighbours."""
    distance = np.abs(at[:, None] - x[None, :])
    radius = np.partition(distance, k - 1, axis=1)[:, k - 1 : k]
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(radius > 0, distance / radius, (distance > 0).astype(float))
        w = (1 - np.minimum(scaled, 1.0) ** 3) ** 3 * robustness
        total = w.sum(axis=1, keepdims=True)
        mean_x = (w * x).sum(axis=1, keepdims=True) / total
        mean_y = (w * y).sum(axis=1, keepdims=True) / total
        sxx = (w * (x - mean_x) ** 2).sum(axis=1, keepdims=True)
        sxy = (w * (x - mean_x) * y).sum(axis=1, keepdims=True)
        slope = np.where(sxx > 0, sxy / sxx, 0.0)
    return (mean_y + slope * (at[:, None] - mean_x))[:, 0]


def _log_axis(ax, which: str) -> None:
    """A logarithmic ``"x"`` or ``"y"`` axis, labelled only at its decades when it spans one or
    more (matplotlib's labels of the minor ticks overlap there)."""
    from matplotlib.ticker import NullFormatter

    getattr(ax, f"set_{which}scale")("log")
    low, high = getattr(ax, f"get_{which}lim")()
    if high >= 10 * low:
        getattr(ax, f"{which}axis").set_minor_formatter(NullFormatter())


def _normal_quantiles(n: int) -> np.ndarray:
    """Expected N(0, 1) order statistics for a QQ plot: ``Phi^-1((i - a)/(n + 1 - 2a))`` with
    ``a = 3/8`` for ``n <= 10``, else ``1/2`` (R's ``ppoints``, as ``qqnorm`` uses)."""
    from statistics import NormalDist

    a = 3 / 8 if n <= 10 else 1 / 2
    return np.array([NormalDist().inv_cdf((i - a) / (n + 1 - 2 * a)) for i in range(1, n + 1)])


def _residual_scatter(ax, x, y, xlabel: str, ylabel: str, hollow=None) -> None:
    """Residuals against ``x`` with the zero line, +-1.96 and a LOWESS smoother."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    hollow = np.zeros(x.shape, bool) if hollow is None else np.asarray(hollow, bool)
    ax.scatter(x[~hollow], y[~hollow], s=10, alpha=0.6, color="C0", label="observed")
    if hollow.any():
        ax.scatter(
            x[hollow],
            y[hollow],
            s=14,
            facecolors="none",
            edgecolors="C0",
            label="censored (imputed)",
        )
    ax.plot(*lowess(x, y), color="C3", lw=1.5, label="LOWESS")
    ax.axhline(0.0, color="k", lw=1)
    for level in (-1.96, 1.96):
        ax.axhline(level, color="k", lw=0.5, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{ylabel.split(' ')[0]} vs {xlabel.split(' ')[0]}")


def _normal_qq(ax, values, name: str) -> None:
    values = np.sort(np.asarray(values, dtype=float)[np.isfinite(values)])
    expected = _normal_quantiles(values.size)
    ax.scatter(expected, values, s=10, alpha=0.6)
    if values.size:
        ends = [min(expected[0], values[0]), max(expected[-1], values[-1])]
        ax.plot(ends, ends, color="k", lw=1, label="identity")
    ax.set_xlabel("N(0, 1) quantile (-)")
    ax.set_ylabel(f"{name} quantile (-)")
    ax.set_title(f"{name}: normal QQ plot")


def individual_fits(
    diagnostics: pd.DataFrame,
    log_scale: dict,
    time_unit: str = "d",
    max_subjects: int = 24,
    *,
    ylabel: str | None = None,
):
    """Observations, IPRED and PRED per subject (``diagnostics.csv``), one panel each for the
    first ``max_subjects`` subjects.

    Censored records are drawn at their limit as open triangles (down: below the limit, up:
    above), with the subject's limit as a dotted line. ``log_scale``: DVID -> log axis (the
    panels are logarithmic when every DVID is).
    """
    plt = _pyplot()
    ids = list(dict.fromkeys(diagnostics["ID"]))
    shown = ids[:max_subjects]
    cols = min(PANELS_PER_ROW, len(shown))
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.3 * cols, 2.7 * rows + 0.6), squeeze=False, constrained_layout=True
    )
    dvids = sorted(diagnostics["DVID"].unique())
    several = len(dvids) > 1
    log = all(log_scale.get(d, False) for d in diagnostics["DVID"].unique())
    for ax, subject in zip(axes.flat, shown, strict=False):
        data = diagnostics[diagnostics["ID"] == subject]
        for dvid, group in data.sort_values("TIME").groupby("DVID"):
            colour = f"C{dvids.index(dvid) % 10}"
            measured = group[group["CENS"] == 0]
            ax.plot(measured["TIME"], measured["DV"], "o", color=colour, ms=3.5)
            ax.plot(group["TIME"], group["IPRED"], "-", color=colour, lw=1.2)
            ax.plot(group["TIME"], group["PRED"], "--", color=colour, lw=1.0)
            for flag, marker in ((1, "v"), (-1, "^")):
                censored = group[group["CENS"] == flag]
                ax.plot(censored["TIME"], censored["LIMIT"], marker, mfc="none", color=colour, ms=6)
            limits = group.loc[group["CENS"] != 0, "LIMIT"].dropna().unique()
            if len(limits) == 1:
                ax.axhline(limits[0], color=colour, lw=0.8, ls=":")
        if log:
            ax.set_yscale("log")
        ax.set_title(
            f"ID {subject}"
            + (f" (DVIDs {', '.join(map(str, data.DVID.unique()))})" if several else ""),
            fontsize=9,
        )
        ax.set_xlabel(f"time ({time_unit})", fontsize=8)
        ax.set_ylabel(ylabel or "DV (observation unit)", fontsize=8)
        ax.tick_params(which="both", labelsize=7)
    for ax in axes.flat[len(shown) :]:
        ax.set_visible(False)
    handles = [
        plt.Line2D([], [], marker="o", color="0.3", ls="", ms=3.5, label="observed"),
        plt.Line2D([], [], color="0.3", lw=1.2, label="IPRED"),
        plt.Line2D([], [], color="0.3", lw=1.0, ls="--", label="PRED"),
        plt.Line2D([], [], marker="v", mfc="none", color="0.3", ls="", label="censored, at limit"),
        plt.Line2D([], [], color="0.3", lw=0.8, ls=":", label="limit (LLOQ)"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    fig.suptitle(f"individual fits: {len(shown)} of {len(ids)} subjects")
    return fig


def residual_panels(
    diagnostics: pd.DataFrame,
    npde: pd.DataFrame | None = None,
    time_unit: str = "d",
    *,
    log_scale: dict | None = None,
):
    """Residual diagnostics: CWRES vs time and vs PRED with a LOWESS smoother (:func:`lowess`),
    and the normal QQ plot of CWRES (``diagnostics.csv``); with an NPDE table
    (:func:`cartpk.estimation.npde.npde_table`) also NPDE vs time, their histogram against the
    N(0, 1) density and their QQ plot. ``log_scale``: DVID -> log PRED axis."""
    plt = _pyplot()
    rows = 1 if npde is None else 2
    fig, axes = plt.subplots(
        rows, 3, figsize=(14, 4.3 * rows), squeeze=False, constrained_layout=True
    )
    observed = diagnostics[(diagnostics["CENS"] == 0) & np.isfinite(diagnostics["CWRES"])]
    _residual_scatter(
        axes[0, 0], observed["TIME"], observed["CWRES"], f"time ({time_unit})", "CWRES (-)"
    )
    _residual_scatter(
        axes[0, 1], observed["PRED"], observed["CWRES"], "PRED (observation unit)", "CWRES (-)"
    )
    if log_scale and all(log_scale.get(d, False) for d in observed["DVID"].unique()):
        _log_axis(axes[0, 1], "x")
    _normal_qq(axes[0, 2], observed["CWRES"], "CWRES")
    axes[0, 0].legend(fontsize=8)
    if npde is not None:
        values = npde[np.isfinite(npde["NPDE"])]
        _residual_scatter(
            axes[1, 0],
            values["TIME"],
            values["NPDE"],
            f"time ({time_unit})",
            "NPDE (-)",
            hollow=values["CENS"] != 0,
        )
        axes[1, 0].legend(fontsize=8)
        ax = axes[1, 1]
        ax.hist(values["NPDE"], bins="auto", density=True, color="C0", alpha=0.6, label="NPDE")
        grid = np.linspace(-4, 4, 201)
        ax.plot(grid, np.exp(-(grid**2) / 2) / np.sqrt(2 * np.pi), color="k", label="N(0, 1)")
        ax.set_xlabel("NPDE (-)")
        ax.set_ylabel("density (-)")
        ax.set_title("NPDE histogram")
        ax.legend(fontsize=8)
        _normal_qq(axes[1, 2], values["NPDE"], "NPDE")
    return fig


def eta_covariates(
    individual: pd.DataFrame,
    etas: Sequence[str],
    covariates: dict[str, str],
    *,
    categorical: Sequence[str] = (),
):
    """EBEs against covariates (``individual.csv``): one panel per (ETA, covariate), a scatter
    with a LOWESS smoother for continuous covariates, box plots per level for categorical ones
    (those in ``categorical`` and non-numeric columns).

    Args:
        individual: one row per subject with ``eta_<name>`` columns and the covariates.
        etas: parameter names with variability (``"cmax"`` or ``"eta_cmax"``).
        covariates: column -> unit (``"-"`` for dimensionless or categorical ones).
        categorical: covariates to draw as box plots even though they are numeric.
    """
    plt = _pyplot()
    columns = [e if e.startswith("eta_") else f"eta_{e}" for e in etas]
    names = list(covariates)
    fig, axes = plt.subplots(
        len(columns),
        len(names),
        figsize=(3.8 * len(names), 3.2 * len(columns)),
        squeeze=False,
        constrained_layout=True,
    )
    for r, eta in enumerate(columns):
        for c, name in enumerate(names):
            ax = axes[r, c]
            data = individual[[name, eta]].dropna()
            if name in categorical or not pd.api.types.is_numeric_dtype(data[name]):
                levels = sorted(data[name].unique(), key=str)
                ax.boxplot([data.loc[data[name] == v, eta] for v in levels], widths=0.6)
                ax.set_xticks(range(1, len(levels) + 1), [str(v) for v in levels])
            else:
                ax.scatter(data[name], data[eta], s=14, alpha=0.7)
                ax.plot(*lowess(data[name], data[eta]), color="C3", lw=1.5)
            ax.axhline(0.0, color="k", lw=0.8)
            ax.set_xlabel(f"{name} ({covariates[name]})")
            ax.set_ylabel(f"{eta} (-, unconstrained scale)")
    return fig


def _draw_points(ax, points: pd.DataFrame) -> None:
    """Observations under a VPC's bands: dots, censored ones as open triangles at their limit."""
    censored = (
        points["censored"].to_numpy(bool) if "censored" in points else np.zeros(len(points), bool)
    )
    style = dict(color="0.5", alpha=0.5, zorder=0.5)
    ax.plot(
        points["time"][~censored],
        points["value"][~censored],
        "o",
        ms=2.5,
        label="observations",
        **style,
    )
    if censored.any():
        ax.plot(
            points["time"][censored],
            points["value"][censored],
            "v",
            mfc="none",
            ms=4,
            label="censored, at limit",
            **style,
        )
