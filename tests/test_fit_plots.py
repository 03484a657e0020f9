"""Fit-diagnostic figures drawn from small hand-made tables (no fit, nothing to compile): every
visible axis has data and labels with units, time axes carry the model's time unit."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

from cartpk import plots  # noqa: E402

TIMES = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 12.0])
LIMIT = 0.2


def _diagnostics(n_subjects=6, seed=0):
    """A one-DVID diagnostics table (``diagnostics.csv`` layout) of a decaying PK profile in
    hours: the last sample of every other subject is below the limit."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(1, n_subjects + 1):
        scale = rng.lognormal(0.0, 0.3)
        pred = 5.0 * np.exp(-0.3 * TIMES)
        ipred = scale * pred
        dv = ipred * np.exp(0.1 * rng.standard_normal(TIMES.size))
        cens = np.zeros(TIMES.size, int)
        if i % 2 == 0:
            cens[-1] = 1
            dv[-1] = LIMIT
        cwres = np.where(cens == 0, rng.standard_normal(TIMES.size), np.nan)
        rows.append(
            pd.DataFrame(
                dict(
                    ID=i,
                    TIME=TIMES,
                    DV=dv,
                    DVID=1,
                    CENS=cens,
                    LIMIT=LIMIT,
                    PRED=pred,
                    IPRED=ipred,
                    IWRES=cwres,
                    CWRES=cwres,
                )
            )
        )
    return pd.concat(rows, ignore_index=True)


def _npde(diagnostics, seed=1):
    rng = np.random.default_rng(seed)
    table = diagnostics[["ID", "TIME", "DV", "DVID", "CENS", "LIMIT"]].copy()
    table["NPDE"] = rng.standard_normal(len(table))
    table["PD"] = stats.norm.cdf(table["NPDE"])
    return table


def _check_axes(fig, time_unit="h"):
    """Every visible axis has something drawn and x/y labels with a unit in parentheses;
    returns the visible axes."""
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert visible
    for ax in visible:
        assert ax.lines or ax.collections or ax.patches, ax.get_title()
        for label in (ax.get_xlabel(), ax.get_ylabel()):
            assert "(" in label and label.endswith(")"), (ax.get_title(), label)
        if ax.get_xlabel().startswith("time"):
            assert f"({time_unit})" in ax.get_xlabel()
    return visible


def test_individual_fits_marks_censored_values_at_their_limit():
    diagnostics = _diagnostics()
    fig = plots.individual_fits(diagnostics, {1: True}, time_unit="h", max_subjects=4)
    axes = _check_axes(fig)
    assert len(axes) == 4  # 6 subjects, the first 4 shown
    assert "4 of 6 subjects" in fig._suptitle.get_text()
    assert all(ax.get_yscale() == "log" for ax in axes)
    second = axes[1]  # ID 2: its last sample is BLQ
    assert second.get_title() == "ID 2"
    triangles = [line for line in second.lines if line.get_marker() == "v"]
    assert len(triangles) == 1 and triangles[0].get_markerfacecolor() == "none"
    np.testing.assert_allclose(triangles[0].get_ydata(), [LIMIT])
    limit_lines = [line for line in second.lines if line.get_linestyle() == ":"]
    np.testing.assert_allclose(limit_lines[0].get_ydata(), [LIMIT, LIMIT])
    # the IPRED and PRED lines pass through the table's values
    data = diagnostics[diagnostics.ID == 2]
    ydata = [np.asarray(line.get_ydata(), float) for line in second.lines]
    assert any(np.allclose(y, data.IPRED) for y in ydata if y.size == TIMES.size)
    assert any(np.allclose(y, data.PRED) for y in ydata if y.size == TIMES.size)
    plt.close(fig)
    fig = plots.individual_fits(diagnostics, {1: False}, time_unit="h")
    assert len(_check_axes(fig)) == 6 and fig.axes[0].get_yscale() == "linear"
    assert sum(not ax.get_visible() for ax in fig.axes) == 2  # 2 x 4 grid: 2 hidden
    plt.close(fig)


def test_residual_panels_with_and_without_npde():
    diagnostics = _diagnostics()
    fig = plots.residual_panels(diagnostics, time_unit="h", log_scale={1: True})
    axes = _check_axes(fig)
    assert len(axes) == 3
    assert axes[1].get_xscale() == "log"
    # QQ plot: sorted CWRES against R's ppoints (a = 1/2 for n > 10), from scipy
    cwres = np.sort(diagnostics["CWRES"].dropna().to_numpy())
    n = cwres.size
    offsets = axes[2].collections[0].get_offsets()
    np.testing.assert_allclose(offsets[:, 1], cwres)
    np.testing.assert_allclose(offsets[:, 0], stats.norm.ppf((np.arange(1, n + 1) - 0.5) / n))
    assert any(line.get_label() == "LOWESS" for line in axes[0].lines)
    plt.close(fig)
    fig = plots.residual_panels(diagnostics, _npde(diagnostics), time_unit="h")
    axes = _check_axes(fig)
    assert len(axes) == 6
    histogram = axes[4]
    assert histogram.patches and histogram.get_xlabel() == "NPDE (-)"
    # censored rows' (imputed) NPDE are drawn hollow
    assert len(axes[3].collections[1].get_offsets()) == int((diagnostics.CENS != 0).sum())
    plt.close(fig)


