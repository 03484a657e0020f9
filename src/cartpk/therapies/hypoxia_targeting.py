"""Oxygen-releasing material or hypoxia-activated prodrug (evofosfamide-like): lowers hypoxia-driven
``suppression``.

Relative exposure (1 = one dose) into ``hyp_exposure``:

    dE/dt = -k_el E,    suppression = 1 - Imax E / (E50 + E)
"""

from __future__ import annotations

from typing import ClassVar, final

from ..parameters import Parameter, State
from ._common import _NO_NUMBERS, _REL, _elimination, _exposure_state, saturating
from .base import AbstractTherapy, Dosing


@final
class HypoxiaTargeting(AbstractTherapy):
    """Oxygen-releasing material or hypoxia-activated prodrug (evofosfamide-like): lowers
    hypoxia-driven ``suppression``. Dose 1 per dose into ``hyp_exposure``."""

    name: ClassVar[str] = "hypoxia_targeting"
    dosing: ClassVar[Dosing | None] = Dosing("hyp_exposure", "dose", 1.0, -3.0, 1.0, 10)
    description: ClassVar[str] = "oxygen release / hypoxia-activated drug lowering suppression"
    states: ClassVar[tuple[State, ...]] = (_exposure_state("hyp", "hypoxia_targeting", "agent"),)
    parameters: ClassVar[tuple[Parameter, ...]] = (
        _elimination("hyp", 0.5, "assumption: exposure or oxygen release lasts about a day"),
        Parameter("hyp_e50", 1.0, _REL, "exposure for half-maximal effect", _NO_NUMBERS),
        Parameter(
            "hyp_imax",
            0.3,
            "-",
            "maximal fractional fall of suppression",
            _NO_NUMBERS,
            upper=1.0,
            transform="logit",
        ),
    )

    def rates(self, t, y, p):
        return {"hyp_exposure": -p["hyp_k_el"] * y["hyp_exposure"]}

    def effects(self, t, y, p):
        f = saturating(y["hyp_exposure"], p["hyp_e50"])
        return {"suppression": 1.0 - p["hyp_imax"] * f}
