"""Reliability: bad input never gets through and never leaves a mess.

- A corpus of bad inputs runs through the command line (``cartpk.cli.main``): bad scenario files,
  bad datasets, bad arguments, missing files, bad output folders. Each must stop with exit status
  2 and exactly one ``error: ...`` line on stderr (no traceback), before any simulation, and leave
  every file in the working folder as it was (inputs, previous results, no temporary folders).
- Property tests (hypothesis) over scenario dicts, regimens and dataset text: valid input is
  accepted, invalid input raises the package's own error with a one-line message naming the key.
- A write failure or an interrupt while results are written keeps the previous results.
- Reproducibility: two runs of one tiny scenario give byte-identical tables, the manifest records
  versions, input hash, seed and options, and the input file is never modified. A run stopped by
  Ctrl-C leaves nothing behind, and running it again gives the same tables.

Only the reproducibility tests simulate (one tiny scenario, compiled once); every error path fails
before any model is compiled (the corpus replaces the simulation by a function that fails).
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import assert_one_error_line, run, tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cartpk
from cartpk.cli import main
from cartpk.commands import simulate as simulate_command
from cartpk.errors import DatasetError, ParameterError, RegimenError, ScenarioError
from cartpk.regimen import Dose, Regimen
from cartpk.scenario import (
    MAX_GRID_POINTS,
    MAX_OUTPUT_TIMES,
    PRODUCTS,
    ROUTES,
    TRAJECTORIES,
    parse_scenario,
)
from cartpk.therapies import THERAPIES

#: A tiny valid scenario (blood setting, no therapy: the cheapest model to compile).
TINY = """\
# Tiny scenario for the reliability tests: 2 patients x 2 arms, one disease setting.
name = "tiny"
disease = "blood"
horizon_days = 56

[population]
size = 2
seed = 11
[population.variability]
rho = 0.2
[population.covariates.weight_kg]
median = 70
cv = 0.2

[[arms]]
name = "alone"

[[arms]]
name = "double dose"
product = { dose_cells = 2e8 }