def test_eta_covariates_scatter_and_boxplots():
    rng = np.random.default_rng(2)
    n = 30
    individual = pd.DataFrame(
        dict(
            ID=np.arange(1, n + 1),
            eta_cmax=rng.normal(0, 0.3, n),
            eta_alpha=rng.normal(0, 0.2, n),
            DOSE=rng.choice([0.5, 1.0, 2.0, 4.0], n),
            WT=rng.normal(70, 10, n),
            SEX=rng.choice(["F", "M"], n),
        )
    )
    units = {"WT": "kg", "DOSE": "1e8 cells", "SEX": "-"}
    fig = plots.eta_covariates(individual, ["cmax", "eta_alpha"], units, categorical=["DOSE"])
    axes = _check_axes(fig)
    assert len(axes) == 6
    assert axes[0].get_xlabel() == "WT (kg)" and axes[0].get_ylabel().startswith("eta_cmax")
    assert axes[3].get_ylabel().startswith("eta_alpha")
    # DOSE (declared categorical) and SEX (strings): one box per level
    assert [t.get_text() for t in axes[1].get_xticklabels()] == ["0.5", "1.0", "2.0", "4.0"]
    assert [t.get_text() for t in axes[2].get_xticklabels()] == ["F", "M"]
    plt.close(fig)


def test_vpc_draws_observed_points_under_the_bands():
    rows = []
    for b, time in enumerate([1.0, 4.0]):
        for q, value in (("5", 1.0), ("50", 2.0), ("95", 4.0)):
            rows.append(dict(dvid=1, bin=b, time=time, percentile=q, observed=value))
        rows.append(dict(dvid=1, bin=b, time=time, percentile="blq", observed=0.1 * b))
    vpc = pd.DataFrame(rows)
    vpc["sim_median"] = vpc["observed"]
    vpc["sim_low"] = 0.8 * vpc["observed"]
    vpc["sim_high"] = 1.2 * vpc["observed"]
    points = pd.DataFrame(
        dict(
            dvid=1,
            time=[1.0, 1.0, 4.0, 4.0],
            value=[1.5, 3.0, 2.5, 0.5],
            censored=[False, False, False, True],
        )
    )
    observables = {1: ("blood_copies_per_ug", True)}
    fig = plots.visual_predictive_check(vpc, observables, 0.5, "h", observed=points)
    top = _check_axes(fig)[0]
    dots = next(line for line in top.lines if line.get_label() == "observations")
    np.testing.assert_allclose(dots.get_ydata(), [1.5, 3.0, 2.5])
    assert dots.get_zorder() < min(c.get_zorder() for c in top.collections)  # under the bands
    censored = next(line for line in top.lines if line.get_marker() == "v")
    np.testing.assert_allclose(censored.get_ydata(), [0.5])
    plt.close(fig)
    fig = plots.visual_predictive_check(vpc, observables, None, "h")  # no points: as before
    assert not any(line.get_label() == "observations" for line in fig.axes[0].lines)
    plt.close(fig)


def test_lowess_reproduces_a_line_and_statsmodels():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 10, 80)
    xs, ys = plots.lowess(x, 2.0 + 0.5 * x)  # a local linear fit reproduces a line exactly
    np.testing.assert_allclose(ys, 2.0 + 0.5 * xs, atol=1e-10)
    y = np.sin(x) + 0.3 * rng.standard_normal(80)
    y[5] += 5.0  # an outlier that the robustness iterations discount
    xs, ys = plots.lowess(x, y)
    statsmodels = pytest.importorskip("statsmodels.nonparametric.smoothers_lowess")
    reference = statsmodels.lowess(y, x, frac=2 / 3, it=3, delta=0.0)
    np.testing.assert_allclose(xs, reference[:, 0])
    np.testing.assert_allclose(ys, reference[:, 1], atol=1e-8)
    # more points than evaluation points: evaluated at quantiles, still close to the reference
    x = rng.uniform(0, 10, 2000)
    y = np.sin(x) + 0.3 * rng.standard_normal(2000)
    xs, ys = plots.lowess(x, y)
    assert xs.size == plots.LOWESS_POINTS
    reference = statsmodels.lowess(y, x, frac=2 / 3, it=3, delta=0.0)
    np.testing.assert_allclose(ys, np.interp(xs, reference[:, 0], reference[:, 1]), atol=0.02)
