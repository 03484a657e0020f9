"""Export a cartpk model to SBML Level 3 Version 2 (:func:`to_sbml`).

The document is written from the model's traced equations (:func:`~cartpk.export.trace`):

- every model parameter is a constant SBML parameter with its value and unit;
- every state is a non-constant SBML parameter whose rate rule is the model's
  ``d(state)/dt`` (exactly the vector field cartpk integrates); its value is the initial state,
  with an initial assignment when that depends on parameters (``tumour_cells0``);
- effect channels a therapy sets (``effect_<channel>``), shared subexpressions (``cse_<k>``)
  and observables are assignment rules;
- doses are SBML events (:class:`DoseSlots`): event ``k`` fires at ``dose_<k>_time`` (plus the
  state's ``lag`` parameter for lagged states), adds the bolus ``dose_<k>_<state>`` to the state
  and sets the infusion rate ``infusion_<state>`` (added to that state's rate rule) to
  ``dose_<k>_<state>_rate`` until the next event, as cartpk's regimens do.

Units: cartpk unit strings become SBML unit definitions where every factor is a unit SBML knows
(:mod:`._units`); every parameter and state also records its cartpk unit string, bounds,
transform, source and compartment in an annotation (namespace :data:`NAMESPACE`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from .._optional import require
from ..errors import CartpkError
from ..models.base import AbstractModel
from ..regimen import DoseArrays, Regimen
from ..therapies.base import CombinedModel
from . import _units
from .symbolic import TIME, SymbolicModel, trace

#: XML namespace of the cartpk annotations in exported SBML
NAMESPACE = "urn:cartpk:export:1"
_SID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class DoseSlots:
    """The dose events of an exported model: ``n_events`` events, boluses into ``bolus`` states
    and infusions into ``infused`` states (each event sets every infusion rate).

    Parameter ids: ``dose_<k>_time``, ``dose_<k>_<state>`` (bolus, state unit) and
    ``dose_<k>_<state>_rate`` (infusion rate, state unit per time unit), ``k = 1 ... n_events``.
    """

    n_events: int
    bolus: tuple[str, ...]
    infused: tuple[str, ...]

    @classmethod
    def of(cls, doses: DoseArrays, state_names: Sequence[str]) -> DoseSlots:
        """The slots that hold ``doses`` (one subject, or stacked subjects)."""
        bolus = np.asarray(doses.bolus).reshape(-1, len(state_names))
        rate = np.asarray(doses.rate).reshape(-1, len(state_names))
        finite = np.isfinite(np.asarray(doses.times))
        n = int(finite.sum(axis=-1).max()) if finite.size else 0
        return cls(
            n,
            tuple(s for j, s in enumerate(state_names) if np.any(bolus[:, j] != 0)),
            tuple(s for j, s in enumerate(state_names) if np.any(rate[:, j] != 0)),
        )

    def names(self, k: int) -> dict:
        """Parameter ids of event ``k`` (1-based): ``time``, and per state ``bolus``/``rate``."""
        return {
            "time": f"dose_{k}_time",
            "bolus": {s: f"dose_{k}_{s}" for s in self.bolus},
            "rate": {s: f"dose_{k}_{s}_rate" for s in self.infused},
        }

    def ids(self) -> tuple[str, ...]:
        """Every dose parameter id, event by event."""
        out = []
        for k in range(1, self.n_events + 1):
            names = self.names(k)
            out += [names["time"], *names["bolus"].values(), *names["rate"].values()]
        return tuple(out)

    def values(self, doses: DoseArrays, state_names: Sequence[str]) -> dict[str, float]:
        """Parameter values of one subject's ``doses``; unused events repeat the last event's
        time (0 if none) with nothing given, which changes nothing."""
        times = np.asarray(doses.times, dtype=float)
        bolus, rate = np.asarray(doses.bolus, dtype=float), np.asarray(doses.rate, dtype=float)
        finite = np.flatnonzero(np.isfinite(times))
        if len(finite) > self.n_events:
            raise CartpkError(f"{len(finite)} dose events do not fit {self.n_events} slots")
        last = float(times[finite[-1]]) if len(finite) else 0.0
        index = {s: j for j, s in enumerate(state_names)}
        out = {}
        for k in range(1, self.n_events + 1):
            names = self.names(k)
            used = k - 1 < len(finite)
            e = finite[k - 1] if used else None
            out[names["time"]] = float(times[e]) if used else last
            for s, pid in names["bolus"].items():
                out[pid] = float(bolus[e, index[s]]) if used else 0.0
            for s, pid in names["rate"].items():
                out[pid] = float(rate[e, index[s]]) if used else 0.0
        return out


@dataclass(frozen=True)
class Exported:
    """An SBML document and the observables' ids, which the PEtab export refers to.

    Attributes:
        text: the SBML document.
        observables: observable name -> id of the SBML entity that holds it.
        ids: the id of every parameter, state and rule variable in the document.
    """

    text: str
    observables: dict
    ids: frozenset


def to_sbml(
    model: AbstractModel,
    params: Mapping | None = None,
    path: str | Path | None = None,
    *,
    regimen: Regimen | None = None,
) -> str:
    """The model as an SBML Level 3 document (see the module docstring for the representation).

    Args:
        model: any cartpk model (built-in, combined with therapies, or your own).
        params: parameter values (model units) written into the document; names not given keep
            their defaults.
        path: also write the document to this file (replacing it).
        regimen: doses to include as SBML events (dose times in the model's time unit, amounts
            in the state's unit); None: no doses.

    Returns:
        The SBML document as a string. Simulate it from the model's ``start_time`` if it has
        one, else from the earlier of day 0 and the first dose, as cartpk does (the model
        annotation records this ``simulation_start``). An output at a dose time is the
        post-dose value in SBML simulators, the pre-dose value in cartpk.

    Raises:
        CartpkError: for an unknown parameter, a dose into an unknown state, or model code
            without an SBML counterpart (the message names what is wrong).
    """
    values = parameter_values(model, params)
    doses = slot_values = None
    start = 0.0 if model.start_time is None else float(model.start_time)
    if regimen is not None:
        if not isinstance(regimen, Regimen):
            raise CartpkError(f"regimen must be a cartpk Regimen, got {type(regimen).__name__}")
        arrays = regimen.to_arrays(model.state_names)
        doses = DoseSlots.of(arrays, model.state_names)
        slot_values = doses.values(arrays, model.state_names)
        if model.start_time is None and len(regimen):
            start = min(start, float(arrays.times[0]))
    exported = document(trace(model), values, doses, slot_values, start)
    if path is not None:
        Path(path).write_text(exported.text)
    return exported.text


def parameter_values(model: AbstractModel, params: Mapping | None) -> dict[str, float]:
    """Every parameter's value (model units): the defaults, with ``params`` applied and checked."""
    if params is not None and not isinstance(params, Mapping):
        raise CartpkError(f"params must be a dict of parameter values, got {type(params).__name__}")
    values = model.default_params(**dict(params or {}))
    model.parameter_set.validate(values)
    for name, value in values.items():
        if np.ndim(value) != 0:
            raise CartpkError(
                f"parameter {name}: export needs one value, got shape {np.shape(value)}"
            )
    return {name: float(value) for name, value in values.items()}


def document(
    symbolic: SymbolicModel,
    values: Mapping[str, float],
    doses: DoseSlots | None = None,
    dose_values: Mapping[str, float] | None = None,
    start: float | None = None,
) -> Exported:
    """The SBML document of traced equations at parameter ``values``, with ``doses`` as events
    at ``dose_values`` (parameter id -> value), for simulations from ``start``.

    A dose event at ``start`` fires at the start (its trigger's ``initialValue`` is false);
    every other event only when time reaches its dose time (``initialValue`` true), whatever
    time a simulator evaluates the triggers at before the start (libroadrunner uses 0). With
    ``start=None`` every event may fire at the start (PEtab problems: simulations from 0 and
    dose times >= 0 set per condition)."""
    libsbml = require("libsbml")
    sp = require("sympy")
    model = symbolic.model
    label = type(model).__name__
    states, parameters = symbolic.states, symbolic.parameters
    taken = set(states) | set(parameters) | set(symbolic.effects)
    doses = doses if doses is not None and doses.n_events else None
    dose_ids = doses.ids() if doses else ()
    infusion = {s: f"infusion_{s}" for s in (doses.infused if doses else ())}
    for name in (*dose_ids, *infusion.values()):
        if name in taken:
            raise CartpkError(f"{label}: {name} names both a model quantity and a dose parameter")
        taken.add(name)

    # observables: the entity of the same name when it already holds the value
    observable_ids, observed = {}, {}
    for name, expr in symbolic.observables.items():
        if name in taken and expr == symbolic.symbol(name):
            observable_ids[name] = name
            continue
        oid = name if name not in taken else f"observable_{name}"
        if oid in taken or not _SID.match(oid):
            raise CartpkError(f"{label}: observable {name!r} cannot be given an SBML id")
        observable_ids[name] = oid
        observed[oid] = expr
        taken.add(oid)

    rates = {
        s: symbolic.rates[s] + (symbolic.symbol(infusion[s]) if s in infusion else 0)
        for s in states
    }
    rules = {**symbolic.effects, **observed}
    shared = sp.numbered_symbols(
        "cse_", start=1, exclude=[symbolic.symbol(n) for n in taken], real=True
    )
    intermediates, reduced = sp.cse([*rules.values(), *rates.values()], symbols=shared)
    rules = dict(zip(rules, reduced[: len(rules)], strict=True))
    rates = dict(zip(rates, reduced[len(rules) :], strict=True))

    doc = libsbml.SBMLDocument(3, 2)
    sbml = doc.createModel()
    _ok(sbml.setId(_sid(_model_id(model))), "model id")
    sbml.setName(_describe(model))
    _ok(
        sbml.setAnnotation(
            _annotation(
                "model",
                {
                    "class": type(model).__name__,
                    "description": _describe(model),
                    "time_unit": model.time_unit,
                    "start_time": "" if model.start_time is None else repr(float(model.start_time)),
                    "simulation_start": "" if start is None else repr(float(start)),
                },
            )
        ),
        "model annotation",
    )
    units = _UnitTable(sbml)
    time_unit = units.id(model.time_unit)
    if time_unit:
        sbml.setTimeUnits(time_unit)

    specs = model.parameter_set.specs
    for name in parameters:
        spec = specs[name]
        _parameter(
            sbml,
            name,
            values[name],
            True,
            units.id(spec.unit),
            spec.description,
            _annotation(
                "parameter",
                {
                    "unit": spec.unit,
                    "lower": repr(spec.lower),
                    "upper": repr(spec.upper),
                    "transform": spec.transform,
                    "source": spec.source,
                },
            ),
        )
    numeric = {symbolic.symbol(n): sp.Float(v) for n, v in values.items()}
    for state in model.states:
        initial = symbolic.initial[state.name]
        value = float(initial.xreplace(numeric)) if initial.free_symbols else float(initial)
        _parameter(
            sbml,
            state.name,
            value,
            False,
            units.id(state.unit),
            state.description,
            _annotation(
                "state",
                {
                    "unit": state.unit,
                    "compartment": state.compartment,
                    "lag": state.lag or "",
                },
            ),
        )
        if initial.free_symbols:
            assignment = sbml.createInitialAssignment()
            _ok(assignment.setSymbol(state.name), "initial assignment")
            _ok(assignment.setMath(_math(initial, libsbml, sp)), f"initial value of {state.name}")
    for symbol, expr in intermediates:
        _rule(sbml.createAssignmentRule(), _parameter(sbml, symbol.name), expr, libsbml, sp)
    for name, expr in rules.items():
        _rule(sbml.createAssignmentRule(), _parameter(sbml, name), expr, libsbml, sp)
    for name, expr in rates.items():
        _rule(sbml.createRateRule(), name, expr, libsbml, sp)
    if doses:
        unit_of = {s.name: s.unit for s in model.states}
        rate_unit = {s: units.id(_per_time(unit_of[s], model.time_unit)) for s in infusion}
        for s, name in infusion.items():
            _parameter(sbml, name, 0.0, False, rate_unit[s], f"infusion rate into {s}")
        given = dict(dose_values or {})
        for k in range(1, doses.n_events + 1):
            names = doses.names(k)
            declared = [(names["time"], time_unit, f"time of dose event {k}")]
            declared += [
                (pid, units.id(unit_of[s]), f"bolus into {s} at dose event {k}")
                for s, pid in names["bolus"].items()
            ]
            declared += [
                (pid, rate_unit[s], f"infusion rate into {s} from dose event {k}")
                for s, pid in names["rate"].items()
            ]
            for pid, unit, what in declared:
                _parameter(sbml, pid, given.get(pid, 0.0), True, unit, what)
            when = given.get(names["time"], 0.0)
            _events(
                sbml,
                symbolic,
                names,
                infusion,
                k,
                taken,
                libsbml,
                sp,
                lambda lag, when=when: start is None or when + values.get(lag, 0.0) == start,
            )
    text = libsbml.writeSBMLToString(doc)
    return Exported(text, observable_ids, frozenset(taken | {s.name for s, _ in intermediates}))


def _events(sbml, symbolic, names, infusion, k, taken, libsbml, sp, at_start):
    """Event ``k``: one SBML event per lag group of the dosed states; ``at_start(lag)``: the
    group's event may fire at the start of a simulation."""
    lags = {s.name: s.lag for s in symbolic.model.states}
    groups = {}
    for s, pid in names["bolus"].items():
        groups.setdefault(lags[s], []).append((s, sp.Symbol(s, real=True) + _sym(pid)))
    for s, pid in names["rate"].items():
        groups.setdefault(lags[s], []).append((infusion[s], _sym(pid)))
    for lag, assignments in groups.items():
        event = sbml.createEvent()
        eid = f"dose_{k}" + (f"_after_{lag}" if lag else "")
        if eid in taken:
            raise CartpkError(f"{type(symbolic.model).__name__}: {eid} names a model quantity")
        _ok(event.setId(eid), f"event {eid}")
        event.setUseValuesFromTriggerTime(False)  # simultaneous events see each other
        trigger = event.createTrigger()
        trigger.setInitialValue(not at_start(lag))
        trigger.setPersistent(True)
        at = _sym(names["time"]) + (_sym(lag) if lag else 0)
        _ok(trigger.setMath(_math(sp.Ge(_sym(TIME), at, evaluate=False), libsbml, sp)), "trigger")
        for variable, expr in assignments:
            assignment = event.createEventAssignment()
            _ok(assignment.setVariable(variable), "event assignment")
            _ok(assignment.setMath(_math(expr, libsbml, sp)), f"dose into {variable}")


def _sym(name):
    return SymbolicModel.symbol(name)


def _per_time(unit: str, time_unit: str) -> str:
    if unit.strip() in ("-", "1", ""):
        return f"1/{time_unit}"
    return f"({unit})/{time_unit}"


def _parameter(sbml, name, value=None, constant=False, unit=None, description="", annotation=""):
    parameter = sbml.createParameter()
    _ok(parameter.setId(name), f"id {name!r}")
    _ok(parameter.setConstant(constant), name)
    if value is not None:
        _ok(parameter.setValue(value), name)
    if unit:
        _ok(parameter.setUnits(unit), name)
    if description:
        parameter.setName(description)
    if annotation:
        _ok(parameter.setAnnotation(annotation), f"annotation of {name}")
    return name


def _rule(rule, variable, expr, libsbml, sp):
    _ok(rule.setVariable(variable), variable)
    _ok(rule.setMath(_math(expr, libsbml, sp)), f"rule of {variable}")


def _annotation(kind: str, attributes: Mapping[str, str]) -> str:
    fields = " ".join(f"{k}={quoteattr(str(v))}" for k, v in attributes.items())
    return f'<cartpk:{kind} xmlns:cartpk="{NAMESPACE}" {fields}/>'


class _UnitTable:
    """Unit definitions of a document, made on first use (unit string -> UnitSId or None)."""

    def __init__(self, sbml):
        self.sbml = sbml
        self.ids: dict[str, str | None] = {}

    def id(self, text: str) -> str | None:
        if text in self.ids:
            return self.ids[text]
        parts = _units.parse(text)
        if parts is None:
            self.ids[text] = None
        elif not parts:
            self.ids[text] = "dimensionless"
        else:
            libsbml = require("libsbml")
            uid, n = _units.unit_id(text), 1
            while self.sbml.getUnitDefinition(uid if n == 1 else f"{uid}_{n}") is not None:
                n += 1
            uid = uid if n == 1 else f"{uid}_{n}"
            definition = self.sbml.createUnitDefinition()
            _ok(definition.setId(uid), f"unit {text}")
            definition.setName(text)
            for kind, exponent, scale, multiplier in parts:
                unit = definition.createUnit()
                unit.setKind(libsbml.UnitKind_forName(kind))
                unit.setExponent(exponent)
                unit.setScale(scale)
                unit.setMultiplier(multiplier)
            self.ids[text] = uid
        return self.ids[text]


def _math(expr, libsbml, sp):
    """A sympy expression as a libsbml AST."""

    def node(kind, *children, name=None, value=None):
        ast = libsbml.ASTNode(kind)
        if name is not None:
            ast.setName(name)
        if value is not None:
            ast.setValue(value)
        for child in children:
            ast.addChild(child)
        return ast

    def number(value):
        if isinstance(value, int):
            return node(libsbml.AST_INTEGER, value=value)
        return node(libsbml.AST_REAL, value=float(value))

    functions = {
        sp.exp: libsbml.AST_FUNCTION_EXP,
        sp.log: libsbml.AST_FUNCTION_LN,
        sp.Abs: libsbml.AST_FUNCTION_ABS,
        sp.floor: libsbml.AST_FUNCTION_FLOOR,
        sp.ceiling: libsbml.AST_FUNCTION_CEILING,
        sp.sin: libsbml.AST_FUNCTION_SIN,
        sp.cos: libsbml.AST_FUNCTION_COS,
        sp.tan: libsbml.AST_FUNCTION_TAN,
        sp.asin: libsbml.AST_FUNCTION_ARCSIN,
        sp.acos: libsbml.AST_FUNCTION_ARCCOS,
        sp.atan: libsbml.AST_FUNCTION_ARCTAN,
        sp.sinh: libsbml.AST_FUNCTION_SINH,
        sp.cosh: libsbml.AST_FUNCTION_COSH,
        sp.tanh: libsbml.AST_FUNCTION_TANH,
        sp.asinh: libsbml.AST_FUNCTION_ARCSINH,
        sp.acosh: libsbml.AST_FUNCTION_ARCCOSH,
        sp.atanh: libsbml.AST_FUNCTION_ARCTANH,
    }
    relations = {
        sp.StrictLessThan: libsbml.AST_RELATIONAL_LT,
        sp.LessThan: libsbml.AST_RELATIONAL_LEQ,
        sp.StrictGreaterThan: libsbml.AST_RELATIONAL_GT,
        sp.GreaterThan: libsbml.AST_RELATIONAL_GEQ,
        sp.Equality: libsbml.AST_RELATIONAL_EQ,
        sp.Unequality: libsbml.AST_RELATIONAL_NEQ,
    }
    logical = {
        sp.And: libsbml.AST_LOGICAL_AND,
        sp.Or: libsbml.AST_LOGICAL_OR,
        sp.Xor: libsbml.AST_LOGICAL_XOR,
        sp.Not: libsbml.AST_LOGICAL_NOT,
    }

    def convert(e):
        if e.is_Symbol:
            if e.name == TIME:
                return node(libsbml.AST_NAME_TIME, name=TIME)
            return node(libsbml.AST_NAME, name=e.name)
        if e is sp.true or e is sp.false:
            return node(libsbml.AST_CONSTANT_TRUE if e is sp.true else libsbml.AST_CONSTANT_FALSE)
        if e is sp.E:
            return node(libsbml.AST_CONSTANT_E)
        if e is sp.pi:
            return node(libsbml.AST_CONSTANT_PI)
        if e.is_Integer:
            return number(int(e))
        if e.is_Rational:
            return node(libsbml.AST_DIVIDE, number(int(e.p)), number(int(e.q)))
        if e.is_Number:
            return number(float(e))
        if e.is_Add:
            return node(libsbml.AST_PLUS, *map(convert, e.args))
        if e.is_Mul:
            return product(e)
        if e.is_Pow:
            base, exponent = e.args
            if exponent == -1:
                return node(libsbml.AST_DIVIDE, number(1), convert(base))
            if exponent == sp.Rational(1, 2):
                return node(libsbml.AST_FUNCTION_ROOT, number(2), convert(base))
            return node(libsbml.AST_POWER, convert(base), convert(exponent))
        if e.func in functions and len(e.args) == 1:
            return node(functions[e.func], convert(e.args[0]))
        if e.func in relations:
            return node(relations[e.func], *map(convert, e.args))
        if e.func in logical:
            return node(logical[e.func], *map(convert, e.args))
        if isinstance(e, sp.Max | sp.Min):  # SBML L3V2 functions
            kind = libsbml.AST_FUNCTION_MAX if isinstance(e, sp.Max) else libsbml.AST_FUNCTION_MIN
            return node(kind, *map(convert, e.args))
        if isinstance(e, sp.Piecewise):
            children = []
            for value, condition in e.args:
                children.append(convert(value))
                if condition is not sp.true:
                    children.append(convert(condition))
            return node(libsbml.AST_FUNCTION_PIECEWISE, *children)
        if isinstance(e, sp.sign):
            (x,) = e.args
            return convert(sp.Piecewise((1, x > 0), (-1, x < 0), (0, True)))
        raise CartpkError(f"cannot write {type(e).__name__} ({e}) as SBML math")

    def product(e):
        numerator, denominator = [], []
        for factor in e.args:
            if factor.is_Rational and not factor.is_Integer:
                numerator.append(sp.Integer(factor.p))
                denominator.append(sp.Integer(factor.q))
            elif factor.is_Pow and factor.exp.is_number and factor.exp.is_negative:
                denominator.append(factor.base**-factor.exp)
            else:
                numerator.append(factor)
        sign = 1
        if numerator and numerator[0] == -1:
            sign, numerator = -1, numerator[1:]
        numerator = [f for f in numerator if f != 1]

        def times(factors):
            if not factors:
                return number(1)
            if len(factors) == 1:
                return convert(factors[0])
            return node(libsbml.AST_TIMES, *map(convert, factors))

        ast = times(numerator)
        if denominator:
            ast = node(libsbml.AST_DIVIDE, ast, times(denominator))
        return node(libsbml.AST_MINUS, ast) if sign < 0 else ast

    return convert(expr)


def _ok(code, what):
    libsbml = require("libsbml")
    if code != libsbml.LIBSBML_OPERATION_SUCCESS:
        raise CartpkError(
            f"cannot write {what} as SBML: {libsbml.OperationReturnValue_toString(code)}"
        )


def _describe(model) -> str:
    """``BloodStromaTumour(mode='solid') + anti_vegf``: the model and its therapies."""
    if isinstance(model, CombinedModel):
        return " + ".join([_describe(model.core), *(t.name for t in model.therapies)])
    return repr(model)


def _model_id(model) -> str:
    if isinstance(model, CombinedModel):
        return "_".join([_model_id(model.core), *(t.name for t in model.therapies)])
    return type(model).__name__


def _sid(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", text)
    return name if re.match(r"[A-Za-z_]", name) else f"_{name}"
