"""FAP targeting (anti-FAP antibody or FAP-CAR-T): depletes cancer-associated fibroblasts (CAFs),
so ECM density falls slowly as matrix production stops.

    dA/dt   = -(CL/V) A                          (mg, dose into ``fap_central``)
    dF/dt   = k_turn (1 - F) - k_dep C/(EC50 + C) F      (F: CAF level, 1 = baseline)
    ecm_density = 1 - f_caf (1 - F)

``f_caf`` is the share of the ECM maintained by FAP+ CAFs. Depletion adds one slow step (CAF
turnover) in front of the core's own ECM remodelling, so the ECM falls more slowly than with
hyaluronidase. A FAP-CAR-T product can be represented by dosing ``fap_central`` in
antibody-equivalent mg and lowering ``fap_clearance`` to its persistence (an assumption).
"""

from __future__ import annotations

from typing import ClassVar, final

import jax.numpy as jnp

from ..parameters import Parameter, State
from ._common import ATOL, GENERIC_MAB, mab_parameters, saturating
from .base import AbstractTherapy, Dosing

_WANG = "Wang LC 2014, Cancer Immunol Res 2:154 (FAP-CAR-T depleted FAP+ stroma in mice)"


@final
class FAPTargeting(AbstractTherapy):
    """FAP-targeting agent acting on ``ecm_density`` via a fibroblast-depletion state."""

    name: ClassVar[str] = "fap_targeting"
    dosing: ClassVar[Dosing | None] = Dosing("fap_central", "mg", 10.0, -14.0, 14.0, 3, per_kg=True)
    description: ClassVar[str] = "anti-FAP / FAP-CAR-T: CAF depletion, slow fall of ECM density"
    states: ClassVar[tuple[State, ...]] = (
        State("fap_central", "fap_targeting", "mg", "anti-FAP agent in plasma", ATOL),
        State("fap_caf", "fap_targeting", "-", "FAP+ fibroblast level (1 = baseline)", ATOL),
    )
    parameters: ClassVar[tuple[Parameter, ...]] = (
        *mab_parameters("fap", "anti-FAP antibody", 0.2, 5.0, GENERIC_MAB),
        Parameter(
            "fap_ec50",
            5.0,
            "mg/L",
            "concentration for half-maximal CAF depletion",
            "assumption: no published exposure-response",
        ),
        Parameter(
            "fap_k_deplete",
            0.2,
            "1/d",
            "maximal CAF depletion rate",
            "assumption: CAF depletion over 1-2 weeks (" + _WANG + ", qualitative)",
        ),
        Parameter(
            "fap_k_turnover",
            0.05,
            "1/d",
            "CAF recovery (repopulation) rate",
            "assumption: fibroblast repopulation over weeks",
        ),
        Parameter(
            "fap_ecm_share",
            0.5,
            "-",
            "share of the ECM barrier maintained by FAP+ CAFs",
            "assumption: CAFs make most fibrillar collagen, part of the matrix persists",
            upper=1.0,
            transform="logit",
        ),
    )

    def initial_state(self, p):
        return {"fap_central": jnp.zeros(()), "fap_caf": jnp.ones(())}

    def rates(self, t, y, p):
        c = y["fap_central"] / p["fap_volume"]
        caf = y["fap_caf"]
        return {
            "fap_central": -p["fap_clearance"] / p["fap_volume"] * y["fap_central"],
            "fap_caf": p["fap_k_turnover"] * (1.0 - caf)
            - p["fap_k_deplete"] * saturating(c, p["fap_ec50"]) * caf,
        }

    def effects(self, t, y, p):
        return {"ecm_density": 1.0 - p["fap_ecm_share"] * (1.0 - y["fap_caf"])}

    def observables(self, t, y, p):
        return {"fap_caf_level": y["fap_caf"]}
