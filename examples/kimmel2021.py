"""Kimmel, Locke & Altrock 2021 (Proc R Soc B 288:20210229, doi:10.1098/rspb.2021.0229) as a
user-defined cartpk model: normal T cells N and CAR-T C compete for a niche after
lymphodepletion (Gompertz), and kill the tumour B. Units as in BIOMD0000001041: cells/uL blood,
tumour in mL. Parameter values: Table 1 of the paper (blood units from the SBML encoding)."""

from typing import ClassVar

import jax.numpy as jnp

import cartpk

SOURCE = "Kimmel 2021 Table 1, doi:10.1098/rspb.2021.0229"


class Kimmel2021(cartpk.AbstractModel):
    states: ClassVar = (
        cartpk.State("normal_t", "blood", "cells/uL", "normal T cells", 1e-9),
        cartpk.State("car_t", "blood", "cells/uL", "CAR-T cells", 1e-9),
        cartpk.State("tumour", "tumour", "mL", "tumour volume", 1e-9),
    )
    parameters: ClassVar = (
        cartpk.Parameter("k_n", 500.0, "cells/uL", "normal T-cell carrying capacity", SOURCE),
        cartpk.Parameter("k_c", 139.0, "cells/uL", "CAR-T carrying capacity", SOURCE),
        cartpk.Parameter("r_n", 0.170, "1/d", "normal T-cell growth rate", SOURCE),
        cartpk.Parameter("rho_c", 0.0251, "1/d", "CAR-T baseline growth rate", SOURCE),
        cartpk.Parameter("a", 0.423, "-", "shape of the CAR-T growth rate", SOURCE),
        cartpk.Parameter("b", 0.525, "1/d", "extra CAR-T growth at low density", SOURCE),
        cartpk.Parameter("r_b", 0.01, "1/d", "tumour growth rate", SOURCE),
        cartpk.Parameter("gamma_b", 1.15, "1/d", "maximal killing rate", SOURCE),
        cartpk.Parameter("k_b", 4.05, "cells/uL", "CAR-T for half-maximal killing", SOURCE),
    )

    def initial_state(self, p):
        return {"normal_t": jnp.asarray(6.0), "car_t": jnp.asarray(0.0), "tumour": 94.86}

    def rates(self, t, y, p, effects):
        n, c, b = y["normal_t"], y["car_t"], y["tumour"]
        total = n + c
        r_c = p["rho_c"] + p["b"] * (total - p["k_n"]) ** 2 / (
            p["a"] * total**2 + (total - p["k_n"]) ** 2
        )
        return {
            "normal_t": -p["r_n"] * n * jnp.log(total / p["k_n"]),
            "car_t": -r_c * c * jnp.log(total / p["k_c"]),
            "tumour": p["r_b"] * b - p["gamma_b"] * b * c / (p["k_b"] + c),
        }

    def observables(self, t, y, p):
        return {"car_t_per_ul": y["car_t"]}


if __name__ == "__main__":
    cartpk.enable_x64()
    model = Kimmel2021()
    dose = cartpk.Regimen.single(0.36, "car_t")  # cells/uL: 1.8e8 cells in 5e8 uL-equivalents
    sol = cartpk.simulate(model, model.default_params(), dose, jnp.array([7.0, 14.0, 28.0, 90.0]))
    print(dict(zip([7, 14, 28, 90], sol.observables["car_t_per_ul"].tolist(), strict=True)))
