"""Mechanistic blood–stroma–tumour model of CAR-T trafficking, expansion, memory and exhaustion.

Whole-body cell numbers (cells) in five places: blood, peripheral lymphoid tissue (fast exchange
with blood; most CAR-T live there), perivascular tumour stroma, tumour nests (engaged and exhausted
CAR-T, antigen-positive and antigen-negative tumour cells), plus a microenvironment (vascular
function, ECM density, chemokine, suppression; relative units, 1 = reference). The homeostatic
niche opened by lymphodepletion closes exponentially from the infusion day, ``t = 0``:
``L(t) = niche0 exp(-k_niche max(t, 0))``, so it does not depend on when integration starts.
Therapies act only through effect channels (:mod:`cartpk.channels`). Full equations, units and
sources: ``docs/model.md``.

Two modes share every CAR-T product parameter:

- ``"blood"``: the tumour (leukaemia/lymphoma) sits in the systemic lymphoid compartment, where
  blood and peripheral CAR-T meet antigen directly; no stromal barriers.
- ``"solid"``: the tumour sits in nests behind vessels and stroma; CAR-T must extravasate (scaled
  by vascular function and homing), cross the stroma (slowed by ECM, helped by chemokine) and meet
  antigen under suppression, which slows proliferation and killing and drives exhaustion.
"""

from __future__ import annotations

from dataclasses import replace

import equinox as eqx
import jax.numpy as jnp

from ..errors import CartpkError
from ..parameters import Parameter, State
from ..units import DNA_UG_PER_CELL
from .base import AbstractModel

MODES = ("blood", "solid")

_CELL = 1e-7  # absolute tolerance for cell counts (cells); measured in docs/numerics.md
_REL = 1e-9  # absolute tolerance for relative microenvironment levels (-)

_STEIN = "Stein 2019, doi:10.1002/psp4.12388"
_KIMMEL = "Kimmel 2021, doi:10.1098/rspb.2021.0229"
_HARD = "Hardiansyah & Ng 2019, doi:10.1111/cts.12636"
_CAL = "calibrated in cartpk to the tisagenlecleucel/mesothelin targets (docs/model.md)"
_ASSUME = "assumption (docs/model.md): no published value"

_STATES = (
    State("blood_effector", "blood", "cells", "effector CAR-T in blood", _CELL),
    State("blood_memory", "blood", "cells", "memory CAR-T in blood", _CELL),
    State("peripheral_effector", "peripheral", "cells", "effector CAR-T in lymphoid tissue", _CELL),
    State("peripheral_memory", "peripheral", "cells", "memory CAR-T in lymphoid tissue", _CELL),
    State("stroma_effector", "stroma", "cells", "CAR-T extravasated into tumour stroma", _CELL),
    State("tumour_effector", "tumour", "cells", "CAR-T engaged in tumour nests", _CELL),
    State("tumour_exhausted", "tumour", "cells", "exhausted CAR-T in tumour nests", _CELL),
    State("tumour_cells", "tumour", "cells", "antigen-positive tumour cells", _CELL),
    State("tumour_cells_negative", "tumour", "cells", "antigen-negative tumour cells", _CELL),
    State("vascular_function", "microenvironment", "-", "functional vessel fraction", _REL),
    State("ecm_density", "microenvironment", "-", "matrix density (1 = reference)", _REL),
    State("chemokine", "microenvironment", "-", "CAR-T-attracting chemokine", _REL),
    State("suppression", "microenvironment", "-", "hypoxia/adenosine/suppressive cells", _REL),
)

