"""BFGS with a bounded trust region, assembled from optimistix's building blocks.

optimistix's ``BFGS`` uses a backtracking line search that first tries the full quasi-Newton step.
Early in a fit, or along a flat direction (a variance going to zero), that step can reach
parameter values where the ODE becomes very stiff. There an explicit solver needs its whole step
budget, and under ``vmap`` the whole batch waits for it. A dogleg trust region bounds every
step instead. Its radius starts at 1 and never exceeds ``max_radius``, in the optimiser's
coordinates: standard errors for the outer problem, standard deviations of the random effects
for the inner one.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
import optimistix as optx


def _quiet(**kwargs) -> None:
    """optimistix calls ``verbose(**values)`` on every step; print nothing."""


class BoundedTrustRegion(optx.ClassicalTrustRegion):
    """optimistix's classical trust-region update with the radius capped at ``max_radius``."""

    max_radius: float = 4.0

    def step(self, first_step, y, y_eval, f_info, f_eval_info, state):
        size, accept, result, state = super().step(
            first_step, y, y_eval, f_info, f_eval_info, state
        )
        size = jnp.minimum(size, self.max_radius)
        return size, accept, result, eqx.tree_at(lambda s: s.step_size, state, size)


class TrustRegionBFGS(optx.AbstractBFGS):
    """BFGS (Hessian form) with a dogleg step inside a bounded trust region.

    Args:
        rtol, atol: Cauchy termination: successive accepted points differ by less than
            ``atol + rtol |y|`` (max norm) and their values by less than ``atol + rtol |f|``.
    """

    rtol: float
    atol: float
    norm: Callable = optx.max_norm
    use_inverse: bool = False
    descent: optx.DoglegDescent = optx.DoglegDescent()
    search: BoundedTrustRegion = BoundedTrustRegion()
    verbose: Callable = _quiet
