"""The model API: named states and parameters, a vector field, observables.

A model is a frozen :class:`equinox.Module`. Subclasses declare

- ``states``: a tuple of :class:`~cartpk.State` (named, grouped by compartment, with units);
- ``parameters``: a tuple of :class:`~cartpk.Parameter` (unit, default, source, bounds, transform);
- ``rates(t, y, p, effects)``: the right-hand side as a dict ``state name -> d(state)/dt``,
  where ``y`` and ``p`` are dicts of named scalars and ``effects`` the therapy effect channels
  (see :mod:`cartpk.channels`; models without therapies may ignore it);
- ``observables(t, y, p)``: a dict of derived outputs (e.g. CAR-T in blood, cells/µL);
- optionally ``initial_state(p)``: the state before any dose (default: all zero);
- optionally ``solution(times, doses, p)``: the states in closed form, which
  :func:`~cartpk.simulate` and the estimation then use instead of integrating ``rates``
  (the linear PK models of :mod:`cartpk.models.pk`).

Doses enter through the regimen (:mod:`cartpk.regimen`), never through ``rates``: boluses are added
to the named state at the dose time and infusions add a constant rate between events.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp

from ..channels import neutral_effects
from ..parameters import Parameter, ParameterSet, State
from ..regimen import DoseArrays


class AbstractModel(eqx.Module):
    """Base class of every cartpk model (built-in or user-defined)."""

    states: ClassVar[tuple[State, ...]] = ()
    parameters: ClassVar[tuple[Parameter, ...]] = ()
    #: The day the initial state holds, for models whose equations depend on absolute time
    #: (``Multiphasic``: its state on day 0 is the post-infusion level); no output time may
    #: come before it. ``None`` (default): the initial state is the state before any dose,
    #: valid at any time.
    start_time: ClassVar[float | None] = None
    #: The unit of time of the equations, the dataset and every label (the built-in models are
    #: in days; a user model of a PK study in hours declares ``"h"``).
    time_unit: ClassVar[str] = "d"

    @abc.abstractmethod
    def rates(self, t, y: Mapping, p: Mapping, effects: Mapping) -> dict:
        """d(state)/dt for every state, as a dict keyed by state name (unit: state unit per d)."""

    def observables(self, t, y: Mapping, p: Mapping) -> dict:
        """Derived outputs keyed by name; default: none."""
        return {}

    def initial_state(self, p: Mapping) -> dict:
        """State before any dose; default: every state zero."""
        return {s.name: jnp.zeros(()) for s in self.states}

    def solution(self, times, doses: DoseArrays, p: Mapping) -> dict | None:
        """The states at ``times`` in closed form, or None (default): integrate :meth:`rates`.

        A model that overrides it must give what integrating its rates from
        :meth:`initial_state` gives, with the engine's dose semantics: ``doses`` are already
        delayed by the states' ``lag``, an output time equal to a dose time reports the state
        just before the dose, and ``doses`` may hold padding events at ``+inf``. It must be
        traceable (``jit``, ``vmap``, forward- and reverse-mode differentiation).

        Args:
            times: output times (model time unit), shape ``(times,)``, non-decreasing.
            doses: the patient's dose events (:class:`~cartpk.DoseArrays`).
            p: parameter name -> value (model units).

        Returns:
            State name -> values at ``times`` (state units), or None.
        """
        return None

    def effects(self, t, y: Mapping, p: Mapping) -> dict:
        """Effect-channel values acting on this model; plain models have none (all neutral)."""
        return neutral_effects()

    # -- derived helpers (not meant to be overridden) ---------------------------------------

    @property
    def state_names(self) -> tuple[str, ...]:
        """State names in declaration order (the order of packed state vectors)."""
        return tuple(s.name for s in self.states)

    @property
    def parameter_set(self) -> ParameterSet:
        """The parameter specs with defaults, validation and transforms."""
        return ParameterSet(self.parameters)

    def default_params(self, **overrides: float) -> dict:
        """Default parameter values (float64 scalars), with ``overrides`` applied."""
        return self.parameter_set.defaults(**overrides)

    def pack(self, y: Mapping):
        """Dict of named states -> 1-D array in declaration order."""
        missing = [n for n in self.state_names if n not in y]
        if missing:
            raise KeyError(f"{type(self).__name__}: no value for state(s) {', '.join(missing)}")
        return jnp.stack([jnp.asarray(y[n], dtype=float) for n in self.state_names], axis=-1)

    def unpack(self, y) -> dict:
        """1-D (or trailing-axis) array -> dict of named states."""
        return {name: y[..., i] for i, name in enumerate(self.state_names)}

    def atol(self):
        """Per-state absolute tolerances (state units)."""
        return jnp.asarray([s.atol for s in self.states], dtype=float)

    def vector_field(self, t, y, args):
        """The packed vector field seen by diffrax: ``args = (params, infusion_rate)``."""
        p, infusion = args
        named = self.unpack(y)
        dy = self.rates(t, named, p, self.effects(t, named, p))
        return self.pack(dy) + infusion