_P = Parameter
_PARAMETERS = (
    # CAR-T product (shared by both modes)
    _P(
        "rho",
        0.3,
        "1/d",
        "maximal antigen-driven proliferation rate (on top of homeostatic)",
        _CAL,
        upper=10.0,
        transform="logit",
    ),
    _P("k_antigen", 1e9, "cells", "antigen amount giving half-maximal stimulation", _CAL),
    _P("kappa", 1.0, "-", "effectors per target that halve stimulation (ratio dependence)", _CAL),
    _P(
        "rho_homeostatic",
        1.85,
        "1/d",
        "homeostatic proliferation at a fully open niche",
        _KIMMEL + ": initial CAR-T growth r_C ln(K_C/T0) = 0.55 x 3.1 = 1.7 1/d; " + _CAL,
    ),
    _P(
        "k_niche",
        0.3,
        "1/d",
        "niche closure (lymphocyte reconstitution) rate",
        _CAL + "; same order as " + _KIMMEL + " r_N = 0.17 1/d",
    ),
    _P(
        "delta_effector",
        0.2,
        "1/d",
        "effector death (contraction) rate",
        _CAL + " to a net contraction t1/2 of 4-5 d, " + _STEIN + " (alpha = 0.16 1/d)",
    ),
    _P("delta_memory", 0.0032, "1/d", "memory death rate", _STEIN + " (beta = 0.0032 1/d)"),
    _P(
        "k_memory",
        0.0015,
        "1/d",
        "effector -> memory differentiation rate",
        _STEIN + " (k = fb(alpha-beta) = 0.0012 1/d), " + _CAL,
    ),
    _P("k_recall", 0.1, "1/d", "memory -> effector recall at full antigen stimulation", _ASSUME),
    _P(
        "k_blood_out",
        20.0,
        "1/d",
        "blood -> peripheral lymphoid tissue",
        _HARD + " (k_in 76.8 1/d); " + _KIMMEL + " (about 1-2 % of lymphocytes in blood)",
    ),
    _P(
        "k_blood_in",
        0.4,
        "1/d",
        "peripheral lymphoid tissue -> blood",
        "set so that 2 % of systemic CAR-T are in blood at equilibrium; " + _HARD,
    ),
    _P("k_kill", 1.0, "1/d", "maximal fractional tumour kill rate", _CAL),
    _P("e50", 1.5, "-", "effector:target ratio for half-maximal killing", _CAL),
    _P("delta_exhausted", 0.2, "1/d", "death rate of exhausted CAR-T", _ASSUME),
    # trafficking and barriers (solid mode)
    _P(
        "k_extravasation",
        0.5,
        "1/d",
        "blood -> stroma at full vascular function and a large tumour",
        _CAL + "; perfusion-limited delivery, Brown 2021 doi:10.1098/rsif.2020.1013",
    ),
    _P("tumour_perfusion50", 1e10, "cells", "tumour size at half-maximal perfusion share", _ASSUME),
    _P(
        "antigen_access",
        0.05,
        "-",
        "share of solid-tumour cells within reach of infiltrated CAR-T (solid mode)",
        _CAL,
        upper=1.0,
        transform="logit",
    ),
    _P(
        "k_infiltration",
        0.5,
        "1/d",
        "stroma -> tumour nests at reference ECM and chemokine",
        _ASSUME,
    ),
    _P("ecm50", 0.5, "-", "ECM density that halves infiltration", _ASSUME),
    _P("k_stroma_egress", 0.2, "1/d", "stroma -> blood (lymphatic return)", _ASSUME),
    _P("k_tumour_egress", 0.05, "1/d", "tumour nests -> blood", _CAL),
    _P("k_exhaustion", 0.15, "1/d", "exhaustion rate at full antigen and no suppression", _CAL),
    _P("suppression_exhaustion", 1.0, "-", "extra exhaustion per unit suppression", _ASSUME),
    _P(
        "suppression_proliferation",
        1.0,
        "-",
        "proliferation divided by 1 + this x suppression",
        _ASSUME,
    ),
    _P("suppression_kill", 1.0, "-", "killing divided by 1 + this x suppression", _ASSUME),
    # tumour
    _P(
        "tumour_growth",
        0.02,
        "1/d",
        "tumour net growth rate at low burden",
        "Leon-Triana 2021 doi:10.3390/cancers13040703 (rho_T = 0.02 1/d)",
    ),
    _P("tumour_capacity", 1e12, "cells", "tumour carrying capacity (logistic)", _ASSUME),
    _P(
        "tumour_cells0",
        1e11,
        "cells",
        "tumour burden at infusion (1e9 cells = 1 g)",
        _ASSUME + "; about 100 g",
    ),
    _P(
        "antigen_negative_fraction",
        0.0,
        "-",
        "antigen-negative share of the tumour at day 0",
        _ASSUME,
        upper=1.0,
        transform="logit",
    ),
    # microenvironment (relative units; 1 = reference)
    _P(
        "vascular_function0",
        0.3,
        "-",
        "baseline functional vessel fraction of the tumour",
        _ASSUME + "; abnormal tumour vasculature (seed reviews)",
        upper=1.0,
        transform="logit",
    ),
    _P("ecm_density0", 1.0, "-", "baseline ECM density", "reference level by definition"),
    _P("chemokine0", 1.0, "-", "baseline chemokine level", "reference level by definition"),
    _P("suppression0", 1.0, "-", "baseline suppression", "reference level by definition"),
    _P("k_vascular", 0.2, "1/d", "relaxation rate of vascular function", _ASSUME),
    _P("k_ecm", 0.1, "1/d", "relaxation (remodelling) rate of ECM", _ASSUME),
    _P("k_chemokine", 1.0, "1/d", "relaxation rate of chemokine", _ASSUME),
    _P("k_suppression", 0.2, "1/d", "relaxation rate of suppression", _ASSUME),
    _P(
        "niche0",
        1.0,
        "-",
        "homeostatic niche open at infusion (day 0) after lymphodepletion "
        "(1 = standard Flu/Cy, 0 = none)",
        _ASSUME,
        upper=1.0,
        transform="logit",
    ),
    # observation
    _P("blood_volume", 5e6, "uL", "blood volume", _KIMMEL + " (5 L)"),
    _P(
        "wbc",
        1000.0,
        "cells/uL",
        "endogenous nucleated blood cells after lymphodepletion",
        _ASSUME + "; models.md section 6 worked example uses 1000-3000/uL",
    ),
    _P(
        "vcn",
        1.0,
        "copies/cell",
        "transgene copies per CAR+ cell",
        "product-specific, usually 1-3 (models.md section 6)",
    ),
)