[outputs]
tumour_exposure_days = 56
trajectories = ["blood_cells_per_ul"]
"""

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


# -- helpers -------------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def results_folder(path: Path) -> Path:
    """A folder of previous cartpk results."""
    path.mkdir(parents=True)
    (path / "manifest.json").write_text('{"command": "cartpk simulate"}\n')
    (path / "endpoints.csv").write_text("arm,patient\nalone,0\n")
    return path


@pytest.fixture
def no_simulation(monkeypatch):
    """Make any attempt to simulate or optimise fail the test: errors must come first."""

    def must_not_run(*args, **kwargs):
        raise AssertionError("the command started a simulation instead of stopping")

    monkeypatch.setattr(simulate_command, "run_scenario", must_not_run)
    monkeypatch.setattr("cartpk.commands.optimize.optimize_schedule", must_not_run)


def check_rejected(argv, folder: Path, capsys, *messages: str, code: int = 2) -> None:
    """Run a command that must fail, and check the one-line error (containing every one of
    ``messages``) and that nothing in ``folder`` changed."""
    before = tree(folder)
    status, _, err = run(argv, capsys)
    for message in messages:
        assert_one_error_line(status, err, message, code)
    assert tree(folder) == before


# -- corpus: bad scenario files ------------------------------------------------------------------

BASE = """\
name = "corpus"
horizon_days = {horizon}
{top}
[population]
size = 2
{population}
[[arms]]
name = "alone"
{arm}
[[arms]]
name = "+ anti-VEGF"
therapies = [{therapy}]
{tables}
"""
DEFAULTS = {
    "horizon": "60",
    "top": "",
    "population": "",
    "arm": "",
    "therapy": '{ name = "anti_vegf", dose = 2, start_day = -7, count = 1 }',
    "tables": "",
}


def toml(**parts: str) -> str:
    return BASE.format(**{**DEFAULTS, **parts})


GRID = '[grid]\narm = "+ anti-VEGF"\ntherapy = "anti_vegf"\n'
OPTIMIZE = '[optimize]\narm = "+ anti-VEGF"\ntherapy = "anti_vegf"\n'
CORRELATE = "[population.variability]\nrho = 0.2\nk_kill = 0.3\n[[population.correlations]]\n"
SUBGROUP = '[[population.subgroups]]\nname = "HA-high"\n'
WEIGHT = "[population.covariates.weight_kg]\n"

#: (case, file content, message fragment)
BAD_SCENARIOS = [
    # whole files
    ("not TOML", "name = \n", "not valid TOML"),
    ("not UTF-8", b"\xff\xfe\x00n\x00a\x00m\x00e", "not a TOML file (not UTF-8 text)"),
    ("empty file", "", "name is required"),
    ("binary", b"\x89PNG\r\n\x1a\n", "not a TOML file (not UTF-8 text)"),
    ("top-level array table", "[[name]]\n", "name must be a str"),
    # top level
    ("unknown key", toml(top="nmae = 1"), "unknown key 'nmae'"),
    ("empty name", toml().replace('"corpus"', '"  "'), "name must not be empty"),
    ("unknown disease", toml(top='disease = "liquid"'), "disease must be one of blood, solid"),
    ("horizon negative", toml(horizon="-5"), "horizon_days must be in (0, 3650]"),
    ("horizon too short", toml(horizon="10"), "horizon_days must be >= 28"),
    ("horizon inf", toml(horizon="inf"), "horizon_days must be finite, got inf"),
    ("horizon nan", toml(horizon="nan"), "horizon_days must be finite, got nan"),
    ("horizon text", toml(horizon='"long"'), "horizon_days must be a float, got 'long'"),
    ("horizon bool", toml(horizon="true"), "horizon_days must be a float, got True"),
    ("step zero", toml(top="output_step_days = 0"), "output_step_days must be in (0, 60]"),
    ("step absurd", toml(top="output_step_days = 1e-6"), "output_step_days gives 6e+07 output"),
    ("step vs early dose", toml(top="output_step_days = 0.0065"), "from the first dose (day -7)"),
    ("parameter unknown", toml(top="parameters = { rhoo = 1 }"), "parameters.rhoo is not a"),
    ("parameter nan", toml(top="parameters = { rho = nan }"), "parameters.rho must be finite"),
    ("parameter out of bounds", toml(top="parameters = { rho = 11 }"), "rho = 11 1/d is outside"),
    # population
    ("no population", toml().replace("[population]\nsize = 2\n", ""), "population is required"),
    ("size zero", toml().replace("size = 2", "size = 0"), "population.size must be in [1, 1e+07]"),
    ("size absurd", toml().replace("size = 2", "size = 1e12"), "population.size must be a int"),
    ("size huge", toml().replace("size = 2", "size = 10_000_000_000"), "must be in [1, 1e+07]"),
    ("size text", toml().replace("size = 2", 'size = "many"'), "population.size must be a int"),
    ("seed negative", toml(population="seed = -1"), "population.seed must be in [0,"),
    ("chunk zero", toml(population="chunk_size = 0"), "population.chunk_size must be in [1,"),
    ("cv negative", toml(population="variability = { rho = -0.1 }"), "variability.rho must be in"),
    ("cv unknown", toml(population="variability = { nope = 0.1 }"), "unknown parameter 'nope'"),
    ("r = 1", toml(population=CORRELATE + 'parameters = ["rho", "k_kill"]\nr = 1.0'), "(-1, 1)"),
    ("r nan", toml(population=CORRELATE + 'parameters = ["rho", "k_kill"]\nr = nan'), "finite"),
    (
        "correlation of one parameter",
        toml(population=CORRELATE + 'parameters = ["rho"]\nr = 0.1'),
        "correlations[0].parameters must be two parameter names",
    ),
    (
        "correlation twice",
        toml(
            population=CORRELATE + 'parameters = ["rho", "k_kill"]\nr = 0.1\n'
            '[[population.correlations]]\nparameters = ["k_kill", "rho"]\nr = 0.2'
        ),
        "correlations[1].parameters k_kill/rho are correlated twice",
    ),
    (
        "correlation without variability",
        toml(population=CORRELATE + 'parameters = ["rho", "delta_effector"]\nr = 0.1'),
        "'delta_effector' has no variability to correlate",
    ),
    (
        "correlations not positive definite",
        toml(
            population="[population.variability]\nrho = 0.2\nk_kill = 0.2\ne50 = 0.2\n"
            + "".join(
                f'[[population.correlations]]\nparameters = ["{a}", "{b}"]\nr = {r}\n'
                for a, b, r in (
                    ("rho", "k_kill", 0.9),
                    ("rho", "e50", 0.9),
                    ("k_kill", "e50", -0.9),
                )
            )
        ),
        "the correlation matrix is not positive definite",
    ),
    ("fraction zero", toml(population=SUBGROUP + "fraction = 0"), "fraction must be in (0, 1]"),
    (
        "fractions above 1",
        toml(
            population=SUBGROUP
            + "fraction = 0.7\n"
            + SUBGROUP.replace("HA", "LA")
            + "fraction = 0.7"
        ),
        "population.subgroups: fractions sum to 1.4 > 1",
    ),
    (
        "subgroup named twice",
        toml(population=SUBGROUP + "fraction = 0.2\n" + SUBGROUP + "fraction = 0.2"),
        "population.subgroups[1].name 'HA-high' is taken",
    ),
    (
        "subgroup named reference",
        toml(population=SUBGROUP.replace("HA-high", "reference") + "fraction = 0.2"),
        "population.subgroups[0].name 'reference' is taken",
    ),
    (
        "subgroup sets out of bounds",
        toml(population=SUBGROUP + "fraction = 0.2\nset = { antigen_access = 2 }"),
        "subgroup 'HA-high': parameter antigen_access = 2 - is outside its legal range [0, 1]",
    ),
    (
        "subgroup scale negative",
        toml(population=SUBGROUP + "fraction = 0.2\nscale = { ecm_density0 = -1 }"),
        "scale.ecm_density0 must be > 0",
    ),
    ("covariate median 0", toml(population=WEIGHT + "median = 0"), "weight_kg.median must be > 0"),
    ("covariate no median", toml(population=WEIGHT + "cv = 0.2"), "weight_kg.median is required"),
    ("covariate cv", toml(population=WEIGHT + "median = 70\ncv = -1"), "weight_kg.cv must be in"),
    (
        "covariate named like a column",
        toml(population="[population.covariates.patient]\nmedian = 1"),
        "population.covariates.'patient' is not a usable covariate name",
    ),
    (
        "covariate effect unknown",
        toml(population=WEIGHT + "median = 70\neffects = { nope = 1 }"),
        "unknown parameter 'nope'",
    ),
    # arms and products
    ("no arms", toml().split("[[arms]]")[0], "at least one [[arms]] table is required"),
    ("arms not tables", toml(top="arms = 5").split("[[arms]]")[0], "arms must be a list, got 5"),
    ("arm without name", toml().replace('name = "alone"', ""), "arms[0].name is required"),
    ("arm names twice", toml().replace("+ anti-VEGF", "alone"), "two arms are named 'alone'"),
    ("arm unknown key", toml(arm="colour = 1"), "unknown key 'arms[0].colour'"),
    ("arm disease", toml(arm='disease = "liquid"'), "arms[0].disease must be one of"),
    ("arm parameter bounds", toml(arm="parameters = { rho = 1e6 }"), "arm 'alone': parameter rho"),
    ("product type", toml(arm='product = { type = "ccl21" }'), "arms[0].product.type must be"),
    ("product route", toml(arm='product = { route = "oral" }'), "arms[0].product.route must be"),
    (
        "product dose 0",
        toml(arm="product = { dose_cells = 0 }"),
        "dose_cells must be in (0, 1e+12]",
    ),
    ("product dose -", toml(arm="product = { dose_cells = -1e8 }"), "dose_cells must be in (0,"),
    ("product dose inf", toml(arm="product = { dose_cells = inf }"), "dose_cells must be finite"),
    ("product day", toml(arm="product = { day = 400 }"), "product.day must be in [-365, 365]"),
    ("product count", toml(arm="product = { count = 0 }"), "product.count must be in [1, 100]"),
    ("product every 0 d", toml(arm="product = { interval_days = 0 }"), "interval_days must be in"),
    # therapies
    ("unknown therapy", toml(therapy='{ name = "aspirin" }'), "therapies[0].name must be a dosed"),
    ("product as therapy", toml(therapy='{ name = "ccl19_il7" }'), "armoured products go in"),
    ("therapy not table", toml(therapy='"anti_vegf"'), "arms[1].therapies[0] must be a table"),
    ("no therapy name", toml(therapy="{ dose = 2 }"), "arms[1].therapies[0].name is required"),
    (
        "dose negative",
        toml(therapy='{ name = "anti_vegf", dose = -2 }'),
        "dose must be in [0, 1e+06]",
    ),
    (
        "dose nan",
        toml(therapy='{ name = "anti_vegf", dose = nan }'),
        "dose must be finite, got nan",
    ),
    (
        "dose inf",
        toml(therapy='{ name = "anti_vegf", dose = inf }'),
        "dose must be finite, got inf",
    ),
    ("dose -inf", toml(therapy='{ name = "anti_vegf", dose = -inf }'), "dose must be finite"),
    ("dose text", toml(therapy='{ name = "anti_vegf", dose = "5" }'), "dose must be a float"),
    (
        "dose absurd",
        toml(therapy='{ name = "anti_vegf", dose = 1e9 }'),
        "dose must be in [0, 1e+06]",
    ),
    ("dose unit", toml(therapy='{ name = "anti_vegf", unit = "mg" }'), "unit must be 'mg/kg'"),
    ("start too early", toml(therapy='{ name = "anti_vegf", start_day = -400 }'), "start_day must"),
    ("start too late", toml(therapy='{ name = "anti_vegf", start_day = 1e5 }'), "start_day must"),
    ("count zero", toml(therapy='{ name = "anti_vegf", count = 0 }'), "count must be in [1, 1000]"),
    ("count fraction", toml(therapy='{ name = "anti_vegf", count = 2.5 }'), "count must be a int"),
    ("count absurd", toml(therapy='{ name = "anti_vegf", count = 10000 }'), "count must be in [1,"),
    ("every 0 days", toml(therapy='{ name = "anti_vegf", interval_days = 0 }'), "(0, 3650] d"),
    (
        "every 1e300 days",
        toml(therapy='{ name = "anti_vegf", interval_days = 1e300 }'),
        "(0, 3650]",
    ),
    ("infusion -1 d", toml(therapy='{ name = "anti_vegf", infusion_days = -1 }'), "in [0, 30]"),
    ("therapy key", toml(therapy='{ name = "anti_vegf", when = 1 }'), "unknown key 'arms[1].thera"),
    # grid
    ("grid arm", toml(tables='[grid]\narm = "nobody"'), "grid.arm must be one of the arms"),
    ("grid therapy", toml(tables=GRID.replace("anti_vegf", "checkpoint")), "grid.therapy must be"),
    ("grid empty", toml(tables=GRID), "grid needs at least one of start_day, dose"),
    ("grid empty list", toml(tables=GRID + "dose = []"), "grid.dose must be a non-empty list"),
    ("grid not a list", toml(tables=GRID + "dose = 5"), "grid.dose must be a list, got 5"),
    ("grid dose -", toml(tables=GRID + "dose = [1, -1]"), "grid.dose.1 must be in [0, 1e+06]"),
    ("grid dose nan", toml(tables=GRID + "dose = [nan]"), "grid.dose.0 must be finite, got nan"),
    ("grid count 0", toml(tables=GRID + "count = [0, 1]"), "grid.count.0 must be in [1, 1000]"),
    ("grid repeats", toml(tables=GRID + "start_day = [0, 0]"), "grid.start_day repeats a value"),
    (
        "grid too large",
        toml(
            tables=GRID
            + "dose = [{}]\nstart_day = [{}]".format(*(",".join(map(str, range(1, 200))),) * 2)
        ),
        f"grid has 39601 points, more than {MAX_GRID_POINTS}",
    ),
    ("grid endpoint", toml(tables=GRID + 'dose = [1]\nendpoint = "cure"'), "grid.endpoint must be"),
    (
        "grid arm name clash",
        toml(arm="", tables=GRID + "dose = [1]").replace(
            'name = "alone"', 'name = "+ anti-VEGF [dose=1]"'
        ),
        "grid: two arms would be named '+ anti-VEGF [dose=1]'",
    ),
    # optimize
    (
        "optimize no bounds",
        toml(tables=OPTIMIZE),
        "optimize needs bounds for start_day and/or dose",
    ),
    ("optimize reversed", toml(tables=OPTIMIZE + "dose = [5, 1]"), "lower < upper, got [5, 1]"),
    ("optimize dose -", toml(tables=OPTIMIZE + "dose = [-5, 1]"), "dose bounds must be in [0,"),
    ("optimize start", toml(tables=OPTIMIZE + "start_day = [-1e4, 0]"), "start_day bounds must be"),
    ("optimize inf", toml(tables=OPTIMIZE + "dose = [1, inf]"), "lower < upper, got [1, inf]"),
    (
        "optimize tmax",
        toml(tables=OPTIMIZE + 'dose = [1, 2]\nendpoint = "tmax_d"'),
        "differentiable",
    ),
    (
        "optimize goal",
        toml(tables=OPTIMIZE + 'dose = [1, 2]\ngoal = "max"'),
        "optimize.goal must be",
    ),
    (
        "optimize patients",
        toml(tables=OPTIMIZE + "dose = [1, 2]\npatients = 0"),
        "patients must be",
    ),
    # outputs
    ("trajectory unknown", toml(tables='[outputs]\ntrajectories = ["nope"]'), "unknown observable"),
    ("no trajectories", toml(tables="[outputs]\ntrajectories = []"), "must be a non-empty list"),
    (
        "trajectory twice",
        toml(tables='[outputs]\ntrajectories = ["tumour_car_t", "tumour_car_t"]'),
        "outputs.trajectories must be a non-empty list of distinct observable names",
    ),
    (
        "exposure beyond horizon",
        toml(tables="[outputs]\ntumour_exposure_days = 90"),
        "outputs.tumour_exposure_days must be <= horizon_days (60), got 90.0",
    ),
    (
        "assessments absurd",
        toml(tables="[outputs]\nassessment_interval_days = 1e-6"),
        f"gives more than {MAX_OUTPUT_TIMES} assessments",
    ),
    ("limit zero", toml(tables="[outputs]\npersistence_limit_cells_per_ul = 0"), "must be > 0"),
    ("band patients", toml(tables="[outputs]\nband_patients = 0"), "band_patients must be > 0"),
]


@pytest.mark.parametrize(
    "content, message", [c[1:] for c in BAD_SCENARIOS], ids=[c[0] for c in BAD_SCENARIOS]
)
def test_bad_scenario_file(content, message, tmp_path, capsys, no_simulation):
    path = tmp_path / "bad.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    argv = ["simulate", str(path), "--out", str(tmp_path / "out")]
    check_rejected(argv, tmp_path, capsys, f"error: {path}: ", message)
    assert not (tmp_path / "out").exists()


def test_corpus_base_is_valid(tmp_path):
    """The corpus' base file (and each of its tables on its own) is valid, so every case above
    fails for the reason it names."""
    assert parse_scenario(tomllib.loads(toml()), source="base").arms
    parse_scenario(tomllib.loads(toml(tables=GRID + "dose = [1, 2]")), source="grid")
    parse_scenario(tomllib.loads(toml(tables=OPTIMIZE + "dose = [1, 2]")), source="optimize")
    parse_scenario(tomllib.loads(toml(population=WEIGHT + "median = 70")), source="weight")
    parse_scenario(
        tomllib.loads(toml(population=CORRELATE + 'parameters = ["rho", "k_kill"]\nr = 0.3')),
        source="correlation",
    )


def test_product_day_moves_the_baseline():
    """The output grid starts at the earliest dose, CAR-T included (pre-treatment baseline)."""
    scenario = parse_scenario(tomllib.loads(toml(arm="product = { day = -10 }")), source="s")
    assert scenario.times()[0] == -10.0


# -- corpus: bad datasets ------------------------------------------------------------------------

HEADER = "ID,TIME,DV,AMT,EVID,MDV\n"
#: (case, file content, message fragment)
BAD_DATASETS = [
    ("empty", "", "empty file (no header line)"),
    ("header only", HEADER, "no data rows"),
    ("not UTF-8", b"ID,TIME,DV\n\xff\xfe,0,1\n", "not a CSV file (not UTF-8 text)"),
    ("binary", b"ID,TIME\x00,DV\n1,0,1\n", "not a CSV file (binary content)"),
    ("spaces", "ID TIME DV\n1 0 1\n", "not a comma-, semicolon- or tab-separated file"),
    ("no TIME", "ID,DV\n1,1\n", "missing required column TIME"),
    ("no DV or AMT", "ID,TIME\n1,0\n", "missing required column DV or AMT"),
    ("duplicate column", "ID,TIME,DV,dv\n1,0,1,1\n", "duplicate column dv"),
    ("ragged row", "ID,TIME,DV\n1,0,1\n1,1\n", "wrong number of fields (the header has 3)"),
    ("unnamed column", "ID,,DV,TIME\n1,5,1,0\n", "column 2 has no name in the header"),
    ("text value", "ID,TIME,DV\n1,abc,1\n", "column TIME: non-numeric value(s) in row(s) 1"),
    ("infinite value", "ID,TIME,DV\n1,0,inf\n", "column DV: non-finite value(s)"),
    ("negative time", "ID,TIME,DV\n1,-1,1\n", "column TIME: negative time in row(s) 1"),
    ("time decreases", "ID,TIME,DV\n1,2,1\n1,1,1\n", "time decreases within an ID"),
    ("ID reappears", "ID,TIME,DV\n1,0,1\n2,0,1\n1,1,1\n", "ID 1 reappears after other IDs"),
    ("duplicated row", "ID,TIME,DV\n1,0,1\n1,0,1\n", "duplicated record(s) in row(s) 2"),
    ("negative amount", HEADER + "1,0,.,-5,1,1\n1,1,2,.,0,0\n", "negative amount"),
    ("dose without amount", HEADER + "1,0,.,.,1,1\n1,1,2,.,0,0\n", "dose with zero or missing"),
    ("EVID 3", HEADER + "1,0,.,.,3,1\n1,1,2,.,0,0\n", "EVID=3 (reset) is not supported"),
    ("MDV 2", HEADER + "1,0,1,.,0,2\n", "invalid MDV"),
    ("missing DV", HEADER + "1,0,.,.,0,0\n", "column DV: missing observation"),
    ("no observations", HEADER + "1,0,.,5,1,1\n", "no observations"),
    ("ADDL without II", "ID,TIME,DV,AMT,ADDL\n1,0,.,5,2\n1,1,1,.,.\n", "ADDL > 0 needs"),
    ("RATE=-1", "ID,TIME,DV,AMT,RATE\n1,0,.,5,-1\n1,1,1,.,.\n", "RATE=-1) is not supported"),
    ("SS=1", "ID,TIME,DV,AMT,SS\n1,0,.,5,1\n1,1,1,.,.\n", "steady-state dosing"),
    ("censored, no limit", "ID,TIME,DV,CENS\n1,0,.,1\n", "censored observation without a limit"),
    ("CENS=2", "ID,TIME,DV,CENS,LLOQ\n1,0,1,2,1\n", "invalid CENS value(s)"),
]


@pytest.mark.parametrize(
    "content, message", [c[1:] for c in BAD_DATASETS], ids=[c[0] for c in BAD_DATASETS]
)
def test_bad_dataset(content, message, tmp_path, capsys):
    path = tmp_path / "data.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    check_rejected(["check", str(path)], tmp_path, capsys, f"error: {path}: ", message)


# -- corpus: bad arguments and missing files -----------------------------------------------------

#: (case, argv with {tiny} for a valid scenario and {tmp} for the test folder, message fragment)
BAD_ARGUMENTS = [
    ("no command", [], "the following arguments are required: command"),
    ("unknown command", ["simulated"], "argument command: invalid choice: 'simulated'"),
    ("unknown option", ["simulate", "{tiny}", "--out", "{tmp}/o", "--fast"], "unrecognized"),
    ("no --out", ["simulate", "{tiny}"], "the following arguments are required: --out"),
    ("no scenario", ["simulate", "--out", "{tmp}/o"], "arguments are required: scenario"),
    ("no dataset", ["check"], "the following arguments are required: data"),
    ("patients text", ["demo", "--patients", "lots"], "invalid int value: 'lots'"),
    ("patients float", ["simulate", "{tiny}", "--out", "{tmp}/o", "--patients", "1e3"], "int"),
    ("patients 0", ["simulate", "{tiny}", "--out", "{tmp}/o", "--patients", "0"], "[1, 10000000]"),
    ("patients < 0", ["demo", "--out", "{tmp}/o", "--patients", "-4"], "--patients must be in"),
    (
        "patients huge",
        ["simulate", "{tiny}", "--out", "{tmp}/o", "--patients", "1" + "0" * 12],
        "in",
    ),
    ("optimize patients 0", ["optimize", "{timing}", "--out", "{tmp}/o", "--patients", "0"], "[1,"),
    ("optimize no table", ["optimize", "{tiny}", "--out", "{tmp}/o"], "no [optimize] table"),
    ("empty --out", ["simulate", "{tiny}", "--out", ""], "the output folder name is empty"),
    # missing files and folders given as files
    ("scenario missing", ["simulate", "{tmp}/nope.toml", "--out", "{tmp}/o"], "No such file"),
    ("scenario is a folder", ["simulate", "{tmp}", "--out", "{tmp}/o"], "Is a directory"),
    ("scenario name too long", ["simulate", "{tmp}/" + "s" * 300, "--out", "{tmp}/o"], "too long"),
    ("dataset missing", ["check", "{tmp}/nope.csv"], "nope.csv: file not found"),
    ("dataset is a folder", ["check", "{tmp}"], "not a file (it is a directory)"),
    ("dataset in a file", ["check", "{tiny}/data.csv"], "cannot read the file (Not a directory)"),
    ("dataset name too long", ["check", "{tmp}/" + "d" * 300], "File name too long"),
]


@pytest.mark.parametrize(
    "argv, message", [c[1:] for c in BAD_ARGUMENTS], ids=[c[0] for c in BAD_ARGUMENTS]
)
def test_bad_arguments_and_files(argv, message, tmp_path, capsys, no_simulation):
    tiny = tmp_path / "tiny.toml"
    tiny.write_text(TINY)
    timing = tmp_path / "timing.toml"
    timing.write_text((Path(__file__).parent / "scenarios" / "timing.toml").read_text())
    names = {"tiny": tiny, "timing": timing, "tmp": tmp_path}
    argv = [a.format(**names) for a in argv]
    check_rejected(argv, tmp_path, capsys, message)


# -- corpus: output folders ----------------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path):
    """A folder with a valid scenario and previous results."""
    (tmp_path / "tiny.toml").write_text(TINY)
    results_folder(tmp_path / "previous")
    return tmp_path


#: (case, argv with {tiny}, {tmp}; message fragment)
BAD_OUTPUTS = [
    (
        "results exist",
        ["simulate", "{tiny}", "--out", "{tmp}/previous"],
        "use --force to overwrite",
    ),
    ("demo results exist", ["demo", "--out", "{tmp}/previous"], "already holds results"),
    ("out is a file", ["simulate", "{tiny}", "--out", "{tiny}"], "exists and is not a folder"),
    (
        "out under a file",
        ["simulate", "{tiny}", "--out", "{tiny}/out"],
        "tiny.toml is not a folder",
    ),
    (
        "force on a non-results folder",
        ["simulate", "{tiny}", "--out", "{tmp}", "--force"],
        "holds files that are not cartpk results (no cartpk manifest.json)",
    ),
    (
        "force would delete the input",
        ["simulate", "{tmp}/previous/s.toml", "--out", "{tmp}/previous", "--force"],
        "previous/s.toml is inside",
    ),
    ("out name too long", ["simulate", "{tiny}", "--out", "{tmp}/" + "o" * 300], "too long"),
]


@pytest.mark.parametrize(
    "argv, message", [c[1:] for c in BAD_OUTPUTS], ids=[c[0] for c in BAD_OUTPUTS]
)
def test_bad_output_folder(argv, message, workdir, capsys, no_simulation):
    (workdir / "previous" / "s.toml").write_text(TINY)
    argv = [a.format(tiny=workdir / "tiny.toml", tmp=workdir) for a in argv]
    check_rejected(argv, workdir, capsys, message)


def test_disk_full_stand_in(workdir, capsys, no_simulation):
    """A path that cannot hold a folder (``/dev/full``, the disk-full device) fails before the
    simulation, not after it."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    argv = ["simulate", str(workdir / "tiny.toml"), "--out", "/dev/full/results"]
    check_rejected(argv, workdir, capsys, "cannot write results to /dev/full/results: /dev/full")


