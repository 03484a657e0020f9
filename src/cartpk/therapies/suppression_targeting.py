"""Antibodies against a suppressive pathway of the tumour microenvironment (anti-CD73 / anti-A2A
adenosine blockade or anti-CSF1R macrophage reprogramming), lowering ``suppression``.

One-compartment mAb PK in mg (dose into ``sup_central``):

    dA/dt = -(CL/V) A,      C = A / V
    suppression = 1 - Imax C / (IC50 + C)

``Imax`` is the share of the tumour's suppression carried by the targeted pathway.
"""

from __future__ import annotations

from typing import ClassVar, final

from ..parameters import Parameter, State
from ._common import ATOL, GENERIC_MAB, mab_parameters, saturating
from .base import AbstractTherapy, Dosing


@final
class SuppressionTargeting(AbstractTherapy):
    """Anti-CD73/A2A or anti-CSF1R antibody acting on ``suppression``. Dose in mg."""

    name: ClassVar[str] = "suppression_targeting"
    dosing: ClassVar[Dosing | None] = Dosing("sup_central", "mg", 10.0, -7.0, 14.0, 4, per_kg=True)
    description: ClassVar[str] = "anti-CD73/A2A or anti-CSF1R mAb lowering tumour suppression"
    states: ClassVar[tuple[State, ...]] = (
        State("sup_central", "suppression_targeting", "mg", "antibody in plasma", ATOL),
    )
    parameters: ClassVar[tuple[Parameter, ...]] = (
        *mab_parameters("sup", "antibody", 0.2, 5.0, GENERIC_MAB),
        Parameter(
            "sup_imax",
            0.4,
            "-",
            "share of suppression carried by the targeted pathway",
            "assumption: adenosine or TAMs are one of several suppressive mechanisms (seed review "
            "Zhang 2025, doi:10.3389/fimmu.2025.1672601, qualitative)",
            upper=1.0,
            transform="logit",
        ),
        Parameter(
            "sup_ic50",
            1.0,
            "mg/L",
            "concentration for half-maximal pathway blockade",
            "assumption: target saturation at low mg/L, typical of therapeutic mAbs",
        ),
    )

    def rates(self, t, y, p):
        return {"sup_central": -p["sup_clearance"] / p["sup_volume"] * y["sup_central"]}

    def effects(self, t, y, p):
        c = y["sup_central"] / p["sup_volume"]
        return {"suppression": 1.0 - p["sup_imax"] * saturating(c, p["sup_ic50"])}
