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

from dataclasses import dataclass, field
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .diagnostics import Diagnostics, compute, to_observation_scale, vpc_table
from .mixed_effects import Covariance, Population
from .objective import Spec, subject_contexts
from .problem import Problem

Z95 = 1.959963984540054
ESTIMATE_COLUMNS = ["parameter", "estimate", "se", "rse_percent", "ci_low", "ci_high"]


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

    def estimates_table(self, kind: str | None = None) -> pd.DataFrame:
        """Estimates with SEs and 95 % CIs (columns :data:`ESTIMATE_COLUMNS`)."""
        layout = self.layout
        names = layout.report_names()
        x = jnp.asarray(self.x)
        scaled = np.asarray(layout.report_scaled(x))
        jac = np.asarray(jax.jacfwd(layout.report_scaled)(x))
        free = np.asarray(layout.free)
        estimated = np.abs(jac[:, free]).sum(axis=1) > 0
        cov = self.covariance_matrix(kind)
        if cov is None:
            se_scaled = np.full(len(names), np.nan)
        else:
            se_scaled = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", jac, cov, jac), 0, None))
        se_scaled = np.where(estimated, se_scaled, np.nan)
        rows = []
        for i, name in enumerate(names):
            value = float(layout.from_scaled(name, jnp.asarray(scaled[i])))
            _, slope = jax.jvp(
                lambda v, name=name: jnp.asarray(layout.from_scaled(name, v), dtype=float),
                (jnp.asarray(scaled[i]),),
                (jnp.asarray(1.0),),
            )
            se = abs(float(slope)) * se_scaled[i]
            low = float(layout.from_scaled(name, jnp.asarray(scaled[i] - Z95 * se_scaled[i])))
            high = float(layout.from_scaled(name, jnp.asarray(scaled[i] + Z95 * se_scaled[i])))
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
        return pd.DataFrame(rows, columns=ESTIMATE_COLUMNS)

    @cached_property
    def estimates(self) -> pd.DataFrame:
        """:meth:`estimates_table` with the strategy's SE method."""
        return self.estimates_table()

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
        return pd.DataFrame(table)

    @cached_property
    def diagnostics_arrays(self) -> Diagnostics:
        return compute(self.spec, self.problem.arrays, self.x, self.z, self.g, self.jac)

    @cached_property
    def shrinkage(self) -> dict[str, float]:
        """Eta shrinkage ``1 - SD(eta*) / omega`` per parameter, and epsilon shrinkage
        ``1 - SD(IWRES)`` (key ``"epsilon"``), as fractions."""
        chol = np.asarray(self.layout.omega_chol(jnp.asarray(self.x)))
        omega = np.sqrt(np.sum(chol**2, axis=1))
        out = {}
        if len(self.etas) > 1:
            sd = np.std(self.etas, axis=0, ddof=1)
            out = {f"eta_{n}": float(1 - sd[k] / omega[k]) for k, n in enumerate(self.layout.etas)}
        iwres = self.diagnostics_arrays.iwres
        out["epsilon"] = float(1 - np.nanstd(iwres, ddof=1))
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
        if self.covariance.message != "ok":
            lines.append(f"covariance step: {self.covariance.message}")
        table = self.estimates.copy()
        lines.append(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        shrink = ", ".join(f"{k} {100 * v:.0f} %" for k, v in self.shrinkage.items())
        lines.append(f"shrinkage: {shrink}")
        failed = int((~self.ebe_converged).sum())
        if failed:
            lines.append(f"warning: the EBE search did not converge for {failed} subject(s)")
        return "\n".join(lines)
