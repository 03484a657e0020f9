"""Stein 2019 multiphasic model fitted to ZUMA-1 axicabtagene ciloleucel medians and IQRs.

Data: CAR+ T cells/uL in blood, median (IQR) at days 7, 14, 28 and 90 after 2e6 CAR+ T cells/kg
in the ZUMA-1 patients treated at Moffitt (Kimmel GJ et al. Proc R Soc B 2021;288:20210229,
doi:10.1098/rspb.2021.0229; verified; ``data/zuma1_axicel_medians.csv``):

    day 7   27.5 (16.5-57.5), n = 19        day 28  2.1 (0.6-6.1), n = 22
    day 14   9.1 (3.8-31.1),  n = 23        day 90  0.1 (0.01-0.4), n = 22

Model: ``cartpk.Multiphasic`` (Stein AM et al. CPT Pharmacometrics Syst Pharmacol 2019;8:285,
doi:10.1002/psp4.12388). The model is linear in ``cmax`` (E(0) = cmax/foldx and the equations are
homogeneous), so its single observable (named ``blood_copies_per_ug``) is in whatever unit cmax
is given in: here cmax, and every level below, is in CAR+ cells/uL.

Fixed, and why:
- ``tmax`` = 7 d for every subject (no variability). The data have no sample before day 7 and
  day 7 has the highest median (Kimmel 2021, verified); the Yescarta label puts the peak within
  days 7-14 (USPI section 12.3; recalled, not verified). A later tmax puts day 7 in the expansion
  phase, which the data cannot describe: with Stein's tmax of 9.3 d such a fit drove alpha to
  3e5 1/d. With tmax = 7 d, ``cmax`` is the level at day 7 (the peak if it is at day 7, otherwise
  a lower bound of it).
- ``foldx`` = 3,900 (Stein 2019). It shapes only the curve before tmax, where there are no data;
  at day 7 it enters only through the rounding of the smooth switch (the level at tmax is 1.9 %
  below cmax; docs/model.md).
- omega of ``beta`` = 0.93 (Stein 2019, omega^2 = 0.86; via nlmixr2lib). The day-90 IQR is the
  only information on the variabilities of beta and fb and does not separate them: with both
  estimated BFGS did not converge in 300 steps (a flat valley, same loss); with omega_fb fixed at
  Stein's 0.89 instead, the loss was 0.056 instead of 0.034 (100 subjects).

Estimated (7 parameters, 12 targets): typical ``cmax``, ``alpha``, ``beta``, ``fb`` and the
log-scale SDs (omegas) of ``cmax``, ``alpha`` and ``fb``, starting from Stein 2019's values
(cmax from the day-7 median).

Limitation: the 40-fold day-90 IQR (0.01-0.4 cells/uL; the lower quartile is probably near the
flow assay's detection limit, which Kimmel 2021 does not state) needs a very wide fb
distribution; with a log-normal fb about 1 % of virtual subjects then have fb > 1, whose level
rises again after the peak (``fb_above_1`` in the manifest).

Method: ``cartpk.estimation.summary_stats`` (virtual trial with fixed draws, its medians and
quartiles matched on the log scale by BFGS, weights n).

Tolerance of the match: the sampling SE of a reported log quantile, SE(ln q_p) =
s sqrt(p (1 - p) / n) / phi(z_p), with s the log-scale SD implied by that day's IQR,
s = ln(q75/q25)/1.349 (a normal approximation). A fitted statistic within 2 SE of the reported one
is as close as the data can tell.

Run: ``python fits/zuma1_axicel/fit.py [--virtual N] [--out DIR]`` (committed: 200).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

import cartpk
import cartpk.datasets
from cartpk.commands import ResultsFolder
from cartpk.estimation import Observation, SummaryStatistics
from cartpk.estimation import fit as fit_model
from cartpk.estimation.summary_stats import Target, simulate_summaries

HERE = Path(__file__).resolve().parent
DATASET = "zuma1_axicel_medians"
SEED = 0
#: Stein 2019 typical values (doi:10.1002/psp4.12388; via nlmixr2lib); the starting omegas are
#: Stein's too, omega^2 cmax 0.65, alpha 0.91, beta 0.86, fb 0.8 (stein_omegas())
STEIN = {"tmax": 9.3, "foldx": 3900.0, "alpha": 0.16, "beta": 0.0032, "fb": 0.0079}
#: d; the earliest sample day, with the highest median (Kimmel 2021, doi:10.1098/rspb.2021.0229)
TMAX = 7.0
ESTIMATE = ["cmax", "alpha", "beta", "fb"]
ESTIMATE_OMEGAS = ["cmax", "alpha", "fb"]


def stein_omegas() -> dict[str, float]:
    table = cartpk.load_dataset("stein2019_tisagenlecleucel_parameters")
    rows = table[table.value_kind == "typical_value"].dropna(subset=["iiv_omega2"])
    return {r.parameter: float(np.sqrt(r.iiv_omega2)) for r in rows.itertuples()}


def targets() -> list[Target]:
    """Median, 25th and 75th percentile at each day (cells/uL), weighted by n."""
    out = []
    for r in cartpk.load_dataset(DATASET, verified_only=True).itertuples():
        day, n = float(r.day), int(r.n)
        out += [
            Target("level", "median", float(r.median), day=day, n=n),
            Target("level", "quantile", float(r.iqr_low), day=day, q=0.25, n=n),
            Target("level", "quantile", float(r.iqr_high), day=day, q=0.75, n=n),
        ]
    return out


def sampling_se(targets_: list[Target]) -> np.ndarray:
    """SE of each reported log quantile (normal approximation, s from that day's IQR)."""
    data = cartpk.load_dataset(DATASET, verified_only=True).set_index("day")
    se = []
    for t in targets_:
        row = data.loc[int(t.day)]
        s = np.log(row.iqr_high / row.iqr_low) / (2 * norm.ppf(0.75))
        q = 0.5 if t.summary == "median" else t.q
        se.append(s * np.sqrt(q * (1 - q) / t.n) / norm.pdf(norm.ppf(q)))
    return np.asarray(se)


def start_values() -> dict[str, float]:
    first = cartpk.load_dataset(DATASET, verified_only=True).sort_values("day").iloc[0]
    return {**STEIN, "tmax": TMAX, "cmax": float(first["median"])}


def run(n_virtual: int = 200, out: Path = HERE / "results", max_steps: int = 300):
    """Fit, write targets.csv, estimates.csv, targets.png and manifest.json into ``out``."""
    started = time.perf_counter()
    cartpk.enable_x64()
    model = cartpk.Multiphasic()
    omegas = {k: v for k, v in stein_omegas().items() if k in {"cmax", "alpha", "fb", "beta"}}
    goals = targets()
    fit = fit_model(
        model,
        goals,
        SummaryStatistics(
            estimate_omegas=tuple(ESTIMATE_OMEGAS),
            n_virtual=n_virtual,
            seed=SEED,
            max_iter=max_steps,
        ),
        # in cells/uL here: the unit of cmax (see the module docstring)
        observations={1: Observation("blood_copies_per_ug")},
        initial=start_values(),
        fixed=[n for n in model.parameter_set.names if n not in ESTIMATE],
        variability=omegas,
    )
    table = fit.table.copy()
    table["se_log"] = sampling_se(goals)
    table["z"] = np.log(table.ratio) / table.se_log
    estimates = pd.DataFrame(
        {
            "parameter": [*fit.estimates, "tmax", "foldx", "omega_beta"],
            "estimate": [*fit.estimates.values(), TMAX, STEIN["foldx"], omegas["beta"]],
            "status": ["estimated"] * len(fit.estimates) + ["fixed"] * 3,
            # Stein's cmax (24,000 copies/ug) is in another unit: not comparable
            "stein2019": [
                *(
                    omegas[k.removeprefix("omega_")] if k.startswith("omega_") else STEIN.get(k)
                    for k in fit.estimates
                ),
                STEIN["tmax"],
                STEIN["foldx"],
                omegas["beta"],
            ],
            "unit": [
                {"cmax": "cells/uL", "alpha": "1/d", "beta": "1/d"}.get(k, "-")
                for k in fit.estimates
            ]
            + ["d", "-", "-"],
        }
    )
    # share of the log-normal population with fb >= 1 (a level that rises after the peak)
    fb_above_1 = float(norm.sf(np.log(1 / fit.estimates["fb"]) / fit.estimates["omega_fb"]))
    with ResultsFolder(out, command="python fits/zuma1_axicel/fit.py", force=True) as results:
        results.read_input(DATASET, cartpk.datasets.data_dir() / f"{DATASET}.csv")
        results.write(
            {
                "targets.csv": lambda path: table.to_csv(path, index=False),
                "estimates.csv": lambda path: estimates.to_csv(path, index=False),
                "targets.png": lambda path: _plot(model, fit, omegas, n_virtual, path),
            },
            options={
                "n_virtual": n_virtual,
                "seed": SEED,
                "max_steps": max_steps,
                "converged": fit.converged,
                "loss": fit.loss,
                "estimated": ESTIMATE + [f"omega_{k}" for k in ESTIMATE_OMEGAS],
                "fixed": {"tmax": TMAX, "foldx": STEIN["foldx"], "omega_beta": omegas["beta"]},
                "fb_above_1": fb_above_1,
            },
        )
    print(f"converged={fit.converged}, loss={fit.loss:.4g}, fb>1: {fb_above_1:.2g}")
    print(f"{n_virtual} virtual subjects; {time.perf_counter() - started:.0f} s")
    print(estimates.to_string(index=False))
    print(table.to_string(index=False))
    return fit, table, estimates


def fitted_params(estimates: pd.DataFrame) -> tuple[dict, dict]:
    """Typical values and omegas from an estimates table (as written by :func:`run`)."""
    values = dict(zip(estimates.parameter, estimates.estimate, strict=True))
    omegas = {k.removeprefix("omega_"): v for k, v in values.items() if k.startswith("omega_")}
    typical = {k: v for k, v in values.items() if not k.startswith("omega_")}
    return typical, omegas


def _plot(model, fit, omegas, n_virtual, path: Path) -> None:
    import matplotlib.pyplot as plt

    typical, _ = fitted_params(
        pd.DataFrame({"parameter": list(fit.estimates), "estimate": list(fit.estimates.values())})
    )
    typical.update(tmax=TMAX, foldx=STEIN["foldx"])
    varied = dict(omegas)
    varied.update({k.removeprefix("omega_"): v for k, v in fit.estimates.items() if "omega" in k})
    days = np.arange(1.0, 91.0)
    band = [
        Target("level", s, 1.0, day=float(d), q=q)
        for d in days
        for s, q in (("median", 0.5), ("quantile", 0.25), ("quantile", 0.75))
    ]
    sim = simulate_summaries(
        model, band, varied, params=typical, n_virtual=n_virtual, seed=SEED
    ).reshape(len(days), 3)
    data = cartpk.load_dataset(DATASET, verified_only=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    left.axvspan(0, TMAX, color="grey", alpha=0.12, label="no data (tmax, foldx fixed)")
    left.fill_between(days, sim[:, 1], sim[:, 2], alpha=0.3, label="virtual trial IQR")
    left.plot(days, sim[:, 0], label="virtual trial median")
    left.errorbar(
        data.day,
        data["median"],
        yerr=[data["median"] - data.iqr_low, data.iqr_high - data["median"]],
        fmt="o",
        color="k",
        capsize=3,
        label="ZUMA-1 median (IQR), Kimmel 2021",
    )
    left.set(yscale="log", xlabel="day after infusion", ylabel="CAR+ T cells/uL")
    left.legend(fontsize=8)
    table = fit.table
    right.scatter(table.reported, table.fitted, zorder=3)
    for row in table.itertuples():
        right.annotate(row.target.removeprefix("level "), (row.reported, row.fitted), fontsize=6)
    lims = [table[["reported", "fitted"]].min().min() / 2, table.reported.max() * 2]
    right.plot(lims, lims, color="grey", lw=0.8)
    right.set(xscale="log", yscale="log", xlabel="reported (cells/uL)", ylabel="fitted (cells/uL)")
    right.set_title("ZUMA-1 axi-cel: fitted vs reported", fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--virtual", type=int, default=200, help="virtual subjects")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    args = parser.parse_args(argv)
    run(args.virtual, args.out)


if __name__ == "__main__":
    main()