def test_read_only_output_folder(workdir, capsys, no_simulation, monkeypatch):
    read_only = workdir / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    if os.geteuid() == 0:  # root ignores permission bits: stand in a read-only mount
        access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: access(p, mode) and Path(p) != read_only)
    try:
        argv = ["simulate", str(workdir / "tiny.toml"), "--out", str(read_only / "out")]
        check_rejected(argv, workdir, capsys, f"{read_only} is not writable")
    finally:
        read_only.chmod(0o755)


# -- writing results: failures and interrupts keep the previous results ---------------------------
# (the writer itself is tested case by case in tests/test_results_folder.py)


@pytest.mark.parametrize(
    "failure, status, message",
    [
        (OSError(errno.ENOSPC, "No space left on device"), 2, "No space left on device"),
        (KeyboardInterrupt(), 130, "error: interrupted"),
    ],
    ids=["disk full", "interrupt"],
)
def test_write_failure_from_the_command_line(
    failure, status, message, workdir, capsys, monkeypatch
):
    """A full disk or Ctrl-C while results are written: one line, previous results kept."""

    def write_half(path):
        path.write_text("arm,patient\nhalf-written")
        raise failure

    canned = pd.DataFrame({"arm": ["alone"], "patient": [0], "status": [0]})
    result = simulate_command.ScenarioResult(canned, canned, canned, None, 0.1)
    monkeypatch.setattr(simulate_command, "run_scenario", lambda scenario, progress: result)
    monkeypatch.setattr(
        simulate_command, "scenario_files", lambda result, scenario: {"endpoints.csv": write_half}
    )
    argv = ["simulate", str(workdir / "tiny.toml"), "--out", str(workdir / "previous"), "--force"]
    check_rejected(argv + ["--quiet"], workdir, capsys, message, code=status)


