"""Parameters, transforms, regimens and units: small, exact checks."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

import cartpk
from cartpk import units


@pytest.mark.parametrize("model", [cartpk.Multiphasic(), cartpk.BloodStromaTumour("solid")])
def test_transform_round_trip(model):
    ps = model.parameter_set
    params = {k: v for k, v in model.default_params().items() if float(v) > 0}
    back = ps.from_unconstrained(ps.to_unconstrained(params))
    for name, value in params.items():
        np.testing.assert_allclose(back[name], value, rtol=1e-12, err_msg=name)


def test_every_parameter_has_unit_source_and_description():
    for model in (cartpk.Multiphasic(), cartpk.BloodStromaTumour("blood")):
        table = model.parameter_set.table()
        assert table["unit"].str.len().min() > 0
        assert table["source"].str.len().min() > 5
        assert table["description"].str.len().min() > 5


def test_parameter_errors_name_the_parameter():
    model = cartpk.Multiphasic()
    with pytest.raises(cartpk.ParameterError, match="unknown parameter.*: kel; known: cmax"):
        model.default_params(kel=1.0)
    with pytest.raises(cartpk.ParameterError, match=r"parameter fb = 1.5 - is outside .*\[0, 1\]"):
        model.parameter_set.validate(model.default_params(fb=1.5))
    with pytest.raises(cartpk.ParameterError, match="parameter alpha = inf"):
        model.parameter_set.validate(model.default_params(alpha=math.inf))


def test_regimen_expansion_and_errors():
    r = cartpk.Regimen.schedule(10.0, "a", start=1.0, interval=7.0, count=3, duration=0.5)
    arrays = r.to_arrays(["a", "b"], n_events=8)
    np.testing.assert_array_equal(arrays.times[:6], [1.0, 1.5, 8.0, 8.5, 15.0, 15.5])
    assert np.all(np.isinf(arrays.times[6:]))
    np.testing.assert_allclose(arrays.rate[:, 0], [20, 0, 20, 0, 20, 0, 0, 0])
    split = cartpk.Regimen.split(100.0, "a", fractions=[0.1, 0.3, 0.6], days=[0, 1, 2])
    assert [d.amount for d in split.doses] == pytest.approx([10.0, 30.0, 60.0])
    with pytest.raises(cartpk.RegimenError, match="unknown compartment 'c'; the model's states"):
        cartpk.Regimen.single(1.0, "c").to_arrays(["a", "b"])
    with pytest.raises(cartpk.RegimenError, match="dose amount must be >= 0"):
        cartpk.Dose(0.0, -1.0, "a")
    with pytest.raises(cartpk.RegimenError, match="dose time must be finite"):
        cartpk.Dose(math.nan, 1.0, "a")
    with pytest.raises(cartpk.RegimenError, match="sum to 1"):
        cartpk.Regimen.split(1.0, "a", fractions=[0.5, 0.6], days=[0, 1])


def test_unit_conversions_round_trip_and_worked_example():
    """models.md section 6: 24,000 copies/ug at VCN 1 is a CAR+ fraction of ~16 %."""
    cells = units.copies_per_ug_to_cells_per_ul(24000.0, wbc=1000.0, vcn=1.0)
    assert cells / (cells + 1000.0) == pytest.approx(24000 * 6.6e-6)
    np.testing.assert_allclose(units.cells_per_ul_to_copies_per_ug(cells), 24000.0, rtol=1e-12)
    body = units.cells_per_ul_to_whole_body(1.0, blood_fraction=0.01)
    assert body == pytest.approx(5e8)  # Kimmel 2021: cells/uL x 5e8
    assert units.whole_body_to_cells_per_ul(body, blood_fraction=0.01) == pytest.approx(1.0)


def test_model_observable_uses_the_documented_conversion(solid_run):
    model, params, sol = solid_run
    per_ul = np.asarray(sol.observables["blood_cells_per_ul"])
    expected = units.cells_per_ul_to_copies_per_ug(per_ul, wbc=1000.0, vcn=1.0)
    np.testing.assert_allclose(sol.observables["blood_copies_per_ug"], expected, rtol=1e-12)


def test_float32_mode_is_refused():
    import jax

    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(cartpk.CartpkError, match="cartpk needs float64"):
            cartpk.simulate(cartpk.Multiphasic(), {}, None, [1.0])
    finally:
        cartpk.enable_x64()


def test_times_must_be_sorted():
    m = cartpk.Multiphasic()
    with pytest.raises(cartpk.ArgumentError, match="non-decreasing, got 2 then 1 at index 1"):
        cartpk.simulate(m, m.default_params(), None, jnp.array([2.0, 1.0]))
