"""Therapy modules: registry, channel hygiene, and the directions the literature supports.

One combined solid-mode model holding every registered therapy is compiled once (module fixture)
and reused: therapies are switched on by their doses, and the product-property modules (armoured
CAR-T) by their parameters, so every scenario shares one compiled solve.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import cartpk.therapies
from cartpk.channels import CHANNELS, neutral_effects
from cartpk.models.blood_stroma_tumour import BloodStromaTumour
from cartpk.regimen import Regimen
from cartpk.simulate import simulate
from cartpk.therapies import THERAPIES, AbstractTherapy, CombinedModel, combine

ROOT = Path(__file__).resolve().parents[1]
THERAPY_DIR = Path(cartpk.therapies.__file__).parent
#: modules of the package that hold no therapy (registry, base classes, shared helpers)
NOT_THERAPIES = {"__init__.py", "base.py", "_common.py"}

TIMES = np.arange(-30.0, 61.0)  # d; CAR-T infusion on day 0
AFTER = TIMES >= 0
N_EVENTS = 80
CART = Regimen.single(1e8, "blood_effector", 0.0)

#: parameters that switch the product-property modules off (CAR-T alone)
NEUTRAL = {k: v for cls in THERAPIES.values() for k, v in cls.product_neutral.items()}

#: each therapy's standard regimen (empty for product properties: switched on by parameters)
REGIMENS = {
    name: cls.dosing.regimen() if cls.dosing else Regimen() for name, cls in THERAPIES.items()
}

#: parameters that switch each product-property module on at its defaults
PRODUCT_PARAMS = {name: tuple(cls.product_neutral) for name, cls in THERAPIES.items()}


def _schedule(amount, state, start, interval, count):
    return Regimen.schedule(amount, state, start=start, interval=interval, count=count)


@pytest.fixture(scope="module")
def model():
    return combine(BloodStromaTumour("solid"), *(cls() for cls in THERAPIES.values()))


@pytest.fixture(scope="module")
def run(model):
    """Simulate CAR-T (day 0) plus ``regimen``; product properties off unless overridden."""

    def _run(regimen=None, cart=CART, **overrides):
        regimen = Regimen() if regimen is None else regimen
        params = model.default_params(**{**NEUTRAL, **overrides})
        doses = (cart + regimen).to_arrays(model.state_names, N_EVENTS)
        solution = simulate(model, params, doses, TIMES)
        assert int(solution.status) == 0
        return solution

    return _run


@pytest.fixture(scope="module")
def alone(run):
    return run()


def _auc(solution, name="tumour_car_t"):
    values = np.asarray(solution.observables[name])
    return float(np.trapezoid(values[AFTER], TIMES[AFTER]))


def _at(solution, name, day):
    return float(np.asarray(solution.observables[name])[TIMES == day][0])


# -- registry and channel hygiene (no solve) ------------------------------------------------


@pytest.mark.parametrize("name", sorted(THERAPIES))
def test_registered_therapy_is_well_formed(name):
    """Every module: unique prefixed names, documented units/sources, valid neutral channels."""
    cls = THERAPIES[name]
    assert issubclass(cls, AbstractTherapy) and cls.name == name and cls.description
    therapy = cls()
    core = BloodStromaTumour("solid")
    combined = combine(core, therapy)
    assert isinstance(combined, CombinedModel)
    for state in cls.states:
        assert state.compartment == name and state.unit and state.atol <= 1e-6
    for parameter in cls.parameters:
        assert parameter.unit and parameter.source and parameter.description
        # a citation with its DOI, or an assumption saying why
        assert parameter.source.startswith("assumption") or "doi:" in parameter.source
    prefixes = {x.name.split("_")[0] for x in cls.states + cls.parameters}
    assert len(prefixes) <= 1
    # a therapy is either dosed (into one of its own states) or a property of the CAR-T product
    assert (cls.dosing is None) != (not cls.product_neutral)
    if cls.dosing:
        assert cls.dosing.state in {s.name for s in cls.states} and cls.dosing.count >= 1
    assert set(cls.product_neutral) <= {p.name for p in cls.parameters}
    params = combined.default_params()
    y = combined.initial_state(params)
    effects = therapy.effects(0.0, y, params)
    assert effects and set(effects) <= set(CHANNELS)
    if cls.dosing:
        # undosed drug modules are neutral
        neutral = neutral_effects()
        for channel, value in effects.items():
            assert float(value) == pytest.approx(float(neutral[channel]))


def test_every_therapy_class_has_its_own_module():
    """One therapy class per module file of ``cartpk.therapies`` (besides the registry, the base
    and the shared helpers), and every module's class is registered."""
    classes = {}
    for path in sorted(THERAPY_DIR.glob("*.py")):
        if path.name in NOT_THERAPIES:
            continue
        tree = ast.parse(path.read_text())
        names = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
        assert len(names) == 1, f"{path.name} defines {names}: one therapy class per module"
        classes[path.stem] = names[0]
    registered = {cls.__module__.rsplit(".", 1)[-1]: cls.__name__ for cls in THERAPIES.values()}
    assert classes == registered


