"""The estimation family: what :func:`~cartpk.estimation.fit` is told to do, as diffrax is told
which solver to use.

A strategy is a frozen dataclass of settings with one method, :meth:`AbstractStrategy.run`, that
fits a model to data under the :class:`Settings` common to every strategy. The strategies:

- :class:`~cartpk.estimation.Population`: nonlinear mixed effects by FOCE-I or Laplace;
- :class:`~cartpk.estimation.SAEM`: nonlinear mixed effects by stochastic approximation EM;
- :class:`~cartpk.estimation.Individual`: per-subject ML or MAP, multi-start;
- :class:`~cartpk.estimation.SummaryStatistics`: typical values (and variabilities) fitted to
  published medians, quantiles and geometric means through a virtual trial.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields

import diffrax as dfx

from ..errors import CartpkError
from ..models.base import AbstractModel
from ..simulate import DEFAULT_MAX_STEPS, DEFAULT_RTOL, DEFAULT_SOLVER
from .objective import Spec
from .problem import CovariateEffect, Observation, Problem, build_problem


@dataclass(frozen=True)
class Settings:
    """What every strategy shares: the statistical model around the structural one, and the ODE
    solver (see :func:`~cartpk.estimation.fit` for each argument)."""

    observations: Mapping[int, Observation] | None = None
    initial: Mapping[str, float] | None = None
    fixed: Mapping[str, float] | Sequence[str] | None = None
    variability: Mapping[str, float] | Sequence[str] | None = None
    block: bool = False
    covariates: Sequence[CovariateEffect] = ()
    compartments: Mapping | None = None
    ignore_doses: bool = False
    columns: Mapping[str, str] | Sequence[str] | None = None
    ignore: Sequence[str] | None = None
    accept: Sequence[str] | None = None
    solver: dfx.AbstractSolver = DEFAULT_SOLVER
    rtol: float = DEFAULT_RTOL
    max_steps: int = DEFAULT_MAX_STEPS

    #: the settings that shape a :class:`~.problem.Problem` (the rest are solver settings)
    PROBLEM = (
        "observations",
        "initial",
        "fixed",
        "variability",
        "block",
        "covariates",
        "compartments",
        "ignore_doses",
        "columns",
        "ignore",
        "accept",
    )

    def problem(self, model: AbstractModel, data) -> Problem:
        """The data as a fitting problem, built once (a :class:`Problem` is used as it is)."""
        if not isinstance(data, Problem):
            return build_problem(model, data, **{k: getattr(self, k) for k in self.PROBLEM})
        given = [
            f.name
            for f in fields(self)
            if f.name in self.PROBLEM and getattr(self, f.name) != f.default
        ]
        if given:
            raise CartpkError(
                f"data is a built Problem: give {', '.join(given)} to build_problem, not to fit"
            )
        if data.layout.model is not model:
            raise CartpkError("data is a Problem built for another model")
        return data

    def spec(self, layout, **options) -> Spec:
        """The objective's numerical settings: these solver settings and ``options``."""
        return Spec(layout, solver=self.solver, rtol=self.rtol, max_steps=self.max_steps, **options)

    def unsupported(self, strategy: str, *names: str) -> None:
        """Refuse settings a strategy cannot use, naming them."""
        given = [n for n in names if getattr(self, n) not in (None, False, ())]
        if given:
            raise CartpkError(f"{strategy} does not use {', '.join(given)}")


class AbstractStrategy(abc.ABC):
    """How :func:`~cartpk.estimation.fit` estimates. Subclasses are frozen dataclasses."""

    @abc.abstractmethod
    def run(
        self,
        model: AbstractModel,
        data,
        settings: Settings,
        progress: Callable[[str], None] | None,
    ):
        """Fit ``model`` to ``data``; returns the strategy's result object."""
