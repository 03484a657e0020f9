"""FOCE-I against NONMEM on NONMEM's phenobarbital example ("pheno").

Every reference number is read at test time from the NONMEM 7.5.1 run that the PyPI package
pharmpy-core bundles (``pharmpy/internals/example_models/pheno.{mod,dta,ext,lst,cov}``, read
through pharmpy's ``load_example_model`` and ``read_modelfit_results``): the dataset (59
neonates, 155 phenobarbital concentrations after repeated IV boluses; Grasela TH, Donn SM, Dev
Pharmacol Ther 1985;8(6):374-383), NONMEM's initial estimates (``$THETA``/``$OMEGA``/``$SIGMA``
of ``pheno.mod``), its final estimates and OFV (``pheno.ext``, iteration -1000000000; the OFV
without the ``n log 2 pi`` constant, 586.276 in the version bundled with pharmpy-core 2.1) and
its sandwich standard errors (``pheno.ext``, iteration -1000000001). The model, the data
conversion and the parameter mapping are those of ``fits/pheno_nonmem/fit.py``.
"""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "pharmpy", reason="pharmpy-core (which bundles the NONMEM reference run) is not installed"
)

import cartpk  # noqa: E402
from cartpk.estimation import Population, fit  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "fits" / "pheno_nonmem" / "fit.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("pheno_nonmem_fit", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses (the model class) look their module up there
    spec.loader.exec_module(module)
    return module


pheno = _load_script()


@pytest.fixture(scope="module")
def reference():
    cartpk.enable_x64()
    ref = pheno.nonmem_reference()
    return ref, pheno.dataset(ref["dataset"])


@pytest.fixture(scope="module")
def at_nonmem(reference):
    ref, data = reference
    problem = pheno.problem_at(data, ref["estimates"])
    return problem, pheno.ofv_at(problem)


def test_dataset_is_read_as_nonmem_reads_it(reference):
    ref, data = reference
    arrays = pheno.problem_at(data, ref["initial"]).arrays
    assert arrays.mask.shape[0] == 59  # pheno.lst: TOT. NO. OF INDIVIDUALS: 59
    assert int(np.asarray(arrays.mask).sum()) == 155  # pheno.lst: TOT. NO. OF OBS RECS: 155


def test_ofv_at_nonmem_estimates_equals_nonmems(reference, at_nonmem):
    """cartpk's FOCE-I OFV at NONMEM's final estimates is NONMEM's (the acceptance is 0.1; the
    agreement is about 1e-8). Without the residual-variance term in the FOCE-I curvature it was
    1.564 below."""
    ref, _ = reference
    _, evaluation = at_nonmem
    assert evaluation["ofv_nonmem"] == pytest.approx(ref["ofv"], abs=1e-3)
    # NONMEM's estimates are a minimum of cartpk's OFV too: the gradient is below 0.05 OFV
    # units per unit of each internal coordinate (log CL, log V, beta, log omega, log sigma)
    assert np.max(np.abs(evaluation["grad"])) < 0.05


def test_foce_gradient_with_proportional_error_matches_finite_differences(at_nonmem):
    """The residual-variance term (nonzero only for error models whose SD depends on the
    prediction) keeps the OFV gradient exact: central differences along random directions, on
    the first 8 subjects, away from the optimum, at rtol 1e-10."""
    problem, _ = at_nonmem
    x = np.array(problem.x0, dtype=float)
    x[problem.free_index] += 0.1
    base = pheno.ofv_at(problem, x, rtol=1e-10, subjects=slice(0, 8))
    evaluator, V, z = base["evaluator"], base["V"], base["z"]
    m = V.shape[-1]
    weights = np.ones((1, 8))
    x = x[None]
    h = 1e-3
    rng = np.random.default_rng(0)
    for u in rng.normal(size=(3, m)):
        u /= np.linalg.norm(u)
        plus, minus = (
            evaluator(x, V, (sign * h * u)[None], weights, z)["ofv"][0] for sign in (1, -1)
        )
        fd = (plus - minus) / (2 * h)
        ad = float(base["grad"] @ u)
        assert ad == pytest.approx(fd, rel=1e-4, abs=1e-4), (ad, fd)
        assert abs(ad) > 0.01


def test_foce_fit_from_nonmem_initial_estimates_reaches_nonmems(reference):
    """FOCE-I fit from NONMEM's initial estimates: THETAs, OMEGAs and SIGMA within 0.5 % of
    NONMEM's final estimates (measured: within 0.02 %), the OFV within 0.01."""
    ref, data = reference
    result = fit(
        pheno.Pheno(),
        data,
        Population(method="foce", se="none", tol=1e-4),
        initial=pheno.to_cartpk(ref["initial"]),
        **pheno.SOLVER,
        **pheno.OPTIONS,
    )
    assert result.converged, result.message
    assert result.ofv_nonmem == pytest.approx(ref["ofv"], abs=0.01)
    table = result.estimates.set_index("parameter")["estimate"]
    for nonmem_name, name in pheno.NAMES.items():
        estimate, _ = pheno.to_nonmem(float(table[name]), math.nan, name)
        assert estimate == pytest.approx(ref["estimates"][nonmem_name], rel=5e-3), nonmem_name


