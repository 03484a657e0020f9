"""Sensitivity of endpoints to parameters: local (gradients through the solver) and global.

**Local** (:func:`local_sensitivity`): at one parameter point, the derivative ``dy/dp`` of each
endpoint ``y`` with respect to each parameter ``p``, computed by differentiating through the ODE
solver, and the normalized sensitivity ``S = d ln y / d ln p = (p / y) dy/dp`` (dimensionless:
a 1 % change of ``p`` changes ``y`` by about ``S`` %).

**Global**, over a box of parameter values (uniform on each range, or log-uniform with
``scale="log"``), for any vectorized function (all the points in one call), e.g. one built by
:func:`population_function`. They run on SALib (Herman & Usher 2017,
doi:10.21105/joss.00097), the optional extra ``pip install 'cartpk[sensitivity]'``:

- :func:`morris`: elementary effects (Morris 1991, doi:10.1080/00401706.1991.10484804) on
  ``r`` one-at-a-time trajectories; ``mu_star`` (mean absolute effect, Campolongo 2007,
  doi:10.1016/j.envsoft.2006.10.004) ranks the parameters, ``sigma`` (standard deviation of the
  effects) flags non-linearity or interactions. Cost: ``r (k + 1)`` evaluations for ``k``
  parameters.
- :func:`sobol`: first-order ``S1``, total-order ``ST`` and optionally second-order ``S2``
  variance-based indices on Saltelli's design from a scrambled Sobol' sequence, with the
  Saltelli 2010 (doi:10.1016/j.cpc.2009.09.018) and Jansen 1999 estimators and bootstrap
  confidence intervals. Cost: ``N (k + 2)`` evaluations, ``N (2 k + 2)`` with ``S2``.
- :func:`efast`: ``S1`` and ``ST`` from the Fourier spectrum of the output along search curves
  (Saltelli, Tarantola & Chan 1999, doi:10.1080/00401706.1999.10485594). Cost: ``N k``.

Endpoints are names from :data:`cartpk.ENDPOINTS` that are differentiable (computed with
:func:`cartpk.endpoints.numeric_endpoints`), or your own functions
``f(observables, times) -> value`` (written with ``jax.numpy`` for local sensitivities).
"""

from __future__ import annotations

import contextlib
import itertools
import warnings
from collections.abc import Callable, Mapping, Sequence

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ._optional import require
from .endpoints import ENDPOINTS, EndpointOptions, numeric_endpoints
from .errors import ArgumentError, CartpkError, ParameterError, SimulationWarning
from .models.base import AbstractModel
from .simulate import Status, simulate, simulate_population

#: An endpoint function: ``(observables, times) -> value`` (patient axis first if batched).
EndpointFunction = Callable[[Mapping, np.ndarray], jax.Array]

