"""The statistical model of a fit, and the dataset as padded arrays for jitted code.

:func:`build_problem` turns a model, a validated dataset (:func:`~cartpk.read_nonmem`) and the
user's choices (observation types and their error models, initial and fixed values, which
parameters vary between subjects, covariate effects) into a :class:`Problem`:

- :class:`Layout` (static, hashable) names every estimated quantity. Each *label* is a pair
  ``(group, key)``; all of them together form the vector ``x`` the optimiser works on, each on
  its *internal scale*: typical values on their model transform (log, logit, identity), covariate
  coefficients as they are, between-subject SDs and residual SDs on the log scale.
- :class:`SubjectArrays` holds the observations of every subject padded to one length, already on
  the error models' transformed scales, with their doses and covariate design.

Individual parameters, on the unconstrained scale of the model's parameter transforms::

    phi_i = theta + sum_e beta_e d_ie + eta_i,    eta_i ~ N(0, Omega)

with ``d_ie = log(cov / ref)`` (power model), ``cov - ref`` (exponential model) or
``[cov == level]`` (categorical). For log-transformed parameters this is log-normal variability
and a power (or exponential) covariate model.

A *regressor* (Monolix's term, ``kind="regressor"``) replaces the typical value instead:
``phi_ij = h_j(cov_i)``, the column's per-subject value on the parameter's unconstrained scale
``h_j`` (e.g. baseline tumour burden as the initial tumour state). No coefficient is estimated,
the parameter's typical value stays fixed (reported at the median of the column) and it can
carry no random effect. The design array carries ``h_j(cov_i)``, after the covariate columns.

A model whose initial state is the post-dose state on day ``start_time`` (``Multiphasic``) takes
no dose input: its time zero is the dose. A dataset with dose records is then read with each
subject's time counted from its dose (one warning says so); a subject dosed at several times is
ambiguous and refused. ``ignore_doses=True`` drops the doses and keeps ``TIME`` as it is.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ..errors import CartpkError, DatasetError, ParameterError, RegimenError
from ..models.base import AbstractModel
from ..nonmem import NonmemData, read_nonmem
from ..parameters import Parameter
from ..regimen import DoseArrays, Regimen, stack_regimens
from .error_models import ErrorModel, Exponential

#: default initial between-subject SD (unconstrained scale, ~30 % CV)
DEFAULT_OMEGA = 0.3
COVARIATE_KINDS = ("power", "exponential", "categorical", "regressor")


@dataclass(frozen=True)
class Observation:
    """How one observation type (``DVID``) relates to the model.

    Args:
        observable: name of a model observable (e.g. ``"blood_copies_per_ug"``).
        error: its residual error model (with initial values).
        unit: the unit of its ``DV`` values (e.g. ``"cells/uL"``), for labels and tables.
    """

    observable: str
    error: ErrorModel = field(default_factory=Exponential)
    unit: str | None = None

    @property
    def label(self) -> str:
        """``observable (unit)``, or the observable's name without a unit."""
        return f"{self.observable} ({self.unit})" if self.unit else self.observable


@dataclass(frozen=True)
class CovariateEffect:
    """A covariate effect on one parameter's typical value (unconstrained scale).

    Args:
        parameter: model parameter it acts on.
        column: dataset column (constant within each subject).
        kind: ``"power"`` (``(cov/ref)^beta`` for log-transformed parameters), ``"exponential"``
            (``exp(beta (cov - ref))``), ``"categorical"`` (one ``beta`` per level other than
            the reference) or ``"regressor"`` (the parameter's value for each subject *is* the
            column's value, in the parameter's unit; nothing is estimated for it).
        reference: reference value or level; default the median (power, exponential) or the most
            frequent level (categorical); none for a regressor.
    """

    parameter: str
    column: str
    kind: str = "power"
    reference: float | None = None

    def __post_init__(self):
        if self.kind not in COVARIATE_KINDS:
            raise CartpkError(
                f"covariate {self.column} on {self.parameter}: kind must be one of "
                f"{', '.join(COVARIATE_KINDS)}, got {self.kind!r}"
            )
        if self.kind == "regressor" and self.reference is not None:
            raise CartpkError(
                f"covariate {self.column} on {self.parameter}: a regressor takes no reference "
                f"(its value is the parameter's), got reference={self.reference!r}"
            )


