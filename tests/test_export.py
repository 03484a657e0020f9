"""Export to SBML and PEtab: libroadrunner simulating the exported SBML reproduces
``cartpk.simulate`` (built-in models, a model with therapies, user models; bolus doses,
infusions and lagged doses as SBML events), the rate rules equal the vector field of every
built-in model, PEtab tables follow the version 1 format, and unsupported constructs raise one
clear error."""

from __future__ import annotations

import math
import warnings
from typing import ClassVar

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import roadrunner_process

import cartpk
from cartpk import _optional
from cartpk.cli import main
from cartpk.commands import ResultsFolder
from cartpk.estimation import MODELS, Exponential, Observation, Proportional
from cartpk.export import _units, to_petab, to_sbml, trace
from cartpk.therapies import AntiVEGF, CCL19IL7CarT, Radiotherapy

libsbml = pytest.importorskip("libsbml")
if not roadrunner_process.available():
    pytest.skip("libroadrunner is not installed", allow_module_level=True)

#: relative agreement required between libroadrunner on the export and cartpk
AGREEMENT = 1e-6


class OneCompartment(cartpk.AbstractModel):
    """The example of docs/custom_models.md."""

    states: ClassVar = (cartpk.State("central", "blood", "mg", atol=1e-9),)
    parameters: ClassVar = (
        cartpk.Parameter("ke", 0.3, "1/d", "elimination rate", "test"),
        cartpk.Parameter("volume", 3.0, "L", "volume of distribution", "test"),
    )

    def rates(self, t, y, p, effects):
        return {"central": -p["ke"] * y["central"]}

    def observables(self, t, y, p):
        return {"concentration": y["central"] / p["volume"]}


