"""A user-defined model (examples/kimmel2021.py) with the public API reproduces ZUMA-1 medians."""

import importlib.util
from pathlib import Path

import jax.numpy as jnp

import cartpk


def _load_example():
    path = Path(__file__).resolve().parents[1] / "examples" / "kimmel2021.py"
    spec = importlib.util.spec_from_file_location("kimmel2021", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Kimmel2021()


def test_kimmel2021_lands_in_the_zuma1_interquartile_ranges():
    """ZUMA-1 median CAR+ cells/uL (IQR): d7 27.5 (16.5-57.5), d14 9.1 (3.8-31.1),
    d28 2.1 (0.6-6.1), d90 0.1 (0.01-0.4); Kimmel 2021 doi:10.1098/rspb.2021.0229."""
    model = _load_example()
    dose = cartpk.Regimen.single(0.36, "car_t")
    sol = cartpk.simulate(model, model.default_params(), dose, jnp.array([7.0, 14.0, 28.0, 90.0]))
    got = sol.observables["car_t_per_ul"].tolist()
    for value, (low, high) in zip(
        got, [(16.5, 57.5), (3.8, 31.1), (0.6, 6.1), (0.01, 0.4)], strict=True
    ):
        assert low <= value <= high
    table = cartpk.load_dataset("zuma1_axicel_medians")
    assert len(table) == 4