# -- model parameters and regimens ---------------------------------------------------------------


MODEL = cartpk.BloodStromaTumour("solid")
DEFAULT_PARAMS = MODEL.default_params()


def with_rho(value) -> dict:
    return {**DEFAULT_PARAMS, "rho": value}


validate = MODEL.parameter_set.validate
#: (make, message fragment): each raises ParameterError.
PARAMETER_CASES = [
    (lambda: MODEL.default_params(rhoo=1.0), "unknown parameter(s): rhoo; known: rho"),
    (lambda: MODEL.default_params(rho="fast"), "parameter rho must be a number, got 'fast'"),
    (lambda: MODEL.default_params(rho=None), "parameter rho must be a number, got None"),
    (lambda: validate(with_rho(math.nan)), "parameter rho = nan 1/d is outside"),
    (lambda: validate(with_rho(math.inf)), "parameter rho = inf 1/d is outside"),
    (lambda: validate(with_rho(-1.0)), "rho = -1 1/d is outside its legal range"),
    (lambda: validate(with_rho(11.0)), "legal range [0, 10]"),
    (lambda: validate(with_rho([0.3, -1.0])), "rho = -1 1/d (patient 1) is outside"),
    (lambda: validate(with_rho("x")), "parameter rho must be a number, got 'x'"),
    (lambda: validate(with_rho([[1.0], [1.0, 2.0]])), "parameter rho must be a number"),
    (lambda: validate({k: v for k, v in DEFAULT_PARAMS.items() if k != "rho"}), "missing"),
]


