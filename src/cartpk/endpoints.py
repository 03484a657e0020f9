"""Clinical and mechanistic endpoints from simulated trajectories.

All endpoints are computed from the observables of a :class:`~cartpk.Solution` on its output grid
(the CAR-T infusion is day 0; the grid's first time is the pre-treatment baseline; as everywhere
in cartpk, the output at a dose time is the value just before the dose). The numeric
endpoints are written with ``jax.numpy`` so that they can be differentiated (schedule
optimisation); the response category and time to progression are RECIST-like classifications.

==============================  ===============  ===============================================
endpoint                        unit             definition
==============================  ===============  ===============================================
``cmax_cells_per_ul``           cells/µL         max of circulating CAR-T for t >= 0
``cmax_copies_per_ug``          copies/µg gDNA   the same in transgene copies (when available)
``tmax_d``                      d                first time of that maximum
``auc0_28_cells_per_ul_d``      cells/µL·d       trapezoidal AUC of circulating CAR-T, day 0-28
``persistence_d``               d                time with circulating CAR-T >= the limit
                                                 (log-linear interpolation between outputs;
                                                 censored at the horizon)
``tumour_car_t_auc_cell_d``     cells·d          AUC of intratumoural CAR-T, day 0 to
                                                 ``tumour_exposure_days``
``infiltration_ratio``          -                that AUC / AUC of CAR-T in the whole blood
                                                 volume over the same days
``exhausted_fraction_d28``      -                exhausted share of intratumoural CAR-T, day 28
``tumour_nadir_percent``        %                min over t >= 0 of the burden change from
                                                 baseline
``tumour_change_percent``       %                burden change from baseline at the horizon
``best_response``               CR/PR/SD/PD      RECIST-like best overall response (below)
``progressed``                  bool             progression at an assessment before the horizon
``time_to_progression_d``       d                first assessment with progression (NaN if none)
==============================  ===============  ===============================================

Response (RECIST 1.1-like, Eisenhauer 2009, doi:10.1016/j.ejca.2008.10.026), at assessments every
``assessment_interval_days`` from day 0: the lesion diameter is taken proportional to the cube
root of the tumour burden, ``d = (burden / baseline)^(1/3)``. CR: burden below
``complete_response_cells``; PR: ``d <= 0.7`` (30 % shrinkage); PD: ``d >= 1.2 min(d so far)``
(20 % growth over the nadir, baseline included) with the burden at or above
``complete_response_cells`` (regrowth that stays below it is not measurable); otherwise SD. The
best overall response is the best category at assessments before the first PD (PD if the first
assessment is PD). Without tumour at baseline the changes are NaN and the response is CR.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import pandas as pd

from .errors import CartpkError, ScenarioError

#: Endpoint name -> (unit, whether it is differentiable in the model inputs).
ENDPOINTS: dict[str, tuple[str, bool]] = {
    "cmax_cells_per_ul": ("cells/uL", True),
    "cmax_copies_per_ug": ("copies/ug gDNA", True),
    "tmax_d": ("d", False),
    "auc0_28_cells_per_ul_d": ("cells/uL*d", True),
    "persistence_d": ("d", True),
    "tumour_car_t_auc_cell_d": ("cells*d", True),
    "infiltration_ratio": ("-", True),
    "exhausted_fraction_d28": ("-", True),
    "tumour_nadir_percent": ("%", True),
    "tumour_change_percent": ("%", True),
    "best_response": ("CR/PR/SD/PD", False),
    "progressed": ("bool", False),
    "time_to_progression_d": ("d", False),
}

RESPONSES = ("CR", "PR", "SD", "PD")


@dataclass(frozen=True)
class EndpointOptions:
    """Windows and thresholds of the endpoints.

    Attributes:
        persistence_limit_cells_per_ul: limit of "persisting" circulating CAR-T (cells/µL); a
            default, set it to the assay's lower limit of quantification.
        tumour_exposure_days: end of the intratumoural AUC window (d).
        assessment_interval_days: days between response assessments (RECIST scans are typically
            every 6-8 weeks).
        complete_response_cells: burden below which a tumour counts as gone (about 1 mm^3 of
            tumour, 1e6 cells, is below imaging resolution).
    """

    persistence_limit_cells_per_ul: float = 1.0
    tumour_exposure_days: float = 60.0
    assessment_interval_days: float = 42.0
    complete_response_cells: float = 1e6

    def __post_init__(self):
        for name, value in vars(self).items():
            if not (np.isfinite(value) and value > 0):
                raise ScenarioError(f"outputs.{name} must be a positive number, got {value!r}")

    def required_times(self, horizon: float) -> np.ndarray:
        """Days the output grid must contain for these endpoints."""
        assessments = np.arange(
            self.assessment_interval_days, horizon + 1e-9, self.assessment_interval_days
        )
        days = [0.0, 28.0, self.tumour_exposure_days, horizon]
        return np.unique(np.concatenate([[d for d in days if d <= horizon], assessments]))


def _window(times: np.ndarray, start: float, stop: float) -> slice:
    """The index range of ``times`` in ``[start, stop]`` (both must be grid points)."""
    for day in (start, stop):
        if not np.any(np.isclose(times, day)):
            raise ScenarioError(f"output times must contain day {day:g} for the endpoints")
    first, last = (int(np.flatnonzero(np.isclose(times, day))[0]) for day in (start, stop))
    return slice(first, last + 1)


def _auc(values, times: np.ndarray, window: slice):
    return jnp.trapezoid(values[..., window], times[window], axis=-1)


def _time_above(values, times: np.ndarray, limit: float):
    """Total time with ``values >= limit``; crossings interpolated log-linearly between positive
    values, linearly next to a zero (e.g. the pre-dose output at the infusion)."""
    a, b = values[..., :-1] - limit, values[..., 1:] - limit
    positive = (values[..., :-1] > 0) & (values[..., 1:] > 0)
    log_a = jnp.log(jnp.where(positive, values[..., :-1], limit) / limit)
    log_b = jnp.log(jnp.where(positive, values[..., 1:], limit) / limit)
    linear = a / jnp.where(a != b, a - b, 1.0)
    log_linear = log_a / jnp.where(log_a != log_b, log_a - log_b, 1.0)
    crossing = jnp.where(positive, log_linear, linear)  # share of the step before the crossing
    share = jnp.where(
        (a >= 0) & (b >= 0),
        1.0,
        jnp.where(a >= 0, crossing, jnp.where(b >= 0, 1.0 - crossing, 0.0)),
    )
    return jnp.sum(share * np.diff(times), axis=-1)


def numeric_endpoints(
    observables: Mapping, times, options: EndpointOptions = EndpointOptions()
) -> dict:
    """The differentiable endpoints (``jax.numpy`` arrays, patient axis first if batched)."""
    times = np.asarray(times, dtype=float)
    after = _window(times, 0.0, float(times[-1]))
    blood = observables["blood_cells_per_ul"]
    out = {"cmax_cells_per_ul": jnp.max(blood[..., after], axis=-1)}
    if "blood_copies_per_ug" in observables:
        out["cmax_copies_per_ug"] = jnp.max(observables["blood_copies_per_ug"][..., after], axis=-1)
    out["auc0_28_cells_per_ul_d"] = _auc(blood, times, _window(times, 0.0, 28.0))
    out["persistence_d"] = _time_above(
        blood[..., after], times[after], options.persistence_limit_cells_per_ul
    )
    if "tumour_car_t" in observables:
        window = _window(times, 0.0, options.tumour_exposure_days)
        tumour_auc = _auc(observables["tumour_car_t"], times, window)
        out["tumour_car_t_auc_cell_d"] = tumour_auc
        out["infiltration_ratio"] = tumour_auc / _auc(observables["blood_car_t"], times, window)
        day = _window(times, 28.0, 28.0).stop - 1
        out["exhausted_fraction_d28"] = observables["exhausted_fraction"][..., day]
    if "tumour_burden" in observables:
        burden = observables["tumour_burden"]
        with np.errstate(invalid="ignore", divide="ignore"):  # no tumour at baseline: NaN
            change = 100.0 * (burden / burden[..., :1] - 1)
        out["tumour_nadir_percent"] = jnp.min(change[..., after], axis=-1)
        out["tumour_change_percent"] = change[..., -1]
    return out


def response(burden: np.ndarray, times, options: EndpointOptions = EndpointOptions()):
    """RECIST-like best overall response, progression flag and time to progression.

    Args:
        burden: tumour cells, shape ``(patients, times)``; column 0 is the baseline.
        times: output times (d) containing every assessment day.

    Returns:
        ``(best_response, progressed, time_to_progression_d)`` arrays of shape ``(patients,)``.
    """
    times = np.asarray(times, dtype=float)
    burden = np.atleast_2d(np.asarray(burden, dtype=float))
    days = np.arange(
        options.assessment_interval_days, times[-1] + 1e-9, options.assessment_interval_days
    )
    index = [_window(times, d, d).stop - 1 for d in days]
    with np.errstate(invalid="ignore", divide="ignore"):  # no tumour at baseline: NaN
        diameter = np.cbrt(burden[:, index] / burden[:, :1])
    nadir = np.minimum.accumulate(np.concatenate([np.ones_like(diameter[:, :1]), diameter], 1), 1)
    gone = burden[:, index] < options.complete_response_cells
    # regrowth below the complete-response limit is not measurable disease, so not progression
    progression = (diameter >= 1.2 * nadir[:, :-1]) & ~gone
    category = np.where(
        gone,
        0,
        np.where(diameter <= 0.7, 1, np.where(progression, 3, 2)),
    )
    progressed = progression.any(axis=1)
    first = np.where(progressed, progression.argmax(axis=1), len(days))
    before = np.arange(len(days))[None, :] < first[:, None]
    best = np.where(before, category, 3).min(axis=1) if len(days) else np.full(len(burden), 2)
    ttp = np.where(progressed, days[np.minimum(first, len(days) - 1)] if len(days) else 0, np.nan)
    return np.asarray(RESPONSES, dtype=object)[best], progressed, ttp


def endpoint_table(
    observables: Mapping, times, options: EndpointOptions = EndpointOptions()
) -> pd.DataFrame:
    """All endpoints of a batch of patients, one row per patient (see the module docstring).

    Args:
        observables: observable name -> array ``(patients, times)`` (observable units), e.g.
            ``Solution.observables`` of :func:`~cartpk.simulate_population`.
        times: output times (d), containing day 0 and the endpoint days.
        options: endpoint windows and thresholds.

    Returns:
        One row per patient; columns named after :data:`ENDPOINTS`, in their units.
    """
    table = pd.DataFrame(
        {k: np.asarray(v) for k, v in numeric_endpoints(observables, times, options).items()}
    )
    blood = np.asarray(observables["blood_cells_per_ul"])
    after = np.asarray(times) >= 0
    column = list(table.columns).index("auc0_28_cells_per_ul_d")
    table.insert(column, "tmax_d", np.asarray(times)[after][blood[:, after].argmax(axis=1)])
    if "tumour_burden" in observables:
        best, progressed, ttp = response(np.asarray(observables["tumour_burden"]), times, options)
        table["best_response"] = best
        table["progressed"] = progressed
        table["time_to_progression_d"] = ttp
    return table


# -- population bands ----------------------------------------------------------------------------


def band_table(solution, observables: Sequence[str], arms: Sequence[str] | None = None):
    """Median and 5-95 % band per arm and time of a batched solution (``trajectories.csv``).

    Args:
        solution: a :class:`~cartpk.Solution` with a patient axis (e.g. from
            :func:`~cartpk.simulate_population`); failed patients (``status != 0``) are left out.
        observables: names of observables or states.
        arms: one label per patient (default: every patient in one group, ``"all"``).

    Returns:
        A DataFrame with columns ``arm, observable, time_d, p05, median, p95`` (observable
        units), the layout :func:`~cartpk.plots.trajectories` plots.
    """
    times = np.asarray(solution.times).reshape(-1, np.shape(solution.times)[-1])[0]
    ok = np.asarray(solution.status).reshape(-1) == 0
    labels = np.asarray(arms if arms is not None else ["all"] * ok.size, dtype=object)
    if labels.shape != ok.shape:
        raise CartpkError(f"arms has {labels.size} labels for {ok.size} patients")
    frames = []
    for name in observables:
        if name in solution.observables:
            values = np.asarray(solution.observables[name])
        elif name in solution.states:
            values = np.asarray(solution.states[name])
        else:
            known = ", ".join([*solution.observables, *solution.states])
            raise CartpkError(f"no observable or state {name!r}; known: {known}")
        values = values.reshape(-1, times.size)
        for arm in dict.fromkeys(labels):
            rows = values[(labels == arm) & ok]
            if not len(rows):
                continue
            frames.append(band_frame(arm, name, times, rows))
    return pd.concat(frames, ignore_index=True)


def band_frame(arm: str, observable: str, times, values) -> pd.DataFrame:
    """One arm's band rows of :func:`band_table`: median and 5-95 % range over patients.

    Args:
        arm: the arm's label.
        observable: the observable's name.
        times: output times (d).
        values: ``(patients, times)`` in the observable's unit; NaN values are left out.
    """
    q05, q50, q95 = np.nanpercentile(values, [5, 50, 95], axis=0)
    columns = {"arm": arm, "observable": observable, "time_d": times}
    return pd.DataFrame({**columns, "p05": q05, "median": q50, "p95": q95})