def _nonmem_table(name: str, skiprows: int = 1):
    import pandas as pd

    return pd.read_csv(pheno.example_dir() / name, sep=r"\s+", skiprows=skiprows)


def _nonmem_shrinkage() -> dict[str, list[float]]:
    """``ETASHRINKSD(%)`` and ``EPSSHRINKSD(%)`` lines of ``pheno.lst``."""
    out = {}
    for line in (pheno.example_dir() / "pheno.lst").read_text().splitlines():
        words = line.split()
        if words and words[0] in ("ETASHRINKSD(%)", "EPSSHRINKSD(%)"):
            out[words[0]] = [float(w) for w in words[1:]]
    return out


@pytest.fixture(scope="module")
def result_at_nonmem(at_nonmem):
    from cartpk.estimation.objective import Spec
    from cartpk.estimation.results import result_at

    problem, evaluation = at_nonmem
    spec = Spec(problem.layout, method="foce", **pheno.SOLVER)
    return result_at(problem, spec, z=evaluation["z"][0])


def test_tables_at_nonmem_estimates_equal_nonmems(result_at_nonmem):
    """At NONMEM's estimates, cartpk's per-observation and per-subject tables are NONMEM's:
    ``pheno.tab`` (``$TABLE ID TIME DV CIPREDI PRED RES CWRES``, printed to 5 digits) and
    ``pheno.phi`` (EBEs and each subject's OBJ). CWRES decorrelated by a Cholesky factor instead
    of the symmetric square root differed by up to 1.5."""
    result = result_at_nonmem
    table = _nonmem_table("pheno.tab")
    rows = np.asarray(result.problem.row_index)
    observed = rows > 0
    nonmem = table.iloc[rows[observed] - 1]
    diagnostics = result.diagnostics_arrays
    np.testing.assert_allclose(diagnostics.pred[observed], nonmem["PRED"], rtol=1e-4)
    np.testing.assert_allclose(diagnostics.ipred[observed], nonmem["CIPREDI"], rtol=1e-4)
    np.testing.assert_allclose(diagnostics.cwres[observed], nonmem["CWRES"], atol=2e-4)
    phi = _nonmem_table("pheno.phi")
    np.testing.assert_allclose(result.etas, phi[["ETA(1)", "ETA(2)"]], atol=1e-5)
    n_obs = np.asarray(result.problem.arrays.mask).sum(axis=1)
    np.testing.assert_allclose(result.ofv_i - n_obs * math.log(2 * math.pi), phi["OBJ"], atol=1e-3)


def test_shrinkage_and_estimates_columns_at_nonmem_estimates(reference, result_at_nonmem):
    """ETA and EPS shrinkage as NONMEM computes them (``pheno.lst``: ETASHRINKSD 47.580 %,
    13.581 %; EPSSHRINKSD 21.198 %), and the variance columns equal NONMEM's OMEGA and SIGMA."""
    ref, _ = reference
    result = result_at_nonmem
    nonmem = _nonmem_shrinkage()
    shrinkage = result.shrinkage
    assert 100 * shrinkage["eta_cl"] == pytest.approx(nonmem["ETASHRINKSD(%)"][0], abs=2e-3)
    assert 100 * shrinkage["eta_v"] == pytest.approx(nonmem["ETASHRINKSD(%)"][1], abs=2e-3)
    assert 100 * shrinkage["epsilon"] == pytest.approx(nonmem["EPSSHRINKSD(%)"][0], abs=2e-3)
    table = result.estimates.set_index("parameter")
    for nonmem_name in ("IIV_CL", "IIV_VC", "SIGMA"):
        name = pheno.NAMES[nonmem_name]
        assert table.at[name, "variance"] == pytest.approx(ref["estimates"][nonmem_name], rel=1e-9)
    assert table.at["omega_cl", "shrinkage_percent"] == pytest.approx(100 * shrinkage["eta_cl"])
    assert table.at["sigma_prop", "cv_percent"] == pytest.approx(
        100 * table.at["sigma_prop", "estimate"]
    )
    assert table.at["cl", "unit"] == "L/h/kg" and table.at["beta_cl_WGT", "fixed"]
    assert not table.at["cl", "fixed"]
    assert any("shrinkage 48 %" in w for w in result.warnings)
