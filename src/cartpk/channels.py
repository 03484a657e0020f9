"""Effect channels: the only way a therapy acts on a core model.

A therapy computes channel values from its own states; the core model reads channels and never
names a therapy. Multiplicative channels are neutral at 1 and combine by product; additive channels
are rates (1/d), neutral at 0, and combine by sum.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import jax.numpy as jnp

#: channel -> (kind, meaning). Multiplicative channels scale a quantity of the core model.
CHANNELS: dict[str, tuple[str, str]] = {
    "vascular_function": ("multiplicative", "target of tumour vascular function (perfusion)"),
    "ecm_density": ("multiplicative", "target of extracellular-matrix density"),
    "chemokine": ("multiplicative", "target of intratumoural chemokine level"),
    "homing": ("multiplicative", "CAR-T extravasation and stroma-to-tumour infiltration rates"),
    "expansion_boost": ("multiplicative", "antigen-driven and homeostatic CAR-T proliferation"),
    "persistence": ("multiplicative", "divides CAR-T effector and memory death rates"),
    "suppression": ("multiplicative", "target of tumour immunosuppression"),
    "exhaustion": ("multiplicative", "CAR-T exhaustion rate"),
    "tumour_kill": ("additive", "extra tumour-cell death rate (1/d)"),
    "cart_kill": ("additive", "extra CAR-T death rate (1/d), e.g. radiation after infusion"),
}


def neutral_effects() -> dict:
    """Every channel at its neutral value (no therapy)."""
    return {
        name: jnp.asarray(1.0 if kind == "multiplicative" else 0.0)
        for name, (kind, _) in CHANNELS.items()
    }


def combine_effects(contributions: Iterable[Mapping]) -> dict:
    """Combine the channel dicts of several therapies (product or sum per channel kind)."""
    total = neutral_effects()
    for contribution in contributions:
        for name, value in contribution.items():
            if name not in CHANNELS:
                raise KeyError(f"unknown effect channel {name!r}; known: {', '.join(CHANNELS)}")
            if CHANNELS[name][0] == "multiplicative":
                total[name] = total[name] * value
            else:
                total[name] = total[name] + value
    return total
