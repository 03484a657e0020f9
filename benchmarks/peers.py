"""The benchmark scenario and the peers' integrators (scipy ``solve_ivp`` and libroadrunner).

Every tool integrates segment by segment between dose events, as cartpk does: a bolus is added to
its state at the event and the solver restarts there, so no solver can step over a dose. An
output time equal to a dose time reports the pre-dose value (cartpk's and NONMEM's convention).
"""

from __future__ import annotations

import time as _time

import equations as eq
import numpy as np

#: Log-normal between-patient variability: parameter -> omega (SD of log).
IIV = {
    "rho": 0.3,
    "k_antigen": 0.5,
    "delta_effector": 0.2,
    "k_extravasation": 0.4,
    "k_infiltration": 0.4,
    "k_exhaustion": 0.3,
    "tumour_cells0": 0.5,
    "tumour_growth": 0.3,
    "bev_clearance": 0.3,
    "hya_k_el": 0.3,
}

#: Output grid: daily for one year after the CAR-T infusion (d).
TIMES = np.arange(0.0, 365.0)

#: Error floor per state when computing relative errors: one cell for cell counts, 1e-6 for
#: relative microenvironment levels and drug amounts (mg or ug).
CELL_STATES = 9


def build_model():
    return eq.build_model()


def build_regimen():
    """1e8 CAR-T IV on day 0; bevacizumab 2 mg/kg (140 mg) every 14 d x 6 from day -7;
    PEGPH20 3 ug/kg (210 ug) twice weekly (days 0, 3, 7, 10, ...) for 4 weeks."""
    from cartpk import Regimen

    hya = Regimen.schedule(210.0, "hya_central", start=0.0, interval=7.0, count=4) + (
        Regimen.schedule(210.0, "hya_central", start=3.0, interval=7.0, count=4)
    )
    return (
        Regimen.single(1e8, "blood_effector")
        + Regimen.schedule(140.0, "bev_central", start=-7.0, interval=14.0, count=6)
        + hya
    )


