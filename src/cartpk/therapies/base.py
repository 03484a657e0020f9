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
from dataclasses import dataclass
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp

from ..channels import combine_effects
from ..errors import CartpkError
from ..models.base import AbstractModel
from ..parameters import Parameter, State
from ..regimen import Regimen


@dataclass(frozen=True)
class Dosing:
    """How a therapy is given: its dose compartment, dose unit and standard schedule.

    Attributes:
        state: the state that receives each dose (NONMEM ``CMT``).
        unit: unit of one dose into ``state`` (``mg``, ``ug``, ``Gy``, or ``dose`` for relative
            units where 1 is one standard dose).
        amount: standard amount per administration, in ``unit`` per kg body weight if ``per_kg``.
        start: standard first dose (d, relative to the CAR-T infusion on day 0).
        interval: days between administrations.
        count: number of administrations.
        per_kg: whether ``amount`` is per kg body weight (e.g. 5 mg/kg).
    """

    state: str
    unit: str
    amount: float
    start: float
    interval: float = 1.0
    count: int = 1
    per_kg: bool = False

    @property
    def amount_unit(self) -> str:
        """The unit scenario files give doses in (``mg/kg`` or ``mg``...)."""
        return f"{self.unit}/kg" if self.per_kg else self.unit

    def regimen(
        self,
        amount: float | None = None,
        start: float | None = None,
        interval: float | None = None,
        count: int | None = None,
        weight_kg: float = 70.0,
        duration: float = 0.0,
    ) -> Regimen:
        """The schedule as a :class:`~cartpk.Regimen` (standard values for arguments left out;
        ``duration`` in d makes each administration a zero-order infusion)."""
        amount = self.amount if amount is None else amount
        per_dose = amount * weight_kg if self.per_kg else amount
        return Regimen.schedule(
            per_dose,
            self.state,
            start=self.start if start is None else start,
            interval=self.interval if interval is None else interval,
            count=self.count if count is None else count,
            duration=duration,
        )


class AbstractTherapy(eqx.Module):
    """Base class of a therapy module.

    A drug or device has a :class:`Dosing` (its standard regimen). A property of the CAR-T product
    (an armoured or engineered product) has no dose; ``product_neutral`` then gives the parameter
    values that switch it off, so that one compiled model serves arms with and without it.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    states: ClassVar[tuple[State, ...]] = ()
    parameters: ClassVar[tuple[Parameter, ...]] = ()
    dosing: ClassVar[Dosing | None] = None
    product_neutral: ClassVar[Mapping[str, float]] = {}

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
        """Extra outputs of the therapy (e.g. drug concentration, its unit); default: none."""
        return {}


class CombinedModel(AbstractModel):
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
    def start_time(self):
        return self.core.start_time

    @property
    def time_unit(self):
        return self.core.time_unit

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
    return CombinedModel(core, tuple(therapies)) if therapies else core
