"""Lymphodepleting chemotherapy (fludarabine/cyclophosphamide), given on days -5 to -3.

Doses are in *standard day-doses* (1 = fludarabine 30 mg/m2 + cyclophosphamide 500 mg/m2 on one
day) into ``ld_drug``, which decays fast and drives a slowly recovering lymphopenia state:

    dD/dt = -k_drug D
    dL/dt = k_drug D - k_recovery L
    expansion_boost = 1 + Emax L / (L50 + L)
    cart_kill       = k_tox D                      (1/d; CAR-T in stroma and tumour)

How it combines with the core: the core's ``niche0`` (default 1) already represents a standard
Flu/Cy course through its closing homeostatic niche, and ``expansion_boost`` multiplies that niche
term (and antigen-driven proliferation). So this module models an *additional or intensified*
regimen on top of the standard one (e.g. higher cyclophosphamide), or a timing study with the
residual-drug toxicity ``cart_kill``. With ``niche0 = 0`` the homeostatic term vanishes and the
boost acts only on antigen-driven proliferation; to model "no lymphodepletion" set ``niche0 = 0``
and do not dose this module.
"""

from __future__ import annotations

import math
from typing import ClassVar, final

from ..parameters import Parameter, State
from ._common import ATOL, saturating
from .base import AbstractTherapy, Dosing

_FLU = "fludarabine terminal t1/2 about 20 h (product label)"


@final
class Lymphodepletion(AbstractTherapy):
    """Flu/Cy lymphodepletion acting on ``expansion_boost`` (and ``cart_kill`` from residual drug).

    Dose: 1 per day into ``ld_drug`` on days -5, -4, -3 for one standard course.
    """

    name: ClassVar[str] = "lymphodepletion"
    dosing: ClassVar[Dosing | None] = Dosing("ld_drug", "dose", 1.0, -5.0, 1.0, 3)
    description: ClassVar[str] = (
        "Flu/Cy in standard day-doses: decaying lymphopenia boosts expansion; residual drug "
        "kills CAR-T in tissue"
    )
    states: ClassVar[tuple[State, ...]] = (
        State("ld_drug", "lymphodepletion", "day-dose", "residual Flu/Cy exposure", ATOL),
        State("ld_lymphopenia", "lymphodepletion", "day-dose", "depth of lymphopenia", ATOL),
    )
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter(
            "ld_k_drug", math.log(2) / 0.85, "1/d", "decay of residual drug", "assumption: " + _FLU
        ),
        Parameter(
            "ld_k_recovery",
            0.1,
            "1/d",
            "recovery from lymphopenia (cytokine surge decay)",
            "assumption: IL-7/IL-15 surge and lymphocyte nadir resolve over 1-3 weeks; "
            "same order as the core k_niche",
        ),
        Parameter(
            "ld_emax",
            0.5,
            "-",
            "maximal extra relative CAR-T proliferation",
            "assumption: intensified Cy/Flu associated with higher CAR-T expansion (Turtle 2016, "
            "doi:10.1172/JCI85309, qualitative)",
        ),
        Parameter(
            "ld_l50",
            3.0,
            "day-dose",
            "lymphopenia for half-maximal boost",
            "assumption: one standard 3-day course gives a half-maximal extra boost",
        ),
        Parameter(
            "ld_k_tox",
            0.5,
            "1/(d*day-dose)",
            "CAR-T kill rate per unit residual drug",
            "assumption: why infusion waits at least 2 days after the last dose",
        ),
    )

    def rates(self, t, y, p):
        decay = p["ld_k_drug"] * y["ld_drug"]
        return {
            "ld_drug": -decay,
            "ld_lymphopenia": decay - p["ld_k_recovery"] * y["ld_lymphopenia"],
        }

    def effects(self, t, y, p):
        return {
            "expansion_boost": 1.0 + p["ld_emax"] * saturating(y["ld_lymphopenia"], p["ld_l50"]),
            "cart_kill": p["ld_k_tox"] * y["ld_drug"],
        }
