"""``cartpk fit DATA.csv --model NAME --out DIR``: fit a model to a NONMEM-style dataset.

Population fits (FOCE-I, Laplace or SAEM) or individual fits. Writes ``estimates.csv`` (estimates,
SEs, CIs, units, variances, CV % and shrinkage; ``docs/fit_results.md``), ``individual.csv`` (one
row per ID), for population fits ``covariance.csv``, ``correlation.csv``, ``fit.json`` (reloaded by
``cartpk.estimation.load_fit``), ``diagnostics.csv`` (PRED, IPRED, IWRES, CWRES), ``gof.png``,
``individual_fits.png``, ``residuals.png``, ``eta_covariates.png`` (with covariate columns),
``vpc.csv`` and ``vpc.png``, ``npde.csv``, ``npde_summary.csv``, ``pcvpc.csv`` and ``pcvpc.png``
(``--replicates``); ``profile.csv``/``profile.png`` and ``bootstrap.csv`` when asked;
``inputs/data.csv`` and ``manifest.json``.

Warnings raised while the dataset is read and the fit is built (e.g. a dose-independent model
counting each subject's time from its dose) are printed as one ``warning: ...`` line each, even
with ``--quiet``, and recorded in the manifest.
"""

from __future__ import annotations

import argparse
import json
import math
import warnings

import numpy as np
import pandas as pd

from .. import plots
from ..errors import CartpkError, DatasetError
from ..estimation import (
    ERROR_MODELS,
    MODELS,
    SAEM,
    SOLVERS,
    CovariateEffect,
    Individual,
    Observation,
    Population,
    PopulationResult,
    bootstrap,
    build_problem,
    estimated_index,
    fit,
    load_model,
    model_observables,
    npde_summary,
    npde_table,
    pcvpc_table,
    profile,
    raise_if_not_converged,
)
from ..estimation.pcvpc import observation_points
from ..estimation.saved import fit_record, model_reference
from ..estimation.uncertainty import CHI2_95
from ..nonmem import read_nonmem
from ..nonmem._select import conditions
from ..progress import step
from ._console import Console
from ._folder import ResultsFolder

#: Rough bytes on disk per observation and table (diagnostics, VPC, NPDE, pcVPC) and per figure.
_ROW_BYTES, _FIGURE_BYTES = 400, 400_000
#: Figures a fit may write (gof, individual fits, residuals, ETA vs covariates, VPC, pcVPC,
#: profiles), with room to spare.
_FIGURES = 10
#: Default simulation replicates of the NPDE and the pcVPC.
REPLICATES = 200
#: A numeric covariate with at most this many distinct integer values is drawn as categories.
_CATEGORICAL_LEVELS = 5


