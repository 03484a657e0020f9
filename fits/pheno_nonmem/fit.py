"""FOCE-I and SAEM against NONMEM: the phenobarbital ("pheno") example, refitted by cartpk.

Data: phenobarbital in 59 neonates, 155 serum concentrations (mg/L) after repeated IV bolus
doses (mg), body weight WGT (kg) and 5-minute Apgar score APGR (Grasela TH, Donn SM. Neonatal
population pharmacokinetics of phenobarbital derived from routine clinical data. Dev Pharmacol
Ther 1985;8(6):374-383). The dataset, the NONMEM control stream and NONMEM 7.5.1's output are the
example run bundled with the Python package pharmpy-core (``pharmpy/internals/example_models/``:
``pheno.dta``, ``pheno.mod``, ``pheno.lst``, ``pheno.ext``, ``pheno.cov``); they are read from the
installed package at run time and are not part of this repository.

NONMEM model (``pheno.mod``; ADVAN1 TRANS2, ``$ESTIMATION METHOD=1 INTERACTION``, ``$COVARIANCE
UNCONDITIONAL``, i.e. FOCE-I with the default sandwich covariance ``R^-1 S R^-1``)::

    TVCL = THETA(1)*WGT                  CL = TVCL*EXP(ETA(1))
    TVV  = THETA(2)*WGT                  V  = TVV*EXP(ETA(2))
    IF (APGR.LT.5) TVV = TVV*(1 + THETA(3))
    Y = F + F*EPS(1)                     (proportional error, SIGMA = its variance)

The same model in cartpk, exactly: :class:`Pheno` (one compartment, ``CL`` in L/h/kg and ``V``
in L/kg as typical values per kg), weight as ``power`` covariates on both with the exponent fixed
at 1 and reference 1 kg (``CL_i = cl * WGT * exp(eta)``), and a categorical covariate on ``V`` for
the derived column ``APGR_LOW = [APGR < 5]``: ``V_i = v * WGT * exp(beta) * exp(eta)``, so
``THETA(3) = exp(beta) - 1`` (a reparameterisation, which leaves the likelihood unchanged).
``omega_*`` and ``sigma_prop`` are SDs, NONMEM's OMEGA and SIGMA variances: OMEGA = omega^2,
SIGMA = sigma_prop^2; standard errors are carried over by the delta method, which is exact for
the sandwich covariance at the optimum. Records with AMT > 0 are doses into the central
compartment (NONMEM's default without EVID/MDV columns), the others observations.

Run: ``python fits/pheno_nonmem/fit.py [--method foce|saem|both] [--out DIR]`` (needs ``pip
install pharmpy-core``). It evaluates the FOCE-I OFV at NONMEM's final estimates (with and
without the residual-variance term of the FOCE-I curvature), fits from NONMEM's initial
estimates (``$THETA``, ``$OMEGA``, ``$SIGMA`` of ``pheno.mod``) with sandwich standard errors,
and writes ``agreement.csv`` (parameter, cartpk and NONMEM estimate and SE, relative
differences) and ``ofv.csv``. Tsit5 at rtol 1e-8: the model is not stiff, and a reference
comparison wants a tight tolerance.

SAEM (``--method saem`` or ``both``, the default): :class:`~cartpk.estimation.SAEM` with its
defaults (300 + 200 iterations, 1000 importance samples per subject, ``seed=0``) and
``se="sandwich"`` (the FOCE-I ``R^-1 S R^-1`` at the SAEM estimates, the basis of the FOCE
comparison), from the same initial estimates, solver and options. It writes
``agreement_saem.csv`` (the same columns: cartpk's SAEM estimate and SE against NONMEM's
**FOCE-I** estimate and SE of ``pheno.ext``, plus NONMEM's SAEM estimate, described next) and
``ofv_saem.csv``: the FOCE-I OFV at the SAEM estimates and ``-2 log L`` by importance sampling
(with its Monte Carlo SE), both without the ``n log 2 pi`` constant of the 155 observations, and
NONMEM's FOCE-I OFV. With one method, the other method's files are carried over unchanged from
the existing results folder.

NONMEM SAEM reference (:data:`NONMEM_SAEM`): pharmpy's test data hold a NONMEM 7.5.1 SAEM run of
the same model and data, github.com/pharmpy/pharmpy commit
bad70378486c5f0d49c4592189273ee71c92a649, ``tests/testdata/nonmem/modelfit_results/saem/``
(``pheno_saem.mod``: ``$ESTIMATION METHOD=1 INTERACTION`` then ``$ESTIMATION METHOD=SAEM``,
NONMEM's defaults NBURN=1000, NITER=1000, ISAMPLE=2, SEED=11456, started from the FOCE-I
estimates; its FOCE-I step reproduces ``pheno.ext`` to 1.3e-8 in the OFV, so the data are the
same). Its final SAEM estimates are transcribed from ``pheno_saem.ext`` (table 2, iteration
-1000000000). It has no ``$COVARIANCE`` step (no SEs) and no importance-sampling step: its
``SAEMOBJ`` (140.234) is not a marginal ``-2 log L`` and is not compared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import ClassVar

import diffrax as dfx
import numpy as np
import pandas as pd

import cartpk
import cartpk.estimation.objective as objective
from cartpk.commands import ResultsFolder
from cartpk.estimation import SAEM, CovariateEffect, Observation, Population, Proportional, fit
from cartpk.estimation.objective import Spec
from cartpk.estimation.outer import Evaluator
from cartpk.estimation.problem import build_problem

HERE = Path(__file__).resolve().parent
SOLVER = dict(solver=dfx.Tsit5(), rtol=1e-8)
#: NONMEM's parameter names (pharmpy's, from the comments of ``pheno.mod``) -> cartpk's
NAMES = {
    "POP_CL": "cl",
    "POP_VC": "v",
    "COVAPGR": "beta_v_APGR_LOW_1",
    "IIV_CL": "omega_cl",
    "IIV_VC": "omega_v",
    "SIGMA": "sigma_prop",
}
#: NONMEM 7.5.1's SAEM run of the same model (module docstring): final estimates of
#: ``pheno_saem.ext`` (table 2, iteration -1000000000; OMEGA and SIGMA are variances), no SEs
NONMEM_SAEM_SOURCE = (
    "https://github.com/pharmpy/pharmpy/blob/bad70378486c5f0d49c4592189273ee71c92a649/"
    "tests/testdata/nonmem/modelfit_results/saem/pheno_saem.ext"
)
NONMEM_SAEM = {
    "POP_CL": 4.58503e-03,
    "POP_VC": 9.80182e-01,
    "COVAPGR": 1.52386e-01,
    "IIV_CL": 3.43783e-02,
    "IIV_VC": 2.80642e-02,
    "SIGMA": 1.23932e-02,
}


class Pheno(cartpk.AbstractModel):
    """One-compartment IV-bolus model; ``cl`` and ``v`` per kg (the weight enters as a
    covariate with exponent 1)."""

    states: ClassVar = (cartpk.State("central", "blood", "mg", atol=1e-12),)
    parameters: ClassVar = (
        cartpk.Parameter(
            "cl", 0.0047, "L/h/kg", "clearance per kg", "Grasela & Donn 1985: 0.0047 L/h/kg"
        ),
        cartpk.Parameter(
            "v", 0.96, "L/kg", "volume of distribution per kg", "Grasela & Donn 1985: 0.96 L/kg"
        ),
    )

    def rates(self, t, y, p, effects):
        return {"central": -p["cl"] / p["v"] * y["central"]}

    def observables(self, t, y, p):
        return {"concentration": y["central"] / p["v"]}


#: the NONMEM $PK/$ERROR in cartpk's terms (see the module docstring)
OPTIONS = dict(
    observations={1: Observation("concentration", Proportional(0.1))},
    covariates=[
        CovariateEffect("cl", "WGT", "power", reference=1.0),
        CovariateEffect("v", "WGT", "power", reference=1.0),
        CovariateEffect("v", "APGR_LOW", "categorical", reference=0),
    ],
    fixed={"beta_cl_WGT": 1.0, "beta_v_WGT": 1.0},
)


def example_dir() -> Path:
    """The folder of pharmpy-core's bundled NONMEM example runs."""
    import pharmpy

    return Path(pharmpy.__file__).resolve().parent / "internals" / "example_models"


