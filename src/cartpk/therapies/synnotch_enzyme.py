"""SynNotch CAR-T product secreting a matrix-degrading enzyme: a product property that sets a
constant ``ecm_density`` target multiplier (no drug PK, no dose; ``sne_ecm = 1`` switches it
off)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, final

import jax.numpy as jnp

from ..parameters import Parameter, State
from ._common import _NO_NUMBERS
from .base import AbstractTherapy


@final
class SynNotchEnzyme(AbstractTherapy):
    """SynNotch CAR-T secreting a matrix-degrading enzyme: constant product property on
    ``ecm_density`` (no drug PK)."""

    name: ClassVar[str] = "synnotch_enzyme"
    product_neutral: ClassVar[Mapping[str, float]] = {"sne_ecm": 1.0}
    description: ClassVar[str] = "synNotch CAR-T product secreting a matrix-degrading enzyme"
    states: ClassVar[tuple[State, ...]] = ()
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter(
            "sne_ecm",
            0.7,
            "-",
            "ECM density target multiplier",
            _NO_NUMBERS,
            upper=1.0,
            transform="logit",
        ),
    )

    def effects(self, t, y, p):
        return {"ecm_density": jnp.ones(()) * p["sne_ecm"]}
