"""Markdown tables from benchmark JSON files (the tables in benchmarks/README.md).

python benchmarks/summarize.py benchmarks/results/n2000.json benchmarks/results/n10000.json
"""

from __future__ import annotations

import json
import sys

PEERS = (
    ("cartpk", "cartpk"),
    ("scipy_lsoda", "scipy LSODA loop"),
    ("scipy_bdf", "scipy BDF loop"),
    ("roadrunner", "libroadrunner"),
)


def fmt_time(seconds):
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def summarize(path):
    with open(path) as f:
        r = json.load(f)
    lines = [
        f"`{r['command']}`, {r['n']} patients, target max relative error "
        f"{r['target_max_rel_error']:g}, load average {r['loadavg_start'][0]:.2f} at start and "
        f"{r['loadavg_end'][0]:.2f} at end",
        "",
        "| tool | patients timed | wall per patient | CPU per patient | peer / cartpk (wall) "
        "| peer / cartpk (CPU) | max rel. error | rtol |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, label in PEERS:
        if f"{key}_s_per_patient" not in r:
            continue
        patients = r["n"] if key == "cartpk" else r.get(f"{key}_patients")
        ratio = "1" if key == "cartpk" else f"{r[f'ratio_{key}_over_cartpk']:.3g}"
        ratio_cpu = "1" if key == "cartpk" else f"{r[f'ratio_{key}_over_cartpk_cpu']:.3g}"
        error = r.get(f"{key}_max_rel_error")
        lines.append(
            f"| {label} | {patients} | {fmt_time(r[f'{key}_s_per_patient'])} "
            f"| {fmt_time(r[f'{key}_cpu_s_per_patient'])} | {ratio} | {ratio_cpu} "
            f"| {'-' if error is None else f'{error:.2g}'} | {r['tolerances'][key][0]:g} |"
        )
    lines.append("")
    lines.append(
        f"cartpk: compile {r['compile_s']:.1f} s (excluded above), peak RSS "
        f"{r['peak_rss_mb']:.0f} MB, {r['cartpk_mean_steps']:.0f} shared steps per chunk, "
        f"chunk {r['chunk_size']}, {r['host_devices']} device(s), {r['solver']}; scaling: "
        + ", ".join(
            f"N={row['n']}: {row['s_per_patient'] * 1e3:.2f} ms wall / "
            f"{row['cpu_s_per_patient'] * 1e3:.2f} ms CPU"
            for row in r["cartpk_scaling"]
        )
    )
    return "\n".join(lines)


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(f"### {path}\n")
        print(summarize(path))
        print()