def nonmem_reference() -> dict:
    """The dataset and NONMEM's run of ``pheno.mod``, as pharmpy-core reads them.

    Returns a dict: ``dataset`` (DataFrame of ``pheno.dta``), ``initial``, ``estimates`` and
    ``se`` (NONMEM's names -> values; OMEGA and SIGMA are variances), ``ofv`` (without the
    ``n log 2 pi`` constant, as NONMEM reports it) and ``files`` (name -> sha256 of the bytes).
    """
    from pharmpy.modeling import load_example_model
    from pharmpy.tools import read_modelfit_results

    model = load_example_model("pheno")
    results = read_modelfit_results(example_dir() / "pheno.mod")
    files = {
        name: hashlib.sha256((example_dir() / name).read_bytes()).hexdigest()
        for name in ("pheno.mod", "pheno.dta", "pheno.ext", "pheno.lst", "pheno.cov")
    }
    return dict(
        dataset=model.dataset,
        initial={p.name: float(p.init) for p in model.parameters},
        estimates={k: float(v) for k, v in results.parameter_estimates.items()},
        se={k: float(v) for k, v in results.standard_errors.items()},
        ofv=float(results.ofv),
        files=files,
        pharmpy_version=metadata.version("pharmpy-core"),
    )


def dataset(frame: pd.DataFrame) -> cartpk.nonmem.NonmemData:
    """``pheno.dta`` as cartpk reads it: AMT > 0 is a bolus into the central compartment."""
    table = frame[["ID", "TIME", "AMT", "DV", "WGT"]].copy()
    dose = frame["AMT"] > 0
    table["EVID"] = dose.astype(int)
    table["MDV"] = dose.astype(int)
    table["CMT"] = 1
    table["APGR_LOW"] = (frame["APGR"] < 5).astype(int)
    return cartpk.read_nonmem(table, name="pheno.dta", compartments={1: "central"})


