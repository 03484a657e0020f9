"""External-beam radiotherapy as fractions (Gy) into a fast-decaying ``rt_dose`` state.

A fraction of ``d`` Gy is a bolus into ``R = rt_dose``, delivered at rate ``k_del R``
(``k_del`` large: delivery within about an hour). With

    tumour_kill = k_del R (alpha + 2 beta R)          (1/d)

the log-kill over one fraction is ``alpha d + beta d^2`` (linear-quadratic), because
``int k_del R dt = d`` and ``int 2 k_del R^2 dt = d^2``. Radiation also

- kills CAR-T already in the field (stroma and tumour): ``cart_kill = k_del R alpha_c``, so
  irradiating after infusion costs CAR-T, irradiating before does not;
- triggers an inflammatory pulse ``I``: ``dI/dt = g k_del R - k_inf I``, raising
  ``chemokine = 1 + I`` and ``vascular_function = exp(v I)`` (``v > 0``: low-dose normalization,
  ``v < 0``: vascular damage at high doses).
"""

from __future__ import annotations

from typing import ClassVar, final

import jax.numpy as jnp

from ..parameters import Parameter, State
from ._common import ATOL
from .base import AbstractTherapy, Dosing

_ADHIKARLA = "Adhikarla 2021, doi:10.3390/cancers13205171"
_SINEL = "Sinelschikov (submitted 2026; models.md section 5.5)"


@final
class Radiotherapy(AbstractTherapy):
    """Fractionated radiotherapy on ``tumour_kill``, ``cart_kill``, ``chemokine`` and
    ``vascular_function``. Dose in Gy per fraction into ``rt_dose``."""

    name: ClassVar[str] = "radiotherapy"
    dosing: ClassVar[Dosing | None] = Dosing("rt_dose", "Gy", 2.0, -10.0, 1.0, 5)
    description: ClassVar[str] = (
        "fractionated RT: LQ tumour kill, CAR-T kill in the field, inflammatory chemokine pulse"
    )
    states: ClassVar[tuple[State, ...]] = (
        State(
            "rt_dose", "radiotherapy", "Gy", "dose of the current fraction not yet delivered", ATOL
        ),
        State("rt_inflammation", "radiotherapy", "-", "radiation-induced inflammation", ATOL),
    )
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter(
            "rt_k_delivery",
            24.0,
            "1/d",
            "delivery rate of a fraction (about 1 h)",
            "assumption: numerical stand-in for an instantaneous fraction",
        ),
        Parameter(
            "rt_alpha",
            0.15,
            "1/Gy",
            "linear LQ coefficient of tumour cells",
            "assumption: alpha/beta = 10 Gy (standard for tumours); alpha at the low end of "
            "the 0.1-0.5 1/Gy range (" + _ADHIKARLA + " start alpha_T = 1.5 1/Gy is for "
            "radionuclide activity, not Gy)",
        ),
        Parameter(
            "rt_beta",
            0.015,
            "1/Gy^2",
            "quadratic LQ coefficient of tumour cells",
            "assumption: alpha/beta = 10 Gy",
        ),
        Parameter(
            "rt_alpha_cart",
            0.18,
            "1/Gy",
            "log-kill of CAR-T in the field per Gy",
            "1.2 x rt_alpha: CAR-T more radiosensitive than tumour (" + _ADHIKARLA + "); "
            "CAR-T survival exp(-alpha_T D) in " + _SINEL,
        ),
        Parameter(
            "rt_inflammation_per_gy",
            0.25,
            "1/Gy",
            "inflammation raised per Gy",
            "assumption: an 8 Gy dose roughly triples intratumoural chemokine (qualitative, "
            "DAMP/CXCL10 release after RT)",
        ),
        Parameter(
            "rt_k_inflammation",
            0.2,
            "1/d",
            "decay of inflammation",
            "assumption: pulse lasting about a week",
        ),
        Parameter(
            "rt_vascular",
            0.1,
            "-",
            "log change of vascular function per unit inflammation",
            "assumption: low-dose RT normalizes vessels (Klug 2013, doi:10.1016/j.ccr.2013.09.014);"
            " use negative values for high-dose vascular damage",
            lower=-10.0,
            upper=10.0,
            transform="identity",
        ),
    )

    def rates(self, t, y, p):
        delivered = p["rt_k_delivery"] * y["rt_dose"]
        return {
            "rt_dose": -delivered,
            "rt_inflammation": p["rt_inflammation_per_gy"] * delivered
            - p["rt_k_inflammation"] * y["rt_inflammation"],
        }

    def effects(self, t, y, p):
        r = jnp.maximum(y["rt_dose"], 0.0)
        delivered = p["rt_k_delivery"] * r
        inflammation = jnp.maximum(y["rt_inflammation"], 0.0)
        return {
            "tumour_kill": delivered * (p["rt_alpha"] + 2.0 * p["rt_beta"] * r),
            "cart_kill": delivered * p["rt_alpha_cart"],
            "chemokine": 1.0 + inflammation,
            "vascular_function": jnp.exp(p["rt_vascular"] * inflammation),
        }
