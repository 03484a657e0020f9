"""Regenerate the figures in docs/figures/ (run: python docs/figures.py)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

import cartpk  # noqa: E402

cartpk.enable_x64()
HERE = Path(__file__).parent / "figures"
TIMES = jnp.concatenate([jnp.linspace(0.0, 60.0, 601)[1:], jnp.linspace(61.0, 365.0, 305)])


def modes():
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    for mode in ("blood", "solid"):
        model = cartpk.BloodStromaTumour(mode)
        sol = cartpk.simulate(
            model, model.default_params(), cartpk.Regimen.single(1e8, "blood_effector"), TIMES
        )
        ax.plot(TIMES, sol.observables["blood_copies_per_ug"], label=f"{mode} mode")
    stein = cartpk.Multiphasic()
    ax.plot(TIMES, stein.closed_form(TIMES, stein.default_params()), "k--", lw=1,
            label="Stein 2019 typical (tisagenlecleucel)")
    ax.set_yscale("log")
    ax.set_ylim(10, 1e5)
    ax.set_xlabel("time after infusion of 1e8 CAR-T (d)")
    ax.set_ylabel("circulating CAR-T (transgene copies/µg gDNA)")
    ax.set_title("Same CAR-T product: blood cancer vs solid tumour")
    ax.legend()
    fig.savefig(HERE / "modes.png", dpi=120)


if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    modes()
