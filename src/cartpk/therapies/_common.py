"""Shared helpers of the therapy modules: exposure-response shapes, a generic mAb PK, and the
relative-dose exposure state used where no population PK was retrieved.

Drugs without a retrieved population PK use a first-order *exposure* state in relative dose units
(``_REL``: 1 = one standard dose) that decays at the drug's elimination rate; effects saturate in
that exposure. Where the literature gives no numbers the default is an assumption exposed as a
parameter (``_NO_NUMBERS``); say so in any result that depends on it.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from ..parameters import Parameter, State

#: Absolute tolerance for drug amounts (mg or µg) and relative therapy states.
ATOL = 1e-9

_NO_NUMBERS = "assumption: no published exposure-response for CAR-T; exposed for sensitivity"
_REL = "dose"  # relative dose units: 1 = one standard dose


def saturating(c, c50, hill=1.0):
    """Fractional effect ``c^h / (c50^h + c^h)`` in [0, 1] (``c`` clipped at 0)."""
    c = jnp.maximum(c, 0.0)
    ch = c**hill
    return ch / (c50**hill + ch)


def one_compartment(prefix: str, compartment: str, drug: str, unit: str = "mg") -> tuple[State]:
    """The single central state ``{prefix}_central`` of a one-compartment drug."""
    return (
        State(f"{prefix}_central", compartment, unit, f"{drug} in the central compartment", ATOL),
    )


def mab_parameters(prefix: str, drug: str, clearance: float, volume: float, source: str):
    """Clearance and volume of a one-compartment monoclonal antibody."""
    return (
        Parameter(f"{prefix}_clearance", clearance, "L/d", f"{drug} clearance", source),
        Parameter(f"{prefix}_volume", volume, "L", f"{drug} volume of distribution", source),
    )


def _exposure_state(prefix: str, compartment: str, what: str) -> State:
    """The relative exposure state ``{prefix}_exposure`` (1 = one standard dose)."""
    return State(f"{prefix}_exposure", compartment, _REL, f"{what} exposure (1 = one dose)", ATOL)


def _elimination(prefix: str, half_life_d: float, source: str) -> Parameter:
    """First-order elimination rate ``{prefix}_k_el`` (1/d) of an exposure with half-life
    ``half_life_d`` (d)."""
    return Parameter(
        f"{prefix}_k_el",
        math.log(2) / half_life_d,
        "1/d",
        f"elimination rate of the exposure (t1/2 = {half_life_d:g} d)",
        source,
    )


GENERIC_MAB = (
    "assumption: typical IgG1 monoclonal antibody (CL about 0.2 L/d, V about 5 L, "
    "t1/2 about 17 d), "
    "as for bevacizumab (Lu 2008, doi:10.1007/s00280-007-0664-8) and pembrolizumab "
    "(Ahamadi 2017, doi:10.1002/psp4.12139); no agent-specific population PK retrieved"
)
