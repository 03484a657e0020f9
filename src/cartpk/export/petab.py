"""Export a fitting problem in the PEtab format, version 1 (:func:`to_petab`).

The problem is the one :func:`cartpk.fit` builds from the same arguments
(:func:`~cartpk.estimation.build_problem`): the model, a NONMEM-style dataset, the observation
types with their residual error models, initial and fixed values. Its files
(:attr:`PetabProblem.files`):

- ``model.xml``: the model in SBML (:func:`~cartpk.export.to_sbml`), with dose events whose
  times and amounts are parameters;
- ``conditions.tsv``: one simulation condition per subject (``ID_<ID>``), setting the dose
  parameters to that subject's doses;
- ``measurements.tsv``: one row per observation (``observableId``, ``simulationConditionId``,
  ``measurement``, ``time``), times as the fit uses them (from each subject's dose for a model
  with a ``start_time``, such as ``Multiphasic``);
- ``observables.tsv``: one observable per DVID (``obs_<observable>``, with ``_<DVID>`` when
  several DVIDs share an observable); the residual error model as PEtab's transformation and
  noise formula (exponential: ``log``, ``sigma_log``; additive: ``sigma_add``; proportional:
  ``sigma_prop * abs(f)``; combined: ``sqrt(sigma_add^2 + (sigma_prop * f)^2)``);
- ``parameters.tsv``: the model parameters (scale ``log`` for log-transformed ones, ``lin``
  otherwise) and the residual SDs, with nominal values, bounds and ``estimate`` (0 when fixed);
- ``problem.yaml``: the file that names them (``format_version: 1``).

PEtab version 1 has no random effects, covariate models or censored observations: the exported
problem is the fixed-effects (naive pooled) one, and censored observations are left out (a
warning says how many).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CartpkError
from ..estimation.error_models import Additive, Combined, Exponential, Proportional
from ..estimation.problem import build_problem
from ..models.base import AbstractModel
from .sbml import DoseSlots, document, parameter_values
from .symbolic import trace

#: file names of an exported PEtab problem
FILES = {
    "model": "model.xml",
    "conditions": "conditions.tsv",
    "measurements": "measurements.tsv",
    "observables": "observables.tsv",
    "parameters": "parameters.tsv",
    "problem": "problem.yaml",
}


@dataclass(frozen=True, eq=False)
class PetabProblem:
    """A PEtab problem: the SBML model and the four tables (see the module docstring).

    Attributes:
        sbml: the SBML document.
        conditions, measurements, observables, parameters: the tables.
        censored: how many censored observations were left out.
    """

    sbml: str
    conditions: pd.DataFrame
    measurements: pd.DataFrame
    observables: pd.DataFrame
    parameters: pd.DataFrame
    censored: int = 0

    @property
    def yaml(self) -> str:
        """``problem.yaml``: the format version and the files."""
        return (
            "format_version: 1\n"
            f"parameter_file: {FILES['parameters']}\n"
            "problems:\n"
            f"- sbml_files:\n  - {FILES['model']}\n"
            f"  condition_files:\n  - {FILES['conditions']}\n"
            f"  measurement_files:\n  - {FILES['measurements']}\n"
            f"  observable_files:\n  - {FILES['observables']}\n"
        )

    @property
    def files(self) -> dict[str, Callable[[Path], None]]:
        """File name -> a function writing that file at the path it is given, for
        :meth:`cartpk.commands.ResultsFolder.write` (tables tab-separated, numbers exact)."""

        def text(content):
            return lambda path: Path(path).write_text(content)

        def table(frame):
            return lambda path: frame.to_csv(path, sep="\t", index=False)

        return {
            FILES["model"]: text(self.sbml),
            FILES["conditions"]: table(self.conditions),
            FILES["measurements"]: table(self.measurements),
            FILES["observables"]: table(self.observables),
            FILES["parameters"]: table(self.parameters),
            FILES["problem"]: text(self.yaml),
        }


def to_petab(
    model: AbstractModel,
    data,
    *,
    observations: Mapping | None = None,
    initial: Mapping[str, float] | None = None,
    fixed: Mapping[str, float] | Sequence[str] | None = None,
    compartments: Mapping | None = None,
    ignore_doses: bool = False,
    columns: Mapping[str, str] | Sequence[str] | None = None,
    ignore: Sequence[str] | None = None,
    accept: Sequence[str] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    spread: float = 1000.0,
) -> PetabProblem:
    """The fitting problem of ``model`` and ``data`` as a PEtab problem.

    Write its files with :class:`cartpk.commands.ResultsFolder`:
    ``folder.write(problem.files, options={...})``.

    Args:
        model: the structural model.
        data: a NONMEM-style dataset (a CSV path, a DataFrame or a
            :class:`~cartpk.nonmem.NonmemData`).
        observations, initial, fixed, compartments, ignore_doses, columns, ignore, accept: as
            in :func:`cartpk.fit`.
        bounds: parameter or ``sigma_<name>`` -> (lower, upper) for the parameter table
            (natural scale, model units).
        spread: the factor that sets bounds a parameter does not have: ``nominal / spread`` to
            ``nominal * spread`` on the log scale, ``nominal -/+ spread * max(|nominal|, 1)``
            on the linear scale.

    Raises:
        CartpkError: for invalid data or choices, as :func:`cartpk.fit` does.
    """
    if isinstance(spread, bool) or not (
        isinstance(spread, int | float) and spread > 1 and math.isfinite(spread)
    ):
        raise CartpkError(f"spread must be a number > 1, got {spread!r}")
    problem = build_problem(
        model,
        data,
        observations=observations,
        initial=initial,
        fixed=fixed,
        variability=(),
        compartments=compartments,
        ignore_doses=ignore_doses,
        columns=columns,
        ignore=ignore,
        accept=accept,
    )
    layout, arrays = problem.layout, problem.arrays
    names = model.state_names
    doses = DoseSlots.of(arrays.doses, names)
    per_subject = [doses.values(_subject(arrays.doses, p), names) for p in range(arrays.n_subjects)]
    nominal = _nominal(layout, initial, fixed)
    values = parameter_values(model, {n: nominal[n] for n in layout.names})
    exported = document(trace(model), values, doses, per_subject[0] if per_subject else {}, None)

    # measurements (censored ones left out)
    mask = np.asarray(arrays.mask)
    censored = np.asarray(arrays.censored) | np.asarray(arrays.censored_above)
    observable_ids = _observable_ids(layout)
    conditions = _condition_ids(problem.ids)
    frame = problem.data.frame
    rows = []
    for p, t in zip(*np.nonzero(mask & ~censored), strict=True):
        rows.append(
            {
                "observableId": observable_ids[int(arrays.obs_type[p, t])],
                "simulationConditionId": conditions[p],
                "measurement": float(frame.loc[int(problem.row_index[p, t]), "DV"]),
                "time": float(arrays.time[p, t]),
            }
        )
    left_out = int((mask & censored).sum())
    if left_out:
        warnings.warn(
            f"{problem.data.source}: {left_out} censored observations left out of the PEtab "
            "problem (PEtab version 1 has no censoring)",
            UserWarning,
            stacklevel=2,
        )
    measurements = pd.DataFrame(
        rows, columns=["observableId", "simulationConditionId", "measurement", "time"]
    )
    observed = set(measurements["simulationConditionId"])
    condition_table = pd.DataFrame(
        [
            {
                "conditionId": conditions[p],
                "conditionName": f"ID {problem.ids[p]}",
                **per_subject[p],
            }
            for p in range(arrays.n_subjects)
            if conditions[p] in observed
        ],
        columns=["conditionId", "conditionName", *doses.ids()],
    )
    observable_table = pd.DataFrame(
        [
            _observable(oid, obs, exported.observables[obs.observable], layout, t)
            for t, (oid, obs) in enumerate(zip(observable_ids, layout.observations, strict=True))
        ]
    )
    parameter_table = pd.DataFrame(_parameter_rows(model, layout, nominal, bounds, spread))
    clashes = sorted(set(parameter_table["parameterId"]) - set(layout.names) & exported.ids)
    if clashes:
        raise CartpkError(f"{', '.join(clashes)} names both a residual SD and a model quantity")
    return PetabProblem(
        exported.text,
        condition_table,
        measurements,
        observable_table,
        parameter_table,
        left_out,
    )


def _subject(doses, p):
    """Subject ``p``'s rows of stacked dose arrays."""
    return type(doses)(*(np.asarray(a)[p] for a in (doses.times, doses.bolus, doses.rate)))


