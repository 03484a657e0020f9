"""Writing a fit to a results directory: tables, plots and a manifest.

Files (``cartpk fit`` writes all of them):

- ``estimates.csv``: ``parameter, estimate, se, rse_percent, ci_low, ci_high``;
- ``individual.csv``: one row per ID (individual parameters, etas or per-subject estimates);
- ``diagnostics.csv``: one row per observation (population fits: PRED, IPRED, IWRES, CWRES);
- ``gof.png`` and ``vpc.png`` (population fits), ``profile.csv``/``profile.png``,
  ``bootstrap.csv`` when requested;
- ``manifest.json``: versions of cartpk and its dependencies, the input's SHA-256, the options
  and a summary of the result.

Everything is written into a temporary directory next to the target and moved into place at the
end, so an interrupted run never leaves a half-written directory.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import platform
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import OutputError
from .individual import IndividualResult
from .results import PopulationResult

DEPENDENCIES = (
    "jax",
    "jaxlib",
    "diffrax",
    "equinox",
    "optimistix",
    "optax",
    "lineax",
    "numpy",
    "pandas",
    "matplotlib",
)


def check_output_dir(out: str | Path, force: bool) -> Path:
    """Refuse a non-empty directory (or a file) unless ``force``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not force:
        raise OutputError(f"{out} already holds results; use --force to overwrite them")
    return out


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    """Versions of Python, cartpk and its main dependencies."""
    from .. import __version__

    out = {"cartpk": __version__, "python": platform.python_version()}
    for name in DEPENDENCIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_results(
    result: PopulationResult | IndividualResult,
    out: str | Path,
    *,
    force: bool = False,
    data_path: str | Path | None = None,
    data_label: str | None = None,
    options: dict | None = None,
    vpc_replicates: int = 200,
    seed: int = 0,
    profiles: list[pd.DataFrame] | None = None,
    bootstrap: pd.DataFrame | None = None,
    progress=None,
) -> Path:
    """Write ``result`` into ``out`` (see the module docstring); returns ``out``.

    ``data_path`` is hashed into the manifest, under the name ``data_label`` (default: the path).
    """
    out = check_output_dir(out, force)
    say = progress or (lambda line: None)
    files: dict[str, pd.DataFrame | None] = {
        "estimates.csv": result.estimates,
        "individual.csv": result.individual,
    }
    summary: dict = {
        "strategy": type(result.strategy).__name__,
        "converged": bool(result.converged),
        "message": result.message,
        "ofv": _number(result.ofv),
        "seconds": round(float(result.seconds), 2),
    }
    vpc = None
    if isinstance(result, PopulationResult):
        files["diagnostics.csv"] = result.diagnostics()
        if vpc_replicates > 0:
            say(f"VPC: simulating {vpc_replicates} replicates of the study")
            vpc = result.vpc(replicates=vpc_replicates, seed=seed)
            files["vpc.csv"] = vpc
        summary.update(
            method=result.strategy.method,
            ofv_nonmem=_number(result.ofv_nonmem),
            iterations=result.iterations,
            evaluations=result.evaluations,
            covariance=result.covariance.message,
            condition_number=_number(result.covariance.condition_number),
            se=result.strategy.se,
            shrinkage={k: _number(v) for k, v in result.shrinkage.items()},
            ebe_not_converged=[
                _plain(result.problem.ids[i]) for i in np.flatnonzero(~result.ebe_converged)
            ],
        )
    if profiles:
        table = pd.concat(profiles, ignore_index=True)
        files["profile.csv"] = table
        summary["profile_ci"] = {p["parameter"].iloc[0]: list(p.attrs["ci"]) for p in profiles}
    if bootstrap is not None:
        files["bootstrap.csv"] = bootstrap
        summary["bootstrap_ci"] = {
            k: [_number(a), _number(b)] for k, (a, b) in bootstrap.attrs["ci"].items()
        }
    manifest = {
        "versions": versions(),
        "input": None
        if data_path is None
        else {"path": data_label or str(data_path), "sha256": sha256(data_path)},
        "options": options or {},
        "result": summary,
        "files": sorted([*files, "manifest.json"]),
    }
    parent = out.parent if out.parent.exists() else None
    with tempfile.TemporaryDirectory(dir=parent, prefix=".cartpk-fit-") as tmp:
        staging = Path(tmp) / "results"
        staging.mkdir()
        for name, frame in files.items():
            frame.to_csv(staging / name, index=False)
        if isinstance(result, PopulationResult):
            plots = plot_gof(result, staging / "gof.png")
            if vpc is not None:
                plots += plot_vpc(result, vpc, staging / "vpc.png")
            manifest["files"] = sorted(manifest["files"] + plots)
        if profiles:
            plot_profiles(profiles, staging / "profile.png")
            manifest["files"] = sorted(manifest["files"] + ["profile.png"])
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, default=_plain))
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(out))
    return out


