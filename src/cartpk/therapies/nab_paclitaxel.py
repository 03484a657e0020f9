"""Nab-paclitaxel: cytotoxic tumour kill and stromal depletion (lower ECM density).

Amount in the body in mg (dose into ``nab_central``; 125 mg/m2, about 220 mg):

    dA/dt = -k_el A,    f = A / (A50 + A)
    tumour_kill = k f  (1/d),    ecm_density = 1 - e f
"""

from __future__ import annotations

from typing import ClassVar, final

from ..parameters import Parameter, State
from ._common import _NO_NUMBERS, ATOL, _elimination, saturating
from .base import AbstractTherapy, Dosing


@final
class NabPaclitaxel(AbstractTherapy):
    """Nab-paclitaxel: cytotoxic ``tumour_kill`` and stroma disruption (``ecm_density``).
    Dose in mg into ``nab_central`` (125 mg/m2, about 220 mg)."""

    name: ClassVar[str] = "nab_paclitaxel"
    dosing: ClassVar[Dosing | None] = Dosing("nab_central", "mg", 220.0, -7.0, 7.0, 3)
    description: ClassVar[str] = "nab-paclitaxel: tumour kill and stromal depletion"
    states: ClassVar[tuple[State, ...]] = (
        State("nab_central", "nab_paclitaxel", "mg", "paclitaxel in the body", ATOL),
    )
    parameters: ClassVar[tuple[Parameter, ...]] = (
        _elimination("nab", 1.0, "assumption: paclitaxel terminal t1/2 of roughly 1 d"),
        Parameter("nab_a50", 100.0, "mg", "body amount for half-maximal effect", _NO_NUMBERS),
        Parameter(
            "nab_kill",
            0.1,
            "1/d",
            "maximal extra tumour death rate",
            "assumption: modest cytotoxicity between weekly doses",
        ),
        Parameter(
            "nab_ecm",
            0.3,
            "-",
            "maximal fractional fall of ECM density",
            "assumption: stromal depletion reported with nab-paclitaxel in PDAC (qualitative)",
            upper=1.0,
            transform="logit",
        ),
    )

    def rates(self, t, y, p):
        return {"nab_central": -p["nab_k_el"] * y["nab_central"]}

    def effects(self, t, y, p):
        f = saturating(y["nab_central"], p["nab_a50"])
        return {"tumour_kill": p["nab_kill"] * f, "ecm_density": 1.0 - p["nab_ecm"] * f}
