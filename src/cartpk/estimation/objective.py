"""The population objective (FOCE-I or Laplace) and its exact gradient, in JAX.

For subject ``i`` with random effects ``eta = L z`` (``Omega = L L^T``, ``z`` standard normal),
the conditional objective is

    l_i(z) = sum_j  -2 log p(y_ij | phi_i(z))  +  z^T z

(the terms of :func:`~cartpk.estimation.error_models.neg2_loglik`, M3 for censored rows). Its
minimum ``z*`` (the empirical Bayes estimate) is found by BFGS (optimistix). The subject's
contribution to the objective, ``-2 log`` of the Laplace approximation of its marginal
likelihood, is

    O_i = l_i(z*) + log det( I + 1/2 L^T A_i L )

with ``A_i`` the Hessian of the summed data terms in ``eta``: exact (``method="laplace"``) or the
first-order approximation of FOCE with interaction (``method="foce"``), as NONMEM computes it:

    A_i = sum_j [ h_j g_j g_j^T  +  k_j s_j s_j^T ]

with ``g_j`` and ``s_j`` the gradients of the transformed prediction and of the residual SD on
the transformed scale, ``h_j`` from :func:`~cartpk.estimation.error_models.curvature` and
``k_j = 4 / sd_j^2`` from :func:`~cartpk.estimation.error_models.sd_curvature` (0 for censored
rows). The second term is ``grad V grad V^T / V^2`` of the residual variance ``V = sd^2``; it
vanishes for additive and exponential error, and without it the OFV of a proportional-error
model differs from NONMEM's (by 1.56 on NONMEM's phenobarbital example,
``tests/test_nonmem_reference.py``). The OFV is ``sum_i w_i O_i`` (``w_i = 1`` except in a
bootstrap).

Gradients without differentiating the ODE solver more than once. At ``phi* = phi_i(z*)`` one
forward-mode pass through the solver gives the transformed predictions and their derivatives
in the parameters up to order 2 (FOCE) or 3 (Laplace). ``O_i`` is then evaluated on the Taylor
polynomial of that order around ``phi*``, which has the same value and the same derivatives up to
that order, so the value and the gradient of ``O_i`` are exact. The dependence of ``z*`` on the
parameters enters through one Newton step from ``z*`` with a frozen Hessian, whose derivative is
the implicit-function-theorem one, ``dz* = -H^-1 d(grad_z l)``.
"""

from __future__ import annotations

import math

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array

from ..simulate import simulate
from .bfgs import TrustRegionBFGS
from .error_models import curvature, neg2_loglik, sd_curvature
from .problem import Layout, SubjectArrays

METHODS = ("foce", "laplace")


class Spec(eqx.Module):
    """Everything about an objective except the data: the layout and the numerical settings.

    ``rtol`` is an array, so changing it does not recompile; every other field is static.

    Attributes:
        layout: names and scales of the parameters.
        method: ``"foce"`` (FOCE with interaction) or ``"laplace"``.
        solver, rtol, max_steps: ODE solver settings (see :func:`~cartpk.simulate`).
        inner_tol: convergence tolerance of the random-effect (EBE) searches, in units of the
            EBE's posterior SD and of the objective; a final Newton step on the exact local
            expansion refines the EBE to about the square of it.
        inner_max_steps: most BFGS steps of one EBE search.
        closed_form: use the model's closed-form solution when it has one
            (:meth:`~cartpk.AbstractModel.solution`); False integrates its rates.
    """

    layout: Layout = eqx.field(static=True)
    method: str = eqx.field(static=True, default="foce")
    solver: dfx.AbstractSolver = eqx.field(static=True, default=dfx.Kvaerno5())
    rtol: Array = eqx.field(default=1e-8, converter=lambda v: jnp.asarray(v, dtype=float))
    max_steps: int = eqx.field(static=True, default=4096)
    inner_tol: float = eqx.field(static=True, default=1e-5)
    inner_max_steps: int = eqx.field(static=True, default=64)
    closed_form: bool = eqx.field(static=True, default=True)


# ------------------------------------------------------------------------------------------------
# Predictions and the data terms


def predictions(spec: Spec, phi, d: SubjectArrays):
    """Transformed predictions at the subject's rows (0 on padding) and the solver status."""
    layout = spec.layout
    solution = simulate(
        layout.model,
        layout.natural(phi),
        d.doses,
        d.time,
        solver=spec.solver,
        rtol=spec.rtol,
        max_steps=spec.max_steps,
        adjoint=dfx.ForwardMode(),
        closed_form=spec.closed_form,
    )
    values = jnp.stack([solution.observables[name] for name in layout.observables])
    which = jnp.asarray(
        [layout.observables.index(o.observable) for o in layout.observations], dtype=int
    )[d.obs_type]
    f = jnp.take_along_axis(values, which[None, :], axis=0)[0]
    g = jnp.zeros_like(f)
    for t, obs in enumerate(layout.observations):
        here = d.mask & (d.obs_type == t)
        g = jnp.where(here, obs.error.transform(jnp.where(here, f, 1.0)), g)
    return g, solution.status


