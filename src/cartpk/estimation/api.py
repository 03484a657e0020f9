"""The one entry point for estimation, :func:`fit`, and model lookup by name."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import diffrax as dfx

from ..errors import CartpkError
from ..models import AbstractModel, BloodStromaTumour, Multiphasic, pk
from ..precision import require_x64
from ..simulate import DEFAULT_MAX_STEPS, DEFAULT_RTOL, DEFAULT_SOLVER
from .mixed_effects import Population
from .problem import CovariateEffect, Observation
from .saem import SAEM
from .strategy import AbstractStrategy, Settings

#: models known to ``cartpk fit --model NAME``
MODELS: dict[str, Callable[[], AbstractModel]] = {
    "multiphasic": Multiphasic,
    "blood_stroma_tumour": BloodStromaTumour,
    "one_compartment_iv": pk.OneCompartmentIV,
    "one_compartment_oral": pk.OneCompartmentOral,
    "one_compartment_oral_lag": pk.OneCompartmentOralLag,
    "two_compartment_iv": pk.TwoCompartmentIV,
    "two_compartment_oral": pk.TwoCompartmentOral,
    "two_compartment_oral_lag": pk.TwoCompartmentOralLag,
    "three_compartment_iv": pk.ThreeCompartmentIV,
    "three_compartment_oral": pk.ThreeCompartmentOral,
    "three_compartment_oral_lag": pk.ThreeCompartmentOralLag,
    "indirect_inhibit_kin": pk.IndirectResponseI,
    "indirect_inhibit_kout": pk.IndirectResponseII,
    "indirect_stimulate_kin": pk.IndirectResponseIII,
    "indirect_stimulate_kout": pk.IndirectResponseIV,
}

#: population methods known to ``fit(..., method=NAME)``
METHODS = ("foce", "laplace", "saem")

#: ODE solvers known to ``cartpk fit --solver NAME``
SOLVERS: dict[str, Callable[[], dfx.AbstractSolver]] = {
    "kvaerno5": dfx.Kvaerno5,
    "tsit5": dfx.Tsit5,
    "dopri5": dfx.Dopri5,
}


def fit(
    model: AbstractModel,
    data,
    strategy: AbstractStrategy | None = None,
    *,
    method: str | None = None,
    observations: Mapping[int, Observation] | None = None,
    initial: Mapping[str, float] | None = None,
    fixed: Mapping[str, float] | Sequence[str] | None = None,
    variability: Mapping[str, float] | Sequence[str] | None = None,
    block: bool = False,
    covariates: Sequence[CovariateEffect] = (),
    compartments: Mapping | None = None,
    ignore_doses: bool = False,
    columns: Mapping[str, str] | Sequence[str] | None = None,
    ignore: Sequence[str] | None = None,
    accept: Sequence[str] | None = None,
    solver: dfx.AbstractSolver = DEFAULT_SOLVER,
    rtol: float = DEFAULT_RTOL,
    max_steps: int = DEFAULT_MAX_STEPS,
    progress: bool | Callable[[str], None] = False,
):
    """Fit a model to data with an estimation strategy.

    Args:
        model: the structural model (e.g. ``cartpk.Multiphasic()``).
        data: a NONMEM-style dataset (a CSV path, a DataFrame, a
            :class:`~cartpk.nonmem.NonmemData`, or a :class:`~.problem.Problem` already built
            by :func:`build_problem`); for :class:`SummaryStatistics`, the published
            :class:`Target` statistics.
        strategy: :class:`Population` (default; FOCE-I or Laplace), :class:`SAEM`,
            :class:`Individual` or :class:`SummaryStatistics`.
        method: shorthand for a population strategy with default settings: ``"foce"``,
            ``"laplace"`` (``Population(method=...)``) or ``"saem"`` (``SAEM()``).
        observations: DVID -> :class:`Observation` (observable and residual error model);
            default DVID 1 -> the model's first observable, exponential error.
        initial: initial values (natural scale) by reported name: typical values,
            ``omega_<name>``, ``sigma_<name>``, ``beta_...``.
        fixed: names to keep at their initial value, or name -> fixed value.
        variability: parameters with log-normal between-subject variability (on their
            unconstrained scale), or name -> initial SD; default every estimated typical value.
        block: estimate the full covariance of the random effects.
        covariates: :class:`CovariateEffect` effects on typical values.
        compartments: dataset ``CMT`` -> model state for dose records.
        ignore_doses: drop dose records and keep ``TIME`` as it is (by default a model without
            dose input, such as ``Multiphasic``, counts each subject's time from its dose).
        columns, ignore, accept: file column roles and NONMEM ``IGNORE``/``ACCEPT`` rules, as
            in :func:`~cartpk.read_nonmem`.
        solver, rtol, max_steps: ODE solver settings (:func:`~cartpk.simulate`); an explicit
            solver such as ``diffrax.Tsit5()`` is faster for non-stiff models.
        progress: print progress lines (``True``) or pass each line to a callable.

    Returns:
        The strategy's result: a :class:`PopulationResult` (Population, SAEM),
            :class:`IndividualResult` or
        :class:`SummaryFit`.

    Raises:
        CartpkError: on invalid data or choices (one-line message naming what is wrong).
    """
    require_x64()
    if method is not None:
        if strategy is not None:
            raise CartpkError("give either a strategy or method, not both")
        if method not in METHODS:
            raise CartpkError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        strategy = SAEM() if method == "saem" else Population(method=method)
    strategy = Population() if strategy is None else strategy
    if not isinstance(strategy, AbstractStrategy):
        raise CartpkError(
            "strategy must be Population(...), SAEM(...), Individual(...) or "
            "SummaryStatistics(...), got "
            f"{type(strategy).__name__}"
        )
    if not isinstance(model, AbstractModel):
        raise CartpkError(f"model must be a cartpk model, got {type(model).__name__}")
    settings = Settings(
        observations=observations,
        initial=initial,
        fixed=fixed,
        variability=variability,
        block=block,
        covariates=tuple(covariates),
        compartments=compartments,
        ignore_doses=ignore_doses,
        columns=columns,
        ignore=ignore,
        accept=accept,
        solver=solver,
        rtol=float(rtol),
        max_steps=int(max_steps),
    )
    return strategy.run(model, data, settings, _printer(progress))


def _printer(progress) -> Callable[[str], None] | None:
    if progress is True:
        return lambda line: print(line, flush=True)
    if callable(progress):
        return progress
    return None


def load_model(name: str) -> AbstractModel:
    """A model by name (a key of :data:`MODELS`: ``multiphasic``, ``blood_stroma_tumour``, the
    PK/PD library's ``one_compartment_oral`` ...) or ``path/to/file.py:Class``."""
    if name in MODELS:
        return MODELS[name]()
    if ":" not in name:
        raise CartpkError(
            f"unknown model {name!r}: use one of {', '.join(MODELS)} or path/to/file.py:ClassName"
        )
    path_text, _, class_name = name.rpartition(":")
    path = Path(path_text)
    if not path.is_file():
        raise CartpkError(f"model file {path_text} not found")
    module_name = f"_cartpk_user_model_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise CartpkError(f"model file {path_text} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # a user's file: report any import failure on one line
        raise CartpkError(f"model file {path_text} failed to import: {error!r}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise CartpkError(f"model file {path_text} has no class {class_name}")
    if not (isinstance(cls, type) and issubclass(cls, AbstractModel)):
        raise CartpkError(f"{path_text}:{class_name} is not a cartpk model (AbstractModel)")
    try:
        return cls()
    except Exception as error:
        raise CartpkError(f"{path_text}:{class_name}() failed: {error!r}") from None