@pytest.mark.parametrize("name", sorted(THERAPIES))
def test_docs_list_every_therapy_with_its_sources(name):
    """docs/therapies.md has a section per therapy naming its module file, and the table row of
    each parameter there is the code's (default, unit, meaning and source)."""
    text = (ROOT / "docs" / "therapies.md").read_text()
    cls = THERAPIES[name]
    assert f" {name} — `{cls.__name__}`" in text
    assert f"`cartpk/therapies/{cls.__module__.rsplit('.', 1)[-1]}.py`" in text
    for p in cls.parameters:
        row = f"| `{p.name}` | {p.default:.4g} | {p.unit} | {p.description} | {p.source} |"
        assert row in text, f"docs/therapies.md: no up-to-date row for {p.name}"
    states = "; ".join(f"`{s.name}` ({s.unit}): {s.description}" for s in cls.states)
    assert ("States: " + (f"{states}." if states else "none (product property).")) in text


def test_nanoparticle_rejects_unknown_channel():
    with pytest.raises(Exception, match="unknown effect channel"):
        THERAPIES["nanoparticle"](channel="not_a_channel")


# -- every therapy simulates with the core -------------------------------------------------


@pytest.mark.parametrize("name", sorted(THERAPIES))
def test_each_therapy_simulates(run, name):
    """Each registered therapy, dosed (or switched on) alone with CAR-T, solves with status 0."""
    overrides = {}
    for parameter in PRODUCT_PARAMS.get(name, ()):
        spec = next(s for s in THERAPIES[name].parameters if s.name == parameter)
        overrides[parameter] = spec.default
    solution = run(REGIMENS[name], **overrides)
    assert np.all(np.isfinite(np.asarray(solution.observables["tumour_burden"])))


def test_all_therapies_together_simulate(model):
    """Every therapy at once (product properties at their defaults) solves with status 0."""
    regimen = CART
    for r in REGIMENS.values():
        regimen = regimen + r
    doses = regimen.to_arrays(model.state_names, N_EVENTS)
    solution = simulate(model, model.default_params(), doses, TIMES)
    assert int(solution.status) == 0


# -- directions supported by the literature ------------------------------------------------


def test_anti_vegf_normalization_window(run, alone):
    """Moderate anti-VEGF before CAR-T raises intratumoural CAR-T; high/prolonged dosing lowers it
    again (vessel pruning). Mpekris 2020, doi:10.1073/pnas.1919764117; Jain's normalization window.
    """
    moderate = run(Regimen.single(2 * 70.0, "bev_central", -7.0))
    high = run(_schedule(15 * 70.0, "bev_central", -28.0, 14.0, 5))
    assert _auc(moderate) > 1.1 * _auc(alone)
    assert _auc(high) < 0.8 * _auc(moderate)
    assert _auc(high) < _auc(alone)


def test_hyaluronidase_raises_infiltration(run, alone):
    """PEGPH20 3 ug/kg twice weekly degrades hyaluronan and raises CAR-T infiltration.
    Infante 2018, doi:10.1038/bjc.2017.327 (tumour HA fell); seed review
    doi:10.3389/fimmu.2025.1672601.
    """
    treated = run(REGIMENS["hyaluronidase"])
    assert _auc(treated) > 1.1 * _auc(alone)
    ecm = np.asarray(treated.states["ecm_density"])[TIMES == 14][0]
    assert ecm < 0.9


def test_ccl19_il7_raises_infiltration_and_persistence(run, alone):
    """7x19 CAR-T infiltrate more and persist longer. Adachi 2018, doi:10.1038/nbt.4086."""
    armoured = run(c19_homing=2.0, c19_expansion=1.2, c19_persistence=1.5)
    assert _auc(armoured) > 1.2 * _auc(alone)
    assert _at(armoured, "total_car_t", 60) > 1.2 * _at(alone, "total_car_t", 60)
    assert _at(armoured, "blood_cells_per_ul", 60) > _at(alone, "blood_cells_per_ul", 60)


def test_checkpoint_lowers_exhaustion(run, alone):
    """Anti-PD-1 lowers the exhausted fraction of tumour CAR-T (PD-1 blockade reinvigorates
    exhausted T cells; pembrolizumab PK from Ahamadi 2017, doi:10.1002/psp4.12139)."""
    treated = run(REGIMENS["checkpoint"])
    window = (TIMES >= 7) & (TIMES <= 60)
    with_pd1 = np.asarray(treated.observables["exhausted_fraction"])[window]
    without = np.asarray(alone.observables["exhausted_fraction"])[window]
    assert np.mean(with_pd1) < 0.95 * np.mean(without)


def test_radiotherapy_lowers_tumour_burden_and_kills_cart_after_infusion(run, alone):
    """RT fractions (LQ) lower tumour burden; RT after infusion also kills CAR-T in the field.
    Adhikarla 2021, doi:10.3390/cancers13205171; Sinelschikov (models.md section 5.5)."""
    before = run(REGIMENS["radiotherapy"])
    assert _at(before, "tumour_burden", 0) < 0.5 * _at(alone, "tumour_burden", 0)
    assert _at(before, "tumour_burden", 60) < _at(alone, "tumour_burden", 60)
    after = run(_schedule(2.0, "rt_dose", 7.0, 1.0, 5))
    assert _at(after, "tumour_car_t", 12) < _at(before, "tumour_car_t", 12)


