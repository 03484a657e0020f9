"""Estimation: fit cartpk models to NONMEM-style data.

- :func:`fit` is the one entry point; the strategy objects :class:`Population` (nonlinear
  mixed effects by FOCE-I or Laplace) and :class:`Individual` (per-subject ML/MAP, multi-start)
  choose how;
- :class:`Observation` ties a ``DVID`` to a model observable and a residual error model
  (:class:`Additive`, :class:`Proportional`, :class:`Combined`, :class:`Exponential`); censored
  values use Beal's M3;
- :class:`Covariate` adds covariate effects on typical values;
- :func:`profile` and :func:`bootstrap` add uncertainty beyond standard errors;
- :func:`write_results` writes estimates, EBEs, diagnostics, plots and a manifest;
- :func:`sample_parameters` and :func:`simulate_study` simulate studies (simulate-and-re-estimate).

Fits to published summary statistics are in :mod:`cartpk.estimation.summary_stats`. The
equations are in ``docs/estimation.md``.
"""

from .api import MODELS, SOLVERS, fit, load_model
from .error_models import (
    ERROR_KINDS,
    Additive,
    Combined,
    ErrorModel,
    Exponential,
    Proportional,
    neg2_loglik,
)
from .individual import Individual, IndividualResult
from .output import write_results
from .population import ConvergenceError, Population
from .problem import Covariate, Observation
from .results import PopulationResult
from .simulation import sample_parameters, simulate_study
from .uncertainty import bootstrap, profile

__all__ = [
    "ERROR_KINDS",
    "MODELS",
    "SOLVERS",
    "Additive",
    "Combined",
    "ConvergenceError",
    "Covariate",
    "ErrorModel",
    "Exponential",
    "Individual",
    "IndividualResult",
    "Observation",
    "Population",
    "PopulationResult",
    "Proportional",
    "bootstrap",
    "fit",
    "load_model",
    "neg2_loglik",
    "profile",
    "sample_parameters",
    "simulate_study",
    "write_results",
]