def residual_sd(spec: Spec, g, sigmas, d: SubjectArrays):
    """Residual SD of each row on its transformed scale, from transformed predictions."""
    sd = jnp.ones_like(g)
    for t, obs in enumerate(spec.layout.observations):
        here = d.mask & (d.obs_type == t)
        safe = jnp.where(here, g, 0.0)
        f = jnp.exp(safe) if obs.error.log_scale else safe
        sd = jnp.where(here, obs.error.sd(f, sigmas[t]), sd)
    return sd


def data_terms(g, sd, d: SubjectArrays):
    """-2 log-likelihood of each row (0 on padding)."""
    terms = neg2_loglik(d.g_obs, g, sd, d.censored, d.censored_above, d.g_limit)
    return jnp.where(d.mask, terms, 0.0)


def _valid(value, status):
    return jnp.where((status == 0) & jnp.isfinite(value), value, jnp.inf)


def conditional(spec: Spec, z, ctx, d: SubjectArrays):
    """``l_i(z)`` through the ODE solver (``+inf`` where the solve fails)."""
    mu, chol, sigmas = ctx
    g, status = predictions(spec, spec.layout.individual(mu, chol, z), d)
    return _valid(jnp.sum(data_terms(g, residual_sd(spec, g, sigmas, d), d)) + z @ z, status)


# ------------------------------------------------------------------------------------------------
# The random-effect search (primal only: never differentiated)


def forward_gradient(fn):
    """``fn(y, args)`` whose derivative in ``y`` is one ``jax.jacfwd`` pass (reverse-mode callers
    such as optimistix's BFGS then never transpose the ODE solver). ``args`` is constant."""

    @jax.custom_jvp
    def wrapped(y, args):
        return fn(y, args)

    @wrapped.defjvp
    def wrapped_jvp(primals, tangents):
        y, args = primals
        grad, value = jax.jacfwd(lambda y: _twice(fn(y, args)), has_aux=True)(y)
        return value, jnp.where(jnp.isfinite(value), grad @ tangents[0], 0.0)

    return wrapped


def _twice(value):
    return value, value


def search_z(spec: Spec, ctx, d: SubjectArrays, z0):
    """The EBE search: ``(z*, converged)`` by BFGS from the warm start ``z0`` (the previous
    EBE; 0 at the first evaluation). A search that ends on a non-finite objective (a failed
    solve) has not converged."""
    solution = optx.minimise(
        forward_gradient(lambda z, args: conditional(spec, z, *args)),
        TrustRegionBFGS(rtol=0.0, atol=spec.inner_tol),
        z0,
        args=(ctx, d),
        max_steps=spec.inner_max_steps,
        throw=False,
    )
    finite = jnp.isfinite(solution.state.f_info.f)
    return solution.value, (solution.result == optx.RESULTS.successful) & finite


# ------------------------------------------------------------------------------------------------
# The local Taylor expansion and the subject's objective


def expansion(spec: Spec, phi, d: SubjectArrays, order: int):
    """Transformed predictions and their derivatives in the varying parameters at ``phi``.

    Returns ``([g, D g, ..., D^order g], status)``; ``D^m g`` has shape ``(n,) + (K',) * m``.
    """
    where = jnp.asarray(spec.layout.varying_index, dtype=int)

    def level0(v):
        g, status = predictions(spec, phi.at[where].set(v), d)
        return g, ([g], status)

    fun = level0
    for _ in range(order):

        def fun(v, inner=fun):
            deriv, (coeffs, status) = jax.jacfwd(inner, has_aux=True)(v)
            return deriv, ([*coeffs, deriv], status)

    _, (coeffs, status) = fun(phi[where])
    return coeffs, status


def taylor(coeffs, delta):
    """The Taylor polynomial ``sum_m D^m g [delta]^m / m!``."""
    value = coeffs[0]
    for m, c in enumerate(coeffs[1:], start=1):
        term = c
        for _ in range(m):
            term = term @ delta
        value = value + term / math.factorial(m)
    return value


