"""An interpreter that evaluates a jaxpr on sympy expressions instead of numbers.

Values are numpy arrays of dtype ``object`` holding sympy expressions (0-d for scalars), so
elementwise rules broadcast as JAX does and the few array operations a model may use (stacking,
slicing, sums, dot products) keep their numpy meaning. Booleans are sympy relations; a
``select_n`` or ``cond`` becomes a ``Piecewise``. Calls (``jit``, custom derivatives, ``cond``
branches) are evaluated recursively. Anything else raises :class:`UnsupportedPrimitive`.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from jax.extend.core import Literal

from .._optional import require


class UnsupportedPrimitive(Exception):
    """A JAX primitive without a counterpart in SBML math (its name is ``args[0]``)."""


def evaluate(closed, args: list) -> list:
    """Evaluate a closed jaxpr on object arrays ``args``; returns one object array per output."""
    return _run(closed.jaxpr, [_constant(c) for c in closed.consts], args)


def _run(jaxpr, consts, args):
    env = {}

    def read(var):
        return _constant(var.val) if isinstance(var, Literal) else env[var]

    env.update(zip(jaxpr.constvars, consts, strict=True))
    env.update(zip(jaxpr.invars, args, strict=True))
    rules = _rules()
    for eqn in jaxpr.eqns:
        rule = rules.get(eqn.primitive.name)
        if rule is None:
            raise UnsupportedPrimitive(eqn.primitive.name)
        outs = rule(eqn, *[read(v) for v in eqn.invars])
        if not eqn.primitive.multiple_results:
            outs = [outs]
        for var, value in zip(eqn.outvars, outs, strict=True):
            env[var] = as_array(value)
    return [read(v) for v in jaxpr.outvars]


def as_array(value) -> np.ndarray:
    """``value`` (a sympy expression or an object array) as an object array."""
    if isinstance(value, np.ndarray):
        return value
    out = np.empty((), dtype=object)
    out[()] = value
    return out


def _number(x):
    sp = require("sympy")
    if isinstance(x, bool | np.bool_):
        return sp.true if x else sp.false
    if isinstance(x, int | np.integer):
        return sp.Integer(int(x))
    value = float(x)
    if math.isnan(value):
        return sp.nan
    if math.isinf(value):
        return sp.oo if value > 0 else -sp.oo
    if value.is_integer() and abs(value) < 2**53:  # exact: keeps x * 1 -> x and x**2 integral
        return sp.Integer(int(value))
    return sp.Float(value)  # the double itself (53-bit precision)


def _constant(value) -> np.ndarray:
    array = np.asarray(value)
    out = np.empty(array.shape, dtype=object)
    for index in np.ndindex(array.shape):
        out[index] = _number(array[index].item())
    return out


def _elementwise(fn, arity):
    ufunc = np.frompyfunc(fn, arity, 1)
    return lambda eqn, *xs: ufunc(*xs)


def _subjaxpr(params):
    """The jaxpr a call primitive runs, and its constants."""
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        if key in params:
            sub = params[key]
            if hasattr(sub, "consts"):  # a ClosedJaxpr
                return sub.jaxpr, [_constant(c) for c in sub.consts]
            return sub, []
    raise UnsupportedPrimitive("call without a jaxpr")


def _call(eqn, *args):
    jaxpr, consts = _subjaxpr(eqn.params)
    return _run(jaxpr, consts, list(args))


def _indicator(which):
    """``c`` if ``which`` is ``Piecewise((1, c), (0, True))`` (a boolean converted to a number)."""
    sp = require("sympy")
    if isinstance(which, sp.Piecewise) and len(which.args) == 2:
        (one, condition), (zero, otherwise) = which.args
        if one == 1 and zero == 0 and otherwise == sp.true:
            return condition
    return None


def _choose(which, cases):
    """``cases[which]`` as a Piecewise; ``which`` is a boolean or an integer index."""
    sp = require("sympy")
    if which.is_Boolean or _indicator(which) is not None:
        condition = which if which.is_Boolean else _indicator(which)
        if len(cases) == 2:
            return sp.Piecewise((cases[1], condition), (cases[0], True))
    pieces = [(case, sp.Eq(which, k)) for k, case in enumerate(cases[:-1])]
    return sp.Piecewise(*pieces, (cases[-1], True))


def _select_n(eqn, which, *cases):
    return np.frompyfunc(lambda w, *c: _choose(w, c), 1 + len(cases), 1)(which, *cases)


def _cond(eqn, index, *operands):
    branches = [
        _run(b.jaxpr, [_constant(c) for c in b.consts], list(operands))
        for b in eqn.params["branches"]
    ]
    return [
        np.frompyfunc(lambda w, *c: _choose(w, c), 1 + len(branches), 1)(index, *outs)
        for outs in zip(*branches, strict=True)
    ]


def _convert(eqn, x):
    sp = require("sympy")
    old = np.dtype(eqn.invars[0].aval.dtype)
    new = np.dtype(eqn.params["new_dtype"])
    if old == np.bool_ and new != np.bool_:
        return np.frompyfunc(lambda c: sp.Piecewise((1, c), (0, True)), 1, 1)(x)
    if new == np.bool_:
        return np.frompyfunc(lambda v: sp.Ne(v, 0), 1, 1)(x)
    if np.issubdtype(new, np.integer) and not np.issubdtype(old, np.integer):
        raise UnsupportedPrimitive("convert_element_type (a float rounded to an integer)")
    return x


def _boolean(fn, name):
    def rule(eqn, *xs):
        if np.dtype(eqn.outvars[0].aval.dtype) != np.bool_:
            raise UnsupportedPrimitive(f"{name} (bitwise, on integers)")
        return np.frompyfunc(fn, len(xs), 1)(*xs)

    return rule


def _div(eqn, a, b):
    if not np.issubdtype(np.dtype(eqn.outvars[0].aval.dtype), np.floating):
        raise UnsupportedPrimitive("div (integer division)")
    return np.frompyfunc(lambda x, y: x / y, 2, 1)(a, b)


def _extremum(fn):
    def pair(a, b):
        if a.is_number and b.is_number:
            return fn(a, b)
        return fn(a, b, evaluate=False)  # no simplification by assumptions (slow, not needed)

    return pair


def _reduce(fn):
    def rule(eqn, x):
        for axis in sorted(eqn.params["axes"], reverse=True):
            x = np.frompyfunc(fn, 2, 1).reduce(x, axis=axis)
        return as_array(x)

    return rule


def _broadcast_in_dim(eqn, x):
    shape = tuple(eqn.params["shape"])
    expanded = [1] * len(shape)
    for i, d in enumerate(eqn.params["broadcast_dimensions"]):
        expanded[d] = x.shape[i]
    return np.broadcast_to(x.reshape(expanded), shape).copy()


def _slice(eqn, x):
    strides = eqn.params["strides"] or (1,) * x.ndim
    index = tuple(
        slice(s, e, k)
        for s, e, k in zip(
            eqn.params["start_indices"], eqn.params["limit_indices"], strides, strict=True
        )
    )
    return x[index].copy()


def _dynamic_slice(eqn, x, *starts):
    if not all(s.item().is_Integer for s in starts):
        raise UnsupportedPrimitive("dynamic_slice (at a traced index)")
    index = tuple(
        slice(int(s.item()), int(s.item()) + n)
        for s, n in zip(starts, eqn.params["slice_sizes"], strict=True)
    )
    return x[index].copy()


def _dot_general(eqn, a, b):
    (contract_a, contract_b), (batch_a, batch_b) = eqn.params["dimension_numbers"]
    if batch_a or batch_b:
        raise UnsupportedPrimitive("dot_general (with batch dimensions)")
    return as_array(np.tensordot(a, b, axes=(tuple(contract_a), tuple(contract_b))))


def _iota(eqn):
    shape = tuple(eqn.params["shape"])
    values = np.arange(shape[eqn.params["dimension"]])
    expanded = [1] * len(shape)
    expanded[eqn.params["dimension"]] = len(values)
    return _constant(np.broadcast_to(values.reshape(expanded), shape))


@functools.cache
def _rules() -> dict:
    sp = require("sympy")
    unary = {
        "neg": lambda x: -x,
        "exp": sp.exp,
        "exp2": lambda x: 2**x,
        "log": sp.log,
        "log1p": lambda x: sp.log(1 + x),
        "expm1": lambda x: sp.exp(x) - 1,
        "sqrt": sp.sqrt,
        "rsqrt": lambda x: 1 / sp.sqrt(x),
        "square": lambda x: x**2,
        "logistic": lambda x: 1 / (1 + sp.exp(-x)),
        "abs": sp.Abs,
        "sign": sp.sign,
        "floor": sp.floor,
        "ceil": sp.ceiling,
        "sin": sp.sin,
        "cos": sp.cos,
        "tan": sp.tan,
        "asin": sp.asin,
        "acos": sp.acos,
        "atan": sp.atan,
        "sinh": sp.sinh,
        "cosh": sp.cosh,
        "tanh": sp.tanh,
        "asinh": sp.asinh,
        "acosh": sp.acosh,
        "atanh": sp.atanh,
        "copy": lambda x: x,
        "copy_p": lambda x: x,
    }
    binary = {
        "add": lambda a, b: a + b,
        "sub": lambda a, b: a - b,
        "mul": lambda a, b: a * b,
        "pow": lambda a, b: a**b,
        "max": _extremum(sp.Max),
        "min": _extremum(sp.Min),
        "lt": sp.Lt,
        "le": sp.Le,
        "gt": sp.Gt,
        "ge": sp.Ge,
        "eq": sp.Eq,
        "ne": sp.Ne,
    }
    rules = {name: _elementwise(fn, 1) for name, fn in unary.items()}
    rules.update({name: _elementwise(fn, 2) for name, fn in binary.items()})
    rules.update(
        {
            "div": _div,
            "integer_pow": lambda eqn, x: np.frompyfunc(lambda v: v ** eqn.params["y"], 1, 1)(x),
            "clamp": lambda eqn, lo, x, hi: np.frompyfunc(
                lambda a, v, b: _extremum(sp.Min)(_extremum(sp.Max)(v, a), b), 3, 1
            )(lo, x, hi),
            "and": _boolean(sp.And, "and"),
            "or": _boolean(sp.Or, "or"),
            "xor": _boolean(sp.Xor, "xor"),
            "not": _boolean(sp.Not, "not"),
            "select_n": _select_n,
            "convert_element_type": _convert,
            "cond": _cond,
            "broadcast_in_dim": _broadcast_in_dim,
            "reshape": lambda eqn, x, *dyn: x.reshape(tuple(eqn.params["new_sizes"])),
            "squeeze": lambda eqn, x: as_array(np.squeeze(x, axis=tuple(eqn.params["dimensions"]))),
            "expand_dims": lambda eqn, x: np.expand_dims(x, tuple(eqn.params["dimensions"])),
            "concatenate": lambda eqn, *xs: np.concatenate(xs, axis=eqn.params["dimension"]),
            "stack": lambda eqn, *xs: np.stack(xs, axis=eqn.params["axis"]),
            "transpose": lambda eqn, x: np.transpose(x, eqn.params["permutation"]).copy(),
            "slice": _slice,
            "dynamic_slice": _dynamic_slice,
            "reduce_sum": _reduce(lambda a, b: a + b),
            "reduce_prod": _reduce(lambda a, b: a * b),
            "reduce_max": _reduce(_extremum(sp.Max)),
            "reduce_min": _reduce(_extremum(sp.Min)),
            "dot_general": _dot_general,
            "iota": _iota,
        }
    )
    for name in (
        "jit",
        "pjit",
        "closed_call",
        "core_call",
        "remat",
        "checkpoint",
        "custom_jvp_call",
        "custom_vjp_call",
        "custom_vjp_call_jaxpr",
    ):
        rules[name] = _call
    return rules


def supported() -> tuple[str, ...]:
    """The names of the JAX primitives :func:`evaluate` handles."""
    return tuple(sorted(_rules()))
