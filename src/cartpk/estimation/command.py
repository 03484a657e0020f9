"""``cartpk fit``: options from the command line to :func:`~cartpk.estimation.fit` and back to
files (see :func:`run_fit`)."""

from __future__ import annotations

import math
import sys

from ..errors import CartpkError
from .api import SOLVERS, fit, load_model
from .error_models import ERROR_MODELS
from .individual import Individual
from .output import check_output_dir, write_results
from .population import Population, raise_if_not_converged
from .problem import Covariate, Observation, model_observables
from .uncertainty import bootstrap, profile


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


def _covariates(items) -> list[Covariate]:
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
        out.append(Covariate(parts[0], parts[1], kind, reference))
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
    """:func:`fit` keyword arguments from parsed command-line options."""
    observables = args.observable or [model_observables(model)[0]]
    errors = args.error or ["exponential"]
    if len(errors) == 1:
        errors = errors * len(observables)
    if len(errors) != len(observables):
        raise CartpkError(
            f"--error given {len(errors)} times for {len(observables)} observables; give it once "
            "or once per --observable"
        )
    observations = {
        i + 1: Observation(name, ERROR_MODELS[kind]())
        for i, (name, kind) in enumerate(zip(observables, errors, strict=True))
    }
    fixed = _pairs(args.fix, "--fix", need_value=False)
    initial = _pairs(args.init, "--init", need_value=True)
    for name, value in fixed.items():
        if value is not None:
            initial[name] = value
    omega = _pairs(args.omega, "--omega", need_value=False)
    variability = None
    if omega:
        variability = {
            n: (v if v is not None else initial.get(f"omega_{n}", 0.3)) for n, v in omega.items()
        }
    return dict(
        observations=observations,
        initial=initial,
        fixed=list(fixed),
        variability=variability,
        block=args.block,
        covariates=_covariates(args.covariate),
        compartments=_compartments(args.cmt),
        ignore_doses=args.ignore_doses,
        solver=SOLVERS[args.solver](),
        rtol=args.rtol,
    )


def run_fit(args) -> None:
    """Run ``cartpk fit`` (``args`` from the parser built with :func:`add_arguments`)."""
    out = check_output_dir(args.out, args.force)
    for name in ("max_iter", "starts"):
        if getattr(args, name) < 1:
            raise CartpkError(f"--{name.replace('_', '-')} must be >= 1")
    for name in ("vpc", "bootstrap"):
        if getattr(args, name) < 0:
            raise CartpkError(f"--{name} must be >= 0")
    model = load_model(args.model)
    options = options_from_args(args, model)
    if args.method == "individual":
        strategy = Individual(starts=args.starts, seed=args.seed)
    else:
        strategy = Population(method=args.method, max_iter=args.max_iter, se=args.se)
    result = fit(model, args.data, strategy, progress=True, **options)
    print(result.summary(), flush=True)
    profiles, boot = [], None
    if args.profile and args.method != "individual":
        for name in (n.strip() for n in args.profile.split(",") if n.strip()):
            table = profile(result, name, progress=print)
            low, high = table.attrs["ci"]
            print(f"profile likelihood 95 % CI of {name}: [{low:.4g}, {high:.4g}]", flush=True)
            profiles.append(table)
    if args.bootstrap and args.method != "individual":
        boot = bootstrap(result, args.bootstrap, seed=args.seed, progress=print)
    recorded = {
        "command": " ".join(["cartpk", *sys.argv[1:]]) if sys.argv else "cartpk fit",
        "model": args.model,
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
        "vpc_replicates": args.vpc,
        "bootstrap": args.bootstrap,
        "seed": args.seed,
    }
    write_results(
        result,
        out,
        force=args.force,
        data_path=args.data,
        options=recorded,
        vpc_replicates=args.vpc if args.method != "individual" else 0,
        seed=args.seed,
        profiles=profiles,
        bootstrap=boot,
        progress=print,
    )
    print(f"results in {out}/", flush=True)
    if isinstance(strategy, Population):
        raise_if_not_converged(result)
    elif not result.converged:
        raise CartpkError(f"individual fits: {result.message}; results written to {out}/")