def _nominal(layout, initial, fixed) -> dict[str, float]:
    """Reported name -> the value a fit starts from (fixed, else initial, else the default), as
    :func:`~cartpk.estimation.build_problem` chooses it."""
    initial = dict(initial or {})
    if fixed is not None and not isinstance(fixed, Mapping):
        fixed = {name: initial.get(name) for name in fixed}
    fixed = dict(fixed or {})
    specs = layout.model.parameter_set.specs
    out = {}
    for label in layout.labels:
        group, key = label
        name = layout.label_name(label)
        value = fixed.get(name)
        value = initial.get(name) if value is None else value
        if value is None and group == "theta":
            value = specs[key].default
        elif value is None and group == "sigma":
            value = layout.observations[key[0]].error.initial()[key[1]]
        if value is not None:
            out[name] = float(value)
    return out


def _condition_ids(ids) -> list[str]:
    """``ID_<ID>`` for each subject (characters an SBML id cannot hold become ``_``); the
    position instead if two IDs would give the same condition id."""
    names = [re.sub(r"[^A-Za-z0-9_]", "_", f"ID_{i}") for i in ids]
    if len(set(names)) < len(names):
        names = [f"subject_{p + 1}" for p in range(len(ids))]
    return names


def _observable_ids(layout) -> list[str]:
    observables = [o.observable for o in layout.observations]
    return [
        f"obs_{name}" + (f"_{dvid}" if observables.count(name) > 1 else "")
        for name, dvid in zip(observables, layout.dvids, strict=True)
    ]


