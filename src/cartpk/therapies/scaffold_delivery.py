"""Biomaterial scaffold or sustained local release: a depot of cytokine/chemokine cargo that raises
``homing`` while it releases (the local CAR-T dose itself is the regimen's dose into
``stroma_effector`` or ``tumour_effector``).

    dS/dt = -k_release S,    homing = 1 + h S      (S: cargo left, 1 = one scaffold)
"""

from __future__ import annotations

from typing import ClassVar, final

import jax.numpy as jnp

from ..parameters import Parameter, State
from ._common import _NO_NUMBERS, _REL, ATOL
from .base import AbstractTherapy, Dosing


@final
class ScaffoldDelivery(AbstractTherapy):
    """Biomaterial scaffold or sustained local release: a depot that raises ``homing`` while it
    releases its cytokine/chemokine cargo.

    A therapy cannot add cells to the core's states through channels: the local CAR-T dose itself is
    the regimen's dose into ``stroma_effector`` (or ``tumour_effector``), e.g. a zero-order
    infusion over the scaffold's release time. Dose 1 into ``scf_depot`` at implantation.
    """

    name: ClassVar[str] = "scaffold_delivery"
    dosing: ClassVar[Dosing | None] = Dosing("scf_depot", "dose", 1.0, 0.0)
    description: ClassVar[str] = "scaffold/sustained local release depot raising homing"
    states: ClassVar[tuple[State, ...]] = (
        State("scf_depot", "scaffold_delivery", _REL, "cargo left in the scaffold", ATOL),
    )
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter(
            "scf_k_release",
            0.1,
            "1/d",
            "first-order release rate of the depot",
            "assumption: release over 1-3 weeks",
        ),
        Parameter("scf_homing", 1.0, "-", "extra relative homing per unit depot", _NO_NUMBERS),
    )

    def rates(self, t, y, p):
        return {"scf_depot": -p["scf_k_release"] * y["scf_depot"]}

    def effects(self, t, y, p):
        return {"homing": 1.0 + p["scf_homing"] * jnp.maximum(y["scf_depot"], 0.0)}
