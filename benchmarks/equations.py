"""The benchmark model's equations, written once, for the peers that cannot run cartpk's JAX code.

``combine(BloodStromaTumour("solid"), AntiVEGF(), Hyaluronidase())`` with every effect channel
that no therapy of this combination sets at its neutral value. From the text below this module
generates

- a plain-Python right-hand side (for ``scipy.integrate.solve_ivp``), and
- an Antimony model (rate rules; converted to SBML for libroadrunner).

:func:`check_against_cartpk` evaluates the generated right-hand side and cartpk's vector field at
random states and parameters and fails unless they agree to rounding, so the three tools provably
integrate the same equations. The expressions use Python syntax (``**`` for powers, ``time`` for
the independent variable, ``max``/``min``/``exp``); Antimony gets ``^`` for ``**``.
"""

from __future__ import annotations

import math

import numpy as np

#: Intermediate quantities, in evaluation order (name, expression).
ASSIGNMENTS = (
    ("niche", "niche0 * exp(-k_niche * max(time, 0.0))"),
    ("homeostatic", "rho_homeostatic * niche"),
    ("reachable", "antigen_access * tumour_cells"),
    ("stim", "reachable / (reachable + k_antigen + kappa * tumour_effector)"),
    ("prolif", "rho / (1.0 + suppression_proliferation * suppression)"),
    ("ratio", "tumour_effector / (tumour_cells + 1.0)"),
    (
        "kill",
        "k_kill * tumour_cells * ratio / (e50 + ratio) / (1.0 + suppression_kill * suppression)",
    ),
    ("tumour_total", "tumour_cells + tumour_cells_negative"),
    ("perfusion", "tumour_total / (tumour_total + tumour_perfusion50)"),
    ("extravasation", "k_extravasation * vascular_function * perfusion * blood_effector"),
    ("infiltration", "k_infiltration * chemokine / (1.0 + ecm_density / ecm50) * stroma_effector"),
    ("stroma_egress", "k_stroma_egress * stroma_effector"),
    ("tumour_egress", "k_tumour_egress * tumour_effector"),
    (
        "exhaustion",
        "k_exhaustion * stim * (1.0 + suppression_exhaustion * suppression) * tumour_effector",
    ),
    ("growth", "tumour_growth * (1.0 - tumour_total / tumour_capacity)"),
    ("bev_conc", "bev_central / bev_v1"),
    ("bev_x", "max(bev_exposure, 0.0)"),
    ("bev_pruned", "bev_pmax * bev_x**bev_hill / (bev_x50**bev_hill + bev_x**bev_hill)"),
    ("bev_c", "max(bev_conc, 0.0)"),
    ("vasc_effect", "(1.0 + bev_emax * bev_c / (bev_ec50 + bev_c)) * (1.0 - bev_pruned)"),
    ("supp_effect", "1.0 + bev_hypoxia * bev_pruned"),
    ("hya_c", "max(hya_central / hya_volume, 0.0)"),
    ("ecm_effect", "1.0 - hya_imax * hya_c / (hya_ic50 + hya_c)"),
    ("bev_flux", "bev_q * (bev_central / bev_v1 - bev_peripheral / bev_v2)"),
    ("net_effector", "homeostatic - delta_effector - k_memory"),
    ("net_memory", "homeostatic - delta_memory"),
)

#: d(state)/dt, in cartpk's state order.
RATES = (
    (
        "blood_effector",
        "net_effector * blood_effector - k_blood_out * blood_effector"
        " + k_blood_in * peripheral_effector - extravasation + stroma_egress + tumour_egress",
    ),
    (
        "blood_memory",
        "k_memory * blood_effector + net_memory * blood_memory - k_blood_out * blood_memory"
        " + k_blood_in * peripheral_memory",
    ),
    (
        "peripheral_effector",
        "net_effector * peripheral_effector + k_blood_out * blood_effector"
        " - k_blood_in * peripheral_effector",
    ),
    (
        "peripheral_memory",
        "k_memory * peripheral_effector + net_memory * peripheral_memory"
        " + k_blood_out * blood_memory - k_blood_in * peripheral_memory",
    ),
    (
        "stroma_effector",
        "extravasation - infiltration - stroma_egress - delta_effector * stroma_effector",
    ),
    (
        "tumour_effector",
        "infiltration - tumour_egress - exhaustion"
        " + (prolif * stim - delta_effector) * tumour_effector",
    ),
    ("tumour_exhausted", "exhaustion - delta_exhausted * tumour_exhausted"),
    ("tumour_cells", "growth * tumour_cells - kill"),
    ("tumour_cells_negative", "growth * tumour_cells_negative"),
    (
        "vascular_function",
        "k_vascular * (min(max(vascular_function0 * vasc_effect, 0.0), 1.0) - vascular_function)",
    ),
    ("ecm_density", "k_ecm * (ecm_density0 * ecm_effect - ecm_density)"),
    ("chemokine", "k_chemokine * (chemokine0 - chemokine)"),
    ("suppression", "k_suppression * (suppression0 * supp_effect - suppression)"),
    ("bev_central", "-bev_clearance * bev_central / bev_v1 - bev_flux"),
    ("bev_peripheral", "bev_flux"),
    ("bev_exposure", "bev_conc - bev_k_regrowth * bev_exposure"),
    ("hya_central", "-hya_k_el * hya_central"),
)

