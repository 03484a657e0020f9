"""Model families: the base API, the CAR-T models and the standard PK/PD library (:mod:`.pk`)."""

from . import pk
from .base import AbstractModel
from .blood_stroma_tumour import BloodStromaTumour
from .multiphasic import Multiphasic
from .pk import *  # noqa: F403 (the library's names, listed in pk.__all__)

__all__ = ["AbstractModel", "BloodStromaTumour", "Multiphasic", *pk.__all__]
