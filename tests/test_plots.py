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


# -- scenario figures (small tables shaped like docs/scenario_results/combinations/*.csv) --------

ARMS = ["CAR-T alone", "+ anti-VEGF 5 mg/kg d-7, d7", "+ hyaluronidase", "armoured", "+ RT"]
BAND_TIMES = np.arange(-10.0, 181.0, 5.0)


def _bands(arms=ARMS, observables=("blood_cells_per_ul", "tumour_car_t")):
    """A ``trajectories.csv`` table: arm k's median is (k + 1) x a rise-and-decay profile."""
    profile = np.where(BAND_TIMES < 0, 0.0, BAND_TIMES * np.exp(-BAND_TIMES / 20.0))
    scale = {"blood_cells_per_ul": 10.0, "tumour_car_t": 1e6, "exhausted_fraction": 0.01}
    frames = [
        pd.DataFrame(
            {
                "arm": arm,
                "observable": name,
                "time_d": BAND_TIMES,
                "p05": 0.3 * (k + 1) * scale[name] * profile,
                "median": (k + 1) * scale[name] * profile,
                "p95": 3.0 * (k + 1) * scale[name] * profile,
            }
        )
        for name in observables
        for k, arm in enumerate(arms)
    ]
    return pd.concat(frames, ignore_index=True)


