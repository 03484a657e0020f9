"""Anti-VEGF (bevacizumab-like) therapy with a vascular normalization window.

Two-compartment PK (amounts in mg, dosed into ``bev_central``) drives

- normalization, immediate and saturating in the plasma concentration ``C = A1 / V1`` (mg/L);
- pruning, saturating in a slowly recovering cumulative exposure ``X`` (mg d/L) that grows with
  ``C`` and relaxes at the vessel-regrowth rate.

``vascular_function = (1 + Emax C/(EC50 + C)) (1 - Pmax X^h/(X50^h + X^h))`` and pruning-induced
hypoxia raises ``suppression = 1 + s_hyp Pmax X^h/(X50^h + X^h)``. Moderate, short exposure opens
the window (normalization without pruning); high or prolonged exposure accumulates ``X`` and closes
it (Jain's normalization window; Mpekris 2020, doi:10.1073/pnas.1919764117).
"""

from __future__ import annotations

from typing import ClassVar, final

from ..parameters import Parameter, State
from ._common import ATOL, saturating
from .base import AbstractTherapy, Dosing

_LU = "Lu 2008, doi:10.1007/s00280-007-0664-8"
_HAN = "Han 2016, doi:10.1007/s00280-016-3079-6"
_MPEKRIS = "Mpekris 2020, doi:10.1073/pnas.1919764117"
_MANCUSO = (
    "Mancuso 2006, J Clin Invest 116:2610 (50-60 % vessel loss after 7 d of VEGFR inhibition; "
    "full regrowth 7 d after withdrawal)"
)


@final
class AntiVEGF(AbstractTherapy):
    """Bevacizumab-like anti-VEGF antibody acting on ``vascular_function`` (and ``suppression``).

    Dose in mg into ``bev_central`` (e.g. 5-15 mg/kg x 70 kg every 2-3 weeks, as a bolus or a
    short infusion).
    """

    name: ClassVar[str] = "anti_vegf"
    dosing: ClassVar[Dosing | None] = Dosing("bev_central", "mg", 5.0, -7.0, 14.0, 2, per_kg=True)
    description: ClassVar[str] = (
        "bevacizumab-like two-compartment PK; transient vascular normalization at moderate "
        "exposure, vessel pruning and hypoxia with high or prolonged exposure"
    )
    states: ClassVar[tuple[State, ...]] = (
        State("bev_central", "anti_vegf", "mg", "bevacizumab in plasma (central)", ATOL),
        State("bev_peripheral", "anti_vegf", "mg", "bevacizumab in peripheral tissue", ATOL),
        State(
            "bev_exposure",
            "anti_vegf",
            "mg*d/L",
            "cumulative exposure driving vessel pruning (relaxes at the regrowth rate)",
            ATOL,
        ),
    )
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("bev_clearance", 0.207, "L/d", "linear clearance", _LU + " (typical female)"),
        Parameter(
            "bev_v1",
            2.66,
            "L",
            "central volume",
            _LU + " (2.39 L female, men about 18 % larger); " + _HAN + " (2.88 L at 70 kg)",
        ),
        Parameter(
            "bev_v2",
            2.8,
            "L",
            "peripheral volume",
            "assumption: not retrieved from " + _LU + "; chosen with bev_q so that the terminal "
            "t1/2 is about 20 d as reported there and in " + _HAN,
        ),
        Parameter(
            "bev_q",
            0.5,
            "L/d",
            "intercompartmental clearance",
            "assumption: see bev_v2 (terminal t1/2 = 20.4 d with these values)",
        ),
        Parameter(
            "bev_emax",
            1.0,
            "-",
            "maximal relative rise of the functional vessel fraction",
            "assumption: normalization roughly doubles the perfused-vessel fraction in the "
            "window (" + _MPEKRIS + ", qualitative)",
        ),
        Parameter(
            "bev_ec50",
            20.0,
            "mg/L",
            "plasma concentration for half-maximal normalization",
            "assumption: far above the VEGF-neutralizing level (Kd about 1 nM = 0.15 mg/L) to "
            "account for limited tumour penetration; puts 1-2 mg/kg in the rising part",
        ),
        Parameter(
            "bev_pmax",
            0.8,
            "-",
            "maximal fraction of functional vessels pruned",
            "assumption: excessive pruning removes most immature vessels ("
            + _MPEKRIS
            + "); "
            + _MANCUSO,
            upper=1.0,
            transform="logit",
        ),
        Parameter(
            "bev_x50",
            600.0,
            "mg*d/L",
            "cumulative exposure for half-maximal pruning",
            "assumption: calibrated in cartpk so that one 1-2 mg/kg dose stays mostly in the "
            "window and 15 mg/kg every 2 weeks closes it within about 2 weeks",
        ),
        Parameter(
            "bev_hill",
            2.0,
            "-",
            "Hill coefficient of pruning",
            "assumption: threshold-like onset of pruning",
        ),
        Parameter(
            "bev_k_regrowth",
            0.1,
            "1/d",
            "relaxation of the pruning exposure (vessel regrowth)",
            "assumption: vessels regrow within 1-2 weeks after VEGF inhibition stops ("
            + _MANCUSO
            + ")",
        ),
        Parameter(
            "bev_hypoxia",
            0.5,
            "-",
            "extra relative suppression per unit pruned fraction",
            "assumption: pruning causes hypoxia that suppresses immune function ("
            + _MPEKRIS
            + ", qualitative)",
        ),
    )

    def _concentration(self, y, p):
        return y["bev_central"] / p["bev_v1"]

    def _pruning(self, y, p):
        return p["bev_pmax"] * saturating(y["bev_exposure"], p["bev_x50"], p["bev_hill"])

    def rates(self, t, y, p):
        a1, a2 = y["bev_central"], y["bev_peripheral"]
        flux = p["bev_q"] * (a1 / p["bev_v1"] - a2 / p["bev_v2"])
        return {
            "bev_central": -p["bev_clearance"] * a1 / p["bev_v1"] - flux,
            "bev_peripheral": flux,
            "bev_exposure": self._concentration(y, p) - p["bev_k_regrowth"] * y["bev_exposure"],
        }

    def effects(self, t, y, p):
        c = self._concentration(y, p)
        pruned = self._pruning(y, p)
        normalization = 1.0 + p["bev_emax"] * saturating(c, p["bev_ec50"])
        return {
            "vascular_function": normalization * (1.0 - pruned),
            "suppression": 1.0 + p["bev_hypoxia"] * pruned,
        }

    def observables(self, t, y, p):
        return {
            "bev_concentration": self._concentration(y, p),
            "bev_pruned_fraction": self._pruning(y, p),
        }
