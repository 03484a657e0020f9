"""Endpoints against closed forms, the RECIST-like classification on constructed tumours, and
virtual populations (reproducible per patient, correlations, subgroups, bounds)."""

from __future__ import annotations

import numpy as np
import pytest

from cartpk.endpoints import EndpointOptions, endpoint_table, numeric_endpoints, response
from cartpk.errors import PopulationError, ScenarioError
from cartpk.models import BloodStromaTumour
from cartpk.population import Covariate, Subgroup, VirtualPopulation

TIMES = np.arange(-7.0, 91.0)


def _observables(blood, tumour_cart=None, burden=None):
    n = blood.shape[0]
    ones = np.ones_like(blood)
    return {
        "blood_cells_per_ul": blood,
        "blood_car_t": blood * 5e6,
        "tumour_car_t": ones if tumour_cart is None else tumour_cart,
        "exhausted_fraction": np.full_like(blood, 0.25),
        "tumour_burden": np.full((n, len(TIMES)), 1e10) if burden is None else burden,
    }


def test_numeric_endpoints_closed_form():
    """C(t) = 100 t e^(1 - t/5)/5 (t >= 0): Cmax 100 at t = 5, AUC0-28 and time above 1 exact."""
    t = np.clip(TIMES, 0, None)
    blood = (100 * t / 5 * np.exp(1 - t / 5))[None]
    fine = np.linspace(0, 28, 200_001)
    exact_auc = np.trapezoid(100 * fine / 5 * np.exp(1 - fine / 5), fine)
    values = numeric_endpoints(_observables(blood), TIMES)
    assert float(values["cmax_cells_per_ul"][0]) == pytest.approx(100.0, rel=1e-12)
    # trapezoid on a 1-day grid: error ~ h^2/12 |C''| integrated, well below 1 %
    assert float(values["auc0_28_cells_per_ul_d"][0]) == pytest.approx(exact_auc, rel=5e-3)
    # tumour AUC of a constant 1 cell over days 0-60; infiltration = that / blood-cell AUC
    assert float(values["tumour_car_t_auc_cell_d"][0]) == pytest.approx(60.0)
    table = endpoint_table(_observables(blood), TIMES)
    assert table.tmax_d.iloc[0] == 5.0 and table.exhausted_fraction_d28.iloc[0] == 0.25


def test_persistence_is_exact_for_exponential_decay():
    """C = 100 e^(-0.1 t): above 1 cell/uL for ln(100)/0.1 = 46.05 d; log-linear crossing exact."""
    blood = 100 * np.exp(-0.1 * np.clip(TIMES, 0, None))[None]
    days = float(numeric_endpoints(_observables(blood), TIMES)["persistence_d"][0])
    assert days == pytest.approx(np.log(100) / 0.1, rel=1e-12)
    limit = EndpointOptions(persistence_limit_cells_per_ul=10.0)
    days = float(numeric_endpoints(_observables(blood), TIMES, limit)["persistence_d"][0])
    assert days == pytest.approx(np.log(10) / 0.1, rel=1e-12)


def _burden(diameter_ratio_by_day):
    """Burden whose diameter ratio to baseline is piecewise constant between the given days."""
    ratio = np.ones(len(TIMES))
    for day, r in diameter_ratio_by_day:
        ratio[TIMES >= day] = r
    return (1e10 * ratio**3)[None]


@pytest.mark.parametrize(
    "course, best, progressed, ttp",
    [
        ([(1, 0.5)], "PR", False, np.nan),  # 50 % shrinkage, sustained
        ([(1, 1.1)], "SD", False, np.nan),  # +10 %: not progression
        ([(1, 1.25)], "PD", True, 42.0),  # +25 % at the first assessment
        ([(1, 0.6), (50, 0.75)], "PR", True, 84.0),  # nadir 0.6, then 0.75 >= 1.2 x 0.6
        ([(1, 1e-3)], "CR", False, np.nan),  # 1e10 x 1e-9 = 10 cells: gone
    ],
)
def test_response_classification(course, best, progressed, ttp):
    """RECIST 1.1-like rules (Eisenhauer 2009) on tumours with known diameter courses."""
    got_best, got_progressed, got_ttp = response(_burden(course), TIMES)
    assert got_best[0] == best and got_progressed[0] == progressed
    assert got_ttp[0] == pytest.approx(ttp, nan_ok=True)


