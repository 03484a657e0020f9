"""Combination-therapy modules: a base, one file per therapy, and a registry by name."""

from .anti_vegf import AntiVEGF
from .base import AbstractTherapy, CombinedModel, combine
from .checkpoint import Checkpoint
from .chemokine_engineering import CCL19IL7CarT, CXCL10CarT, CXCR6CarT
from .fap_targeting import FAPTargeting
from .hyaluronidase import Hyaluronidase
from .lymphodepletion import Lymphodepletion
from .other_strategies import (
    AntiCCR4,
    HypoxiaTargeting,
    MetabolicModulator,
    NabPaclitaxel,
    NanoparticleDelivery,
    OncolyticVirus,
    PAK4Inhibition,
    ScaffoldDelivery,
    SynNotchEnzyme,
)
from .radiotherapy import Radiotherapy
from .suppression_targeting import SuppressionTargeting

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
    "Radiotherapy",
    "ScaffoldDelivery",
    "SuppressionTargeting",
    "SynNotchEnzyme",
    "combine",
]
