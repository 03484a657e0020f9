"""Combination therapies as small modules that act on a core model only through effect channels.

A therapy declares its own states (e.g. drug PK compartments, which are also its dose
compartments), its own parameters, the rates of its states and the channel values it produces
(:mod:`cartpk.channels`). :func:`combine` joins a core model and any tuple of therapies into one
model with the same API, so simulation, fitting and scenarios do not know therapies exist.

State and parameter names must be unique across the combination; by convention a therapy prefixes
them with its own short name (``bev_central``, ``bev_clearance``).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp

from ..channels import combine_effects
from ..errors import CartpkError
from ..models.base import AbstractModel
from ..parameters import Parameter, State


class AbstractTherapy(eqx.Module):
    """Base class of a therapy module."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    states: ClassVar[tuple[State, ...]] = ()
    parameters: ClassVar[tuple[Parameter, ...]] = ()

    def initial_state(self, p: Mapping) -> dict:
        """The therapy's states before any dose (default: zero)."""
        return {s.name: jnp.zeros(()) for s in self.states}

    def rates(self, t, y: Mapping, p: Mapping) -> dict:
        """d(state)/dt of the therapy's own states (``y`` holds every state of the combination)."""
        return {}

    @abc.abstractmethod
    def effects(self, t, y: Mapping, p: Mapping) -> dict:
        """Channel name -> value (see :data:`cartpk.channels.CHANNELS`)."""

    def observables(self, t, y: Mapping, p: Mapping) -> dict:
        return {}


class Combined(AbstractModel):
    """A core model plus a tuple of therapies, itself a model."""

    core: AbstractModel
    therapies: tuple[AbstractTherapy, ...]

    def __check_init__(self):
        for kind in ("states", "parameters"):
            names = [x.name for x in getattr(self, kind)]
            clashes = sorted({n for n in names if names.count(n) > 1})
            if clashes:
                raise CartpkError(f"combined model has duplicate {kind}: {', '.join(clashes)}")

    @property
    def states(self):
        return self.core.states + tuple(s for th in self.therapies for s in th.states)

    @property
    def parameters(self):
        return self.core.parameters + tuple(p for th in self.therapies for p in th.parameters)

    def initial_state(self, p):
        y = dict(self.core.initial_state(p))
        for therapy in self.therapies:
            y.update(therapy.initial_state(p))
        return y

    def effects(self, t, y, p):
        return combine_effects(therapy.effects(t, y, p) for therapy in self.therapies)

    def rates(self, t, y, p, effects):
        dy = dict(self.core.rates(t, y, p, effects))
        for therapy in self.therapies:
            dy.update(therapy.rates(t, y, p))
        return dy

    def observables(self, t, y, p):
        out = dict(self.core.observables(t, y, p))
        for therapy in self.therapies:
            out.update(therapy.observables(t, y, p))
        return out


def combine(core: AbstractModel, *therapies: AbstractTherapy) -> AbstractModel:
    """The core model with the given therapies (the core itself if there are none)."""
    return Combined(core, tuple(therapies)) if therapies else core
