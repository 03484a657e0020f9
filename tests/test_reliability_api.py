"""Python API numerics: every bad tolerance, step limit, output grid or population setting stops
``simulate``, ``simulate_population`` and ``simulate_population_chunks`` with a one-line
``ArgumentError`` naming the argument, before anything is compiled; the solver status is a
``Status`` enumeration whose members are the messages ``Solution.failures()`` prints.

One model (``Multiphasic``, the cheapest) and one 3-point output grid, so the few legal solves
share their compiled functions."""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cartpk
from cartpk import ArgumentError, Status

cartpk.enable_x64()

MODEL = cartpk.Multiphasic()
PARAMS = MODEL.default_params()
#: Away from the peak (day 9.3), where the closed form is accurate to 2e-3 (test_multiphasic).
TIMES = np.array([2.0, 30.0, 100.0])
POPULATION = {name: np.full(2, float(value)) for name, value in PARAMS.items()}


def _single(**kwargs):
    times = kwargs.pop("times", TIMES)
    return cartpk.simulate(MODEL, PARAMS, None, times, **kwargs)


def _population(**kwargs):
    times = kwargs.pop("times", TIMES)
    return cartpk.simulate_population(MODEL, POPULATION, None, times, **kwargs)


def _chunks(**kwargs):
    times = kwargs.pop("times", TIMES)
    return cartpk.simulate_population_chunks(MODEL, POPULATION, None, times, **kwargs)


ENTRY_POINTS = {"simulate": _single, "simulate_population": _population, "chunks": _chunks}

#: (keyword arguments, message fragment): bad for every entry point.
SOLVE_CASES = [
    (dict(rtol=-1.0), "rtol = -1 is not in (0, 1): use a relative tolerance such as 1e-08"),
    (dict(rtol=math.nan), "rtol = nan is not in (0, 1)"),
    (dict(rtol=0.0), "rtol = 0 is not in (0, 1)"),
    (dict(rtol=math.inf), "rtol = inf is not in (0, 1)"),
    (dict(rtol=1.0), "rtol = 1 is not in (0, 1)"),
    (dict(rtol="tight"), "rtol must be a number, got 'tight'"),
    (dict(rtol=[1e-8, 1e-6]), "rtol must be a scalar, got shape (2,)"),
    (dict(atol_scale=-1.0), "atol_scale = -1 is not in (0, inf): use a factor such as 1"),
    (dict(atol_scale=0.0), "atol_scale = 0 is not in (0, inf)"),
    (dict(atol_scale=math.nan), "atol_scale = nan is not in (0, inf)"),
    (dict(atol_scale=math.inf), "atol_scale = inf is not in (0, inf)"),
    (dict(max_steps=0), "max_steps must be a positive integer (solver steps per dose interval), "),
    (dict(max_steps=-5), "max_steps must be a positive integer"),
    (dict(max_steps=100.5), "max_steps must be a positive integer"),
    (dict(max_steps=None), "max_steps must be a positive integer"),
    (dict(max_steps=True), "max_steps must be a positive integer"),
    (dict(times=[]), "times must be a non-empty 1-D array of days, got shape (0,)"),
    (dict(times=[[1.0, 2.0]]), "times must be a non-empty 1-D array of days, got shape (1, 2)"),
    (dict(times=[1.0, math.nan]), "times must be finite, got nan at index 1: remove it"),
    (dict(times=[1.0, math.inf]), "times must be finite, got inf at index 1"),
    (dict(times=[1.0, 5.0, 3.0]), "times must be non-decreasing, got 5 then 3 at index 2: sort"),
    (dict(times="day 7"), "times must be an array of days, got 'day 7'"),
    # Multiphasic's state on day 0 is the post-infusion level: an earlier start was silently
    # wrong (day 2 came out at 525 instead of 36 copies/ug from times [-3, 2])
    (dict(times=[-3.0, 2.0]), "times must be >= 0 d for Multiphasic, whose initial state holds"),
]

#: (keyword arguments, message fragment): bad population settings.
POPULATION_CASES = [
    (dict(chunk_size=0), "chunk_size must be a positive integer (patients per compiled batch)"),
    (dict(chunk_size=-2), "chunk_size must be a positive integer"),
    (dict(chunk_size=1.5), "chunk_size must be a positive integer"),
    (dict(chunk_size=True), "chunk_size must be a positive integer"),
    (dict(devices=[]), "devices must name at least one device, e.g. jax.devices()"),
    (dict(progress="yes"), "progress must be a function progress(done, total) or None"),
    (dict(stepping="adaptive"), "stepping must be one of ('auto', 'shared', 'per_patient')"),
]


def _assert_one_line(error, fragment):
    message = str(error.value)
    assert type(error.value) is ArgumentError
    assert fragment in message, message
    assert "\n" not in message


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("case", range(len(SOLVE_CASES)))
def test_bad_solve_arguments(entry, case):
    kwargs, fragment = SOLVE_CASES[case]
    with pytest.raises(ArgumentError) as error:
        ENTRY_POINTS[entry](**kwargs)
    _assert_one_line(error, fragment)


@pytest.mark.parametrize("entry", ["simulate_population", "chunks"])
@pytest.mark.parametrize("case", range(len(POPULATION_CASES)))
def test_bad_population_arguments(entry, case):
    """Also for ``simulate_population_chunks``: raised when it is called, not at the first chunk."""
    kwargs, fragment = POPULATION_CASES[case]
    with pytest.raises(ArgumentError) as error:
        ENTRY_POINTS[entry](**kwargs)
    _assert_one_line(error, fragment)


