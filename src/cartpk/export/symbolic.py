"""A model's equations as sympy expressions, traced from the JAX code that cartpk integrates.

:func:`trace` records ``initial_state``, ``effects``, ``rates`` and ``observables`` with
:func:`jax.make_jaxpr` and evaluates the jaxprs on sympy symbols (:mod:`._jaxpr`), so the
expressions are the model's own arithmetic, whoever wrote it: a built-in model, a model combined
with therapies, or a user model. Effect channels that are constant (every channel of a model
without therapies) are folded into the rates; the others become named intermediates
``effect_<channel>``, which is how the therapies act on the core model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from .._optional import require
from ..errors import CartpkError
from ..models.base import AbstractModel
from ..precision import require_x64
from . import _jaxpr

#: name of the symbol of time in every expression (SBML's ``time``)
TIME = "time"


@dataclass(frozen=True, eq=False)
class SymbolicModel:
    """The equations of a model as sympy expressions of named real symbols.

    Every symbol is ``sympy.Symbol(name, real=True)`` (:meth:`symbol`): :data:`TIME` for time
    (model time unit), the state and parameter names of the model, and ``effect_<channel>`` for
    the entries of :attr:`effects`.

    Attributes:
        model: the traced model.
        effects: ``effect_<channel>`` -> value of each effect channel that is not constant, in
            time, states and parameters.
        rates: state -> d(state)/dt (state unit per model time unit), in time, states,
            parameters and effects: the model's vector field without dose input.
        observables: observable name -> expression in time, states and parameters.
        initial: state -> its value before any dose, in parameters.
    """

    model: AbstractModel
    effects: dict
    rates: dict
    observables: dict
    initial: dict

    @staticmethod
    def symbol(name: str):
        """The sympy symbol of ``name`` (time, a state, a parameter or an effect)."""
        return require("sympy").Symbol(name, real=True)

    @property
    def states(self) -> tuple[str, ...]:
        """State names, in the model's order."""
        return self.model.state_names

    @property
    def parameters(self) -> tuple[str, ...]:
        """Parameter names, in the model's order."""
        return self.model.parameter_set.names


def trace(model: AbstractModel) -> SymbolicModel:
    """The equations of ``model`` as sympy expressions (see the module docstring).

    Raises:
        CartpkError: if the model's code uses an operation without a counterpart in SBML math
            (the message names it), branches in Python on a state or parameter value, returns
            non-scalar values, or names a state or parameter ``time``.
    """
    require_x64()
    if not isinstance(model, AbstractModel):
        raise CartpkError(f"model must be a cartpk model, got {type(model).__name__}")
    label = type(model).__name__
    states, parameters = model.state_names, model.parameter_set.names
    clashes = sorted(set(states) & set(parameters) | {TIME} & set(states + parameters))
    if clashes:
        raise CartpkError(
            f"{label}: {', '.join(clashes)} names a state and a parameter, or time; exported "
            "models need distinct names"
        )

    symbol = SymbolicModel.symbol
    t = jnp.zeros(())
    p = {n: jnp.zeros(()) for n in parameters}
    y = {n: jnp.zeros(()) for n in states}
    ts = symbol(TIME)
    ps = {n: symbol(n) for n in parameters}
    ys = {n: symbol(n) for n in states}

    initial = _scalars(label, "initial_state", model.initial_state, (p,), (ps,), states)
    channels = _scalars(label, "effects", model.effects, (t, y, p), (ts, ys, ps))
    effects, channel_values = {}, {}
    for channel, value in channels.items():
        if value.free_symbols:
            name = f"effect_{channel}"
            if name in states or name in parameters:
                raise CartpkError(f"{label}: {name} names a state or parameter and an effect")
            effects[name] = value
            channel_values[channel] = symbol(name)
        else:
            channel_values[channel] = value
    e = {channel: jnp.zeros(()) for channel in channels}
    rates = _scalars(
        label, "rates", model.rates, (t, y, p, e), (ts, ys, ps, channel_values), states
    )
    observables = _scalars(label, "observables", model.observables, (t, y, p), (ts, ys, ps))
    return SymbolicModel(model, effects, rates, observables, initial)


def _scalars(label, method, fn, examples, symbols, keys=None) -> dict:
    """``fn`` traced at ``examples`` and evaluated on ``symbols``: a dict of scalar sympy
    expressions (with exactly ``keys``, if given)."""
    where = f"{label}.{method}"
    try:
        closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*examples)
    except jax.errors.JAXTypeError:  # an if, int() or numpy call on a traced value
        raise CartpkError(
            f"cannot export {where}: it uses the value of a state or parameter in Python (an "
            "if, int() or numpy); use jnp.where or jax.lax.cond instead"
        ) from None
    try:
        values = _jaxpr.evaluate(closed, [_jaxpr.as_array(s) for s in jax.tree.leaves(symbols)])
    except _jaxpr.UnsupportedPrimitive as error:
        raise CartpkError(
            f"cannot export {where}: JAX operation {error.args[0]!r} has no counterpart in SBML "
            "math (docs/export.md lists the supported operations)"
        ) from None
    out = jax.tree.unflatten(jax.tree.structure(shapes), values)
    if not isinstance(out, Mapping):
        raise CartpkError(f"cannot export {where}: it must return a dict, got {type(out).__name__}")
    if keys is not None and set(out) != set(keys):
        missing, extra = sorted(set(keys) - set(out)), sorted(set(out) - set(keys))
        raise CartpkError(
            f"cannot export {where}: it must return every state"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(extra)}" if extra else "")
        )
    result = {}
    for name, value in out.items():
        if np.shape(value) != ():
            raise CartpkError(
                f"cannot export {where}: {name!r} has shape {np.shape(value)}; exported values "
                "must be scalars"
            )
        result[name] = value[()]
    return {name: result[name] for name in (keys or out)}
