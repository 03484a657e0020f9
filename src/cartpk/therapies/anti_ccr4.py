"""Anti-CCR4 antibody (mogamulizumab-like) depleting Tregs: lowers ``suppression``.

Generic one-compartment IgG PK in mg (dose into ``ccr4_central``; 1 mg/kg):

    dA/dt = -(CL/V) A,    C = A / V
    suppression = 1 - Imax C / (EC50 + C)
"""

from __future__ import annotations

from typing import ClassVar, final

from ..parameters import Parameter, State
from ._common import _NO_NUMBERS, ATOL, GENERIC_MAB, mab_parameters, saturating
from .base import AbstractTherapy, Dosing


@final
class AntiCCR4(AbstractTherapy):
    """Anti-CCR4 antibody (mogamulizumab-like) depleting Tregs: lowers ``suppression``.
    Dose in mg into ``ccr4_central`` (1 mg/kg)."""

    name: ClassVar[str] = "anti_ccr4"
    dosing: ClassVar[Dosing | None] = Dosing("ccr4_central", "mg", 1.0, -7.0, 7.0, 4, per_kg=True)
    description: ClassVar[str] = "anti-CCR4 Treg depletion lowering suppression"
    states: ClassVar[tuple[State, ...]] = (
        State("ccr4_central", "anti_ccr4", "mg", "anti-CCR4 antibody in the body", ATOL),
    )
    parameters: ClassVar[tuple[Parameter, ...]] = (
        *mab_parameters("ccr4", "anti-CCR4 antibody", 0.2, 5.0, GENERIC_MAB),
        Parameter(
            "ccr4_ec50", 1.0, "mg/L", "concentration for half-maximal Treg depletion", _NO_NUMBERS
        ),
        Parameter(
            "ccr4_imax",
            0.25,
            "-",
            "share of suppression carried by Tregs",
            _NO_NUMBERS,
            upper=1.0,
            transform="logit",
        ),
    )

    def rates(self, t, y, p):
        return {"ccr4_central": -p["ccr4_clearance"] / p["ccr4_volume"] * y["ccr4_central"]}

    def effects(self, t, y, p):
        c = y["ccr4_central"] / p["ccr4_volume"]
        return {"suppression": 1.0 - p["ccr4_imax"] * saturating(c, p["ccr4_ec50"])}