def _kimmel():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "kimmel2021.py"
    spec = importlib.util.spec_from_file_location("kimmel2021_export", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Kimmel2021()


DAYS = [0.5, 3.0, 7.5, 10.0, 14.5, 30.5, 90.5]
CAR_T = cartpk.Regimen.single(1e8, "blood_effector")
#: name -> (model, regimen, output times, start of the SBML simulation)
ROUNDTRIPS = {
    "multiphasic": (cartpk.Multiphasic(), None, DAYS, 0.0),
    "blood_mode_car_t": (cartpk.BloodStromaTumour("blood"), CAR_T, DAYS, 0.0),
    "solid_with_therapies": (
        cartpk.combine(
            cartpk.BloodStromaTumour("solid"), AntiVEGF(), Radiotherapy(), CCL19IL7CarT()
        ),
        CAR_T + AntiVEGF.dosing.regimen() + Radiotherapy.dosing.regimen(),  # from day -10
        [-8.5, *DAYS],
        -10.0,
    ),
    "two_compartment_oral_lag": (  # closed form in cartpk; bolus, infusion and lag
        cartpk.TwoCompartmentOralLag(),
        cartpk.Regimen.single(100.0, "depot")
        + cartpk.Regimen.single(50.0, "depot", time=12.0, duration=3.0),
        [0.25, 1.0, 5.0, 13.0, 16.0, 24.0, 48.0],
        0.0,
    ),
    **{  # every other model of the PK/PD library: a bolus and an infusion into its first state
        name: (
            make(),
            cartpk.Regimen.single(100.0, make().state_names[0])
            + cartpk.Regimen.single(50.0, make().state_names[0], time=12.0, duration=3.0),
            [0.7, 2.3, 6.1, 13.7, 16.9, 48.3],  # off the (lagged) dose times
            0.0,
        )
        for name, make in MODELS.items()
        if name not in ("multiphasic", "blood_stroma_tumour", "two_compartment_oral_lag")
    },
    "user_model_infusion": (
        OneCompartment(),
        cartpk.Regimen.single(100.0, "central", duration=0.5)
        + cartpk.Regimen.single(40.0, "central", time=2.0),
        [0.25, 0.75, 1.5, 2.5, 5.0],
        0.0,
    ),
}


def _roadrunner(sbml: str, model, selections, times, start):
    """libroadrunner (CVODE) at rtol 1e-12 and 1e-4 of the model's absolute tolerances."""
    atol = dict(zip(model.state_names, np.asarray(model.atol()) * 1e-4, strict=True))
    return roadrunner_process.call(
        roadrunner_process.simulate, sbml, selections, list(times), start, 1e-12, atol
    )


def _cartpk(model, params, regimen, times):
    """cartpk at rtol 1e-12 and 1e-4 of the model's absolute tolerances."""
    return cartpk.simulate(
        model,
        params,
        regimen,
        jnp.asarray(times),
        solver=dfx.Dopri8(),
        rtol=1e-12,
        atol_scale=1e-4,
        max_steps=100_000,
    )


def _relative(ours, reference, floor):
    return float(np.max(np.abs(ours - reference) / np.maximum(np.abs(reference), floor)))


@pytest.mark.parametrize("case", list(ROUNDTRIPS))
def test_roadrunner_on_the_export_reproduces_cartpk(case):
    """States (relative to their value, or to their absolute tolerance where smaller) and
    observables (relative to their value, or 1e-9 of their largest value) at every output."""
    model, regimen, times, start = ROUNDTRIPS[case]
    params = model.default_params()
    sbml = to_sbml(model, regimen=regimen)
    observables = list(trace(model).observables)
    rr = _roadrunner(sbml, model, [*model.state_names, *observables], times, start)
    sol = _cartpk(model, params, regimen, times)
    assert int(sol.status) == 0
    states = np.stack([np.asarray(sol.states[n]) for n in model.state_names], axis=-1)
    n = len(model.state_names)
    assert _relative(rr[:, :n], states, np.asarray(model.atol())) < AGREEMENT
    if observables:
        outputs = np.stack([np.asarray(sol.observables[o]) for o in observables], axis=-1)
        floor = 1e-9 * np.max(np.abs(outputs), axis=0) + 1e-300
        assert _relative(rr[:, n:], outputs, floor) < AGREEMENT


def _rhs_models():
    models = {name: make() for name, make in MODELS.items()}
    models["blood_stroma_tumour_blood"] = cartpk.BloodStromaTumour("blood")
    models["solid_with_every_therapy"] = cartpk.combine(
        cartpk.BloodStromaTumour("solid"), *(cls() for cls in cartpk.THERAPIES.values())
    )
    models["kimmel2021_user_model"] = _kimmel()
    return models


RHS_MODELS = _rhs_models()


@pytest.mark.parametrize("name", list(RHS_MODELS))
def test_rate_rules_equal_the_vector_field(name):
    """At random states and times, libroadrunner's d(state)/dt and observables on the export
    equal cartpk's vector field and observables to rounding."""
    model = RHS_MODELS[name]
    params = model.default_params()
    rng = np.random.default_rng(0)
    y0 = np.asarray(model.pack(model.initial_state(params)))
    points = []
    for _ in range(3):
        y = rng.uniform(0.5, 2.0, y0.shape) * np.maximum(np.abs(y0), 1.0)
        states = dict(zip(model.state_names, y.tolist(), strict=True))
        points.append((float(rng.uniform(-5.0, 60.0)), states))
    observables = list(model.observables(0.0, model.unpack(jnp.asarray(y0)), params))
    names = [f"{s}'" for s in model.state_names] + observables
    values = roadrunner_process.call(roadrunner_process.evaluate, to_sbml(model), points, names)
    for (t, states), got in zip(points, values, strict=True):
        y = np.array(list(states.values()))
        ours = np.array([got[f"{s}'"] for s in model.state_names])
        theirs = np.asarray(model.vector_field(t, jnp.asarray(y), (params, jnp.zeros(y.shape))))
        assert _relative(ours, theirs, 1e-9 * np.max(np.abs(theirs)) + 1e-300) < 1e-10
        expected = model.observables(t, model.unpack(jnp.asarray(y)), params)
        for observable, value in expected.items():  # a state that is an observable is read
            got_value = got[observable]  # as itself (IndirectResponse*: "response")
            assert math.isclose(got_value, float(value), rel_tol=1e-12, abs_tol=1e-300), observable


class _Doubled(OneCompartment):
    def observables(self, t, y, p):
        return {"central": 2.0 * y["central"]}


def test_an_observable_named_like_another_quantity_gets_its_own_id():
    sbml = libsbml.readSBMLFromString(to_sbml(_Doubled())).getModel()
    assert sbml.getAssignmentRule("observable_central") is not None
    assert sbml.getRateRule("central") is not None


@pytest.mark.parametrize("case", list(ROUNDTRIPS))
def test_export_is_valid_sbml(case):
    model, regimen, _, _ = ROUNDTRIPS[case]
    document = libsbml.readSBMLFromString(to_sbml(model, regimen=regimen))
    document.setConsistencyChecks(libsbml.LIBSBML_CAT_UNITS_CONSISTENCY, False)
    document.checkConsistency()
    errors = [
        document.getError(i).getMessage()
        for i in range(document.getNumErrors())
        if document.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR
    ]
    assert not errors
    assert document.getLevel() == 3 and document.getVersion() == 2


def test_parameters_units_and_annotations():
    model = cartpk.Multiphasic()
    sbml = libsbml.readSBMLFromString(to_sbml(model, {"alpha": 0.2})).getModel()
    alpha, cmax = sbml.getParameter("alpha"), sbml.getParameter("cmax")
    assert alpha.getValue() == 0.2 and alpha.getConstant()
    assert sbml.getParameter("beta").getValue() == 0.0032  # defaults for the others
    per_day = sbml.getUnitDefinition(alpha.getUnits()).getUnit(0)
    assert (per_day.getKind(), per_day.getExponent(), per_day.getMultiplier()) == (
        libsbml.UNIT_KIND_SECOND,
        -1,
        86400.0,
    )
    assert sbml.getTimeUnits() == "d"
    # copies/ug gDNA has no SBML unit: annotated only
    assert not cmax.isSetUnits() and 'unit="copies/ug gDNA"' in cmax.getAnnotationString()
    effector = sbml.getParameter("effector")
    assert not effector.getConstant() and sbml.getRateRule("effector") is not None
    assert sbml.getInitialAssignment("effector") is not None  # cmax / foldx
    assert effector.getValue() == pytest.approx(24000.0 / 3900.0, rel=1e-15)
    assert sbml.getAssignmentRule("blood_copies_per_ug") is not None


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("1/d", [("second", -1, 0, 86400.0)]),
        ("cells/uL", [("item", 1, 0, 1.0), ("litre", -1, -6, 1.0)]),
        ("mg*d/L", [("gram", 1, -3, 1.0), ("second", 1, 0, 86400.0), ("litre", -1, 0, 1.0)]),
        ("1/Gy^2", [("gray", -2, 0, 1.0)]),
        ("1/(d*mg)", [("second", -1, 0, 86400.0), ("gram", -1, -3, 1.0)]),
        ("-", []),
        ("copies/ug gDNA", None),
        ("1/(d*day-dose)", None),
    ],
)
def test_unit_strings(text, units):
    assert _units.parse(text) == units


