"""Speed-up from sharding a population over CPU devices, measured in pairs.

    python benchmarks/sharding.py --devices 2 --n 2048 --rounds 3 \
        --json benchmarks/results/sharding_2devices.json

One process with ``--xla_force_host_platform_device_count=DEVICES``: alternately runs the same
population on one device (``devices=None``) and sharded over all devices, so that both see the
same machine load. Reports wall and CPU time per patient of every run and the median speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--devices", type=int, default=2)
parser.add_argument("--n", type=int, default=2048)
parser.add_argument("--chunk", type=int, default=1024)
parser.add_argument("--rounds", type=int, default=3)
parser.add_argument("--json")
args = parser.parse_args()
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={args.devices}"
)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import diffrax as dfx  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
import peers  # noqa: E402

import cartpk  # noqa: E402
from cartpk.simulate import simulate_population_chunks  # noqa: E402

cartpk.enable_x64()


def run(model, params, devices):
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    steps = []
    for _, sol in simulate_population_chunks(
        model,
        params,
        peers.build_regimen(),
        peers.TIMES,
        solver=dfx.Tsit5(scan_kind="lax"),
        rtol=1e-5,
        max_steps=16384,
        chunk_size=args.chunk,
        devices=devices,
    ):
        steps.append(sol.num_steps)
    wall = time.perf_counter() - start
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    return wall, cpu, float(np.mean(np.concatenate(steps)))


def main():
    model = peers.build_model()
    params = peers.population(model, args.n)
    configs = {"1 device": None, f"{args.devices} devices": jax.devices()}
    result = {"n": args.n, "chunk": args.chunk, "devices": args.devices, "runs": []}
    for label, devices in configs.items():  # compile both first
        start = time.perf_counter()
        run(model, {k: (v[: args.chunk] if np.ndim(v) else v) for k, v in params.items()}, devices)
        result[f"compile_and_first_chunk_s {label}"] = time.perf_counter() - start
    for r in range(args.rounds):
        for label, devices in configs.items():
            load = os.getloadavg()[0]
            wall, cpu, steps = run(model, params, devices)
            row = dict(round=r, config=label, wall_s=wall, cpu_s=cpu, steps=steps, loadavg=load)
            result["runs"].append(row)
            print(
                f"round {r} {label}: {wall / args.n * 1e3:.2f} ms wall, "
                f"{cpu / args.n * 1e3:.2f} ms CPU per patient (load {load:.1f})",
                flush=True,
            )
    one = [x["wall_s"] for x in result["runs"] if x["config"] == "1 device"]
    many = [x["wall_s"] for x in result["runs"] if x["config"] != "1 device"]
    speedups = [a / b for a, b in zip(one, many, strict=True)]
    result["speedup_per_round"] = speedups
    result["median_speedup"] = statistics.median(speedups)
    print(f"wall-time speed-up per round: {', '.join(f'{s:.2f}' for s in speedups)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
