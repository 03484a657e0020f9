"""Combination-therapy modules: a base, one file per therapy, and a registry by name."""

from .anti_ccr4 import AntiCCR4
from .anti_vegf import AntiVEGF
from .base import AbstractTherapy, CombinedModel, combine
from .ccl19_il7 import CCL19IL7CarT
from .checkpoint import Checkpoint
from .cxcl10 import CXCL10CarT
from .cxcr6 import CXCR6CarT
from .fap_targeting import FAPTargeting
from .hyaluronidase import Hyaluronidase
from .hypoxia_targeting import HypoxiaTargeting
from .lymphodepletion import Lymphodepletion
from .metabolic_modulator import MetabolicModulator
from .nab_paclitaxel import NabPaclitaxel
from .nanoparticle_delivery import NanoparticleDelivery
from .oncolytic_virus import OncolyticVirus
from .pak4_inhibition import PAK4Inhibition
from .photodynamic import PhotodynamicTherapy
from .radiotherapy import Radiotherapy
from .scaffold_delivery import ScaffoldDelivery
from .suppression_targeting import SuppressionTargeting
from .synnotch_enzyme import SynNotchEnzyme

_CLASSES: tuple[type[AbstractTherapy], ...] = (
    AntiVEGF,
    Hyaluronidase,
    FAPTargeting,
    CCL19IL7CarT,
    CXCL10CarT,
    CXCR6CarT,
    Lymphodepletion,
    Radiotherapy,
    SuppressionTargeting,
    Checkpoint,
    PAK4Inhibition,
    NabPaclitaxel,
    OncolyticVirus,
    SynNotchEnzyme,
    ScaffoldDelivery,
    HypoxiaTargeting,
    MetabolicModulator,
    AntiCCR4,
    NanoparticleDelivery,
    PhotodynamicTherapy,
)

#: name -> therapy class, for scenario files and the demo.
THERAPIES: dict[str, type[AbstractTherapy]] = {cls.name: cls for cls in _CLASSES}

__all__ = [
    "THERAPIES",
    "AbstractTherapy",
    "AntiCCR4",
    "AntiVEGF",
    "CCL19IL7CarT",
    "CXCL10CarT",
    "CXCR6CarT",
    "Checkpoint",
    "CombinedModel",
    "FAPTargeting",
    "Hyaluronidase",
    "HypoxiaTargeting",
    "Lymphodepletion",
    "MetabolicModulator",
    "NabPaclitaxel",
    "NanoparticleDelivery",
    "OncolyticVirus",
    "PAK4Inhibition",
    "PhotodynamicTherapy",
    "Radiotherapy",
    "ScaffoldDelivery",
    "SuppressionTargeting",
    "SynNotchEnzyme",
    "combine",
]
