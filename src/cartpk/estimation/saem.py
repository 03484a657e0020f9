"""SAEM: stochastic approximation EM for nonlinear mixed effects, as Monolix runs it.

Each iteration ``k`` (Kuhn & Lavielle 2005, doi:10.1016/j.csda.2004.07.008; Monolix's defaults,
Lavielle 2014, *Mixed Effects Models for the Population Approach*, CRC, ch. 9):

1. **Simulation**: each subject's random effects (``chains`` Markov chains per subject) move by
   Metropolis-Hastings kernels targeting ``p(eta_i | y_i; theta_k)``: proposals from the prior
   ``N(0, Omega)``, random walks on all components, and random walks on one component at a time,
   with step sizes adapted towards 40 % acceptance. The target is the conditional objective of
   :func:`~.objective.conditional` (``-2 log p(y_i | phi_i) + z^T z``; a failed solve is an
   infinite objective, hence a rejected proposal). All subjects and chains move at once
   (``vmap``): only primal ODE solves, no derivatives.
2. **Stochastic approximation** of the sufficient statistics of the individual parameters
   (``E[phi_i]`` and ``E[phi_i phi_i^T]``), with step ``gamma_k = 1`` during the ``K1``
   exploration iterations and ``1 / (k - K1 + 1)`` during the ``K2`` smoothing ones.
3. **Maximisation**: typical values and covariate effects of parameters with variability by
   least squares on ``E[phi_i]``, ``Omega`` from the second moments, in closed form; the
   typical values without variability take one Newton step on the marginal likelihood
   (:func:`marginal_step`: the samples' complete-data gradient, the Gauss-Newton Hessian with
   each subject's individual parameters eliminated), with the chains and the statistics moved
   along by the individual parameters' linear response; then the residual error parameters two
   Newton steps on the complete-data objective at the current samples; each step scaled by
   ``gamma_k`` (or, with ``no_variability="decreasing"``, those typical values get an
   artificial variability whose variance is forced to shrink by the factor 0.95 per iteration,
   Monolix's "add decreasing variability", and the closed form updates them too).
   During exploration each variance decreases by at most the factor ``annealing`` per iteration
   (simulated annealing: the chains keep exploring while the variances are large).

Afterwards ``-2 log L`` by importance sampling from a Student-t (5 degrees of freedom) centred
on each subject's conditional mean and covariance (estimated in the smoothing phase), with its
Monte Carlo standard error; standard errors from the Fisher information by linearization: the
covariance step of the FOCE-I objective at the SAEM estimates
(:func:`~.mixed_effects.covariance_step`), sandwich or ``2 R^-1`` as for :class:`Population`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..errors import CartpkError
from ..progress import step, track
from .mixed_effects import SE_METHODS, check_finite, covariance_step, evaluate_at
from .objective import Spec, conditional, data_terms, predictions, residual_sd
from .outer import Evaluator, scaling
from .problem import Layout, Problem
from .strategy import AbstractStrategy, Settings

#: acceptance rate the random-walk step sizes are adapted towards
TARGET_ACCEPTANCE = 0.4
#: degrees of freedom of the importance-sampling proposal
T_DOF = 5.0
#: how SAEM estimates typical values without variability (see :class:`SAEM`)
NO_VARIABILITY = ("decreasing", "newton")
#: initial SD (log scale) of the artificial variability of ``no_variability="decreasing"``
#: (Monolix starts every omega at 1), and the factor by which its variance shrinks per iteration
ARTIFICIAL_SD, ARTIFICIAL_DECREASE = 1.0, 0.95


@dataclass(frozen=True)
class SAEM(AbstractStrategy):
    """Nonlinear mixed effects by SAEM (see the module docstring).

    Args:
        iterations: ``(K1, K2)``, exploration and smoothing iterations (Monolix: up to 500 and
            200).
        chains: Markov chains per subject; default enough for 50 chains in all (Monolix's rule).
        kernels: Metropolis-Hastings steps per iteration of each kernel: prior proposals,
            random walks on all random effects, random walks on each one in turn.
        annealing: largest factor by which a variance may shrink per exploration iteration.
        samples: importance samples per subject for ``-2 log L`` (0: skip).
        se: ``"sandwich"``, ``"hessian"`` or ``"none"`` (linearization: the FOCE-I covariance
            step at the SAEM estimates).
        seed: seed of every random draw; the same seed gives the same fit.
        no_variability: how typical values without variability are estimated: ``"newton"``
            (a Newton step per iteration on the marginal likelihood, see
            :func:`marginal_step`; one forward-mode Jacobian of the predictions per sample) or
            ``"decreasing"`` (an artificial variability, SD 1 at the start, its variance
            shrinking by the factor 0.95 every iteration, as Monolix's "add decreasing
            variability": only Markov chain moves, but the value freezes where it is once the
            variance is small; see
            ``docs/saem.md``). A block ``Omega`` uses Newton.
    """

    iterations: tuple[int, int] = (300, 200)
    chains: int | None = None
    kernels: tuple[int, int, int] = (2, 2, 2)
    annealing: float = 0.95
    samples: int = 1000
    se: str = "sandwich"
    seed: int = 0
    fd_step: float = 0.05
    no_variability: str = "newton"

    method = "saem"

    def __post_init__(self):
        k1, k2 = self.iterations
        if not (k1 >= 1 and k2 >= 1):
            raise CartpkError(f"iterations must be two positive integers, got {self.iterations}")
        if self.chains is not None and self.chains < 1:
            raise CartpkError(f"chains must be a positive integer, got {self.chains!r}")
        if not 0 < self.annealing <= 1:
            raise CartpkError(f"annealing must be in (0, 1], got {self.annealing!r}")
        if self.no_variability not in NO_VARIABILITY:
            raise CartpkError(
                f"no_variability must be one of {', '.join(NO_VARIABILITY)}, "
                f"got {self.no_variability!r}"
            )
        if self.se not in SE_METHODS:
            raise CartpkError(f"se must be one of {', '.join(SE_METHODS)}, got {self.se!r}")

    def run(self, model, data, settings: Settings, progress=None):
        problem = settings.problem(model, data)
        return run_saem(problem, self, settings.spec(problem.layout, method="foce"), progress)


# ------------------------------------------------------------------------------------------------
# Where each estimated element of x is updated


@dataclass(frozen=True)
class Roles:
    """Indices into ``x`` by how the M-step updates them."""

    eta_position: tuple[int, ...]  # position in layout.names of each eta
    mean_rows: tuple[tuple[int, tuple[int, ...], tuple[int, ...]], ...]  # per eta: (theta or -1,
    # free beta labels, their effect indices)
    omega: tuple[int, ...]  # omega labels (free ones) of each eta, -1 if fixed
    numerical: tuple[int, ...]  # labels updated by Newton steps on the complete-data objective


def roles(layout: Layout, free) -> Roles:
    free = np.asarray(free, dtype=bool)
    eta_position = tuple(layout.names.index(n) for n in layout.etas)
    mean_rows, closed = [], set()
    for name in layout.etas:
        t = layout.index("theta", name)
        theta = t if free[t] else -1
        betas, effects = [], []
        for e, effect in enumerate(layout.effects):
            b = layout.index("beta", effect.name)
            if effect.parameter == name and free[b]:
                betas.append(b)
                effects.append(e)
        mean_rows.append((theta, tuple(betas), tuple(effects)))
        closed |= {t, *betas}
    omega = []
    for name in layout.etas:
        o = layout.index("omega", name)
        omega.append(o if free[o] else -1)
        closed.add(o)
    if layout.block:
        chol = [i for i, label in enumerate(layout.labels) if label[0] == "chol"]
        if any(not free[i] for i in chol) or any(o < 0 for o in omega):
            raise CartpkError("SAEM with a block Omega needs every omega and correlation free")
        closed |= set(chol)
    numerical = tuple(int(i) for i in np.flatnonzero(free) if i not in closed)
    return Roles(eta_position, tuple(mean_rows), tuple(omega), numerical)


# ------------------------------------------------------------------------------------------------
# Compiled pieces (spec is static: one compile per model structure and solver)


def _contexts(layout: Layout, x, design):
    mu = jax.vmap(lambda row: layout.typical(x, row))(design)
    return mu, layout.omega_chol(x), layout.sigmas(x)


@eqx.filter_jit
def _mcmc(spec: Spec, arrays, x, eta, key, modes, components, scales):
    """Metropolis-Hastings steps for every row (subject x chain): ``modes[s]`` is 0 (prior
    proposal), 1 (random walk on all components) or 2 (random walk on ``components[s]``).

    Returns the new random effects ``eta``, their conditional objectives and each step's
    acceptance rate over rows."""
    layout = spec.layout
    mu, chol, sigmas = _contexts(layout, x, arrays.design)
    k = chol.shape[0]
    z = jax.scipy.linalg.solve_triangular(chol, eta.T, lower=True).T

    def target(z):
        return jax.vmap(lambda zi, mi, d: conditional(spec, zi, (mi, chol, sigmas), d))(
            z, mu, arrays
        )

    def step(carry, inputs):
        z, value = carry
        mode, component, key = inputs
        noise_key, accept_key = jax.random.split(key)
        noise = jax.random.normal(noise_key, z.shape)
        walk = jnp.where(mode == 1, scales[0], scales[1 + component] * (jnp.arange(k) == component))
        proposal = jnp.where(mode == 0, noise, z + walk * noise)
        new = target(proposal)
        # a prior proposal's ratio is the likelihood ratio (the prior terms z^T z cancel)
        prior_terms = jnp.where(mode == 0, jnp.sum(proposal**2, 1) - jnp.sum(z**2, 1), 0.0)
        log_ratio = -0.5 * (new - value - prior_terms)
        accept = jnp.log(jax.random.uniform(accept_key, value.shape)) < log_ratio
        accept &= jnp.isfinite(new)
        z = jnp.where(accept[:, None], proposal, z)
        value = jnp.where(accept, new, value)
        return (z, value), jnp.mean(accept)

    keys = jax.random.split(key, modes.shape[0])
    (z, value), rates = jax.lax.scan(step, (z, target(z)), (modes, components, keys))
    return z @ chol.T, value, rates


def _phi(layout: Layout, mu, eta):
    """Individual unconstrained parameters: ``mu`` plus ``eta`` on the eta positions."""
    where = jnp.asarray([layout.names.index(n) for n in layout.etas], dtype=int)
    return mu.at[:, where].add(eta)


def _row_terms(spec: Spec, g, status, sigmas, d):
    """A row's complete-data ``-2 log p(y | phi)`` from its predictions (``+inf`` on failure)."""
    value = jnp.sum(data_terms(g, residual_sd(spec, g, sigmas, d), d))
    return jnp.where((status == 0) & jnp.isfinite(value), value, jnp.inf)


@eqx.filter_jit
def _residual_step(spec: Spec, arrays, x, eta, residual, steps):
    """``steps`` safeguarded Newton steps over the residual error parameters ``x[residual]`` on
    the complete-data ``-2 log p(y | phi)`` at the samples ``eta`` (exact Hessian, eigenvalues
    floored, step length at most 2, halved until the objective decreases; the predictions are
    computed once)."""
    layout = spec.layout
    mu, _, _ = _contexts(layout, x, arrays.design)
    g, status = jax.vmap(lambda p, d: predictions(spec, p, d))(_phi(layout, mu, eta), arrays)

    def objective(u):
        sigmas = layout.sigmas(x.at[residual].set(u))
        terms = jax.vmap(lambda g, st, d: _row_terms(spec, g, st, sigmas, d))(g, status, arrays)
        return jnp.sum(terms)

    def newton(_, u):
        value = objective(u)
        grad = jax.jacfwd(objective)(u)
        hess = jax.jacfwd(jax.jacfwd(objective))(u)
        direction = _newton_direction(grad, hess)
        direction *= jnp.minimum(1.0, 2.0 / (jnp.max(jnp.abs(direction)) + 1e-300))

        def shorter(carry):
            t, _ = carry
            return t / 2, objective(u + t / 2 * direction)

        t, new = jax.lax.while_loop(
            lambda c: (c[0] > 1 / 16) & ~(c[1] < value),
            shorter,
            (1.0, objective(u + direction)),
        )
        ok = jnp.isfinite(value) & (new < value) & jnp.all(jnp.isfinite(direction))
        return jnp.where(ok, u + t * direction, u)

    return jax.lax.fori_loop(0, steps, newton, x[residual])


def _newton_direction(grad, hess):
    """``-H^-1 grad`` with the eigenvalues of ``H`` made positive and floored."""
    w, q = jnp.linalg.eigh(0.5 * (hess + hess.T))
    w = jnp.maximum(jnp.abs(w), 1e-6 * jnp.max(jnp.abs(w)) + 1e-12)
    return -q @ ((q.T @ grad) / w)


@eqx.filter_jit
def _linearization(spec: Spec, arrays, x, eta, block):
    """Per row at the samples ``eta``: the gradient of the complete-data ``-2 log p(y | phi)``
    over ``v = (x[block], phi[etas])`` and its Gauss-Newton Hessian ``J^T diag(h'') J`` (``J``
    the predictions' Jacobian, ``h''`` the data terms' curvature, floored at 0), and whether
    the row's solve succeeded with finite values."""
    layout = spec.layout
    _, _, sigmas = _contexts(layout, x, arrays.design)
    where = jnp.asarray([layout.names.index(n) for n in layout.etas], dtype=int)
    m = block.shape[0]

    def row(eta_r, d):
        def g_of(v):
            mu = layout.typical(x.at[block].set(v[:m]), d.design)
            g, status = predictions(spec, mu.at[where].add(eta_r + v[m:]), d)
            return g, (g, status)

        v0 = jnp.concatenate([x[block], jnp.zeros(where.shape[0])])
        J, (g, status) = jax.jacfwd(g_of, has_aux=True)(v0)
        J = jnp.where(d.mask[:, None], J, 0.0)

        def terms(g):
            return jnp.sum(data_terms(g, residual_sd(spec, g, sigmas, d), d))

        h1 = jax.grad(terms)(g)
        h2 = jax.jvp(jax.grad(terms), (g,), (jnp.ones_like(g),))[1]  # terms are per row of g
        grad = J.T @ h1
        hess = J.T @ (jnp.maximum(h2, 0.0)[:, None] * J)
        ok = (status == 0) & jnp.all(jnp.isfinite(grad)) & jnp.all(jnp.isfinite(hess))
        return jnp.where(ok, grad, 0.0), jnp.where(ok, hess, 0.0), ok

    return jax.vmap(row)(eta, arrays)


@eqx.filter_jit
def _complete_terms(spec: Spec, arrays, x, eta):
    """Each row's conditional objective ``-2 log p(y | phi) + z^T z`` at ``eta``."""
    layout = spec.layout
    mu, chol, sigmas = _contexts(layout, x, arrays.design)
    z = jax.scipy.linalg.solve_triangular(chol, eta.T, lower=True).T
    return jax.vmap(lambda zi, mi, d: conditional(spec, zi, (mi, chol, sigmas), d))(z, mu, arrays)


def marginal_step(grad, hess, ok, omega, thetas):
    """A Newton step for the typical values without variability, ``u``, on the marginal
    likelihood, with the typical values ``theta`` of the random effects moving along.

    The gradient is the samples' complete-data gradient, which estimates the marginal one
    (Fisher's identity). The Hessian is the complete-data one with each row's individual
    parameters ``phi_r`` eliminated (a Schur complement): along a ridge of ``u`` and ``phi``,
    the step on ``u`` is then as long as the marginal curvature asks, where a step at fixed
    samples is as short as the complete-data curvature allows (EM's slow convergence when the
    random effects carry most of the information).

    Args:
        grad, hess, ok: per row, from :func:`_linearization` (``(R, m + k)``,
            ``(R, m + k, m + k)``, ``(R,)``).
        omega: ``Omega``, ``(k, k)``.
        thetas: boolean ``(k,)``, the random effects whose typical value is estimated.

    Returns:
        ``(du, dtheta, dphi)``: the steps of ``u`` ``(m,)``, of every typical value ``(k,)``
        (0 where fixed), and the linear response of each row's conditional mode ``(R, k)``.
    """
    grad, hess = np.asarray(grad)[ok], np.asarray(hess)[ok]
    k = omega.shape[0]
    m = hess.shape[1] - k
    prior = 2 * np.linalg.inv(omega)  # the prior's Hessian in phi (-2 log scale)
    Duu, Duf, Dff = hess[:, :m, :m], hess[:, :m, m:], hess[:, m:, m:]
    A = Dff + prior
    A_Dfu = np.linalg.solve(A, np.swapaxes(Duf, 1, 2))  # (R, k, m)
    A_P = np.linalg.solve(A, np.broadcast_to(prior, A.shape))  # (R, k, k)
    t = np.flatnonzero(thetas)
    H = np.zeros((m + t.size, m + t.size))
    H[:m, :m] = np.sum(Duu - Duf @ A_Dfu, 0)
    H[:m, m:] = np.sum(Duf @ A_P, 0)[:, t]
    H[m:, :m] = H[:m, m:].T
    H[m:, m:] = np.sum(prior - prior @ A_P, 0)[np.ix_(t, t)]
    # the typical values of phi are at their M-step optimum: their gradient is 0
    g = np.concatenate([grad[:, :m].sum(0), np.zeros(t.size)])
    step = np.array(_newton_direction(jnp.asarray(g), jnp.asarray(H)))
    step *= min(1.0, 1.0 / (np.max(np.abs(step)) + 1e-300))  # at most 1 on the log scale
    du, dtheta = step[:m], np.zeros(k)
    dtheta[t] = step[m:]
    dphi = np.broadcast_to(dtheta, (ok.size, k)).copy()  # failed rows: eta unchanged
    dphi[ok] = -(A_Dfu @ du - A_P @ dtheta)
    return du, dtheta, dphi


@eqx.filter_jit
def _log_weights(spec: Spec, arrays, x, eta, log_q):
    """``log p(y_i, eta_i) - log q(eta_i)`` per row (``-inf`` where the solve fails)."""
    layout = spec.layout
    mu, chol, sigmas = _contexts(layout, x, arrays.design)
    k = chol.shape[0]
    z = jax.scipy.linalg.solve_triangular(chol, eta.T, lower=True).T
    value = jax.vmap(lambda zi, mi, d: conditional(spec, zi, (mi, chol, sigmas), d))(z, mu, arrays)
    log_det = 2 * jnp.sum(jnp.log(jnp.abs(jnp.diagonal(chol))))
    log_joint = -0.5 * (value + k * math.log(2 * math.pi) + log_det)
    return jnp.where(jnp.isfinite(value), log_joint - log_q, -jnp.inf)


# ------------------------------------------------------------------------------------------------
# The algorithm


def _replicate(arrays, chains: int):
    """Subjects repeated ``chains`` times (row ``c * P + i`` is chain ``c`` of subject ``i``)."""
    return jax.tree.map(lambda a: jnp.concatenate([jnp.asarray(a)] * chains), arrays)


def m_step(layout: Layout, r: Roles, x, design, s_phi, s_phi2, omega_floor) -> np.ndarray:
    """Closed-form update of the typical values, covariate effects and Omega of the parameters
    with variability, from the approximated statistics ``s_phi = E[phi_i]`` ``(P, k)`` and
    ``s_phi2 = mean_i E[phi_i phi_i^T]`` ``(k, k)``; variances at least ``omega_floor``."""
    x = np.array(x)
    n = s_phi.shape[0]
    for j, (theta, betas, effects) in enumerate(r.mean_rows):
        columns = ([np.ones(n)] if theta >= 0 else []) + [design[:, e] for e in effects]
        mu_j = _typical(layout, x, design)[:, r.eta_position[j]]
        if not columns:
            continue
        estimated = ([theta] if theta >= 0 else []) + list(betas)
        known = mu_j - np.stack(columns, 1) @ x[estimated]  # the fixed part of mu_j
        coef, *_ = np.linalg.lstsq(np.stack(columns, 1), s_phi[:, j] - known, rcond=None)
        x[estimated] = coef
    mu = _typical(layout, x, design)
    mu = mu[:, list(r.eta_position)]
    omega = s_phi2 - (mu.T @ s_phi + s_phi.T @ mu) / n + mu.T @ mu / n
    omega = 0.5 * (omega + omega.T)
    if not layout.block:
        for j, o in enumerate(r.omega):
            if o >= 0:
                x[o] = 0.5 * math.log(max(omega[j, j], omega_floor[j]))
        return x
    diag = np.maximum(np.diag(omega), omega_floor)
    scale = np.sqrt(diag / np.maximum(np.diag(omega), 1e-300))
    omega = omega * np.outer(scale, scale)
    chol = np.linalg.cholesky(omega + 1e-12 * np.eye(len(diag)))
    for a, name in enumerate(layout.etas):
        x[layout.index("omega", name)] = math.log(chol[a, a])
        for b in range(a):
            x[layout.index("chol", (name, layout.etas[b]))] = chol[a, b]
    return x


def run_saem(
    problem: Problem,
    strategy: SAEM,
    spec: Spec,
    progress: Callable[[str], None] | None = None,
):
    """Fit ``problem`` by SAEM; returns a :class:`~.results.PopulationResult`."""
    from .results import result_at

    started = time.perf_counter()
    say = progress or (lambda line: None)
    layout = problem.layout
    if not layout.etas:
        raise CartpkError("SAEM needs at least one parameter with variability (--variability)")
    n = problem.arrays.n_subjects
    x = np.asarray(problem.x0, dtype=float)
    evaluator = Evaluator(spec, problem.arrays)
    at_zero = np.zeros((n, len(layout.etas)))
    check_finite(problem, evaluate_at(evaluator, x, _free_basis(problem), np.ones(n), at_zero))
    # the iterations run on `work`: the layout, plus artificial variability on the typical
    # values without variability (appended to Omega and x, so x[:size] is the original x)
    artificial = ()
    if strategy.no_variability == "decreasing" and not layout.block:
        numerical = roles(layout, layout.free).numerical
        artificial = tuple(layout.labels[i][1] for i in numerical if layout.labels[i][0] == "theta")
    work, x = with_artificial_variability(layout, x, artificial)
    work_spec = dataclasses.replace(spec, layout=work) if artificial else spec
    k, k0, size = len(work.etas), len(layout.etas), x.size - len(artificial)
    capped = np.asarray([work.index("omega", name) for name in artificial], dtype=int)
    r = roles(work, work.free)
    chains = strategy.chains or max(1, math.ceil(50 / n))
    k1, k2 = strategy.iterations
    arrays = _replicate(problem.arrays, chains)
    design = np.asarray(problem.arrays.design)
    key = jax.random.PRNGKey(strategy.seed)
    say(
        f"fitting {type(layout.model).__name__} to {n} subjects "
        f"({int(np.asarray(problem.arrays.mask).sum())} observations) by SAEM: {layout.n_free} "
        f"parameters, {chains} chain(s) per subject, {k1} + {k2} iterations"
        + (f", decreasing artificial variability on {', '.join(artificial)}" if artificial else "")
    )
    modes = np.array(
        [0] * strategy.kernels[0] + [1] * strategy.kernels[1] + [2] * (strategy.kernels[2] * k)
    )
    components = np.array(
        [0] * (strategy.kernels[0] + strategy.kernels[1]) + list(range(k)) * strategy.kernels[2]
    )
    scales = np.full(1 + k, 0.5)
    eta = np.zeros((n * chains, k))
    # Newton updates: the typical values without variability on the marginal likelihood (with
    # the chains and statistics carried along), then the residual error parameters (two steps
    # at the new predictions)
    numerical = np.asarray(r.numerical, dtype=int)
    residual = np.array([work.labels[i][0] == "sigma" for i in numerical], dtype=bool)
    structural, residual = numerical[~residual], numerical[residual]
    thetas = np.array([theta >= 0 for theta, _, _ in r.mean_rows], dtype=bool)
    theta_index = np.array([theta for theta, _, _ in r.mean_rows])[thetas]
    s_phi, s_sub2 = np.zeros((n, k)), np.zeros((n, k, k))
    history = []
    last_report = time.perf_counter()
    label = "SAEM iterations (the first compiles the model)"
    for it in track(range(1, k1 + k2 + 1), progress, label):
        key, sub = jax.random.split(key)
        eta, value, rates = _mcmc(
            work_spec, arrays, jnp.asarray(x), jnp.asarray(eta), sub, jnp.asarray(modes),
            jnp.asarray(components), jnp.asarray(scales),
        )  # fmt: skip
        eta, value, rates = np.asarray(eta), np.asarray(value), np.asarray(rates)
        # complete-data -2 log L of the samples under the model (without the artificial
        # variability): l_i(z) + log det(2 pi Omega) per subject
        artificial_z2 = np.sum((eta[:, k0:] / np.sqrt(_variances(work, x)[k0:])) ** 2)
        complete = (value.sum() - artificial_z2) / chains + n * (
            k0 * math.log(2 * math.pi) + _log_det(layout, x[:size])
        )
        _adapt(scales, modes, components, rates)
        gamma = 1.0 if it <= k1 else 1.0 / (it - k1 + 1)
        # statistics of phi over chains, then stochastic approximation
        mu = _typical(work, x, design)
        phi = mu[:, list(r.eta_position)][None] + eta.reshape(chains, n, k)
        s_phi = s_phi + gamma * (phi.mean(0) - s_phi)
        s_sub2 = s_sub2 + gamma * (np.einsum("cpa,cpb->pab", phi, phi) / chains - s_sub2)
        # maximisation (annealing: variances shrink by at most the factor `annealing`; the
        # artificial ones by at least ARTIFICIAL_DECREASE)
        floor = strategy.annealing * _variances(work, x) if it <= k1 else np.full(k, 1e-8)
        x_new = m_step(work, r, x, design, s_phi, s_sub2.mean(0), floor)
        x_new[capped] = np.minimum(x_new[capped], x[capped] + 0.5 * math.log(ARTIFICIAL_DECREASE))
        if structural.size:
            x_new, eta, s_phi, s_sub2 = _structural_update(
                work_spec, arrays, x_new, eta, s_phi, s_sub2, structural, thetas, theta_index,
                gamma, line_search=it <= k1,
            )  # fmt: skip
        if residual.size:
            u = np.asarray(
                _residual_step(
                    work_spec, arrays, jnp.asarray(x_new), jnp.asarray(eta),
                    jnp.asarray(residual), 2,
                )
            )  # fmt: skip
            x_new[residual] = x[residual] + gamma * (u - x[residual])
        x = x_new
        history.append((it, float(complete), x[:size].copy()))
        if it <= 3 or it == k1 + k2 or time.perf_counter() - last_report > 5.0:
            last_report = time.perf_counter()
            phase = "exploration" if it <= k1 else "smoothing"
            say(
                f"SAEM {phase} iteration {it:4d}/{k1 + k2}  complete -2LL "
                f"{complete:.4f}  acceptance {np.mean(rates):.2f}  "
                f"({time.perf_counter() - started:.0f} s)"
            )
    # back to the model's own layout
    x, s_phi, s_sub2 = x[:size], s_phi[:, :k0], s_sub2[:, :k0, :k0]
    # conditional means and covariances of eta from the smoothing phase, for the EBE warm starts
    # and the importance sampling proposal
    mu = _typical(layout, x, design)
    mean_eta = s_phi - mu[:, list(roles(layout, layout.free).eta_position)]
    cov_eta = s_sub2 - np.einsum("pa,pb->pab", s_phi, s_phi)
    cov_eta = 0.5 * (cov_eta + np.swapaxes(cov_eta, 1, 2)) + 1e-10 * np.eye(k0)
    chol = np.asarray(layout.omega_chol(jnp.asarray(x)))
    z_mean = np.linalg.solve(chol, mean_eta.T).T
    extra = {"history": history, "chains": chains}
    if strategy.samples:
        with step(progress, f"-2 log L by importance sampling ({strategy.samples} per subject)"):
            ll, ll_se = importance_sampling(
                spec, arrays, x, mean_eta, cov_eta, chains, strategy.samples, key
            )
        extra.update(ofv_importance_sampling=ll, ofv_importance_sampling_se=ll_se)
    covariance = None
    if strategy.se != "none":
        with step(progress, "covariance step by linearization (FOCE-I R at the SAEM estimates)"):
            weights = np.ones(n)
            V, first = scaling(evaluator, x, problem.free_index, weights, z_mean)
            final = evaluate_at(evaluator, x, V, weights, first["z"])
            covariance = covariance_step(evaluator, x, V, weights, final, strategy.fd_step)
        z_mean = final["z"]
    return result_at(
        problem,
        spec,
        x,
        strategy=strategy,
        covariance=covariance,
        z=z_mean,
        message="completed the SAEM iterations",
        converged=True,
        iterations=k1 + k2,
        seconds=time.perf_counter() - started,
        extra=extra,
    )


def _structural_update(
    spec, arrays, x, eta, s_phi, s_sub2, block, thetas, theta_index, gamma, line_search
):
    """The marginal Newton step of :func:`marginal_step` on ``x[block]``, scaled by ``gamma``
    and, during exploration, halved until the complete-data objective decreases (at most four
    times; no step if it never does). The chains, the typical values and the statistics move
    with the individual parameters' linear response: the M-step then sees the shifted ridge at
    once instead of over many iterations."""
    layout = spec.layout
    n, k = s_phi.shape
    chains = eta.shape[0] // n
    grad, hess, ok = _linearization(
        spec, arrays, jnp.asarray(x), jnp.asarray(eta), jnp.asarray(block)
    )
    ok = np.asarray(ok)
    if not ok.any():
        return x, eta, s_phi, s_sub2
    omega = np.asarray(layout.omega_chol(jnp.asarray(x)))
    du, dtheta, dphi = marginal_step(grad, hess, ok, omega @ omega.T, thetas)

    def moved(t):
        x_t = x.copy()
        x_t[block] += t * du
        x_t[theta_index] += t * dtheta[thetas]
        return x_t, eta + t * (dphi - dtheta)

    def total(x_t, eta_t):
        return float(np.sum(_complete_terms(spec, arrays, jnp.asarray(x_t), jnp.asarray(eta_t))))

    t = gamma
    if line_search:
        before = total(x, eta)
        while not total(*moved(t)) < before:
            if t <= gamma / 16:
                return x, eta, s_phi, s_sub2
            t /= 2
    elif not np.isfinite(total(*moved(t))):
        return x, eta, s_phi, s_sub2
    x, eta = moved(t)
    shift = t * dphi.reshape(chains, n, k).mean(0)
    s_sub2 = (
        s_sub2
        + np.einsum("pa,pb->pab", shift, s_phi)
        + np.einsum("pa,pb->pab", s_phi, shift)
        + np.einsum("pa,pb->pab", shift, shift)
    )
    return x, eta, s_phi + shift, s_sub2


def with_artificial_variability(layout: Layout, x, names: tuple[str, ...]):
    """``layout`` and ``x`` with variability (SD :data:`ARTIFICIAL_SD`) on ``names`` as well,
    appended to ``Omega`` and to ``x``."""
    if not names:
        return layout, x
    work = dataclasses.replace(
        layout,
        etas=layout.etas + names,
        labels=layout.labels + tuple(("omega", name) for name in names),
        free=layout.free + (True,) * len(names),
    )
    return work, np.concatenate([x, np.full(len(names), math.log(ARTIFICIAL_SD))])


def _typical(layout: Layout, x, design) -> np.ndarray:
    """Every subject's unconstrained typical parameters, ``(P, K)``."""
    return np.asarray(jax.vmap(lambda row: layout.typical(jnp.asarray(x), row))(design))


def _log_det(layout: Layout, x) -> float:
    """``log det Omega``."""
    chol = np.asarray(layout.omega_chol(jnp.asarray(x)))
    return float(2 * np.sum(np.log(np.abs(np.diagonal(chol)))))


def _variances(layout: Layout, x) -> np.ndarray:
    chol = np.asarray(layout.omega_chol(jnp.asarray(x)))
    return np.sum(chol**2, axis=1)


def _free_basis(problem: Problem) -> np.ndarray:
    free = problem.free_index
    V = np.zeros((problem.x0.size, free.size))
    V[free, np.arange(free.size)] = 1.0
    return V


def _adapt(scales, modes, components, rates) -> None:
    """Random-walk step sizes towards :data:`TARGET_ACCEPTANCE` (in place)."""
    for mode, component, rate in zip(modes, components, rates, strict=True):
        if mode == 0:
            continue
        i = 0 if mode == 1 else 1 + component
        scales[i] *= 1 + 0.4 * (rate - TARGET_ACCEPTANCE)
    np.clip(scales, 1e-3, 10.0, out=scales)


def importance_sampling(spec, arrays, x, mean, cov, chains, samples, key):
    """``-2 log L`` and its Monte Carlo SE, by importance sampling from a Student-t proposal
    around each subject's conditional mean ``mean`` ``(P, k)`` and covariance ``cov``."""
    n, k = mean.shape
    factor = np.linalg.cholesky(cov)
    batches = -(-samples // chains)
    log_w = []
    for _ in range(batches):
        key, a, b = jax.random.split(key, 3)
        normal = np.asarray(jax.random.normal(a, (chains, n, k)))
        chi2 = np.asarray(jax.random.chisquare(b, T_DOF, (chains, n)))
        t = normal * np.sqrt(T_DOF / chi2)[..., None]
        eta = mean[None] + np.einsum("pab,cpb->cpa", factor, t)
        log_q = _t_log_density(t, factor, k)
        w = _log_weights(
            spec, arrays, jnp.asarray(x), jnp.asarray(eta.reshape(-1, k)),
            jnp.asarray(log_q.reshape(-1)),
        )  # fmt: skip
        log_w.append(np.asarray(w).reshape(chains, n))
    log_w = np.concatenate(log_w)[:samples]
    peak = log_w.max(0)
    w = np.exp(log_w - peak)
    log_l = peak + np.log(w.mean(0))
    # delta method: var(log mean w) = var(w) / (M mean(w)^2)
    se_i = np.sqrt(w.var(0, ddof=1) / (samples * w.mean(0) ** 2))
    return float(-2 * log_l.sum()), float(2 * np.sqrt(np.sum(se_i**2)))


def _t_log_density(t, factor, k):
    """Log density of ``eta = mean + factor t`` with ``t`` multivariate Student-t."""
    nu = T_DOF
    log_det = np.sum(np.log(np.abs(np.diagonal(factor, axis1=1, axis2=2))), axis=1)
    quad = np.sum(t**2, axis=-1)
    return (
        math.lgamma((nu + k) / 2)
        - math.lgamma(nu / 2)
        - 0.5 * k * math.log(nu * math.pi)
        - log_det[None]
        - 0.5 * (nu + k) * np.log1p(quad / nu)
    )


__all__ = ["SAEM", "run_saem"]
