"""Intratumoural oncolytic virus: local replication, lysis (``tumour_kill``) and an inflammatory
``chemokine`` rise.

Relative titre (1 = one injection) into ``ov_titre``:

    dV/dt = r V (1 - V/Vmax) - k_clear V,    f = V / (V50 + V)
    tumour_kill = k f  (1/d),    chemokine = 1 + c f
"""

from __future__ import annotations

from typing import ClassVar, final

from ..parameters import Parameter, State
from ._common import _NO_NUMBERS, _REL, ATOL, saturating
from .base import AbstractTherapy, Dosing


@final
class OncolyticVirus(AbstractTherapy):
    """Intratumoural oncolytic virus: local replication, ``tumour_kill`` and ``chemokine``.

    ``dV/dt = r V (1 - V/Vmax) - k_clear V``; dose (relative titre, 1 = one injection) into
    ``ov_titre``.
    """

    name: ClassVar[str] = "oncolytic_virus"
    dosing: ClassVar[Dosing | None] = Dosing("ov_titre", "dose", 1.0, -3.0)
    description: ClassVar[str] = "oncolytic virus: local lysis and inflammatory chemokine"
    states: ClassVar[tuple[State, ...]] = (
        State("ov_titre", "oncolytic_virus", _REL, "intratumoural virus (1 = one injection)", ATOL),
    )
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("ov_replication", 0.5, "1/d", "intratumoural replication rate", _NO_NUMBERS),
        Parameter("ov_capacity", 10.0, _REL, "maximal intratumoural titre", _NO_NUMBERS),
        Parameter(
            "ov_clearance",
            0.7,
            "1/d",
            "immune clearance of virus",
            "assumption: antiviral immunity clears the virus within weeks",
        ),
        Parameter("ov_v50", 1.0, _REL, "titre for half-maximal effect", _NO_NUMBERS),
        Parameter("ov_kill", 0.05, "1/d", "maximal extra tumour death rate (lysis)", _NO_NUMBERS),
        Parameter(
            "ov_chemokine",
            1.0,
            "-",
            "maximal relative rise of chemokine",
            "assumption: CAR-T + OV synergy via inflammation (Conte 2025, models.md 5.6)",
        ),
    )

    def rates(self, t, y, p):
        v = y["ov_titre"]
        return {
            "ov_titre": p["ov_replication"] * v * (1.0 - v / p["ov_capacity"])
            - p["ov_clearance"] * v
        }

    def effects(self, t, y, p):
        f = saturating(y["ov_titre"], p["ov_v50"])
        return {"tumour_kill": p["ov_kill"] * f, "chemokine": 1.0 + p["ov_chemokine"] * f}
