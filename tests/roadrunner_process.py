"""libroadrunner in a process of its own. libroadrunner bundles its own LLVM; the test process
keeps only XLA's: each call runs in one spawned worker shared by the session."""

from __future__ import annotations

import importlib.util
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np

_pool: ProcessPoolExecutor | None = None


def available() -> bool:
    return importlib.util.find_spec("roadrunner") is not None


def call(function, *args):
    """``function(*args)`` in the worker process (started on first use)."""
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    return _pool.submit(function, *args).result()


def simulate(sbml, selections, times, start, rtol, atol=None, values=None, max_steps=1_000_000):
    """A time course of ``selections`` at ``times`` from ``start``. ``atol`` is one value or a
    mapping state -> value; ``values`` are set before a reset (which evaluates the triggers)."""
    import roadrunner

    rr = roadrunner.RoadRunner(sbml)
    for name, value in (values or {}).items():
        rr.setValue(name, float(value))
    if values is not None:
        rr.reset()
    rr.integrator.relative_tolerance = rtol
    if isinstance(atol, dict):
        order = [rr.model.getStateVectorId(i) for i in range(len(atol))]
        rr.integrator.absolute_tolerance = [float(atol[name]) for name in order]
    elif atol is not None:
        rr.integrator.absolute_tolerance = float(atol)
    rr.integrator.maximum_num_steps = max_steps
    rr.timeCourseSelections = ["time", *selections]
    return np.asarray(rr.simulate(times=[start, *times]))[1:, 1:]


def evaluate(sbml, points, names):
    """The value of each of ``names`` (e.g. ``"x'"`` for a rate) at each point (time,
    {state: value})."""
    import roadrunner

    rr = roadrunner.RoadRunner(sbml)
    results = []
    for t, states in points:
        for state, value in states.items():
            rr.setValue(state, float(value))
        rr.model.setTime(float(t))
        results.append({name: float(rr.getValue(name)) for name in names})
    return results