def add_parser(commands) -> None:
    fit_ = commands.add_parser(
        "fit",
        help="fit a model to a NONMEM-style dataset (FOCE-I, Laplace or individual fits)",
        description=__doc__,
    )
    fit_.add_argument("data", help="NONMEM-style CSV (ID, TIME, DV, CENS/LLOQ, DVID, ...)")
    add_model_options(fit_)
    add_dataset_options(fit_)
    fit_.add_argument("--out", required=True, help="results folder (created; see --force)")
    fit_.add_argument(
        "--method",
        choices=("foce", "laplace", "saem", "individual"),
        default="foce",
        help="estimation method: foce (FOCE-I), laplace, saem (stochastic approximation EM, as "
        "Monolix) or individual (per-subject ML) (default: foce)",
    )
    fit_.add_argument(
        "--saem-iterations",
        metavar="K1,K2",
        default="300,200",
        help="SAEM exploration and smoothing iterations (default: 300,200)",
    )
    fit_.add_argument(
        "--force", action="store_true", help="replace an earlier cartpk results folder in --out"
    )
    fit_.add_argument(
        "--omega",
        action="append",
        metavar="NAME[=SD]",
        help="between-subject variability on NAME (log-normal: SD of eta, about the CV; initial "
        "SD optional) (repeat; default: on every estimated parameter)",
    )
    fit_.add_argument(
        "--block",
        action="store_true",
        help="estimate the full covariance of the etas (OMEGA BLOCK)",
    )
    fit_.add_argument(
        "--covariate",
        action="append",
        metavar="PARAM:COLUMN[:KIND[:REF]]",
        help="covariate effect of COLUMN on PARAM; KIND power ((cov/REF)^beta, the default), "
        "exponential (exp(beta (cov - REF))), categorical (one beta per level other than REF) or "
        "regressor (the column is the parameter's value); REF: default the median or the most "
        "frequent level (repeat; default: none)",
    )
    fit_.add_argument(
        "--solver",
        choices=tuple(SOLVERS),
        default="kvaerno5",
        help="ODE solver (default: kvaerno5)",
    )
    fit_.add_argument(
        "--rtol", type=float, default=1e-8, help="ODE relative tolerance (default: 1e-8)"
    )
    fit_.add_argument(
        "--se",
        choices=("hessian", "sandwich", "none"),
        default="sandwich",
        help="standard errors: R^-1 S R^-1 (sandwich, NONMEM's default), 2 R^-1 (hessian) or "
        "none (default: sandwich)",
    )
    fit_.add_argument(
        "--max-iter",
        type=int,
        default=500,
        metavar="N",
        help="most OFV evaluations of a FOCE-I/Laplace fit (default: 500)",
    )
    fit_.add_argument(
        "--profile",
        metavar="NAME[,NAME...]",
        help="profile likelihood and its 95 %% CI of each named parameter (profile.csv, "
        "profile.png; FOCE-I/Laplace; default: none)",
    )
    fit_.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="nonparametric bootstrap replicates, resampling subjects (bootstrap.csv; "
        "FOCE-I/Laplace; default: 0)",
    )
    fit_.add_argument(
        "--vpc",
        type=int,
        default=200,
        metavar="N",
        help="VPC replicates (vpc.csv, vpc.png; 0: none; default: 200)",
    )
    fit_.add_argument(
        "--replicates",
        type=int,
        default=REPLICATES,
        metavar="N",
        help="simulations of the study for the NPDE (npde.csv, npde_summary.csv) and the "
        "prediction-corrected VPC (pcvpc.csv, pcvpc.png); must exceed every subject's number of "
        "observations (0: none; default: %(default)s)",
    )
    fit_.add_argument(
        "--starts",
        type=int,
        default=8,
        metavar="N",
        help="starts per subject of individual fits (default: 8)",
    )
    fit_.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of VPC, NPDE, pcVPC, bootstrap and starts (default: 0)",
    )
    fit_.add_argument(
        "--quiet", action="store_true", help="no progress messages (warnings are still printed)"
    )
    fit_.set_defaults(run=run)


def add_model_options(parser) -> None:
    """The model, what its observations are, its parameters' values and the doses' states
    (``cartpk fit`` and ``cartpk export``)."""
    parser.add_argument(
        "--model",
        required=True,
        help=f"a built-in model ({', '.join(MODELS)}) or path/file.py:Class",
    )
    parser.add_argument(
        "--observable",
        action="append",
        metavar="NAME",
        help="observable of DVID 1, 2, ... (repeat; default: the model's first)",
    )
    parser.add_argument(
        "--error",
        action="append",
        choices=tuple(ERROR_MODELS),
        help="residual error per observable (repeat, or once for all; default: exponential)",
    )
    parser.add_argument(
        "--unit",
        action="append",
        metavar="UNIT",
        help="unit of the DV values of DVID 1, 2, ... (repeat, once per --observable; for "
        "labels, e.g. cells/uL; default: none)",
    )
    parser.add_argument(
        "--fix",
        action="append",
        metavar="NAME[=VALUE]",
        help="hold a parameter (theta, omega_NAME or sigma_NAME) at VALUE, in the model's unit, "
        "or at its initial value (repeat; default: none fixed)",
    )
    parser.add_argument(
        "--init",
        action="append",
        metavar="NAME=VALUE",
        help="initial value of a parameter, in the model's unit (natural scale; omegas and "
        "sigmas as SDs) (repeat; default: the model's defaults)",
    )
    parser.add_argument(
        "--cmt",
        action="append",
        metavar="CMT=STATE",
        help="the model state a dose with this CMT value goes into, e.g. 1=depot (repeat; "
        "default: the state named by the CMT value)",
    )
    parser.add_argument(
        "--ignore-doses",
        action="store_true",
        help="drop the dose records (for a model whose doses are its parameters, e.g. multiphasic)",
    )