@pytest.mark.parametrize("case", range(len(PARAMETER_CASES)))
def test_bad_model_parameters(case):
    make, message = PARAMETER_CASES[case]
    with pytest.raises(ParameterError) as error:
        make()
    assert message in str(error.value) and "\n" not in str(error.value)


REGIMEN_CASES = [
    (lambda: Regimen(("not a dose",)), "a regimen holds Dose events, got 'not a dose'"),
    (lambda: Regimen(5), "a regimen needs a sequence of Dose events, got 5"),
    (lambda: Dose(0.0, 1e308, "blood_effector", 1e-300), "infusion rate amount/duration is not"),
    (lambda: Dose(1e308, 1.0, "blood_effector", 1e308), "dose end time"),
    (lambda: Dose(1e6, 1.0, "blood_effector", 1e-12), "too short to resolve at time 1e+06 d"),
    (lambda: Regimen.schedule(1.0, "x", start="day 0", interval=1, count=2), "start must be"),
    (lambda: Regimen.schedule(1.0, "x", interval=1, count=True), "count must be a positive"),
    (lambda: Regimen.schedule(1.0, "x", interval=1e308, count=3), "dose time must be finite"),
    (lambda: Regimen.split(1.0, "x", fractions=["a"], days=[0]), "fractions must be a sequence"),
    (lambda: Regimen.split(1.0, "x", fractions=None, days=None), "fractions must be a sequence"),
    (lambda: Regimen.split(1.0, "x", fractions=[0.5, 0.5], days=[0]), "one fraction per day"),
    (lambda: Regimen.single(1.0, "x").to_arrays(["y"]), "targets unknown compartment 'x'"),
]


