"""CXCR6-expressing CAR-T: ``homing = h`` (a receptor matching tumour CXCL16).

An armoured CAR-T product: the product's own cells carry the property, so the channel is constant
from the infusion on and needs no drug PK or dose (multiplicative fold-changes, neutral at 1;
``product_neutral`` switches it off). Where the source reports only qualitative or relative
changes, the default is an assumption within the reported range.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, final

import jax.numpy as jnp

from ..parameters import Parameter, State
from .base import AbstractTherapy

_LESCH = "Lesch 2021, doi:10.1038/s41551-021-00737-6"


@final
class CXCR6CarT(AbstractTherapy):
    """CXCR6-expressing CAR-T: better homing to CXCL16-rich tumours."""

    name: ClassVar[str] = "cxcr6"
    product_neutral: ClassVar[Mapping[str, float]] = {"cxr6_homing": 1.0}
    description: ClassVar[str] = "CXCR6-engineered CAR-T product: homing up"
    states: ClassVar[tuple[State, ...]] = ()
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter(
            "cxr6_homing",
            2.0,
            "-",
            "fold-change of extravasation and infiltration",
            "assumption: " + _LESCH + " report improved CAR-T accumulation in pancreatic tumours; "
            "fold-change not extracted",
        ),
    )

    def effects(self, t, y, p):
        return {"homing": jnp.ones(()) * p["cxr6_homing"]}