def _saem_iterations(text: str) -> tuple[int, int]:
    try:
        k1, k2 = (int(v) for v in text.split(","))
    except ValueError:
        raise CartpkError(
            f"--saem-iterations: expected K1,K2 (two integers), got {text!r}"
        ) from None
    if k1 < 1 or k2 < 1:
        raise CartpkError(f"--saem-iterations: both counts must be positive, got {text!r}")
    return k1, k2


def run(args: argparse.Namespace) -> None:
    say = Console(args.quiet)
    _check_numbers(args)
    reading = dataset_options(args)
    population = args.method != "individual"
    profiles = [n.strip() for n in (args.profile or "").split(",") if n.strip()]
    if args.method not in ("foce", "laplace") and (profiles or args.bootstrap):
        raise CartpkError(
            "--profile and --bootstrap need a FOCE-I or Laplace fit (--method foce/laplace)"
        )
    iterations = _saem_iterations(args.saem_iterations)
    replicates = args.replicates if population else 0
    with (
        ResultsFolder(args.out, command="cartpk fit", force=args.force) as results,
        say.showing_warnings() as shown,
    ):
        content = results.read_input("data", args.data, suffix=".csv")
        model = load_model(args.model)
        model_file = save_model_file(results, model)
        options = options_from_args(args, model)
        data = read_nonmem(content, name=args.data, compartments=options["compartments"], **reading)
        problem = build_problem(model, data, **_problem_options(options))
        # the problem records how its data were read (fit.json)
        problem.options.update({k: v for k, v in reading.items() if v is not None})
        for name in profiles:  # before the fit, not after it
            estimated_index(problem.layout, name)
        _check_replicates(replicates, problem)
        n_rows = len(data.observations())
        n_tables = 1 + bool(population and args.vpc) + 2 * bool(replicates)
        results.reserve(n_rows * _ROW_BYTES * n_tables + _FIGURES * _FIGURE_BYTES)
        if args.method == "saem":
            strategy = SAEM(iterations=iterations, se=args.se, seed=args.seed)
        elif population:
            strategy = Population(method=args.method, max_iter=args.max_iter, se=args.se)
        else:
            strategy = Individual(starts=args.starts, seed=args.seed)
        result = fit(
            model, problem, strategy, progress=say, solver=options["solver"], rtol=options["rtol"]
        )
        say(result.summary())
        tables, figures, summary = fit_outputs(
            result,
            profiles=[_profile(result, name, say) for name in profiles],
            bootstrap=(
                bootstrap(result, args.bootstrap, seed=args.seed, progress=say)
                if args.bootstrap
                else None
            ),
            vpc_replicates=args.vpc,
            replicates=replicates,
            seed=args.seed,
            progress=say,
            model_file=model_file,
        )
        summary["run_warnings"] = list(shown)
        results.write(
            {**tables, **figures}, options=_recorded(args, options, reading), result=summary
        )
    say(f"results in {args.out}/")
    if population:
        raise_if_not_converged(result)
    elif not result.converged:
        raise CartpkError(f"individual fits: {result.message}; results written to {args.out}/")