class SubjectArrays(eqx.Module):
    """Observations of ``P`` subjects padded to ``n`` rows each (see :class:`Problem`).

    Attributes:
        time: observation times (d); padding repeats the last time.
        g_obs: observations on their error model's transformed scale (0 where unused).
        g_limit: censoring limits on the transformed scale (0 where not censored).
        mask: True on real observations.
        censored: below the limit (M3); censored_above: above it.
        obs_type: index of the row's observation type (its DVID, in :attr:`Layout.dvids` order).
        doses: the subjects' regimens, stacked.
        design: covariate design values ``d_ie``, then the regressors' values on their
            parameters' unconstrained scale, shape ``(P, effects + regressors)``.
    """

    time: Float[Array, "P n"]
    g_obs: Float[Array, "P n"]
    g_limit: Float[Array, "P n"]
    mask: Bool[Array, "P n"]
    censored: Bool[Array, "P n"]
    censored_above: Bool[Array, "P n"]
    obs_type: Int[Array, "P n"]
    doses: DoseArrays
    design: Float[Array, "P effects"]

    @property
    def n_subjects(self) -> int:
        return self.time.shape[0]


@dataclass(frozen=True)
class Effect:
    """One covariate coefficient (or regressor): its label, target parameter and design column.

    For a regressor, ``reference`` is the median of the column (the reported, fixed typical
    value) and no ``beta`` label exists."""

    name: str
    parameter: str
    column: str
    kind: str
    reference: float | str
    level: float | str | None = None