@pytest.mark.parametrize("case", range(len(REGIMEN_CASES)))
def test_bad_regimens(case):
    make, message = REGIMEN_CASES[case]
    with pytest.raises(RegimenError) as error:
        make()
    assert message in str(error.value) and "\n" not in str(error.value)


# -- property tests: scenarios -------------------------------------------------------------------

DOSED = sorted(n for n, c in THERAPIES.items() if c.dosing)
#: Parameters without an upper bound (scaling them keeps them legal), with their defaults.
UNBOUNDED = {
    p.name: p.default
    for p in cartpk.BloodStromaTumour("solid").parameters
    if math.isinf(p.upper) and p.default > 0
}
NAMES = sorted(UNBOUNDED)


def finite(lo: float, hi: float):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def courses(draw, name: str | None = None) -> dict:
    name = name or draw(st.sampled_from(DOSED))
    course = {"name": name}
    optional = {
        "dose": finite(0, 1e6),
        "start_day": finite(-365, 3650),
        "interval_days": finite(1e-3, 3650),
        "count": st.integers(1, 1000),
        "infusion_days": finite(0, 30),
        "unit": st.just(THERAPIES[name].dosing.amount_unit),
    }
    for key, values in optional.items():
        if draw(st.booleans()):
            course[key] = draw(values)
    return course


@st.composite
def valid_scenarios(draw) -> dict:
    """Scenario dicts that must parse: every key optional except name, population and arms."""
    horizon = draw(finite(28, 3650))
    data = {"name": draw(st.text(min_size=1).filter(str.strip)), "horizon_days": horizon}
    data["output_step_days"] = draw(finite((horizon + 366) / MAX_OUTPUT_TIMES, horizon))
    data["disease"] = draw(st.sampled_from(["solid", "blood"]))
    population = {"size": draw(st.integers(1, 10_000_000)), "seed": draw(st.integers(0, 2**32 - 1))}
    varied = draw(st.lists(st.sampled_from(NAMES), max_size=3, unique=True))
    population["variability"] = {k: draw(finite(0, 10)) for k in varied}
    if len(varied) >= 2:
        r = draw(finite(-0.99, 0.99))
        population["correlations"] = [{"parameters": varied[:2], "r": r}]
    fractions = draw(st.lists(finite(0.01, 0.5), max_size=2))
    population["subgroups"] = [
        {
            "name": f"group {i}",
            "fraction": f,
            "scale": {draw(st.sampled_from(NAMES)): draw(finite(0.01, 100))},
            "set": {"antigen_access": draw(finite(0, 1))},
        }
        for i, f in enumerate(fractions)
    ]
    if draw(st.booleans()):
        population["covariates"] = {
            "weight_kg": {
                "median": draw(finite(1, 200)),
                "cv": draw(finite(0, 1)),
                "effects": {"blood_volume": draw(finite(-2, 2))},
            }
        }
    data["population"] = population
    arms = []
    for i in range(draw(st.integers(1, 3))):
        first = draw(st.sampled_from(DOSED))  # arm 0's first course is unique in its arm
        others = [t for t in DOSED if t != first] if i == 0 else DOSED
        therapies = [draw(courses(first))] + [
            draw(courses(n)) for n in draw(st.lists(st.sampled_from(others), max_size=2))
        ]
        arm = {"name": f"arm {i}", "therapies": therapies}
        if draw(st.booleans()):
            arm["product"] = {
                "dose_cells": draw(finite(1, 1e12)),
                "type": draw(st.sampled_from(PRODUCTS)),
                "route": draw(st.sampled_from(sorted(ROUTES))),
                "day": draw(finite(-365, 365)),
                "count": draw(st.integers(1, 100)),
                "interval_days": draw(finite(1e-3, 3650)),
            }
        if draw(st.booleans()):
            name = draw(st.sampled_from(NAMES))
            arm["parameters"] = {name: UNBOUNDED[name] * draw(finite(0.1, 10))}
        arm["disease"] = draw(st.sampled_from(["solid", "blood"]))
        arms.append(arm)
    data["arms"] = arms
    therapy = arms[0]["therapies"][0]["name"]
    if draw(st.booleans()):
        values = {"dose": [0.5, 1, 2, 5], "start_day": [-14, -7, 0, 7], "count": [1, 2, 3]}
        variable = draw(st.sampled_from(sorted(values)))
        grid = draw(st.lists(st.sampled_from(values[variable]), min_size=1, unique=True))
        data["grid"] = {"arm": "arm 0", "therapy": therapy, variable: grid}
    if draw(st.booleans()):
        lo = draw(finite(-365, 3000))
        data["optimize"] = {
            "arm": "arm 0",
            "therapy": therapy,
            "start_day": [lo, draw(finite(lo + 1, 3650))],
            "goal": draw(st.sampled_from(["maximize", "minimize"])),
        }
    data["outputs"] = {
        "tumour_exposure_days": draw(finite(0.5, horizon)),
        "trajectories": draw(st.lists(st.sampled_from(TRAJECTORIES), min_size=1, unique=True)),
    }
    return data


@settings(SETTINGS, max_examples=30)  # each builds up to two combined models
@given(data=valid_scenarios())
def test_valid_scenarios_parse(data):
    scenario = parse_scenario(data, source="random.toml")
    grid = [v for v in data.get("grid", {}).values() if isinstance(v, list)]
    arms = len(data["arms"]) - 1 + len(grid[0]) if grid else len(data["arms"])
    assert len(scenario.arms) == arms
    assert scenario.size == data["population"]["size"]
    assert scenario.horizon_days == data["horizon_days"]
    times = scenario.times()
    assert times[-1] == pytest.approx(data["horizon_days"]) and np.all(np.diff(times) > 0)
    earliest = min(
        [a.product.day for a in scenario.arms]
        + [c.start_day for a in scenario.arms for c in a.therapies]
    )
    assert times[0] <= min(earliest, 0.0)
    assert len(times) <= MAX_OUTPUT_TIMES + 2 * len(scenario.outputs.required_times(times[-1]))