def test_dose_events_fire_from_the_start_of_the_regimen():
    """Doses at the first dose time fire at the start; later ones when time reaches them
    (whatever time a simulator evaluates triggers at before the start)."""
    model = OneCompartment()
    regimen = cartpk.Regimen.single(5.0, "central", time=-7.0) + cartpk.Regimen.single(
        3.0, "central", time=0.0
    )
    sbml = libsbml.readSBMLFromString(to_sbml(model, regimen=regimen)).getModel()
    assert [sbml.getParameter(f"dose_{k}_time").getValue() for k in (1, 2)] == [-7.0, 0.0]
    assert [sbml.getParameter(f"dose_{k}_central").getValue() for k in (1, 2)] == [5.0, 3.0]
    initial = [sbml.getEvent(f"dose_{k}").getTrigger().getInitialValue() for k in (1, 2)]
    assert initial == [False, True]
    assert 'simulation_start="-7.0"' in sbml.getAnnotationString()


class _Erf(OneCompartment):
    def rates(self, t, y, p, effects):
        return {"central": -p["ke"] * jax.scipy.special.erf(y["central"])}


class _Branching(OneCompartment):
    def rates(self, t, y, p, effects):
        if y["central"] > 1.0:
            return {"central": -p["ke"] * y["central"]}
        return {"central": jnp.zeros(())}


