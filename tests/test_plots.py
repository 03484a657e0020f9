"""Plots: population bands straight from a Solution, observed data with BLQ records, tornado.

Solutions are built by hand (no solve, nothing to compile)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import cartpk
from cartpk import endpoints, plots
from cartpk.errors import CartpkError

TIMES = np.linspace(0.0, 28.0, 8)


def _solution(n=40, status=None):
    """A batch of ``n`` patients whose blood level is patient-index x a time profile."""
    rng = np.random.default_rng(0)
    scale = rng.lognormal(size=(n, 1))
    profile = 1.0 + TIMES
    observables = {
        "blood_cells_per_ul": jnp.asarray(scale * profile),
        "tumour_car_t": jnp.asarray(1e6 * scale * profile),
    }
    states = {"stroma_effector": jnp.asarray(1e5 * scale * profile)}
    status = np.zeros(n, dtype=int) if status is None else status
    return cartpk.Solution(
        jnp.broadcast_to(TIMES, (n, TIMES.size)),
        states,
        observables,
        jnp.asarray(status),
        jnp.zeros(n, dtype=int),
    )


def test_band_table_percentiles_per_arm_without_failures():
    status = np.zeros(40, dtype=int)
    status[3] = 2  # a failed patient is left out
    solution = _solution(status=status)
    arms = np.repeat(["A", "B"], 20)
    table = endpoints.band_table(solution, ["blood_cells_per_ul", "stroma_effector"], arms)
    assert list(table.columns) == ["arm", "observable", "time_d", "p05", "median", "p95"]
    values = np.asarray(solution.observables["blood_cells_per_ul"])
    a = table[(table.arm == "A") & (table.observable == "blood_cells_per_ul")]
    keep = np.r_[0:3, 4:20]
    np.testing.assert_allclose(a["median"], np.median(values[keep], axis=0))
    np.testing.assert_allclose(a["p95"], np.percentile(values[keep], 95, axis=0))
    np.testing.assert_allclose(a["time_d"], TIMES)
    assert set(table.observable) == {"blood_cells_per_ul", "stroma_effector"}
    with pytest.raises(CartpkError, match="3 labels for 40 patients"):
        endpoints.band_table(solution, ["blood_cells_per_ul"], ["A", "B", "C"])
    with pytest.raises(CartpkError, match="no observable or state 'nope'"):
        endpoints.band_table(solution, ["nope"])


def test_solution_bands_one_panel_per_compartment():
    """Default panels: the CAR-T of blood, stroma and tumour, with units on the axes, one
    median line per arm and log axes for cell counts."""
    figure = plots.solution_bands(_solution(), arms=np.repeat(["alone", "+ HA"], 20))
    axes = figure.axes
    assert [ax.get_title() for ax in axes] == ["blood CAR-T", "stroma CAR-T", "tumour CAR-T"]
    assert [ax.get_ylabel() for ax in axes] == [
        "circulating CAR-T (cells/µL)",
        "stromal CAR-T (cells)",
        "intratumoural CAR-T (cells)",
    ]
    assert all(ax.get_xlabel() == "time after CAR-T infusion (d)" for ax in axes)
    assert all(ax.get_yscale() == "log" for ax in axes)
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert labels == ["alone", "+ HA"]
    plots._pyplot().close(figure)


def test_solution_bands_labels_states_from_the_model(tmp_path):
    model = cartpk.BloodStromaTumour("solid")
    figure = plots.solution_bands(_solution(), ["stroma_effector"], model=model)
    assert figure.axes[0].get_ylabel() == "stromal CAR-T (cells)"
    # a state without a LABELS entry takes description and unit from the model
    label = plots._label("tumour_exhausted", model)
    assert label == ("exhausted CAR-T in tumour nests (cells)", True)
    assert plots.save(figure, tmp_path / "bands.png").stat().st_size > 1000


def test_observed_data_marks_blq_at_the_limit():
    frame = pd.DataFrame(
        {
            "ID": [1, 1, 1, 1, 2, 2, 2],
            "TIME": [0.0, 0.0, 7.0, 28.0, 0.0, 7.0, 28.0],
            "DV": [np.nan, np.nan, 150.0, np.nan, np.nan, 40.0, 12.0],
            "AMT": [1e8, 0, 0, 0, 1e8, 0, 0],
            "EVID": [1, 0, 0, 0, 1, 0, 0],
            "MDV": [1, 0, 0, 0, 1, 0, 0],
            "CENS": [0, 1, 0, 1, 0, 0, 0],
            "LLOQ": [np.nan, 5.0, 5.0, 5.0, np.nan, 5.0, 5.0],
        }
    )
    data = cartpk.read_nonmem(frame)
    prediction = pd.DataFrame(
        {"time_d": TIMES, "p05": TIMES + 1, "median": TIMES + 2, "p95": TIMES + 3}
    )
    figure = plots.observed_data(data, ylabel="CAR-T (cells/µL)", prediction=prediction)
    ax = figure.axes[0]
    blq = [line for line in ax.get_lines() if line.get_marker() == "v" and len(line.get_xdata())]
    assert len(blq) == 1  # subject 1 only
    np.testing.assert_array_equal(blq[0].get_xdata(), [0.0, 28.0])
    np.testing.assert_array_equal(blq[0].get_ydata(), [5.0, 5.0])  # drawn at the LLOQ
    assert ax.get_ylabel() == "CAR-T (cells/µL)" and ax.get_xlabel() == "time (d)"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["model median, 5-95 % band", "observed", "below limit (BLQ)"]
    assert any(np.allclose(line.get_ydata(), 5.0) for line in ax.get_lines())  # LLOQ line
    plots._pyplot().close(figure)


def test_tornado_orders_by_magnitude():
    table = pd.DataFrame(
        {
            "endpoint": ["auc0_28_cells_per_ul_d"] * 3 + ["custom"] * 3,
            "parameter": ["a", "b", "c"] * 2,
            "normalized": [0.1, -2.0, 0.5, 1.0, 0.0, -3.0],
        }
    )
    figure = plots.tornado(table)
    first, second = figure.axes
    assert [t.get_text() for t in first.get_yticklabels()] == ["b", "c", "a"]
    assert [t.get_text() for t in second.get_yticklabels()] == ["c", "a", "b"]
    assert first.get_title() == "auc0_28_cells_per_ul_d (cells/uL*d)"
    assert first.get_xlabel() == "normalized sensitivity d ln y / d ln p (-)"
    widths = [bar.get_width() for bar in first.patches]
    assert widths == [-2.0, 0.5, 0.1]
    top = plots.tornado(table, top=1)
    assert [len(ax.patches) for ax in top.axes] == [1, 1]
    plots._pyplot().close(figure)
    plots._pyplot().close(top)