def subject_objective(spec: Spec, ctx, d: SubjectArrays, z0, *, with_status: bool = False):
    """``(O_i, z*, converged, g*, J*)`` for one subject (see the module docstring), and the
    solver's status code at the EBE last when ``with_status``.

    ``g*`` and ``J*`` are the transformed predictions at the EBE and their derivatives in the
    varying parameters. ``converged`` is false unless the EBE search converged, the solve at
    the EBE succeeded and ``O_i`` is finite (``O_i`` is then ``+inf``). Differentiable in
    ``ctx``; the ODE solver only sees values without tangents.
    """
    layout = spec.layout
    order = 3 if spec.method == "laplace" else 2
    fixed = jax.lax.stop_gradient(ctx)
    if layout.etas:
        z_star, ok = search_z(spec, fixed, d, z0)
    else:
        z_star, ok = z0, jnp.asarray(True)
    phi_star = layout.individual(fixed[0], fixed[1], z_star)
    coeffs, status = expansion(spec, phi_star, d, order)
    where = jnp.asarray(layout.varying_index, dtype=int)

    def local(z, ctx):
        """Transformed predictions and residual SDs on the Taylor polynomial."""
        mu, chol, sigmas = ctx
        g = taylor(coeffs, layout.individual(mu, chol, z)[where] - phi_star[where])
        return g, residual_sd(spec, g, sigmas, d)

    def local_conditional(z, ctx):
        g, sd = local(z, ctx)
        return jnp.sum(data_terms(g, sd, d)) + z @ z

    k = z0.shape[0]
    if k:
        # one Newton step with a frozen Hessian: the value stays z*, the derivative is the IFT's
        hessian = jax.lax.stop_gradient(jax.hessian(local_conditional)(z_star, fixed))
        z = z_star - jnp.linalg.solve(hessian, jax.grad(local_conditional)(z_star, ctx))
    else:
        z = z_star
    g, sd = local(z, ctx)
    base = jnp.sum(data_terms(g, sd, d)) + z @ z

    def outputs(value):
        value = _valid(value, status)
        out = (value, z_star, ok & jnp.isfinite(value), coeffs[0], coeffs[1])
        return (*out, status) if with_status else out

    if not k:
        return outputs(base)
    if spec.method == "laplace":
        curv = jax.hessian(lambda z: local_conditional(z, ctx) - z @ z)(z)
    else:
        jac, jac_sd = jax.jacfwd(lambda z: local(z, ctx))(z)
        h = jnp.where(d.mask, curvature(g, sd, d.censored, d.censored_above, d.g_limit), 0.0)
        k_sd = jnp.where(d.mask, sd_curvature(sd, d.censored, d.censored_above), 0.0)
        curv = jac.T @ (h[:, None] * jac) + jac_sd.T @ (k_sd[:, None] * jac_sd)
    matrix = jnp.eye(k) + 0.5 * curv
    factor = jnp.linalg.cholesky(0.5 * (matrix + matrix.T))
    logdet = 2 * jnp.sum(jnp.log(jnp.diagonal(factor)))
    return outputs(base + logdet)


# ------------------------------------------------------------------------------------------------
# All subjects


def subject_contexts(layout: Layout, x, design):
    """``(mu_i, L, sigmas)`` for every subject (``mu`` has a leading subject axis)."""
    mu = jax.vmap(lambda row: layout.typical(x, row))(design)
    return mu, layout.omega_chol(x), layout.sigmas(x)


def evaluate_rows(spec: Spec, arrays: SubjectArrays, x0, V, s, z0):
    """Each row's OFV contribution and its gradient at ``x = x0 + V s`` (one row per subject and
    parameter vector, so that fits, bootstraps and profiles all run through one compiled shape).

    Args:
        arrays: the rows' subjects (leading row axis ``C``).
        x0: internal values of all labels per row, ``(C, labels)``.
        V: directions of the free parameters per row, ``(C, labels, m)``.
        s: position along them, ``(C, m)``.
        z0: warm starts of the random effects, ``(C, k)``.

    Returns:
        dict of per-row arrays: ``ofv_i`` ``(C,)``, ``grad_i`` ``(C, m)`` (d O_i / d s), ``z``
        ``(C, k)``, ``ok`` (EBE search converged and ``O_i`` finite), ``status`` (the solver's
        :class:`~cartpk.simulate.Status` code at the EBE), and at the EBEs the transformed
        predictions ``g`` ``(C, n)`` and their derivatives in the varying parameters ``jac``
        ``(C, n, K')``. A failed solve gives ``ofv_i = +inf`` and a zero gradient.
    """
    layout = spec.layout

    def row(d, x0, V, s, z0):
        def contribution(s):
            x = x0 + V @ s
            ctx = (layout.typical(x, d.design), layout.omega_chol(x), layout.sigmas(x))
            ofv_i, *rest = subject_objective(spec, ctx, d, z0, with_status=True)
            return ofv_i, (ofv_i, *rest)

        grad_i, (ofv_i, z, ok, g, jac, status) = jax.jacfwd(contribution, has_aux=True)(s)
        grad_i = jnp.where(jnp.isfinite(ofv_i), grad_i, 0.0)
        return dict(ofv_i=ofv_i, grad_i=grad_i, z=z, ok=ok, g=g, jac=jac, status=status)

    return jax.vmap(row)(arrays, x0, V, s, z0)


evaluate_chunk = eqx.filter_jit(evaluate_rows)
