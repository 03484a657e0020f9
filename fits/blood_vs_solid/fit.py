"""Calibration of the mechanistic model to blood-cancer and solid-tumour circulating CAR-T kinetics.

Model: ``cartpk.BloodStromaTumour`` in ``"blood"`` and ``"solid"`` mode, the same virtual patients
(fixed draws) and the same product, 1e8 CAR-T IV on day 0 (docs/model.md). Statistic of each
patient: the peak of ``blood_copies_per_ug`` over days 0-28 and its day (parabolic refinement on a
0.25-d grid); of the population: their medians.

Targets (each with a log-scale or day-scale SD ``sigma``; residual = (fit - target)/sigma):

1. blood-mode median peak 24,000 copies/ug gDNA: Stein 2019 typical Cmax of tisagenlecleucel in
   B-ALL (doi:10.1002/psp4.12388; verified via nlmixr2lib). sigma_log = omega/sqrt(n) =
   sqrt(0.65/90) = 0.085, the approximate precision of a typical value with Stein's Cmax omega^2
   0.65 and n = 90.
2. blood-mode median peak day 9.3 d: Stein 2019 typical Tmax (same source); sigma = 9.3
   sqrt(0.38/90) = 0.60 d (Tmax omega^2 0.38). Liso-cel's 9.29 d (95 % CI 8.81-9.70; Ogasawara
   2021, doi:10.1007/s40262-021-01039-5, verified) agrees.
3. blood/solid ratio of median peaks 7, with "5-10x lower in solid tumours" as its 95 % interval:
   sigma_log = ln(10/5)/(2 x 1.96) = 0.177. The factor is NOT verified: it is a review's summary
   sentence read in a press release (Chin Med J 2025;138(19); data/solid_tumor_car_t_kinetics.csv
   row cmj2025_review_solid_vs_heme, unverified); no primary source states it. Liu 2021 (pooled CK
   of 7 trials, doi:10.1101/2020.05.09.20096586) supports the direction only, Haas 2019
   (doi:10.1016/j.ymthe.2019.07.015) contrasts CART19's ~1,000-fold expansion with modest
   CART-meso expansion (reference/clinical_kinetics.md section 2).
4. solid-mode median peak day 10 d, with Haas 2019's "peak by days 6-14" (CART-meso,
   doi:10.1016/j.ymthe.2019.07.015, verified) as its 95 % interval: sigma = 8/(2 x 1.96) = 2.04 d.

Estimated (3 parameters, 4 targets), typical values, in log space from the defaults:
``rho`` (antigen-driven proliferation; acts on circulating CAR-T only in blood mode, so it sets
the blood/solid ratio), ``rho_homeostatic`` (niche-driven expansion, the only systemic expansion
in solid mode) and ``k_niche`` (niche closure; sets both peak days).

Not estimated, and why: the barrier, infiltration and antigen-access parameters that only the
solid mode uses (``antigen_access``, ``k_extravasation``, ``k_infiltration``,
``k_tumour_egress``, ``vascular_function0``) have sensitivities of the circulating targets two
orders of magnitude below the estimated ones (``identifiability.csv``): in this model the
circulating peak of a solid tumour is homeostatic expansion of systemic cells, of which blood
holds 2 % and the tumour draws little. They cannot be calibrated from blood levels and stay at
their defaults; intratumoural data (e.g. biopsy CAR-T levels) would be needed.
``delta_effector`` stays at its default, set to Stein 2019's contraction half-life (4.3 d).

Virtual population: log-normal variability with the CVs of scenarios/blood_vs_solid.toml
(assumptions of that scenario: rho 0.3, rho_homeostatic 0.2, delta_effector 0.2,
k_extravasation 0.5, k_infiltration 0.5), omega = sqrt(ln(1 + CV^2)).

Method: Levenberg-Marquardt (optimistix) on the 4 scaled residuals, forward-mode derivatives
through the solver. Identifiability: the Jacobian of the scaled residuals with respect to the
log of each candidate parameter at the optimum; for the estimated block, singular values and the
approximate SEs from (J^T J)^-1.

Run: ``python fits/blood_vs_solid/fit.py [--virtual N] [--out DIR]`` (committed: 32).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pandas as pd

import cartpk
from cartpk.commands import ResultsFolder
from cartpk.estimation.summary_stats import subject_statistics

HERE = Path(__file__).resolve().parent
SEED = 5  # as scenarios/blood_vs_solid.toml
DOSE = 1e8  # CAR-T cells IV on day 0 (docs/model.md calibration)
TIMES = np.arange(0.0, 28.0 + 1e-9, 0.25)
#: solver tolerance: 1e-6 relative error in a peak is far below the targets' sigmas (>= 0.085)
RTOL = 1e-6
#: CVs of the virtual population (scenarios/blood_vs_solid.toml; assumptions)
CV = {
    "rho": 0.3,
    "rho_homeostatic": 0.2,
    "delta_effector": 0.2,
    "k_extravasation": 0.5,
    "k_infiltration": 0.5,
}
ESTIMATE = ("rho", "rho_homeostatic", "k_niche")
#: fixed parameters whose identifiability is reported
CANDIDATES = (
    "antigen_access",
    "k_extravasation",
    "k_infiltration",
    "k_tumour_egress",
    "vascular_function0",
    "delta_effector",
)
#: name, value, sigma, scale ("log": sigma on the log scale; "day": in days), source
TARGETS = (
    ("blood peak median (copies/ug)", 24000.0, np.sqrt(0.65 / 90), "log", "Stein 2019"),
    ("blood peak day median (d)", 9.3, 9.3 * np.sqrt(0.38 / 90), "day", "Stein 2019"),
    ("blood/solid peak ratio", 7.0, np.log(10 / 5) / (2 * 1.96), "log", "5-10x, unverified"),
    ("solid peak day median (d)", 10.0, (14 - 6) / (2 * 1.96), "day", "Haas 2019, 6-14 d"),
)


class Calibration:
    """The two modes' virtual trials as a function of the log of the estimated parameters."""

    def __init__(self, n_virtual: int, seed: int = SEED):
        cartpk.enable_x64()
        self.models = {m: cartpk.BloodStromaTumour(m) for m in ("blood", "solid")}
        self.regimen = cartpk.Regimen.single(DOSE, "blood_effector")
        z = np.random.default_rng(seed).standard_normal((n_virtual, len(CV)))
        omega = np.sqrt(np.log1p(np.asarray(list(CV.values())) ** 2))
        self.factors = {k: jnp.asarray(np.exp(omega[j] * z[:, j])) for j, k in enumerate(CV)}
        self.names = ESTIMATE + CANDIDATES
        self.x0 = jnp.log(jnp.asarray([self.default(k) for k in self.names]))

    def default(self, name: str) -> float:
        return float(self.models["solid"].default_params()[name])

    def curves(self, x):
        """Blood copies/ug over TIMES, (patients, times), per mode; x = log of ``names``."""
        out = {}
        for mode, model in self.models.items():
            base = model.default_params()
            base.update({k: jnp.exp(x[i]) for i, k in enumerate(self.names)})
            n = len(next(iter(self.factors.values())))
            params = {k: jnp.broadcast_to(v, (n,)) for k, v in base.items()}
            for k, f in self.factors.items():
                params[k] = params[k] * f

            def one(p, model=model):
                solution = cartpk.simulate(
                    model, p, self.regimen, TIMES, rtol=RTOL, adjoint=dfx.ForwardMode()
                )
                return solution.observables["blood_copies_per_ug"]

            out[mode] = jax.vmap(one)(params)
        return out

    def statistics(self, x):
        """Fitted values of TARGETS (same order)."""
        stats = {m: subject_statistics(c, TIMES) for m, c in self.curves(x).items()}
        blood_peak = jnp.median(stats["blood"]["cmax"])
        return jnp.stack(
            [
                blood_peak,
                jnp.median(stats["blood"]["tmax"]),
                blood_peak / jnp.median(stats["solid"]["cmax"]),
                jnp.median(stats["solid"]["tmax"]),
            ]
        )

    def residuals(self, x):
        return scaled_residuals(self.statistics(x))

    def full(self, free):
        """x with the estimated entries replaced by ``free``."""
        return self.x0.at[: len(ESTIMATE)].set(free)


