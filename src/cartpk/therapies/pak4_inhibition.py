"""PAK4 inhibitor (KPT-9274-like): endothelial reprogramming normalizes tumour vessels and restores
VCAM-1, raising ``vascular_function`` and ``homing`` (Ma 2020, doi:10.1038/s43018-020-00147-8).

Relative exposure (1 = one daily dose) into ``pak4_exposure``:

    dE/dt = -k_el E,    f = E / (E50 + E)
    vascular_function = 1 + a f,    homing = 1 + b f
"""

from __future__ import annotations

from typing import ClassVar, final

from ..parameters import Parameter, State
from ._common import _NO_NUMBERS, _REL, _elimination, _exposure_state, saturating
from .base import AbstractTherapy, Dosing


@final
class PAK4Inhibition(AbstractTherapy):
    """PAK4 inhibitor (KPT-9274-like): endothelial reprogramming normalizes vessels and restores
    VCAM-1, so ``vascular_function`` and ``homing`` rise. Dose 1 per daily dose into
    ``pak4_exposure``."""

    name: ClassVar[str] = "pak4_inhibition"
    dosing: ClassVar[Dosing | None] = Dosing("pak4_exposure", "dose", 1.0, -7.0, 1.0, 14)
    description: ClassVar[str] = "PAK4 inhibitor: vascular normalization and T-cell adhesion"
    states: ClassVar[tuple[State, ...]] = (_exposure_state("pak4", "pak4_inhibition", "PAK4i"),)
    parameters: ClassVar[tuple[Parameter, ...]] = (
        _elimination("pak4", 0.5, "assumption: oral small molecule, t1/2 about 12 h"),
        Parameter("pak4_e50", 1.0, _REL, "exposure for half-maximal effect", _NO_NUMBERS),
        Parameter(
            "pak4_vascular",
            0.5,
            "-",
            "maximal relative rise of vascular function",
            "assumption: PAK4 inhibition normalized GBM vasculature and improved CAR-T "
            "efficacy (Ma 2020, doi:10.1038/s43018-020-00147-8, qualitative)",
        ),
        Parameter(
            "pak4_homing",
            0.5,
            "-",
            "maximal relative rise of homing (VCAM-1 adhesion)",
            "assumption: Ma 2020, doi:10.1038/s43018-020-00147-8, qualitative",
        ),
    )

    def rates(self, t, y, p):
        return {"pak4_exposure": -p["pak4_k_el"] * y["pak4_exposure"]}

    def effects(self, t, y, p):
        f = saturating(y["pak4_exposure"], p["pak4_e50"])
        return {
            "vascular_function": 1.0 + p["pak4_vascular"] * f,
            "homing": 1.0 + p["pak4_homing"] * f,
        }