#: State values before any dose (states not listed start at 0).
INITIAL = (
    ("tumour_cells", "tumour_cells0 * (1.0 - antigen_negative_fraction)"),
    ("tumour_cells_negative", "tumour_cells0 * antigen_negative_fraction"),
    ("vascular_function", "vascular_function0"),
    ("ecm_density", "ecm_density0"),
    ("chemokine", "chemokine0"),
    ("suppression", "suppression0"),
)

STATES = tuple(name for name, _ in RATES)


def python_rhs(parameter_names):
    """``f(t, y, p) -> list`` in plain Python floats; ``p`` is a sequence in
    ``parameter_names`` order (fast enough for a scipy loop: no NumPy per operation)."""
    lines = ["def rhs(time, y, p):"]
    lines += [f"    {name} = p[{i}]" for i, name in enumerate(parameter_names)]
    lines += [f"    {name} = y[{i}]" for i, name in enumerate(STATES)]
    lines += [f"    {name} = {expr}" for name, expr in ASSIGNMENTS]
    lines.append("    return [" + ", ".join(expr for _, expr in RATES) + "]")
    namespace = {"exp": math.exp, "max": max, "min": min}
    exec(compile("\n".join(lines), "<benchmark equations>", "exec"), namespace)
    return namespace["rhs"]


def initial_state(params: dict) -> np.ndarray:
    """Initial state for one patient (``params``: name -> float)."""
    y = dict.fromkeys(STATES, 0.0)
    for name, expr in INITIAL:
        y[name] = float(eval(expr, {}, dict(params)))  # noqa: S307 (our own text)
    return np.array([y[s] for s in STATES])


def antimony(params: dict) -> str:
    """The model as Antimony text: one rate rule per state, parameters at ``params``."""

    def sbml(expr):
        return expr.replace("**", "^")

    lines = ["model cartpk_benchmark"]
    lines += [f"  {name} := {sbml(expr)}" for name, expr in ASSIGNMENTS]
    lines += [f"  {name}' = {sbml(expr)}" for name, expr in RATES]
    lines += [f"  {name} = {float(value)!r}" for name, value in params.items()]
    lines += [f"  {name} = 0.0" for name in STATES]
    lines.append("end")
    return "\n".join(lines)


def check_against_cartpk(model, n_points: int = 20, seed: int = 0) -> float:
    """Max relative difference between the generated RHS and cartpk's vector field at random
    positive states and perturbed parameters; raises ``AssertionError`` above 1e-12."""
    import jax
    import jax.numpy as jnp

    if tuple(model.state_names) != STATES:
        raise AssertionError(f"state order differs: {model.state_names} vs {STATES}")
    rng = np.random.default_rng(seed)
    defaults = {k: float(v) for k, v in model.default_params().items()}
    names = tuple(defaults)
    rhs = python_rhs(names)
    field = jax.jit(model.vector_field)
    scale = np.array([1e9] * 9 + [1.0] * 4 + [100.0] * 3 + [100.0])
    worst = 0.0
    for _ in range(n_points):
        p = {k: v * float(np.exp(0.3 * rng.standard_normal())) for k, v in defaults.items()}
        p["antigen_access"] = min(p["antigen_access"], 0.9)
        p["vascular_function0"] = min(p["vascular_function0"], 0.9)
        p["bev_pmax"] = min(p["bev_pmax"], 0.9)
        p["hya_imax"] = min(p["hya_imax"], 0.9)
        y = scale * rng.uniform(0.0, 2.0, len(STATES))
        t = float(rng.uniform(-7.0, 364.0))
        ours = np.array(rhs(t, list(y), [p[k] for k in names]))
        jp = {k: jnp.asarray(v) for k, v in p.items()}
        theirs = np.asarray(field(t, jnp.asarray(y), (jp, jnp.zeros(len(STATES)))))
        # terms cancel: measure the difference against the size of the state, not of the sum
        diff = np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-6 * scale)
        worst = max(worst, float(diff.max()))
    if worst > 1e-12:
        raise AssertionError(f"generated RHS differs from cartpk's by {worst:.3g} (relative)")
    return worst