#: (path, bad values): each value is wrong for the key in every valid scenario above.
NON_NUMBERS = ["x", True, [1.0], {"a": 1}]
MUTATIONS = [
    (("name",), ["", "   ", 5, None, []]),
    (("horizon_days",), [0.0, 10, 27.9, 4000, math.nan, math.inf, *NON_NUMBERS]),
    (("disease",), ["liquid", 1]),
    (("population", "size"), [0, -5, 10**8, 2.5, "3", True]),
    (("population", "seed"), [-1, 2**33, 1.5]),
    (("population", "chunk_size"), [0, 10**7]),
    (("population", "variability", "rho"), [-0.1, 11, math.nan, "a"]),
    (("arms", 0, "name"), ["", " ", 5]),
    (("arms", 0, "disease"), ["liquid", None]),
    (("arms", 0, "product", "dose_cells"), [0, -1, 1e13, math.nan, math.inf, "1e8"]),
    (("arms", 0, "product", "type"), ["ccl21", 3]),
    (("arms", 0, "product", "route"), ["oral"]),
    (("arms", 0, "product", "count"), [0, 101, 1.5]),
    (("arms", 0, "product", "day"), [-400, 400, math.inf]),
    (("arms", 0, "product", "interval_days"), [0, -1, 4000, math.nan]),
    (("arms", 0, "therapies", 0, "name"), ["aspirin", "ccl19_il7", 1]),
    (("arms", 0, "therapies", 0, "dose"), [-1, 2e6, math.nan, math.inf, -math.inf, "5"]),
    (("arms", 0, "therapies", 0, "start_day"), [-400, 4000, math.nan]),
    (("arms", 0, "therapies", 0, "interval_days"), [0, -7, 1e300]),
    (("arms", 0, "therapies", 0, "count"), [0, 1001, 2.5, True]),
    (("arms", 0, "therapies", 0, "infusion_days"), [-1, 31, math.inf]),
    (("arms", 0, "parameters", "rho"), [math.nan, "fast"]),
    (("outputs", "band_patients"), [0, -1, 1.5]),
    (("outputs", "persistence_limit_cells_per_ul"), [0, -1, math.inf]),
    (("outputs", "trajectories"), [[], ["nope"], "tumour_car_t"]),
    (("population",), [5, [], None]),
    (("arms",), [5, {}, []]),
]
#: Tables where an unknown key is added.
TABLES = [(), ("population",), ("arms", 0), ("arms", 0, "therapies", 0), ("outputs",)]
#: Required keys that are deleted.
REQUIRED = [("name",), ("population",), ("arms", 0, "name"), ("arms", 0, "therapies", 0, "name")]


