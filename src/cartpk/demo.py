"""The main job, ``cartpk demo``: a what-if comparison on the default solid-tumour model.

A small virtual population (log-normal between-patient variability on expansion, trafficking and
barrier parameters) receives 1e8 CAR-T IV on day 0, alone or with one barrier-breaking therapy per
arm. All arms share one compiled model (every therapy present, switched on by its doses or, for the
armoured CAR-T product, by its parameters), simulated as one batch.

Writes ``endpoints.csv`` (one row per patient x arm), ``summary.csv`` (median and 5-95 % range per
arm), ``trajectories.csv`` (median and 5-95 % band per arm and day) and two PNG plots.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import OutputError
from .models import BloodStromaTumour
from .regimen import Regimen
from .simulate import simulate_population
from .therapies import (
    AntiVEGF,
    CCL19IL7CarT,
    Checkpoint,
    Hyaluronidase,
    Radiotherapy,
    SuppressionTargeting,
    combine,
)

TIMES = np.arange(0.0, 181.0)  # d after infusion
BODY_WEIGHT = 70.0  # kg, for mg/kg doses
CAR_T = Regimen.single(1e8, "blood_effector")  # cells IV on day 0

#: the armoured-CAR-T module is a product property: neutral unless its arm switches it on
PLAIN_PRODUCT = {"c19_homing": 1.0, "c19_expansion": 1.0, "c19_persistence": 1.0}

#: arm -> (extra regimen, parameter overrides)
ARMS: dict[str, tuple[Regimen, dict]] = {
    "CAR-T alone": (Regimen(), {}),
    "+ anti-VEGF 5 mg/kg d-7, d7": (
        Regimen.schedule(5 * BODY_WEIGHT, "bev_central", start=-7.0, interval=14.0, count=2),
        {},
    ),
    "+ hyaluronidase 3 ug/kg 2x/wk": (
        Regimen.schedule(3 * BODY_WEIGHT, "hya_central", start=-7.0, interval=3.5, count=10),
        {},
    ),
    "CCL19/IL-7 armoured CAR-T": (Regimen(), {k: None for k in PLAIN_PRODUCT}),
    "+ anti-PD-1 200 mg q3w": (
        Regimen.schedule(200.0, "pd1_central", start=0.0, interval=21.0, count=4),
        {},
    ),
    "+ anti-CD73 10 mg/kg q2w": (
        Regimen.schedule(10 * BODY_WEIGHT, "sup_central", start=-7.0, interval=14.0, count=4),
        {},
    ),
    "+ radiotherapy 5 x 2 Gy d-10..-6": (
        Regimen.schedule(2.0, "rt_dose", start=-10.0, interval=1.0, count=5),
        {},
    ),
}

#: parameter -> coefficient of variation of its log-normal between-patient variability
VARIABILITY = {
    "rho": 0.3,
    "rho_homeostatic": 0.2,
    "delta_effector": 0.2,
    "k_extravasation": 0.5,
    "k_infiltration": 0.5,
    "ecm_density0": 0.4,
    "tumour_cells0": 0.5,
}


def build_model():
    """The solid-tumour model with every therapy the demo's arms use."""
    return combine(
        BloodStromaTumour("solid"),
        AntiVEGF(),
        Hyaluronidase(),
        CCL19IL7CarT(),
        Checkpoint(),
        SuppressionTargeting(),
        Radiotherapy(),
    )


def virtual_population(model, n: int, seed: int) -> dict:
    """``n`` patients: log-normal draws around the defaults (reproducible from ``seed``)."""
    rng = np.random.default_rng(seed)
    defaults = model.default_params()
    population = {k: np.full(n, float(v)) for k, v in defaults.items()}
    for name, cv in VARIABILITY.items():
        omega = np.sqrt(np.log1p(cv**2))
        population[name] = population[name] * np.exp(omega * rng.standard_normal(n))
    return population