def save_fit(
    result,
    out,
    *,
    force: bool = False,
    data=None,
    options: dict | None = None,
    vpc_replicates: int = 200,
    replicates: int = REPLICATES,
    seed: int = 0,
    progress=None,
):
    """Write a fit's results folder as ``cartpk fit`` does (for scripts and notebooks).

    Args:
        result: a :class:`~cartpk.estimation.PopulationResult` or ``IndividualResult``.
        out: the results folder (the rules of :class:`ResultsFolder` apply).
        data: the dataset's path, hashed into the manifest and copied to ``inputs/``.
        options: recorded in the manifest.
        vpc_replicates, replicates: simulations of the VPC and of the NPDE and pcVPC (0: none).
    """
    with ResultsFolder(out, command="cartpk fit", force=force) as results:
        if data is not None:
            results.read_input("data", data, suffix=".csv")
        model_file = save_model_file(results, result.problem.layout.model)
        tables, figures, summary = fit_outputs(
            result,
            vpc_replicates=vpc_replicates,
            replicates=replicates,
            seed=seed,
            progress=progress,
            model_file=model_file,
        )
        return results.write({**tables, **figures}, options=options or {}, result=summary)


def fit_outputs(
    result,
    *,
    profiles=(),
    bootstrap=None,
    vpc_replicates: int = 200,
    replicates: int = 0,
    seed: int = 0,
    progress=None,
    model_file: str | None = None,
):
    """The tables (name -> writer), figures and other files (name -> writer) and the manifest
    summary of a fit (``model_file``: where a user model's file is saved in the folder).

    ``vpc_replicates``: simulations of the VPC; ``replicates``: of the NPDE (``npde.csv``,
    ``npde_summary.csv``) and the prediction-corrected VPC (``pcvpc.csv``, ``pcvpc.png``); 0: none.
    """
    say = progress or (lambda line: None)
    tables = {"estimates.csv": result.estimates, "individual.csv": result.individual}
    figures = {}
    summary = {
        "strategy": type(result.strategy).__name__,
        "converged": bool(result.converged),
        "message": result.message,
        "ofv": _number(result.ofv),
        "seconds": round(float(result.seconds), 2),
    }
    if isinstance(result, PopulationResult):
        layout = result.layout
        diagnostics = result.diagnostics()
        tables["diagnostics.csv"] = diagnostics
        record = fit_record(result, model_file)
        figures["fit.json"] = lambda path: path.write_text(json.dumps(record, indent=1))
        log_scale = {
            d: o.error.log_scale for d, o in zip(layout.dvids, layout.observations, strict=True)
        }
        title = f"{type(layout.model).__name__}, {result.strategy.method.upper()}"
        unit = layout.model.time_unit
        observables = {
            d: (o.label if o.unit else o.observable, o.error.log_scale)
            for d, o in zip(layout.dvids, layout.observations, strict=True)
        }
        units = {o.unit for o in layout.observations}
        value_label = f"DV ({units.pop()})" if len(units) == 1 and None not in units else None
        figures["gof.png"] = _figure(
            plots.goodness_of_fit, diagnostics, log_scale, title, unit, value_label=value_label
        )
        figures["individual_fits.png"] = _figure(
            plots.individual_fits, diagnostics, log_scale, unit, ylabel=value_label
        )
        covariates = _eta_covariate_table(result)
        if covariates is not None:
            individual, units, categorical = covariates
            figures["eta_covariates.png"] = _figure(
                lambda: plots.eta_covariates(
                    individual, list(layout.etas), units, categorical=categorical
                )
            )
        for name, matrix in (
            ("covariance.csv", result.covariance_table()),
            ("correlation.csv", result.correlation_table()),
        ):
            if matrix is not None:
                tables[name] = matrix.rename_axis("parameter").reset_index()
        history = result.iterations_table()
        if len(history):
            tables["iterations.csv"] = history
        summary.update(
            method=result.strategy.method,
            ofv_nonmem=_number(result.ofv_nonmem),
            iterations=result.iterations,
            evaluations=result.evaluations,
            covariance=result.covariance.message,
            condition_number=_number(result.correlation_condition_number),
            se=result.strategy.se,
            warnings=result.warnings,
            shrinkage={k: float(v) for k, v in result.shrinkage.items()},
            ebe_not_converged=[
                _plain(result.problem.ids[i]) for i in np.flatnonzero(~result.ebe_converged)
            ],
        )
        if vpc_replicates > 0:
            with step(say, f"VPC: simulating {vpc_replicates} replicates of the study"):
                vpc = result.vpc(replicates=vpc_replicates, seed=seed)
            tables["vpc.csv"] = vpc
            limits = result.problem.data.observations()["LIMIT"].dropna()
            limit = float(limits.median()) if len(limits) else None
            observed = observation_points(result, prediction_corrected=False)
            figures["vpc.png"] = _figure(
                lambda: plots.visual_predictive_check(
                    vpc, observables, limit, unit, observed=observed
                )
            )
        npde = None
        if replicates > 0:
            with step(say, f"NPDE: simulating {replicates} replicates of the study"):
                npde = npde_table(result, replicates=replicates, seed=seed)
            tables["npde.csv"] = npde
            if np.isfinite(npde["NPDE"]).sum() >= 3:
                tests = npde_summary(npde["NPDE"])
                tables["npde_summary.csv"] = tests
                say(_npde_line(tests))
                summary["npde"] = {
                    q: _number(v) for q, v in zip(tests["quantity"], tests["value"], strict=True)
                }
            else:
                warnings.warn("NPDE: fewer than 3 values, no npde_summary.csv", stacklevel=2)
            with step(say, f"pcVPC: simulating {replicates} replicates of the study"):
                pcvpc = pcvpc_table(result, replicates=replicates, seed=seed)
            tables["pcvpc.csv"] = pcvpc
            points = observation_points(result, prediction_corrected=True)
            figures["pcvpc.png"] = _figure(
                lambda: _titled(
                    plots.visual_predictive_check(pcvpc, observables, None, unit, observed=points),
                    "prediction-corrected VPC: observations and simulations scaled to the median "
                    "PRED of their time bin",
                )
            )
        figures["residuals.png"] = _figure(
            lambda: plots.residual_panels(diagnostics, npde, unit, log_scale=log_scale)
        )
    if profiles:
        tables["profile.csv"] = pd.concat(profiles, ignore_index=True)
        figures["profile.png"] = _figure(plots.likelihood_profiles, list(profiles), CHI2_95)
        summary["profile_ci"] = {
            t["parameter"].iloc[0]: [float(v) for v in t.attrs["ci"]] for t in profiles
        }
    if bootstrap is not None:
        tables["bootstrap.csv"] = bootstrap
        summary["bootstrap_ci"] = {
            k: [float(a), float(b)] for k, (a, b) in bootstrap.attrs["ci"].items()
        }
    return {name: _csv(frame) for name, frame in tables.items()}, figures, summary