@dataclass(frozen=True)
class Layout:
    """Names and internal scales of everything a fit estimates (static, hashable).

    Attributes:
        model: the structural model.
        names: model parameter names (every one has a typical value ``theta``).
        etas: parameters with between-subject variability, in ``Omega`` order.
        block: full ``Omega`` (Cholesky-parametrised) instead of a diagonal one.
        effects: covariate coefficients.
        regressors: parameters whose per-subject value is a dataset column (kind
            ``"regressor"``); their typical value is fixed and unused, and their design columns
            follow the effects'.
        dvids: observation types; observations[t] describes ``dvids[t]``.
        observations: one :class:`Observation` per type.
        labels: ``(group, key)`` of every element of ``x``; groups are ``theta``, ``beta``,
            ``omega`` (log SD, or log Cholesky diagonal when ``block``), ``chol`` (Cholesky
            off-diagonal ``(a, b)``) and ``sigma`` (log residual SD, key ``(type, name)``).
        free: which labels are estimated (the others stay at their given value).
    """

    model: AbstractModel
    names: tuple[str, ...]
    etas: tuple[str, ...]
    block: bool
    effects: tuple[Effect, ...]
    dvids: tuple[int, ...]
    observations: tuple[Observation, ...]
    labels: tuple[tuple, ...]
    free: tuple[bool, ...]
    regressors: tuple[Effect, ...] = ()

    # -- structure ----------------------------------------------------------------------------

    @property
    def specs(self) -> tuple[Parameter, ...]:
        table = self.model.parameter_set.specs
        return tuple(table[n] for n in self.names)

    @property
    def observables(self) -> tuple[str, ...]:
        """Distinct observables, in first-use order."""
        return tuple(dict.fromkeys(o.observable for o in self.observations))

    @property
    def varying_index(self) -> tuple[int, ...]:
        """Positions of the parameters whose individual value depends on the estimates: free
        typical values, parameters with variability, and targets of free covariate effects."""
        free = {label for label, f in zip(self.labels, self.free, strict=True) if f}
        varying = {n for n in self.names if ("theta", n) in free or n in self.etas}
        varying |= {e.parameter for e in self.effects if ("beta", e.name) in free}
        return tuple(j for j, n in enumerate(self.names) if n in varying)

    @property
    def regressor_names(self) -> tuple[str, ...]:
        """Parameters set by a regressor column."""
        return tuple(r.parameter for r in self.regressors)

    @property
    def n_free(self) -> int:
        return sum(self.free)

    def index(self, group: str, key) -> int:
        return self.labels.index((group, key))

    def sigma_name(self, t: int, name: str) -> str:
        """Reported name of a residual parameter: ``sigma_<name>`` (``_<dvid>`` if several)."""
        return f"sigma_{name}" if len(self.dvids) == 1 else f"sigma_{name}_{self.dvids[t]}"

    def label_name(self, label) -> str:
        group, key = label
        if group == "theta":
            return key
        if group == "beta":
            return key
        if group == "omega":
            return f"omega_{key}"
        if group == "chol":
            return f"chol_{key[0]}_{key[1]}"
        return self.sigma_name(*key)

    # -- from x (jittable) -------------------------------------------------------------------

    def typical(self, x, design):
        """Unconstrained typical parameters of one subject: theta + covariate effects, with
        each regressor's parameter set to its design value, ``(K,)``."""
        mu = x[jnp.asarray([self.index("theta", n) for n in self.names])]
        for e, effect in enumerate(self.effects):
            j = self.names.index(effect.parameter)
            mu = mu.at[j].add(x[self.index("beta", effect.name)] * design[e])
        if self.regressors:
            n_effects = len(self.effects)
            if design.shape[-1] < n_effects + len(self.regressors):
                raise CartpkError(
                    "regressors ("
                    + ", ".join(f"{r.parameter} <- {r.column}" for r in self.regressors)
                    + ") need each subject's design values; this estimation method does not "
                    "pass them"
                )
            for r, regressor in enumerate(self.regressors):
                j = self.names.index(regressor.parameter)
                mu = mu.at[j].set(design[n_effects + r])
        return mu

    def omega_chol(self, x):
        """Lower Cholesky factor ``L`` of ``Omega`` (``Omega = L L^T``), shape ``(k, k)``."""
        k = len(self.etas)
        sds = jnp.exp(x[jnp.asarray([self.index("omega", n) for n in self.etas], dtype=int)])
        chol = jnp.diag(sds) if k else jnp.zeros((0, 0))
        if self.block:
            for a in range(k):
                for b in range(a):
                    chol = chol.at[a, b].set(x[self.index("chol", (self.etas[a], self.etas[b]))])
        return chol

    def individual(self, mu, chol, z):
        """``phi = mu + L z`` on the eta positions (unconstrained, ``(K,)``)."""
        if not self.etas:
            return mu
        where = jnp.asarray([self.names.index(n) for n in self.etas])
        return mu.at[where].add(chol @ z)

    def sigmas(self, x) -> tuple[dict, ...]:
        """Residual SDs per observation type (natural scale)."""
        return tuple(
            {name: jnp.exp(x[self.index("sigma", (t, name))]) for name in obs.error.parameters}
            for t, obs in enumerate(self.observations)
        )

    def natural(self, phi) -> dict:
        """Unconstrained ``phi`` -> model parameter dict (model units)."""
        return {
            n: s.from_unconstrained(phi[j])
            for j, (n, s) in enumerate(zip(self.names, self.specs, strict=True))
        }

    # -- reporting ------------------------------------------------------------------------------

    def report_names(self) -> tuple[str, ...]:
        names = list(self.names)
        names += [e.name for e in self.effects]
        names += [f"omega_{n}" for n in self.etas]
        if self.block:
            names += [
                f"corr_{self.etas[a]}_{self.etas[b]}"
                for a in range(len(self.etas))
                for b in range(a)
            ]
        names += [
            self.sigma_name(t, name)
            for t, obs in enumerate(self.observations)
            for name in obs.error.parameters
        ]
        return tuple(names)

    def report_scaled(self, x):
        """Reported quantities on their CI scale (jittable): typical values on their model
        transform, betas as they are, omegas and sigmas as logs, correlations as atanh."""
        out = [x[self.index("theta", n)] for n in self.names]
        out += [x[self.index("beta", e.name)] for e in self.effects]
        chol = self.omega_chol(x)
        omega = chol @ chol.T
        sds = jnp.sqrt(jnp.diag(omega))
        out += [jnp.log(sds[a]) for a in range(len(self.etas))]
        if self.block:
            for a in range(len(self.etas)):
                for b in range(a):
                    out.append(jnp.arctanh(omega[a, b] / (sds[a] * sds[b])))
        out += [
            x[self.index("sigma", (t, name))]
            for t, obs in enumerate(self.observations)
            for name in obs.error.parameters
        ]
        return jnp.stack(out)

    def from_scaled(self, name: str, value):
        """Back-transform a reported quantity from its CI scale to its natural scale."""
        if name in self.names:
            return self.model.parameter_set.specs[name].from_unconstrained(value)
        if name.startswith("beta_"):
            return value
        if name.startswith("corr_"):
            return jnp.tanh(value)
        return jnp.exp(value)


