"""Named, unit-documented model parameters and states, and transforms to unconstrained space.

Parameter values travel through JAX as a plain ``dict[str, Array]`` (a PyTree: ``jit``, ``vmap``
and ``grad`` see named leaves, never a vector with magic indices). The metadata lives in
:class:`Parameter` specs declared by each model.

Transforms: ``"log"`` for positive quantities (rates, counts), ``"logit"`` for quantities between
``lower`` and ``upper`` (fractions), ``"identity"`` for unbounded ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from .errors import ParameterError

TRANSFORMS = ("log", "logit", "identity")


@dataclass(frozen=True)
class Parameter:
    """Metadata of one model parameter.

    Args:
        name: identifier used in parameter dicts, data files and results.
        default: default value, in ``unit``.
        unit: physical unit (``"1/d"``, ``"cells"``, ``"-"`` for dimensionless ...).
        description: one line saying what it is.
        source: where the default comes from (citation with DOI, or "assumption: why").
        lower: lower bound of the legal range (open at ``0`` for log-transformed parameters).
        upper: upper bound of the legal range.
        transform: ``"log"``, ``"logit"`` or ``"identity"`` (how it maps to unconstrained space).
    """

    name: str
    default: float
    unit: str
    description: str
    source: str
    lower: float = 0.0
    upper: float = math.inf
    transform: str = "log"

    def __post_init__(self):
        if self.transform not in TRANSFORMS:
            raise ParameterError(f"parameter {self.name}: transform must be one of {TRANSFORMS}")
        if self.transform == "log" and self.lower < 0:
            raise ParameterError(f"parameter {self.name}: a log transform needs lower >= 0")
        if self.transform == "logit" and not (
            math.isfinite(self.lower) and math.isfinite(self.upper)
        ):
            raise ParameterError(f"parameter {self.name}: a logit transform needs finite bounds")
        if not self.lower <= self.default <= self.upper:
            raise ParameterError(
                f"parameter {self.name}: default {self.default} outside "
                f"[{self.lower}, {self.upper}]"
            )

    def to_unconstrained(self, value):
        """Value in ``unit`` -> unconstrained real (log, logit or identity)."""
        if self.transform == "log":
            return jnp.log(value)
        if self.transform == "logit":
            x = (value - self.lower) / (self.upper - self.lower)
            return jnp.log(x) - jnp.log1p(-x)
        return value

    def from_unconstrained(self, u):
        """Unconstrained real -> value in ``unit`` (inverse of :meth:`to_unconstrained`)."""
        if self.transform == "log":
            return jnp.exp(u)
        if self.transform == "logit":
            return self.lower + (self.upper - self.lower) * jnp.reciprocal(1 + jnp.exp(-u))
        return u

    def in_bounds(self, value):
        """Elementwise check (works on tracers): finite and inside ``[lower, upper]``.

        Bounds are closed (a rate of 0 switches a process off); only fitting on the unconstrained
        scale needs values strictly inside them.
        """
        return jnp.isfinite(value) & (value >= self.lower) & (value <= self.upper)


@dataclass(frozen=True)
class State:
    """Metadata of one state variable.

    Args:
        name: identifier (also the dose compartment name, NONMEM ``CMT``).
        compartment: where it lives: ``"blood"``, ``"peripheral"``, ``"stroma"``, ``"tumour"``,
            ``"microenvironment"``, or a drug's own PK compartment.
        unit: physical unit.
        description: one line.
        atol: absolute solver tolerance in ``unit`` (the size below which the value does not
            matter: about 1e-3 cell for cell counts).
        nonnegative: whether a negative value is unphysical (cells, concentrations); such states
            are checked after the solve.
        lag: name of the model parameter by which every dose into this state is delayed
            (NONMEM's ``ALAG``, e.g. ``"tlag"`` on an oral depot); None (default): no delay.
    """

    name: str
    compartment: str
    unit: str
    description: str = ""
    atol: float = 1e-6
    nonnegative: bool = True
    lag: str | None = None


class ParameterSet:
    """Operations on a model's parameter specs: defaults, validation and transforms."""

    def __init__(self, specs: Sequence[Parameter]):
        names = [p.name for p in specs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ParameterError(f"duplicate parameter names: {', '.join(duplicates)}")
        self.specs = {p.name: p for p in specs}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.specs)

    def defaults(self, **overrides: float) -> dict:
        """Default values as float64 arrays, with ``overrides`` applied and checked."""
        self.check_names(overrides)
        values = {name: jnp.asarray(spec.default, dtype=float) for name, spec in self.specs.items()}
        values.update({k: _numbers(k, v, jnp) for k, v in overrides.items()})
        return values

    def validate(self, params: Mapping) -> None:
        """Raise :class:`ParameterError` naming the first missing, unknown, non-finite or
        out-of-bounds parameter. For concrete (non-traced) values only."""
        missing = [n for n in self.specs if n not in params]
        if missing:
            raise ParameterError(f"missing parameter(s): {', '.join(missing)}")
        self.check_names(params)
        for name, spec in self.specs.items():
            value = _numbers(name, params[name], np)
            bad = ~np.asarray(spec.in_bounds(value))
            if bad.any():
                where = f" (patient {np.flatnonzero(bad.ravel())[0]})" if value.ndim else ""
                shown = value.ravel()[np.flatnonzero(bad.ravel())[0]]
                raise ParameterError(
                    f"parameter {name} = {shown:g} {spec.unit}{where} is outside its legal range "
                    f"{_interval(spec)}"
                )

    def all_in_bounds(self, params: Mapping):
        """A traced boolean: every parameter finite and within bounds."""
        return jnp.all(jnp.stack([jnp.all(s.in_bounds(params[n])) for n, s in self.specs.items()]))

    def to_unconstrained(self, params: Mapping) -> dict:
        return {n: self.specs[n].to_unconstrained(v) for n, v in params.items()}

    def from_unconstrained(self, u: Mapping) -> dict:
        return {n: self.specs[n].from_unconstrained(v) for n, v in u.items()}

    def table(self):
        """The specs as a pandas DataFrame (name, default, unit, bounds, transform, source)."""
        import pandas as pd

        return pd.DataFrame(
            [
                dict(
                    parameter=s.name,
                    default=s.default,
                    unit=s.unit,
                    lower=s.lower,
                    upper=s.upper,
                    transform=s.transform,
                    description=s.description,
                    source=s.source,
                )
                for s in self.specs.values()
            ]
        )

    def check_names(self, params: Mapping) -> None:
        """Raise :class:`~cartpk.errors.ParameterError` naming any unknown parameter."""
        unknown = [n for n in params if n not in self.specs]
        if unknown:
            raise ParameterError(
                f"unknown parameter(s): {', '.join(unknown)}; known: {', '.join(self.specs)}"
            )


def _numbers(name: str, value, xp):
    """``value`` as a float array of ``xp`` (numpy or jax.numpy), or a ParameterError."""
    try:
        return xp.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ParameterError(f"parameter {name} must be a number, got {value!r:.60}") from None


def _interval(spec: Parameter) -> str:
    return f"[{spec.lower:g}, {spec.upper:g}{')' if math.isinf(spec.upper) else ']'}"
