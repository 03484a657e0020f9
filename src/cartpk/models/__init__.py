"""Model families: the base API and the built-in models."""

from .base import AbstractModel
from .blood_stroma_tumour import BloodStromaTumour
from .multiphasic import Multiphasic

__all__ = ["AbstractModel", "BloodStromaTumour", "Multiphasic"]