def to_cartpk(nonmem: dict) -> dict:
    """NONMEM's THETA/OMEGA/SIGMA values -> cartpk's initial values (natural scale)."""
    values = {NAMES[k]: v for k, v in nonmem.items() if k in NAMES}
    values["beta_v_APGR_LOW_1"] = math.log1p(values["beta_v_APGR_LOW_1"])
    for name in ("omega_cl", "omega_v", "sigma_prop"):
        values[name] = math.sqrt(values[name])
    return values


def to_nonmem(estimate: float, se: float, name: str) -> tuple[float, float]:
    """A cartpk estimate and SE on NONMEM's scale (delta method)."""
    if name == "beta_v_APGR_LOW_1":
        return math.expm1(estimate), math.exp(estimate) * se
    if name.startswith(("omega_", "sigma_")):
        return estimate**2, 2 * estimate * se
    return estimate, se


def problem_at(data, nonmem_values: dict):
    """The cartpk problem with its parameters at NONMEM's values."""
    return build_problem(Pheno(), data, initial=to_cartpk(nonmem_values), **OPTIONS)


def ofv_at(
    problem, x0=None, *, rtol: float = 1e-8, subjects=None, inner_max_steps: int = 64
) -> dict:
    """The FOCE-I OFV at the internal values ``x0`` (default: the problem's initial values) and
    its gradient in the free internal parameters (``ofv_nonmem`` without the ``n log 2 pi`` of
    the observations)."""
    x0 = problem.x0 if x0 is None else x0
    arrays = problem.arrays
    if subjects is not None:
        import jax

        arrays = jax.tree.map(lambda v: v[subjects], arrays)
    spec = Spec(
        problem.layout,
        method="foce",
        solver=SOLVER["solver"],
        rtol=rtol,
        inner_max_steps=inner_max_steps,
    )
    evaluator = Evaluator(spec, arrays)
    n_subjects = arrays.mask.shape[0]
    m = problem.layout.n_free
    V = np.zeros((1, problem.x0.size, m))
    V[0, problem.free_index, np.arange(m)] = 1.0
    weights = np.ones((1, n_subjects))
    z = np.zeros((1, n_subjects, len(problem.layout.etas)))
    for _ in range(2):  # the second evaluation starts from converged EBEs
        out = evaluator(x0[None], V, np.zeros((1, m)), weights, z)
        z = out["z"]
    n_obs = int(np.asarray(arrays.mask & ~arrays.censored & ~arrays.censored_above).sum())
    ofv = float(out["ofv"][0])
    return dict(
        ofv=ofv,
        ofv_nonmem=ofv - n_obs * math.log(2 * math.pi),
        grad=np.asarray(out["grad"][0]),
        evaluator=evaluator,
        V=V,
        z=z,
    )


def ofv_without_variance_term(problem) -> float:
    """The OFV (NONMEM convention) with the residual-variance term of the FOCE-I curvature
    dropped, for comparison. The patched objective is traced under distinct static settings
    (``inner_max_steps``), so no other evaluation reuses that trace."""
    original = objective.sd_curvature
    objective.sd_curvature = lambda sd, censored, censored_above: 0.0 * sd
    try:
        return ofv_at(problem, inner_max_steps=65)["ofv_nonmem"]
    finally:
        objective.sd_curvature = original


