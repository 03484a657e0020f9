"""Shared fixtures. JAX compiles are slow, so compiled simulations are shared per session:
tests reuse one output grid and one regimen shape per model."""

import gc
import os

import jax
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


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_code():
    """Each compiled XLA executable holds memory mappings of its own; over the whole suite they
    exceed the kernel's limit (vm.max_map_count, 65530 by default) and a later compile crashes.
    Dropping JAX's caches after each test module keeps the count at its baseline (measured:
    6,600 mappings after three modules without, 1,360 with)."""
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture(autouse=True, scope="session")
def _compilation_cache(tmp_path_factory):
    """The command line's compilation cache (``cartpk.cache``) in a folder of this test session,
    not the user's: command-line runs in subprocesses share it."""
    os.environ["CARTPK_CACHE_DIR"] = str(tmp_path_factory.mktemp("compilation-cache"))