def _number(value):
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# ------------------------------------------------------------------------------------------------
# Plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_gof(result: PopulationResult, path: Path) -> list[str]:
    """Goodness-of-fit panels: DV vs PRED and IPRED, CWRES vs time and vs PRED."""
    plt = _pyplot()
    table = result.diagnostics()
    observed = table[table["CENS"] == 0]
    log_scale = {
        dvid: obs.error.log_scale
        for dvid, obs in zip(result.layout.dvids, result.layout.observations, strict=True)
    }
    fig, axes = plt.subplots(2, 2, figsize=(10, 8.5), constrained_layout=True)
    for dvid, group in observed.groupby("DVID"):
        label = f"DVID {dvid}" if len(log_scale) > 1 else None
        for ax, column in ((axes[0, 0], "PRED"), (axes[0, 1], "IPRED")):
            ax.scatter(group[column], group["DV"], s=10, alpha=0.6, label=label)
            if log_scale[dvid]:
                ax.set_xscale("log")
                ax.set_yscale("log")
        axes[1, 0].scatter(group["TIME"], group["CWRES"], s=10, alpha=0.6, label=label)
        axes[1, 1].scatter(group["PRED"], group["CWRES"], s=10, alpha=0.6, label=label)
        if log_scale[dvid]:
            axes[1, 1].set_xscale("log")
    for ax, column in ((axes[0, 0], "PRED"), (axes[0, 1], "IPRED")):
        low = np.nanmin(observed[[column, "DV"]].to_numpy())
        high = np.nanmax(observed[[column, "DV"]].to_numpy())
        ax.plot([low, high], [low, high], color="k", lw=1)
        ax.set_xlabel(column)
        ax.set_ylabel("DV")
        ax.set_title(f"observations vs {column}")
    for ax, xlabel in ((axes[1, 0], "time (d)"), (axes[1, 1], "PRED")):
        ax.axhline(0, color="k", lw=1)
        for y in (-1.96, 1.96):
            ax.axhline(y, color="k", lw=0.5, ls="--")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("CWRES")
        ax.set_title(f"CWRES vs {xlabel.split(' ')[0]}")
    if len(log_scale) > 1:
        axes[0, 0].legend()
    n_cens = int((table["CENS"] != 0).sum())
    fig.suptitle(
        f"{type(result.layout.model).__name__}, {result.strategy.method.upper()}: "
        f"{len(observed)} observations shown ({n_cens} censored not shown)"
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path.name]


def plot_vpc(result: PopulationResult, vpc: pd.DataFrame, path: Path) -> list[str]:
    """Percentile VPC (5/50/95 %) with simulated 95 % bands, and the fraction below the limit."""
    plt = _pyplot()
    dvids = list(result.layout.dvids)
    fig, axes = plt.subplots(
        2,
        len(dvids),
        figsize=(7 * len(dvids), 8),
        squeeze=False,
        constrained_layout=True,
        gridspec_kw={"height_ratios": [3, 1]},
    )
    for c, dvid in enumerate(dvids):
        obs = result.layout.observations[c]
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
        limits = result.problem.data.observations()["LIMIT"].dropna()
        if len(limits):
            top.axhline(float(limits.median()), color="k", lw=0.8, ls=":", label="limit (median)")
        if obs.error.log_scale:
            top.set_yscale("log")
        top.set_xlabel("time (d)")
        top.set_ylabel(obs.observable)
        top.set_title(f"VPC, DVID {dvid}: observed percentiles (lines), simulated 95 % bands")
        top.legend(fontsize=8)
        blq = table[table["percentile"] == "blq"].sort_values("time")
        bottom.fill_between(blq["time"], blq["sim_low"], blq["sim_high"], color="grey", alpha=0.3)
        bottom.plot(blq["time"], blq["observed"], color="k", marker="o", ms=3)
        bottom.set_ylim(-0.02, 1.02)
        bottom.set_xlabel("time (d)")
        bottom.set_ylabel("fraction < limit")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path.name]


def plot_profiles(profiles: list[pd.DataFrame], path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(profiles), figsize=(4.5 * len(profiles), 3.8), squeeze=False, constrained_layout=True
    )
    from .uncertainty import CHI2_95

    for ax, table in zip(axes[0], profiles, strict=True):
        ax.plot(table["value"], table["delta_ofv"], marker="o")
        ax.axhline(CHI2_95, color="k", ls="--", lw=0.8)
        ax.set_xlabel(table["parameter"].iloc[0])
        ax.set_ylabel("OFV - min OFV")
    fig.savefig(path, dpi=110)
    plt.close(fig)
