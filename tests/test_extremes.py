"""Extreme but legal inputs: a dose of 1 cell or 1e11 cells, a tumour already gone, no antigen, and
a 5-year horizon, through ``cartpk.simulate`` and once through ``cartpk simulate``.

Every solve must succeed (status 0) with finite states, cells non-negative within the documented
tolerance, and move in the physically expected direction. One output grid per model (to 5 years)
and one regimen shape, so each model compiles once.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
import pytest

import cartpk
from cartpk.cli import main
from cartpk.units import cells_per_ul_to_copies_per_ug, whole_body_to_cells_per_ul

cartpk.enable_x64()

FIVE_YEARS = 1826.0
#: Day 0 (pre-dose), dense over the expansion, sparse to 5 years (d).
TIMES = np.concatenate(
    [[0.0], np.arange(0.5, 60.01, 0.5), np.arange(63.0, 365.0, 3.0), [364.0]]
    + [np.arange(371.0, FIVE_YEARS, 7.0), [FIVE_YEARS]]
)
TIMES = np.unique(TIMES)
STANDARD = 1e8  # cells, the tisagenlecleucel-like dose of the calibration
MODES = ("blood", "solid")


@functools.cache
def model(mode: str) -> cartpk.BloodStromaTumour:
    return cartpk.BloodStromaTumour(mode)


@functools.cache
def run(mode: str, dose: float = STANDARD, **overrides: float):
    """One patient, ``dose`` CAR-T IV on day 0; returns (params, solution) with NumPy leaves."""
    m = model(mode)
    params = m.default_params(**overrides)
    regimen = cartpk.Regimen.single(dose, "blood_effector")
    with warnings.catch_warnings():
        warnings.simplefilter("error", cartpk.SimulationWarning)  # a failed solve fails the test
        solution = cartpk.simulate(m, params, regimen, TIMES)
    states = {k: np.asarray(v) for k, v in solution.states.items()}
    observables = {k: np.asarray(v) for k, v in solution.observables.items()}
    return params, solution, states, observables


def assert_sane(m, solution, states) -> None:
    """Status 0, every state finite, non-negative states above the tolerance of the positivity
    check of ``simulate`` (-10 atol - 1e-6 x the state's largest magnitude)."""
    assert int(solution.status) == 0, solution.failures()
    for spec in m.states:
        values = states[spec.name]
        assert np.all(np.isfinite(values)), spec.name
        if spec.nonnegative:
            floor = -10 * spec.atol - 1e-6 * np.max(np.abs(values))
            assert values.min() >= floor, (spec.name, values.min())


def expansion_bound(mode, params, dose, states) -> np.ndarray:
    """Upper bound on total CAR-T (cells) at each output time.

    The model has no CAR-T carrying capacity. Cells are created only by homeostatic proliferation,
    at most ``h(t) = rho_homeostatic niche0 exp(-k_niche t)`` per cell, and by antigen-driven
    proliferation, which ratio-dependent stimulation caps at ``rho A / kappa`` cells/d (``A``: the
    antigen within reach). Gronwall: ``total(t) <= exp(H(t)) (dose + rho / kappa int_0^t A)`` with
    ``H = int_0^t h <= rho_homeostatic niche0 / k_niche`` (a factor of at most e^6.2 = 480).
    """
    p = {k: float(v) for k, v in params.items()}
    t = TIMES
    growth = p["rho_homeostatic"] * p["niche0"] * -np.expm1(-p["k_niche"] * t) / p["k_niche"]
    antigen = states["tumour_cells"] * (p["antigen_access"] if mode == "solid" else 1.0)
    # upper sum of int A (the larger end of each step: A is monotone over a grid step)
    steps = np.maximum(antigen[1:], antigen[:-1]) * np.diff(t)
    integral = np.concatenate([[0.0], np.cumsum(steps)])
    return np.exp(growth) * (dose + p["rho"] / p["kappa"] * integral)


def peak(values, until: float = FIVE_YEARS) -> float:
    return float(values[TIMES <= until].max())


def at(values, day: float) -> float:
    return float(values[np.searchsorted(TIMES, day)])


# -- one cell --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_one_cell(mode):
    """1 CAR-T cell: no negative cells, an early peak far below the standard dose's, and (blood
    mode, where leukaemia cells stimulate it directly) a late expansion instead of an early one."""
    params, solution, states, obs = run(mode, 1.0)
    assert_sane(model(mode), solution, states)
    _, _, _, standard = run(mode)
    total = obs["total_car_t"]
    assert at(total, 7.0) > 0.0
    assert peak(total, 28.0) < 1e-6 * peak(standard["total_car_t"], 28.0)
    assert np.all(total <= expansion_bound(mode, params, 1.0, states) * (1 + 1e-6) + 1e-9)
    if mode == "solid":
        # circulating CAR-T see no antigen: kinetics proportional to the dose
        early = (TIMES > 0) & (TIMES <= 364)
        np.testing.assert_allclose(total[early], 1e-8 * standard["total_car_t"][early], rtol=1e-3)
    else:
        # the leukaemia grows first (uncontrolled), then the single cell's clone catches up
        assert at(obs["tumour_burden"], 28.0) > at(obs["tumour_burden"], 0.0)
        assert TIMES[obs["blood_car_t"].argmax()] > TIMES[standard["blood_car_t"].argmax()] + 28
        assert at(obs["tumour_burden"], FIVE_YEARS) < 1.0


# -- 1e11 cells ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_1e11_cells(mode):
    """1e11 cells (1000 x the standard dose): a higher but finite peak, a fold expansion no larger
    than the standard dose's (stimulation is ratio-dependent), below the Gronwall bound."""
    params, solution, states, obs = run(mode, 1e11)
    assert_sane(model(mode), solution, states)
    _, _, _, standard = run(mode)
    assert peak(obs["blood_car_t"]) > peak(standard["blood_car_t"])
    fold, fold_standard = peak(obs["total_car_t"]) / 1e11, peak(standard["total_car_t"]) / STANDARD
    assert fold <= fold_standard * (1 + 1e-6)
    assert np.all(obs["total_car_t"] <= expansion_bound(mode, params, 1e11, states) * (1 + 1e-6))
    assert obs["tumour_burden"].min() <= standard["tumour_burden"].min()
    if mode == "blood":
        assert fold < 0.5 * fold_standard  # saturation: strictly less expansion per cell


# -- tumour already gone ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_no_tumour(mode):
    """tumour_cells0 = 0 (the model has no extinction threshold: 0 is the eradicated tumour). It
    stays exactly 0, no CAR-T reach or exhaust in tumour nests, expansion is homeostatic only."""
    params, solution, states, obs = run(mode, tumour_cells0=0.0)
    assert_sane(model(mode), solution, states)
    for name in ("tumour_cells", "tumour_cells_negative", "tumour_effector", "tumour_exhausted"):
        assert np.all(states[name] == 0.0), name
    assert np.all(np.isfinite(obs["tumour_car_t_per_g"])) and np.all(obs["tumour_car_t"] == 0.0)
    homeostatic = expansion_bound(mode, params, STANDARD, states)  # A = 0
    assert np.all(obs["total_car_t"] <= homeostatic * (1 + 1e-6))
    assert peak(obs["total_car_t"]) > STANDARD  # the lymphodepleted niche still expands them
    if mode == "blood":  # no antigen either way: the same CAR-T kinetics as an antigen-negative
        _, _, _, negative = run(mode, antigen_negative_fraction=1.0)
        np.testing.assert_allclose(obs["total_car_t"], negative["total_car_t"], rtol=1e-5)


# -- no antigen ------------------------------------------------------------------------------------

NO_ANTIGEN = [
    ("blood", {"antigen_negative_fraction": 1.0}),
    ("solid", {"antigen_negative_fraction": 1.0}),
    ("solid", {"antigen_access": 0.0}),
]


@pytest.mark.parametrize(
    "mode, overrides", NO_ANTIGEN, ids=[f"{m}-{next(iter(o))}" for m, o in NO_ANTIGEN]
)
def test_no_antigen(mode, overrides):
    """Antigen-negative tumour (or antigen out of reach): no antigen-driven expansion, no
    exhaustion, and an antigen-negative tumour is never killed."""
    params, solution, states, obs = run(mode, **overrides)
    assert_sane(model(mode), solution, states)
    _, _, _, standard = run(mode)
    assert np.max(states["tumour_exhausted"]) < 1e-6  # exhaustion needs antigen
    no_antigen = {"tumour_cells": np.zeros_like(TIMES)}
    bound = expansion_bound(mode, params, STANDARD, no_antigen)
    assert np.all(obs["total_car_t"] <= bound * (1 + 1e-6))  # homeostatic expansion only
    if mode == "blood":
        assert peak(obs["total_car_t"]) < 0.2 * peak(standard["total_car_t"])
    else:
        assert peak(obs["tumour_car_t"]) < peak(standard["tumour_car_t"])
    if "antigen_negative_fraction" in overrides:
        assert np.all(states["tumour_cells"] == 0.0)
        burden = obs["tumour_burden"]
        assert np.all(np.diff(burden) >= -1e-9 * burden[:-1])  # grows, never killed
        assert at(burden, FIVE_YEARS) > 0.99 * float(params["tumour_capacity"])


@pytest.mark.parametrize("mode", MODES)
def test_no_antigen_no_lymphodepletion(mode):
    """No antigen and a closed niche (niche0 = 0): nothing makes CAR-T divide, so the total never
    exceeds the dose."""
    _, solution, states, obs = run(mode, antigen_negative_fraction=1.0, niche0=0.0)
    assert_sane(model(mode), solution, states)
    assert np.all(obs["total_car_t"] <= STANDARD * (1 + 1e-8))
    assert np.all(np.diff(obs["total_car_t"][1:]) <= 1e-8 * STANDARD)  # decline only


# -- five years ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_five_years(mode):
    """The standard dose over 1826 d: CAR-T contract, then decay toward 0 (the model's floor) at
    the memory death rate; the tumour stays within its carrying capacity."""
    params, solution, states, obs = run(mode)
    assert_sane(model(mode), solution, states)
    total = obs["total_car_t"]
    assert 0 < at(total, FIVE_YEARS) < at(total, 364.0) < peak(total)
    late = TIMES >= 730
    slope = -np.polyfit(TIMES[late], np.log(total[late]), 1)[0]
    assert slope == pytest.approx(float(params["delta_memory"]), rel=0.02)
    burden = obs["tumour_burden"]
    assert burden.max() <= float(params["tumour_capacity"]) * (1 + 1e-9)
    if mode == "blood":
        assert np.all(burden[TIMES >= 60] < 1.0)  # leukaemia cleared and not back
    else:
        assert at(burden, FIVE_YEARS) > 0.99 * float(params["tumour_capacity"])


# -- the multiphasic model -------------------------------------------------------------------------

STEIN = cartpk.Multiphasic()


@functools.cache
def stein(extra: float = 0.0, **overrides: float):
    """Multiphasic with ``extra`` copies/ug added to the effectors on day 0."""
    params = STEIN.default_params(**overrides)
    regimen = cartpk.Regimen.single(extra, "effector")
    with warnings.catch_warnings():
        warnings.simplefilter("error", cartpk.SimulationWarning)
        solution = cartpk.simulate(STEIN, params, regimen, TIMES)
    states = {k: np.asarray(v) for k, v in solution.states.items()}
    return params, solution, states, np.asarray(solution.observables["blood_copies_per_ug"])


def copies(cells: float) -> float:
    """Copies/ug gDNA of ``cells`` CAR-T spread over the blood (5 L, 1000 nucleated cells/uL)."""
    return float(cells_per_ul_to_copies_per_ug(whole_body_to_cells_per_ul(cells)))


@pytest.mark.parametrize("cells", [1.0, 1e11])
def test_multiphasic_dose_extremes(cells):
    """The published model is dose-independent and linear: a dose adds its level to the day-0
    level ``cmax / foldx``, and the whole course scales by ``1 + dose foldx / cmax``."""
    params, solution, states, level = stein(copies(cells))
    assert_sane(STEIN, solution, states)
    _, _, _, reference = stein()
    scale = 1 + copies(cells) * float(params["foldx"]) / float(params["cmax"])
    after = TIMES > 0
    np.testing.assert_allclose(level[after], scale * reference[after], rtol=1e-4)
    if cells == 1.0:
        assert abs(peak(level) / peak(reference) - 1) < 1e-5
    else:
        assert np.isfinite(peak(level)) and peak(level) > 1e3 * peak(reference)


def test_multiphasic_without_expansion():
    """foldx = 1 (its lower bound, no expansion): the level never rises above its day-0 value."""
    params, solution, states, level = stein(foldx=1.0)
    assert_sane(STEIN, solution, states)
    assert np.all(level <= float(params["cmax"]) * (1 + 1e-8))
    assert level[-1] < level[1]


def test_multiphasic_early_peak():
    """tmax = 0.01 d (legal): the gate narrows with tmax, so after the peak the level is Stein's
    closed form (a fixed 0.02 d gate expanded about 1e7-fold instead of foldx)."""
    params, solution, states, level = stein(tmax=0.01)
    assert_sane(STEIN, solution, states)
    expected = np.asarray(STEIN.closed_form(TIMES, params))
    after = TIMES >= 0.5
    np.testing.assert_allclose(level[after], expected[after], rtol=2e-3)
    assert level.max() <= float(params["cmax"]) * (1 + 1e-6)


@pytest.mark.parametrize(
    "overrides", [{}, {"beta": 0.0}, {"fb": 0.0}], ids=["default", "beta=0", "fb=0"]
)
def test_multiphasic_five_years(overrides):
    """At 5 years the level is Stein's closed form: the persistence phase, a constant floor
    ``cmax fb`` with beta = 0, and nothing left (not negative) with fb = 0."""
    params, solution, states, level = stein(**overrides)
    assert_sane(STEIN, solution, states)
    expected = float(STEIN.closed_form(FIVE_YEARS, params))
    floor = float(params["cmax"] * params["fb"])
    if overrides.get("fb") == 0.0:
        assert abs(level[-1]) < 1e-9 * float(params["cmax"])
    else:
        assert level[-1] == pytest.approx(expected, rel=2e-3)
        assert level[-1] <= floor * (1 + 1e-9)
    if overrides.get("beta") == 0.0:
        assert level[-1] == pytest.approx(floor, rel=2e-3)


# -- the same cases from a scenario file -----------------------------------------------------------

EXTREMES = """\
name = "extremes"
disease = "blood"
horizon_days = 1826
output_step_days = 7

[population]
size = 2
seed = 3

[[arms]]
name = "standard"

[[arms]]
name = "one cell"
product = { dose_cells = 1 }

[[arms]]
name = "1e11 cells"
product = { dose_cells = 1e11 }

[[arms]]
name = "no tumour"
parameters = { tumour_cells0 = 0 }

[[arms]]
name = "no antigen"
parameters = { antigen_negative_fraction = 1 }
"""


def test_extremes_from_the_command_line(tmp_path, capsys):
    """``cartpk simulate`` over 5 years with every extreme as an arm: no failure, no warning, and
    endpoints that say what happened."""
    path = tmp_path / "extremes.toml"
    path.write_text(EXTREMES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. no division warnings for a tumour of 0 cells
        status = main(["simulate", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    captured = capsys.readouterr()
    assert status == 0 and captured.err == "", captured.err
    table = pd.read_csv(tmp_path / "out" / "endpoints.csv").set_index("arm")
    assert (table.status == 0).all()
    cmax = table.groupby(level=0).cmax_cells_per_ul.median()
    assert cmax["1e11 cells"] > cmax["standard"] > cmax["no antigen"]
    tmax = table.groupby(level=0).tmax_d.median()
    assert tmax["one cell"] > tmax["standard"] + 28  # delayed expansion
    for arm in ("standard", "1e11 cells"):  # cleared and not back: no progression
        assert (table.loc[arm, "best_response"] == "CR").all()
        assert not table.loc[arm, "progressed"].any()
    gone = table.loc["no tumour"]
    assert (gone.best_response == "CR").all() and not gone.progressed.any()
    assert gone.tumour_change_percent.isna().all()  # no baseline to compare with
    negative = table.loc["no antigen"]
    assert (negative.best_response == "PD").all() and (negative.time_to_progression_d == 42).all()
    assert np.allclose(negative.tumour_change_percent, 900.0, rtol=1e-3)  # to capacity 1e12
    # the single cell: the leukaemia progresses before the delayed expansion clears it
    assert (table.loc["one cell", "best_response"] == "PD").all()
    assert (table.loc["one cell", "tumour_change_percent"] == -100.0).all()
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert (summary.failed == 0).all()
