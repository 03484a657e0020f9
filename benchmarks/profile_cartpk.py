"""Where cartpk's time goes: XLA CPU kernels grouped by how often they run.

    python benchmarks/profile_cartpk.py --n 256 --days 60

Runs one compiled chunk of the benchmark population under ``jax.profiler`` with XLA's per-kernel
trace events, then groups kernels by call count: kernels that run once per Runge-Kutta stage
(the vector field and the stage sums), once per step (error estimate, step-size control, dense
output) and the rest (output saving, segment set-up). Also prints the vector field's cost alone
(a ``fori_loop`` of evaluations of the same chunk).
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import sys
import tempfile
import time

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import diffrax as dfx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import peers  # noqa: E402

import cartpk  # noqa: E402

cartpk.enable_x64()


def kernel_times(trace_dir):
    path = sorted(glob.glob(os.path.join(trace_dir, "plugins/profile/*/*.trace.json.gz")))[-1]
    with gzip.open(path) as f:
        events = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
    skip = ("while", "Thunk", "Pjit", "$", "Common", "end:", "conditional", "call")
    leaf = [e for e in events if not e["name"].startswith(skip)]
    total = collections.Counter()
    count = collections.Counter()
    for e in leaf:
        total[e["name"]] += e["dur"] * 1e-6
        count[e["name"]] += 1
    return total, count


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--days", type=float, default=60.0)
    parser.add_argument("--rtol", type=float, default=1e-6)
    parser.add_argument("--scan-kind", default="lax", help="diffrax Tsit5 scan_kind (or None)")
    args = parser.parse_args()
    model = peers.build_model()
    params = peers.population(model, args.n)
    times = peers.TIMES[peers.TIMES <= args.days]
    scan_kind = None if args.scan_kind == "None" else args.scan_kind
    options = dict(solver=dfx.Tsit5(scan_kind=scan_kind), rtol=args.rtol, max_steps=16384)
    sol = cartpk.simulate_population(model, params, peers.build_regimen(), times, **options)
    steps = int(np.asarray(sol.num_steps)[0])
    trace = tempfile.mkdtemp()
    jax.profiler.start_trace(trace)
    start = time.perf_counter()
    sol = cartpk.simulate_population(model, params, peers.build_regimen(), times, **options)
    jax.block_until_ready(sol)
    wall = time.perf_counter() - start
    jax.profiler.stop_trace()
    total, count = kernel_times(trace)
    stages = 6 * steps  # Tsit5: 6 new stage evaluations per step (first-same-as-last)
    groups = collections.defaultdict(lambda: [0.0, 0])
    for name, seconds in total.items():
        calls = count[name]
        if calls >= 0.8 * stages:
            key = "per stage (vector field, stage sums)"
        elif calls >= 0.8 * steps:
            key = "per step (error norm, PI control, interpolation)"
        else:
            key = "other (saving outputs, segments, set-up)"
        groups[key][0] += seconds
        groups[key][1] += 1
    kernel_sum = sum(total.values())
    print(f"{args.n} patients, {args.days:g} days, {steps} steps, {wall:.3f} s (profiled)")
    for key, (seconds, kinds) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
        print(f"  {key}: {seconds:.3f} s ({seconds / kernel_sum:.0%}), {kinds} distinct kernels")
    print(f"  kernels per stage: {groups['per stage (vector field, stage sums)'][1]}")

    # the vector field alone, on the same chunk
    p = {k: jnp.asarray(v) for k, v in params.items()}
    y = jnp.stack([jnp.full(args.n, 1e6)] * 9 + [jnp.ones(args.n)] * 8, axis=0)
    rate = jnp.zeros(len(model.states))

    def field(t, y):
        one = lambda y_i, b: model.vector_field(t, y_i, (b, rate))  # noqa: E731
        batched = {k: v for k, v in p.items() if v.ndim}
        shared = {k: v for k, v in p.items() if not v.ndim}
        return jax.vmap(lambda y_i, b: one(y_i, {**shared, **b}), in_axes=(1, 0), out_axes=1)(
            y, batched
        )

    loop = jax.jit(
        lambda y: jax.lax.fori_loop(0, 1000, lambda i, y: y + 1e-9 * field(i * 0.1, y), y)
    )
    loop(y).block_until_ready()
    start = time.perf_counter()
    loop(y).block_until_ready()
    per_eval = (time.perf_counter() - start) / 1000 / args.n
    print(f"vector field alone: {per_eval * 1e9:.0f} ns per patient per evaluation")


if __name__ == "__main__":
    main()