@pytest.mark.parametrize(
    "params, regimens",
    [({name: np.zeros(0) for name in PARAMS}, None), (PARAMS, [])],
    ids=["empty params", "empty regimens"],
)
def test_a_population_without_patients(params, regimens):
    for run in (cartpk.simulate_population, cartpk.simulate_population_chunks):
        with pytest.raises(ArgumentError) as error:
            run(MODEL, params, regimens, TIMES)
        _assert_one_line(error, "there are no patients to simulate")


def test_argument_errors_are_cartpk_value_errors_not_parameter_errors():
    assert issubclass(ArgumentError, cartpk.CartpkError)
    assert issubclass(ArgumentError, ValueError)
    assert not issubclass(ArgumentError, cartpk.ParameterError)
    with pytest.raises(ArgumentError, match="rtol = nan"):  # not blamed on the parameters
        _single(rtol=math.nan)


def test_every_exception_class_lives_in_errors():
    from cartpk import errors, estimation

    for name in ("ArgumentError", "ConvergenceError", "SimulationWarning"):
        assert getattr(cartpk, name) is getattr(errors, name)
    assert estimation.ConvergenceError is errors.ConvergenceError
    assert issubclass(cartpk.SimulationWarning, UserWarning)


#: member -> (integer code in ``Solution.status`` and ``status`` columns, message fragment).
STATUS_TABLE = {
    "successful": (0, ""),
    "max_steps_reached": (1, "the solver reached max_steps within one dose interval (raise"),
    "nonfinite_state": (2, "a state became NaN or infinite"),
    "illegal_parameters": (3, "a parameter is non-finite or outside its legal range"),
    "solver_failed": (4, "the solver failed (step size underflow or divergent implicit solve)"),
    "negative_state": (5, "a state that must stay non-negative became negative beyond the"),
}


def test_status_members_codes_and_messages():
    """The codes are written to tables: they must never change."""
    assert len(Status) == len(STATUS_TABLE)
    for name, (code, fragment) in STATUS_TABLE.items():
        member = getattr(Status, name)
        assert jax.tree.leaves(member)[0] == code, name
        assert Status[member].startswith(fragment), name
        assert (Status[member] == "") == (name == "successful")


def test_a_successful_solve_and_its_status():
    solution = _single()
    assert int(solution.status) == 0 and bool(solution.ok)
    assert bool(solution.result == Status.successful)
    assert solution.failures() == []


def test_step_limit_failure_message_and_warning():
    with pytest.warns(cartpk.SimulationWarning) as record:
        solution = _single(max_steps=2)
    assert int(solution.status) == 1
    assert bool(solution.result == Status.max_steps_reached)
    expected = f"the patient: {Status[Status.max_steps_reached]}"
    assert solution.failures() == [expected]
    assert str(record[0].message).startswith(expected + " [cmax=2.4e+04, tmax=9.3")


def test_population_failures_name_the_patient_and_the_reason():
    bad = {**POPULATION, "fb": np.array([0.0079, 1.5])}
    with pytest.warns(cartpk.SimulationWarning, match="1 of 2 patients failed: patient 1: a param"):
        solution = cartpk.simulate_population(MODEL, bad, None, TIMES)
    assert np.asarray(solution.status).tolist() == [0, 3]
    np.testing.assert_array_equal(solution.result == Status.illegal_parameters, [False, True])
    assert solution.failures(bad) == [
        f"patient 1: {Status[Status.illegal_parameters]} [cmax=2.4e+04, tmax=9.3, foldx=3900, "
        "alpha=0.16, beta=0.0032, fb=1.5]"
    ]
    frame = solution.to_frame()
    assert frame.groupby("patient").status.first().tolist() == [0, 3]


def test_status_under_jit_and_vmap():
    """Traced tolerances are not checked; illegal parameters are reported per patient."""

    @jax.jit
    def failed(fb):
        solution = jax.vmap(lambda f: cartpk.simulate(MODEL, {**PARAMS, "fb": f}, None, TIMES))(fb)
        return solution.status, solution.result == Status.illegal_parameters

    status, illegal = failed(jnp.array([0.5, 2.0]))
    np.testing.assert_array_equal(status, [0, 3])
    np.testing.assert_array_equal(illegal, [False, True])


def test_edge_legal_arguments_give_the_closed_form():
    """NumPy/JAX scalars, a loose and a tight tolerance, a repeated output time and chunks larger
    than the population all simulate correctly."""
    reference = np.asarray(MODEL.closed_form(jnp.asarray(TIMES), PARAMS))
    runs = {
        "numpy scalars": _single(rtol=np.float32(1e-8), atol_scale=jnp.asarray(0.5)),
        "tight": _single(rtol=1e-12, max_steps=np.int64(4096)),
        "population": _population(chunk_size=np.int64(5), rtol=jnp.asarray(1e-8)),
    }
    for name, solution in runs.items():
        values = np.asarray(solution.observables["blood_copies_per_ug"]).reshape(-1, 3)
        assert np.all(np.asarray(solution.status) == 0), name
        np.testing.assert_allclose(values, np.broadcast_to(reference, values.shape), rtol=2e-3)
    loose = _single(rtol=0.5)
    assert int(loose.status) == 0 and np.all(np.isfinite(loose.observables["blood_copies_per_ug"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", cartpk.SimulationWarning)
        repeated = _single(times=[0.0, 2.0, 2.0])
    level = np.asarray(repeated.observables["blood_copies_per_ug"])
    assert level[1] == level[2]
    np.testing.assert_allclose(level[1], reference[0], rtol=2e-3)
