"""Armoured CAR-T products: chemokine/cytokine engineering as constant product properties.

These act from the infusion on and need no drug PK: the product's own cells carry the property,
so the channel is constant (multiplicative fold-changes, neutral at 1).

- :class:`CCL19IL7CarT` (7x19 CAR-T): ``homing = h``, ``expansion_boost = e``,
  ``persistence = s`` (IL-7 supports proliferation and survival; CCL19 recruits T cells and DCs).
- :class:`CXCL10CarT`: ``chemokine = c`` (CXCR3 ligand raises the intratumoural chemokine level).
- :class:`CXCR6CarT`: ``homing = h`` (receptor matching tumour CXCL16).

Magnitudes are exposed as parameters; where the source reports only qualitative or relative
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
_LESCH = "Lesch 2021, doi:10.1038/s41551-021-00737-6"


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
