"""The benchmark model's equations for the peers that cannot run cartpk's JAX code, generated
from the model itself by :mod:`cartpk.export`.

The model is ``combine(BloodStromaTumour("solid"), AntiVEGF(), Hyaluronidase())``. From its
equations as traced by :func:`cartpk.export.trace` this module generates

- a plain-Python right-hand side and initial state (for ``scipy.integrate.solve_ivp``), and
- the SBML document (:func:`cartpk.export.to_sbml`: rate rules) for libroadrunner.

:func:`check_against_cartpk` evaluates the generated right-hand side and cartpk's vector field at
random states and parameters and fails unless they agree to rounding, so the three tools provably
integrate the same equations.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import sympy
from sympy.printing.pycode import PythonCodePrinter

import cartpk
from cartpk.therapies import AntiVEGF, Hyaluronidase


def build_model():
    return cartpk.combine(cartpk.BloodStromaTumour("solid"), AntiVEGF(), Hyaluronidase())


#: state names, in cartpk's order (the order of every state vector here)
STATES = build_model().state_names


class _Printer(PythonCodePrinter):
    """Python source with every float written exactly (``repr``)."""

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Max(self, expr):  # max(0, x) of a symbol: a comparison, faster than a call
        return self._extremum(expr, ">") or super()._print_Max(expr)

    def _print_Min(self, expr):
        return self._extremum(expr, "<") or super()._print_Min(expr)

    def _extremum(self, expr, relation):
        if len(expr.args) == 2 and all(a.is_Atom for a in expr.args):
            a, b = (self._print(x) for x in expr.args)
            return f"({a} if {a} {relation} {b} else {b})"
        return None


@functools.cache
def _equations():
    return cartpk.export.trace(build_model())


def _function(name, arguments, bindings, assignments, results):
    """Compile ``def name(arguments)`` that binds, assigns and returns a list of ``results``."""
    printer = _Printer({"fully_qualified_modules": False})
    lines = [f"def {name}({', '.join(arguments)}):"]
    lines += [f"    {symbol} = {source}" for symbol, source in bindings]
    lines += [f"    {symbol} = {printer.doprint(expr)}" for symbol, expr in assignments]
    lines.append("    return [" + ", ".join(printer.doprint(e) for e in results) + "]")
    namespace = {"exp": math.exp, "log": math.log, "sqrt": math.sqrt, "max": max, "min": min}
    exec(compile("\n".join(lines), f"<benchmark {name}>", "exec"), namespace)  # noqa: S102
    return namespace[name]


def python_rhs(parameter_names):
    """``f(t, y, p) -> list`` in plain Python floats; ``p`` is a sequence in
    ``parameter_names`` order (fast enough for a scipy loop: no NumPy per operation)."""
    equations = _equations()
    taken = {*parameter_names, *STATES, *equations.effects}
    shared = sympy.numbered_symbols("cse_", exclude=[equations.symbol(n) for n in taken])
    effects = {equations.symbol(name): value for name, value in equations.effects.items()}
    rates = [equations.rates[s].xreplace(effects) for s in STATES]
    intermediates, rates = sympy.cse(rates, symbols=shared)
    bindings = [(name, f"p[{i}]") for i, name in enumerate(parameter_names)]
    bindings += [(name, f"y[{i}]") for i, name in enumerate(STATES)]
    assignments = [(s.name, e) for s, e in intermediates]
    return _function("rhs", ("time", "y", "p"), bindings, assignments, rates)


@functools.cache
def _initial(parameter_names):
    equations = _equations()
    bindings = [(name, f"p[{name!r}]") for name in parameter_names]
    return _function("initial", ("p",), bindings, (), [equations.initial[s] for s in STATES])


def initial_state(params: dict) -> np.ndarray:
    """Initial state for one patient (``params``: name -> float)."""
    return np.array(_initial(tuple(params))(params), dtype=float)


def sbml(params: dict) -> str:
    """The model as SBML (one rate rule per state), parameters at ``params``."""
    return cartpk.export.to_sbml(build_model(), params)


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