def _eta_covariate_table(result):
    """``individual.csv`` with every covariate column of the dataset (its first value per
    subject), the covariates' units and the categorical ones; None without etas or covariates."""
    data = result.problem.data
    names = [*data.covariates, *data.text_columns]
    etas = result.layout.etas
    if not names or not etas:
        return None
    table = result.individual.copy()
    ids = list(result.problem.ids)
    frame = data.frame[data.frame["ID"].isin(ids)]
    categorical = list(data.text_columns)
    for name in names:
        first = frame.groupby("ID", sort=False)[name].first()
        table[name] = [first.get(i) for i in ids]
        values = pd.to_numeric(table[name], errors="coerce").dropna()
        if name not in categorical and (
            values.nunique() <= _CATEGORICAL_LEVELS and np.all(values == np.round(values))
        ):
            categorical.append(name)
    units = {name: "-" if name in categorical else "data unit" for name in names}
    return table, units, categorical


def _npde_line(tests: pd.DataFrame) -> str:
    v = dict(zip(tests["quantity"], tests["value"], strict=True))
    return (
        f"NPDE: mean {v['mean']:.3g} (SE {v['se_mean']:.2g}), variance {v['variance']:.3g} "
        f"(SE {v['se_variance']:.2g}); p-values: mean {v['p_mean']:.3g}, variance "
        f"{v['p_variance']:.3g}, normality {v['p_normality']:.3g}, global {v['p_global']:.3g}"
    )


