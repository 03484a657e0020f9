"""Time a population (FOCE-I or SAEM) fit of N simulated subjects of the Stein 2019 model.

    python benchmarks/fit_population.py --n 40 --json results/fit_40.json
    python benchmarks/fit_population.py --n 40 --method saem --json results/fit_saem_40.json

The study: Multiphasic typical values (Stein 2019), 30 % between-subject variability on all six
parameters, 30 % log-normal residual error, LLOQ 50 copies/ug, 13 samples per subject over a
year. The fit estimates all 13 parameters (6 typical values, 6 omegas, 1 sigma) from the model
defaults, then runs the covariance step. Reports wall and CPU times of the compile (first
evaluation), the optimisation (SAEM: the iterations and the importance sampling) and the
covariance step, per-evaluation time, and the relative errors of the typical values. See
benchmarks/FITTING.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import diffrax as dfx
import jax
import numpy as np

import cartpk
from cartpk.commands import versions
from cartpk.estimation import SAEM, Exponential, Population, fit, sample_parameters, simulate_study
from cartpk.estimation.objective import predictions
from cartpk.estimation.outer import Evaluator, map_chunks, on_host_device

TIMES = [1.0, 4.0, 7.0, 9.0, 11.0, 14.0, 21.0, 28.0, 60.0, 90.0, 180.0, 270.0, 365.0]


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def gradient_cost(result, repeats: int = 3) -> dict:
    """Seconds of one OFV + gradient evaluation at the estimates (EBE searches warm-started at
    the EBEs, as in the last iterations of a fit) and of one simulation of every subject at its
    EBE (same solver, chunks and threads), and their ratio."""
    spec, arrays, layout = result.spec, result.problem.arrays, result.layout
    n, m = arrays.n_subjects, result.V.shape[1]
    evaluator = Evaluator(spec, arrays)
    args = (result.x[None], result.V[None], np.zeros((1, m)), np.ones((1, n)), result.z[None])
    mu = np.asarray(jax.vmap(lambda row: layout.typical(result.x, row))(arrays.design))
    chol = layout.omega_chol(result.x)
    host = jax.tree.map(np.asarray, arrays)

    @jax.jit
    def simulate_chunk(d, mu, z):
        def one(d, mu, z):
            return predictions(spec, layout.individual(mu, chol, z), d)[0]

        return jax.vmap(one)(d, mu, z)

    def run(idx):
        d = jax.tree.map(lambda a: a[idx], host)
        with on_host_device():
            return {"g": np.asarray(simulate_chunk(d, mu[idx], result.z[idx]))}

    def seconds(fn) -> float:
        fn()  # compile
        started = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - started) / repeats

    evaluation = seconds(lambda: evaluator(*args))
    simulation = seconds(lambda: map_chunks(n, run, evaluator.workers))
    return {
        "evaluation_seconds": round(evaluation, 3),
        "simulation_seconds": round(simulation, 3),
        "evaluation_over_simulation": round(evaluation / simulation, 1),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="subjects")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--se", default="hessian", choices=("hessian", "sandwich", "none"))
    parser.add_argument("--method", default="foce", choices=("foce", "laplace", "saem"))
    parser.add_argument(
        "--saem-iterations", type=int, nargs=2, default=(300, 200), metavar=("K1", "K2")
    )
    args = parser.parse_args(argv)
    if args.method == "saem":
        strategy = SAEM(iterations=tuple(args.saem_iterations), se=args.se)
    else:
        strategy = Population(method=args.method, se=args.se)
    cartpk.enable_x64()
    model = cartpk.Multiphasic()
    truth = {k: float(v) for k, v in model.default_params().items()}
    params = sample_parameters(model, args.n, omega=0.3, seed=args.seed)
    data = simulate_study(
        model,
        params,
        TIMES,
        error=Exponential(0.3),
        lloq=50.0,
        seed=args.seed + 1,
        solver=dfx.Tsit5(),
    )
    lines: list[tuple[float, str]] = []
    started, cpu_started = time.perf_counter(), time.process_time()

    def progress(line: str) -> None:
        lines.append((time.perf_counter() - started, line))
        print(f"[{time.perf_counter() - started:7.1f} s] {line}", flush=True)

    result = fit(
        model,
        data,
        strategy,
        solver=dfx.Tsit5(),
        rtol=1e-6,
        progress=progress,
    )
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    first = next(t for t, line in lines if line.startswith(("iteration", "SAEM")))
    covariance = next((t for t, line in lines if line.startswith("covariance")), wall)
    m = result.layout.n_free
    covariance_evals = 2 * m if args.se != "none" else 0
    # SAEM: an "evaluation" is one iteration (Markov chain moves and the M-step)
    optimisation_evals = (
        result.iterations if args.method == "saem" else (result.evaluations - covariance_evals - 1)
    )
    options = [f"--n {args.n}"]
    options += [f"--method {args.method}"] if args.method != "foce" else []
    options += [f"--se {args.se}"] if args.se != "hessian" else []
    if args.method == "saem" and tuple(args.saem_iterations) != (300, 200):
        options.append("--saem-iterations {} {}".format(*args.saem_iterations))
    out = {
        "command": "python benchmarks/fit_population.py " + " ".join(options),
        "n_subjects": args.n,
        "n_observations": int(len(data)),
        "blq_fraction": float(data["CENS"].mean()),
        "method": args.method,
        "converged": result.converged,
        "message": result.message,
        "ofv": result.ofv,
        "iterations": result.iterations,
        "evaluations": result.evaluations,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "seconds_to_first_iteration": round(first, 1),
        "optimisation_seconds": round(covariance - first, 1),
        "seconds_per_evaluation": round((covariance - first) / max(optimisation_evals, 1), 2),
        "covariance_seconds": round(wall - covariance, 1),
        "covariance": result.covariance.message,
        "gradient_cost": gradient_cost(result),
        "relative_error": {
            name: round(result.estimate(name) / value - 1, 4) for name, value in truth.items()
        },
        "machine": machine(),
        "versions": versions(),
    }
    print(json.dumps({k: v for k, v in out.items() if k not in ("machine", "versions")}, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
