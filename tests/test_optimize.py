"""Schedule optimisation: the gradient through the solver against finite differences, and the
optimiser against a brute-force grid on the anti-VEGF timing problem."""

from __future__ import annotations

from pathlib import Path

import diffrax as dfx
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from cartpk.cli import main
from cartpk.optimize import ScheduleProblem
from cartpk.scenario import load_scenario

SCENARIO = Path(__file__).parent / "scenarios" / "timing.toml"


@pytest.fixture(scope="module")
def problem():
    return ScheduleProblem(load_scenario(SCENARIO))


@pytest.fixture(scope="module")
def optimum(tmp_path_factory):
    out = tmp_path_factory.mktemp("optimize") / "results"
    assert main(["optimize", str(SCENARIO), "--out", str(out), "--quiet"]) == 0
    table = pd.read_csv(out / "optimum.csv").set_index("variable")
    assert {"history.csv", "seed_grid.csv", "optimize.png", "manifest.json"} <= {
        p.name for p in out.iterdir()
    }
    return table


@pytest.mark.parametrize("start_day", [-14.0, -3.5, 5.25])
def test_gradient_matches_finite_differences(problem, start_day):
    """d(mean tumour CAR-T AUC)/d(start day) through the solver vs central differences."""
    x = jnp.asarray([start_day])
    value, grad = problem.value_and_grad(x)
    h = 1e-3
    plus, minus = problem.evaluate([[start_day + h], [start_day - h]])
    assert float(value) == pytest.approx(problem.evaluate([[start_day]])[0], rel=1e-12)
    assert float(grad[0]) == pytest.approx(
        (plus - minus) / (2 * h), rel=1e-4, abs=1e-6 * float(value)
    )


def test_optimiser_finds_the_brute_force_optimum(problem, optimum):
    """On a 1-day grid of start days the best point is where the optimiser ends (within a day),
    and the optimiser's value is at least the grid's best."""
    days = np.arange(-28.0, 14.0 + 1e-9, 1.0)
    values = problem.evaluate(days[:, None])
    best_day = days[np.argmax(values)]
    found = optimum.loc["start_day", "value"]
    assert abs(found - best_day) <= 1.0, (found, best_day)
    assert optimum.loc["mean tumour_car_t_auc_cell_d", "value"] >= values.max() * (1 - 1e-6)
    # the window: an interior optimum, better than both ends of the range
    assert -28.0 < found < 14.0 and values.max() > max(values[0], values[-1])


def test_simulate_options_and_forward_mode(problem):
    """An explicit solver and forward-mode differentiation (cheaper to compile for a few
    variables) give the default's value and gradient."""
    fast = ScheduleProblem(
        load_scenario(SCENARIO), solver=dfx.Tsit5(), rtol=1e-10, adjoint=dfx.ForwardMode()
    )
    x = jnp.asarray([-3.5])
    value, grad = fast.value_and_grad(x)
    expected_value, expected_grad = problem.value_and_grad(x)
    assert float(value) == pytest.approx(float(expected_value), rel=1e-6)
    assert float(grad[0]) == pytest.approx(float(expected_grad[0]), rel=1e-4)
