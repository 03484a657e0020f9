"""Reliability of scenario files below the command line: whatever the bytes, ``load_scenario``
returns a scenario or raises one :class:`~cartpk.errors.ScenarioError` line naming the file and
the key or the problem; and a grid of thousands of arms runs in batches of at most
``population.chunk_size`` simulations.

Every test parses bytes (no model is compiled); the one run replaces the batch simulation by a
function that records the batch sizes.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from cartpk.errors import ParameterError, PopulationError, ScenarioError
from cartpk.models import BloodStromaTumour
from cartpk.population import Subgroup, VirtualPopulation
from cartpk.scenario import MAX_GRID_POINTS, load_scenario, run_scenario
from cartpk.scenario import run as run_module

#: A small valid scenario (blood setting, no therapy).
BASE = b"""\
name = "tiny"
disease = "blood"
horizon_days = 56

[population]
size = 2

[[arms]]
name = "alone"

[outputs]
tumour_exposure_days = 56
trajectories = ["blood_cells_per_ul"]
"""

ANTI_VEGF = b"""
[[arms]]
name = "+ anti-VEGF"
therapies = [{ name = "anti_vegf", dose = 2, start_day = -7, count = 1 }]
"""


def rejected(content: bytes, name: str = "f.toml") -> str:
    """The one-line message with which ``content`` is refused."""
    with pytest.raises(ScenarioError) as error:
        load_scenario(content, name=name)
    message = str(error.value)
    assert message.startswith(f"{name}: ") and "\n" not in message, message
    assert len(message) < 300, message
    return message


# -- encodings -----------------------------------------------------------------------------------


def test_utf8_byte_order_mark_is_accepted(tmp_path):
    assert load_scenario(b"\xef\xbb\xbf" + BASE, name="bom.toml").name == "tiny"
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE)
    assert load_scenario(path).name == "tiny"


def test_bytes_and_path_give_the_same_scenario(tmp_path):
    path = tmp_path / "s.toml"
    path.write_bytes(BASE)
    from_path, from_bytes = load_scenario(path), load_scenario(path.read_bytes(), name=str(path))
    assert from_path.arms == from_bytes.arms and from_path.population == from_bytes.population
    assert from_path.path == path and from_bytes.path is None
    assert rejected(b"name = 3\n", name=str(path)).startswith(f"{path}: name must be a str")


def test_bytes_without_a_name_are_named_in_messages():
    with pytest.raises(ScenarioError, match=r"^<bytes>: name is required$"):
        load_scenario(b"")


@pytest.mark.parametrize(
    "content",
    [
        BASE.replace(b'"tiny"', b'"caf\xe9"'),  # Latin-1
        "name = 'x'".encode("utf-16"),  # UTF-16 with its byte-order mark
        b"\x89PNG\r\n\x1a\n",
    ],
    ids=["latin-1", "utf-16", "binary"],
)
def test_not_utf8_is_one_line(content):
    assert rejected(content) == "f.toml: not a TOML file (not UTF-8 text)"


# -- structure -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"a = " + b"[" * 3000 + b"]" * 3000, b"a = " + b"{ b = " * 3000 + b"1" + b" }" * 3000],
    ids=["arrays", "inline tables"],
)
def test_deep_nesting_is_one_line(content):
    assert rejected(content) == "f.toml: not valid TOML: arrays or tables nested too deeply"


def test_deep_table_header_names_the_key():
    content = b"[" + b".".join([b"name"] + [b"a"] * 3000) + b"]\n"
    assert rejected(content).startswith("f.toml: name must be a str, got {'a': {'a': {...}}}")


@pytest.mark.parametrize(
    "content", [b"", b"# a comment\n\n   # another\n"], ids=["empty", "comments"]
)
def test_empty_file_names_the_first_required_key(content):
    assert rejected(content) == "f.toml: name is required"


def test_duplicate_key_is_one_line():
    message = rejected(b'name = "again"\n' + BASE)
    assert "not valid TOML: Cannot overwrite a value (at line" in message


@pytest.mark.parametrize(
    "content, message",
    [
        (b"name = 3\n", "f.toml: name must be a str, got 3"),
        (b'name = "x"\npopulation = 3\n', "f.toml: population must be a table, got 3"),
        (b'name = "x"\narms = "x"\n[population]\n', "f.toml: arms must be a list, got 'x'"),
        (
            BASE.replace(b"[[arms]]", b"[arms]"),
            "f.toml: arms must be a list, got {'name': 'alone'}",
        ),
        (
            BASE.replace(b"size = 2", b"size = [2]"),
            "f.toml: population.size must be a int, got [2]",
        ),
    ],
    ids=["name", "population", "arms", "arms table", "size list"],
)
def test_wrong_type_is_one_line(content, message):
    assert message in rejected(content)


# -- numbers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "old, new, message",
    [
        (
            b"horizon_days = 56",
            b"horizon_days = -56",
            "horizon_days must be in (0, 3650], got -56.0",
        ),
        (b"horizon_days = 56", b"horizon_days = nan", "horizon_days must be finite, got nan"),
        (b"horizon_days = 56", b"horizon_days = inf", "horizon_days must be finite, got inf"),
        (b"horizon_days = 56", b"horizon_days = 1" + b"0" * 400, "horizon_days must be finite"),
        (b"size = 2", b"size = 1" + b"0" * 400, "population.size must be in [1, 1e+07], got 1"),
        (b"size = 2", b"size = 1" + b"0" * 5000, "not valid TOML: an integer has too many digits"),
        (b"size = 2", b'size = "2"', "population.size must be a int, got '2'"),
        (b"horizon_days = 56", b'horizon_days = "56"', "horizon_days must be a float, got '56'"),
        (b"size = 2", b"size = 2.0", "population.size must be a int, got 2.0"),
        (b"size = 2", b"size = 2\nchunk_size = -1", "population.chunk_size must be in [1, 1e+06]"),
    ],
    ids=[
        "negative",
        "nan",
        "inf",
        "huge float",
        "huge int",
        "too many digits",
        "int text",
        "float text",
        "float for int",
        "chunk negative",
    ],
)
def test_bad_number_is_one_line(old, new, message):
    assert message in rejected(BASE.replace(old, new))


def test_therapy_dose_nan_names_the_key():
    content = BASE + ANTI_VEGF.replace(b"dose = 2", b"dose = nan")
    assert rejected(content) == "f.toml: arms[1].therapies[0].dose must be finite, got nan"


# -- arm names -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [b'"alone "', b'" alone"', b'"alone\\t"', b'"  "', b'""'])
def test_arm_names_with_surrounding_space_are_refused(name):
    message = rejected(BASE + b"[[arms]]\nname = " + name + b"\n")
    assert message.startswith("f.toml: arms[1].name must not be empty or start or end with a space")


def test_duplicate_arm_names_name_the_key():
    message = rejected(BASE + b'[[arms]]\nname = "other"\n[[arms]]\nname = "alone"\n')
    assert message == "f.toml: arms[2].name: two arms are named 'alone' (arms[0] and arms[2])"


# -- population: checked by VirtualPopulation, named by the parser --------------------------------


def test_population_raises_in_its_own_terms():
    model = BloodStromaTumour("blood")
    with pytest.raises(PopulationError, match=r"^variability.rho must be in \[0, 10\]") as error:
        VirtualPopulation({"rho": -0.1}).validate(model)
    assert error.value.field == "variability.rho"
    assert isinstance(error.value, ParameterError) and not isinstance(error.value, ScenarioError)
    with pytest.raises(PopulationError, match=r"^subgroups\[1\].name 'a' is taken") as error:
        VirtualPopulation(subgroups=(Subgroup("a", 0.1), Subgroup("a", 0.1))).validate(model)
    assert error.value.field == "subgroups[1].name"


@pytest.mark.parametrize(
    "population, message",
    [
        (
            b"[population.variability]\nrho = -0.1\n",
            "population.variability.rho must be in [0, 10]",
        ),
        (b"[population.variability]\nnope = 0.1\n", "population.variability: unknown parameter"),
        (
            b'[[population.subgroups]]\nname = "HA"\nfraction = 1.5\n',
            "population.subgroups[0].fraction must be in (0, 1], got 1.5",
        ),
        (
            b"[population.variability]\nrho = 0.2\nk_kill = 0.2\n"
            b'[[population.correlations]]\nparameters = ["rho", "k_kill"]\nr = 0.1\n'
            b'[[population.correlations]]\nparameters = ["k_kill", "rho"]\nr = 0.1\n',
            "population.correlations[1].parameters k_kill/rho are correlated twice",
        ),
        (
            b"[population.covariates.weight_kg]\nmedian = 70\ncv = 11\n",
            "population.covariates.weight_kg.cv must be in [0, 10], got 11.0",
        ),
    ],
    ids=["cv", "unknown", "fraction", "correlated twice", "covariate cv"],
)
def test_population_errors_name_the_toml_key(population, message):
    content = BASE.replace(b"size = 2\n", b"size = 2\n" + population)
    assert message in rejected(content)


# -- grids run in batches of at most chunk_size simulations ---------------------------------------


def _grid(n_dose: int, n_start: int, size: int, chunk: int) -> bytes:
    doses = ", ".join(str(d) for d in range(1, n_dose + 1))
    starts = ", ".join(str(-d) for d in range(1, n_start + 1))
    return (
        BASE.replace(b"size = 2", f"size = {size}\nchunk_size = {chunk}".encode())
        + ANTI_VEGF
        + f'[grid]\narm = "+ anti-VEGF"\ntherapy = "anti_vegf"\n'
        f"dose = [{doses}]\nstart_day = [{starts}]\n".encode()
    )


def test_largest_grid_is_100_by_100():
    assert MAX_GRID_POINTS == 100 * 100
    assert "grid has 10100 points, more than 10000" in rejected(_grid(101, 100, 1, 256))


@pytest.mark.parametrize(
    "arms, patients, chunk",
    [(10_001, 1, 256), (10_001, 1000, 256), (10_001, 3, 64), (3, 100, 256), (6, 3, 256), (2, 7, 1)],
)
def test_batches_hold_at_most_chunk_size_simulations(arms, patients, chunk):
    """The 100 x 100 grid plus its baseline arm (10 001 arms) included: every (arm, patient)
    once, in batches of one shape of at most ``chunk`` simulations."""
    per_arm, per_batch = run_module._batch_shape(arms, patients, chunk)
    assert per_arm * per_batch <= chunk
    seen = np.zeros((arms, patients), dtype=int)
    for group, start, stop in run_module._batches(list(range(arms)), patients, per_arm, per_batch):
        assert len(group) * (stop - start) <= per_arm * per_batch
        seen[group[0] : group[-1] + 1, start:stop] += 1
    assert (seen == 1).all()


def test_grid_run_respects_chunk_size(monkeypatch):
    """A 5 x 4 grid (21 arms) of 3 patients with chunk_size 4: the batch simulation is called with
    at most 4 simulations each time, and every arm x patient comes back once."""
    scenario = load_scenario(_grid(5, 4, size=3, chunk=4), name="grid.toml")
    assert len(scenario.arms) == 21
    sizes = []

    def simulate_population(model, params, doses, times):
        n = len(next(iter(params.values())))
        sizes.append(n)
        defaults = model.default_params()
        names = model.observables(0.0, model.initial_state(defaults), defaults)
        return SimpleNamespace(
            status=np.zeros(n, dtype=int),
            observables={k: np.ones((n, len(times))) for k in names},
        )

    monkeypatch.setattr(run_module, "simulate_population", simulate_population)
    result = run_scenario(scenario, progress=None)
    assert max(sizes) <= 4 and len(set(sizes)) == 1
    assert len(result.endpoints) == 21 * 3
    assert not result.endpoints.duplicated(["arm", "patient"]).any()
    assert len(result.grid) == 20
