"""MCT/lactate-transport inhibitor: lowers ``suppression`` (lactate, acidity) and CAR-T
``exhaustion``.

Relative exposure (1 = one daily dose) into ``mct_exposure``:

    dE/dt = -k_el E,    f = E / (E50 + E)
    suppression = 1 - s f,    exhaustion = 1 - x f
"""

from __future__ import annotations

from typing import ClassVar, final

from ..parameters import Parameter, State
from ._common import _NO_NUMBERS, _REL, _elimination, _exposure_state, saturating
from .base import AbstractTherapy, Dosing


@final
class MetabolicModulator(AbstractTherapy):
    """MCT/lactate-transport inhibitor: lowers ``suppression`` (lactate, acidity) and CAR-T
    ``exhaustion``. Dose 1 per daily dose into ``mct_exposure``."""

    name: ClassVar[str] = "metabolic_modulator"
    dosing: ClassVar[Dosing | None] = Dosing("mct_exposure", "dose", 1.0, -3.0, 1.0, 10)
    description: ClassVar[str] = "MCT/lactate inhibitor lowering suppression and exhaustion"
    states: ClassVar[tuple[State, ...]] = (_exposure_state("mct", "metabolic_modulator", "MCTi"),)
    parameters: ClassVar[tuple[Parameter, ...]] = (
        _elimination("mct", 0.5, "assumption: oral small molecule, t1/2 about 12 h"),
        Parameter("mct_e50", 1.0, _REL, "exposure for half-maximal effect", _NO_NUMBERS),
        Parameter(
            "mct_suppression",
            0.2,
            "-",
            "maximal fractional fall of suppression",
            _NO_NUMBERS,
            upper=1.0,
            transform="logit",
        ),
        Parameter(
            "mct_exhaustion",
            0.2,
            "-",
            "maximal fractional fall of exhaustion",
            _NO_NUMBERS,
            upper=1.0,
            transform="logit",
        ),
    )

    def rates(self, t, y, p):
        return {"mct_exposure": -p["mct_k_el"] * y["mct_exposure"]}

    def effects(self, t, y, p):
        f = saturating(y["mct_exposure"], p["mct_e50"])
        return {
            "suppression": 1.0 - p["mct_suppression"] * f,
            "exhaustion": 1.0 - p["mct_exhaustion"] * f,
        }