@dataclass(frozen=True, eq=False)
class Problem:
    """A fit's layout, its subjects as arrays, and the starting point."""

    layout: Layout
    arrays: SubjectArrays
    x0: np.ndarray  # internal values of every label (initial or fixed)
    data: NonmemData
    ids: tuple
    covariate_values: dict  # column -> per-subject baseline value
    row_index: np.ndarray  # (P, n) 1-based source row of each observation, -1 on padding
    #: the keyword arguments of :func:`build_problem` that built it (for a fit saved to disk)
    options: dict = field(default_factory=dict)

    @property
    def free_index(self) -> np.ndarray:
        return np.flatnonzero(np.asarray(self.layout.free))


# ------------------------------------------------------------------------------------------------
# Building


def model_observables(model: AbstractModel) -> tuple[str, ...]:
    """The names of a model's observables (from its ``observables`` method)."""
    p = model.default_params()
    shapes = jax.eval_shape(lambda: model.observables(0.0, model.initial_state(p), p))
    return tuple(shapes)


def build_problem(
    model: AbstractModel,
    data,
    *,
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
) -> Problem:
    """Validate the choices against model and data and build a :class:`Problem`.

    Args:
        model: the structural model.
        data: a :class:`~cartpk.nonmem.NonmemData`, a CSV path or a DataFrame.
        observations: DVID -> :class:`Observation`; default: DVID 1 is the model's first
            observable with an :class:`~cartpk.estimation.Exponential` error.
        initial: initial values (natural scale) of typical values, ``omega_<name>``,
            ``sigma_<name>`` or covariate coefficients; defaults: model defaults, 0.3, the error
            model's values, 0.
        fixed: names to keep fixed (at ``initial``) or name -> fixed value.
        variability: parameters with between-subject variability (or name -> initial SD);
            default: every estimated typical value.
        block: estimate a full covariance matrix instead of a diagonal one.
        covariates: covariate effects.
        compartments: dataset ``CMT`` -> model state, as in :func:`~cartpk.read_nonmem`.
        ignore_doses: drop dose records and keep ``TIME`` as it is (by default a model without
            dose input, such as ``Multiphasic``, counts each subject's time from its dose).
        columns, ignore, accept: file column roles and NONMEM ``IGNORE``/``ACCEPT`` rules, as in
            :func:`~cartpk.read_nonmem` (for a path or DataFrame only).
    """
    options = {k: v for k, v in locals().items() if k not in ("model", "data")}
    if not isinstance(model, AbstractModel):
        raise CartpkError(f"model must be a cartpk model, got {type(model).__name__}")
    if not isinstance(data, NonmemData):
        data = read_nonmem(
            data, compartments=compartments, columns=columns, ignore=ignore, accept=accept
        )
    else:
        given = [k for k, v in (("columns", columns), ("ignore", ignore), ("accept", accept)) if v]
        if given:
            raise CartpkError(
                f"data is already read: give {', '.join(given)} to read_nonmem, not to the fit"
            )
    names = model.parameter_set.names
    specs = model.parameter_set.specs
    available = model_observables(model)
    if not available:
        raise CartpkError(f"{type(model).__name__} has no observables to fit")

    # observation types
    if observations is None:
        observations = {1: Observation(available[0])}
    observations = {int(k): v for k, v in observations.items()}
    for dvid, obs in observations.items():
        if not isinstance(obs, Observation):
            raise CartpkError(f"observations[{dvid}] must be an Observation, got {obs!r}")
        if obs.observable not in available:
            raise CartpkError(
                f"DVID {dvid}: unknown observable {obs.observable!r}; "
                f"{type(model).__name__} has: {', '.join(available)}"
            )
        if not isinstance(obs.error, ErrorModel):
            raise CartpkError(f"DVID {dvid}: error must be an ErrorModel, got {obs.error!r}")
    dvids = tuple(sorted(observations))

    # values given by the user
    initial = dict(initial or {})
    if fixed is None:
        fixed = {}
    elif not isinstance(fixed, Mapping):
        fixed = {name: initial.get(name) for name in fixed}
    fixed = dict(fixed)
    regressed = {c.parameter: c.column for c in covariates if _is_regressor(c)}
    if variability is None:
        variability = [n for n in names if n not in fixed and n not in regressed]
    if not isinstance(variability, Mapping):
        variability = {n: initial.get(f"omega_{n}", DEFAULT_OMEGA) for n in variability}
    for name in variability:
        if name not in specs:
            raise ParameterError(
                f"variability: unknown parameter {name!r}; known: {', '.join(names)}"
            )
    etas = tuple(n for n in names if n in variability)
    if len(set(variability)) != len(etas):
        raise ParameterError("variability: a parameter is listed twice")
    for name in etas:
        if name in regressed:
            raise ParameterError(
                f"variability: {name} is a regressor (column {regressed[name]}): its value is "
                "the column's for each subject, so it cannot have a random effect"
            )
    for source, values in (("initial", initial), ("fixed", fixed)):
        for name in values:
            if name in regressed:
                raise ParameterError(
                    f"{source}: {name} is a regressor (column {regressed[name]}): its value "
                    "comes from the data, so it cannot be given an initial or fixed value"
                )

    arrays, row_index, ids = _subject_arrays(data, model, observations, dvids, ignore_doses)
    effects, design, covariate_values = _design(data, ids, covariates, names)
    regressors, regressor_design = _regressors(data, ids, covariates, specs, covariate_values)
    design = np.concatenate([design, regressor_design], axis=1)
    arrays = eqx.tree_at(lambda a: a.design, arrays, jnp.asarray(design))

    labels: list[tuple] = [("theta", n) for n in names]
    labels += [("beta", e.name) for e in effects]
    labels += [("omega", n) for n in etas]
    if block:
        labels += [("chol", (etas[a], etas[b])) for a in range(len(etas)) for b in range(a)]
    labels += [
        ("sigma", (t, p)) for t, d in enumerate(dvids) for p in observations[d].error.parameters
    ]
    layout = Layout(
        model=model,
        names=names,
        etas=etas,
        block=bool(block),
        effects=tuple(effects),
        dvids=dvids,
        observations=tuple(observations[d] for d in dvids),
        labels=tuple(labels),
        free=(),
        regressors=tuple(regressors),
    )

    # internal values and the free mask
    known = {layout.label_name(label): label for label in labels}
    for source, values in (("initial", initial), ("fixed", fixed)):
        for name in values:
            if name not in known or (known[name][0] == "chol"):
                raise ParameterError(
                    f"{source}: unknown parameter {name!r}; known: "
                    + ", ".join(n for n, lab in known.items() if lab[0] != "chol")
                )
    if block and any(known[n][0] == "omega" for n in fixed):
        raise ParameterError("fixed: omegas cannot be fixed with a block Omega")
    x0 = np.empty(len(labels))
    for i, label in enumerate(labels):
        name = layout.label_name(label)
        group, key = label
        value = fixed.get(name)
        if value is None:
            value = initial.get(name)
        if group == "theta" and key in regressed:
            # fixed and unused: the reported typical value is the column's median
            x0[i] = _theta_internal(
                specs[key], layout.regressors[layout.regressor_names.index(key)].reference, name
            )
        elif group == "theta":
            value = specs[key].default if value is None else value
            x0[i] = _theta_internal(specs[key], value, name)
        elif group == "beta":
            x0[i] = _finite(0.0 if value is None else value, name)
        elif group == "omega":
            value = variability[key] if value is None else value
            x0[i] = math.log(_positive(value, name))
        elif group == "chol":
            x0[i] = 0.0
        else:
            t, pname = key
            default = observations[dvids[t]].error.initial()[pname]
            x0[i] = math.log(_positive(default if value is None else value, name))
    free = tuple(
        layout.label_name(label) not in fixed
        and not (label[0] == "theta" and label[1] in regressed)
        for label in labels
    )
    if not any(free):
        raise ParameterError("everything is fixed: nothing to estimate")
    layout = replace(layout, free=free)
    return Problem(
        layout=layout,
        arrays=arrays,
        x0=x0,
        data=data,
        ids=ids,
        covariate_values=covariate_values,
        row_index=row_index,
        options=options,
    )