_MODE_DEFAULTS = {
    "blood": {},
    "solid": {"tumour_cells0": 5e10},  # 50 g of solid tumour
}


def _niche(t, p):
    return p["niche0"] * jnp.exp(-p["k_niche"] * jnp.maximum(t, 0.0))


def _positive(x):
    return jnp.maximum(x, 0.0)


class BloodStromaTumour(AbstractModel):
    """The mechanistic CAR-T model. ``BloodStromaTumour("solid")`` or ``("blood")``."""

    mode: str = eqx.field(static=True, default="solid")

    def __check_init__(self):
        if self.mode not in MODES:
            raise CartpkError(f"mode must be one of {MODES}, got {self.mode!r}")

    states = _STATES

    @property
    def parameters(self):
        overrides = _MODE_DEFAULTS[self.mode]
        return tuple(replace(p, default=overrides.get(p.name, p.default)) for p in _PARAMETERS)

    def initial_state(self, p):
        y = {s.name: jnp.zeros(()) for s in self.states}
        y["tumour_cells"] = p["tumour_cells0"] * (1 - p["antigen_negative_fraction"])
        y["tumour_cells_negative"] = p["tumour_cells0"] * p["antigen_negative_fraction"]
        y["vascular_function"] = p["vascular_function0"]
        y["ecm_density"] = p["ecm_density0"]
        y["chemokine"] = p["chemokine0"]
        y["suppression"] = p["suppression0"]
        return y

    def rates(self, t, y, p, effects):
        solid = self.mode == "solid"
        eb, mb = y["blood_effector"], y["blood_memory"]
        ep, mp = y["peripheral_effector"], y["peripheral_memory"]
        es, et, xt = y["stroma_effector"], y["tumour_effector"], y["tumour_exhausted"]
        tp, tn = y["tumour_cells"], y["tumour_cells_negative"]
        vasc, ecm, chem, supp = (
            y["vascular_function"],
            y["ecm_density"],
            y["chemokine"],
            y["suppression"],
        )
        boost, persist = effects["expansion_boost"], effects["persistence"]
        homing = effects["homing"]
        delta_e = p["delta_effector"] / persist
        delta_m = p["delta_memory"] / persist
        homeostatic = p["rho_homeostatic"] * _niche(t, p) * boost
        s_local = supp if solid else jnp.zeros(())

        # antigen stimulation, ratio-dependent: a = A / (A + K + kappa E_engaged), where A is the
        # antigen within reach of the engaged effectors (a fraction of a solid tumour's cells)
        engaged = et if solid else eb + ep
        reachable = p["antigen_access"] * tp if solid else tp
        stim = reachable / (reachable + p["k_antigen"] + p["kappa"] * engaged)
        stim_sys = jnp.zeros(()) if solid else stim
        stim_tum = stim if solid else jnp.zeros(())
        prolif = p["rho"] * boost / (1 + p["suppression_proliferation"] * s_local)

        # killing, saturating in the effector:target ratio
        ratio = engaged / (tp + 1.0)
        kill = p["k_kill"] * tp * ratio / (p["e50"] + ratio) / (1 + p["suppression_kill"] * s_local)

        # trafficking (solid mode only; zero tumour-nest antigen in blood mode)
        tumour_total = tp + tn
        perfusion = tumour_total / (tumour_total + p["tumour_perfusion50"]) if solid else 0.0
        extravasation = p["k_extravasation"] * vasc * homing * perfusion * eb
        infiltration = p["k_infiltration"] * homing * chem / (1 + ecm / p["ecm50"]) * es
        stroma_egress = p["k_stroma_egress"] * es
        tumour_egress = p["k_tumour_egress"] * et
        exhaustion = (
            p["k_exhaustion"]
            * stim_tum
            * (1 + p["suppression_exhaustion"] * s_local)
            * effects["exhaustion"]
            * et
        )
        cart_kill = effects["cart_kill"]

        growth = p["tumour_growth"] * (1 - tumour_total / p["tumour_capacity"])
        tumour_kill = effects["tumour_kill"]

        # Growth acts on the positive part of a population: zero cells (before the infusion) is
        # then a stable state, not an unstable one that amplifies solver round-off
        # exponentially (docs/numerics.md).
        def systemic_effector(e, m):
            growth = (prolif * stim_sys + homeostatic) * _positive(e)
            return growth - (delta_e + p["k_memory"]) * e + p["k_recall"] * stim_sys * m

        def systemic_memory(e, m):
            growth = homeostatic * _positive(m)
            return p["k_memory"] * e + growth - (delta_m + p["k_recall"] * stim_sys) * m

        return {
            "blood_effector": systemic_effector(eb, mb)
            - p["k_blood_out"] * eb
            + p["k_blood_in"] * ep
            - extravasation
            + stroma_egress
            + tumour_egress,
            "blood_memory": systemic_memory(eb, mb) - p["k_blood_out"] * mb + p["k_blood_in"] * mp,
            "peripheral_effector": systemic_effector(ep, mp)
            + p["k_blood_out"] * eb
            - p["k_blood_in"] * ep,
            "peripheral_memory": systemic_memory(ep, mp)
            + p["k_blood_out"] * mb
            - p["k_blood_in"] * mp,
            "stroma_effector": extravasation
            - infiltration
            - stroma_egress
            - (delta_e + cart_kill) * es,
            "tumour_effector": infiltration
            - tumour_egress
            - exhaustion
            + prolif * stim_tum * _positive(et)
            - (delta_e + cart_kill) * et,
            "tumour_exhausted": exhaustion - (p["delta_exhausted"] + cart_kill) * xt,
            "tumour_cells": (growth - tumour_kill) * tp - kill,
            "tumour_cells_negative": (growth - tumour_kill) * tn,
            "vascular_function": p["k_vascular"]
            * (jnp.clip(p["vascular_function0"] * effects["vascular_function"], 0.0, 1.0) - vasc),
            "ecm_density": p["k_ecm"] * (p["ecm_density0"] * effects["ecm_density"] - ecm),
            "chemokine": p["k_chemokine"] * (p["chemokine0"] * effects["chemokine"] - chem),
            "suppression": p["k_suppression"] * (p["suppression0"] * effects["suppression"] - supp),
        }

    def observables(self, t, y, p):
        blood = y["blood_effector"] + y["blood_memory"]
        per_ul = blood / p["blood_volume"]
        nucleated = p["wbc"] + per_ul
        tumour_cart = y["tumour_effector"] + y["tumour_exhausted"]
        burden = y["tumour_cells"] + y["tumour_cells_negative"]
        systemic = blood + y["peripheral_effector"] + y["peripheral_memory"]
        return {
            "blood_cells_per_ul": per_ul,
            "blood_car_t": blood,
            "blood_copies_per_ug": per_ul * p["vcn"] / (nucleated * DNA_UG_PER_CELL),
            "tumour_car_t": tumour_cart,
            "tumour_car_t_per_g": tumour_cart / jnp.maximum(burden * 1e-9, 1e-9),
            "exhausted_fraction": y["tumour_exhausted"] / (tumour_cart + 1.0),
            "tumour_burden": burden,
            "total_car_t": systemic + y["stroma_effector"] + tumour_cart,
        }
