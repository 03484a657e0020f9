"""Rung 3: jax.grad through the solver against central finite differences, every parameter."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cartpk

CASES = {
    "multiphasic": (
        cartpk.Multiphasic(),
        None,
        "blood_copies_per_ug",
        jnp.array([5.0, 20.0, 60.0]),
    ),
    "solid": (
        cartpk.BloodStromaTumour("solid"),
        cartpk.Regimen.single(1e8, "blood_effector"),
        "tumour_car_t",
        jnp.array([7.0, 21.0]),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_gradient_matches_finite_differences(name):
    """d log(observable summed over times) / d log(parameter), for every parameter."""
    model, regimen, observable, times = CASES[name]
    doses = (regimen or cartpk.Regimen()).to_arrays(model.state_names)
    base = model.default_params()
    names = [n for n in model.parameter_set.names if float(base[n]) > 0]

    @jax.jit
    def objective(log_p):
        params = {**base, **{n: jnp.exp(v) for n, v in log_p.items()}}
        sol = cartpk.simulate(model, params, doses, times, rtol=1e-11, atol_scale=1e-3)
        return jnp.log(jnp.sum(sol.observables[observable]))

    log_p = {n: jnp.log(base[n]) for n in names}
    grad = jax.grad(objective)(log_p)
    h = 1e-4
    bumped = [{**log_p, n: log_p[n] + s * h} for n in names for s in (1, -1)]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *bumped)
    values = np.asarray(jax.vmap(objective)(stacked)).reshape(len(names), 2)
    fd = (values[:, 0] - values[:, 1]) / (2 * h)
    ad = np.array([float(grad[n]) for n in names])
    np.testing.assert_allclose(ad, fd, rtol=2e-4, atol=1e-6, err_msg=str(names))
    assert np.abs(ad).max() > 0.1  # the objective really depends on the parameters