def _finite(value, name) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name}: value must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise ParameterError(f"{name}: value must be finite, got {value!r}")
    return value


def _positive(value, name) -> float:
    value = _finite(value, name)
    if value <= 0:
        raise ParameterError(f"{name}: value must be > 0, got {value:g}")
    return value


def _theta_internal(spec: Parameter, value, name) -> float:
    value = _finite(value, name)
    inside = value > spec.lower if spec.transform != "identity" else True
    if spec.transform == "logit":
        inside = spec.lower < value < spec.upper
    if not inside:
        bounds = f"({spec.lower:g}, {spec.upper:g})"
        raise ParameterError(
            f"{name} = {value:g} {spec.unit} must lie strictly inside {bounds} to be fitted "
            f"on the {spec.transform} scale"
        )
    return float(spec.to_unconstrained(jnp.asarray(value, dtype=float)))


def _subject_arrays(data: NonmemData, model, observations, dvids, ignore_doses):
    obs_table = data.observations()
    observed = (data.frame["EVID"] == 0) & (data.frame["MDV"] == 0)
    source_rows = data.frame.index[observed].to_numpy()
    ids = data.ids
    unknown = ~obs_table["DVID"].isin(dvids).to_numpy()
    if unknown.any():
        _fail_rows(
            data,
            source_rows[unknown],
            "DVID",
            f"observation type {int(obs_table['DVID'][unknown].iloc[0])} has no observation "
            f"model (fitted DVIDs: {', '.join(map(str, dvids))})",
        )
    doses, shift = _doses(data, model, ids, ignore_doses)
    arrays = data.to_arrays()
    mask = np.asarray(arrays.mask)
    dvid = np.asarray(arrays.dvid)
    obs_type = np.zeros_like(dvid)
    for t, d in enumerate(dvids):
        obs_type[dvid == d] = t
    obs_type[~mask] = 0
    dv = np.asarray(arrays.dv)
    limit = np.asarray(arrays.limit)
    censored = np.asarray(arrays.censored)
    above = np.asarray(arrays.censored_above)
    uncensored = mask & ~censored & ~above
    rows = np.full(mask.shape, -1, dtype=np.int64)
    rows[mask] = source_rows  # row-major order of mask equals the observation order
    time = np.asarray(arrays.time) - shift[:, None]
    if model.start_time is not None:
        early = mask & (time < model.start_time)
        if early.any():
            _fail_rows(
                data,
                rows[early],
                "TIME",
                f"observation before day {model.start_time:g} of {type(model).__name__}, whose "
                "time zero is the dose",
            )
    g_obs = np.zeros(mask.shape)
    g_limit = np.zeros(mask.shape)
    for t, d in enumerate(dvids):
        error = observations[d].error
        here = mask & (obs_type == t)
        if error.log_scale:
            bad = here & uncensored & ~(dv > 0)
            if bad.any():
                _fail_rows(
                    data,
                    rows[bad],
                    "DV",
                    f"DV <= 0 with the {error.kind} (log-normal) error model of DVID {d}; "
                    "mark such values censored (CENS=1 with LLOQ) or use an additive error",
                )
            bad = here & (censored | above) & ~(limit > 0)
            if bad.any():
                _fail_rows(
                    data,
                    rows[bad],
                    "LIMIT",
                    f"censoring limit <= 0 with the log-normal error model of DVID {d}",
                )
            with np.errstate(divide="ignore", invalid="ignore"):
                g_obs = np.where(here & uncensored, np.log(np.where(dv > 0, dv, 1.0)), g_obs)
                g_limit = np.where(
                    here & (censored | above), np.log(np.where(limit > 0, limit, 1.0)), g_limit
                )
        else:
            g_obs = np.where(here & uncensored, dv, g_obs)
            g_limit = np.where(here & (censored | above), limit, g_limit)
    subject_arrays = SubjectArrays(
        time=jnp.asarray(time),
        g_obs=jnp.asarray(g_obs),
        g_limit=jnp.asarray(g_limit),
        mask=arrays.mask,
        censored=arrays.censored,
        censored_above=arrays.censored_above,
        obs_type=jnp.asarray(obs_type),
        doses=doses,
        design=jnp.zeros((len(ids), 0)),
    )
    return subject_arrays, rows, ids


