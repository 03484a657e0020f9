"""CXCL10-secreting CAR-T: ``chemokine = c`` (the CXCR3 ligand raises the intratumoural chemokine
level).

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


@final
class CXCL10CarT(AbstractTherapy):
    """CXCL10-secreting CAR-T: raises the intratumoural chemokine level."""

    name: ClassVar[str] = "cxcl10"
    product_neutral: ClassVar[Mapping[str, float]] = {"cx10_chemokine": 1.0}
    description: ClassVar[str] = "CXCL10-armoured CAR-T product: intratumoural chemokine up"
    states: ClassVar[tuple[State, ...]] = ()
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter(
            "cx10_chemokine",
            2.0,
            "-",
            "fold-change of the intratumoural chemokine target",
            "assumption: no published CAR-T fold-change retrieved; exposed for sensitivity",
        ),
    )

    def effects(self, t, y, p):
        return {"chemokine": jnp.ones(()) * p["cx10_chemokine"]}
