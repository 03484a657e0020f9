"""Plots of trajectories, endpoint distributions and parameter grids (matplotlib).

Every function draws into a new figure and returns it (``save`` writes a PNG and closes it), so
the same calls serve notebooks and the command line. Axes carry units.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

#: observable or endpoint -> axis label with its unit, and whether a log axis suits it.
LABELS: dict[str, tuple[str, bool]] = {
    "blood_cells_per_ul": ("circulating CAR-T (cells/µL)", True),
    "blood_copies_per_ug": ("circulating CAR-T (copies/µg gDNA)", True),
    "tumour_car_t": ("intratumoural CAR-T (cells)", True),
    "tumour_burden": ("tumour burden (cells)", True),
    "exhausted_fraction": ("exhausted share of tumour CAR-T (-)", False),
    "total_car_t": ("total CAR-T (cells)", True),
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


def _pyplot():
    import matplotlib.pyplot as plt  # falls back to the Agg backend without a display

    return plt


def _label(name: str) -> tuple[str, bool]:
    return LABELS.get(name, (name, False))


def trajectories(
    bands: pd.DataFrame, observable: str, arms: Sequence[str] | None = None, title: str = ""
):
    """Median and 5-95 % band of one observable per arm (``trajectories.csv`` layout)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5), constrained_layout=True)
    data = bands[bands.observable == observable]
    for arm in arms or list(dict.fromkeys(data.arm)):
        group = data[data.arm == arm]
        (line,) = ax.plot(group.time_d, group["median"], label=arm)
        ax.fill_between(group.time_d, group.p05, group.p95, color=line.get_color(), alpha=0.12)
    ylabel, log = _label(observable)
    if log and (data["p95"] > 0).any():
        ax.set_yscale("log")
    ax.axvline(0.0, color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("time after CAR-T infusion (d)")
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"{ylabel.split(' (')[0]}: median and 5-95 % band")
    ax.legend(fontsize=8)
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
