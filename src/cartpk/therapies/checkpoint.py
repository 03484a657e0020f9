"""Anti-PD-1 checkpoint blockade (pembrolizumab-like), lowering the CAR-T exhaustion rate.

One-compartment PK in mg (200 mg every 3 weeks into ``pd1_central``):

    dA/dt = -(CL/V) A,      C = A / V  (mg/L)
    exhaustion = 1 - Imax C / (EC50 + C)
"""

from __future__ import annotations

from typing import ClassVar, final

from ..parameters import Parameter, State
from ._common import ATOL, saturating
from .base import AbstractTherapy, Dosing

_AHAMADI = "Ahamadi 2017, doi:10.1002/psp4.12139"
_LABEL = "pembrolizumab label: CL 0.195 L/d at steady state, Vss about 6.0 L, t1/2 22 d"


@final
class Checkpoint(AbstractTherapy):
    """Pembrolizumab-like anti-PD-1 acting on ``exhaustion``. Dose in mg into ``pd1_central``."""

    name: ClassVar[str] = "checkpoint"
    dosing: ClassVar[Dosing | None] = Dosing("pd1_central", "mg", 200.0, 0.0, 21.0, 3)
    description: ClassVar[str] = "anti-PD-1 (pembrolizumab-like PK) lowering CAR-T exhaustion"
    states: ClassVar[tuple[State, ...]] = (
        State("pd1_central", "checkpoint", "mg", "anti-PD-1 antibody in the body", ATOL),
    )
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("pd1_clearance", 0.22, "L/d", "clearance", _AHAMADI + " (0.22 L/d); " + _LABEL),
        Parameter(
            "pd1_volume",
            6.0,
            "L",
            "volume of distribution (one compartment: Vss)",
            _LABEL + "; one-compartment simplification of the two-compartment model in " + _AHAMADI,
        ),
        Parameter(
            "pd1_imax",
            0.5,
            "-",
            "maximal fractional fall of the exhaustion rate",
            "assumption: PD-1 is one of several exhaustion drivers (TIM-3, LAG-3, TOX persist)",
            upper=1.0,
            transform="logit",
        ),
        Parameter(
            "pd1_ec50",
            1.0,
            "mg/L",
            "concentration for half-maximal effect",
            "assumption: PD-1 saturation at a few mg/L; 200 mg q3w troughs are far above",
        ),
    )

    def rates(self, t, y, p):
        return {"pd1_central": -p["pd1_clearance"] / p["pd1_volume"] * y["pd1_central"]}

    def effects(self, t, y, p):
        c = y["pd1_central"] / p["pd1_volume"]
        return {"exhaustion": 1.0 - p["pd1_imax"] * saturating(c, p["pd1_ec50"])}

    def observables(self, t, y, p):
        return {"pd1_concentration": y["pd1_central"] / p["pd1_volume"]}
