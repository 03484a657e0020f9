"""Fit results: estimates with standard errors and CIs, EBEs, shrinkage and diagnostics.

Reported quantities and their scales (``estimates``):

- typical values under the model's parameter names (model units);
- covariate coefficients ``beta_<parameter>_<column>[_<level>]`` (unconstrained scale);
- ``omega_<name>``: SD of the between-subject variability on the parameter's unconstrained
  scale (the SD of the log parameter for log-transformed ones); ``corr_<a>_<b>`` with a block
  ``Omega``;
- ``sigma_<name>``: residual SDs (``add`` in the observable's unit, ``prop`` and ``log``
  dimensionless).

Standard errors come from the covariance of the internal parameters by the delta method; the
95 % CIs are Wald intervals on each quantity's internal scale (log, logit, atanh or identity),
transformed back, so they respect bounds and are asymmetric on the natural scale. Fixed
quantities have empty ``se`` and CI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .diagnostics import Diagnostics, compute, to_observation_scale, vpc_table
from .mixed_effects import Covariance, Population, evaluate_at, subject_reason
from .objective import Spec, subject_contexts
from .outer import Evaluator
from .problem import Problem

Z95 = 1.959963984540054
#: the columns every strategy's ``estimates`` has
ESTIMATE_COLUMNS = ["parameter", "estimate", "se", "rse_percent", "ci_low", "ci_high"]
#: the columns :func:`describe` adds (a population fit's ``estimates`` has both)
DESCRIPTIVE_COLUMNS = [
    "unit",
    "fixed",
    "variance",
    "variance_se",
    "cv_percent",
    "shrinkage_percent",
]

#: warning thresholds: RSE (%), SD shrinkage (%, Savic RM, Karlsson MO. AAPS J 2009;11(3):558-569,
#: doi:10.1208/s12248-009-9133-0, where 20-30 % already distorts EBE-based diagnostics), the
#: condition number of the correlation matrix (the usual rule of thumb for NONMEM's ``$COV
#: PRINT=E``), a between-subject SD near zero (unconstrained scale) and a correlation at +-1
RSE_WARNING = 50.0
SHRINKAGE_WARNING = 30.0
CONDITION_WARNING = 1000.0
OMEGA_NEAR_ZERO = 0.01
CORRELATION_BOUND = 0.99
#: a typical value within this fraction of its range from a bound of a logit parameter (of its
#: range in decades when both bounds are positive)
BOUND_FRACTION = 1e-3


@dataclass(eq=False)
class PopulationResult:
    """The result of a population fit (:func:`~cartpk.estimation.fit` with :class:`Population`).

    Attributes:
        x: internal values of every label at the estimates.
        ofv: objective function value, ``-2 log L`` (FOCE-I/Laplace approximation, including
            the ``log 2 pi`` constants; on the log scale for exponential errors).
        ofv_i: each subject's contribution.
        z: standardised EBEs (``eta_i = L z_i``), ``(P, k)``.
        g, jac: transformed predictions at the EBEs and their derivatives in the varying
            parameters (for the diagnostics).
        ebe_converged: whether each subject's EBE search converged (and its ``O_i`` is finite).
        reasons: per subject, why its evaluation at the estimates is not plain ("" if it is):
            a failed solve, an EBE search that did not converge, or the fallback solver used.
        converged, message: whether the optimisation converged, and why it stopped.
        iterations: accepted BFGS steps; evaluations: OFV evaluations (incl. covariance step).
        covariance: :class:`~.population.Covariance` of ``x``.
    """

    problem: Problem
    spec: Spec
    strategy: Population
    x: np.ndarray
    V: np.ndarray
    ofv: float
    ofv_i: np.ndarray
    grad: np.ndarray
    grad_i: np.ndarray
    z: np.ndarray
    g: np.ndarray
    jac: np.ndarray
    ebe_converged: np.ndarray
    reasons: list[str]
    converged: bool
    message: str
    iterations: int
    evaluations: int
    covariance: Covariance
    seconds: float
    extra: dict = field(default_factory=dict)

    # -- parameters ---------------------------------------------------------------------------

    @property
    def layout(self):
        return self.problem.layout

    @property
    def ofv_nonmem(self) -> float:
        """The OFV without the ``n log(2 pi)`` constant of uncensored rows, as NONMEM reports."""
        a = self.problem.arrays
        n = int(np.asarray(a.mask & ~a.censored & ~a.censored_above).sum())
        return self.ofv - n * float(np.log(2 * np.pi))

    def covariance_matrix(self, kind: str | None = None) -> np.ndarray | None:
        """Covariance of the internal parameters (``"hessian"`` or ``"sandwich"``)."""
        kind = kind or self.strategy.se
        return {"hessian": self.covariance.hessian, "sandwich": self.covariance.sandwich}.get(kind)

    @cached_property
    def _reported(self):
        """Each reported quantity on its CI scale, its derivative in ``x``, and whether any free
        parameter moves it."""
        x = jnp.asarray(self.x)
        scaled = np.asarray(self.layout.report_scaled(x))
        jac = np.asarray(jax.jacfwd(self.layout.report_scaled)(x))
        estimated = np.abs(jac[:, np.asarray(self.layout.free)]).sum(axis=1) > 0
        return scaled, jac, estimated

    def _natural(self, name: str, scaled: float) -> tuple[float, float]:
        """A reported quantity on its natural scale, and the slope of that transform."""
        value, slope = jax.jvp(
            lambda v: jnp.asarray(self.layout.from_scaled(name, v), dtype=float),
            (jnp.asarray(scaled),),
            (jnp.asarray(1.0),),
        )
        return float(value), float(slope)

    def estimates_table(self, kind: str | None = None) -> pd.DataFrame:
        """Estimates with SEs and 95 % CIs, units, and the pharmacometric columns (variance,
        CV %, shrinkage; see :func:`describe`)."""
        names = self.layout.report_names()
        scaled, jac, estimated = self._reported
        cov = self.covariance_matrix(kind)
        if cov is None:
            se_scaled = np.full(len(names), np.nan)
        else:
            se_scaled = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", jac, cov, jac), 0, None))
        se_scaled = np.where(estimated, se_scaled, np.nan)
        rows = []
        for i, name in enumerate(names):
            value, slope = self._natural(name, scaled[i])
            se = abs(slope) * se_scaled[i]
            low = float(self.layout.from_scaled(name, jnp.asarray(scaled[i] - Z95 * se_scaled[i])))
            high = float(self.layout.from_scaled(name, jnp.asarray(scaled[i] + Z95 * se_scaled[i])))
            rows.append(
                dict(
                    parameter=name,
                    estimate=value,
                    se=se,
                    rse_percent=100 * se / abs(value) if value != 0 else np.nan,
                    ci_low=low,
                    ci_high=high,
                )
            )
        table = pd.DataFrame(rows, columns=ESTIMATE_COLUMNS)
        return describe(table, self.layout, fixed=~estimated, shrinkage=self.shrinkage)

    @cached_property
    def estimates(self) -> pd.DataFrame:
        """:meth:`estimates_table` with the strategy's SE method."""
        return self.estimates_table()

    def iterations_table(self) -> pd.DataFrame:
        """The iteration history, as NONMEM's ``.ext``: one row per accepted step (FOCE-I,
        Laplace) or iteration (SAEM), its ``ofv`` (for SAEM the complete-data ``-2 log L`` of
        the current samples) and every reported parameter on its natural scale."""
        names = list(self.layout.report_names())
        rows = []
        for iteration, ofv, x in self.extra.get("history", ()):
            scaled = np.asarray(self.layout.report_scaled(jnp.asarray(x)))
            values = [
                float(self.layout.from_scaled(n, v)) for n, v in zip(names, scaled, strict=True)
            ]
            rows.append([iteration, ofv, *values])
        return pd.DataFrame(rows, columns=["iteration", "ofv", *names])

    def covariance_table(self, kind: str | None = None) -> pd.DataFrame | None:
        """Covariance of the estimated quantities on their natural (reported) scale, by the
        delta method; ``None`` without a covariance step."""
        cov = self.covariance_matrix(kind)
        if cov is None:
            return None
        names = np.array(self.layout.report_names())
        scaled, jac, estimated = self._reported
        slopes = np.array([self._natural(n, v)[1] for n, v in zip(names, scaled, strict=True)])
        natural = (slopes[:, None] * jac)[estimated]
        matrix = natural @ cov @ natural.T
        return pd.DataFrame(matrix, index=names[estimated], columns=names[estimated])

    def correlation_table(self, kind: str | None = None) -> pd.DataFrame | None:
        """Correlation matrix of the estimates; ``None`` without a covariance step."""
        cov = self.covariance_table(kind)
        if cov is None:
            return None
        sd = np.sqrt(np.diag(cov.to_numpy()))
        return cov / np.outer(sd, sd)

    @cached_property
    def correlation_condition_number(self) -> float | None:
        """Largest over smallest eigenvalue of the correlation matrix of the estimates (NONMEM's
        ``$COV PRINT=E`` condition number)."""
        corr = self.correlation_table()
        if corr is None:
            return None
        eigenvalues = np.linalg.eigvalsh(corr.to_numpy())
        return float(eigenvalues[-1] / eigenvalues[0]) if eigenvalues[0] > 0 else math.inf

    def estimate(self, name: str) -> float:
        table = self.estimates.set_index("parameter")
        return float(table.loc[name, "estimate"])

    # -- individuals ----------------------------------------------------------------------------

    @cached_property
    def etas(self) -> np.ndarray:
        """EBEs ``eta_i = L z_i``, ``(P, k)``."""
        chol = np.asarray(self.layout.omega_chol(jnp.asarray(self.x)))
        return self.z @ chol.T

    @cached_property
    def individual_parameters(self) -> np.ndarray:
        """Unconstrained individual parameters ``phi_i``, ``(P, K)``."""
        mu, _, _ = subject_contexts(self.layout, jnp.asarray(self.x), self.problem.arrays.design)
        phi = np.asarray(mu).copy()
        where = [self.layout.names.index(n) for n in self.layout.etas]
        phi[:, where] += self.etas
        return phi

    @cached_property
    def individual(self) -> pd.DataFrame:
        """One row per subject: individual parameters, etas, OFV contribution, counts."""
        layout = self.layout
        a = self.problem.arrays
        phi = jnp.asarray(self.individual_parameters)
        natural = jax.vmap(layout.natural)(phi)
        table = {"ID": list(self.problem.ids)}
        for name in layout.names:
            table[name] = np.asarray(natural[name])
        for k, name in enumerate(layout.etas):
            table[f"eta_{name}"] = self.etas[:, k]
        for column, values in self.problem.covariate_values.items():
            table[column] = values
        table["ofv"] = self.ofv_i
        table["n_obs"] = np.asarray(a.mask).sum(axis=1)
        table["n_censored"] = np.asarray(a.mask & (a.censored | a.censored_above)).sum(axis=1)
        table["ebe_converged"] = self.ebe_converged
        table["note"] = self.reasons
        return pd.DataFrame(table)

    @cached_property
    def diagnostics_arrays(self) -> Diagnostics:
        return compute(self.spec, self.problem.arrays, self.x, self.z, self.g, self.jac)

    @cached_property
    def shrinkage(self) -> dict[str, float]:
        """Shrinkage as NONMEM reports it (``ETASHRINKSD``, ``EPSSHRINKSD``), as fractions.

        ``eta_<name>``: ``1 - SD(eta*) / omega``, with the SD of the EBEs over subjects (divisor
        ``N``); ``epsilon`` (``epsilon_<dvid>`` with several observation types):
        ``1 - sqrt(mean(IWRES^2))`` over the uncensored observations. Both equal NONMEM 7.5's on
        its phenobarbital example (``tests/test_nonmem_reference.py``).
        """
        chol = np.asarray(self.layout.omega_chol(jnp.asarray(self.x)))
        omega = np.sqrt(np.sum(chol**2, axis=1))
        sd = np.std(self.etas, axis=0)
        out = {f"eta_{n}": float(1 - sd[k] / omega[k]) for k, n in enumerate(self.layout.etas)}
        iwres = self.diagnostics_arrays.iwres
        obs_type = np.asarray(self.problem.arrays.obs_type)
        for t, dvid in enumerate(self.layout.dvids):
            values = iwres[(obs_type == t) & np.isfinite(iwres)]
            key = "epsilon" if len(self.layout.dvids) == 1 else f"epsilon_{dvid}"
            out[key] = float(1 - np.sqrt(np.mean(values**2))) if values.size else np.nan
        return out

    @cached_property
    def warnings(self) -> list[str]:
        """What a pharmacometrician checks before trusting a fit, one line each."""
        out = []
        if self.covariance.message not in ("ok", "not requested"):
            out.append(f"covariance step: {self.covariance.message}")
        by_reason: dict[str, list] = {}
        for subject, reason in zip(self.problem.ids, self.reasons, strict=True):
            if reason:
                by_reason.setdefault(reason, []).append(str(subject))
        for reason, ids in by_reason.items():
            shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
            out.append(f"ID {shown}: {reason}")
        table = self.estimates
        for row in table[~table["fixed"]].itertuples():
            if row.rse_percent > RSE_WARNING:
                out.append(f"{row.parameter}: RSE {row.rse_percent:.0f} % (> {RSE_WARNING:g} %)")
            if row.parameter.startswith("omega_") and row.estimate < OMEGA_NEAR_ZERO:
                out.append(
                    f"{row.parameter} = {row.estimate:.2g} is near zero: the data do not "
                    "support variability in it (fix it or remove it)"
                )
            if row.parameter.startswith("corr_") and abs(row.estimate) > CORRELATION_BOUND:
                out.append(f"{row.parameter} = {row.estimate:.3f} is at its bound (+-1)")
        out += _bound_warnings(self.layout, table)
        for key, value in self.shrinkage.items():
            if not np.isfinite(value):
                continue
            if value < 0:
                what = "EBEs" if key.startswith("eta_") else "IWRES"
                out.append(
                    f"{key} shrinkage {100 * value:.0f} % is negative: the {what} spread more "
                    "than the model's variability, so that variance is underestimated or the "
                    "fit is not at its optimum"
                )
            elif value > SHRINKAGE_WARNING / 100:
                out.append(
                    f"{key} shrinkage {100 * value:.0f} % (> {SHRINKAGE_WARNING:g} %): "
                    "diagnostics on individual estimates are unreliable"
                )
        condition = self.correlation_condition_number
        if condition is not None and condition > CONDITION_WARNING:
            out.append(
                f"condition number of the correlation matrix {condition:.3g} "
                f"(> {CONDITION_WARNING:g}): the model is over-parameterised for these data"
            )
        return out

    def diagnostics(self) -> pd.DataFrame:
        """Per-observation table: ``ID, TIME, DV, DVID, CENS, LIMIT``, covariates, ``PRED, IPRED,
        IWRES, CWRES`` (residuals on the transformed scale; blank on censored rows)."""
        d = self.diagnostics_arrays
        obs_type = np.asarray(self.problem.arrays.obs_type)
        arrays = self.problem.data.to_arrays()
        return self.problem.data.to_frame(
            arrays,
            PRED=to_observation_scale(self.spec, d.pred, obs_type),
            IPRED=to_observation_scale(self.spec, d.ipred, obs_type),
            IWRES=d.iwres,
            CWRES=d.cwres,
        )

    def vpc(self, replicates: int = 200, seed: int = 0, progress=None) -> pd.DataFrame:
        """Visual predictive check table (see :func:`~.diagnostics.vpc_table`)."""
        arrays = self.problem.data.to_arrays()
        limits = np.where(np.asarray(arrays.limit_missing), 0.0, np.asarray(arrays.limit))
        return vpc_table(
            self.spec,
            self.problem.arrays,
            self.x,
            limits,
            replicates=replicates,
            seed=seed,
            progress=progress,
        )

    # -- text ---------------------------------------------------------------------------------

    def summary(self) -> str:
        """A few lines: convergence, OFV, estimates, shrinkage."""
        status = "converged" if self.converged else f"NOT CONVERGED ({self.message})"
        lines = [
            f"{self.strategy.method.upper()} fit of {type(self.layout.model).__name__}: "
            f"{status} after {self.iterations} iterations ({self.evaluations} OFV evaluations, "
            f"{self.seconds:.0f} s)",
            f"OFV (-2 log L) = {self.ofv:.4f}   (NONMEM convention, without n log 2pi: "
            f"{self.ofv_nonmem:.4f})",
        ]
        table = self.estimates[ESTIMATE_COLUMNS + ["unit"]]
        lines.append(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        shrink = ", ".join(f"{k} {100 * v:.0f} %" for k, v in self.shrinkage.items())
        lines.append(f"shrinkage (SD): {shrink}")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def result_at(
    problem: Problem,
    spec: Spec,
    x=None,
    *,
    strategy: Population | None = None,
    covariance: Covariance | None = None,
    z=None,
    message: str = "evaluated at given estimates",
    **fields,
) -> PopulationResult:
    """A :class:`PopulationResult` at given estimates, without fitting: the OFV, EBEs and every
    diagnostic at ``x`` (default: the problem's initial values), e.g. a published model's
    estimates or a fit reloaded from disk (:func:`~cartpk.estimation.load_fit`).

    Args:
        z: warm start of the EBE searches (standardised, ``(P, k)``); the search runs twice, the
            second time from the first one's EBEs.
        fields: further :class:`PopulationResult` fields (``converged``, ``iterations`` ...).
    """
    x = np.asarray(problem.x0 if x is None else x, dtype=float)
    evaluator = Evaluator(spec, problem.arrays)
    free = problem.free_index
    V = np.zeros((x.size, free.size))
    V[free, np.arange(free.size)] = 1.0
    weights = np.ones(problem.arrays.n_subjects)
    z = np.zeros((problem.arrays.n_subjects, len(problem.layout.etas))) if z is None else z
    for _ in range(2):
        out = evaluate_at(evaluator, x, V, weights, z)
        z = out["z"]
    fields = {"converged": True, "iterations": 0, "seconds": 0.0, **fields}
    return PopulationResult(
        problem=problem,
        spec=spec,
        strategy=strategy or Population(method=spec.method, se="sandwich"),
        x=x,
        V=V,
        ofv=float(out["ofv"]),
        ofv_i=out["ofv_i"],
        grad=out["grad"],
        grad_i=out["grad_i"],
        z=out["z"],
        g=out["g"],
        jac=out["jac"],
        ebe_converged=out["ok"].astype(bool),
        reasons=[subject_reason(out, i, spec.solver) for i in range(len(out["ok"]))],
        message=message,
        evaluations=evaluator.evaluations,
        covariance=covariance or Covariance(None, None, None, "not requested"),
        **fields,
    )


def describe(
    table: pd.DataFrame, layout, *, fixed: np.ndarray, shrinkage: dict[str, float]
) -> pd.DataFrame:
    """Add ``unit``, ``fixed``, ``variance``, ``variance_se``, ``cv_percent`` and
    ``shrinkage_percent`` to a table of :data:`ESTIMATE_COLUMNS` in ``layout.report_names()`` order.

    - ``variance`` (with its SE by the delta method): ``omega^2`` and ``sigma^2``, NONMEM's
      OMEGA and SIGMA;
    - ``cv_percent``: ``100 sqrt(exp(omega^2) - 1)`` for a log-normal parameter (exact),
      ``100 sigma`` for proportional error, ``100 sqrt(exp(sigma^2) - 1)`` for exponential error;
    - ``shrinkage_percent``: ETA shrinkage on omega rows, EPS shrinkage on sigma rows.
    """
    out = table.copy()
    kinds = dict(_report_kinds(layout))
    sd_rows = [n.startswith(("omega_", "sigma_")) for n in out["parameter"]]
    out["unit"] = [_unit(layout, *kinds[n]) for n in out["parameter"]]
    out["fixed"] = np.asarray(fixed, dtype=bool)
    out["variance"] = np.where(sd_rows, out["estimate"] ** 2, np.nan)
    out["variance_se"] = np.where(sd_rows, 2 * out["estimate"] * out["se"], np.nan)
    out["cv_percent"] = [
        _cv_percent(layout, *kinds[r.parameter], r.estimate) for r in out.itertuples()
    ]
    out["shrinkage_percent"] = [
        100 * shrinkage.get(_shrinkage_key(layout, *kinds[n]), np.nan) for n in out["parameter"]
    ]
    return out[ESTIMATE_COLUMNS + DESCRIPTIVE_COLUMNS]


def _report_kinds(layout):
    """``(reported name, (kind, detail))`` in :meth:`Layout.report_names` order."""
    for name in layout.names:
        yield name, ("theta", name)
    for effect in layout.effects:
        yield effect.name, ("beta", effect)
    for name in layout.etas:
        yield f"omega_{name}", ("omega", name)
    if layout.block:
        for a in range(len(layout.etas)):
            for b in range(a):
                yield f"corr_{layout.etas[a]}_{layout.etas[b]}", ("corr", None)
    for t, obs in enumerate(layout.observations):
        for name in obs.error.parameters:
            yield layout.sigma_name(t, name), ("sigma", (t, name))


def _unit(layout, kind, detail) -> str:
    if kind == "theta":
        unit = layout.model.parameter_set.specs[detail].unit
        column = next((r.column for r in layout.regressors if r.parameter == detail), None)
        return unit if column is None else f"{unit} (regressor {column}: median shown)"
    if kind == "beta" and detail.kind == "exponential":
        return f"1/({detail.column} unit)"
    if kind == "sigma" and detail[1] == "add":
        observation = layout.observations[detail[0]]
        return observation.unit or f"({observation.observable} unit)"
    return "-"


def _cv_percent(layout, kind, detail, value) -> float:
    log_normal = (
        kind == "omega" and layout.model.parameter_set.specs[detail].transform == "log"
    ) or (kind == "sigma" and detail[1] == "log")
    if log_normal:  # sqrt(exp(sd^2) - 1); +inf where it overflows (sd above about 26)
        with np.errstate(over="ignore"):
            return float(100 * np.sqrt(np.expm1(np.float64(value) ** 2)))
    if kind == "sigma" and detail[1] == "prop":
        return 100 * value
    return math.nan


def _shrinkage_key(layout, kind, detail) -> str | None:
    if kind == "omega":
        return f"eta_{detail}"
    if kind == "sigma":
        return "epsilon" if len(layout.dvids) == 1 else f"epsilon_{layout.dvids[detail[0]]}"
    return None


def _bound_warnings(layout, table: pd.DataFrame) -> list[str]:
    """Estimated typical values of bounded (logit) parameters at a bound."""
    out = []
    estimates = table.set_index("parameter")
    for name in layout.names:
        spec = layout.model.parameter_set.specs[name]
        if spec.transform != "logit" or estimates.at[name, "fixed"]:
            continue
        value, lower, upper = estimates.at[name, "estimate"], spec.lower, spec.upper
        if lower > 0:  # a range over decades: the distance in decades
            value, lower, upper = np.log(value), np.log(lower), np.log(upper)
        if min(value - lower, upper - value) < BOUND_FRACTION * (upper - lower):
            out.append(
                f"{name} = {estimates.at[name, 'estimate']:.4g} is at a bound of "
                f"[{spec.lower:g}, {spec.upper:g}]"
            )
    return out
