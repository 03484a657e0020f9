"""Residual error models and the likelihood of one observation, with Beal's M3 for censored values.

Each error model works on a *transformed scale* ``g`` (the identity, or ``log`` for the
exponential model) where the observation is normal around the transformed prediction:

    g(y) ~ N(g(f), sd(f)^2)

=============  =========  =====================================  ==================
model          ``g``      ``sd(f)``                              parameters
=============  =========  =====================================  ==================
Additive       identity   ``a``                                  ``add`` (DV unit)
Proportional   identity   ``b |f|``                              ``prop`` (-)
Combined       identity   ``sqrt(a^2 + b^2 f^2)``                ``add``, ``prop``
Exponential    log        ``s`` (log-normal y)                   ``log`` (-)
=============  =========  =====================================  ==================

Minus twice the log-likelihood of one observation (:func:`neg2_loglik`):

- observed:            ``log(2 pi) + 2 log sd + ((g(y) - g(f)) / sd)^2``
- below the limit L:   ``-2 log Phi((g(L) - g(f)) / sd)``   (Beal's M3)
- above the limit L:   ``-2 log Phi(-(g(L) - g(f)) / sd)``

For the exponential model this is the likelihood of ``log y`` (NONMEM's log-transform-both-sides).
"""

from __future__ import annotations

import abc
import math
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
from jax.scipy.special import log_ndtr

from ..errors import CartpkError

LOG_2PI = math.log(2 * math.pi)


class ErrorModel(eqx.Module):
    """Base class of the residual error models (frozen, hashable: parameters are floats).

    ``parameters`` names the model's standard deviations; their initial values are the fields of
    the same name. Fitted values are reported as ``sigma_<name>``.
    """

    kind: ClassVar[str] = ""
    parameters: ClassVar[tuple[str, ...]] = ()
    log_scale: ClassVar[bool] = False

    def __check_init__(self):
        for name in self.parameters:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise CartpkError(
                    f"{type(self).__name__}: initial {name} must be a positive number, "
                    f"got {value!r}"
                )

    def initial(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in self.parameters}

    def transform(self, y):
        """The scale on which the residual is normal: ``log`` or the identity."""
        return jnp.log(y) if self.log_scale else y

    @abc.abstractmethod
    def sd(self, f, sigma: dict):
        """Residual standard deviation on the transformed scale, given the prediction ``f``."""

    def simulate(self, f, sigma: dict, epsilon):
        """An observation from standard normal draws ``epsilon``."""
        g = self.transform(f) + self.sd(f, sigma) * epsilon
        return jnp.exp(g) if self.log_scale else g


class Additive(ErrorModel):
    """``y = f + a eps``; ``a`` in the observable's unit."""

    add: float = 1.0
    kind: ClassVar[str] = "additive"
    parameters: ClassVar = ("add",)

    def sd(self, f, sigma):
        return sigma["add"] * jnp.ones_like(f)


class Proportional(ErrorModel):
    """``y = f (1 + b eps)``; ``b`` dimensionless (0.2 = 20 % CV)."""

    prop: float = 0.2
    kind: ClassVar[str] = "proportional"
    parameters: ClassVar = ("prop",)

    def sd(self, f, sigma):
        return sigma["prop"] * jnp.abs(f)


class Combined(ErrorModel):
    """``y = f + sqrt(a^2 + b^2 f^2) eps`` (NONMEM's combined error, variances added)."""

    add: float = 1.0
    prop: float = 0.2
    kind: ClassVar[str] = "combined"
    parameters: ClassVar = ("add", "prop")

    def sd(self, f, sigma):
        return jnp.sqrt(sigma["add"] ** 2 + (sigma["prop"] * f) ** 2)


class Exponential(ErrorModel):
    """``log y = log f + s eps`` (log-normal ``y``; ``s`` is about the CV for small ``s``)."""

    log: float = 0.5
    kind: ClassVar[str] = "exponential"
    parameters: ClassVar = ("log",)
    log_scale: ClassVar[bool] = True

    def sd(self, f, sigma):
        return sigma["log"] * jnp.ones_like(f)


ERROR_MODELS: dict[str, type[ErrorModel]] = {
    cls.kind: cls for cls in (Additive, Proportional, Combined, Exponential)
}
#: names of the error models (``cartpk fit --error``)
ERROR_KINDS = tuple(ERROR_MODELS)


def neg2_loglik(g_obs, g_pred, sd, censored, censored_above, g_limit):
    """Minus twice the log-likelihood of each observation (transformed scale, see module doc).

    Args:
        g_obs: transformed observations (ignored where censored).
        g_pred: transformed predictions.
        sd: residual standard deviations (transformed scale).
        censored: True where the value is below ``limit`` (M3).
        censored_above: True where the value is above ``limit``.
        g_limit: transformed censoring limits (ignored where not censored).
    """
    z = (g_limit - g_pred) / sd
    observed = LOG_2PI + 2 * jnp.log(sd) + ((g_obs - g_pred) / sd) ** 2
    return jnp.where(
        censored, -2 * log_ndtr(z), jnp.where(censored_above, -2 * log_ndtr(-z), observed)
    )


def curvature(g_pred, sd, censored, censored_above, g_limit):
    """First-order (FOCE-I) curvature ``h`` of each term of :func:`neg2_loglik` in ``g_pred``.

    The FOCE-I approximation of the Hessian of the summed terms in the random effects is
    ``sum_j [h_j grad(g_j) grad(g_j)^T + k_j grad(sd_j) grad(sd_j)^T]``. Here ``h = 2 / sd^2``
    for observed values and ``h = 2 lam (lam + z) / sd^2`` with ``lam = phi(z) / Phi(z)`` for
    censored ones (the Gauss-Newton term of ``-2 log Phi(z)``). The residual-variance weight
    ``k`` is :func:`sd_curvature`.
    """
    z = (g_limit - g_pred) / sd
    z = jnp.where(censored_above, -z, z)
    lam = jnp.exp(-0.5 * z**2 - 0.5 * LOG_2PI - log_ndtr(z))
    censored_any = censored | censored_above
    return jnp.where(censored_any, 2 * lam * (lam + z), 2.0) / sd**2


def sd_curvature(sd, censored, censored_above):
    """Weight ``k`` of the residual-variance term of the FOCE-I curvature (see :func:`curvature`).

    For an observed value, the expected Hessian of ``log V + (y - f)^2 / V`` (``V = sd^2``) in the
    random effects is ``2 grad(f) grad(f)^T / V + grad(V) grad(V)^T / V^2``; the second term is
    ``4 grad(sd) grad(sd)^T / sd^2``, so ``k = 4 / sd^2``. NONMEM's FOCE-I keeps it; it is nonzero
    whenever ``sd`` depends on the prediction (proportional and combined error). Censored rows
    keep only the Gauss-Newton term in the prediction: ``k = 0``.
    """
    return jnp.where(censored | censored_above, 0.0, 4.0 / sd**2)
