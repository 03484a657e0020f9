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

from .endpoints import band_table

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
    "S1": "first-order Sobol index (-)",
    "ST": "total-order Sobol index (-)",
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


def _draw_bands(ax, data: pd.DataFrame, label: tuple[str, bool], arms=None) -> None:
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
    ax.set_xlabel("time after CAR-T infusion (d)")
    ax.set_ylabel(ylabel)
    if len(arms) > 1 or arms[0] != "all":
        ax.legend(fontsize=8)


def trajectories(
    bands: pd.DataFrame, observable: str, arms: Sequence[str] | None = None, title: str = ""
):
    """Median and 5-95 % band of one observable per arm (``trajectories.csv`` layout)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5), constrained_layout=True)
    ylabel, log = _label(observable)
    _draw_bands(ax, bands[bands.observable == observable], (ylabel, log), arms)
    ax.set_title(title or f"{ylabel.split(' (')[0]}: median and 5-95 % band")
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
        model: the model, to label states with their units.
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
        _draw_bands(ax, table[table.observable == name], label, None)
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
    ax.set_xlabel("time (d)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{obs.ID.nunique()} subjects, {len(obs)} observations")
    return fig


def tornado(table: pd.DataFrame, column: str | None = None, top: int | None = None):
    """Tornado plot of sensitivities: one panel per endpoint, parameters sorted by magnitude.

    Args:
        table: from :func:`cartpk.sensitivity.local_sensitivity`, :func:`~cartpk.sensitivity.
            morris` or :func:`~cartpk.sensitivity.sobol` (columns ``endpoint``, ``parameter``).
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


def endpoint_distributions(endpoints: pd.DataFrame, names: Sequence[str], by: str = "arm"):
    """Box plots (5-95 % whiskers) of endpoints per arm, one panel per endpoint."""
    plt = _pyplot()
    names = [n for n in names if n in endpoints]
    groups = list(dict.fromkeys(endpoints[by]))
    cols = min(3, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(4.2 * cols, 0.9 + 0.32 * len(groups) * rows + 0.6 * rows),
        constrained_layout=True,
        squeeze=False,
    )
    for ax, name in zip(axes.flat, names, strict=False):
        data = [endpoints.loc[endpoints[by] == g, name].to_numpy(dtype=float) for g in groups]
        data = [d[np.isfinite(d)] for d in data]
        label, log = _label(name)
        if any(len(d) for d in data):
            ax.boxplot(data, orientation="horizontal", whis=(5, 95), showfliers=False, widths=0.6)
            if log and all((d > 0).all() for d in data):
                ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_yticks(range(1, len(groups) + 1), groups if ax in axes[:, 0] else [""] * len(groups))
        ax.tick_params(axis="y", labelsize=8)
        ax.set_ylim(len(groups) + 0.5, 0.5)
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    return fig


def response_bars(summary: pd.DataFrame):
    """Objective and complete response rates per arm (``summary.csv`` rows of all patients)."""
    plt = _pyplot()
    rows = summary[summary.subgroup == "all"]
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.35 * len(rows)), constrained_layout=True)
    y = np.arange(len(rows))
    ax.barh(y, rows["objective_response_percent"], color="C0", label="CR + PR")
    ax.barh(y, rows["complete_response_percent"], color="C2", label="CR")
    ax.set_yticks(y, rows["arm"], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("patients with response (%), RECIST-like best overall response")
    ax.legend(fontsize=8)
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


def goodness_of_fit(diagnostics: pd.DataFrame, log_scale: dict, title: str, time_unit: str = "d"):
    """Goodness-of-fit panels from ``diagnostics.csv``: DV vs PRED and IPRED, CWRES vs time and
    vs PRED (``log_scale``: DVID -> whether that observable is drawn on log axes)."""
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
        ax.set_xlabel(f"{column} (observation unit)")
        ax.set_ylabel("DV (observation unit)")
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
):
    """Percentile VPC from ``vpc.csv`` (5/50/95 % with simulated 95 % bands) and the fraction
    below the limit; ``observables``: DVID -> (name, log axis)."""
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
