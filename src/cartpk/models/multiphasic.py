"""Stein 2019 multiphasic cellular-kinetic model of tisagenlecleucel (blood only).

Stein AM et al., CPT Pharmacometrics Syst Pharmacol 2019;8(5):285-295, doi:10.1002/psp4.12388.
Equations as encoded in nlmixr2lib (``Stein_2019_Tisagenlecleucel.R``), with the hard switch at
``tmax`` replaced by a smooth gate so that the model is differentiable in ``tmax``:

    s(t)  = 1 / (1 + exp((t - tmax) / w))                 (1 before tmax, 0 after)
    w     = min(switch_width, tmax / 100)                 (gate width; 0.02 d unless tmax < 2 d)
    rho   = ln(foldx) / tmax
    k     = fb (alpha - beta)
    dE/dt = [s rho - (1 - s) alpha] E,                    E(0) = cmax / foldx
    dM/dt = (1 - s) k E - beta M,                         M(0) = 0
    C     = E + M                                         (transgene copies/ug gDNA)

Away from ``tmax`` (|t - tmax| >> w) this equals Stein's closed form
``C = cmax [(1 - fb) exp(-alpha (t - tmax)) + fb exp(-beta (t - tmax))]`` up to terms of order
``w exp(-tmax / w)`` and ``(rho - alpha) alpha w^2``; at ``tmax`` the peak is rounded and lower by a
factor ``exp(-(rho + alpha) w ln 2)`` (1.5 % for the default w = 0.02 d; at most about 6 % when
``tmax < 2 d`` narrows the gate, for foldx up to 3900). See ``docs/model.md``.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from ..parameters import Parameter, State
from .base import AbstractModel

_STEIN = "Stein 2019, doi:10.1002/psp4.12388 (Table 2 via nlmixr2lib)"


class Multiphasic(AbstractModel):
    """Stein 2019 expansion / fast contraction / slow persistence model (copies/ug gDNA).

    The model is dose-independent, as published: expansion starts from ``cmax / foldx`` at day 0.
    """

    switch_width: float = eqx.field(static=True, default=0.02)
    start_time: ClassVar = 0.0

    states: ClassVar = (
        State("effector", "blood", "copies/ug gDNA", "expanding then contracting cells", 1e-6),
        State("memory", "blood", "copies/ug gDNA", "persisting memory-like cells", 1e-6),
    )
    parameters: ClassVar = (
        Parameter("cmax", 24000.0, "copies/ug gDNA", "peak transgene level", _STEIN),
        Parameter("tmax", 9.3, "d", "time of the peak", _STEIN, upper=365.0, transform="logit"),
        Parameter(
            "foldx",
            3900.0,
            "-",
            "fold expansion from day 0 to tmax",
            _STEIN,
            lower=1.0,
            upper=1e9,
            transform="logit",
        ),
        Parameter("alpha", 0.16, "1/d", "fast contraction rate (t1/2 4.3 d)", _STEIN),
        Parameter("beta", 0.0032, "1/d", "persistence rate (t1/2 ~217 d)", _STEIN),
        Parameter(
            "fb",
            0.0079,
            "-",
            "fraction of the peak entering the slow phase",
            _STEIN,
            upper=1.0,
            transform="logit",
        ),
    )

    def initial_state(self, p):
        return {"effector": p["cmax"] / p["foldx"], "memory": jnp.zeros(())}

    def rates(self, t, y, p, effects):
        width = jnp.minimum(self.switch_width, p["tmax"] / 100)  # narrower for an early peak
        s = jax.nn.sigmoid((p["tmax"] - t) / width)
        rho = jnp.log(p["foldx"]) / p["tmax"]
        k = p["fb"] * (p["alpha"] - p["beta"])
        e, m = y["effector"], y["memory"]
        return {
            "effector": (s * rho - (1 - s) * p["alpha"]) * e,
            "memory": (1 - s) * k * e - p["beta"] * m,
        }

    def observables(self, t, y, p):
        return {"blood_copies_per_ug": y["effector"] + y["memory"]}

    @staticmethod
    def closed_form(t, p):
        """Stein's piecewise closed form with the hard switch (copies/ug gDNA)."""
        rho = jnp.log(p["foldx"]) / p["tmax"]
        r0 = p["cmax"] / p["foldx"]
        dt = t - p["tmax"]
        after = p["cmax"] * (
            (1 - p["fb"]) * jnp.exp(-p["alpha"] * dt) + p["fb"] * jnp.exp(-p["beta"] * dt)
        )
        return jnp.where(t < p["tmax"], r0 * jnp.exp(rho * t), after)