def _check_replicates(replicates: int, problem) -> None:
    """The NPDE need more simulations than any subject has observations (known before the fit)."""
    if replicates <= 0:
        return
    most = int(np.asarray(problem.arrays.mask).sum(axis=1).max())
    if replicates <= most:
        raise CartpkError(
            f"--replicates {replicates}: the NPDE need more replicates than the largest number of "
            f"observations of one subject ({most}); give more, or 0 for no NPDE and pcVPC"
        )


def save_model_file(results: ResultsFolder, model) -> str | None:
    """Copy a user model's source file to ``inputs/model.py`` (so that the fit reloads)."""
    reference = model_reference(model)
    if not reference.get("file"):
        return None
    results.read_input("model", reference["file"], suffix=".py")
    return results.inputs["model"]["copy"]


def _profile(result, name: str, say):
    table = profile(result, name, progress=say)
    low, high = table.attrs["ci"]
    say(f"profile likelihood 95 % CI of {name}: [{low:.4g}, {high:.4g}]")
    return table


def _csv(frame):
    return lambda path: frame.to_csv(path, index=False)


def _figure(draw, *args, **kwargs):
    return lambda path: plots.save(draw(*args, **kwargs), path)


def _titled(fig, title: str):
    fig.suptitle(title)
    return fig


def _number(value) -> float | None:
    return None if value is None else float(value)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


# -- options ---------------------------------------------------------------------------------


def _check_numbers(args) -> None:
    """Every numeric option, before any file is read."""
    if not (math.isfinite(args.rtol) and 0 < args.rtol < 1):
        raise CartpkError(f"--rtol must be a number in (0, 1), got {args.rtol}")
    for name, low in (
        ("max_iter", 1),
        ("starts", 1),
        ("vpc", 0),
        ("replicates", 0),
        ("bootstrap", 0),
        ("seed", 0),
    ):
        if getattr(args, name) < low:
            raise CartpkError(
                f"--{name.replace('_', '-')} must be >= {low}, got {getattr(args, name)}"
            )


def _pairs(items, what: str, need_value: bool) -> dict:
    out = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        name = name.strip()
        if not name or (need_value and not sep):
            raise CartpkError(f"{what} {item!r}: expected NAME{'=VALUE' if need_value else ''}")
        if sep:
            try:
                number = float(value)
            except ValueError:
                raise CartpkError(f"{what} {item!r}: {value!r} is not a number") from None
            if not math.isfinite(number):
                raise CartpkError(f"{what} {item!r}: the value must be finite")
            out[name] = number
        else:
            out[name] = None
    return out


def _covariates(items) -> list[CovariateEffect]:
    out = []
    for item in items or ():
        parts = item.split(":")
        if len(parts) < 2 or len(parts) > 4 or not all(parts[:2]):
            raise CartpkError(f"--covariate {item!r}: expected PARAM:COLUMN[:KIND[:REF]]")
        reference = None
        if len(parts) == 4:
            try:
                reference = float(parts[3])
            except ValueError:
                raise CartpkError(f"--covariate {item!r}: reference must be a number") from None
        kind = parts[2] if len(parts) >= 3 else "power"
        out.append(CovariateEffect(parts[0], parts[1], kind, reference))
    return out


