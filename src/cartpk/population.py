"""Virtual populations: between-patient variability, correlations, covariates and subgroups.

Patient ``i`` of a population is a pure function of ``(seed, i)``: its random numbers come from
``jax.random.fold_in(key(seed), i)``. A population of any size can therefore be drawn chunk by
chunk (``sample(model, start, stop)``) and gives the same patients whatever the chunk size.

For each varied parameter ``theta_i = theta_typical * scale_g * exp(eta_i)`` (log-normal), with
``eta ~ N(0, Omega)``, ``Omega = D R D``, ``D = diag(omega)``, ``omega = sqrt(ln(1 + CV^2))`` and
``R`` the correlation matrix. Parameters that have an upper bound (fractions, logit transform) vary
on the logit scale instead, with the same ``omega``. A patient belongs to subgroup ``g`` with
probability ``fraction_g``; subgroups scale or set parameters (e.g. hyaluronan-high tumours).
Covariates (e.g. body weight) are log-normal and can scale parameters allometrically.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .errors import PopulationError
from .models.base import AbstractModel

#: Largest population :func:`VirtualPopulation.sample` is asked for at once is up to the caller;
#: this bounds the size a scenario may declare (larger runs: split into several scenarios).
MAX_PATIENTS = 10_000_000


def _invalid(field: str, rule: str, value: float) -> PopulationError:
    return PopulationError(f"{field} must {rule}, got {float(value)!r}", field)


@dataclass(frozen=True)
class Subgroup:
    """A share of the population with scaled or fixed parameters.

    Attributes:
        name: label written to the results (e.g. ``"HA-high"``).
        fraction: expected share of patients in (0, 1].
        scale: parameter -> multiplier of its typical value.
        set: parameter -> value replacing the typical value (model units).
    """

    name: str
    fraction: float
    scale: Mapping[str, float] = field(default_factory=dict)
    set: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Covariate:
    """A log-normal patient covariate, optionally scaling parameters as ``(x / median)^exponent``.

    Attributes:
        name: column name in the results, with its unit (e.g. ``weight_kg``).
        median: population median.
        cv: coefficient of variation (0 for everyone at the median).
        effects: parameter -> exponent of the power model.
    """

    name: str
    median: float
    cv: float = 0.0
    effects: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class VirtualPopulation:
    """A seeded recipe for virtual patients (see the module docstring for the equations).

    Attributes:
        variability: parameter -> coefficient of variation of its between-patient variability.
        correlations: ``(parameter, parameter)`` -> correlation of their random effects.
        subgroups: shares of the population with their own parameters (fractions sum to <= 1;
            the rest is the ``"reference"`` subgroup).
        covariates: log-normal covariates such as body weight.
        seed: random seed; the same seed gives the same patients.
    """

    variability: Mapping[str, float] = field(default_factory=dict)
    correlations: Mapping[tuple[str, str], float] = field(default_factory=dict)
    subgroups: Sequence[Subgroup] = ()
    covariates: Sequence[Covariate] = ()
    seed: int = 0

    def validate(self, model: AbstractModel) -> None:
        """Check the population against ``model``; raise :class:`PopulationError` naming the
        first inconsistent entry by its field (``subgroups[1].fraction``)."""
        known = {p.name for p in model.parameters}

        def check_names(names, field):
            for name in names:
                if name not in known:
                    raise PopulationError(
                        f"{field}: unknown parameter {name!r} of {type(model).__name__}", field
                    )

        check_names(self.variability, "variability")
        for name, cv in self.variability.items():
            if not (np.isfinite(cv) and 0.0 <= cv <= 10.0):
                raise _invalid(f"variability.{name}", "be in [0, 10]", cv)
        pairs = list(self.correlations)
        for i, ((a, b), r) in enumerate(self.correlations.items()):
            field = f"correlations[{i}]"
            if a == b:
                raise PopulationError(
                    f"{field}.parameters must be two different parameters", f"{field}.parameters"
                )
            for name in (a, b):
                if name not in self.variability:
                    raise PopulationError(
                        f"{field}.parameters {name!r} has no variability to correlate",
                        f"{field}.parameters",
                    )
            if (b, a) in pairs[:i]:
                raise PopulationError(
                    f"{field}.parameters {a}/{b} are correlated twice", f"{field}.parameters"
                )
            if not (np.isfinite(r) and -1.0 < r < 1.0):
                raise _invalid(f"{field}.r", "be in (-1, 1)", r)
        if self.correlations:
            try:
                np.linalg.cholesky(self._correlation_matrix())
            except np.linalg.LinAlgError:
                raise PopulationError(
                    "correlations: the correlation matrix is not positive definite",
                    "correlations",
                ) from None
        taken = {"reference"}
        for i, group in enumerate(self.subgroups):
            field = f"subgroups[{i}]"
            if group.name in taken:
                raise PopulationError(
                    f"{field}.name {group.name!r} is taken (by another subgroup; 'reference' "
                    "means in none)",
                    f"{field}.name",
                )
            taken.add(group.name)
            if not (np.isfinite(group.fraction) and 0.0 < group.fraction <= 1.0):
                raise _invalid(f"{field}.fraction", "be in (0, 1]", group.fraction)
            check_names(group.scale, f"{field}.scale")
            check_names(group.set, f"{field}.set")
            for name, factor in group.scale.items():
                if not (np.isfinite(factor) and factor > 0):
                    raise _invalid(f"{field}.scale.{name}", "be > 0", factor)
            for name, value in group.set.items():
                if not np.isfinite(value):
                    raise _invalid(f"{field}.set.{name}", "be finite", value)
        total = sum(g.fraction for g in self.subgroups)
        if total > 1.0 + 1e-9:
            raise PopulationError(f"subgroups: fractions sum to {total:g} > 1", "subgroups")
        for covariate in self.covariates:
            field = f"covariates.{covariate.name}"
            if not (np.isfinite(covariate.median) and covariate.median > 0):
                raise _invalid(f"{field}.median", "be > 0", covariate.median)
            if not (np.isfinite(covariate.cv) and 0.0 <= covariate.cv <= 10.0):
                raise _invalid(f"{field}.cv", "be in [0, 10]", covariate.cv)
            check_names(covariate.effects, f"{field}.effects")
            for name, exponent in covariate.effects.items():
                if not np.isfinite(exponent):
                    raise _invalid(f"{field}.effects.{name}", "be finite", exponent)

    @property
    def subgroup_names(self) -> list[str]:
        """Subgroup labels in the order patients are assigned to them."""
        rest = 1.0 - sum(g.fraction for g in self.subgroups)
        return [g.name for g in self.subgroups] + (["reference"] if rest > 1e-9 else [])

    def sample(
        self, model: AbstractModel, start: int, stop: int, overrides: Mapping | None = None
    ) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
        """Patients ``start .. stop - 1``: their parameters and a table of their covariates.

        Args:
            model: the model whose defaults are the typical values.
            start: index of the first patient (any chunk of the population).
            stop: index after the last patient.
            overrides: parameter -> typical value replacing the model default.

        Returns:
            ``(params, patients)``: parameter name -> array of shape ``(stop - start,)`` (model
            units), and a
            DataFrame with columns ``patient``, ``subgroup`` and one per covariate.
        """
        n = stop - start
        typical = {k: float(v) for k, v in model.default_params(**(overrides or {})).items()}
        names = list(self.variability)
        n_cov = len(self.covariates)
        draws = _draws(self.seed, start, n, len(names) + n_cov + 1)
        z, z_cov, u = draws[:, : len(names)], draws[:, len(names) : -1], draws[:, -1]

        params = {k: np.full(n, v) for k, v in typical.items()}
        if names:
            omega = np.sqrt(np.log1p(np.asarray([self.variability[k] for k in names]) ** 2))
            eta = (z @ np.linalg.cholesky(self._correlation_matrix()).T) * omega
            specs = {p.name: p for p in model.parameters}
            for j, name in enumerate(names):
                params[name] = _vary(specs[name], params[name], eta[:, j])

        patients = pd.DataFrame({"patient": np.arange(start, stop)})
        for j, covariate in enumerate(self.covariates):
            omega = np.sqrt(np.log1p(covariate.cv**2))
            values = covariate.median * np.exp(omega * z_cov[:, j])
            patients[covariate.name] = values
            for name, exponent in covariate.effects.items():
                params[name] = params[name] * (values / covariate.median) ** exponent

        bounds = np.cumsum([g.fraction for g in self.subgroups])
        index = np.searchsorted(bounds, u, side="right")
        labels = np.asarray(self.subgroup_names, dtype=object)
        patients["subgroup"] = labels[np.minimum(index, len(labels) - 1)]
        for g, group in enumerate(self.subgroups):
            member = index == g
            for name, factor in group.scale.items():
                params[name] = np.where(member, params[name] * factor, params[name])
            for name, value in group.set.items():
                params[name] = np.where(member, value, params[name])
        return params, patients

    def _correlation_matrix(self) -> np.ndarray:
        names = list(self.variability)
        matrix = np.eye(len(names))
        for (a, b), r in self.correlations.items():
            i, j = names.index(a), names.index(b)
            matrix[i, j] = matrix[j, i] = r
        return matrix


def _vary(spec, typical: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Log-normal variability, or logit-normal for a parameter with an upper bound."""
    if spec.transform != "logit":
        return typical * np.exp(eta)
    lower, upper = spec.lower, spec.upper
    x = (typical - lower) / (upper - lower)
    logit = np.log(x) - np.log1p(-x) + eta
    return lower + (upper - lower) / (1.0 + np.exp(-logit))


@functools.partial(jax.jit, static_argnums=2)
def _draws_jit(key, indices, width: int):
    normal = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), (width,)))(indices)
    return normal.at[:, -1].set(jax.scipy.special.ndtr(normal[:, -1]))


def _draws(seed: int, start: int, n: int, width: int, block: int = 4096) -> np.ndarray:
    """Random numbers of shape ``(n, width)`` for patients ``start .. start + n - 1``: standard
    normals, except the last column, which is uniform on (0, 1).

    Drawn in fixed-size blocks so that any chunk size reuses one compiled function.
    """
    key = jax.random.key(seed)
    out = [
        _draws_jit(key, jnp.arange(i, i + block, dtype=jnp.uint32), width)
        for i in range(start, start + n, block)
    ]
    return np.concatenate([np.asarray(o) for o in out])[:n] if out else np.zeros((0, width))
