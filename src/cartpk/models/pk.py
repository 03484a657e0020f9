"""Standard PK/PD models: linear one-, two- and three-compartment models and indirect responses.

Time is in hours (``time_unit = "h"``), amounts in mg, volumes in L, clearances in L/h and rate
constants in 1/h; concentrations are mg/L. Every default is an illustrative value, not a
literature one: give your own (``default_params(cl=...)``, ``--init``). Equations, closed forms
and usage: ``docs/pk_models.md``.

**Linear models.** The states are the amounts in the compartments. With the micro-constants
``k10 = CL/V1``, ``k1p = Qp/V1`` and ``kp1 = Qp/Vp`` (``p`` = each peripheral compartment)::

    d depot/dt   = -ka depot                                   (oral models only)
    d central/dt =  ka depot - k10 central - sum_p (k1p central - kp1 peripheral_p)
    d periph_p/dt =  k1p central - kp1 peripheral_p
    concentration = central / V1

IV models take boluses and zero-order infusions into ``central`` (or any state); oral models
take them into ``depot`` too, and the ``_lag`` variants delay every dose into the depot by
``tlag`` (NONMEM's ``ALAG1``). The state order is NONMEM's ``CMT`` order of ADVAN1-4, 11 and 12.

Their closed form (:meth:`~cartpk.AbstractModel.solution`) is the superposition over dose
events of the responses of the eigenvalue (macro-constant) form: the disposition matrix ``K``
has the distinct eigenvalues ``-lambda_m`` (analytic: one root, a quadratic, a cubic in
trigonometric form) and ``exp(K t) = sum_m P_m exp(-lambda_m t)`` with the Lagrange residues
``P_m = prod_{l != m} (K + lambda_l I) / (lambda_l - lambda_m)``. An input through the depot
pairs each mode with the absorption term in a divided difference, computed without
cancellation, so ``ka`` equal to an eigenvalue is as accurate as any other ``ka``.

**Indirect-response models** (Dayneka, Garg & Jusko 1993, doi:10.1007/BF01061691, types I to IV):
the one-compartment PK with first-order absorption drives a response ``R`` produced at ``kin``
and lost at ``kout R``, from its baseline ``R(0) = kin / kout``, through ``C = central / V``::

    I:   dR/dt = kin (1 - imax C / (ic50 + C)) - kout R
    II:  dR/dt = kin - kout (1 - imax C / (ic50 + C)) R
    III: dR/dt = kin (1 + emax C / (ec50 + C)) - kout R
    IV:  dR/dt = kin - kout (1 + emax C / (ec50 + C)) R

``R`` is in the unit of the response data (written ``R`` in the units of ``kin``). These models
have no closed form; cartpk integrates them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import jax.numpy as jnp

from ..parameters import Parameter, State
from ..regimen import DoseArrays
from .base import AbstractModel

_ILLUSTRATIVE = "illustrative default, not a literature value"
_ATOL = 1e-9  # mg


def _parameter(name, default, unit, description, **bounds) -> Parameter:
    return Parameter(name, default, unit, description, _ILLUSTRATIVE, **bounds)


_CL = _parameter("cl", 3.0, "L/h", "clearance (CL/F after oral doses)")
_V = _parameter("v", 30.0, "L", "volume of distribution (V/F after oral doses)")
_V1 = _parameter("v1", 30.0, "L", "central volume (V1/F after oral doses)")
_Q = _parameter("q", 5.0, "L/h", "intercompartmental clearance")
_V2 = _parameter("v2", 50.0, "L", "peripheral volume")
_Q2 = _parameter("q2", 5.0, "L/h", "intercompartmental clearance to peripheral1")
_Q3 = _parameter("q3", 1.0, "L/h", "intercompartmental clearance to peripheral2")
_V2_3 = _parameter("v2", 50.0, "L", "volume of peripheral1")
_V3 = _parameter("v3", 100.0, "L", "volume of peripheral2")
_KA = _parameter("ka", 1.5, "1/h", "first-order absorption rate constant")
_TLAG = _parameter("tlag", 0.5, "h", "absorption lag time of doses into the depot")

_CENTRAL = State("central", "blood", "mg", "drug in the central compartment", atol=_ATOL)
_DEPOT = State("depot", "gut", "mg", "drug left to absorb", atol=_ATOL)
_DEPOT_LAG = State("depot", "gut", "mg", "drug left to absorb", atol=_ATOL, lag="tlag")
_PERIPHERAL = State("peripheral", "peripheral", "mg", "drug in the peripheral compartment", _ATOL)
_PERIPHERAL1 = State("peripheral1", "peripheral", "mg", "drug in peripheral1 (q2, v2)", _ATOL)
_PERIPHERAL2 = State("peripheral2", "peripheral", "mg", "drug in peripheral2 (q3, v3)", _ATOL)


class AbstractLinearPK(AbstractModel):
    """Linear mamillary PK model with an optional depot; solved in closed form.

    Subclasses declare ``states`` (``depot`` first if any, then ``central``, then the
    peripherals), ``parameters``, and the names of the volumes (central first) and of the
    intercompartmental clearances (one per peripheral).
    """

    time_unit: ClassVar[str] = "h"
    volumes: ClassVar[tuple[str, ...]] = ("v",)
    flows: ClassVar[tuple[str, ...]] = ()

    @property
    def _oral(self) -> bool:
        return self.states[0].name == "depot"

    @property
    def _disposition_states(self) -> tuple[str, ...]:
        return self.state_names[1:] if self._oral else self.state_names

    def _micro(self, p: Mapping):
        """``k10`` and ``(k1p, kp1)`` of each peripheral (1/h)."""
        v1 = p[self.volumes[0]]
        return p["cl"] / v1, tuple(
            (p[q] / v1, p[q] / p[v]) for q, v in zip(self.flows, self.volumes[1:], strict=True)
        )

    def rates(self, t, y, p, effects):
        """d(amount)/dt of every compartment (mg/h)."""
        k10, micro = self._micro(p)
        central = y["central"]
        dy = {}
        dcentral = -k10 * central
        if self._oral:
            absorbed = p["ka"] * y["depot"]
            dy["depot"] = -absorbed
            dcentral = dcentral + absorbed
        for name, (k1p, kp1) in zip(self._disposition_states[1:], micro, strict=True):
            exchange = k1p * central - kp1 * y[name]
            dy[name] = exchange
            dcentral = dcentral - exchange
        dy["central"] = dcentral
        return dy

    def observables(self, t, y, p):
        """``concentration``: central amount over the central volume (mg/L)."""
        return {"concentration": y["central"] / p[self.volumes[0]]}

    def solution(self, times, doses: DoseArrays, p: Mapping) -> dict:
        """Every compartment's amount (mg) at ``times`` (h): the superposition over the dose
        events (boluses, and the infusion rate held from each event to the next) of the
        closed-form responses."""
        k10, micro = self._micro(p)
        lam = _eigenvalues(k10, micro)
        residues = _residues(_matrix(k10, micro), lam)  # (mode, to, from)
        started, s, u, w = _elapsed(jnp.asarray(times, dtype=float), doses.times)
        first = 1 if self._oral else 0
        bolus, rate = doses.bolus[:, first:], doses.rate[:, first:]
        mode = lam[None, None, :]
        s3, u3, w3 = s[..., None], u[..., None], w[..., None]
        through = "mab,nkm,kb->na"  # residues, mode responses, inputs -> amounts
        amounts = jnp.einsum(through, residues, _bolus(mode, started[..., None], s3), bolus)
        amounts = amounts + jnp.einsum(through, residues, _infusion(mode, u3, w3), rate)
        out = {}
        if self._oral:
            ka = p["ka"]
            out["depot"] = _bolus(ka, started, s) @ doses.bolus[:, 0] + (
                _infusion(ka, u, w) @ doses.rate[:, 0]
            )
            absorbed = jnp.einsum(
                "ma,nkm,k->na", residues[:, :, 0], _e1(mode, ka, s3), doses.bolus[:, 0]
            ) + jnp.einsum(
                "ma,nkm,k->na", residues[:, :, 0], _infusion_via(mode, ka, u3, w3), doses.rate[:, 0]
            )
            amounts = amounts + ka * absorbed
        out.update({name: amounts[:, i] for i, name in enumerate(self._disposition_states)})
        return out


class OneCompartmentIV(AbstractLinearPK):
    """One-compartment model, IV bolus or zero-order infusion into ``central`` (ADVAN1)."""

    states: ClassVar = (_CENTRAL,)
    parameters: ClassVar = (_CL, _V)


class OneCompartmentOral(AbstractLinearPK):
    """One-compartment model with first-order absorption from ``depot`` (ADVAN2)."""

    states: ClassVar = (_DEPOT, _CENTRAL)
    parameters: ClassVar = (_CL, _V, _KA)


class OneCompartmentOralLag(AbstractLinearPK):
    """One-compartment model with first-order absorption after a lag time ``tlag``."""

    states: ClassVar = (_DEPOT_LAG, _CENTRAL)
    parameters: ClassVar = (_CL, _V, _KA, _TLAG)


class TwoCompartmentIV(AbstractLinearPK):
    """Two-compartment model, IV bolus or zero-order infusion into ``central`` (ADVAN3)."""

    states: ClassVar = (_CENTRAL, _PERIPHERAL)
    parameters: ClassVar = (_CL, _V1, _Q, _V2)
    volumes: ClassVar = ("v1", "v2")
    flows: ClassVar = ("q",)


class TwoCompartmentOral(AbstractLinearPK):
    """Two-compartment model with first-order absorption from ``depot`` (ADVAN4)."""

    states: ClassVar = (_DEPOT, _CENTRAL, _PERIPHERAL)
    parameters: ClassVar = (_CL, _V1, _Q, _V2, _KA)
    volumes: ClassVar = ("v1", "v2")
    flows: ClassVar = ("q",)


class TwoCompartmentOralLag(AbstractLinearPK):
    """Two-compartment model with first-order absorption after a lag time ``tlag``."""

    states: ClassVar = (_DEPOT_LAG, _CENTRAL, _PERIPHERAL)
    parameters: ClassVar = (_CL, _V1, _Q, _V2, _KA, _TLAG)
    volumes: ClassVar = ("v1", "v2")
    flows: ClassVar = ("q",)


class ThreeCompartmentIV(AbstractLinearPK):
    """Three-compartment model, IV bolus or zero-order infusion into ``central`` (ADVAN11)."""

    states: ClassVar = (_CENTRAL, _PERIPHERAL1, _PERIPHERAL2)
    parameters: ClassVar = (_CL, _V1, _Q2, _V2_3, _Q3, _V3)
    volumes: ClassVar = ("v1", "v2", "v3")
    flows: ClassVar = ("q2", "q3")


class ThreeCompartmentOral(AbstractLinearPK):
    """Three-compartment model with first-order absorption from ``depot`` (ADVAN12)."""

    states: ClassVar = (_DEPOT, _CENTRAL, _PERIPHERAL1, _PERIPHERAL2)
    parameters: ClassVar = (_CL, _V1, _Q2, _V2_3, _Q3, _V3, _KA)
    volumes: ClassVar = ("v1", "v2", "v3")
    flows: ClassVar = ("q2", "q3")


class ThreeCompartmentOralLag(AbstractLinearPK):
    """Three-compartment model with first-order absorption after a lag time ``tlag``."""

    states: ClassVar = (_DEPOT_LAG, _CENTRAL, _PERIPHERAL1, _PERIPHERAL2)
    parameters: ClassVar = (_CL, _V1, _Q2, _V2_3, _Q3, _V3, _KA, _TLAG)
    volumes: ClassVar = ("v1", "v2", "v3")
    flows: ClassVar = ("q2", "q3")


# ------------------------------------------------------------------------------------------------
# Indirect-response models


class AbstractIndirectResponse(AbstractModel):
    """One-compartment PK with first-order absorption driving a turnover response ``R``.

    Subclasses set which process the drug acts on (``acts_on``: ``"kin"`` or ``"kout"``),
    whether it stimulates it, and the two drug-effect parameters.
    """

    time_unit: ClassVar[str] = "h"
    acts_on: ClassVar[str] = "kin"
    stimulates: ClassVar[bool] = False
    effect: ClassVar[tuple[str, str]] = ("imax", "ic50")

    states: ClassVar = (
        _DEPOT,
        _CENTRAL,
        State("response", "response", "R", "the pharmacodynamic response", atol=1e-9),
    )

    def initial_state(self, p):
        """No drug, and the response at its baseline ``kin / kout`` (R)."""
        zero = jnp.zeros(())
        return {"depot": zero, "central": zero, "response": p["kin"] / p["kout"]}

    def rates(self, t, y, p, effects):
        """d(amount)/dt (mg/h) and dR/dt (R/h)."""
        absorbed = p["ka"] * y["depot"]
        concentration = y["central"] / p["v"]
        top, half = (p[name] for name in self.effect)
        drug = top * concentration / (half + concentration)
        factor = 1.0 + drug if self.stimulates else 1.0 - drug
        production = p["kin"] * (factor if self.acts_on == "kin" else 1.0)
        loss = p["kout"] * (factor if self.acts_on == "kout" else 1.0) * y["response"]
        return {
            "depot": -absorbed,
            "central": absorbed - p["cl"] / p["v"] * y["central"],
            "response": production - loss,
        }

    def observables(self, t, y, p):
        """``concentration`` (mg/L) and ``response`` (R)."""
        return {"concentration": y["central"] / p["v"], "response": y["response"]}


_KIN = _parameter("kin", 10.0, "R/h", "zero-order production rate of the response")
_KOUT = _parameter("kout", 0.1, "1/h", "first-order loss rate constant of the response")
_IMAX = _parameter(
    "imax", 0.9, "-", "maximal fractional inhibition", lower=0.0, upper=1.0, transform="logit"
)
_IC50 = _parameter("ic50", 1.0, "mg/L", "concentration of half-maximal inhibition")
_EMAX = _parameter("emax", 2.0, "-", "maximal fractional stimulation")
_EC50 = _parameter("ec50", 1.0, "mg/L", "concentration of half-maximal stimulation")
_PK = (_CL, _V, _KA)


class IndirectResponseI(AbstractIndirectResponse):
    """Indirect response, type I: the drug inhibits the production ``kin``."""

    parameters: ClassVar = (*_PK, _KIN, _KOUT, _IMAX, _IC50)


class IndirectResponseII(AbstractIndirectResponse):
    """Indirect response, type II: the drug inhibits the loss ``kout``."""

    acts_on: ClassVar = "kout"
    parameters: ClassVar = (*_PK, _KIN, _KOUT, _IMAX, _IC50)


class IndirectResponseIII(AbstractIndirectResponse):
    """Indirect response, type III: the drug stimulates the production ``kin``."""

    stimulates: ClassVar = True
    effect: ClassVar = ("emax", "ec50")
    parameters: ClassVar = (*_PK, _KIN, _KOUT, _EMAX, _EC50)


class IndirectResponseIV(AbstractIndirectResponse):
    """Indirect response, type IV: the drug stimulates the loss ``kout``."""

    acts_on: ClassVar = "kout"
    stimulates: ClassVar = True
    effect: ClassVar = ("emax", "ec50")
    parameters: ClassVar = (*_PK, _KIN, _KOUT, _EMAX, _EC50)


# ------------------------------------------------------------------------------------------------
# Closed-form building blocks (rates in 1/h, times in h)

#: below this argument, phi and its divided difference are summed from their Taylor series
#: (8 terms: truncation below 1e-15 relative; above it the direct forms lose at most ~1e-13)
_SERIES = 0.05
#: Taylor coefficients of phi(x) = (1 - exp(-x)) / x = sum_k (-x)^k / (k + 1)!
_PHI_SERIES = tuple((-1) ** k / math.factorial(k + 1) for k in range(9))


def _phi(x):
    """``(1 - exp(-x)) / x`` for ``x >= 0`` (1 at 0)."""
    small = x < _SERIES
    safe = jnp.where(small, 1.0, x)
    series = 0.0
    for c in reversed(_PHI_SERIES[:8]):
        series = series * x + c
    return jnp.where(small, series, -jnp.expm1(-safe) / safe)


def _phi_dd(x, y):
    """The divided difference ``(phi(x) - phi(y)) / (x - y)`` for ``x, y >= 0``, without
    cancellation: ``(e1(x, y, 1) - phi(y)) / x`` with ``x`` the larger, else the series."""
    hi, lo = jnp.maximum(x, y), jnp.minimum(x, y)
    small = hi < _SERIES
    safe = jnp.where(small, 1.0, hi)
    direct = (_e1(safe, lo, 1.0) - _phi(lo)) / safe
    series, power, h = 0.0, 1.0, 1.0  # h_k = (x^k - y^k) / (x - y)
    for c in _PHI_SERIES[1:]:
        series = series + c * h
        power = power * y
        h = x * h + power
    return jnp.where(small, series, direct)


def _e1(a, b, s):
    """``(exp(-a s) - exp(-b s)) / (b - a)`` for ``a, b, s >= 0``, also at ``a == b``."""
    return jnp.exp(-jnp.minimum(a, b) * s) * s * _phi(jnp.abs(a - b) * s)


def _bolus(mu, started, s):
    """Mode ``exp(-mu t)`` a time ``s`` after a unit bolus (0 until it is given)."""
    return jnp.where(started, jnp.exp(-mu * s), 0.0)


def _infusion(mu, u, w):
    """Mode ``exp(-mu t)`` after a unit rate held for ``u``, ``w`` after it stopped."""
    return jnp.exp(-mu * w) * u * _phi(mu * u)


def _infusion_via(lam, ka, u, w):
    """Mode ``lam`` reached through absorption at ``ka`` from a unit rate into the depot held
    for ``u``, ``w`` after it stopped (divided by ``ka``): the negated divided difference of
    ``_infusion`` in ``mu`` between ``lam`` and ``ka``, by the product rule (both terms >= 0)."""
    return _e1(lam, ka, w) * u * _phi(ka * u) - jnp.exp(-lam * w) * u**2 * _phi_dd(lam * u, ka * u)


def _elapsed(times, event_times):
    """For each output time and event, ``(started, s, u, w)``: whether the event is before the
    output time (strictly: an output at a dose time is pre-dose), the time since the event,
    how long the event's rate has been held (until the next event) and the time since then."""
    finite = jnp.isfinite(event_times)
    start = jnp.where(finite, event_times, 0.0)
    following = jnp.concatenate([event_times[1:], jnp.full(1, jnp.inf)])
    duration = jnp.where(finite & jnp.isfinite(following), following - start, jnp.inf)
    started = finite[None, :] & (times[:, None] > start[None, :])
    s = jnp.where(started, times[:, None] - start[None, :], 0.0)
    u = jnp.minimum(s, duration[None, :])
    return started, s, u, s - u


