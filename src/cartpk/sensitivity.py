"""Sensitivity of endpoints to parameters: local (gradients through the solver) and global.

**Local** (:func:`local_sensitivity`): at one parameter point, the derivative ``dy/dp`` of each
endpoint ``y`` with respect to each parameter ``p``, computed by differentiating through the ODE
solver, and the normalized sensitivity ``S = d ln y / d ln p = (p / y) dy/dp`` (dimensionless:
a 1 % change of ``p`` changes ``y`` by about ``S`` %).

**Global**, over a box of parameter values (uniform on each range, or log-uniform with
``scale="log"``), for any vectorized function, e.g. one built by :func:`population_function`:

- :func:`morris`: elementary effects (Morris 1991, doi:10.1080/00401706.1991.10484804) on
  ``r`` one-at-a-time trajectories; ``mu_star`` (mean absolute effect, Campolongo 2007,
  doi:10.1016/j.envsoft.2006.10.004) ranks the parameters, ``sigma`` (standard deviation of the
  effects) flags non-linearity or interactions. Cost: ``r (k + 1)`` evaluations for ``k``
  parameters.
- :func:`sobol`: first-order ``S1`` and total-order ``ST`` variance-based indices with the
  Saltelli 2010 (doi:10.1016/j.cpc.2009.09.018) and Jansen 1999 estimators. Cost: ``N (k + 2)``
  evaluations.

Endpoints are names from :data:`cartpk.ENDPOINTS` that are differentiable (computed with
:func:`cartpk.endpoints.numeric_endpoints`), or your own functions
``f(observables, times) -> value`` (written with ``jax.numpy`` for local sensitivities).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .endpoints import ENDPOINTS, EndpointOptions, numeric_endpoints
from .errors import CartpkError, ParameterError, SimulationWarning
from .models.base import AbstractModel
from .simulate import Status, simulate, simulate_population

#: An endpoint function: ``(observables, times) -> value`` (patient axis first if batched).
EndpointFunction = Callable[[Mapping, np.ndarray], jax.Array]

__all__ = [
    "local_sensitivity",
    "morris",
    "population_function",
    "sobol",
]


def _endpoints(
    endpoints: Sequence[str] | Mapping[str, EndpointFunction], options: EndpointOptions
) -> Callable[[Mapping, np.ndarray], dict]:
    """One function ``(observables, times) -> {endpoint: value}`` for named or custom endpoints."""
    if isinstance(endpoints, str):
        endpoints = [endpoints]
    if isinstance(endpoints, Mapping):
        custom = dict(endpoints)
        return lambda observables, times: {k: f(observables, times) for k, f in custom.items()}
    endpoints = list(endpoints)
    if not endpoints:
        raise CartpkError("give at least one endpoint")
    for name in endpoints:
        if name not in ENDPOINTS or not ENDPOINTS[name][1]:
            usable = ", ".join(k for k, (_, smooth) in ENDPOINTS.items() if smooth)
            raise CartpkError(
                f"endpoint {name!r} is not a differentiable endpoint; use one of {usable}, "
                "or pass {name: function(observables, times)}"
            )

    def named(observables, times):
        try:
            values = numeric_endpoints(observables, times, options)
        except KeyError:  # every named endpoint needs blood_cells_per_ul
            values = {}
        missing = [n for n in endpoints if n not in values]
        if missing:
            raise CartpkError(
                f"the model has no observables for endpoint(s) {', '.join(missing)} "
                f"(observables: {', '.join(observables)})"
            )
        return {n: values[n] for n in endpoints}

    return named


def local_sensitivity(
    model: AbstractModel,
    params: Mapping,
    regimen,
    times,
    endpoints: Sequence[str] | Mapping[str, EndpointFunction],
    *,
    parameters: Sequence[str] | None = None,
    options: EndpointOptions | None = None,
    mode: str = "forward",
    **simulate_options,
) -> pd.DataFrame:
    """Derivatives and normalized sensitivities of endpoints at one parameter point.

    Args:
        model: a cartpk model.
        params: parameter name -> value (model units), e.g. ``model.default_params()``.
        regimen: the doses (:class:`~cartpk.Regimen`, ``DoseArrays`` or ``None``).
        times: output times (d); the endpoints' windows must be on this grid.
        endpoints: differentiable endpoint names (:data:`cartpk.ENDPOINTS`), or a mapping
            name -> ``f(observables, times)`` written with ``jax.numpy``.
        parameters: the parameters to differentiate by (default: every model parameter).
        options: endpoint windows and thresholds (default: ``EndpointOptions()``).
        mode: ``"forward"`` (``jax.jacfwd``, cheaper for few parameters) or ``"reverse"``
            (``jax.jacrev``, cheaper for many parameters and few endpoints).
        **simulate_options: passed to :func:`cartpk.simulate` (``solver``, ``rtol`` ...).

    Returns:
        One row per (endpoint, parameter): ``endpoint``, ``parameter``, ``unit`` (of the
        parameter), ``value`` (parameter value), ``endpoint_value``, ``derivative``
        (``dy/dp``, endpoint unit per parameter unit) and ``normalized``
        (``d ln y / d ln p``, dimensionless; NaN where ``y = 0``).

    Raises:
        ParameterError: for unknown parameter names or bad parameter values.
        CartpkError: for unknown endpoints or a failed simulation.
    """
    specs = model.parameter_set.specs
    names = list(parameters) if parameters is not None else list(specs)
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise ParameterError(
            f"unknown parameter(s): {', '.join(unknown)}; known: {', '.join(specs)}"
        )
    base = {k: jnp.asarray(v, dtype=float) for k, v in params.items()}
    model.parameter_set.validate(base)
    compute = _endpoints(endpoints, options or EndpointOptions())
    times = np.asarray(times, dtype=float)
    if mode == "forward":
        jacobian = jax.jacfwd
        simulate_options.setdefault("adjoint", dfx.ForwardMode())
    elif mode == "reverse":
        jacobian = jax.jacrev
    else:
        raise CartpkError(f"mode must be 'forward' or 'reverse', got {mode!r}")

    def evaluate(varied):
        solution = simulate(model, {**base, **varied}, regimen, times, **simulate_options)
        values = compute(solution.observables, times)
        return values, (values, solution.result)

    varied = {n: base[n] for n in names}
    derivatives, (values, result) = jax.jit(jacobian(evaluate, has_aux=True))(varied)
    if not bool(result == Status.successful):
        raise CartpkError(f"the simulation failed at these parameters: {Status[result]}")
    rows = []
    for endpoint, y in values.items():
        y = float(y)
        for name in names:
            p, dy = float(base[name]), float(derivatives[endpoint][name])
            rows.append(
                {
                    "endpoint": endpoint,
                    "parameter": name,
                    "unit": specs[name].unit,
                    "value": p,
                    "endpoint_value": y,
                    "derivative": dy,
                    "normalized": p * dy / y if y != 0 else np.nan,
                }
            )
    return pd.DataFrame(rows)


def population_function(
    model: AbstractModel,
    params: Mapping,
    regimen,
    times,
    endpoints: Sequence[str] | Mapping[str, EndpointFunction],
    *,
    options: EndpointOptions | None = None,
    **simulate_options,
) -> Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]:
    """A vectorized endpoint function of some parameters, for :func:`morris` and :func:`sobol`.

    Args:
        model: a cartpk model.
        params: parameter name -> value (model units) of the parameters that are not varied.
        regimen: the doses, as for :func:`cartpk.simulate_population`.
        times: output times (d).
        endpoints: endpoint names or functions, as for :func:`local_sensitivity`.
        options: endpoint windows and thresholds (default: ``EndpointOptions()``).
        **simulate_options: passed to :func:`cartpk.simulate_population` (``solver``,
            ``devices`` ...). With ``chunk_size``, the points are padded to whole chunks, so
            that every call (of any number of points) reuses one compiled chunk.

    Returns:
        ``f(points)``: ``points`` maps parameter names to arrays of shape ``(n,)`` (model units);
        ``f`` returns endpoint name -> NumPy array ``(n,)``, NaN where a simulation failed.
    """
    compute = _endpoints(endpoints, options or EndpointOptions())
    times = np.asarray(times, dtype=float)

    chunk = simulate_options.get("chunk_size")

    def function(points: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        points = {k: np.asarray(v, dtype=float) for k, v in points.items()}
        n = len(next(iter(points.values())))
        if chunk:  # pad to whole chunks: every call reuses one compiled chunk
            padded = -(-n // chunk) * chunk
            points = {
                k: np.concatenate([v, np.repeat(v[-1:], padded - n)]) for k, v in points.items()
            }
        with warnings.catch_warnings():  # failures become NaN, reported by the caller's stats
            warnings.simplefilter("ignore", SimulationWarning)
            solution = simulate_population(
                model, {**params, **points}, regimen, times, **simulate_options
            )
        ok = np.asarray(solution.status)[:n] == 0
        values = compute(solution.observables, times)
        return {k: np.where(ok, np.asarray(v, dtype=float)[:n], np.nan) for k, v in values.items()}

    return function


def _scaled(bounds: Mapping[str, tuple[float, float]], scale: str):
    """Map unit-cube coordinates to parameter values: uniform or log-uniform on each range."""
    if scale not in ("linear", "log"):
        raise CartpkError(f"scale must be 'linear' or 'log', got {scale!r}")
    if not bounds:
        raise CartpkError("bounds must name at least one parameter")
    lower = np.asarray([float(b[0]) for b in bounds.values()])
    upper = np.asarray([float(b[1]) for b in bounds.values()])
    for name, lo, hi in zip(bounds, lower, upper, strict=True):
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ParameterError(f"bounds of {name} must be finite with lower < upper")
        if scale == "log" and lo <= 0:
            raise ParameterError(f"bounds of {name} must be positive for scale='log'")

    def to_values(u: np.ndarray) -> dict[str, np.ndarray]:
        if scale == "log":
            x = lower * (upper / lower) ** u
        else:
            x = lower + u * (upper - lower)
        return {name: x[:, j] for j, name in enumerate(bounds)}

    return to_values


def _outputs(function: Callable, points: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    values = function(points)
    if not isinstance(values, Mapping):
        values = {"y": values}
    return {k: np.asarray(v, dtype=float).reshape(-1) for k, v in values.items()}


def morris(
    function: Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray] | np.ndarray],
    bounds: Mapping[str, tuple[float, float]],
    *,
    trajectories: int = 10,
    levels: int = 4,
    scale: str = "linear",
    seed: int = 0,
) -> pd.DataFrame:
    """Morris elementary-effects screening.

    Each trajectory starts at a random point of a ``levels``-level grid of the unit cube and
    moves one parameter at a time, in random order, by ``delta = levels / (2 (levels - 1))``.
    The elementary effect of parameter ``i`` is ``(f(x + delta e_i) - f(x)) / delta``, in
    endpoint units per unit of the scaled range (the whole range is 1).

    Args:
        function: maps parameter name -> array ``(n,)`` to endpoint name -> array ``(n,)`` (or
            to one array, reported as endpoint ``"y"``); e.g. from :func:`population_function`.
        bounds: parameter -> ``(lower, upper)`` in model units.
        trajectories: number of trajectories ``r`` (10-50 is usual).
        levels: grid levels, even (4 or 6 is usual).
        scale: ``"linear"`` (uniform) or ``"log"`` (log-uniform, positive bounds).
        seed: random seed.

    Returns:
        One row per (endpoint, parameter): ``mu`` (mean effect), ``mu_star`` (mean absolute
        effect), ``sigma`` (standard deviation of the effects), ``effects`` (finite effects
        used; failed simulations give NaN and are left out), sorted by ``mu_star`` within each
        endpoint.
    """
    if levels < 2 or levels % 2:
        raise CartpkError(f"levels must be an even number >= 2, got {levels}")
    if trajectories < 2:
        raise CartpkError(f"trajectories must be >= 2, got {trajectories}")
    to_values = _scaled(bounds, scale)
    k = len(bounds)
    rng = np.random.default_rng(seed)
    delta = levels / (2 * (levels - 1))
    grid = np.arange(levels) / (levels - 1)
    # start on the grid; move up from the lower half of the levels, down from the upper half
    start = rng.choice(grid, size=(trajectories, k))
    step = np.where(start + delta <= 1 + 1e-12, delta, -delta)
    order = np.argsort(rng.random((trajectories, k)), axis=1)  # parameter moved at each step
    moves = np.zeros((trajectories, k, k))
    trajectory, stage = np.meshgrid(np.arange(trajectories), np.arange(k), indexing="ij")
    moves[trajectory, stage, order] = np.take_along_axis(step, order, axis=1)
    points = start[:, None, :] + np.concatenate(
        [np.zeros((trajectories, 1, k)), np.cumsum(moves, axis=1)], axis=1
    )
    values = _outputs(function, to_values(points.reshape(-1, k)))
    rows = []
    for endpoint, y in values.items():
        y = y.reshape(trajectories, k + 1)
        effects = np.empty((trajectories, k))
        effects[trajectory, order] = np.diff(y, axis=1) / np.take_along_axis(step, order, axis=1)
        finite = np.isfinite(effects)
        for j, name in enumerate(bounds):
            e = effects[finite[:, j], j]
            rows.append(
                {
                    "endpoint": endpoint,
                    "parameter": name,
                    "mu": e.mean() if len(e) else np.nan,
                    "mu_star": np.abs(e).mean() if len(e) else np.nan,
                    "sigma": e.std(ddof=1) if len(e) > 1 else np.nan,
                    "effects": len(e),
                }
            )
    return _ranked(pd.DataFrame(rows), "mu_star")


def sobol(
    function: Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray] | np.ndarray],
    bounds: Mapping[str, tuple[float, float]],
    *,
    samples: int = 1024,
    scale: str = "linear",
    seed: int = 0,
) -> pd.DataFrame:
    """Variance-based Sobol indices from ``samples (k + 2)`` evaluations.

    Two independent sample matrices ``A`` and ``B`` (``samples`` rows each) and, for every
    parameter ``i``, ``A`` with column ``i`` from ``B``; ``S1_i = mean(f(B) (f(AB_i) - f(A)))
    / V`` (Saltelli 2010) and ``ST_i = mean((f(A) - f(AB_i))^2) / (2 V)`` (Jansen 1999), with
    ``V`` the variance of ``f`` over ``A`` and ``B``.

    Args:
        function: as for :func:`morris`.
        bounds: parameter -> ``(lower, upper)`` in model units.
        samples: rows of ``A`` and ``B`` (the error falls as ``1/sqrt(samples)``).
        scale: ``"linear"`` (uniform) or ``"log"`` (log-uniform, positive bounds).
        seed: random seed.

    Returns:
        One row per (endpoint, parameter): ``S1`` and ``ST`` (dimensionless shares of the
        variance) and ``samples`` (finite sample rows used), sorted by ``ST`` within each
        endpoint.
    """
    if samples < 2:
        raise CartpkError(f"samples must be >= 2, got {samples}")
    to_values = _scaled(bounds, scale)
    k = len(bounds)
    rng = np.random.default_rng(seed)
    a, b = rng.random((samples, k)), rng.random((samples, k))
    mixed = np.repeat(a[None], k, axis=0)
    mixed[np.arange(k), :, np.arange(k)] = b.T
    values = _outputs(function, to_values(np.concatenate([a, b, mixed.reshape(-1, k)])))
    rows = []
    for endpoint, y in values.items():
        f_a, f_b = y[:samples], y[samples : 2 * samples]
        f_ab = y[2 * samples :].reshape(k, samples)
        for j, name in enumerate(bounds):
            ok = np.isfinite(f_a) & np.isfinite(f_b) & np.isfinite(f_ab[j])
            variance = np.var(np.concatenate([f_a[ok], f_b[ok]]))
            first = np.mean(f_b[ok] * (f_ab[j][ok] - f_a[ok])) / variance
            total = 0.5 * np.mean((f_a[ok] - f_ab[j][ok]) ** 2) / variance
            rows.append(
                {
                    "endpoint": endpoint,
                    "parameter": name,
                    "S1": first,
                    "ST": total,
                    "samples": int(ok.sum()),
                }
            )
    return _ranked(pd.DataFrame(rows), "ST")


def _ranked(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """Rows sorted by ``column`` (descending) within each endpoint, endpoints in input order."""
    order = {e: i for i, e in enumerate(dict.fromkeys(table.endpoint))}
    table = table.assign(_e=table.endpoint.map(order), _v=-table[column].fillna(-np.inf))
    return (
        table.sort_values(["_e", "_v"], kind="stable")
        .drop(columns=["_e", "_v"])
        .reset_index(drop=True)
    )
