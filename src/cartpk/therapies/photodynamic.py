"""Photodynamic or photothermal therapy (PDT/PTT): local light sessions that kill tumour cells in
the illuminated volume and release antigen and danger signals (immunogenic cell death).

A session is a bolus of relative light dose ``d`` (1 = one standard session: photosensitizer or
photothermal agent at its drug-light interval plus the standard fluence) into ``S = pdt_session``,
delivered at rate ``k_del S`` (``k_del`` large: the session and the cell death it triggers take a
few hours). The agent's systemic PK is not modelled: it acts only where and when light falls.

    dS/dt = -k_del S
    dA/dt =  k_del S - k_ag A                    (A = pdt_antigen: released antigen / DAMPs)
    tumour_kill       = k_del S (-ln(1 - f))     (1/d)
    cart_kill         = k_del S (-ln(1 - f_c))   (1/d; CAR-T in stroma and tumour)
    chemokine         = 1 + c A                  (recruitment)
    expansion_boost   = 1 + a A                  (activation by released antigen and DAMPs)
    vascular_function = exp(v A)                 (v > 0: mild-heat perfusion rise; v < 0: shutdown)

Because ``int k_del S dt = d`` over one session, a session of ``d`` standard doses leaves
``(1 - f)^d`` of the tumour cells (and ``(1 - f_c)^d`` of the CAR-T in the field) alive, and adds
``d`` to the antigen signal. Treating after the infusion therefore costs CAR-T in the field;
treating before does not, and leaves the antigen pulse for the arriving cells.
"""

from __future__ import annotations

from typing import ClassVar, final

import jax.numpy as jnp

from ..parameters import Parameter, State
from ._common import _REL, ATOL
from .base import AbstractTherapy, Dosing

_AGOSTINIS = "Agostinis 2011, doi:10.3322/caac.20114"
_CHEN = (
    "Chen 2019, Adv Mater, photothermal therapy promotes tumour infiltration and antitumour "
    "activity of CAR-T cells (doi:10.1002/adma.201900192 not verified; the finding was checked "
    "against a press report of the study: mild heating to about 40 C dilated tumour vessels and, "
    "with CAR-T, suppressed melanoma growth in mice)"
)
_GAO = "Gao 2020, doi:10.1038/s41401-020-0400-z (seed review ref. 43)"


@final
class PhotodynamicTherapy(AbstractTherapy):
    """PDT/PTT light sessions on ``tumour_kill``, ``cart_kill``, ``chemokine``,
    ``expansion_boost`` and ``vascular_function``. Dose in standard sessions into
    ``pdt_session``."""

    name: ClassVar[str] = "photodynamic"
    dosing: ClassVar[Dosing | None] = Dosing("pdt_session", "dose", 1.0, -1.0, 7.0, 1)
    description: ClassVar[str] = (
        "photodynamic/photothermal sessions: local tumour kill and antigen release (ICD)"
    )
    states: ClassVar[tuple[State, ...]] = (
        State(
            "pdt_session",
            "photodynamic",
            _REL,
            "light dose of the current session not yet delivered (1 = one standard session)",
            ATOL,
        ),
        State(
            "pdt_antigen",
            "photodynamic",
            _REL,
            "released tumour antigen and danger signals (1 = one standard session's release)",
            ATOL,
        ),
    )
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter(
            "pdt_k_delivery",
            12.0,
            "1/d",
            "rate at which a session's light dose acts (about 1.4 h half-time)",
            "assumption: light is given over 10-60 min and ROS or heat kill within hours "
            "(apoptosis, necrosis and ischaemia after vascular damage; "
            + _AGOSTINIS
            + ", qualitative); a numerical stand-in for a short session",
        ),
        Parameter(
            "pdt_kill_fraction",
            0.3,
            "-",
            "fraction of all tumour cells killed by one standard session",
            "assumption: light reaches only a few mm to about 1 cm into tissue ("
            + _AGOSTINIS
            + "), so one session treats only the illuminated part of a tumour of about 50 g",
            upper=1.0,
            transform="logit",
        ),
        Parameter(
            "pdt_cart_fraction",
            0.3,
            "-",
            "fraction of CAR-T in stroma and tumour killed by one standard session",
            "assumption: ROS and heat are not cell-type selective, so T cells in the illuminated "
            "volume die like tumour cells; the standard session precedes the infusion",
            upper=1.0,
            transform="logit",
        ),
        Parameter(
            "pdt_k_antigen",
            0.2,
            "1/d",
            "decay of the released antigen and danger-signal pulse",
            "assumption: immunogenic cell death and the acute inflammation after PDT/PTT last "
            "about a week (" + _AGOSTINIS + "; " + _GAO + ", qualitative)",
        ),
        Parameter(
            "pdt_chemokine",
            2.0,
            "-",
            "relative rise of intratumoural chemokine per unit released antigen",
            "assumption: photothermal therapy raised CAR-T infiltration of tumours in mice ("
            + _CHEN
            + "); fold-change not extracted; one session triples the chemokine target at its "
            "peak, as assumed for an 8 Gy radiotherapy fraction",
        ),
        Parameter(
            "pdt_activation",
            0.05,
            "-",
            "relative rise of CAR-T proliferation per unit released antigen",
            "assumption: antigen and DAMPs released by immunogenic cell death activate immune "
            "cells (" + _GAO + ", qualitative); no CAR-T magnitude published; kept small "
            "because expansion_boost also scales the systemic homeostatic expansion",
        ),
        Parameter(
            "pdt_vascular",
            0.3,
            "-",
            "log change of vascular function per unit released antigen (transient)",
            "assumption: mild photothermal heating dilates tumour vessels and raises perfusion ("
            + _CHEN
            + "); use negative values for vascular-targeted PDT, whose vascular shutdown is a "
            "main mechanism (" + _AGOSTINIS + ")",
            lower=-10.0,
            upper=10.0,
            transform="identity",
        ),
    )

    def rates(self, t, y, p):
        delivered = p["pdt_k_delivery"] * y["pdt_session"]
        return {
            "pdt_session": -delivered,
            "pdt_antigen": delivered - p["pdt_k_antigen"] * y["pdt_antigen"],
        }

    def effects(self, t, y, p):
        delivered = p["pdt_k_delivery"] * jnp.maximum(y["pdt_session"], 0.0)
        antigen = jnp.maximum(y["pdt_antigen"], 0.0)
        return {
            "tumour_kill": -delivered * jnp.log1p(-p["pdt_kill_fraction"]),
            "cart_kill": -delivered * jnp.log1p(-p["pdt_cart_fraction"]),
            "chemokine": 1.0 + p["pdt_chemokine"] * antigen,
            "expansion_boost": 1.0 + p["pdt_activation"] * antigen,
            "vascular_function": jnp.exp(p["pdt_vascular"] * antigen),
        }
