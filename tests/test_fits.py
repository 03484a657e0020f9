"""The fits in fits/zuma1_axicel and fits/blood_vs_solid re-run at reduced size.

Tolerances:
- ZUMA-1: every fitted median and quartile within 2 sampling SEs of the reported one (the SE of a
  log quantile of ~20 patients, from that day's IQR; fits/zuma1_axicel/fit.py). The typical cmax
  and alpha of a 24-subject fit may differ from the committed 200-subject fit by the Monte-Carlo
  error of a median of 24 virtual subjects, 1.2533 omega/sqrt(24) on the log scale; the test
  allows 2.5 of those. The committed fitted statistics are reproduced exactly (1e-6) by
  re-simulating the committed estimates with the committed size and seed.
- Blood vs solid: every target within 2 sigma (its stated band) and estimates within their
  parameter bounds; the barrier parameters stay non-identifiable (sensitivity < 2 % of the
  estimated parameters'; 0.7 % at the committed fit).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cartpk
from cartpk.estimation.summary_stats import simulate_summaries

FITS = Path(__file__).resolve().parents[1] / "fits"


def _load(folder: str):
    spec = importlib.util.spec_from_file_location(f"{folder}_fit", FITS / folder / "fit.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_zuma1_committed_results_are_reproduced():
    """The committed estimates, simulated with the committed virtual trial, give the committed
    fitted statistics."""
    script = _load("zuma1_axicel")
    results = FITS / "zuma1_axicel" / "results"
    committed = pd.read_csv(results / "targets.csv")
    manifest = json.loads((results / "manifest.json").read_text())
    typical, omegas = script.fitted_params(pd.read_csv(results / "estimates.csv"))
    values = simulate_summaries(
        cartpk.Multiphasic(),
        script.targets(),
        omegas,
        params=typical,
        n_virtual=manifest["options"]["n_virtual"],
        seed=manifest["options"]["seed"],
    )
    assert manifest["options"]["converged"]
    np.testing.assert_allclose(values, committed.fitted, rtol=1e-6)
    assert (committed.z.abs() < 2).all()


def test_zuma1_fit_at_reduced_size(tmp_path):
    script = _load("zuma1_axicel")
    n = 24
    fit, table, estimates = script.run(n, tmp_path)
    assert fit.converged
    assert (table.z.abs() < 2).all(), table
    est = fit.estimates
    assert all(np.isfinite(v) and v > 0 for v in est.values())
    assert est["beta"] < est["alpha"] and est["fb"] < 1
    assert all(0.05 < est[f"omega_{k}"] < 3 for k in script.ESTIMATE_OMEGAS)
    committed = pd.read_csv(FITS / "zuma1_axicel" / "results" / "estimates.csv")
    committed = dict(zip(committed.parameter, committed.estimate, strict=True))
    for name in ("cmax", "alpha"):
        tolerance = 2.5 * 1.2533 * committed[f"omega_{name}"] / np.sqrt(n)
        assert abs(np.log(est[name] / committed[name])) < tolerance, name
    assert {"targets.csv", "estimates.csv", "targets.png", "manifest.json"} <= {
        p.name for p in tmp_path.iterdir()
    }


def test_blood_vs_solid_calibration_at_reduced_size(tmp_path):
    script = _load("blood_vs_solid")
    result = script.run(n_virtual=4, out=tmp_path)
    assert result["converged"]
    targets = result["targets"]
    assert (targets.residual.abs() < 2).all(), targets
    ratio = targets.set_index("target").fitted["blood/solid peak ratio"]
    assert 5 <= ratio <= 10
    model = cartpk.BloodStromaTumour("solid")
    specs = model.parameter_set.specs
    for row in result["estimates"].itertuples():
        assert np.isfinite(row.estimate) and specs[row.parameter].lower < row.estimate
        assert row.estimate < specs[row.parameter].upper
    assert np.all(result["singular_values"] > 1.0)  # the estimated block is well conditioned
    ident = result["identifiability"]
    estimated = ident[ident.status == "estimated"].sensitivity_norm.min()
    for name in ("antigen_access", "k_extravasation", "k_infiltration", "k_tumour_egress"):
        assert ident.sensitivity_norm[name] < 0.02 * estimated, name
    committed = pd.read_csv(FITS / "blood_vs_solid" / "results" / "estimates.csv")
    for row, ours in zip(committed.itertuples(), result["estimates"].estimate, strict=True):
        # 4 instead of 32 virtual patients: within the committed 95 % CI, widened 3x for the
        # Monte-Carlo error of medians of 4 patients
        assert abs(np.log(ours / row.estimate)) < 3 * 1.96 * row.se_log, row.parameter


@pytest.mark.parametrize("folder", ["zuma1_axicel", "blood_vs_solid"])
def test_committed_fit_files(folder):
    results = FITS / folder / "results"
    assert {"targets.csv", "estimates.csv", "targets.png", "manifest.json"} <= {
        p.name for p in results.iterdir()
    }
    manifest = json.loads((results / "manifest.json").read_text())
    assert manifest["options"]["converged"] and manifest["command"].startswith("python fits/")