def key_of(path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def node_at(data: dict, path):
    for key in path:
        data = data[key] if isinstance(key, int) else data.setdefault(key, {})
    return data


@st.composite
def invalid_scenarios(draw) -> tuple[dict, str]:
    """A valid scenario with one thing wrong, and the key the error must name."""
    data = draw(valid_scenarios())
    data.pop("grid", None)  # the mutated arm may be renamed; keep its grid out of the way
    data.pop("optimize", None)
    kind = draw(st.sampled_from(["value", "value", "value", "unknown key", "missing key"]))
    if kind == "value":
        path, values = draw(st.sampled_from(MUTATIONS))
        node_at(data, path[:-1])[path[-1]] = draw(st.sampled_from(values))
        return data, key_of(path)
    if kind == "unknown key":
        path = draw(st.sampled_from(TABLES))
        node_at(data, path)["bogus_key"] = 1
        return data, key_of((*path, "bogus_key"))
    path = draw(st.sampled_from(REQUIRED))
    del node_at(data, path[:-1])[path[-1]]
    return data, key_of(path)


@SETTINGS
@given(case=invalid_scenarios())
def test_invalid_scenarios_name_the_key(case):
    data, key = case
    with pytest.raises(ScenarioError) as error:
        parse_scenario(data, source="random.toml")
    message = str(error.value)
    assert message.startswith("random.toml: ") and "\n" not in message
    assert key in message, message


# -- property tests: regimens --------------------------------------------------------------------

INVALID_NUMBERS = [math.nan, math.inf, -math.inf, -1.0, "1", None, True]


@st.composite
def dose_arguments(draw):
    """Arguments of a Dose, each valid four times in five."""

    def pick(valid):
        return draw(valid if draw(st.integers(0, 4)) else st.sampled_from(INVALID_NUMBERS))

    return {
        "time": pick(finite(-1e4, 1e4)),
        "amount": pick(finite(0, 1e12)),
        "compartment": pick(st.sampled_from(["blood_effector", "drug", ""])),
        "duration": pick(st.one_of(st.just(0.0), finite(0, 30))),
    }


def _is_valid_dose(time, amount, compartment, duration) -> bool:
    numbers = (time, amount, duration)
    if not all(isinstance(x, float) and math.isfinite(x) for x in numbers):
        return False
    if amount < 0 or duration < 0 or not isinstance(compartment, str) or not compartment:
        return False
    return duration == 0 or (time + duration > time and math.isfinite(amount / duration))


@SETTINGS
@given(doses=st.lists(dose_arguments(), min_size=1, max_size=4))
def test_random_doses(doses):
    """Valid doses make a regimen whose arrays deliver every dose; invalid ones raise
    RegimenError naming the field."""
    made = []
    for args in doses:
        if _is_valid_dose(**args):
            made.append(Dose(**args))
            continue
        with pytest.raises(RegimenError) as error:
            Dose(**args)
        message = str(error.value)
        assert message.startswith("dose ") and "\n" not in message
        assert any(field in message for field in ("time", "amount", "compartment", "duration"))
    if not made:
        return
    regimen = Regimen(tuple(made))
    states = sorted({d.compartment for d in made} | {"blood_effector", "drug"})
    arrays = regimen.to_arrays(states)
    times = np.asarray(arrays.times)
    assert np.all(np.diff(times) >= 0)
    finite_times = np.where(np.isfinite(times), times, times[np.isfinite(times)].max())
    delivered = np.asarray(arrays.bolus).sum(0) + (
        np.asarray(arrays.rate)[:-1] * np.diff(finite_times)[:, None]
    ).sum(0)
    for j, state in enumerate(states):
        expected = sum(d.amount for d in made if d.compartment == state)
        assert delivered[j] == pytest.approx(expected, rel=1e-6, abs=1e-6)


@SETTINGS
@given(
    start=finite(-365, 365),
    interval=st.one_of(finite(1e-3, 100), st.sampled_from([0.0, -1.0, math.nan, math.inf])),
    count=st.one_of(st.integers(1, 50), st.sampled_from([0, -2, 2.5, True])),
)
def test_random_schedules(start, interval, count):
    valid_count = isinstance(count, int) and not isinstance(count, bool) and count >= 1
    valid = valid_count and (count == 1 or (math.isfinite(interval) and interval > 0))
    if not valid:
        with pytest.raises(RegimenError, match="^schedule (count|interval)|^dose time"):
            Regimen.schedule(1.0, "drug", start=start, interval=interval, count=count)
        return
    regimen = Regimen.schedule(1.0, "drug", start=start, interval=interval, count=count)
    assert len(regimen) == count and regimen.doses[0].time == start
    assert np.allclose(np.diff([d.time for d in regimen.doses]), interval)


# -- property tests: dataset text ----------------------------------------------------------------

TOKENS = ["1", "0", "-1", "0.5", "1e6", ".", "", "nan", "inf", "abc", "1_0", " 3 ", '"2"', "#"]
COLUMNS = ["ID", "TIME", "DV", "AMT", "EVID", "MDV", "CMT", "CENS", "LLOQ", "WT"]


@st.composite
def dataset_texts(draw) -> tuple[str, bool]:
    """CSV text: a valid dataset, sometimes damaged at the text level. Returns ``(text,
    valid)``, ``valid`` when nothing was damaged."""
    rows = []
    for subject in range(1, draw(st.integers(1, 3)) + 1):
        time = 0.0
        rows.append([subject, time, ".", draw(st.sampled_from(["1e6", "5"])), 1, 1, 1, 0, ".", 70])
        for _ in range(draw(st.integers(1, 3))):
            time += draw(st.sampled_from([0.5, 1.0, 7.0]))
            censored = draw(st.booleans())
            dv = "." if censored else draw(finite(0, 1e4))
            rows.append([subject, time, dv, ".", 0, 0, ".", int(censored), 1, 70])
    table = [list(COLUMNS)] + [[str(x) for x in row] for row in rows]
    damages = draw(st.integers(0, 3))
    for _ in range(damages):
        i = draw(st.integers(0, len(table) - 1))
        j = draw(st.integers(0, len(table[i]) - 1))
        action = draw(st.sampled_from(["token", "drop", "extra", "swap", "column"]))
        if action == "token":
            table[i][j] = draw(st.sampled_from(TOKENS))
        elif action == "drop":
            del table[i][j]
        elif action == "extra":
            table[i].insert(j, draw(st.sampled_from(TOKENS)))
        elif action == "swap" and i > 0:
            k = draw(st.integers(1, len(table) - 1))
            table[i], table[k] = table[k], table[i]
        elif action == "column":
            table[0][j] = draw(st.sampled_from(COLUMNS + ["", "id", "Y", "ADM"]))
    separator = "," if not damages or draw(st.booleans()) else draw(st.sampled_from([";", "\t"]))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    prefix = draw(st.sampled_from(["", "\ufeff", "\n"]))
    text = prefix + newline.join(separator.join(r) for r in table) + newline
    return text, damages == 0


@SETTINGS
@given(case=dataset_texts())
def test_random_dataset_text(case, tmp_path, capsys):
    """``cartpk check`` on generated text: valid data passes, damaged data passes or stops with
    one line naming the file, and the file is never modified."""
    text, valid = case
    path = tmp_path / "data.csv"
    path.write_text(text, newline="")
    before = sha256(path)
    status, out, err = run(["check", str(path)], capsys)
    assert sha256(path) == before
    if status == 0:
        assert out.startswith(f"{path}: ") and "subjects" in out and not err
    else:
        assert not valid, err
        assert_one_error_line(status, err, f"error: {path}: ")
    try:
        cartpk.read_nonmem(path)
    except DatasetError:
        assert status == 2
    else:
        assert status == 0


# -- reproducibility: one tiny scenario run twice ------------------------------------------------


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The tiny scenario run twice into the same folder (the second time with --force); the first
    run's files are kept in memory."""
    base = tmp_path_factory.mktemp("reproducible")
    scenario = base / "tiny.toml"
    scenario.write_text(TINY)
    hash_before = sha256(scenario)
    out = base / "results"
    assert main(["simulate", str(scenario), "--out", str(out), "--quiet"]) == 0
    first = tree(out)
    assert main(["simulate", str(scenario), "--out", str(out), "--quiet", "--force"]) == 0
    return base, scenario, hash_before, first, tree(out)


def test_identical_inputs_give_identical_outputs(two_runs):
    _, _, _, first, second = two_runs
    for name in ("endpoints.csv", "summary.csv", "trajectories.csv", "inputs/scenario.toml"):
        assert first[name] == second[name], name
    endpoints = first["endpoints.csv"].decode().splitlines()
    assert len(endpoints) == 1 + 2 * 2 and endpoints[0].startswith("arm,patient,weight_kg,subgroup")
    assert set(first) == set(second)


def test_inputs_are_never_modified(two_runs):
    base, scenario, hash_before, _, _ = two_runs
    assert sha256(scenario) == hash_before
    assert {p.name for p in base.iterdir()} == {"tiny.toml", "results"}  # no staging folders


def test_manifest_records_the_run(two_runs):
    _, scenario, hash_before, first, second = two_runs
    for files in (first, second):
        manifest = json.loads(files["manifest.json"])
        assert manifest["schema"] == "cartpk-results/1"
        assert manifest["command"] == "cartpk simulate"
        assert manifest["inputs"]["scenario"] == {
            "path": str(scenario),
            "sha256": hash_before,
            "bytes": len(TINY.encode()),
            "copy": "inputs/scenario.toml",
        }
        assert manifest["files"] == sorted(n for n in files if "/" not in n)
        assert manifest["options"] == {"patients": 2, "seed": 11}
        assert manifest["versions"]["cartpk"] == cartpk.__version__
        assert all(manifest["versions"][k] for k in ("jax", "jaxlib", "diffrax", "numpy"))
        assert manifest["python"] and manifest["platform"] and manifest["elapsed_s"] > 0


#: ``cartpk ARGV`` in a fresh interpreter. SIGINT raises KeyboardInterrupt even where the parent
#: shell ignores it (background jobs), as in an interactive terminal.
LAUNCH = (
    "import signal, sys\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    "from cartpk.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_interrupt_and_rerun(two_runs, tmp_path):
    """Ctrl-C once the run has started: status 130, one line, no results and no staging folder;
    the same command again gives the tables of a run never interrupted."""
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(TINY)
    out = tmp_path / "results"
    argv = [sys.executable, "-c", LAUNCH, "simulate", str(scenario), "--out", str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout])
    reader.start()
    try:
        first = lines.get(timeout=120)  # the first progress line: the run has started
        assert first.startswith("cartpk simulate: scenario 'tiny'"), first
        process.send_signal(signal.SIGINT)
        err = process.stderr.read()
        status = process.wait(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
        reader.join(timeout=60)
    assert status == 130, err
    assert [line for line in err.splitlines() if "error" in line] == ["error: interrupted"], err
    assert "Traceback" not in err
    assert {p.name for p in tmp_path.iterdir()} == {"tiny.toml"}  # no results, no staging

    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    _, _, _, uninterrupted, _ = two_runs
    for name in ("endpoints.csv", "summary.csv", "trajectories.csv"):
        assert (out / name).read_bytes() == uninterrupted[name], name
    assert {p.name for p in tmp_path.iterdir()} == {"tiny.toml", "results"}