def test_intensified_lymphodepletion_raises_expansion(run, alone):
    """Extra Flu/Cy on top of the standard niche raises CAR-T expansion (Turtle 2016,
    doi:10.1172/JCI85309: Cy/Flu improved CAR-T expansion)."""
    treated = run(REGIMENS["lymphodepletion"])
    peak = np.max(np.asarray(treated.observables["total_car_t"])[AFTER])
    peak0 = np.max(np.asarray(alone.observables["total_car_t"])[AFTER])
    assert peak > 1.1 * peak0


# -- photodynamic / photothermal therapy ------------------------------------------------------

PDT = THERAPIES["photodynamic"]
#: switches off the antigen-release (immunogenic cell death) effects of a PDT session
NO_ANTIGEN_RELEASE = {"pdt_chemokine": 0.0, "pdt_activation": 0.0}


def _pdt_default(name):
    return next(p.default for p in PDT.parameters if p.name == name)


def test_photodynamic_kills_its_fraction_of_the_tumour(run, alone):
    """One standard session the day before CAR-T kills ``pdt_kill_fraction`` of the tumour cells
    (local ablation, antigen-agnostic) and the burden stays lower at days 30 and 60. PDT/PTT as
    local ablation: seed review Zhang 2025, doi:10.3389/fimmu.2025.1672601 (section 3.6);
    Agostinis 2011, doi:10.3322/caac.20114."""
    treated = run(REGIMENS["photodynamic"])
    survival = 1.0 - _pdt_default("pdt_kill_fraction")
    expected = survival * _at(alone, "tumour_burden", 0)
    assert _at(treated, "tumour_burden", 0) == pytest.approx(expected, rel=1e-2)
    for day in (30, 60):
        assert _at(treated, "tumour_burden", day) < 0.9 * _at(alone, "tumour_burden", day)


def test_photodynamic_antigen_release_raises_tumour_cart(run, alone):
    """The antigen/danger-signal pulse after a session before CAR-T raises intratumoural CAR-T:
    photothermal therapy promoted CAR-T infiltration of tumours in mice (Chen 2019, Adv Mater)."""
    treated = run(REGIMENS["photodynamic"])
    no_release = run(REGIMENS["photodynamic"], **NO_ANTIGEN_RELEASE)
    assert _auc(treated) > 1.2 * _auc(no_release)
    assert _auc(treated) > 1.2 * _auc(alone)
    chemokine = np.asarray(treated.states["chemokine"])[TIMES == 1][0]
    assert chemokine > 1.5 * np.asarray(alone.states["chemokine"])[TIMES == 1][0]


def test_photodynamic_after_infusion_kills_cart_in_the_field(run):
    """A session after the infusion also kills the CAR-T in the illuminated field."""
    session = _schedule(1.0, "pdt_session", 7.0, 7.0, 1)
    hit = run(session)
    spared = run(session, pdt_cart_fraction=1e-9)
    assert _at(hit, "tumour_car_t", 8) < 0.85 * _at(spared, "tumour_car_t", 8)


def test_photodynamic_zero_dose_is_the_core_model(run):
    """Undosed (or dosed with 0), the module leaves the core model as it is: its channels are
    exactly neutral, so the core's vector field is bit-identical, and the trajectories equal the
    core model's alone to the solver tolerance (the error norm runs over more states, so the
    step sequence differs)."""
    core = BloodStromaTumour("solid")
    model = combine(core, PDT())
    params = model.default_params()
    rng = np.random.default_rng(0)
    y0 = model.initial_state(params)
    for t in (-1.0, 3.0, 20.0):
        y = {
            k: v * rng.uniform(0.5, 2.0) + rng.uniform(0.0, 1e6) if k in core.state_names else v
            for k, v in y0.items()
        }
        dy = model.rates(t, y, params, model.effects(t, y, params))
        dy_core = core.rates(t, {k: y[k] for k in core.state_names}, params, neutral_effects())
        for k in core.state_names:
            assert float(dy[k]) == float(dy_core[k]), k

    zero = run(_schedule(0.0, "pdt_session", -1.0, 7.0, 3))
    doses = CART.to_arrays(core.state_names, N_EVENTS)
    reference = simulate(core, core.default_params(), doses, TIMES)
    assert int(reference.status) == 0
    for name in core.state_names:
        expected = np.asarray(reference.states[name])
        floor = 1e-9 * np.max(np.abs(expected)) + 1e-12
        np.testing.assert_allclose(zero.states[name], expected, rtol=1e-5, atol=floor)
    for name in ("tumour_burden", "tumour_car_t", "blood_cells_per_ul"):
        np.testing.assert_allclose(
            zero.observables[name], reference.observables[name], rtol=1e-5, atol=1e-12
        )
