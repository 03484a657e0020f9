"""Fit of the Stein 2019 multiphasic model to published summary statistics.

``tisagenlecleucel_responders``: ELIANA responders (n = 62), geometric-mean Cmax and AUC0-28 and
median Tmax (data/tisagenlecleucel_ball_response_ck.csv, via the curated table); typical cmax,
tmax and alpha fitted, variabilities fixed at Stein 2019's.

Run: ``python fits/summary_statistics.py [--virtual N] [--out DIR]`` (default 500 virtual
subjects, results into fits/<name>/). Tests re-run it with ``--virtual 40``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

import cartpk
from cartpk.commands import ResultsFolder
from cartpk.estimation import SummaryStatistics, fit
from cartpk.estimation.summary_stats import Target

HERE = Path(__file__).parent


def stein_omegas() -> dict[str, float]:
    """SD of the log of each parameter from Stein 2019's omega^2 (data/ table)."""
    table = cartpk.load_dataset("stein2019_tisagenlecleucel_parameters")
    rows = table[table.value_kind == "typical_value"].dropna(subset=["iiv_omega2"])
    return {r.parameter: float(np.sqrt(r.iiv_omega2)) for r in rows.itertuples()}


def responders_targets() -> list[Target]:
    table = cartpk.load_dataset("tisagenlecleucel_ball_response_ck")
    rows = table[table.group == "responders"].set_index("metric")
    n = int(rows.loc["cmax", "n"])
    return [
        Target("cmax", "geometric_mean", float(rows.loc["cmax", "value"]), n=n),
        Target("tmax", "median", float(rows.loc["tmax", "value"]), n=n),
        Target("auc0_28", "geometric_mean", float(rows.loc["auc0_28d", "value"]), n=n),
    ]


def run(n_virtual: int, out: Path) -> dict[str, cartpk.estimation.summary_stats.SummaryFit]:
    cartpk.enable_x64()
    model = cartpk.Multiphasic()
    omegas = stein_omegas()
    fits = {}
    started = time.perf_counter()
    fits["tisagenlecleucel_responders"] = fit(
        model,
        responders_targets(),
        SummaryStatistics(n_virtual=n_virtual),
        fixed=[n for n in model.parameter_set.names if n not in ("cmax", "tmax", "alpha")],
        variability=omegas,
    )
    published = {p.name: p.default for p in model.parameters}
    for name, summary in fits.items():
        estimates = pd.DataFrame(
            {
                "parameter": list(summary.estimates),
                "estimate": list(summary.estimates.values()),
                "stein2019": [
                    published.get(k, omegas.get(k.removeprefix("omega_")))
                    for k in summary.estimates
                ],
            }
        )
        with ResultsFolder(
            out / name, command="python fits/summary_statistics.py", force=True
        ) as results:
            results.write(
                {
                    "targets.csv": lambda path, summary=summary: summary.table.to_csv(
                        path, index=False
                    ),
                    "estimates.csv": lambda path, e=estimates: e.to_csv(path, index=False),
                    "targets.png": lambda path, summary=summary, name=name: _plot(
                        summary, path, name
                    ),
                },
                options={"n_virtual": n_virtual},
                result={"converged": summary.converged, "loss": summary.loss},
            )
        print(f"{name}: converged={summary.converged}, loss={summary.loss:.3g}")
        print(estimates.to_string(index=False))
        print(summary.table.to_string(index=False))
    print(f"{n_virtual} virtual subjects; {time.perf_counter() - started:.0f} s")
    return fits


def _plot(fit, path: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    table = fit.table
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.35 * len(table)), constrained_layout=True)
    y = np.arange(len(table))
    ax.scatter(table.reported, y, marker="o", label="reported", zorder=3)
    ax.scatter(table.fitted, y, marker="x", color="C3", label="virtual trial at the fit", zorder=3)
    ax.set_yticks(y, table.target, fontsize=8)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("statistic (model units; level and Cmax in the observable's unit)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--virtual", type=int, default=500, help="virtual subjects")
    parser.add_argument("--out", type=Path, default=HERE, help="results folder")
    args = parser.parse_args(argv)
    run(args.virtual, args.out)


if __name__ == "__main__":
    main()