def _compartments(items) -> dict | None:
    if not items:
        return None
    out = {}
    for item in items:
        key, sep, state = item.partition("=")
        if not sep or not key.strip() or not state.strip():
            raise CartpkError(f"--cmt {item!r}: expected CMT=STATE")
        key = key.strip()
        out[int(key) if key.isdigit() else key] = state.strip()
    return out


def options_from_args(args, model) -> dict:
    """:func:`~cartpk.fit` keyword arguments from parsed command-line options."""
    omega = _pairs(args.omega, "--omega", need_value=False)
    options = model_options(args, model)
    variability = None
    if omega:
        initial = options["initial"]
        variability = {
            n: (v if v is not None else initial.get(f"omega_{n}", 0.3)) for n, v in omega.items()
        }
    return dict(
        **options,
        variability=variability,
        block=args.block,
        covariates=_covariates(args.covariate),
        solver=SOLVERS[args.solver](),
        rtol=args.rtol,
    )


def model_options(args, model) -> dict:
    """The observations, initial values, fixed parameters and dose compartments of the options
    :func:`add_model_options` adds."""
    observables = args.observable or [model_observables(model)[0]]
    errors = args.error or ["exponential"]
    if len(errors) == 1:
        errors = errors * len(observables)
    if len(errors) != len(observables):
        raise CartpkError(
            f"--error given {len(errors)} times for {len(observables)} observables; give it once "
            "or once per --observable"
        )
    units = args.unit or [None] * len(observables)
    if len(units) != len(observables):
        raise CartpkError(
            f"--unit given {len(units)} times for {len(observables)} observables; give it once "
            "per --observable"
        )
    observations = {
        i + 1: Observation(name, ERROR_MODELS[kind](), unit)
        for i, (name, kind, unit) in enumerate(zip(observables, errors, units, strict=True))
    }
    fixed = _pairs(args.fix, "--fix", need_value=False)
    initial = _pairs(args.init, "--init", need_value=True)
    for name, value in fixed.items():
        if value is not None:
            initial[name] = value
    return dict(
        observations=observations,
        initial=initial,
        fixed=list(fixed),
        compartments=_compartments(args.cmt),
        ignore_doses=args.ignore_doses,
    )


def _problem_options(options: dict) -> dict:
    """The options :func:`~cartpk.estimation.build_problem` takes (no solver settings)."""
    return {k: v for k, v in options.items() if k not in ("solver", "rtol")}


def _recorded(args, options, reading) -> dict:
    """The options as the manifest records them."""
    population = args.method != "individual"
    return {
        "model": args.model,
        "columns": reading["columns"],
        "ignore": reading["ignore"],
        "accept": reading["accept"],
        "method": args.method,
        "observations": {
            str(k): {"observable": v.observable, "error": v.error.kind}
            for k, v in options["observations"].items()
        },
        "fixed": options["fixed"],
        "initial": options["initial"],
        "variability": options["variability"] or "all estimated typical values",
        "block": args.block,
        "covariates": [c.__dict__ for c in options["covariates"]],
        "compartments": {str(k): v for k, v in (options["compartments"] or {}).items()},
        "ignore_doses": args.ignore_doses,
        "solver": args.solver,
        "rtol": args.rtol,
        "se": args.se,
        "max_iter": args.max_iter,
        "vpc_replicates": args.vpc if population else 0,
        "replicates": args.replicates if population else 0,
        "bootstrap": args.bootstrap,
        "profile": args.profile,
        "seed": args.seed,
    }


# -- reading the dataset (cartpk fit and cartpk check) ---------------------------------------