def agreement(result, reference: dict) -> pd.DataFrame:
    """Estimates and SEs of cartpk and NONMEM on NONMEM's scale, with relative differences."""
    table = result.estimates_table("sandwich").set_index("parameter")
    rows = []
    for nonmem_name, name in NAMES.items():
        estimate, se = to_nonmem(table.at[name, "estimate"], table.at[name, "se"], name)
        ref, ref_se = reference["estimates"][nonmem_name], reference["se"][nonmem_name]
        rows.append(
            dict(
                parameter=nonmem_name,
                cartpk_name=name,
                cartpk_estimate=estimate,
                nonmem_estimate=ref,
                rel_diff_percent=100 * (estimate - ref) / ref,
                cartpk_se=se,
                nonmem_se=ref_se,
                se_rel_diff_percent=100 * (se - ref_se) / ref_se,
            )
        )
    return pd.DataFrame(rows)


def cpu_model() -> str:
    """``lscpu``'s model name (for the recorded run times)."""
    import subprocess

    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def carry_over(out: Path, names: tuple[str, ...]) -> tuple[dict, dict]:
    """Files ``names`` of an existing results folder (name -> writer of the same bytes) and the
    manifest's ``result`` section, for a run of one method that keeps the other's results."""
    files = {}
    for name in names:
        path = out / name
        if path.is_file():
            content = path.read_bytes()
            files[name] = lambda target, content=content: Path(target).write_bytes(content)
    try:
        previous = json.loads((out / "manifest.json").read_text()).get("result", {})
    except (OSError, ValueError):
        previous = {}
    return files, previous


def fit_saem(data, initial: dict, se: str = "sandwich", progress: bool = False, **kw):
    """The SAEM fit (``SAEM(seed=0)``, default iterations and samples) from ``initial``, with the
    warnings it raised (messages) and its wall-clock seconds."""
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(
            Pheno(),
            data,
            SAEM(seed=0, se=se, **kw),
            initial=initial,
            progress=progress,
            **SOLVER,
            **OPTIONS,
        )
    for w in caught:
        print(f"warning: {w.category.__name__}: {w.message}", file=sys.stderr)
    return result, [str(w.message) for w in caught], time.perf_counter() - started


def run_saem(data, reference: dict) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The SAEM fit from NONMEM's initial estimates: agreement table (against NONMEM's FOCE-I,
    with NONMEM's SAEM estimates beside), OFV table and manifest summary."""
    result, caught, seconds = fit_saem(data, to_cartpk(reference["initial"]), progress=True)
    print(f"SAEM: {seconds:.0f} s")
    table = agreement(result, reference)
    table["nonmem_saem_estimate"] = [NONMEM_SAEM[k] for k in table["parameter"]]
    table["rel_diff_vs_nonmem_saem_percent"] = 100 * (
        table["cartpk_estimate"] / table["nonmem_saem_estimate"] - 1
    )
    ofv = pd.DataFrame(saem_ofv_rows(result, reference["ofv"]))
    summary = {
        "nonmem_reference": "FOCE-I of pheno.ext (estimates, SEs, OFV); NONMEM's SAEM estimates "
        f"(no SEs, no OFV) from {NONMEM_SAEM_SOURCE}",
        **saem_summary(result, reference["ofv"], caught, seconds),
        "cpu": cpu_model(),
    }
    return table, ofv, summary


def saem_ofv_rows(result, nonmem_ofv: float) -> list[dict]:
    """The FOCE-I OFV and the importance-sampling -2LL at the SAEM estimates (MC SE) on NONMEM's
    basis, against NONMEM's FOCE-I OFV."""
    is_ofv = result.extra["ofv_importance_sampling"] - (result.ofv - result.ofv_nonmem)
    return [
        dict(
            what=what,
            cartpk=value,
            cartpk_mc_se=mc_se,
            nonmem_foce=nonmem_ofv,
            difference=value - nonmem_ofv,
        )
        for what, value, mc_se in (
            ("FOCE-I OFV at the SAEM estimates", result.ofv_nonmem, math.nan),
            (
                "-2LL by importance sampling at the SAEM estimates",
                is_ofv,
                result.extra["ofv_importance_sampling_se"],
            ),
        )
    ]


