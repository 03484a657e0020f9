"""Shared helpers of the therapy modules (exposure-response shapes and a generic mAb PK)."""

from __future__ import annotations

import jax.numpy as jnp

from ..parameters import Parameter, State

#: Absolute tolerance for drug amounts (mg or µg) and relative therapy states.
ATOL = 1e-9


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


GENERIC_MAB = (
    "assumption: typical IgG1 monoclonal antibody (CL about 0.2 L/d, V about 5 L, "
    "t1/2 about 17 d), "
    "as for bevacizumab (Lu 2008, doi:10.1007/s00280-007-0664-8) and pembrolizumab "
    "(Ahamadi 2017, doi:10.1002/psp4.12139); no agent-specific population PK retrieved"
)