def scaled_residuals(fitted):
    """(fit - target)/sigma, on the log scale for levels and ratios."""
    res = []
    for k, (_, value, sigma, scale, _) in enumerate(TARGETS):
        diff = jnp.log(fitted[k] / value) if scale == "log" else fitted[k] - value
        res.append(diff / sigma)
    return jnp.stack(res)


def run(n_virtual: int = 32, out: Path = HERE / "results", max_steps: int = 50):
    """Calibrate; write targets.csv, estimates.csv, identifiability.csv, targets.png and
    manifest.json into ``out``."""
    started = time.perf_counter()
    cal = Calibration(n_virtual)
    free0 = cal.x0[: len(ESTIMATE)]
    solution = optx.least_squares(
        lambda free, _: cal.residuals(cal.full(free)),
        optx.LevenbergMarquardt(rtol=1e-6, atol=1e-8),
        free0,
        max_steps=max_steps,
        throw=False,
    )
    converged = bool(solution.result == optx.RESULTS.successful)
    x = cal.full(solution.value)
    evaluate = jax.jit(cal.statistics)  # compiled once
    fitted = np.asarray(evaluate(x))
    residuals = np.asarray(scaled_residuals(fitted))
    at_default = np.asarray(evaluate(cal.x0))
    jac = np.asarray(jax.jit(jax.jacfwd(cal.residuals))(x))  # scaled residuals vs log parameters
    fit_time = time.perf_counter() - started

    block = jac[:, : len(ESTIMATE)]
    singular = np.linalg.svd(block, compute_uv=False)
    cov = np.linalg.inv(block.T @ block)
    se_log = np.sqrt(np.diag(cov))
    estimates = pd.DataFrame(
        {
            "parameter": list(ESTIMATE),
            "estimate": np.exp(np.asarray(solution.value)),
            "default": [cal.default(k) for k in ESTIMATE],
            "se_log": se_log,
            "ci95_low": np.exp(np.asarray(solution.value) - 1.96 * se_log),
            "ci95_high": np.exp(np.asarray(solution.value) + 1.96 * se_log),
        }
    )
    targets = pd.DataFrame(
        {
            "target": [t[0] for t in TARGETS],
            "reported": [t[1] for t in TARGETS],
            "sigma": [t[2] for t in TARGETS],
            "scale": [t[3] for t in TARGETS],
            "source": [t[4] for t in TARGETS],
            "fitted": fitted,
            "at_defaults": at_default,
            "residual": residuals,
        }
    )
    identifiability = pd.DataFrame(
        jac.T, index=list(cal.names), columns=[t[0] for t in TARGETS]
    ).rename_axis("parameter")
    identifiability.insert(0, "status", ["estimated"] * len(ESTIMATE) + ["fixed"] * len(CANDIDATES))
    identifiability.insert(1, "sensitivity_norm", np.linalg.norm(jac, axis=0))

    with ResultsFolder(out, command="python fits/blood_vs_solid/fit.py", force=True) as results:
        results.write(
            {
                "targets.csv": lambda path: targets.to_csv(path, index=False),
                "estimates.csv": lambda path: estimates.to_csv(path, index=False),
                "identifiability.csv": lambda path: identifiability.to_csv(path),
                "targets.png": lambda path: _plot(cal, x, targets, path),
            },
            options={
                "n_virtual": n_virtual,
                "seed": SEED,
                "dose_cells": DOSE,
                "cv": CV,
                "estimated": list(ESTIMATE),
                "max_steps": max_steps,
                "converged": converged,
                "steps": int(solution.stats["num_steps"]),
                "singular_values": singular.tolist(),
                "fit_seconds": round(fit_time, 1),
            },
        )
    print(f"converged={converged}, steps={int(solution.stats['num_steps'])}, {fit_time:.0f} s")
    print(estimates.to_string(index=False))
    print(targets.to_string(index=False))
    print(identifiability.round(4).to_string())
    print("singular values of the estimated block:", np.round(singular, 3))
    return {
        "converged": converged,
        "estimates": estimates,
        "targets": targets,
        "identifiability": identifiability,
        "singular_values": singular,
        "calibration": cal,
    }


