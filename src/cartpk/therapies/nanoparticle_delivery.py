"""A nanoparticle-formulated payload acting on one chosen effect channel, with tumour accumulation
(EPR) relative to the free drug. Default: a camptothecin nanoparticle (CRLX101-like) on
``tumour_kill``."""

from __future__ import annotations

from typing import ClassVar, final

import equinox as eqx

from ..channels import CHANNELS
from ..errors import CartpkError
from ..parameters import Parameter, State
from ._common import _NO_NUMBERS, _REL, ATOL, _elimination, saturating
from .base import AbstractTherapy, Dosing


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