__all__ = [
    "efast",
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
    """A vectorized endpoint function of some parameters, for :func:`morris`, :func:`sobol` and
    :func:`efast`.

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
        ``f`` returns endpoint name -> NumPy array ``(n,)``, NaN where a simulation failed
        (the global methods then stop with an error naming the endpoint).
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


def _count(name: str, value, minimum: int) -> int:
    """``value`` as an integer ``>= minimum``, or an error naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ArgumentError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _bootstrap(resamples, conf_level) -> tuple[int, float]:
    """Validated bootstrap settings of the confidence intervals."""
    if not 0 < conf_level < 1:
        raise ArgumentError(f"conf_level must be between 0 and 1, got {conf_level!r}")
    return _count("resamples", resamples, 2), float(conf_level)


def _design(bounds: Mapping[str, tuple[float, float]], scale: str, seed):
    """SALib's problem on the unit cube, the map from the cube to parameter values (uniform or
    log-uniform on each range, model units) and the validated seed."""
    if scale not in ("linear", "log"):
        raise ArgumentError(f"scale must be 'linear' or 'log', got {scale!r}")
    if not bounds:
        raise ArgumentError("bounds must name at least one parameter")
    lower, upper = np.empty(len(bounds)), np.empty(len(bounds))
    for j, (name, bound) in enumerate(bounds.items()):
        try:
            lower[j], upper[j] = (float(v) for v in bound)
        except (TypeError, ValueError):
            raise ParameterError(
                f"bounds of {name} must be (lower, upper), got {bound!r}"
            ) from None
        if not (np.isfinite(lower[j]) and np.isfinite(upper[j]) and lower[j] < upper[j]):
            raise ParameterError(f"bounds of {name} must be finite with lower < upper, got {bound}")
        if scale == "log" and lower[j] <= 0:
            raise ParameterError(f"bounds of {name} must be positive for scale='log', got {bound}")

    def to_values(u: np.ndarray) -> dict[str, np.ndarray]:
        x = lower * (upper / lower) ** u if scale == "log" else lower + u * (upper - lower)
        return {name: x[:, j] for j, name in enumerate(bounds)}

    problem = {"num_vars": len(bounds), "names": list(bounds), "bounds": [[0.0, 1.0]] * len(bounds)}
    return problem, to_values, _count("seed", seed, 0)


def _outputs(function: Callable, points: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Endpoint name -> values of ``function`` at all the points in one call, all finite."""
    n = len(next(iter(points.values())))
    values = function(points)
    if not isinstance(values, Mapping):
        values = {"y": values}
    outputs = {}
    for endpoint, value in values.items():
        y = np.asarray(value, dtype=float).reshape(-1)
        if y.size != n:
            raise CartpkError(f"endpoint {endpoint!r} has {y.size} values for {n} points")
        bad = int(np.count_nonzero(~np.isfinite(y)))
        if bad:
            raise CartpkError(
                f"endpoint {endpoint!r} is not finite at {bad} of {n} points (failed "
                "simulations or undefined values); narrow the bounds or fix the endpoint"
            )
        outputs[endpoint] = y
    return outputs


def _varies(endpoint: str, y: np.ndarray) -> np.ndarray:
    """``y``, if it varies: variance-based indices are shares of the variance."""
    if np.ptp(y) == 0:
        raise CartpkError(
            f"endpoint {endpoint!r} is constant over the bounds: its variance-based indices "
            "are undefined"
        )
    return y


def _per_parameter(endpoint: str, names, result, columns: Sequence[str]) -> list[dict]:
    """One row per parameter of a SALib result: endpoint, parameter and ``columns``."""
    return [
        {"endpoint": endpoint, "parameter": name} | {c: float(result[c][j]) for c in columns}
        for j, name in enumerate(names)
    ]


#: A function for the global methods: parameter name -> values ``(n,)`` (model units) to
#: endpoint name -> values ``(n,)``, or to one array (reported as endpoint ``"y"``).
PointsFunction = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray] | np.ndarray]


def morris(
    function: PointsFunction,
    bounds: Mapping[str, tuple[float, float]],
    *,
    trajectories: int = 10,
    levels: int = 4,
    candidates: int | None = None,
    scale: str = "linear",
    resamples: int = 100,
    conf_level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Morris elementary-effects screening (SALib ``sample.morris``, ``analyze.morris``).

    Each trajectory starts at a random point of a ``levels``-level grid of the unit cube and
    moves one parameter at a time, in random order, by ``delta = levels / (2 (levels - 1))``.
    The elementary effect of parameter ``i`` is ``(f(x + delta e_i) - f(x)) / delta``: endpoint
    units per whole range of the parameter (per whole log range with ``scale="log"``), so a
    linear ``f = c p`` on ``(lower, upper)`` has ``mu_star = |c| (upper - lower)``. Cost:
    ``trajectories (k + 1)`` evaluations for ``k`` parameters, in one call of ``function``.

    Args:
        function: maps parameter name -> array ``(n,)`` (model units) to endpoint name ->
            array ``(n,)`` (or to one array, reported as endpoint ``"y"``); e.g. from
            :func:`population_function`.
        bounds: parameter -> ``(lower, upper)`` in model units.
        trajectories: number of trajectories ``r`` (10-50 is usual).
        levels: grid levels, even (4 or 6 is usual).
        candidates: if given, draw this many trajectories and keep the ``trajectories`` most
            spread out (Campolongo 2007, with Ruano 2012's local optimisation); costs no
            evaluations.
        scale: ``"linear"`` (uniform) or ``"log"`` (log-uniform, positive bounds).
        resamples: bootstrap resamples of the effects for ``mu_star_conf``.
        conf_level: confidence level of ``mu_star_conf`` (-).
        seed: random seed (trajectories and bootstrap), a non-negative integer.

    Returns:
        One row per (endpoint, parameter): ``mu`` (mean effect), ``mu_star`` (mean absolute
        effect), ``mu_star_conf`` (half-width of its bootstrap confidence interval) and
        ``sigma`` (standard deviation of the effects), in endpoint units; sorted by
        ``mu_star`` within each endpoint.

    Raises:
        ParameterError: for bad bounds.
        ArgumentError: for a bad count, level, scale or seed.
        CartpkError: without SALib, or for non-finite endpoint values.
    """
    salib_sample, salib_analyze = require("SALib.sample.morris"), require("SALib.analyze.morris")
    trajectories = _count("trajectories", trajectories, 2)
    if _count("levels", levels, 2) % 2:
        raise ArgumentError(f"levels must be an even integer >= 2, got {levels}")
    if candidates is not None:
        candidates = _count("candidates", candidates, trajectories + 1)
    resamples, conf_level = _bootstrap(resamples, conf_level)
    problem, to_values, seed = _design(bounds, scale, seed)
    unit = salib_sample.sample(
        problem,
        candidates or trajectories,
        num_levels=levels,
        optimal_trajectories=trajectories if candidates else None,
        seed=seed,
    )
    rows = []
    for endpoint, y in _outputs(function, to_values(unit)).items():
        s = salib_analyze.analyze(
            problem,
            unit,
            y,
            num_resamples=resamples,
            conf_level=conf_level,
            num_levels=levels,
            seed=seed,
        )
        rows += _per_parameter(endpoint, bounds, s, ("mu", "mu_star", "mu_star_conf", "sigma"))
    return _ranked(pd.DataFrame(rows), "mu_star")


def sobol(
    function: PointsFunction,
    bounds: Mapping[str, tuple[float, float]],
    *,
    samples: int = 1024,
    second_order: bool = False,
    scale: str = "linear",
    resamples: int = 100,
    conf_level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Variance-based Sobol' indices on Saltelli's design (SALib ``sample.sobol``,
    ``analyze.sobol``).

    Two matrices ``A`` and ``B`` (``samples`` rows each) from one scrambled Sobol' sequence, and
    for every parameter ``i`` the matrix ``AB_i`` (``A`` with column ``i`` from ``B``; with
    ``second_order``, also ``BA_i``). ``S1_i = mean(f(B) (f(AB_i) - f(A))) / V`` (Saltelli 2010),
    ``ST_i = mean((f(A) - f(AB_i))^2) / (2 V)`` (Jansen 1999), ``V`` the variance of ``f`` over
    ``A`` and ``B``; ``S2_ij`` as in Saltelli 2002. Cost: ``samples (k + 2)`` evaluations for
    ``k`` parameters, ``samples (2 k + 2)`` with ``second_order``, in one call of ``function``.

    Args:
        function: as for :func:`morris`.
        bounds: parameter -> ``(lower, upper)`` in model units.
        samples: rows ``N`` of ``A`` and ``B``, a power of two (the error falls about as
            ``1/N`` for smooth functions, ``1/sqrt(N)`` at worst).
        second_order: also estimate the second-order indices ``S2`` of every pair.
        scale: ``"linear"`` (uniform) or ``"log"`` (log-uniform, positive bounds).
        resamples: bootstrap resamples of the rows for the confidence intervals.
        conf_level: confidence level of the ``*_conf`` columns (-).
        seed: random seed (scrambling and bootstrap), a non-negative integer.

    Returns:
        One row per (endpoint, parameter): ``S1``, ``S1_conf``, ``ST``, ``ST_conf``
        (dimensionless shares of the variance; ``*_conf`` is the half-width of the bootstrap
        confidence interval), sorted by ``ST`` within each endpoint. With ``second_order``,
        ``(indices, pairs)``: ``pairs`` has one row per (endpoint, pair), columns ``endpoint``,
        ``parameter_1``, ``parameter_2``, ``S2``, ``S2_conf``, sorted by ``S2``.

    Raises:
        ParameterError: for bad bounds.
        ArgumentError: for a bad sample count, scale or seed.
        CartpkError: without SALib, or for non-finite or constant endpoint values.
    """
    salib_sample, salib_analyze = require("SALib.sample.sobol"), require("SALib.analyze.sobol")
    samples = _count("samples", samples, 2)
    if samples & (samples - 1):
        raise ArgumentError(f"samples must be a power of two (Sobol' sequence), got {samples}")
    resamples, conf_level = _bootstrap(resamples, conf_level)
    problem, to_values, seed = _design(bounds, scale, seed)
    unit = salib_sample.sample(problem, samples, calc_second_order=second_order, seed=seed)
    names = list(bounds)
    rows, pairs = [], []
    for endpoint, y in _outputs(function, to_values(unit)).items():
        s = salib_analyze.analyze(
            problem,
            _varies(endpoint, y),
            calc_second_order=second_order,
            num_resamples=resamples,
            conf_level=conf_level,
            seed=np.random.default_rng(seed),  # SALib tests `if seed`: 0 would not seed
        )
        rows += _per_parameter(endpoint, names, s, ("S1", "S1_conf", "ST", "ST_conf"))
        if second_order:
            for i, j in itertools.combinations(range(len(names)), 2):
                pairs.append(
                    {
                        "endpoint": endpoint,
                        "parameter_1": names[i],
                        "parameter_2": names[j],
                        "S2": float(s["S2"][i, j]),
                        "S2_conf": float(s["S2_conf"][i, j]),
                    }
                )
    indices = _ranked(pd.DataFrame(rows), "ST")
    if not second_order:
        return indices
    columns = ["endpoint", "parameter_1", "parameter_2", "S2", "S2_conf"]
    return indices, _ranked(pd.DataFrame(pairs, columns=columns), "S2")


def efast(
    function: PointsFunction,
    bounds: Mapping[str, tuple[float, float]],
    *,
    samples: int = 1024,
    harmonics: int = 4,
    scale: str = "linear",
    resamples: int = 100,
    conf_level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """First- and total-order indices by the extended Fourier amplitude sensitivity test
    (Saltelli, Tarantola & Chan 1999; SALib ``sample.fast_sampler``, ``analyze.fast``).

    For each parameter ``i`` in turn, all parameters move along a search curve
    ``x_j(s) = 1/2 + arcsin(sin(w_j s + phi)) / pi``, ``s`` on ``samples`` points of
    ``[0, 2 pi)``, with a high frequency ``w_i`` and low frequencies for the others. ``S1_i``
    is the share of the output variance (the Fourier spectrum of ``f`` along the curve) at the
    first ``harmonics`` multiples of ``w_i``; ``ST_i`` is one minus the share at the low
    frequencies of the others. Cost: ``samples k`` evaluations for ``k`` parameters, in one call
    of ``function``.

    Args:
        function: as for :func:`morris`.
        bounds: parameter -> ``(lower, upper)`` in model units.
        samples: points per search curve, ``> 4 harmonics^2``.
        harmonics: interference parameter ``M``, the harmonics of ``w_i`` summed into ``S1_i``
            (4 is usual; more for strongly non-linear functions).
        scale: ``"linear"`` (uniform) or ``"log"`` (log-uniform, positive bounds).
        resamples: bootstrap resamples of the curve for the confidence intervals.
        conf_level: confidence level of the ``*_conf`` columns (-).
        seed: random seed (phase shifts and bootstrap), a non-negative integer.

    Returns:
        One row per (endpoint, parameter): ``S1``, ``S1_conf``, ``ST``, ``ST_conf``, as for
        :func:`sobol`, sorted by ``ST`` within each endpoint. SALib warns that these
        bootstrap intervals are unreliable for eFAST: treat ``*_conf`` as indicative.

    Raises:
        ParameterError: for bad bounds.
        ArgumentError: for a bad sample count, harmonics, scale or seed.
        CartpkError: without SALib, or for non-finite or constant endpoint values.
    """
    salib_sample = require("SALib.sample.fast_sampler")
    salib_analyze = require("SALib.analyze.fast")
    harmonics = _count("harmonics", harmonics, 1)
    samples = _count("samples", samples, 2)
    if samples <= 4 * harmonics**2:
        raise ArgumentError(f"samples must be > 4 harmonics^2 = {4 * harmonics**2}, got {samples}")
    resamples, conf_level = _bootstrap(resamples, conf_level)
    problem, to_values, seed = _design(bounds, scale, seed)
    unit = salib_sample.sample(problem, samples, M=harmonics, seed=seed)
    rows = []
    for endpoint, y in _outputs(function, to_values(unit)).items():
        with _global_numpy_seed(seed):
            s = salib_analyze.analyze(
                problem,
                _varies(endpoint, y),
                M=harmonics,
                num_resamples=resamples,
                conf_level=conf_level,
            )
        rows += _per_parameter(endpoint, bounds, s, ("S1", "S1_conf", "ST", "ST_conf"))
    return _ranked(pd.DataFrame(rows), "ST")


@contextlib.contextmanager
def _global_numpy_seed(seed: int):
    """Seed NumPy's global random state for a block, then restore it: SALib's eFAST bootstrap
    draws from that state."""
    state = np.random.get_state()  # noqa: NPY002
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


def _ranked(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """Rows sorted by ``column`` (descending) within each endpoint, endpoints in input order."""
    order = {e: i for i, e in enumerate(dict.fromkeys(table.endpoint))}
    table = table.assign(_e=table.endpoint.map(order), _v=-table[column].fillna(-np.inf))
    return (
        table.sort_values(["_e", "_v"], kind="stable")
        .drop(columns=["_e", "_v"])
        .reset_index(drop=True)
    )