def _plot(cal: Calibration, x, targets: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for (mode, curves), colour in zip(jax.jit(cal.curves)(x).items(), ("C0", "C3"), strict=True):
        c = np.asarray(curves)
        q = np.quantile(c, [0.25, 0.5, 0.75], axis=0)
        left.fill_between(TIMES, q[0], q[2], color=colour, alpha=0.25)
        left.plot(TIMES, q[1], color=colour, label=f"{mode} mode, median (IQR)")
    left.axvspan(6, 14, color="grey", alpha=0.12, label="solid peak days 6-14 (Haas 2019)")
    left.axhline(24000, color="k", ls=":", lw=0.8, label="24,000 copies/ug (Stein 2019)")
    left.set(yscale="log", ylim=(1, 2e5), xlabel="day after infusion", ylabel="copies/ug gDNA")
    left.legend(fontsize=7)
    y = np.arange(len(targets))
    rel = np.where(
        targets.scale == "log",
        np.log(targets.fitted / targets.reported),
        targets.fitted - targets.reported,
    )
    right.errorbar(
        np.zeros(len(y)),
        y,
        xerr=1.96 * targets.sigma,
        fmt="o",
        color="k",
        capsize=3,
        label="reported (95 % band)",
    )
    right.scatter(rel, y, marker="x", color="C3", zorder=3, label="fit")
    right.set_yticks(y, targets.target, fontsize=7)
    right.invert_yaxis()
    right.set_xlabel("fit - reported (ln ratio; days for peak days)")
    right.legend(fontsize=7)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--virtual", type=int, default=32, help="virtual patients")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    args = parser.parse_args(argv)
    run(args.virtual, args.out)


if __name__ == "__main__":
    main()
