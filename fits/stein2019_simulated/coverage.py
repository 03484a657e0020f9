"""Coverage of the 95 % CIs of a FOCE-I fit, over repeated simulated studies (not a test).

Each replicate simulates a new study with the design of ``fit.py``. The default is 40 patients
with the Stein 2019 typical values, 30 % variability, 30 % log-normal error and LLOQ 50. Each
study is fitted by FOCE-I with the Hessian covariance step. The script counts how often each
parameter's 95 % CI contains the truth:

    python fits/stein2019_simulated/coverage.py --replicates 30

It writes ``replicates.csv`` (one row per replicate and parameter) and ``summary.csv`` (per
parameter: coverage, its binomial 95 % interval, median relative error) to ``--out``. All
replicates share one compiled objective.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import time
from pathlib import Path

import diffrax as dfx
import numpy as np
import pandas as pd

import cartpk
from cartpk.estimation import Population, fit

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("stein2019_fit", HERE / "fit.py")
spec_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(spec_module)


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return (centre - half, centre + half)


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=30)
    parser.add_argument("--n", type=int, default=40, help="patients per study")
    parser.add_argument("--seed", type=int, default=1000, help="seed of the first replicate")
    parser.add_argument("--out", type=Path, default=HERE / "coverage")
    args = parser.parse_args(argv)
    cartpk.enable_x64()
    model = cartpk.Multiphasic()
    truth = spec_module.truth(model)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    started = time.perf_counter()
    for r in range(args.replicates):
        data = spec_module.simulate(model, args.n, seed=args.seed + 2 * r)
        result = fit(model, data, Population(), solver=dfx.Tsit5(), rtol=1e-6)
        table = result.estimates.set_index("parameter")
        for name, value in truth.items():
            row = table.loc[name]
            rows.append(
                dict(
                    replicate=r,
                    parameter=name,
                    truth=value,
                    estimate=row["estimate"],
                    ci_low=row["ci_low"],
                    ci_high=row["ci_high"],
                    covered=bool(row["ci_low"] <= value <= row["ci_high"]),
                    converged=result.converged,
                    covariance=result.covariance.message,
                )
            )
        elapsed = time.perf_counter() - started
        print(
            f"replicate {r + 1}/{args.replicates}: OFV {result.ofv:.2f}, "
            f"{'converged' if result.converged else result.message}, "
            f"covariance {result.covariance.message}, {elapsed:.0f} s",
            flush=True,
        )
        pd.DataFrame(rows).to_csv(args.out / "replicates.csv", index=False)
    table = pd.DataFrame(rows)
    usable = table[table["converged"] & (table["covariance"] == "ok")]
    summary = []
    for name in truth:
        part = usable[usable["parameter"] == name]
        k, n = int(part["covered"].sum()), len(part)
        low, high = wilson(k, n)
        summary.append(
            dict(
                parameter=name,
                replicates=n,
                covered=k,
                coverage=k / n if n else math.nan,
                coverage_low=low,
                coverage_high=high,
                median_relative_error=float(np.median(part["estimate"] / part["truth"] - 1)),
            )
        )
    summary = pd.DataFrame(summary)
    summary.to_csv(args.out / "summary.csv", index=False)
    info = {
        "command": "python fits/stein2019_simulated/coverage.py "
        f"--replicates {args.replicates} --n {args.n} --seed {args.seed}",
        "replicates": args.replicates,
        "converged_with_covariance": int(usable["replicate"].nunique()),
        "overall_coverage": float(usable["covered"].mean()),
        "seconds": round(time.perf_counter() - started),
    }
    (args.out / "summary.json").write_text(json.dumps(info, indent=2))
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(json.dumps(info, indent=2))
    return summary


if __name__ == "__main__":
    main()
