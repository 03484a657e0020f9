"""Smaller modules for the other strategies named in the seed review (Zhang 2025,
doi:10.3389/fimmu.2025.1672601) and in the CAR-T literature.

Each acts only through effect channels. Where the literature gives no numbers the default is an
assumption exposed as a parameter (say so in any result that depends on it). Drugs without a
retrieved population PK use a first-order *exposure* state in relative dose units (1 = one
standard dose) that decays at the drug's elimination rate; effects saturate in that exposure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar, final

import equinox as eqx
import jax.numpy as jnp

from ..channels import CHANNELS
from ..errors import CartpkError
from ..parameters import Parameter, State
from ._common import ATOL, GENERIC_MAB, mab_parameters, saturating
from .base import AbstractTherapy, Dosing

_NO_NUMBERS = "assumption: no published exposure-response for CAR-T; exposed for sensitivity"
_REL = "dose"  # relative dose units: 1 = one standard dose


def _exposure_state(prefix: str, compartment: str, what: str) -> State:
    return State(f"{prefix}_exposure", compartment, _REL, f"{what} exposure (1 = one dose)", ATOL)


def _elimination(prefix: str, half_life_d: float, source: str) -> Parameter:
    return Parameter(
        f"{prefix}_k_el",
        math.log(2) / half_life_d,
        "1/d",
        f"elimination rate of the exposure (t1/2 = {half_life_d:g} d)",
        source,
    )


@final
class PAK4Inhibition(AbstractTherapy):
    """PAK4 inhibitor (KPT-9274-like): endothelial reprogramming normalizes vessels and restores
    VCAM-1, so ``vascular_function`` and ``homing`` rise. Dose 1 per daily dose into
    ``pak4_exposure``."""

    name: ClassVar[str] = "pak4_inhibition"
    dosing: ClassVar[Dosing | None] = Dosing("pak4_exposure", "dose", 1.0, -7.0, 1.0, 14)
    description: ClassVar[str] = "PAK4 inhibitor: vascular normalization and T-cell adhesion"
    states: ClassVar[tuple[State, ...]] = (_exposure_state("pak4", "pak4_inhibition", "PAK4i"),)
    parameters: ClassVar[tuple[Parameter, ...]] = (
        _elimination("pak4", 0.5, "assumption: oral small molecule, t1/2 about 12 h"),
        Parameter("pak4_e50", 1.0, _REL, "exposure for half-maximal effect", _NO_NUMBERS),
        Parameter(
            "pak4_vascular",
            0.5,
            "-",
            "maximal relative rise of vascular function",
            "assumption: PAK4 inhibition normalized GBM vasculature and improved CAR-T "
            "efficacy (Ma 2020, doi:10.1038/s43018-020-00147-8, qualitative)",
        ),
        Parameter(
            "pak4_homing",
            0.5,
            "-",
            "maximal relative rise of homing (VCAM-1 adhesion)",
            "assumption: Ma 2020, doi:10.1038/s43018-020-00147-8, qualitative",
        ),
    )

    def rates(self, t, y, p):
        return {"pak4_exposure": -p["pak4_k_el"] * y["pak4_exposure"]}

    def effects(self, t, y, p):
        f = saturating(y["pak4_exposure"], p["pak4_e50"])
        return {
            "vascular_function": 1.0 + p["pak4_vascular"] * f,
            "homing": 1.0 + p["pak4_homing"] * f,
        }


@final
class NabPaclitaxel(AbstractTherapy):
    """Nab-paclitaxel: cytotoxic ``tumour_kill`` and stroma disruption (``ecm_density``).
    Dose in mg into ``nab_central`` (125 mg/m2, about 220 mg)."""

    name: ClassVar[str] = "nab_paclitaxel"
    dosing: ClassVar[Dosing | None] = Dosing("nab_central", "mg", 220.0, -7.0, 7.0, 3)
    description: ClassVar[str] = "nab-paclitaxel: tumour kill and stromal depletion"
    states: ClassVar[tuple[State, ...]] = (
        State("nab_central", "nab_paclitaxel", "mg", "paclitaxel in the body", ATOL),
    )
    parameters: ClassVar[tuple[Parameter, ...]] = (
        _elimination("nab", 1.0, "assumption: paclitaxel terminal t1/2 of roughly 1 d"),
        Parameter("nab_a50", 100.0, "mg", "body amount for half-maximal effect", _NO_NUMBERS),
        Parameter(
            "nab_kill",
            0.1,
            "1/d",
            "maximal extra tumour death rate",
            "assumption: modest cytotoxicity between weekly doses",
        ),
        Parameter(
            "nab_ecm",
            0.3,
            "-",
            "maximal fractional fall of ECM density",
            "assumption: stromal depletion reported with nab-paclitaxel in PDAC (qualitative)",
            upper=1.0,
            transform="logit",
        ),
    )

    def rates(self, t, y, p):
        return {"nab_central": -p["nab_k_el"] * y["nab_central"]}

    def effects(self, t, y, p):
        f = saturating(y["nab_central"], p["nab_a50"])
        return {"tumour_kill": p["nab_kill"] * f, "ecm_density": 1.0 - p["nab_ecm"] * f}


@final
class OncolyticVirus(AbstractTherapy):
    """Intratumoural oncolytic virus: local replication, ``tumour_kill`` and ``chemokine``.

    ``dV/dt = r V (1 - V/Vmax) - k_clear V``; dose (relative titre, 1 = one injection) into
    ``ov_titre``.
    """

    name: ClassVar[str] = "oncolytic_virus"
    dosing: ClassVar[Dosing | None] = Dosing("ov_titre", "dose", 1.0, -3.0)
    description: ClassVar[str] = "oncolytic virus: local lysis and inflammatory chemokine"
    states: ClassVar[tuple[State, ...]] = (
        State("ov_titre", "oncolytic_virus", _REL, "intratumoural virus (1 = one injection)", ATOL),
    )
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("ov_replication", 0.5, "1/d", "intratumoural replication rate", _NO_NUMBERS),
        Parameter("ov_capacity", 10.0, _REL, "maximal intratumoural titre", _NO_NUMBERS),
        Parameter(
            "ov_clearance",
            0.7,
            "1/d",
            "immune clearance of virus",
            "assumption: antiviral immunity clears the virus within weeks",
        ),
        Parameter("ov_v50", 1.0, _REL, "titre for half-maximal effect", _NO_NUMBERS),
        Parameter("ov_kill", 0.05, "1/d", "maximal extra tumour death rate (lysis)", _NO_NUMBERS),
        Parameter(
            "ov_chemokine",
            1.0,
            "-",
            "maximal relative rise of chemokine",
            "assumption: CAR-T + OV synergy via inflammation (Conte 2025, models.md 5.6)",
        ),
    )

    def rates(self, t, y, p):
        v = y["ov_titre"]
        return {
            "ov_titre": p["ov_replication"] * v * (1.0 - v / p["ov_capacity"])
            - p["ov_clearance"] * v
        }

    def effects(self, t, y, p):
        f = saturating(y["ov_titre"], p["ov_v50"])
        return {"tumour_kill": p["ov_kill"] * f, "chemokine": 1.0 + p["ov_chemokine"] * f}


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


@final
class ScaffoldDelivery(AbstractTherapy):
    """Biomaterial scaffold or sustained local release: a depot that raises ``homing`` while it
    releases its cytokine/chemokine cargo.

    A therapy cannot add cells to the core's states through channels: the local CAR-T dose itself is
    the regimen's dose into ``stroma_effector`` (or ``tumour_effector``), e.g. a zero-order
    infusion over the scaffold's release time. Dose 1 into ``scf_depot`` at implantation.
    """

    name: ClassVar[str] = "scaffold_delivery"
    dosing: ClassVar[Dosing | None] = Dosing("scf_depot", "dose", 1.0, 0.0)
    description: ClassVar[str] = "scaffold/sustained local release depot raising homing"
    states: ClassVar[tuple[State, ...]] = (
        State("scf_depot", "scaffold_delivery", _REL, "cargo left in the scaffold", ATOL),
    )
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter(
            "scf_k_release",
            0.1,
            "1/d",
            "first-order release rate of the depot",
            "assumption: release over 1-3 weeks",
        ),
        Parameter("scf_homing", 1.0, "-", "extra relative homing per unit depot", _NO_NUMBERS),
    )

    def rates(self, t, y, p):
        return {"scf_depot": -p["scf_k_release"] * y["scf_depot"]}

    def effects(self, t, y, p):
        return {"homing": 1.0 + p["scf_homing"] * jnp.maximum(y["scf_depot"], 0.0)}


@final
class HypoxiaTargeting(AbstractTherapy):
    """Oxygen-releasing material or hypoxia-activated prodrug (evofosfamide-like): lowers
    hypoxia-driven ``suppression``. Dose 1 per dose into ``hyp_exposure``."""

    name: ClassVar[str] = "hypoxia_targeting"
    dosing: ClassVar[Dosing | None] = Dosing("hyp_exposure", "dose", 1.0, -3.0, 1.0, 10)
    description: ClassVar[str] = "oxygen release / hypoxia-activated drug lowering suppression"
    states: ClassVar[tuple[State, ...]] = (_exposure_state("hyp", "hypoxia_targeting", "agent"),)
    parameters: ClassVar[tuple[Parameter, ...]] = (
        _elimination("hyp", 0.5, "assumption: exposure or oxygen release lasts about a day"),
        Parameter("hyp_e50", 1.0, _REL, "exposure for half-maximal effect", _NO_NUMBERS),
        Parameter(
            "hyp_imax",
            0.3,
            "-",
            "maximal fractional fall of suppression",
            _NO_NUMBERS,
            upper=1.0,
            transform="logit",
        ),
    )

    def rates(self, t, y, p):
        return {"hyp_exposure": -p["hyp_k_el"] * y["hyp_exposure"]}

    def effects(self, t, y, p):
        f = saturating(y["hyp_exposure"], p["hyp_e50"])
        return {"suppression": 1.0 - p["hyp_imax"] * f}


@final
class MetabolicModulator(AbstractTherapy):
    """MCT/lactate-transport inhibitor: lowers ``suppression`` (lactate, acidity) and CAR-T
    ``exhaustion``. Dose 1 per daily dose into ``mct_exposure``."""

    name: ClassVar[str] = "metabolic_modulator"
    dosing: ClassVar[Dosing | None] = Dosing("mct_exposure", "dose", 1.0, -3.0, 1.0, 10)
    description: ClassVar[str] = "MCT/lactate inhibitor lowering suppression and exhaustion"
    states: ClassVar[tuple[State, ...]] = (_exposure_state("mct", "metabolic_modulator", "MCTi"),)
    parameters: ClassVar[tuple[Parameter, ...]] = (
        _elimination("mct", 0.5, "assumption: oral small molecule, t1/2 about 12 h"),
        Parameter("mct_e50", 1.0, _REL, "exposure for half-maximal effect", _NO_NUMBERS),
        Parameter(
            "mct_suppression",
            0.2,
            "-",
            "maximal fractional fall of suppression",
            _NO_NUMBERS,
            upper=1.0,
            transform="logit",
        ),
        Parameter(
            "mct_exhaustion",
            0.2,
            "-",
            "maximal fractional fall of exhaustion",
            _NO_NUMBERS,
            upper=1.0,
            transform="logit",
        ),
    )

    def rates(self, t, y, p):
        return {"mct_exposure": -p["mct_k_el"] * y["mct_exposure"]}

    def effects(self, t, y, p):
        f = saturating(y["mct_exposure"], p["mct_e50"])
        return {
            "suppression": 1.0 - p["mct_suppression"] * f,
            "exhaustion": 1.0 - p["mct_exhaustion"] * f,
        }


@final
class AntiCCR4(AbstractTherapy):
    """Anti-CCR4 antibody (mogamulizumab-like) depleting Tregs: lowers ``suppression``.
    Dose in mg into ``ccr4_central`` (1 mg/kg)."""

    name: ClassVar[str] = "anti_ccr4"
    dosing: ClassVar[Dosing | None] = Dosing("ccr4_central", "mg", 1.0, -7.0, 7.0, 4, per_kg=True)
    description: ClassVar[str] = "anti-CCR4 Treg depletion lowering suppression"
    states: ClassVar[tuple[State, ...]] = (
        State("ccr4_central", "anti_ccr4", "mg", "anti-CCR4 antibody in the body", ATOL),
    )
    parameters: ClassVar[tuple[Parameter, ...]] = (
        *mab_parameters("ccr4", "anti-CCR4 antibody", 0.2, 5.0, GENERIC_MAB),
        Parameter(
            "ccr4_ec50", 1.0, "mg/L", "concentration for half-maximal Treg depletion", _NO_NUMBERS
        ),
        Parameter(
            "ccr4_imax",
            0.25,
            "-",
            "share of suppression carried by Tregs",
            _NO_NUMBERS,
            upper=1.0,
            transform="logit",
        ),
    )

    def rates(self, t, y, p):
        return {"ccr4_central": -p["ccr4_clearance"] / p["ccr4_volume"] * y["ccr4_central"]}

    def effects(self, t, y, p):
        c = y["ccr4_central"] / p["ccr4_volume"]
        return {"suppression": 1.0 - p["ccr4_imax"] * saturating(c, p["ccr4_ec50"])}


@final
class NanoparticleDelivery(AbstractTherapy):
    """A nanoparticle-formulated payload acting on one chosen channel (static ``channel``).

    The carrier circulates long and accumulates in the tumour (EPR), so the payload's tumour
    exposure is ``np_accumulation`` times that of the free drug at the same dose:

        dA/dt = -k_np A,    E = np_accumulation A
        multiplicative channel: 1 + Emax E/(E50 + E);  additive channel: Emax E/(E50 + E)

    Use a negative ``np_emax`` (down to -1) to lower a multiplicative channel (e.g.
    ``suppression``). Default: a camptothecin nanoparticle (CRLX101-like) on ``tumour_kill``.
    Dose 1 per dose into ``np_carrier``.
    """

    name: ClassVar[str] = "nanoparticle"
    dosing: ClassVar[Dosing | None] = Dosing("np_carrier", "dose", 1.0, -7.0, 7.0, 2)
    description: ClassVar[str] = "nanoparticle-formulated payload with tumour accumulation"
    states: ClassVar[tuple[State, ...]] = (
        State("np_carrier", "nanoparticle", _REL, "payload in circulating carrier", ATOL),
    )
    parameters: ClassVar[tuple[Parameter, ...]] = (
        _elimination(
            "np",
            2.0,
            "assumption: nanoparticle-bound camptothecin circulates for days (Schmidt 2020, "
            "doi:10.1007/s00280-020-04134-9, qualitative)",
        ),
        Parameter(
            "np_accumulation", 3.0, "-", "tumour exposure relative to free drug", _NO_NUMBERS
        ),
        Parameter("np_e50", 1.0, _REL, "tumour exposure for half-maximal effect", _NO_NUMBERS),
        Parameter(
            "np_emax",
            0.05,
            "-",
            "maximal effect (1/d for additive channels)",
            _NO_NUMBERS,
            lower=-1.0,
            upper=100.0,
            transform="identity",
        ),
    )
    channel: str = eqx.field(static=True, default="tumour_kill")

    def __check_init__(self):
        if self.channel not in CHANNELS:
            raise CartpkError(f"unknown effect channel {self.channel!r}")

    def rates(self, t, y, p):
        return {"np_carrier": -p["np_k_el"] * y["np_carrier"]}

    def effects(self, t, y, p):
        f = p["np_emax"] * saturating(p["np_accumulation"] * y["np_carrier"], p["np_e50"])
        additive = CHANNELS[self.channel][0] == "additive"
        return {self.channel: f if additive else 1.0 + f}