def _doses(data: NonmemData, model: AbstractModel, ids, ignore_doses: bool):
    """The subjects' doses, stacked, and the time (d) to subtract from each subject's records.

    A model with a ``start_time`` takes no dose input: each subject's time is counted from its
    dose instead (one warning line says so), and a subject dosed at several times is refused.
    """
    shift = np.zeros(len(ids))
    none = stack_regimens([Regimen()] * len(ids), model.state_names)
    if ignore_doses:
        return none, shift
    if model.start_time is None:
        try:
            return stack_regimens([data.regimens[i] for i in ids], model.state_names), shift
        except RegimenError as error:
            raise RegimenError(
                f"{data.source}: {error} (map dataset CMT values to states with compartments / "
                "--cmt, or drop doses with ignore_doses / --ignore-doses for dose-independent "
                "models)"
            ) from None
    name = type(model).__name__
    frame = data.frame
    for p, subject in enumerate(ids):
        times = sorted({d.time for d in data.regimens[subject].doses})
        if len(times) > 1:
            dosing = (frame["ID"] == subject) & (frame["EVID"] == 1)
            _fail_rows(
                data,
                frame.index[dosing.to_numpy()],
                "TIME",
                f"ID {subject} is dosed on days {', '.join(f'{t:g}' for t in times)}, but {name} "
                "takes no dose input and counts time from one dose (give one dose time per "
                "subject, or ignore_doses=True to keep TIME as it is)",
            )
        if times:
            shift[p] = times[0] - model.start_time
    dosed = sum(1 for i in ids if data.regimens[i].doses)
    if dosed:
        moved = np.flatnonzero(shift)
        how = (
            f"time counted from each subject's dose ({len(moved)} shifted, by up to "
            f"{np.abs(shift).max():g} d)"
            if moved.size
            else f"every dose is on day {model.start_time:g}, times kept"
        )
        warnings.warn(
            f"{data.source}: {name} takes no dose input: the dose records of {dosed} subjects "
            f"are dropped, {how}",
            UserWarning,
            stacklevel=4,
        )
    return none, shift


