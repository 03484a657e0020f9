"""Shared fixtures. JAX compiles are slow, so compiled simulations are shared per session:
tests reuse one output grid and one regimen shape per model."""

import jax.numpy as jnp
import pytest

import cartpk

cartpk.enable_x64()

#: One output grid for the mechanistic model tests (d): dense early, sparse late.
TIMES = jnp.concatenate([jnp.linspace(0.0, 60.0, 241)[1:], jnp.linspace(62.0, 364.0, 152)])


@pytest.fixture(scope="session")
def times():
    return TIMES


@pytest.fixture(scope="session")
def car_t_dose():
    return cartpk.Regimen.single(1e8, "blood_effector")


@pytest.fixture(scope="session")
def blood_run(car_t_dose):
    model = cartpk.BloodStromaTumour("blood")
    params = model.default_params()
    return model, params, cartpk.simulate(model, params, car_t_dose, TIMES)


@pytest.fixture(scope="session")
def solid_run(car_t_dose):
    model = cartpk.BloodStromaTumour("solid")
    params = model.default_params()
    return model, params, cartpk.simulate(model, params, car_t_dose, TIMES)
