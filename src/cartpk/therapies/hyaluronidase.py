"""PEGylated hyaluronidase (PEGPH20-like): degrades hyaluronan and lowers ECM density.

One-compartment PK in µg (dose into ``hya_central``; MTD 3 µg/kg twice weekly, i.e. about
210 µg for 70 kg):

    dA/dt = -k_el A,            C = A / V  (µg/L)
    ecm_density = 1 - Imax C / (IC50 + C)

``Imax`` is the hyaluronan share of the ECM barrier to CAR-T infiltration (collagen is left
intact). The core relaxes ECM towards this target at its remodelling rate ``k_ecm``, so the
barrier falls over days and returns after dosing stops.
"""

from __future__ import annotations

import math
from typing import ClassVar, final

from ..parameters import Parameter, State
from ._common import ATOL, saturating
from .base import AbstractTherapy, Dosing

_INFANTE = "Infante 2018, doi:10.1038/bjc.2017.327"
_HALO301 = "Van Cutsem 2020 (HALO-301), doi:10.1200/JCO.20.00590"


@final
class Hyaluronidase(AbstractTherapy):
    """PEGPH20-like enzyme acting on ``ecm_density``. Dose in µg into ``hya_central``."""

    name: ClassVar[str] = "hyaluronidase"
    dosing: ClassVar[Dosing | None] = Dosing("hya_central", "ug", 3.0, -7.0, 3.5, 10, per_kg=True)
    description: ClassVar[str] = "PEGPH20-like one-compartment PK lowering ECM (hyaluronan) density"
    states: ClassVar[tuple[State, ...]] = (
        State("hya_central", "hyaluronidase", "ug", "PEGPH20 in plasma", ATOL),
    )
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter(
            "hya_k_el",
            math.log(2) / 1.5,
            "1/d",
            "elimination rate (t1/2 = 1.5 d)",
            "assumption: t1/2 of 1-2 d, consistent with plasma hyaluronan reaching steady state "
            "by day 8 of twice-weekly dosing (" + _INFANTE + "); PK constants not retrieved",
        ),
        Parameter(
            "hya_volume",
            3.0,
            "L",
            "volume of distribution",
            "assumption: a PEGylated protein stays mostly in plasma (about 3 L)",
        ),
        Parameter(
            "hya_imax",
            0.5,
            "-",
            "maximal fractional fall of the ECM barrier (hyaluronan share)",
            "assumption: hyaluronan is removed almost completely, collagen remains; tumour HA "
            "fell in 5 of 6 biopsied patients (" + _INFANTE + ")",
            upper=1.0,
            transform="logit",
        ),
        Parameter(
            "hya_ic50",
            10.0,
            "ug/L",
            "plasma concentration for half-maximal HA depletion",
            "assumption: the 3 ug/kg twice-weekly MTD ("
            + _INFANTE
            + "; "
            + _HALO301
            + " regimen) gives near-maximal effect",
        ),
    )

    def rates(self, t, y, p):
        return {"hya_central": -p["hya_k_el"] * y["hya_central"]}

    def effects(self, t, y, p):
        c = y["hya_central"] / p["hya_volume"]
        return {"ecm_density": 1.0 - p["hya_imax"] * saturating(c, p["hya_ic50"])}

    def observables(self, t, y, p):
        return {"hya_concentration": y["hya_central"] / p["hya_volume"]}