def _fail_rows(data: NonmemData, rows, column: str, problem: str):
    rows = [int(r) for r in rows]
    listed = ", ".join(map(str, rows[:5])) + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")
    raise DatasetError(f"{data.source}: column {column}: {problem} in row(s) {listed}")


def _design(data: NonmemData, ids, covariates, names):
    effects: list[Effect] = []
    columns: list[np.ndarray] = []
    values: dict[str, np.ndarray] = {}
    by_upper = {c.upper(): c for c in (*data.covariates, *data.text_columns)}
    for cov in covariates:
        if not isinstance(cov, CovariateEffect):
            raise CartpkError(f"covariates must be CovariateEffect objects, got {cov!r}")
        if cov.parameter not in names:
            raise ParameterError(
                f"covariate {cov.column}: unknown parameter {cov.parameter!r}; "
                f"known: {', '.join(names)}"
            )
        column = by_upper.get(cov.column.upper())
        if column is None:
            raise DatasetError(
                f"{data.source}: missing covariate column {cov.column} "
                f"(covariate columns: {', '.join(by_upper.values()) or 'none'})"
            )
        if column in data.text_columns and cov.kind != "categorical":
            texts = data.frame[column]
            first = texts[texts.map(lambda t: t is not None and not _is_number(t))]
            raise DatasetError(
                f"{data.source}: column {column}: the {cov.kind} covariate model needs numbers, "
                f"got text (e.g. {first.iloc[0]!r} in row {first.index[0]}); declare it "
                "categorical or give numbers"
            )
        if column not in values:
            values[column] = _baseline(data, column, ids)
        v = values[column]
        if cov.kind == "regressor":
            continue  # see _regressors
        if cov.kind == "categorical":
            levels, counts = np.unique(v, return_counts=True)
            reference = levels[np.argmax(counts)] if cov.reference is None else cov.reference
            if reference not in levels:
                raise DatasetError(
                    f"{data.source}: column {column}: reference level {_level(reference)} does "
                    f"not occur (levels: {', '.join(_level(x) for x in levels)})"
                )
            for level in levels[levels != reference]:
                name = f"beta_{cov.parameter}_{column}_{_level(level)}"
                effects.append(
                    Effect(name, cov.parameter, column, cov.kind, _value(reference), _value(level))
                )
                columns.append((v == level).astype(float))
            continue
        reference = float(np.median(v)) if cov.reference is None else float(cov.reference)
        if cov.kind == "power":
            if np.any(v <= 0) or reference <= 0:
                raise DatasetError(
                    f"{data.source}: column {column}: the power covariate model needs positive "
                    "values and reference"
                )
            columns.append(np.log(v / reference))
        else:
            columns.append(v - reference)
        effects.append(
            Effect(f"beta_{cov.parameter}_{column}", cov.parameter, column, cov.kind, reference)
        )
    names_seen = [e.name for e in effects]
    if len(set(names_seen)) != len(names_seen):
        raise CartpkError("covariates: the same effect is listed twice")
    design = np.stack(columns, axis=1) if columns else np.zeros((len(ids), 0))
    return effects, design, values


