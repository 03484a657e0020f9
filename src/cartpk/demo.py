"""The main job, ``cartpk demo``: the bundled ``combinations`` scenario on a small population.

A solid tumour receives 1e8 CAR-T IV on day 0, alone, with one barrier-breaking therapy per arm,
or with two combinations (``scenarios/combinations.toml``). Same outputs as ``cartpk simulate``.
"""

from __future__ import annotations

from pathlib import Path

from .scenario import bundled_scenario, simulate_to_folder


def run_demo(out: str | Path, *, n_patients: int = 32, force: bool = False):
    """Run the demo comparison and write its results into ``out``; returns the summary table."""
    return simulate_to_folder(
        bundled_scenario("combinations"), out, patients=n_patients, force=force, command="demo"
    )
