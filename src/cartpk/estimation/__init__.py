"""Estimation: fit cartpk models to NONMEM-style data.

- :func:`fit` is the one entry point; the strategy objects (:class:`AbstractStrategy`)
  :class:`Population` (nonlinear mixed effects by FOCE-I or Laplace), :class:`SAEM`
  (nonlinear mixed effects by stochastic approximation EM, as Monolix), :class:`Individual`
  (per-subject ML/MAP, multi-start) and :class:`SummaryStatistics` (published medians and
  quantiles, through a virtual trial) choose how;
- :class:`Observation` ties a ``DVID`` to a model observable and a residual error model
  (:class:`Additive`, :class:`Proportional`, :class:`Combined`, :class:`Exponential`); censored
  values use Beal's M3;
- :class:`CovariateEffect` adds covariate effects on typical values;
- :func:`profile` and :func:`bootstrap` add uncertainty beyond standard errors;
- :func:`sample_parameters` and :func:`simulate_study` simulate studies (simulate-and-re-estimate).

The equations are in ``docs/estimation.md``.
"""

from .api import MODELS, SOLVERS, fit, load_model
from .error_models import (
    ERROR_KINDS,
    ERROR_MODELS,
    Additive,
    Combined,
    ErrorModel,
    Exponential,
    Proportional,
    neg2_loglik,
)
from .individual import Individual, IndividualResult
from .mixed_effects import ConvergenceError, Population, raise_if_not_converged
from .npde import npde_summary, npde_table
from .pcvpc import pcvpc_table
from .problem import CovariateEffect, Observation, build_problem, model_observables
from .results import PopulationResult, result_at
from .saem import SAEM
from .saved import load_fit
from .simulation import sample_parameters, simulate_study
from .strategy import AbstractStrategy, Settings
from .summary_stats import SummaryFit, SummaryStatistics, Target
from .uncertainty import bootstrap, estimated_index, profile

__all__ = [
    "ERROR_KINDS",
    "ERROR_MODELS",
    "MODELS",
    "SOLVERS",
    "AbstractStrategy",
    "Additive",
    "Combined",
    "ConvergenceError",
    "CovariateEffect",
    "ErrorModel",
    "Exponential",
    "Individual",
    "IndividualResult",
    "Observation",
    "Population",
    "PopulationResult",
    "SAEM",
    "Proportional",
    "Settings",
    "SummaryFit",
    "SummaryStatistics",
    "Target",
    "bootstrap",
    "build_problem",
    "estimated_index",
    "fit",
    "load_fit",
    "load_model",
    "model_observables",
    "neg2_loglik",
    "npde_summary",
    "npde_table",
    "pcvpc_table",
    "profile",
    "raise_if_not_converged",
    "result_at",
    "sample_parameters",
    "simulate_study",
]