class _Vector(OneCompartment):
    def rates(self, t, y, p, effects):
        return {"central": -p["ke"] * y["central"] * jnp.ones(2)}


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (_Erf(), "cannot export _Erf.rates: JAX operation 'erf' has no counterpart in SBML math"),
        (
            _Branching(),
            "cannot export _Branching.rates: it uses the value of a state or parameter in Python",
        ),
        (_Vector(), "cannot export _Vector.rates: 'central' has shape (2,)"),
    ],
)
def test_unsupported_constructs_raise_one_line(model, message):
    with pytest.raises(cartpk.CartpkError) as error:
        to_sbml(model)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_bad_arguments():
    with pytest.raises(cartpk.ParameterError, match="unknown parameter"):
        to_sbml(OneCompartment(), {"kel": 1.0})
    with pytest.raises(cartpk.RegimenError, match="unknown compartment 'depot'"):
        to_sbml(OneCompartment(), regimen=cartpk.Regimen.single(1.0, "depot"))


def test_missing_packages_say_how_to_install(monkeypatch):
    def missing(name):
        raise ImportError(name)

    monkeypatch.setattr(_optional.importlib, "import_module", missing)
    with pytest.raises(
        cartpk.CartpkError, match=r"^model export needs sympy: pip install 'cartpk\[sbml\]'$"
    ):
        to_sbml(OneCompartment())


# -- PEtab ---------------------------------------------------------------------------------------

PETAB_TIMES = [0.5, 1.0, 2.0, 6.0, 13.0, 24.0]
PETAB_REGIMENS = {
    1: cartpk.Regimen.single(100.0, "depot"),
    2: cartpk.Regimen.single(50.0, "depot")
    + cartpk.Regimen.single(80.0, "depot", time=12.0, duration=2.0),
}


PETAB_OBSERVATIONS = {
    1: Observation("concentration", Exponential()),
    2: Observation("concentration", Proportional()),
}


def _petab_doses(subject, model):
    return PETAB_REGIMENS[subject].to_arrays(model.state_names, n_events=3)  # one compile


def _petab_data():
    """Two subjects of OneCompartmentOral (a bolus; a bolus and an infusion), DVID 2 on two
    records each, and one censored record."""
    model = cartpk.OneCompartmentOral()
    rows = []
    for subject, regimen in PETAB_REGIMENS.items():
        for dose in regimen.doses:
            rate = dose.amount / dose.duration if dose.duration else 0.0
            rows.append(dict(ID=subject, TIME=dose.time, AMT=dose.amount, RATE=rate, EVID=1))
        sol = _cartpk(model, model.default_params(), _petab_doses(subject, model), PETAB_TIMES)
        for k, (t, c) in enumerate(
            zip(PETAB_TIMES, np.asarray(sol.observables["concentration"]), strict=True)
        ):
            rows.append(dict(ID=subject, TIME=t, DV=1.1 * c, EVID=0, DVID=1 + (k % 3 == 1)))
    rows.append(dict(ID=2, TIME=30.0, DV=0.01, EVID=0, DVID=1, CENS=1, LLOQ=0.01))
    frame = pd.DataFrame(rows).sort_values(["ID", "TIME"], kind="stable")
    return frame.fillna({"AMT": 0.0, "RATE": 0.0, "DVID": 1, "CENS": 0}).assign(CMT=1)


