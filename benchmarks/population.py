"""Population benchmark: cartpk against scipy's solve_ivp and libroadrunner on the same equations.

    python benchmarks/population.py --n 2000 --json benchmarks/results/n2000.json

The model is ``combine(BloodStromaTumour("solid"), AntiVEGF(), Hyaluronidase())``: 17 states,
1e8 CAR-T on day 0, bevacizumab every 14 d from day -7, PEGPH20 twice weekly for 4 weeks, daily
outputs for one year, log-normal variability on 10 parameters (``peers.py``). Every tool is run
at the tolerances that give it the same accuracy (``--target``, max relative error over all
states and output times against scipy Radau at rtol 1e-12; ``TOLERANCES`` below, chosen with
``--calibrate``). See ``benchmarks/README.md`` for the results and how to read them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

#: Accuracy target (max relative error vs the reference) -> each tool's tolerances
#: (rtol, atol scale on the model's per-state absolute tolerances). Chosen by
#: ``--calibrate --ref-patients 16``: the loosest rtol of ``CALIBRATION_RTOLS`` that meets the
#: target on all 16 reference patients (results/calibration.json). At the model's absolute
#: tolerances the peers' errors level off above 1e-5 (scipy LSODA 1.7e-5, libroadrunner
#: 4.5e-5; cartpk 4e-7), so 1e-4 is the tightest target every tool meets. cartpk's cost hardly
#: depends on rtol (its steps are set by stability), so at 1e-3 it stays at its loosest grid
#: point, more accurate than the target.
TOLERANCES = {
    "1e-4": {
        "cartpk": (1e-5, 1.0),
        "scipy_lsoda": (3e-9, 1.0),
        "scipy_bdf": (1e-9, 1.0),
        "roadrunner": (1e-9, 1.0),
    },
    "1e-3": {
        "cartpk": (1e-5, 1.0),
        "scipy_lsoda": (3e-6, 1.0),
        "scipy_bdf": (3e-8, 1.0),
        "roadrunner": (3e-8, 1.0),
    },
}
CALIBRATION_RTOLS = tuple(m * 10.0**-e for e in range(5, 12) for m in (1.0, 0.3))[:13]
REFERENCE = ("Radau", 1e-12, 1e-3)  # scipy method, rtol, atol scale


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="virtual patients (cartpk)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--target", default="1e-4", choices=sorted(TOLERANCES))
    parser.add_argument("--chunk", type=int, default=1024, help="cartpk patients per chunk")
    parser.add_argument("--host-devices", type=int, default=1, help="shard over N CPU devices")
    parser.add_argument("--solver", default="Tsit5", help="diffrax solver for cartpk")
    parser.add_argument(
        "--scan-kind",
        default="lax",
        help="the solver's stage loop: lax (forward only, fastest) or None (differentiable)",
    )
    parser.add_argument("--stepping", default="auto", help="cartpk stepping strategy")
    parser.add_argument("--ref-patients", type=int, default=6, help="patients with a reference")
    parser.add_argument("--scipy-patients", type=int, default=6, help="patients for the scipy loop")
    parser.add_argument("--rr-patients", type=int, default=1000, help="patients for roadrunner")
    parser.add_argument(
        "--scaling",
        default="",
        help="smaller N for cartpk, comma-separated (default: 1 and 4 chunks)",
    )
    parser.add_argument("--skip", default="", help="peers to skip: scipy,roadrunner")
    parser.add_argument("--cartpk-only", action="store_true", help="no peers and no reference")
    parser.add_argument("--calibrate", action="store_true", help="error vs rtol for every tool")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


ARGS = parse_args()
if ARGS.host_devices > 1:  # must happen before JAX starts
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={ARGS.host_devices}"
    )

import diffrax as dfx  # noqa: E402
import equations as eq  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
import peers  # noqa: E402

import cartpk  # noqa: E402
from cartpk.simulate import simulate_population_chunks  # noqa: E402

cartpk.enable_x64()


def usage():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), r.ru_utime + r.ru_stime


def since(start):
    wall, cpu = usage()
    return wall - start[0], cpu - start[1]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def states_of(solution) -> np.ndarray:
    return np.stack([np.asarray(solution.states[s]) for s in eq.STATES], axis=-1)


class Cartpk:
    def __init__(self, model, rtol, atol_scale, chunk, devices, solver, stepping, scan_kind):
        self.model = model
        self.regimen = peers.build_regimen()
        kind = None if scan_kind == "None" else scan_kind
        self.options = dict(
            solver=getattr(dfx, solver)(scan_kind=kind),
            rtol=rtol,
            atol_scale=atol_scale,
            max_steps=16384,
            chunk_size=chunk,
            devices=devices,
            stepping=stepping,
        )

    def run(self, params, keep=()):
        """Simulate everyone, holding one chunk at a time. Returns (states of the patients in
        ``keep``, mean blood CAR-T peak (a cheap reduction of everyone), status, steps)."""
        keep = np.asarray(sorted(keep), dtype=int)
        kept, peaks, status, steps = {}, [], [], []
        for part, sol in simulate_population_chunks(
            self.model, params, self.regimen, peers.TIMES, **self.options
        ):
            peaks.append(np.max(sol.states["blood_effector"], axis=1))
            status.append(sol.status)
            steps.append(sol.num_steps)
            for i in keep[(keep >= part.start) & (keep < part.stop)]:
                row = int(i) - part.start
                kept[int(i)] = states_of(jax.tree.map(lambda a, row=row: a[row], sol))
        ys = np.stack([kept[int(i)] for i in keep]) if len(keep) else None
        return ys, np.concatenate(peaks), np.concatenate(status), np.concatenate(steps)


def measure_cartpk(model, args, params_of, tolerances, devices, keep, sizes):
    rtol, atol_scale = tolerances
    tool = Cartpk(
        model, rtol, atol_scale, args.chunk, devices, args.solver, args.stepping, args.scan_kind
    )
    # compile: the first call of a one-chunk population, minus the same call once compiled
    warm = params_of(args.chunk)
    start = usage()
    tool.run(warm)
    first = since(start)
    start = usage()
    tool.run(warm)
    again = since(start)
    out = {"compile_s": first[0] - again[0], "rows": []}
    for n in sizes:
        params = params_of(n)
        load = os.getloadavg()[0]
        start = usage()
        ys, peaks, status, steps = tool.run(params, keep=keep if n == sizes[-1] else ())
        wall, cpu = since(start)
        out["rows"].append(
            {
                "n": n,
                "wall_s": wall,
                "cpu_s": cpu,
                "s_per_patient": wall / n,
                "cpu_s_per_patient": cpu / n,
                "loadavg_1min_before": load,
                "failed": int(np.sum(status != 0)),
                "mean_steps": float(np.mean(steps)),
            }
        )
        print(
            f"  cartpk n={n}: {wall:.2f} s wall, {cpu:.2f} s CPU, "
            f"{wall / n * 1e3:.3f} ms/patient, steps {np.mean(steps):.0f}",
            flush=True,
        )
    out["ys"] = ys
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def reference(model, params, indices):
    method, rtol, atol_scale = REFERENCE
    ys, wall, nfev = peers.run_scipy(model, params, indices, method, rtol, atol_scale)
    return ys, wall


def table(rows):
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for k, r in enumerate(rows):
        lines.append("  ".join(str(c).rjust(w) for c, w in zip(r, widths, strict=True)))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    import importlib.metadata as md

    versions = {}
    for name in (
        "jax",
        "jaxlib",
        "diffrax",
        "equinox",
        "numpy",
        "scipy",
        "libroadrunner",
        "python-libsbml",
        "sympy",
    ):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "jax_devices": [str(d) for d in jax.devices()],
        "versions": versions,
    }


def calibrate(model, params, args):
    indices = list(range(args.ref_patients))
    print(f"reference: scipy {REFERENCE[0]} rtol {REFERENCE[1]:g} on {len(indices)} patients")
    ref, _ = reference(model, params, indices)
    sub = {k: (v[: len(indices)] if np.ndim(v) else v) for k, v in params.items()}
    result = {}
    for rtol in CALIBRATION_RTOLS:
        row = {}
        tool = Cartpk(
            model, rtol, 1.0, len(indices), None, args.solver, args.stepping, args.scan_kind
        )
        ys, *_ = tool.run(sub, keep=indices)
        row["cartpk"] = peers.relative_error(ys, ref)
        for method in ("LSODA", "BDF"):
            if rtol < 3e-10 and method == "BDF":
                continue
            ys, _, _ = peers.run_scipy(model, params, indices, method, rtol, 1.0)
            row[f"scipy_{method.lower()}"] = peers.relative_error(ys, ref)
        rr = peers.RoadRunnerPeer(model, rtol, 1.0)
        ys, _ = rr.run(params, indices)
        row["roadrunner"] = peers.relative_error(ys, ref)
        result[f"{rtol:g}"] = row
        print(f"rtol {rtol:g}: " + ", ".join(f"{k} {v:.2e}" for k, v in row.items()), flush=True)
    return result


def main(args):
    started = time.perf_counter()
    model = peers.build_model()
    worst = eq.check_against_cartpk(model)
    print(f"generated RHS = cartpk vector field to {worst:.1e} (relative)")
    population = peers.population(model, max(args.n, args.rr_patients, 1), seed=args.seed)

    def params_of(n):
        return {k: (v[:n] if np.ndim(v) else v) for k, v in population.items()}

    if args.calibrate:
        result = calibrate(model, population, args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(
                    {
                        "reference": REFERENCE,
                        "reference_patients": args.ref_patients,
                        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
                        "max_rel_error": result,
                    },
                    f,
                    indent=2,
                )
        return
    tolerances = TOLERANCES[args.target]
    devices = jax.devices()[: args.host_devices] if args.host_devices > 1 else None
    extra = [int(s) for s in args.scaling.split(",") if s] or [args.chunk, 4 * args.chunk]
    # smaller populations than one chunk would compile another chunk shape: not scaling
    sizes = sorted({s for s in extra if args.chunk <= s < args.n} | {args.n})
    ref_idx = list(range(min(args.ref_patients, args.n)))
    skip = set(args.skip.split(",")) if args.skip else set()
    if args.cartpk_only:
        skip |= {"scipy", "roadrunner", "reference"}
    result = {
        "n": args.n,
        "target_max_rel_error": float(args.target),
        "tolerances": {k: list(v) for k, v in tolerances.items()},
        "reference": list(REFERENCE),
        "chunk_size": args.chunk,
        "host_devices": args.host_devices,
        "solver": f"{args.solver}(scan_kind={args.scan_kind})",
        "machine": machine(),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "loadavg_start": list(os.getloadavg()),
    }
    print(
        f"cartpk ({args.solver}, rtol {tolerances['cartpk'][0]:g}, chunk {args.chunk}, "
        f"{args.host_devices} device(s))",
        flush=True,
    )
    c = measure_cartpk(model, args, params_of, tolerances["cartpk"], devices, ref_idx, sizes)
    main_row = c["rows"][-1]
    result.update(
        cartpk_s_per_patient=main_row["s_per_patient"],
        cartpk_cpu_s_per_patient=main_row["cpu_s_per_patient"],
        cartpk_scaling=c["rows"],
        compile_s=c["compile_s"],
        peak_rss_mb=c["peak_rss_mb"],
        cartpk_failed=main_row["failed"],
        cartpk_mean_steps=main_row["mean_steps"],
        loadavg_cartpk=main_row["loadavg_1min_before"],
    )

    ref = None
    if "reference" not in skip:
        print(
            f"reference: scipy {REFERENCE[0]} rtol {REFERENCE[1]:g}, {len(ref_idx)} patients",
            flush=True,
        )
        ref, wall = reference(model, population, ref_idx)
        result["reference_s_per_patient"] = wall / len(ref_idx)
        result["reference_patients"] = len(ref_idx)
        result["cartpk_max_rel_error"] = peers.relative_error(c["ys"], ref)

    if "scipy" not in skip:
        n_scipy = min(args.scipy_patients, args.n)
        for method in ("LSODA", "BDF"):
            key = f"scipy_{method.lower()}"
            rtol, atol_scale = tolerances[key]
            load = os.getloadavg()[0]
            start = usage()
            ys, _, nfev = peers.run_scipy(
                model, population, range(n_scipy), method, rtol, atol_scale
            )
            wall, cpu = since(start)
            result[f"{key}_s_per_patient"] = wall / n_scipy
            result[f"{key}_cpu_s_per_patient"] = cpu / n_scipy
            result[f"{key}_patients"] = n_scipy
            result[f"{key}_rhs_calls_per_patient"] = nfev
            result[f"loadavg_{key}"] = load
            if ref is not None:
                k = min(n_scipy, len(ref_idx))
                result[f"{key}_max_rel_error"] = peers.relative_error(ys[:k], ref[:k])
            print(f"  scipy {method}: {wall / n_scipy:.3f} s/patient", flush=True)

    if "roadrunner" not in skip:
        rtol, atol_scale = tolerances["roadrunner"]
        rr = peers.RoadRunnerPeer(model, rtol, atol_scale)
        n_rr = min(args.rr_patients, len(next(v for v in population.values() if np.ndim(v))))
        load = os.getloadavg()[0]
        start = usage()
        ys, _ = rr.run(population, range(n_rr))
        wall, cpu = since(start)
        result.update(
            roadrunner_s_per_patient=wall / n_rr,
            roadrunner_cpu_s_per_patient=cpu / n_rr,
            roadrunner_patients=n_rr,
            roadrunner_compile_s=rr.compile_s,
            loadavg_roadrunner=load,
        )
        if ref is not None:
            result["roadrunner_max_rel_error"] = peers.relative_error(ys[: len(ref_idx)], ref)
        print(f"  roadrunner: {wall / n_rr * 1e3:.3f} ms/patient", flush=True)

    result["loadavg_end"] = list(os.getloadavg())
    result["total_wall_s"] = time.perf_counter() - started
    result["peak_rss_mb_end"] = peak_rss_mb()
    for peer in ("scipy_lsoda", "scipy_bdf", "roadrunner"):
        if f"{peer}_s_per_patient" in result:
            result[f"ratio_{peer}_over_cartpk"] = (
                result[f"{peer}_s_per_patient"] / result["cartpk_s_per_patient"]
            )
            result[f"ratio_{peer}_over_cartpk_cpu"] = (
                result[f"{peer}_cpu_s_per_patient"] / result["cartpk_cpu_s_per_patient"]
            )
    report(result)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.json}")


def report(result):
    rows = [
        (
            "tool",
            "patients",
            "s/patient",
            "CPU s/patient",
            "x cartpk (wall)",
            "x cartpk (CPU)",
            "max rel error",
            "tolerances",
        )
    ]
    tol = result["tolerances"]
    cart = (
        "cartpk",
        result["cartpk_scaling"][-1]["n"],
        result["cartpk_s_per_patient"],
        result["cartpk_cpu_s_per_patient"],
        1.0,
        1.0,
        result.get("cartpk_max_rel_error"),
        tol["cartpk"],
    )
    lines = [cart]
    for peer, label in (
        ("scipy_lsoda", "scipy LSODA"),
        ("scipy_bdf", "scipy BDF"),
        ("roadrunner", "libroadrunner"),
    ):
        if f"{peer}_s_per_patient" not in result:
            continue
        lines.append(
            (
                label,
                result.get(f"{peer}_patients"),
                result[f"{peer}_s_per_patient"],
                result[f"{peer}_cpu_s_per_patient"],
                result[f"ratio_{peer}_over_cartpk"],
                result[f"ratio_{peer}_over_cartpk_cpu"],
                result.get(f"{peer}_max_rel_error"),
                tol[peer],
            )
        )

    def fmt(x):
        if x is None:
            return "-"
        if isinstance(x, float):
            return f"{x:.3g}"
        if isinstance(x, list | tuple):
            return f"rtol {x[0]:g}" + (f", atol x{x[1]:g}" if x[1] != 1 else "")
        return str(x)

    print()
    print(table([rows[0], *[tuple(fmt(x) for x in line) for line in lines]]))
    print(
        f"\ncartpk compile {result['compile_s']:.1f} s (not in s/patient); peak RSS "
        f"{result['peak_rss_mb']:.0f} MB after cartpk; load average "
        f"{result['loadavg_start'][0]:.2f} at start, {result['loadavg_end'][0]:.2f} at end"
    )
    for row in result["cartpk_scaling"]:
        print(f"  scaling: n={row['n']}: {row['s_per_patient'] * 1e3:.3f} ms/patient")


if __name__ == "__main__":
    main(ARGS)