def test_endpoint_days_must_be_on_the_grid():
    with pytest.raises(ScenarioError, match="must contain day 28"):
        numeric_endpoints(_observables(np.ones((1, 10))), np.arange(10.0) * 5)


# -- virtual populations -------------------------------------------------------------------------

MODEL = BloodStromaTumour("solid")
POPULATION = VirtualPopulation(
    variability={"rho": 0.3, "delta_effector": 0.2, "antigen_access": 0.5},
    correlations={("rho", "delta_effector"): 0.6},
    subgroups=(Subgroup("HA-high", 0.3, scale={"ecm_density0": 1.5}, set={"k_ecm": 0.2}),),
    covariates=(Covariate("weight_kg", 70.0, 0.2, {"blood_volume": 1.0}),),
    seed=42,
)


@pytest.fixture(scope="module")
def drawn():
    return POPULATION.sample(MODEL, 0, 20_000)


def test_population_statistics(drawn):
    params, patients = drawn
    typical = MODEL.default_params()
    log_d = np.log(params["delta_effector"] / float(typical["delta_effector"]))
    assert np.std(log_d) == pytest.approx(np.sqrt(np.log1p(0.2**2)), rel=0.03)
    assert np.mean(log_d) == pytest.approx(0.0, abs=0.01)
    rho = params["rho"]  # logit-normal (upper bound 10): correlation on the transformed scale
    logit_rho = np.log(rho / (10 - rho))
    assert np.corrcoef(logit_rho, log_d)[0, 1] == pytest.approx(0.6, abs=0.03)
    access = params["antigen_access"]
    assert access.min() > 0 and access.max() < 1  # a fraction stays a fraction
    high = patients.subgroup.to_numpy() == "HA-high"
    assert high.mean() == pytest.approx(0.3, abs=0.015)
    assert np.allclose(params["ecm_density0"][high], 1.5 * float(typical["ecm_density0"]))
    assert np.all(params["k_ecm"][high] == 0.2) and np.all(params["k_ecm"][~high] != 0.2)
    weight = patients.weight_kg.to_numpy()
    assert np.allclose(params["blood_volume"], float(typical["blood_volume"]) * weight / 70.0)


def test_population_is_reproducible_per_patient(drawn):
    """Any chunk of the population gives the same patients (seeded by patient index)."""
    params, patients = drawn
    chunk, chunk_patients = POPULATION.sample(MODEL, 1234, 1300)
    for name in ("rho", "delta_effector", "ecm_density0"):
        assert np.array_equal(chunk[name], params[name][1234:1300])
    assert list(chunk_patients.subgroup) == list(patients.subgroup[1234:1300])


@pytest.mark.parametrize(
    "population, message",
    [
        (VirtualPopulation({"nope": 0.1}), "unknown parameter 'nope'"),
        (VirtualPopulation({"rho": 0.1}, {("rho", "k_ecm"): 0.5}), "'k_ecm' has no variability"),
        (
            VirtualPopulation(
                {"rho": 0.1, "k_ecm": 0.1, "delta_effector": 0.1},
                {
                    ("rho", "k_ecm"): 0.9,
                    ("rho", "delta_effector"): 0.9,
                    ("k_ecm", "delta_effector"): -0.9,
                },
            ),
            "not positive definite",
        ),
        (VirtualPopulation(subgroups=(Subgroup("a", 0.7), Subgroup("b", 0.6))), "sum to 1.3"),
    ],
)
def test_population_validation(population, message):
    with pytest.raises(PopulationError, match=message):
        population.validate(MODEL)