@pytest.fixture(scope="module")
def petab(tmp_path_factory):
    folder = tmp_path_factory.mktemp("petab") / "problem"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        problem = to_petab(
            cartpk.OneCompartmentOral(),
            _petab_data(),
            observations=PETAB_OBSERVATIONS,
            initial={"cl": 2.5},
            fixed=["ka"],
            compartments={1: "depot"},
        )
    with ResultsFolder(folder, command="test") as results:
        results.write(problem.files, options={})
    tables = {
        key: pd.read_csv(folder / f"{key}.tsv", sep="\t")
        for key in ("conditions", "measurements", "observables", "parameters")
    }
    sbml = (folder / "model.xml").read_text()
    return folder, problem, tables, sbml, [str(w.message) for w in caught]


def test_petab_tables_follow_version_1(petab):
    folder, problem, tables, sbml, caught = petab
    assert problem.censored == 1
    for name, table in tables.items():  # the files hold the tables exactly
        pd.testing.assert_frame_equal(table, getattr(problem, name), check_dtype=False)
    yaml = (folder / "problem.yaml").read_text()
    assert yaml.startswith("format_version: 1\n") and "parameter_file: parameters.tsv" in yaml
    for name in ("model.xml", "conditions.tsv", "measurements.tsv", "observables.tsv"):
        assert f"  - {name}\n" in yaml
    conditions, measurements = tables["conditions"], tables["measurements"]
    observables, parameters = tables["observables"], tables["parameters"]
    assert list(measurements.columns) == [
        "observableId",
        "simulationConditionId",
        "measurement",
        "time",
    ]
    assert list(observables.columns) == [
        "observableId",
        "observableName",
        "observableFormula",
        "observableTransformation",
        "noiseFormula",
        "noiseDistribution",
    ]
    assert list(parameters.columns) == [
        "parameterId",
        "parameterName",
        "parameterScale",
        "lowerBound",
        "upperBound",
        "nominalValue",
        "estimate",
    ]
    # every reference resolves
    assert set(measurements["simulationConditionId"]) == set(conditions["conditionId"])
    assert set(measurements["observableId"]) == set(observables["observableId"])
    # the censored record is left out, with a warning
    assert len(measurements) == 2 * len(PETAB_TIMES)
    assert any("1 censored observations left out" in m for m in caught)
    data = _petab_data().query("EVID == 0 and CENS == 0")
    assert np.array_equal(measurements["measurement"].to_numpy(), data["DV"].to_numpy())
    assert np.array_equal(measurements["time"].to_numpy(), data["TIME"].to_numpy())
    # one observable per DVID, formulas on SBML entities, error models as PEtab noise
    document = libsbml.readSBMLFromString(sbml).getModel()
    exponential, proportional = (
        observables.set_index("observableId")
        .loc[["obs_concentration_1", "obs_concentration_2"]]
        .to_dict("records")
    )
    assert document.getAssignmentRule(exponential["observableFormula"]) is not None
    assert (exponential["observableTransformation"], exponential["noiseFormula"]) == (
        "log",
        "sigma_log_1",
    )
    assert (proportional["observableTransformation"], proportional["noiseFormula"]) == (
        "lin",
        "sigma_prop_2 * abs(concentration)",
    )
    # parameters: model parameters and residual SDs, not the condition columns or rule targets
    table = parameters.set_index("parameterId")
    assert set(table.index) == {"cl", "v", "ka", "sigma_log_1", "sigma_prop_2"}
    assert not set(table.index) & set(conditions.columns)
    assert table.loc["ka", "estimate"] == 0 and table.loc["cl", "estimate"] == 1
    assert table.loc["cl", "nominalValue"] == 2.5
    assert (table["lowerBound"] > 0).all() and np.isfinite(table["upperBound"]).all()
    assert (table["lowerBound"] <= table["nominalValue"]).all()
    assert (table["nominalValue"] <= table["upperBound"]).all()
    for column in conditions.columns[2:]:
        parameter = document.getParameter(column)
        assert parameter is not None and parameter.getConstant(), column


