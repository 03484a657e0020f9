"""Fits to published summary statistics: recovery of known typical values from the summaries of
a virtual trial simulated with them, the gradient of the loss, and the committed fits in fits/
re-run at reduced size."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import cartpk
from cartpk.estimation import SummaryStatistics, fit
from cartpk.estimation.summary_stats import Target, simulate_summaries

OMEGAS = {"cmax": 0.8, "tmax": 0.3, "alpha": 0.5}
TRUTH = {"cmax": 24000.0, "tmax": 9.3, "alpha": 0.16}  # Stein 2019 typical values
SHAPES = [
    Target("cmax", "geometric_mean", 1.0, n=40),
    Target("tmax", "median", 1.0, n=40),
    Target("auc0_28", "geometric_mean", 1.0, n=40),
    Target("level", "quantile", 1.0, day=28.0, q=0.75, n=40),
]


def test_recovers_typical_values_from_their_summaries():
    """Summaries simulated from the Stein 2019 typical values give those values back (start
    perturbed by +-30 to 50 %)."""
    model = cartpk.Multiphasic()
    values = simulate_summaries(model, SHAPES, OMEGAS, params=TRUTH, n_virtual=60)
    targets = [
        Target(t.statistic, t.summary, float(v), t.day, t.q, t.n)
        for t, v in zip(SHAPES, values, strict=True)
    ]
    start = {"cmax": 36000.0, "tmax": 6.5, "alpha": 0.08}
    fixed = [n for n in model.parameter_set.names if n not in ("cmax", "tmax", "alpha")]
    result = fit(
        model,
        targets,
        SummaryStatistics(n_virtual=60),
        initial=start,
        fixed=fixed,
        variability=OMEGAS,
    )
    assert result.converged
    for name, true in TRUTH.items():
        assert result.estimates[name] == pytest.approx(true, rel=1e-3)
    assert np.allclose(result.table.ratio, 1.0, atol=1e-4)


def test_committed_fits_rerun_at_reduced_size(tmp_path):
    """fits/summary_statistics.py with 40 virtual subjects: the (exactly determined) responder fit
    converges and matches every reported statistic within 1 %."""
    path = Path(__file__).parents[1] / "fits" / "summary_statistics.py"
    spec = importlib.util.spec_from_file_location("summary_statistics", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    fits = script.run(40, tmp_path)
    responders = fits["tisagenlecleucel_responders"]
    assert responders.converged and np.allclose(responders.table.ratio, 1.0, atol=0.01)
    assert (tmp_path / "tisagenlecleucel_responders" / "estimates.csv").exists()


def test_bad_targets_are_clear_errors():
    with pytest.raises(cartpk.CartpkError, match="a day is needed"):
        Target("level", "median", 1.0)
    with pytest.raises(cartpk.CartpkError, match="must be one of"):
        Target("cmin", "median", 1.0)
    with pytest.raises(cartpk.CartpkError, match="unknown parameter"):
        fit(cartpk.Multiphasic(), SHAPES[:1], SummaryStatistics(), initial={"cmaxx": 1.0})
    with pytest.raises(cartpk.CartpkError, match="SummaryStatistics does not use covariates"):
        fit(cartpk.Multiphasic(), SHAPES[:1], SummaryStatistics(), covariates=[object()])
    with pytest.raises(cartpk.CartpkError, match="non-empty list of Target"):
        fit(cartpk.Multiphasic(), [], SummaryStatistics())