def add_dataset_options(parser) -> None:
    """``--columns``, ``--ignore`` and ``--accept``: how :func:`~cartpk.read_nonmem` reads the
    file (``cartpk fit`` and ``cartpk check``)."""
    parser.add_argument(
        "--columns",
        action="append",
        metavar="FILE=ROLE[,FILE=ROLE...]",
        help="roles of the file's columns, e.g. time=TIME,y=DV,y_ID=DVID (Monolix names); a role "
        "is a NONMEM name (DV, DVID, CENS, ...), a Monolix column type (OBSERVATION, 'OBSERVATION "
        "ID', ...), COVARIATE or IGNORE/DROP; or one ROLE per file column in order, as $INPUT: "
        "ID,TIME,DV,DROP (repeat to add; default: the columns' own names)",
    )
    parser.add_argument(
        "--ignore",
        action="append",
        metavar="RULE",
        help="NONMEM IGNORE: a character (@: records starting with a letter or @; C, #) or a "
        "condition COLUMN OP VALUE, e.g. DVID.EQ.2 or 'TIME>100' (OP == != < <= > >= or .EQ. "
        ".NE. .LT. .LE. .GT. .GE.), or a list '(DVID.EQ.2,MDV.EQ.1)'; a record is dropped when "
        "any holds (repeat; default: none, # lines are always skipped)",
    )
    parser.add_argument(
        "--accept",
        action="append",
        metavar="CONDITION",
        help="NONMEM ACCEPT: keep only records for which some condition holds, e.g. DVID.EQ.1 "
        "(repeat; not with --ignore conditions; default: every record)",
    )


def dataset_options(args) -> dict:
    """``read_nonmem`` keyword arguments ``columns``, ``ignore``, ``accept`` from ``--columns``,
    ``--ignore`` and ``--accept`` (syntax checked before any file is read)."""
    ignore = _rules(args.ignore, "ignore")
    accept = _rules(args.accept, "accept")
    if accept and any(len(rule) > 1 for rule in ignore or ()):
        raise CartpkError(
            "--ignore conditions and --accept exclude each other (as NONMEM's IGNORE=(list) and "
            "ACCEPT=(list)); a character rule such as --ignore @ may go with --accept"
        )
    return {"columns": _columns(args.columns), "ignore": ignore, "accept": accept}


def _columns(items):
    """``--columns`` values: FILE=ROLE pairs (a mapping) or one role per column (a list)."""
    if not items:
        return None
    syntax = (
        "expected FILE=ROLE[,FILE=ROLE...] (e.g. time=TIME,y=DV,y_ID=DVID) or one ROLE per file "
        "column (e.g. ID,TIME,DV,DROP)"
    )
    entries = []
    for item in items:
        parts = [part.strip() for part in item.split(",")]
        if not all(parts):
            raise CartpkError(f"--columns {item!r}: empty entry; {syntax}")
        entries += [(item, part) for part in parts]
    pairs = [part for _, part in entries if "=" in part]
    if not pairs:
        return [part for _, part in entries]
    out: dict[str, str] = {}
    for item, part in entries:
        column, sep, wanted = (x.strip() for x in part.partition("="))
        if not sep or not column or not wanted or "=" in wanted:
            raise CartpkError(f"--columns {item!r}: {part!r} is not FILE=ROLE; {syntax}")
        if column.upper() in (c.upper() for c in out):
            raise CartpkError(f"--columns {item!r}: column {column} given twice")
        out[column] = wanted
    return out


def _rules(items, option: str):
    """``--ignore``/``--accept`` values, each checked (a character or COLUMN OP VALUE)."""
    if not items:
        return None
    out = []
    for item in items:
        rule = item.strip()
        if not rule:
            raise CartpkError(f"--{option} {item!r}: empty rule")
        if len(rule) == 1 and option == "accept":
            raise CartpkError(
                f"--accept {item!r}: expected a condition COLUMN OP VALUE such as DVID.EQ.1 "
                "(character rules are --ignore's)"
            )
        try:
            conditions([rule], option)
        except DatasetError as error:
            reason = str(error).removeprefix(f"{option}: ")
            raise CartpkError(f"--{option} {item!r}: {reason}") from None
        out.append(rule)
    return out
