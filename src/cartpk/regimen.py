"""Dose regimens with NONMEM event semantics, and their fixed-shape array form.

A :class:`Regimen` is a tuple of :class:`Dose` events. Each dose puts ``amount`` into one named
state (its *compartment*, NONMEM's ``CMT``) at ``time``: at once (bolus) or at a constant rate over
``duration`` days (zero-order infusion, NONMEM's ``RATE``/``DUR``). Repeated schedules
(NONMEM's ``ADDL``/``II``) and split infusions expand into single events on the host.

For jitted code a regimen becomes :class:`DoseArrays`: sorted event times, the bolus added to each
state at each event, and the infusion rate into each state from each event to the next. Padding
events sit at ``+inf`` with zero amounts, so patients with different regimens share one shape and
one compiled function. The solver integrates segment by segment between events, so no dose is ever
stepped over (see :mod:`cartpk.simulate`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .errors import RegimenError


@dataclass(frozen=True)
class Dose:
    """One dose event.

    Args:
        time: dose time (d). May be negative (e.g. chemotherapy before a day-0 infusion).
        amount: amount in the compartment's unit (cells for CAR-T, mg for drugs, Gy for radiation).
        compartment: name of the model state that receives the dose (NONMEM ``CMT``).
        duration: infusion duration (d); 0 is a bolus (NONMEM ``DUR``; ``RATE = AMT/DUR``).
    """

    time: float
    amount: float
    compartment: str
    duration: float = 0.0

    def __post_init__(self):
        for name in ("time", "amount", "duration"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise RegimenError(f"dose {name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise RegimenError(f"dose {name} must be finite, got {value!r}")
        if self.amount < 0:
            raise RegimenError(f"dose amount must be >= 0, got {self.amount!r}")
        if self.duration < 0:
            raise RegimenError(f"dose duration must be >= 0, got {self.duration!r}")
        if not isinstance(self.compartment, str) or not self.compartment:
            raise RegimenError(f"dose compartment must be a state name, got {self.compartment!r}")
        if self.duration > 0 and not math.isfinite(float(self.amount) / float(self.duration)):
            raise RegimenError(
                f"dose infusion rate amount/duration is not finite ({self.amount!r} over "
                f"{self.duration!r} d)"
            )
        if not math.isfinite(float(self.time) + float(self.duration)):
            raise RegimenError(f"dose end time {self.time!r} + {self.duration!r} d is not finite")
        if self.duration > 0 and float(self.time) + float(self.duration) == float(self.time):
            raise RegimenError(
                f"dose duration {self.duration!r} d is too short to resolve at time {self.time:g} d"
                " (float64); give a longer infusion or a bolus"
            )

    @property
    def rate(self) -> float:
        """Infusion rate (amount/d); infinite for a bolus."""
        return self.amount / self.duration if self.duration > 0 else math.inf


@dataclass(frozen=True)
class Regimen:
    """An ordered collection of dose events. Combine regimens with ``+``."""

    doses: tuple[Dose, ...] = ()

    def __post_init__(self):
        doses = self.doses
        if isinstance(doses, Dose) or not isinstance(doses, Iterable):
            raise RegimenError(f"a regimen needs a sequence of Dose events, got {doses!r:.60}")
        doses = tuple(doses)
        for dose in doses:
            if not isinstance(dose, Dose):
                raise RegimenError(f"a regimen holds Dose events, got {dose!r:.60}")
        object.__setattr__(self, "doses", tuple(sorted(doses, key=lambda d: d.time)))

    def __add__(self, other: Regimen) -> Regimen:
        if not isinstance(other, Regimen):
            return NotImplemented
        return Regimen(self.doses + other.doses)

    def __len__(self) -> int:
        return len(self.doses)

    @classmethod
    def single(
        cls, amount: float, compartment: str, time: float = 0.0, duration: float = 0.0
    ) -> Regimen:
        """One bolus or infusion: ``amount`` (state unit, e.g. cells) into the state named
        ``compartment`` at ``time`` (d), over ``duration`` days (0: bolus)."""
        return cls((Dose(time, amount, compartment, duration),))

    @classmethod
    def schedule(
        cls,
        amount: float,
        compartment: str,
        *,
        start: float = 0.0,
        interval: float,
        count: int,
        duration: float = 0.0,
    ) -> Regimen:
        """``count`` equal doses every ``interval`` days from ``start`` (NONMEM ``ADDL = count-1``,
        ``II = interval``)."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise RegimenError(f"schedule count must be a positive integer, got {count!r}")
        for name, value in (("start", start), ("interval", interval)):
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise RegimenError(f"schedule {name} must be a number, got {value!r}")
        if count > 1 and not interval > 0:
            raise RegimenError(f"schedule interval must be > 0 d, got {interval!r}")
        times = [start] + [start + i * interval for i in range(1, count)]  # one dose: no interval
        return cls(tuple(Dose(t, amount, compartment, duration) for t in times))

    @classmethod
    def split(
        cls,
        total: float,
        compartment: str,
        *,
        fractions: Sequence[float],
        days: Sequence[float],
        duration: float = 0.0,
    ) -> Regimen:
        """A total dose split over several days, e.g. CAR-T 10 %/30 %/60 % on days 0, 1, 2."""
        numbers = (int, float, np.number)
        for name, values in (("fractions", fractions), ("days", days)):
            if not isinstance(values, Sequence | np.ndarray) or not all(
                isinstance(v, numbers) and not isinstance(v, bool) for v in values
            ):
                raise RegimenError(f"split {name} must be a sequence of numbers, got {values!r}")
        if len(fractions) != len(days) or not len(fractions):
            raise RegimenError("split infusion needs one fraction per day")
        if any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, rel_tol=1e-9):
            raise RegimenError(f"split fractions must be >= 0 and sum to 1, got {list(fractions)}")
        return cls(
            tuple(
                Dose(t, total * f, compartment, duration)
                for f, t in zip(fractions, days, strict=True)
            )
        )

    def check_compartments(self, state_names: Sequence[str]) -> None:
        """Raise if any dose targets a state the model does not have."""
        for i, dose in enumerate(self.doses):
            if dose.compartment not in state_names:
                raise RegimenError(
                    f"dose {i} (time {dose.time:g} d) targets unknown compartment "
                    f"{dose.compartment!r}; the model's states are: {', '.join(state_names)}"
                )

    def n_events(self) -> int:
        """Number of distinct event times (dose starts and infusion ends)."""
        return len(_event_times(self.doses))

    def to_arrays(self, state_names: Sequence[str], n_events: int | None = None) -> DoseArrays:
        """Fixed-shape arrays for jitted code, padded to ``n_events`` events."""
        return DoseArrays(*map(jnp.asarray, self._numpy_arrays(state_names, n_events)))

    def _numpy_arrays(self, state_names, n_events):
        self.check_compartments(state_names)
        times = _event_times(self.doses)
        n = len(times) if n_events is None else n_events
        if n < len(times):
            raise RegimenError(f"regimen has {len(times)} events but n_events={n}")
        n = max(n, 1)
        index = {name: i for i, name in enumerate(state_names)}
        event_times = np.full(n, np.inf)
        event_times[: len(times)] = times
        bolus = np.zeros((n, len(state_names)))
        rate = np.zeros((n, len(state_names)))
        position = {t: k for k, t in enumerate(times)}
        for dose in self.doses:
            j = index[dose.compartment]
            k = position[dose.time]
            if dose.duration == 0:
                bolus[k, j] += dose.amount
            else:
                end = position[dose.time + dose.duration]
                # the rate over the event times as rounded, so that the whole amount is delivered
                rate[k:end, j] += dose.amount / (times[end] - times[k])
        return event_times, bolus, rate


def _event_times(doses: Iterable[Dose]) -> list[float]:
    times = set()
    for dose in doses:
        times.add(dose.time)
        if dose.duration > 0:
            times.add(dose.time + dose.duration)
    return sorted(times)


class DoseArrays(eqx.Module):
    """A regimen as padded arrays (one row per event; padding rows at ``t = +inf``).

    Attributes:
        times: event times (d), sorted, shape ``(events,)``.
        bolus: amount added to each state at each event, shape ``(events, states)``.
        rate: infusion rate into each state from each event to the next (amount/d),
            shape ``(events, states)``.
    """

    times: Float[Array, " events"]
    bolus: Float[Array, "events states"]
    rate: Float[Array, "events states"]


def stack_regimens(
    regimens: Sequence[Regimen], state_names: Sequence[str], n_events: int | None = None
) -> DoseArrays:
    """Pad regimens to a common number of events (at least ``n_events``) and stack them along a
    leading patient axis."""
    if not regimens:
        raise RegimenError("no regimens to stack")
    n = max(max(r.n_events() for r in regimens), n_events or 1)
    arrays = [r._numpy_arrays(state_names, n) for r in regimens]
    return DoseArrays(*(jnp.asarray(np.stack(column)) for column in zip(*arrays, strict=True)))