def _observable(oid, observation, entity, layout, t) -> dict:
    error = observation.error
    sigma = {name: layout.sigma_name(t, name) for name in error.parameters}
    if isinstance(error, Exponential):
        noise = sigma["log"]
    elif isinstance(error, Additive):
        noise = sigma["add"]
    elif isinstance(error, Proportional):
        noise = f"{sigma['prop']} * abs({entity})"
    elif isinstance(error, Combined):
        noise = f"sqrt({sigma['add']}^2 + ({sigma['prop']} * {entity})^2)"
    else:
        raise CartpkError(f"the {type(error).__name__} error model has no PEtab form")
    return {
        "observableId": oid,
        "observableName": observation.label,
        "observableFormula": entity,
        "observableTransformation": "log" if error.log_scale else "lin",
        "noiseFormula": noise,
        "noiseDistribution": "normal",
    }


def _parameter_rows(model, layout, nominal, bounds, spread) -> list[dict]:
    bounds = dict(bounds or {})
    specs = model.parameter_set.specs
    known = set(layout.report_names())
    unknown = sorted(set(bounds) - known)
    if unknown:
        raise CartpkError(f"bounds: unknown parameter(s) {', '.join(unknown)}")
    rows = []
    for label, free in zip(layout.labels, layout.free, strict=True):
        group, key = label
        name = layout.label_name(label)
        if group == "theta":
            spec = specs[key]
            scale = "log" if spec.transform == "log" else "lin"
            lower, upper = spec.lower, spec.upper
            description = spec.description
        elif group == "sigma":
            scale, lower, upper = "log", 0.0, math.inf
            description = f"residual SD ({key[1]}) of {layout.observations[key[0]].label}"
        else:  # no covariate effects or random effects in PEtab version 1
            continue
        value = nominal[name]
        lower, upper = map(float, bounds.get(name, _bounds(value, scale, lower, upper, spread)))
        if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper) or (
            scale == "log" and lower <= 0
        ):
            raise CartpkError(
                f"bounds of {name}: need finite lower < upper"
                + (" and lower > 0 (log scale)" if scale == "log" else "")
                + f", got ({lower:g}, {upper:g})"
            )
        rows.append(
            {
                "parameterId": name,
                "parameterName": description,
                "parameterScale": scale,
                "lowerBound": lower,
                "upperBound": upper,
                "nominalValue": value,
                "estimate": int(free),
            }
        )
    return rows


def _bounds(nominal, scale, lower, upper, spread) -> tuple[float, float]:
    """Finite bounds (positive on the log scale): the parameter's own where they are, else
    ``spread`` around the nominal value."""
    if scale == "log":
        low = lower if lower > 0 else nominal / spread
        high = upper if math.isfinite(upper) else nominal * spread
    else:
        width = spread * max(abs(nominal), 1.0)
        low = lower if math.isfinite(lower) else nominal - width
        high = upper if math.isfinite(upper) else nominal + width
    return float(low), float(high)