def endpoints(solution, times) -> pd.DataFrame:
    """Per-patient endpoints from a batched solution."""
    blood = np.asarray(solution.observables["blood_cells_per_ul"])
    tumour_cart = np.asarray(solution.observables["tumour_car_t"])
    burden = np.asarray(solution.observables["tumour_burden"])
    exhausted = np.asarray(solution.observables["exhausted_fraction"])
    d28, d60, d90 = (np.searchsorted(times, d) for d in (28, 60, 90))
    return pd.DataFrame(
        {
            "cmax_cells_per_ul": blood.max(axis=1),
            "tmax_d": times[blood.argmax(axis=1)],
            "auc0_28_cells_per_ul_d": np.trapezoid(blood[:, : d28 + 1], times[: d28 + 1]),
            "tumour_car_t_auc0_60_cell_d": np.trapezoid(
                tumour_cart[:, : d60 + 1], times[: d60 + 1]
            ),
            "exhausted_fraction_d28": exhausted[:, d28],
            "tumour_change_d90_percent": 100 * (burden[:, d90] / burden[:, 0] - 1),
            "status": np.asarray(solution.status),
        }
    )


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Median and 5-95 % range of every endpoint per arm."""
    columns = [c for c in table.columns if c not in ("arm", "patient", "status")]
    rows = []
    for arm, group in table.groupby("arm", sort=False):
        row = {"arm": arm, "patients": len(group), "failed": int((group["status"] != 0).sum())}
        for c in columns:
            q05, q50, q95 = np.nanpercentile(group[c], [5, 50, 95])
            row.update({f"{c}_median": q50, f"{c}_p05": q05, f"{c}_p95": q95})
        rows.append(row)
    return pd.DataFrame(rows)


def run_demo(out: str | Path, *, n_patients: int = 32, seed: int = 0, force: bool = False):
    """Run the demo comparison and write its results into ``out``."""
    out = Path(out)
    if n_patients < 1 or n_patients > 100_000:
        raise OutputError(f"--patients must be between 1 and 100000, got {n_patients}")
    if out.exists() and any(out.iterdir()) and not force:
        raise OutputError(f"{out} already holds results; use --force to overwrite them")
    started = time.perf_counter()
    model = build_model()
    population = virtual_population(model, n_patients, seed)
    arms = list(ARMS)
    params = {k: np.tile(v, len(arms)) for k, v in population.items()}
    regimens = []
    for i, arm in enumerate(arms):
        extra, overrides = ARMS[arm]
        regimens += [CAR_T + extra] * n_patients
        block = slice(i * n_patients, (i + 1) * n_patients)
        for name in PLAIN_PRODUCT:  # plain product unless the arm says otherwise
            default = float(model.default_params()[name])
            params[name][block] = default if name in overrides else PLAIN_PRODUCT[name]

    total = len(regimens)
    print(
        f"cartpk demo: {len(arms)} arms x {n_patients} virtual patients, solid tumour, "
        f"{TIMES[-1]:.0f} days (first run compiles the model: about a minute)"
    )

    def progress(done, total):
        print(f"  simulated {done}/{total} patient-arms", flush=True)

    solution = simulate_population(
        model, params, regimens, TIMES, chunk_size=max(n_patients, 64), progress=progress
    )
    table = endpoints(solution, TIMES)
    table.insert(0, "patient", np.tile(np.arange(n_patients), len(arms)))
    table.insert(0, "arm", np.repeat(arms, n_patients))
    summary = summarise(table)
    trajectories = _bands(solution, arms, n_patients)

    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        staging = Path(tmp) / "results"
        staging.mkdir()
        table.to_csv(staging / "endpoints.csv", index=False)
        summary.to_csv(staging / "summary.csv", index=False)
        trajectories.to_csv(staging / "trajectories.csv", index=False)
        _plot(trajectories, staging)
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(out))

    print()
    print(_format(summary))
    print()
    print(
        f"{total} simulations in {time.perf_counter() - started:.1f} s; "
        f"results in {out}/ (endpoints.csv, summary.csv, trajectories.csv, *.png)"
    )
    return summary


def _bands(solution, arms, n) -> pd.DataFrame:
    frames = []
    for name, label in (("blood_cells_per_ul", "blood"), ("tumour_car_t", "tumour")):
        values = np.asarray(solution.observables[name]).reshape(len(arms), n, -1)
        q = np.percentile(values, [5, 50, 95], axis=1)
        for i, arm in enumerate(arms):
            frames.append(
                pd.DataFrame(
                    {
                        "arm": arm,
                        "observable": label,
                        "time_d": TIMES,
                        "p05": q[0, i],
                        "median": q[1, i],
                        "p95": q[2, i],
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def _plot(trajectories: pd.DataFrame, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {
        "blood": ("circulating CAR-T (cells/µL blood)", "circulating_car_t.png"),
        "tumour": ("intratumoural CAR-T (cells)", "intratumoural_car_t.png"),
    }
    for observable, (ylabel, filename) in panels.items():
        fig, ax = plt.subplots(figsize=(8, 5), constrained_layout=True)
        for arm, group in trajectories[trajectories.observable == observable].groupby(
            "arm", sort=False
        ):
            (line,) = ax.plot(group.time_d, group["median"], label=arm)
            ax.fill_between(group.time_d, group.p05, group.p95, color=line.get_color(), alpha=0.12)
        ax.set_yscale("log")
        ax.set_xlabel("time after CAR-T infusion (d)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"Solid tumour: {ylabel.split(' (')[0]}, median and 5-95 % band")
        ax.legend(fontsize=8)
        fig.savefig(folder / filename, dpi=120)
        plt.close(fig)


def _format(summary: pd.DataFrame) -> str:
    columns = {
        "cmax_cells_per_ul": ("Cmax blood", "{:.3g}"),
        "tmax_d": ("Tmax d", "{:.0f}"),
        "auc0_28_cells_per_ul_d": ("AUC0-28", "{:.3g}"),
        "tumour_car_t_auc0_60_cell_d": ("tumour CAR-T AUC0-60", "{:.3g}"),
        "exhausted_fraction_d28": ("exhausted d28", "{:.2f}"),
        "tumour_change_d90_percent": ("tumour d90 %", "{:+.0f}"),
    }
    rows = []
    for _, r in summary.iterrows():
        rows.append([r["arm"]] + [fmt.format(r[f"{c}_median"]) for c, (_, fmt) in columns.items()])
    header = ["arm (median of patients)"] + [label for label, _ in columns.values()]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)) for row in rows]
    rule = "  ".join("-" * w for w in widths)
    title = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    units = "Cmax: cells/µL; AUC0-28: cells/µL·d; tumour AUC: cells·d"
    return "\n".join([title, rule, *lines, units])
