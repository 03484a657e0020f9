"""A population fit on disk and back: ``fit.json`` in a results folder, and :func:`load_fit`.

``fit.json`` (schema ``cartpk-fit/1``) holds what the fit cannot be rebuilt without: the model
(a built-in name, or the user model's file copied to ``inputs/model.py``), the options the
problem was built with, the numerical settings, the estimates ``x`` (internal scale, with their
labels), the EBEs, the covariance matrices and how the fit ended. The dataset is the folder's
``inputs/data.csv``. :func:`load_fit` rebuilds the problem and evaluates the objective at the
saved estimates (no refit), so every table, plot and simulation of the result works as after the
fit, and checks that the OFV is the one saved.
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import fields
from pathlib import Path

import numpy as np

from ..errors import CartpkError
from ..models import AbstractModel
from ..nonmem import read_nonmem
from .api import MODELS, SOLVERS, load_model
from .error_models import ERROR_MODELS
from .mixed_effects import Covariance, Population
from .objective import Spec
from .problem import CovariateEffect, Observation, build_problem
from .results import PopulationResult, result_at
from .saem import SAEM

SCHEMA = "cartpk-fit/1"
#: how far the reloaded OFV may differ from the saved one (the EBE searches restart from the
#: saved EBEs; the ODE tolerance bounds the rest)
OFV_TOLERANCE = 1e-3
#: the population strategies a saved fit restores, by class name
STRATEGIES = {"Population": Population, "SAEM": SAEM}
#: problem options that belong to reading the file (:func:`~cartpk.read_nonmem`)
READ_OPTIONS = ("compartments", "columns", "ignore", "accept")


def model_reference(model: AbstractModel) -> dict:
    """How ``fit.json`` names a model: ``{"name": ...}`` for a built-in model, else the class and
    the file that defines it (``{"class": ..., "file": ...}``; the file is saved with the fit)."""
    cls = type(model)
    for name, factory in MODELS.items():
        if cls is factory:
            return {"name": name}
    path = None
    if not cls.__module__.startswith("cartpk."):  # a combined model is rebuilt by its script
        try:
            path = inspect.getsourcefile(cls)
        except TypeError:  # defined interactively
            pass
    return {"class": cls.__name__, "file": path}


def fit_record(result: PopulationResult, model_file: str | None = None) -> dict:
    """The ``fit.json`` content of a population fit (``model_file``: where the user model's
    file is saved, relative to the folder)."""
    problem, spec = result.problem, result.spec
    solver = next((k for k, v in SOLVERS.items() if type(spec.solver) is v), None)
    if solver is None:
        raise CartpkError(
            f"fit.json records the solver by name ({', '.join(SOLVERS)}); "
            f"{type(spec.solver).__name__} is not one of them"
        )
    reference = model_reference(problem.layout.model)
    if "file" in reference:
        reference["file"] = model_file
    cov = result.covariance
    return {
        "schema": SCHEMA,
        "model": reference,
        "problem": _options_record(problem.options),
        "spec": {
            "method": spec.method,
            "solver": solver,
            "rtol": float(spec.rtol),
            "max_steps": spec.max_steps,
            "inner_tol": spec.inner_tol,
            "inner_max_steps": spec.inner_max_steps,
        },
        "strategy": {"class": type(result.strategy).__name__, **_fields(result.strategy)},
        "labels": [problem.layout.label_name(label) for label in problem.layout.labels],
        "x": [float(v) for v in result.x],
        "z": np.asarray(result.z, dtype=float).tolist(),
        "covariance": {
            "hessian": _matrix(cov.hessian),
            "sandwich": _matrix(cov.sandwich),
            "r_matrix": _matrix(cov.r_matrix),
            "message": cov.message,
            "condition_number": cov.condition_number,
        },
        "ofv": result.ofv,
        "converged": result.converged,
        "message": result.message,
        "iterations": result.iterations,
        "evaluations": result.evaluations,
        "seconds": result.seconds,
    }


def load_fit(folder, *, model: AbstractModel | None = None) -> PopulationResult:
    """A population fit written by ``cartpk fit`` or :func:`~cartpk.commands.save_fit`.

    Args:
        folder: the results folder (with ``fit.json`` and ``inputs/data.csv``).
        model: the structural model, for a model ``fit.json`` cannot rebuild (one combined with
            therapies in a script); default: the built-in model named there, or the user model
            class in the folder's ``inputs/model.py``.

    Raises:
        CartpkError: if the folder is not a saved population fit, or the objective at the saved
            estimates is not the saved OFV (the data or the model changed).
    """
    folder = Path(folder)
    path = folder / "fit.json"
    if not path.is_file():
        raise CartpkError(f"{folder} has no fit.json: not a population fit saved by cartpk")
    record = json.loads(path.read_text())
    if record.get("schema") != SCHEMA:
        raise CartpkError(f"{path}: schema {record.get('schema')!r} is not {SCHEMA}")
    model = model if model is not None else _model(folder, record["model"])
    data_path = folder / "inputs" / "data.csv"
    if not data_path.is_file():
        raise CartpkError(f"{folder} has no inputs/data.csv: the fit's dataset is not saved")
    options = _options(record["problem"])
    reading = {k: options.pop(k, None) for k in READ_OPTIONS}
    data = read_nonmem(data_path.read_bytes(), name=str(data_path), **reading)
    problem = build_problem(model, data, **options)
    labels = [problem.layout.label_name(label) for label in problem.layout.labels]
    if labels != record["labels"]:
        raise CartpkError(
            f"{path}: the rebuilt problem estimates {', '.join(labels)}, the saved fit "
            f"{', '.join(record['labels'])}"
        )
    settings = dict(record["spec"])
    spec = Spec(problem.layout, solver=SOLVERS[settings.pop("solver")](), **settings)
    cov = record["covariance"]
    strategy = dict(record["strategy"])
    strategy_class = STRATEGIES.get(strategy.pop("class"))
    if strategy_class is None:
        raise CartpkError(
            f"{path}: strategy {record['strategy']['class']!r} is not a population fit"
        )
    strategy = strategy_class(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in strategy.items()}
    )
    result = result_at(
        problem,
        spec,
        np.asarray(record["x"]),
        strategy=strategy,
        covariance=Covariance(
            _array(cov["hessian"]),
            _array(cov["sandwich"]),
            _array(cov["r_matrix"]),
            cov["message"],
            cov["condition_number"],
        ),
        z=np.asarray(record["z"], dtype=float).reshape(problem.arrays.n_subjects, -1),
        message=record["message"],
        converged=record["converged"],
        iterations=record["iterations"],
        seconds=record["seconds"],
    )
    if not math.isclose(result.ofv, record["ofv"], rel_tol=0, abs_tol=OFV_TOLERANCE):
        raise CartpkError(
            f"{path}: the OFV at the saved estimates is {result.ofv:.4f}, the saved fit's "
            f"{record['ofv']:.4f}: the data, the model or cartpk changed since the fit"
        )
    return result


# -- (de)serialising ------------------------------------------------------------------------


def _model(folder: Path, reference: dict) -> AbstractModel:
    if "name" in reference:
        return load_model(reference["name"])
    if not reference.get("file"):
        raise CartpkError(
            f"the model {reference.get('class')} of {folder} was not saved with the fit: "
            "pass it as load_fit(folder, model=...)"
        )
    return load_model(f"{folder / reference['file']}:{reference['class']}")


def _options_record(options: dict) -> dict:
    out = dict(options)
    if out.get("observations") is not None:
        out["observations"] = {
            str(dvid): {
                "observable": o.observable,
                "error": o.error.kind,
                "values": o.error.initial(),
                "unit": o.unit,
            }
            for dvid, o in out["observations"].items()
        }
    out["covariates"] = [dict(vars(c)) for c in out.get("covariates") or ()]
    if out.get("compartments") is not None:
        out["compartments"] = [[k, v] for k, v in out["compartments"].items()]
    for name in ("fixed", "variability"):
        if out.get(name) is not None and not isinstance(out[name], dict):
            out[name] = list(out[name])
    return out


def _options(record: dict) -> dict:
    out = dict(record)
    if out.get("observations") is not None:
        out["observations"] = {
            int(dvid): Observation(
                o["observable"], ERROR_MODELS[o["error"]](**o["values"]), o.get("unit")
            )
            for dvid, o in out["observations"].items()
        }
    out["covariates"] = [CovariateEffect(**c) for c in out.get("covariates") or ()]
    if out.get("compartments") is not None:
        out["compartments"] = {k: v for k, v in out["compartments"]}
    return out


def _fields(strategy) -> dict:
    return {f.name: getattr(strategy, f.name) for f in fields(strategy)}


def _matrix(value) -> list | None:
    return None if value is None else np.asarray(value, dtype=float).tolist()


def _array(value) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=float)
