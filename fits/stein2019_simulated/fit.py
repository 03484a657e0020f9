"""Simulate-and-re-estimate: a FOCE-I fit of 40 simulated tisagenlecleucel patients.

The spec:
- truth: the Stein 2019 typical values (``cartpk.Multiphasic`` defaults);
- between-subject variability: SD 0.3 on every parameter's unconstrained scale (about 30 % CV);
- residual error: 30 % log-normal;
- censoring: LLOQ 50 copies/ug gDNA, values below it are censored (M3);
- 13 samples per patient, from day 1 to day 365.

The fit estimates all 13 parameters from the model defaults, by FOCE-I with the Hessian
covariance step. Results go to ``results/``:
- the simulated ``data.csv``;
- ``cartpk fit``'s files (estimates, individual, diagnostics, VPC, plots, manifest);
- ``comparison.csv``: truth vs estimate and whether the 95 % CI covers the truth.

    python fits/stein2019_simulated/fit.py            # 40 patients, as committed
    python fits/stein2019_simulated/fit.py --n 16 --out /tmp/small --vpc 20
"""

from __future__ import annotations

import argparse
from pathlib import Path

import diffrax as dfx
import numpy as np
import pandas as pd

import cartpk
from cartpk.commands import ResultsFolder
from cartpk.commands.fit import fit_outputs
from cartpk.estimation import (
    Exponential,
    Population,
    fit,
    sample_parameters,
    simulate_study,
)

HERE = Path(__file__).resolve().parent
#: sampling days (ELIANA-like: dense around the peak, then months 2, 3, 6, 9, 12)
TIMES = [1.0, 4.0, 7.0, 9.0, 11.0, 14.0, 21.0, 28.0, 60.0, 90.0, 180.0, 270.0, 365.0]
OMEGA = 0.3  # SD of eta on each parameter's unconstrained scale
SIGMA = 0.3  # log-normal residual SD
LLOQ = 50.0  # copies/ug gDNA
SEED = 2019


def truth(model) -> dict[str, float]:
    """True values under their reported names."""
    values = {k: float(v) for k, v in model.default_params().items()}
    values.update({f"omega_{k}": OMEGA for k in model.parameter_set.names})
    values["sigma_log"] = SIGMA
    return values


def simulate(model, n: int, seed: int = SEED) -> pd.DataFrame:
    params = sample_parameters(model, n, omega=OMEGA, seed=seed)
    return simulate_study(
        model,
        params,
        TIMES,
        error=Exponential(SIGMA),
        lloq=LLOQ,
        seed=seed + 1,
        solver=dfx.Tsit5(),
    )


def compare(result, model) -> pd.DataFrame:
    table = result.estimates.set_index("parameter")
    rows = []
    for name, value in truth(model).items():
        row = table.loc[name]
        rows.append(
            dict(
                parameter=name,
                truth=value,
                estimate=row["estimate"],
                relative_error=row["estimate"] / value - 1,
                ci_low=row["ci_low"],
                ci_high=row["ci_high"],
                covered=bool(row["ci_low"] <= value <= row["ci_high"]),
            )
        )
    return pd.DataFrame(rows)


def run(n: int = 40, out: Path = HERE / "results", vpc: int = 200, force: bool = True):
    """Simulate, fit and write the results; returns the fit and the comparison table."""
    cartpk.enable_x64()
    model = cartpk.Multiphasic()
    data = simulate(model, n)
    result = fit(
        model,
        data,
        Population(method="foce", se="hessian"),
        solver=dfx.Tsit5(),  # Multiphasic is not stiff (docs/estimation.md, "Solver")
        rtol=1e-6,
        progress=True,
    )
    print(result.summary())
    comparison = compare(result, model)
    options = {
        "script": "fits/stein2019_simulated/fit.py",
        "n": n,
        "times": TIMES,
        "omega": OMEGA,
        "sigma": SIGMA,
        "lloq": LLOQ,
        "seed": SEED,
        "method": "foce",
        "solver": "tsit5",
        "rtol": 1e-6,
    }
    with ResultsFolder(
        out, command="python fits/stein2019_simulated/fit.py", force=force
    ) as results:
        tables, figures, summary = fit_outputs(result, vpc_replicates=vpc)
        results.write(
            {
                "data.csv": lambda path: data.to_csv(path, index=False),
                "comparison.csv": lambda path: comparison.to_csv(path, index=False),
                **tables,
                **figures,
            },
            options=options,
            result=summary,
        )
    with pd.option_context("display.width", 120):
        print(comparison.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"CIs covering the truth: {int(comparison['covered'].sum())}/{len(comparison)}")
    return result, comparison


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="patients (default 40)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="output directory")
    parser.add_argument("--vpc", type=int, default=200, help="VPC replicates")
    args = parser.parse_args(argv)
    run(args.n, args.out, args.vpc)
    return np.int64(0)


if __name__ == "__main__":
    main()
