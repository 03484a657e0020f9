"""IL-7 and CCL19 secreting CAR-T (7x19): ``homing = h``, ``expansion_boost = e``,
``persistence = s`` (IL-7 supports proliferation and survival; CCL19 recruits T cells and DCs).

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

_ADACHI = "Adachi 2018, doi:10.1038/nbt.4086"
_GOTO = "Goto 2021, doi:10.1007/s00262-021-02853-3"


@final
class CCL19IL7CarT(AbstractTherapy):
    """IL-7 and CCL19 secreting CAR-T (7x19): more infiltration, expansion and persistence."""

    name: ClassVar[str] = "ccl19_il7"
    product_neutral: ClassVar[Mapping[str, float]] = {
        "c19_homing": 1.0,
        "c19_expansion": 1.0,
        "c19_persistence": 1.0,
    }
    description: ClassVar[str] = "7x19 CAR-T product: homing, expansion and persistence up"
    states: ClassVar[tuple[State, ...]] = ()
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter(
            "c19_homing",
            2.0,
            "-",
            "fold-change of extravasation and infiltration",
            "assumption: " + _ADACHI + " and " + _GOTO + " report more CAR-T and host T cells "
            "in tumours (several-fold in histology; exact fold not extracted)",
        ),
        Parameter(
            "c19_expansion",
            1.2,
            "-",
            "fold-change of CAR-T proliferation",
            "assumption: IL-7 increased 7x19 CAR-T proliferation in vitro and in vivo ("
            + _ADACHI
            + ", qualitative)",
        ),
        Parameter(
            "c19_persistence",
            1.5,
            "-",
            "divides CAR-T death rates (survival)",
            "assumption: IL-7 survival signalling; 7x19 CAR-T persisted and formed memory ("
            + _ADACHI
            + ", qualitative)",
        ),
    )

    def effects(self, t, y, p):
        one = jnp.ones(())
        return {
            "homing": one * p["c19_homing"],
            "expansion_boost": one * p["c19_expansion"],
            "persistence": one * p["c19_persistence"],
        }