def test_petab_conditions_reproduce_each_subjects_doses(petab):
    """libroadrunner on the PEtab model with each condition's values (set, then reset, as
    libroadrunner evaluates triggers at reset) equals cartpk for that subject's regimen."""
    _, _, tables, sbml, _ = petab
    model = cartpk.OneCompartmentOral()
    params = model.default_params(cl=2.5)
    conditions, measurements = tables["conditions"], tables["measurements"]
    for _, condition in conditions.iterrows():
        subject = int(condition["conditionName"].split()[1])
        rows = measurements["simulationConditionId"] == condition["conditionId"]
        times = np.unique(measurements.loc[rows, "time"])
        values = {
            column: value
            for column, value in condition.items()
            if column not in ("conditionId", "conditionName")
        }
        ours = roadrunner_process.call(
            roadrunner_process.simulate,
            sbml,
            ["concentration"],
            list(times),
            0.0,
            1e-12,
            1e-14,
            values,
        )[:, 0]
        sol = _cartpk(model, params, _petab_doses(subject, model), times)
        assert _relative(ours, np.asarray(sol.observables["concentration"]), 1e-12) < AGREEMENT


@pytest.mark.filterwarnings("ignore:.*censored observations left out")
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bounds": {"kel": (0.1, 1.0)}}, "bounds: unknown parameter(s) kel"),
        ({"bounds": {"cl": (0.0, 10.0)}}, "bounds of cl: need finite lower < upper and lower > 0"),
        ({"spread": 1.0}, "spread must be a number > 1, got 1.0"),
    ],
)
def test_petab_bad_options(options, message):
    with pytest.raises(cartpk.CartpkError) as error:
        to_petab(
            cartpk.OneCompartmentOral(),
            _petab_data(),
            observations=PETAB_OBSERVATIONS,
            compartments={1: "depot"},
            **options,
        )
    assert message in str(error.value)


# -- the command line ----------------------------------------------------------------------------


def test_cli_exports_a_combined_model_as_the_library_does(tmp_path):
    out = tmp_path / "sbml"
    argv = ["export", "--model", "blood_stroma_tumour", "--therapy", "anti_vegf", "--out", str(out)]
    assert main([*argv, "--init", "k_kill=0.5", "--quiet"]) == 0
    model = cartpk.combine(cartpk.BloodStromaTumour(), AntiVEGF())
    assert (out / "model.xml").read_text() == to_sbml(model, {"k_kill": 0.5})
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.xml"]


def test_cli_exports_the_petab_problem_of_a_dataset(tmp_path, petab):
    data = tmp_path / "data.csv"
    _petab_data().to_csv(data, index=False)
    out = tmp_path / "petab"
    argv = ["export", str(data), "--model", "one_compartment_oral", "--out", str(out)]
    argv += ["--observable", "concentration", "--observable", "concentration"]
    argv += ["--error", "exponential", "--error", "proportional", "--cmt", "1=depot"]
    assert main([*argv, "--init", "cl=2.5", "--fix", "ka", "--quiet"]) == 0
    folder = petab[0]
    for name in ("model.xml", "conditions.tsv", "measurements.tsv", "parameters.tsv"):
        assert (out / name).read_text() == (folder / name).read_text(), name
    assert (out / "inputs" / "data.csv").read_bytes() == data.read_bytes()


def test_cli_export_options_need_a_dataset(tmp_path, capsys):
    argv = ["export", "--model", "multiphasic", "--error", "additive", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "error: --observable, --error, --unit and --fix need a dataset (PEtab)\n"
    )
    assert not (tmp_path / "o").exists()
