"""The command line: the demo job end to end, and one-line errors with exit status 2."""

import json

import pandas as pd
import pytest

from cartpk.cli import main
from cartpk.scenario import bundled_scenario, load_scenario

ARMS = [arm.name for arm in load_scenario(bundled_scenario("combinations")).arms]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "results"
    assert main(["demo", "--out", str(out), "--patients", "2"]) == 0
    return out


def test_demo_writes_results_and_plots(demo_dir):
    names = {p.name for p in demo_dir.iterdir()}
    assert {"endpoints.csv", "summary.csv", "trajectories.csv"} <= names
    assert {"blood_cells_per_ul.png", "tumour_car_t.png", "endpoints.png", "manifest.json"} <= names
    summary = pd.read_csv(demo_dir / "summary.csv")
    assert list(summary["arm"]) == ARMS
    assert (summary["failed"] == 0).all()
    endpoints = pd.read_csv(demo_dir / "endpoints.csv")
    assert len(endpoints) == 2 * len(ARMS)
    alone = summary.set_index("arm").loc["CAR-T alone"]
    armoured = summary.set_index("arm").loc["CCL19/IL-7 armoured CAR-T"]
    assert armoured["tumour_car_t_auc_cell_d_median"] > alone["tumour_car_t_auc_cell_d_median"]
    manifest = json.loads((demo_dir / "manifest.json").read_text())
    assert manifest["schema"] == "cartpk-results/1" and manifest["command"] == "cartpk demo"
    assert sorted(manifest["files"]) == sorted(names)


def test_demo_refuses_to_overwrite_without_force(demo_dir, capsys):
    before = (demo_dir / "summary.csv").read_bytes()
    assert main(["demo", "--out", str(demo_dir), "--patients", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "use --force" in err and "Traceback" not in err
    assert (demo_dir / "summary.csv").read_bytes() == before


@pytest.mark.parametrize(
    "argv, message",
    [
        (["demo", "--patients", "lots"], "argument --patients: invalid int value: 'lots'"),
        (["nonsense"], "argument command: invalid choice: 'nonsense'"),
        (["check", "/no/such/file.csv"], "file not found"),
    ],
)
def test_user_errors_are_one_line(argv, message, capsys):
    try:
        status = main(argv)
    except SystemExit as exit:
        status = exit.code
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert err.count("\n") == 1
