"""Simulate-and-re-estimate: a three-state CAR-T / tumour model, FOCE-I or SAEM from three starts.

The model (time in days; CAR-T in cells/uL blood, tumour burden in 1e9 cells)::

    s(T)  = T / (T + K_T)                                     antigen (tumour) signal
    dN/dt = -k_act s(T) N - d_N N                             naive (infused) CAR-T
    dA/dt =  k_act s(T) N + rho s(T) A - delta A              activated CAR-T
    dT/dt =  g T (1 - T / T_max) - k_kill A T                 tumour, logistic growth
    N(0) = N0, A(0) = 0, T(0) = T0 (the TUMOR0 column: a regressor)

Observations: DVID 1 = N + A (CAR-T in blood, log-normal error), DVID 2 = T (tumour burden,
log-normal error); values below an assay floor are censored (``CENS=1`` with ``LLOQ``, M3).

    python fits/cart_three_state/fit.py --solver tsit5              # 28 subjects, 3 starts, FOCE-I
    python fits/cart_three_state/fit.py --method saem --solver tsit5
    python fits/cart_three_state/fit.py --solver tsit5 --only mixed # one start
    python fits/cart_three_state/fit.py --from-estimates DIR/estimates_mixed.csv
    python fits/cart_three_state/fit.py --subjects 8 --starts 1 --out /tmp/small

It writes to ``--out`` (default ``results/``): ``data.csv`` (the simulated NONMEM dataset),
``recovery.csv`` (parameter, true value, estimate and relative error per start), ``fits.csv``
(start, OFV, converged, message, seconds), ``failures.txt`` (tracebacks of crashed fits) and
``estimates_<start>.csv`` (each fit's estimates table).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path
from typing import ClassVar

import diffrax as dfx
import jax.numpy as jnp
import numpy as np
import pandas as pd

import cartpk
from cartpk.estimation import SAEM, CovariateEffect, Exponential, Observation, Population, fit

HERE = Path(__file__).resolve().parent

STEIN = "Stein 2019, doi:10.1002/psp4.12388"
LIU = "Liu 2021, doi:10.1002/cpt.2040"
ASSUMED = "assumed (no published value retrieved)"


class CarTThreeState(cartpk.AbstractModel):
    """Naive -> activated CAR-T with antigen-driven activation and expansion, killing a
    logistically growing tumour (structure after Liu 2021: expansion driven by the tumour
    burden; rates after Stein 2019)."""

    states: ClassVar = (
        cartpk.State(
            "naive", "blood", "cells/uL", "naive (infused, not yet activated) CAR-T", 1e-8
        ),
        cartpk.State("activated", "blood", "cells/uL", "activated (expanding) CAR-T", 1e-8),
        cartpk.State("tumour", "tumour", "1e9 cells", "tumour burden", 1e-8),
    )
    parameters: ClassVar = (
        cartpk.Parameter(
            "n0", 0.5, "cells/uL", "CAR-T in blood just after infusion (dose-independent)", ASSUMED
        ),
        cartpk.Parameter("k_act", 0.5, "1/d", "antigen-driven activation rate", ASSUMED),
        cartpk.Parameter(
            "rho",
            0.6,
            "1/d",
            "maximal antigen-driven expansion rate",
            f"{ASSUMED}; cf. {STEIN}: net expansion ln(foldx 3900)/tmax 9.3 d = 0.89 1/d",
        ),
        cartpk.Parameter(
            "delta", 0.16, "1/d", "activated CAR-T contraction (death) rate", f"{STEIN} (alpha)"
        ),
        cartpk.Parameter(
            "k_kill", 0.001, "uL/(cell d)", "tumour kill rate per activated CAR-T", ASSUMED
        ),
        cartpk.Parameter("g", 0.02, "1/d", "tumour growth rate (doubling ~35 d)", ASSUMED),
        cartpk.Parameter(
            "k_t",
            2.0,
            "1e9 cells",
            "tumour burden for half-maximal activation/expansion",
            f"structure {LIU}; value {ASSUMED}",
        ),
        cartpk.Parameter("t_max", 100.0, "1e9 cells", "tumour carrying capacity", ASSUMED),
        cartpk.Parameter("d_n", 0.1, "1/d", "naive CAR-T loss rate", ASSUMED),
        cartpk.Parameter("t0", 10.0, "1e9 cells", "baseline tumour burden", "regressor TUMOR0"),
    )

    def initial_state(self, p):
        return {"naive": p["n0"], "activated": jnp.zeros(()), "tumour": p["t0"]}

    def rates(self, t, y, p, effects):
        n, a, tum = y["naive"], y["activated"], y["tumour"]
        s = tum / (tum + p["k_t"])
        activation = p["k_act"] * s * n
        return {
            "naive": -activation - p["d_n"] * n,
            "activated": activation + p["rho"] * s * a - p["delta"] * a,
            "tumour": p["g"] * tum * (1 - tum / p["t_max"]) - p["k_kill"] * a * tum,
        }

    def observables(self, t, y, p):
        return {"car_t_per_ul": y["naive"] + y["activated"], "tumour_burden": y["tumour"]}


#: sampling days
CAR_T_TIMES = [1.0, 3.0, 7.0, 10.0, 14.0, 21.0, 28.0, 42.0, 56.0, 90.0, 120.0, 180.0]
TUMOUR_TIMES = [7.0, 14.0, 28.0, 56.0, 90.0, 180.0]
#: estimated typical values (the others stay fixed at their defaults; t0 is the regressor)
ESTIMATED = ("n0", "k_act", "rho", "delta", "k_kill", "g")
FIXED = ("k_t", "t_max", "d_n")
#: SD of the log-normal etas (unconstrained scale)
OMEGA = {"n0": 1.0, "rho": 0.2, "k_kill": 0.6}
T0_MEDIAN, T0_SD = 10.0, 0.8  # baseline tumour burden: log-normal (assumed)
SIGMA = {1: 0.3, 2: 0.2}  # log-normal residual SDs (assumed)
#: assay floors (assumed; chosen so that about 25 % of the observations are censored):
#: CAR-T 0.3 cells/uL, tumour 0.01e9 cells
LLOQ = {1: 0.3, 2: 0.01}
SEED = 2021
#: observed quantity of each DVID
OBSERVABLES = {1: "car_t_per_ul", 2: "tumour_burden"}
#: initial omegas and sigmas of the perturbed starts
INITIAL_OMEGA = dict.fromkeys(OMEGA, 0.3)
INITIAL_SIGMA = {1: 0.3, 2: 0.3}


def truth(model) -> dict[str, float]:
    p = model.default_params()
    values = {name: float(p[name]) for name in ESTIMATED}
    values.update({f"omega_{k}": v for k, v in OMEGA.items()})
    values["sigma_log_1"] = SIGMA[1]
    values["sigma_log_2"] = SIGMA[2]
    return values


def simulate(model, n: int, seed: int = SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    typical = model.default_params()
    params = {k: np.full(n, float(v)) for k, v in typical.items()}
    for name, sd in OMEGA.items():
        params[name] = params[name] * np.exp(sd * rng.standard_normal(n))
    params["t0"] = T0_MEDIAN * np.exp(T0_SD * rng.standard_normal(n))
    times = np.array(sorted(set(CAR_T_TIMES) | set(TUMOUR_TIMES)))
    solution = cartpk.simulate_population(model, params, None, times, rtol=1e-8)
    if not np.all(np.asarray(solution.ok)):
        raise SystemExit("simulation failed: " + "; ".join(solution.failures(params)[:3]))
    rows = []
    for dvid, observable, sample in (
        (1, "car_t_per_ul", CAR_T_TIMES),
        (2, "tumour_burden", TUMOUR_TIMES),
    ):
        f = np.asarray(solution.observables[observable])[:, np.searchsorted(times, sample)]
        y = f * np.exp(SIGMA[dvid] * rng.standard_normal(f.shape))
        for i in range(n):
            for t, value in zip(sample, y[i], strict=True):
                below = value < LLOQ[dvid]
                rows.append(
                    dict(
                        ID=i + 1,
                        TIME=t,
                        DV=LLOQ[dvid] if below else value,
                        DVID=dvid,
                        MDV=0,
                        EVID=0,
                        CENS=int(below),
                        LLOQ=LLOQ[dvid],
                        TUMOR0=params["t0"][i],
                    )
                )
    frame = pd.DataFrame(rows).sort_values(["ID", "TIME", "DVID"], kind="stable")
    return frame.reset_index(drop=True)


def starts(model, count: int) -> list[tuple[str, dict]]:
    """Perturbed initial typical values: x0.5, x2, then mixed (alternating), then random."""
    p = model.default_params()
    rng = np.random.default_rng(7)
    out = []
    for s in range(count):
        if s == 0:
            factors = {k: 0.5 for k in ESTIMATED}
            label = "x0.5"
        elif s == 1:
            factors = {k: 2.0 for k in ESTIMATED}
            label = "x2"
        elif s == 2:
            factors = {k: (2.0 if j % 2 else 0.5) for j, k in enumerate(ESTIMATED)}
            label = "mixed"
        else:
            factors = {k: float(np.exp(rng.uniform(-0.7, 0.7))) for k in ESTIMATED}
            label = f"random{s}"
        out.append((label, {k: float(p[k]) * f for k, f in factors.items()}))
    return out


def start_from(path: Path) -> tuple[str, dict, dict, dict]:
    """A start at an earlier fit's estimates (``estimates_<start>.csv`` in a folder named
    ``<method>_<solver>``): its typical values, omegas and sigmas."""
    e = pd.read_csv(path).set_index("parameter")["estimate"]
    label = f"from_{path.parent.name.split('_')[0]}_{path.stem.removeprefix('estimates_')}"
    return (
        label,
        {k: float(e[k]) for k in ESTIMATED},
        {k: float(e[f"omega_{k}"]) for k in OMEGA},
        {dvid: float(e[f"sigma_log_{dvid}"]) for dvid in SIGMA},
    )


def strategy_for(args):
    if args.method == "saem":
        return SAEM(
            iterations=tuple(args.saem_iterations),
            seed=0,
            se=args.se,
            no_variability=args.no_variability,
        )
    return Population(method=args.method, max_iter=args.max_iter, se=args.se)


def recovery_table(true: dict, labels: list[str], estimates: dict) -> pd.DataFrame:
    """True value, estimate and relative error per start (empty where a start crashed)."""
    rows = []
    for name, value in true.items():
        row = {"parameter": name, "true": value}
        for label in labels:
            est = float(estimates[label].get(name, np.nan)) if label in estimates else np.nan
            row[f"estimate_{label}"] = est
            row[f"relative_error_{label}"] = est / value - 1
        rows.append(row)
    return pd.DataFrame(rows)


SOLVERS = {"kvaerno5": dfx.Kvaerno5, "tsit5": dfx.Tsit5}


def earlier_fits(out: Path, rerun: set[str]) -> tuple[list[dict], dict]:
    """The rows of ``out/fits.csv`` and the estimates of the starts not run again, so that
    ``--only`` adds to a folder instead of replacing it."""
    if not (out / "fits.csv").exists():
        return [], {}
    rows = [r for r in pd.read_csv(out / "fits.csv").to_dict("records") if r["start"] not in rerun]
    estimates = {}
    for row in rows:
        path = out / f"estimates_{row['start']}.csv"
        if path.exists():
            estimates[row["start"]] = pd.read_csv(path).set_index("parameter")["estimate"]
    return rows, estimates


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=("foce", "laplace", "saem"), default="foce")
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--only", help="run only the start with this label (e.g. mixed)")
    parser.add_argument(
        "--from-estimates",
        type=Path,
        help="one start from an earlier fit's estimates_<start>.csv (typical values, omegas, "
        "sigmas), labelled from_<method>_<start>",
    )
    parser.add_argument("--subjects", type=int, default=28)
    parser.add_argument("--solver", choices=sorted(SOLVERS), default="kvaerno5")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--max-iter", type=int, default=500, help="FOCE-I: most OFV evaluations")
    parser.add_argument("--se", choices=("hessian", "sandwich", "none"), default="hessian")
    parser.add_argument(
        "--saem-iterations", type=int, nargs=2, default=(300, 200), metavar=("K1", "K2")
    )
    parser.add_argument("--no-variability", choices=("decreasing", "newton"), default="newton")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    strategy = strategy_for(args)
    cartpk.enable_x64()
    model = CarTThreeState()
    planned = [
        (label, x, INITIAL_OMEGA, INITIAL_SIGMA)
        for label, x in starts(model, args.starts)
        if args.only in (None, label)
    ]
    if args.from_estimates:
        planned = [start_from(args.from_estimates)]
    if not planned:
        parser.error(f"--only {args.only}: no such start among the first {args.starts}")
    args.out.mkdir(parents=True, exist_ok=True)
    data = simulate(model, args.subjects, args.seed)
    data.to_csv(args.out / "data.csv", index=False)
    censored = data.groupby("DVID")["CENS"].mean()
    print(
        f"{args.subjects} subjects, {len(data)} observations, {100 * data['CENS'].mean():.1f} % "
        "censored (" + ", ".join(f"DVID {d}: {100 * c:.0f} %" for d, c in censored.items()) + ")",
        flush=True,
    )
    true = truth(model)
    options = dict(fixed=list(FIXED), covariates=[CovariateEffect("t0", "TUMOR0", "regressor")])
    if args.solver != "kvaerno5":
        options["solver"] = SOLVERS[args.solver]()
    fits, estimates = earlier_fits(args.out, {start[0] for start in planned})
    failures = []
    for label, initial, omega, sigma in planned:
        print(
            f"start {label}: " + ", ".join(f"{k}={v:.3g}" for k, v in initial.items()), flush=True
        )
        started = time.perf_counter()
        try:
            result = fit(
                model,
                data,
                strategy,
                initial=initial,
                variability=omega,
                observations={
                    dvid: Observation(name, Exponential(sigma[dvid]))
                    for dvid, name in OBSERVABLES.items()
                },
                progress=lambda line, label=label: print(f"  [{label}] {line}", flush=True),
                **options,
            )
        except Exception as error:  # a crash is a result of this study: record it
            seconds = time.perf_counter() - started
            message = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            failures.append(f"== start {label} ({seconds:.0f} s)\n{traceback.format_exc()}")
            fits.append(
                dict(start=label, ofv=np.nan, converged=False, message=message, seconds=seconds)
            )
            print(f"start {label}: CRASHED after {seconds:.0f} s: {message}", flush=True)
        else:
            seconds = time.perf_counter() - started
            table = result.estimates
            table.to_csv(args.out / f"estimates_{label}.csv", index=False)
            estimates[label] = table.set_index("parameter")["estimate"]
            fits.append(
                dict(
                    start=label,
                    ofv=float(result.ofv),
                    converged=bool(getattr(result, "converged", True)),
                    message=str(getattr(result, "message", "")),
                    seconds=seconds,
                    # SAEM: -2 log L by importance sampling and its Monte Carlo SE
                    ofv_importance_sampling=result.extra.get("ofv_importance_sampling"),
                    ofv_importance_sampling_se=result.extra.get("ofv_importance_sampling_se"),
                )
            )
            print(
                f"start {label}: OFV {result.ofv:.3f}, converged {fits[-1]['converged']} "
                f"({fits[-1]['message']}), {seconds:.0f} s",
                flush=True,
            )
        # written after every start, so that an interrupted run keeps what it has
        pd.DataFrame(fits).to_csv(args.out / "fits.csv", index=False)
        recovery = recovery_table(true, [f["start"] for f in fits], estimates)
        recovery.to_csv(args.out / "recovery.csv", index=False)
        (args.out / "failures.txt").write_text("\n".join(failures) if failures else "none\n")
    print(pd.DataFrame(fits).to_string(index=False))
    print(recovery.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