def _endpoints(arms=ARMS[:2], n=20):
    """An ``endpoints.csv`` table: one row per patient x arm."""
    rng = np.random.default_rng(1)
    frames = []
    for k, arm in enumerate(arms):
        frames.append(
            pd.DataFrame(
                {
                    "arm": arm,
                    "patient": np.arange(n),
                    "cmax_cells_per_ul": rng.lognormal(3.0, 0.5, n) * (k + 1),
                    "persistence_d": rng.uniform(20, 180, n),
                    # intratumoural AUC with zeros: a linear axis up to ~1e9 cells·d
                    "tumour_car_t_auc_cell_d": np.r_[0.0, rng.uniform(1e8, 2e9, n - 1)],
                    # nadir equal in every patient up to 1e-9 %: no difference between arms
                    "tumour_nadir_percent": 14.169545 + 1e-9 * rng.uniform(size=n),
                    # a narrow range far from zero: the old axis showed an offset (+1.277e3)
                    "tumour_change_percent": 1277.2 + 0.8 * rng.uniform(size=n),
                    "exhausted_fraction_d28": np.full(n, np.nan),  # no values at all
                    "status": 0,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _offsets(figure):
    figure.canvas.draw()  # offset texts are set when the ticks are drawn
    return [
        text
        for ax in figure.axes
        if ax.get_visible()
        for text in (ax.xaxis.get_offset_text().get_text(), ax.yaxis.get_offset_text().get_text())
        if text
    ]


@pytest.mark.parametrize("n", range(1, 13))
def test_panel_grid_fits_every_arm_without_an_empty_row(n):
    rows, cols = plots._panel_grid(n)
    assert rows * cols >= n and rows * cols - n < cols
    assert cols <= 4 and (n > 3 or rows == 1)


def test_trajectories_one_panel_per_arm_with_the_reference_in_grey():
    bands = _bands()
    figure = plots.trajectories(bands, "tumour_car_t")
    panels = [ax for ax in figure.axes if ax.get_visible()]
    assert len(panels) == len(ARMS)
    assert [ax.get_title() for ax in panels] == ["CAR-T alone (reference)", *ARMS[1:]]
    reference = bands[(bands.arm == ARMS[0]) & (bands.observable == "tumour_car_t")]["median"]
    for ax in panels[1:]:  # the reference arm's median, grey, in every other panel
        grey = [line for line in ax.get_lines() if line.get_color() == plots.REFERENCE_COLOUR]
        assert len(grey) == 1
        np.testing.assert_allclose(grey[0].get_ydata(), reference)
    assert all(ax.get_yscale() == "log" for ax in panels)  # shared, log as before
    assert panels[0].get_shared_x_axes().joined(panels[0], panels[-1])
    # 5 arms: 2 rows x 3; units on the left column and under the lowest panel of each column
    unit = "intratumoural CAR-T (cells)"
    assert [ax.get_ylabel() for ax in panels] == [unit, "", "", unit, ""]
    xlabels = [ax.get_xlabel() for ax in panels]
    assert xlabels == ["", "", *["time after CAR-T infusion (d)"] * 3]
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend == ["median of the arm", "5-95 % of patients", "CAR-T alone: median"]
    assert not _offsets(figure)
    plots._pyplot().close(figure)


def test_trajectories_draw_the_persistence_limit_on_circulating_car_t():
    bands = _bands()
    figure = plots.trajectories(bands, "blood_cells_per_ul", persistence_limit=5.0)
    panels = [ax for ax in figure.axes if ax.get_visible()]
    for ax in panels:
        limit = [line for line in ax.get_lines() if np.allclose(line.get_ydata(), 5.0)]
        assert len(limit) == 1 and limit[0].get_linestyle() == "--"
        assert limit[0].get_label() == "persistence limit 5 cells/µL"
        assert "persistence limit 5 cells/µL" in [t.get_text() for t in ax.texts]
    assert panels[0].get_ylim()[0] <= 5.0
    plots._pyplot().close(figure)
    default = plots.trajectories(bands, "blood_cells_per_ul", arms=ARMS[:1])
    (ax,) = [ax for ax in default.axes if ax.get_visible()]
    assert any(np.allclose(line.get_ydata(), 1.0) for line in ax.get_lines())
    assert "persistence limit 1 cell/µL" in [t.get_text() for t in ax.texts]
    assert ax.get_title() == "circulating CAR-T: median and 5-95 % band (CAR-T alone)"
    plots._pyplot().close(default)
    tumour = plots.trajectories(bands, "tumour_car_t")  # not in cells/µL: no limit
    assert not any("persistence" in t.get_text() for ax in tumour.axes for t in ax.texts)
    plots._pyplot().close(tumour)


def test_trajectories_linear_axes_have_no_offset_and_unknown_observables_fail():
    figure = plots.trajectories(_bands(observables=("exhausted_fraction",)), "exhausted_fraction")
    assert all(ax.get_yscale() == "linear" for ax in figure.axes if ax.get_visible())
    assert not _offsets(figure)
    plots._pyplot().close(figure)
    with pytest.raises(CartpkError, match="no rows of 'nope'"):
        plots.trajectories(_bands(), "nope")


def test_endpoint_distributions_without_offsets_constants_or_empty_panels():
    names = [
        "cmax_cells_per_ul",
        "persistence_d",
        "tumour_car_t_auc_cell_d",
        "exhausted_fraction_d28",
        "tumour_nadir_percent",
        "tumour_change_percent",
    ]
    figure = plots.endpoint_distributions(_endpoints(), names, persistence_limit=2.0)
    panels = [ax for ax in figure.axes if ax.get_visible()]
    assert len(panels) == 5  # the exhausted fraction has no finite value: dropped
    assert "exhausted fraction, day 28" in figure.get_supxlabel()
    by_label = {ax.get_xlabel(): ax for ax in panels}
    assert "persistence (d with circulating CAR-T ≥ 2 cells/µL)" in by_label
    nadir = by_label["tumour nadir (% of baseline change)"]
    assert [t.get_text().split(":")[0] for t in nadir.texts] == ["no difference between arms"]
    assert not nadir.patches and not nadir.get_xticks().size
    change = by_label["tumour change at horizon (%)"]
    assert not change.texts and change.get_lines()  # a real (narrow) spread: box plots
    assert not _offsets(figure)
    labels = [t.get_text() for t in change.get_xticklabels()]
    assert any(label.startswith("1277.") for label in labels)  # the values, not an offset
    plots._pyplot().close(figure)


def test_response_bars_are_drawn_and_explained_when_no_arm_responds():
    summary = pd.DataFrame(
        {
            "arm": ARMS[:3],
            "subgroup": "all",
            "objective_response_percent": 0.0,
            "complete_response_percent": 0.0,
        }
    )
    figure = plots.response_bars(summary)
    ax = figure.axes[0]
    assert len(ax.patches) == 2 * 3  # CR + PR and CR bars of every arm, of width 0
    texts = [t.get_text() for t in ax.texts]
    assert texts[:3] == ["0 % (CR 0 %)"] * 3
    assert any(t.startswith("no objective response in any arm") for t in texts)
    assert [t.get_text() for t in ax.get_yticklabels()] == ARMS[:3]
    assert ax.get_legend() is None and not figure.legends  # the note replaces it
    plots._pyplot().close(figure)
    summary.loc[1, ["objective_response_percent", "complete_response_percent"]] = [25.0, 10.0]
    some = plots.response_bars(summary)
    texts = [t.get_text() for t in some.axes[0].texts]
    assert texts == ["0 % (CR 0 %)", "25 % (CR 10 %)", "0 % (CR 0 %)"]
    assert [t.get_text() for t in some.legends[0].get_texts()] == ["CR + PR", "CR"]
    plots._pyplot().close(some)