def _is_regressor(cov) -> bool:
    return isinstance(cov, CovariateEffect) and cov.kind == "regressor"


def _regressors(data: NonmemData, ids, covariates, specs, values):
    """The regressor effects and their design columns: each subject's column value on the
    parameter's unconstrained scale, ``(P, regressors)``. ``values`` holds the baselines that
    :func:`_design` read (it has checked parameter and column names)."""
    regressors: list[Effect] = []
    columns: list[np.ndarray] = []
    by_upper = {c.upper(): c for c in (*data.covariates, *data.text_columns)}
    for cov in covariates:
        if not _is_regressor(cov):
            continue
        others = [c for c in covariates if c is not cov and c.parameter == cov.parameter]
        if others:
            other = others[0]
            what = "a second regressor" if other.kind == "regressor" else f"a {other.kind} effect"
            raise CartpkError(
                f"covariates: {cov.parameter} is a regressor (column {cov.column}) and also has "
                f"{what} (column {other.column}); a regressor sets the value, so no other "
                "covariate can act on it"
            )
        column = by_upper[cov.column.upper()]
        spec = specs[cov.parameter]
        v = np.asarray(values[column], dtype=float)
        if spec.transform == "log":
            inside, scale = v > spec.lower, f"> {spec.lower:g} (log scale)"
        elif spec.transform == "logit":
            inside = (v > spec.lower) & (v < spec.upper)
            scale = f"strictly inside ({spec.lower:g}, {spec.upper:g}) (logit scale)"
        else:
            inside, scale = np.isfinite(v), "finite"
        inside &= np.isfinite(v)
        if not inside.all():
            p = int(np.flatnonzero(~inside)[0])
            bad = int((~inside).sum())
            more = f" ({bad - 1} more subject(s))" if bad > 1 else ""
            raise DatasetError(
                f"{data.source}: column {column}: regressor for {cov.parameter} needs values "
                f"{scale}, got {v[p]:g} for ID {_level(ids[p])}{more}"
            )
        regressors.append(
            Effect(
                f"regressor_{cov.parameter}_{column}",
                cov.parameter,
                column,
                "regressor",
                float(np.median(v)),
            )
        )
        columns.append(np.asarray(spec.to_unconstrained(jnp.asarray(v)), dtype=float))
    design = np.stack(columns, axis=1) if columns else np.zeros((len(ids), 0))
    return regressors, design


def _baseline(data: NonmemData, column: str, ids) -> np.ndarray:
    """One value per subject (float, or text for a text column): the column must be constant
    (ignoring missing) within each ID."""
    changed = data.varying(column)
    if changed is not None:
        subject, row = changed
        raise DatasetError(
            f"{data.source}: column {column}: time-varying covariate (it changes within ID "
            f"{subject} in row {row}); covariates on parameters must be constant per subject: "
            "the ODE parameters cannot change over time, so NONMEM's last-value-carried-forward "
            "is not available"
        )
    text = column in data.text_columns
    out = np.empty(len(ids), dtype=object if text else float)
    for p, (subject, group) in enumerate(data.frame.groupby("ID", sort=False)[column]):
        present = group.dropna()
        if present.size == 0:
            raise DatasetError(
                f"{data.source}: column {column}: no value for ID {subject} "
                f"(rows {group.index[0]}-{group.index[-1]})"
            )
        out[p] = present.iloc[0] if text else float(present.iloc[0])
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _level(value) -> str:
    """A categorical level as named in effects and messages (``2``, ``0.5``, ``CR``)."""
    return f"{value:g}" if isinstance(value, int | float | np.number) else str(value)


def _value(value) -> float | str:
    return str(value) if isinstance(value, str) else float(value)
