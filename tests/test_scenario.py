"""Scenario files end to end: the directions the literature supports, batched == single runs,
result files, and one-line errors for bad scenario files.

One small scenario (``tests/scenarios/directions.toml``: 3 patients x 6 arms, two disease
settings) runs once through the command line; the tests read its results.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cartpk.cli import main
from cartpk.endpoints import endpoint_table
from cartpk.errors import ScenarioError
from cartpk.scenario import REFERENCE_WEIGHT_KG, load_scenario, parse_scenario
from cartpk.simulate import simulate

SCENARIO = Path(__file__).parent / "scenarios" / "directions.toml"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("scenario") / "results"
    assert main(["simulate", str(SCENARIO), "--out", str(out), "--quiet"]) == 0
    summary = pd.read_csv(out / "summary.csv")
    return out, summary[summary.subgroup == "all"].set_index("arm")


def _median(summary, arm, endpoint):
    return summary.loc[arm, f"{endpoint}_median"]


def test_result_files(results):
    out, summary = results
    names = {p.name for p in out.iterdir()}
    assert {"endpoints.csv", "summary.csv", "trajectories.csv", "manifest.json"} <= names
    assert {"inputs", "endpoints.png", "tumour_car_t.png", "response.png"} <= names
    assert (out / "inputs" / "scenario.toml").read_bytes() == SCENARIO.read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["versions"]["jax"] and manifest["options"]["seed"] == 7
    endpoints = pd.read_csv(out / "endpoints.csv")
    assert len(endpoints) == 3 * 6 and (endpoints.status == 0).all()
    assert set(endpoints.subgroup) <= {"HA-high", "reference"}
    assert list(summary.index) == list(dict.fromkeys(endpoints.arm))


def test_anti_vegf_window(results):
    """Moderate anti-VEGF before CAR-T (normalization window) raises intratumoural CAR-T exposure;
    high, prolonged dosing prunes vessels and lowers it. Jain 2005, doi:10.1126/science.1104819;
    Mpekris 2020, doi:10.1073/pnas.1919764117."""
    _, summary = results
    alone = _median(summary, "alone", "tumour_car_t_auc_cell_d")
    assert _median(summary, "anti-VEGF window", "tumour_car_t_auc_cell_d") > 1.05 * alone
    assert _median(summary, "anti-VEGF high, prolonged", "tumour_car_t_auc_cell_d") < alone


def test_matrix_degradation_raises_infiltration(results):
    """Hyaluronidase degrades hyaluronan and raises the tumour/blood infiltration ratio
    (Zhang 2025 seed review, doi:10.3389/fimmu.2025.1672601; PEGPH20: Infante 2018,
    doi:10.1038/bjc.2017.327)."""
    _, summary = results
    ratio = _median(summary, "hyaluronidase", "infiltration_ratio")
    assert ratio > 1.05 * _median(summary, "alone", "infiltration_ratio")


def test_ccl19_il7_raises_infiltration_and_persistence(results):
    """7x19 CAR-T infiltrate more and persist longer. Adachi 2018, doi:10.1038/nbt.4086."""
    _, summary = results
    for endpoint in ("infiltration_ratio", "persistence_d", "tumour_car_t_auc_cell_d"):
        assert _median(summary, "CCL19/IL-7", endpoint) > 1.2 * _median(summary, "alone", endpoint)


def test_blood_vs_solid_peak_ratio(results):
    """Median circulating CAR-T peaks are 5-10x lower in solid tumours than in blood cancers
    (Zhang 2025 seed review, doi:10.3389/fimmu.2025.1672601), for the same patients."""
    _, summary = results
    ratio = _median(summary, "blood cancer", "cmax_cells_per_ul") / _median(
        summary, "alone", "cmax_cells_per_ul"
    )
    assert 5 < ratio < 10


def test_batched_results_equal_single_runs(results):
    """Each patient-arm of the batched run equals a single simulate() of the same patient."""
    out, _ = results
    endpoints = pd.read_csv(out / "endpoints.csv")
    scenario = load_scenario(SCENARIO)
    times = scenario.times()
    for arm_name, patient in (("anti-VEGF window", 1), ("CCL19/IL-7", 2), ("blood cancer", 0)):
        arm = next(a for a in scenario.arms if a.name == arm_name)
        model = scenario.model(arm.disease)
        params, covariates = scenario.population.sample(
            model, patient, patient + 1, scenario.arm_parameters(arm, model)
        )
        weight = covariates.weight_kg.iloc[0]
        solution = simulate(model, {k: v[0] for k, v in params.items()}, arm.regimen(weight), times)
        single = endpoint_table(
            {k: np.asarray(v)[None] for k, v in solution.observables.items()},
            times,
            scenario.outputs,
        )
        row = endpoints[(endpoints.arm == arm_name) & (endpoints.patient == patient)].iloc[0]
        for column in ("cmax_cells_per_ul", "tumour_car_t_auc_cell_d", "persistence_d"):
            assert row[column] == pytest.approx(single[column].iloc[0], rel=1e-9)
        assert weight != REFERENCE_WEIGHT_KG


# -- bad scenario files: one clear error naming the key (no model is compiled) -------------------

BASE = tomllib.loads(SCENARIO.read_text())


def _with(path: str, value):
    """BASE with the value at a dotted path (``arms.1.therapies.0.dose``) replaced or deleted."""
    data = json.loads(json.dumps(BASE))
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if isinstance(node, list):
        last = int(last)
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return data


_DELETE = object()

BAD = [
    ("nmae", "x", "unknown key 'nmae'"),
    ("name", _DELETE, "name is required"),
    ("horizon_days", -5, "horizon_days must be in (0, 3650]"),
    ("horizon_days", "long", "horizon_days must be a float"),
    ("disease", "liquid", "disease must be one of"),
    ("population.size", 0, "population.size must be in [1,"),
    ("population.size", 10**9, "population.size must be in [1,"),
    ("population.variability.rho", -0.1, "population.variability.rho must be in [0, 10]"),
    ("population.variability.not_a_parameter", 0.2, "unknown parameter 'not_a_parameter'"),
    ("population.subgroups.0.fraction", 1.5, "population.subgroups[0].fraction must be in (0, 1]"),
    ("population.subgroups.0.scale.ecm_density0", -1, "scale.ecm_density0 must be > 0"),
    ("population.covariates.weight_kg.median", 0, "weight_kg.median must be > 0"),
    ("arms", [], "at least one [[arms]]"),
    ("arms.1.name", "alone", "two arms are named 'alone'"),
    ("arms.1.therapies.0.name", "anti_vegff", "arms[1].therapies[0].name must be a dosed therapy"),
    ("arms.1.therapies.0.dose", -2, "arms[1].therapies[0].dose must be in [0, 1e+06] mg/kg"),
    ("arms.1.therapies.0.dose", float("nan"), "arms[1].therapies[0].dose must be finite"),
    ("arms.1.therapies.0.unit", "mg", "arms[1].therapies[0].unit must be 'mg/kg'"),
    ("arms.1.therapies.0.count", 0, "arms[1].therapies[0].count must be in [1, 1000]"),
    ("arms.1.therapies.0.count", 2.5, "arms[1].therapies[0].count must be a int"),
    ("arms.4.product.type", "ccl21", "arms[4].product.type must be one of"),
    ("arms.0.product", {"route": "oral"}, "arms[0].product.route must be one of"),
    ("arms.0.product", {"dose_cells": 0}, "arms[0].product.dose_cells must be in (0, 1e+12] cells"),
    ("arms.0.parameters", {"rho": 1e6}, "arm 'alone': parameter rho = 1e+06 1/d is outside"),
    ("arms.0.parameters", {"rhoo": 1.0}, "arms[0].parameters.rhoo is not a parameter"),
    ("outputs", {"trajectories": ["nope"]}, "unknown observable 'nope'"),
    ("outputs", {"tumour_exposure_days": 0}, "outputs.tumour_exposure_days must be > 0"),
    ("grid", {"arm": "nobody", "therapy": "anti_vegf"}, "grid.arm must be one of the arms: alone"),
    ("grid", {"arm": "alone", "therapy": "anti_vegf"}, "grid.therapy must be a therapy of arm"),
    (
        "grid",
        {"arm": "anti-VEGF window", "therapy": "anti_vegf", "start_day": []},
        "grid.start_day must be a non-empty list",
    ),
]


@pytest.mark.parametrize("path, value, message", BAD, ids=[f"{p}={v!r}" for p, v, _ in BAD])
def test_bad_scenario_is_one_clear_error(path, value, message):
    with pytest.raises(ScenarioError) as error:
        parse_scenario(_with(path, value), source="s.toml")
    text = str(error.value)
    assert text.startswith("s.toml: ") and message in text and "\n" not in text


def test_bad_scenario_from_the_command_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[population]\nsize = "many"\n')
    assert main(["simulate", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {bad}: population.size must be a int, got 'many'\n"
    assert not (tmp_path / "out").exists()
    broken = tmp_path / "broken.toml"
    broken.write_text("name = \n")
    assert main(["simulate", str(broken), "--out", str(tmp_path / "out")]) == 2
    assert "not valid TOML" in capsys.readouterr().err


EXAMPLES = sorted((Path(__file__).parents[1] / "scenarios").glob("*.toml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_scenarios_are_valid(path):
    """Every example in scenarios/ parses, and its committed results match its arms."""
    scenario = load_scenario(path)
    results = Path(__file__).parents[1] / "docs" / "scenario_results" / path.stem
    summary = pd.read_csv(results / "summary.csv")
    assert list(dict.fromkeys(summary.arm)) == [a.name for a in scenario.arms]
    recorded = json.loads((results / "manifest.json").read_text())["inputs"]["scenario"]
    copy = results / recorded.get("copy", "scenario.toml")  # inputs/scenario.toml, or older
    assert copy.read_bytes() == path.read_bytes()