def saem_summary(result, nonmem_ofv: float, caught: list[str], seconds: float) -> dict:
    """The manifest's record of a SAEM fit against NONMEM's FOCE-I OFV."""
    rows = saem_ofv_rows(result, nonmem_ofv)
    return {
        "message": result.message,
        "iterations": result.iterations,
        "chains_per_subject": result.extra.get("chains"),
        "foce_ofv_nonmem_at_saem_estimates": rows[0]["cartpk"],
        "ofv_importance_sampling_nonmem_basis": rows[1]["cartpk"],
        "ofv_importance_sampling_se": rows[1]["cartpk_mc_se"],
        "nonmem_foce_ofv": nonmem_ofv,
        "covariance": result.covariance.message,
        "ebe_not_converged": int((~result.ebe_converged).sum()),
        "warnings": caught,
        "seconds": seconds,
    }


SAEM_FILES = ("agreement_saem.csv", "ofv_saem.csv")
FOCE_FILES = ("agreement.csv", "ofv.csv")


def run(out: Path = HERE / "results", method: str = "both"):
    cartpk.enable_x64()
    started = time.perf_counter()
    reference = nonmem_reference()
    data = dataset(reference["dataset"])
    files, results = {}, {}
    if method in ("foce", "both"):
        table, ofv, results["foce"] = run_foce(data, reference)
        files["agreement.csv"] = lambda path: table.to_csv(path, index=False)
        files["ofv.csv"] = lambda path: ofv.to_csv(path, index=False)
    if method in ("saem", "both"):
        saem_table, saem_ofv, results["saem"] = run_saem(data, reference)
        files["agreement_saem.csv"] = lambda path: saem_table.to_csv(path, index=False)
        files["ofv_saem.csv"] = lambda path: saem_ofv.to_csv(path, index=False)
    if method != "both":
        kept, previous = carry_over(out, SAEM_FILES if method == "foce" else FOCE_FILES)
        files.update(kept)
        other = "saem" if method == "foce" else "foce"
        if kept and other in previous:
            results[other] = previous[other]
    results["seconds"] = time.perf_counter() - started
    with ResultsFolder(out, command="python fits/pheno_nonmem/fit.py", force=True) as folder:
        folder.write(
            files,
            options={
                "source": "pharmpy-core's bundled NONMEM 7.5.1 run of pheno.mod (not copied here)",
                "nonmem_saem_source": NONMEM_SAEM_SOURCE,
                "pharmpy_core": reference["pharmpy_version"],
                "reference_files_sha256": reference["files"],
                "method": method,
                "se": "sandwich (for SAEM: the FOCE-I R^-1 S R^-1 at the SAEM estimates)",
                "saem": "SAEM(seed=0, se='sandwich'): iterations (300, 200), 1000 importance "
                "samples per subject",
                "solver": "Tsit5",
                "rtol": SOLVER["rtol"],
                "initial": to_cartpk(reference["initial"]),
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
    print(f"{time.perf_counter() - started:.0f} s")
    return files, results


def run_foce(data, reference: dict):
    """The FOCE-I comparison: agreement table, OFV table and manifest summary (and the result)."""
    started = time.perf_counter()
    at_nonmem = problem_at(data, reference["estimates"])
    with_term = ofv_at(at_nonmem)["ofv_nonmem"]
    without_term = ofv_without_variance_term(at_nonmem)
    initial = to_cartpk(reference["initial"])
    result = fit(
        Pheno(),
        data,
        Population(method="foce", se="sandwich", tol=1e-4),
        initial=initial,
        progress=True,
        **SOLVER,
        **OPTIONS,
    )
    table = agreement(result, reference)
    ofv = pd.DataFrame(
        [
            dict(
                what="OFV at NONMEM's final estimates",
                cartpk=with_term,
                nonmem=reference["ofv"],
                difference=with_term - reference["ofv"],
            ),
            dict(
                what="same, without the residual-variance term of the FOCE-I curvature",
                cartpk=without_term,
                nonmem=reference["ofv"],
                difference=without_term - reference["ofv"],
            ),
            dict(
                what="OFV at each program's own minimum",
                cartpk=result.ofv_nonmem,
                nonmem=reference["ofv"],
                difference=result.ofv_nonmem - reference["ofv"],
            ),
        ]
    )
    summary = {
        "converged": result.converged,
        "message": result.message,
        "ofv_nonmem": result.ofv_nonmem,
        "nonmem_ofv": reference["ofv"],
        "ebe_not_converged": int((~result.ebe_converged).sum()),
        "seconds": time.perf_counter() - started,
    }
    return table, ofv, summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--method", choices=("foce", "saem", "both"), default="both")
    args = parser.parse_args(argv)
    run(args.out, args.method)


if __name__ == "__main__":
    main()
