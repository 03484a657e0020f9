"""The one entry point for estimation, :func:`fit`, and model lookup by name for the CLI."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import diffrax as dfx

from ..errors import CartpkError
from ..models import AbstractModel, BloodStromaTumour, Multiphasic
from ..precision import require_x64
from ..simulate import DEFAULT_MAX_STEPS, DEFAULT_RTOL, DEFAULT_SOLVER
from .individual import Individual, run_individual
from .objective import Spec
from .population import Population, run_population
from .problem import Covariate, Observation, build_problem

#: models known to ``cartpk fit --model NAME``
MODELS: dict[str, Callable[[], AbstractModel]] = {
    "multiphasic": Multiphasic,
    "blood_stroma_tumour": BloodStromaTumour,
}

#: ODE solvers known to ``cartpk fit --solver NAME``
SOLVERS: dict[str, Callable[[], dfx.AbstractSolver]] = {
    "kvaerno5": dfx.Kvaerno5,
    "tsit5": dfx.Tsit5,
    "dopri5": dfx.Dopri5,
}


def fit(
    model: AbstractModel,
    data,
    strategy: Population | Individual | None = None,
    *,
    observations: Mapping[int, Observation] | None = None,
    initial: Mapping[str, float] | None = None,
    fixed: Mapping[str, float] | Sequence[str] | None = None,
    variability: Mapping[str, float] | Sequence[str] | None = None,
    block: bool = False,
    covariates: Sequence[Covariate] = (),
    compartments: Mapping | None = None,
    ignore_doses: bool = False,
    solver: dfx.AbstractSolver = DEFAULT_SOLVER,
    rtol: float = DEFAULT_RTOL,
    max_steps: int = DEFAULT_MAX_STEPS,
    progress: bool | Callable[[str], None] = False,
):
    """Fit a model to a NONMEM-style dataset.

    Args:
        model: the structural model (e.g. ``cartpk.Multiphasic()``).
        data: a CSV path, a DataFrame or a :class:`~cartpk.nonmem.NonmemData`
            (:func:`~cartpk.read_nonmem` validates it).
        strategy: :class:`Population` (default; FOCE-I or Laplace) or :class:`Individual`.
        observations: DVID -> :class:`Observation` (observable and residual error model);
            default DVID 1 -> the model's first observable, exponential error.
        initial: initial values (natural scale) by reported name: typical values,
            ``omega_<name>``, ``sigma_<name>``, ``beta_...``.
        fixed: names to keep at their initial value, or name -> fixed value.
        variability: parameters with log-normal between-subject variability (on their
            unconstrained scale), or name -> initial SD; default every estimated typical value.
        block: estimate the full covariance of the random effects.
        covariates: :class:`Covariate` effects on typical values.
        compartments: dataset ``CMT`` -> model state for dose records.
        ignore_doses: drop dose records (dose-independent models such as ``Multiphasic``).
        solver, rtol, max_steps: ODE solver settings (:func:`~cartpk.simulate`); an explicit
            solver such as ``diffrax.Tsit5()`` is faster for non-stiff models.
        progress: print progress lines (``True``) or pass each line to a callable.

    Returns:
        A :class:`~cartpk.estimation.PopulationResult` or
        :class:`~cartpk.estimation.IndividualResult`.

    Raises:
        CartpkError: on invalid data or choices (one-line message naming what is wrong).
    """
    require_x64()
    strategy = Population() if strategy is None else strategy
    if not isinstance(strategy, Population | Individual):
        raise CartpkError(
            f"strategy must be Population(...) or Individual(...), got {type(strategy).__name__}"
        )
    problem = build_problem(
        model,
        data,
        observations=observations,
        initial=initial,
        fixed=fixed,
        variability=variability,
        block=block,
        covariates=covariates,
        compartments=compartments,
        ignore_doses=ignore_doses,
    )
    say = _printer(progress)
    if isinstance(strategy, Population):
        spec = Spec(
            problem.layout,
            method=strategy.method,
            solver=solver,
            rtol=float(rtol),
            max_steps=int(max_steps),
            inner_tol=strategy.inner_tol,
        )
        return run_population(problem, strategy, spec, progress=say)
    spec = Spec(problem.layout, solver=solver, rtol=float(rtol), max_steps=int(max_steps))
    return run_individual(problem, strategy, spec, progress=say)


def _printer(progress) -> Callable[[str], None] | None:
    if progress is True:
        return lambda line: print(line, flush=True)
    if callable(progress):
        return progress
    return None


def load_model(name: str) -> AbstractModel:
    """A model by name (``multiphasic``, ``blood_stroma_tumour``) or ``path/to/file.py:Class``."""
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