def population(model, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` virtual patients: the varied parameters (log-normal around the defaults); every
    other parameter stays at its default (a scalar)."""
    rng = np.random.default_rng(seed)
    defaults = {k: float(v) for k, v in model.default_params().items()}
    params: dict = dict(defaults)
    eta = rng.standard_normal((n, len(IIV)))  # row i is patient i whatever n is
    for j, (name, omega) in enumerate(IIV.items()):
        params[name] = defaults[name] * np.exp(omega * eta[:, j])
    return params


def patient(params: dict, i: int) -> dict[str, float]:
    return {k: float(v[i]) if np.ndim(v) else float(v) for k, v in params.items()}


def dose_events(model):
    """(event times, boluses (events x states)) of the benchmark regimen; boluses only."""
    arrays = build_regimen().to_arrays(model.state_names)
    times, bolus, rate = (np.asarray(a) for a in (arrays.times, arrays.bolus, arrays.rate))
    if np.any(rate != 0):
        raise ValueError("the peers' integrators handle bolus doses only")
    return times, bolus


def segments(event_times, times):
    """(t0, t1, index of bolus or -1, output mask) for each integration segment."""
    t_start = min(times[0], event_times[0], 0.0)
    t_end = times[-1]
    starts = np.concatenate([[t_start], np.clip(event_times, t_start, t_end)])
    ends = np.concatenate([np.clip(event_times, t_start, t_end), [t_end]])
    out = []
    for k, (t0, t1) in enumerate(zip(starts, ends, strict=True)):
        mask = ((times > t0) & (times <= t1)) | ((k == 0) & (times == t0))
        out.append((t0, t1, k - 1, mask))
    return out


def relative_error(y, ref):
    """Max over patients, times and states of ``|y - ref| / max(|ref|, floor)``."""
    floor = np.array([1.0] * CELL_STATES + [1e-6] * (ref.shape[-1] - CELL_STATES))
    return float(np.max(np.abs(y - ref) / np.maximum(np.abs(ref), floor)))


# -- scipy ----------------------------------------------------------------------------------


def solve_scipy(rhs, p: dict, names, y0, events, times, method, rtol, atol):
    """One patient with ``scipy.integrate.solve_ivp`` -> (states (times x states), RHS calls)."""
    from scipy.integrate import solve_ivp

    event_times, bolus = events
    pv = [p[k] for k in names]
    ys = np.zeros((len(times), len(y0)))
    y = np.array(y0, dtype=float)
    nfev = 0
    for t0, t1, k, mask in segments(event_times, times):
        if k >= 0:
            y = y + bolus[k]
        if t1 <= t0:
            continue
        t_eval = np.concatenate([times[mask & (times < t1)], [t1]])
        if mask[0] and t0 == times[0]:
            ys[0] = y
        sol = solve_ivp(
            rhs, (t0, t1), y, method=method, t_eval=t_eval, rtol=rtol, atol=atol, args=(pv,)
        )
        if sol.status != 0:
            raise RuntimeError(f"solve_ivp {method} failed: {sol.message}")
        nfev += sol.nfev
        ys[mask & (times > t0)] = sol.y.T[: int(np.sum(mask & (times > t0)))]
        y = sol.y[:, -1]
    return ys, nfev


def run_scipy(model, params, indices, method, rtol, atol_scale, times=TIMES):
    """Loop over patients ``indices``; returns (states, seconds, RHS calls per patient)."""
    names = tuple(model.default_params())
    rhs = eq.python_rhs(names)
    atol = atol_scale * np.asarray(model.atol())
    events = dose_events(model)
    out, nfev = [], []
    start = _time.perf_counter()
    for i in indices:
        p = patient(params, i)
        ys, n = solve_scipy(rhs, p, names, eq.initial_state(p), events, times, method, rtol, atol)
        out.append(ys)
        nfev.append(n)
    return np.stack(out), _time.perf_counter() - start, float(np.mean(nfev))


# -- libroadrunner --------------------------------------------------------------------------


class RoadRunnerPeer:
    """libroadrunner (LLVM-compiled SBML, CVODE BDF) on the model exported to SBML."""

    def __init__(self, model, rtol, atol_scale):
        import roadrunner

        defaults = {k: float(v) for k, v in model.default_params().items()}
        start = _time.perf_counter()
        self.rr = roadrunner.RoadRunner(eq.sbml(defaults))
        self.compile_s = _time.perf_counter() - start
        rr = self.rr
        order = [rr.model.getStateVectorId(i) for i in range(len(eq.STATES))]
        self.perm = [eq.STATES.index(s) for s in order]  # state-vector slot -> our index
        atol = atol_scale * np.asarray(model.atol())
        rr.integrator.relative_tolerance = rtol
        rr.integrator.absolute_tolerance = [float(atol[j]) for j in self.perm]
        rr.integrator.maximum_num_steps = 100000
        rr.timeCourseSelections = ["time", *eq.STATES]
        self.param_names = list(defaults)
        ids = list(rr.model.getGlobalParameterIds())
        self.param_slots = [ids.index(k) for k in self.param_names]
        self.state_slots = [ids.index(s) for s in eq.STATES]
        self.events = dose_events(model)

    def solve(self, p: dict, times=TIMES):
        rr = self.rr
        set_values = rr.model.setGlobalParameterValues  # by index: 100x faster than by name
        set_values(self.param_slots, [p[k] for k in self.param_names])
        y = eq.initial_state(p)
        ys = np.zeros((len(times), len(y)))
        event_times, bolus = self.events
        for t0, t1, k, mask in segments(event_times, times):
            if k >= 0:
                y = y + bolus[k]
            if t1 <= t0:
                continue
            if mask[0] and t0 == times[0]:
                ys[0] = y
            set_values(self.state_slots, y)
            inner = times[mask & (times > t0) & (times < t1)]
            result = rr.simulate(times=[t0, *inner, t1])
            values = np.asarray(result)[:, 1:]
            ys[mask & (times > t0)] = values[1 : 1 + int(np.sum(mask & (times > t0)))]
            y = values[-1].copy()
        return ys

    def run(self, params, indices, times=TIMES):
        out = []
        start = _time.perf_counter()
        for i in indices:
            out.append(self.solve(patient(params, i), times))
        return np.stack(out), _time.perf_counter() - start