def _matrix(k10, micro):
    """The disposition matrix ``K`` (central first): ``d amounts/dt = K amounts`` (1/h)."""
    n = 1 + len(micro)
    rows = [[jnp.zeros(()) for _ in range(n)] for _ in range(n)]
    rows[0][0] = -(k10 + sum(k1p for k1p, _ in micro))
    for j, (k1p, kp1) in enumerate(micro, start=1):
        rows[0][j], rows[j][0], rows[j][j] = kp1, k1p, -kp1
    return jnp.stack([jnp.stack(row) for row in rows])


def _eigenvalues(k10, micro):
    """The decay rates ``lambda`` (eigenvalues of ``-K``, 1/h), largest first: ``k10``; the
    roots of a quadratic; of a cubic by the trigonometric method, the smallest from their
    product for accuracy."""
    if not micro:
        return jnp.stack([k10])
    if len(micro) == 1:
        ((k12, k21),) = micro
        root = jnp.sqrt((k10 + k12 - k21) ** 2 + 4 * k12 * k21)
        alpha = (k10 + k12 + k21 + root) / 2
        return jnp.stack([alpha, k10 * k21 / alpha])
    (k12, k21), (k13, k31) = micro
    a2 = k10 + k12 + k13 + k21 + k31
    a1 = k10 * k21 + k10 * k31 + k21 * k31 + k12 * k31 + k13 * k21
    a0 = k10 * k21 * k31
    p = a1 - a2**2 / 3
    q = -2 * a2**3 / 27 + a1 * a2 / 3 - a0
    radius = 2 * jnp.sqrt(-p / 3)
    theta = jnp.arccos(jnp.clip(3 * q / (p * radius), -1.0, 1.0)) / 3
    largest = a2 / 3 + radius * jnp.cos(theta)
    middle = a2 / 3 + radius * jnp.cos(theta - 2 * math.pi / 3)
    return jnp.stack([largest, middle, a0 / (largest * middle)])


def _residues(K, lam):
    """Lagrange residues ``P_m = prod_{l != m} (K + lam_l I) / (lam_l - lam_m)``, so that
    ``exp(K t) = sum_m P_m exp(-lam_m t)``; shape ``(modes, n, n)``."""
    n = lam.shape[0]
    eye = jnp.eye(n)
    residues = []
    for m in range(n):
        residue = eye
        for other in range(n):
            if other != m:
                residue = residue @ (K + lam[other] * eye) / (lam[other] - lam[m])
        residues.append(residue)
    return jnp.stack(residues)


__all__ = [
    "AbstractIndirectResponse",
    "AbstractLinearPK",
    "IndirectResponseI",
    "IndirectResponseII",
    "IndirectResponseIII",
    "IndirectResponseIV",
    "OneCompartmentIV",
    "OneCompartmentOral",
    "OneCompartmentOralLag",
    "ThreeCompartmentIV",
    "ThreeCompartmentOral",
    "ThreeCompartmentOralLag",
    "TwoCompartmentIV",
    "TwoCompartmentOral",
    "TwoCompartmentOralLag",
]
