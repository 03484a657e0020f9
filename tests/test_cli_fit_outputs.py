"""``cartpk fit`` and ``cartpk check`` as a pharmacometrician uses them: Monolix column names
(``--columns``), NONMEM IGNORE/ACCEPT rules (``--ignore``, ``--accept``), warnings as one
``warning:`` line, and the diagnostic files of a population fit (individual fits, residual panels,
ETA vs covariates, NPDE, pcVPC).

JAX compiles are slow: one small population fit (Multiphasic, two estimated typical values with
variability, an explicit solver) runs once for the module and the tests read the files it wrote;
a second run of the same structure (``--replicates 0``) reuses its compiled objective. The other
tests stop before any fit.
"""

from __future__ import annotations

import contextlib
import io
import json

import diffrax as dfx
import numpy as np
import pandas as pd
import pytest
from helpers import assert_one_error_line, run

import cartpk
from cartpk.cli import main
from cartpk.estimation import Exponential, sample_parameters, simulate_study

MODEL = cartpk.Multiphasic()
TIMES = [2.0, 7.0, 10.0, 14.0, 28.0, 90.0]
N_SUBJECTS = 8
#: the fitted structure: every parameter but cmax and alpha fixed at its default
FIXED = ["--fix", "tmax", "--fix", "foldx", "--fix", "beta", "--fix", "fb"]
OMEGA = ["--omega", "cmax", "--omega", "alpha"]
SOLVER = ["--solver", "tsit5", "--rtol", "1e-6"]
COLUMNS = "id=ID,day=TIME,dose=AMT,y=DV,y_ID=DVID"
PNG = b"\x89PNG\r\n\x1a\n"
UNIT = "copies/ug gDNA"
PLOTS = ("gof.png", "individual_fits.png", "residuals.png", "eta_covariates.png", "pcvpc.png")


def monolix_file(path):
    """A study in Monolix names (``id, day, dose, y, y_ID, WT``): a dose record per subject
    (subject 2 dosed on day 1, so its times shift), a second observation type to ignore
    (``y_ID=2``), a line starting with ``@`` (``--ignore @``) and a ``#`` comment line."""
    params = sample_parameters(MODEL, N_SUBJECTS, omega={"cmax": 0.3, "alpha": 0.2}, seed=3)
    study = simulate_study(MODEL, params, TIMES, error=Exponential(0.2), seed=4, solver=dfx.Tsit5())
    lines = ["id,day,dose,y,y_ID,WT", "# a comment line"]
    for i in range(1, N_SUBJECTS + 1):
        shift = 1.0 if i == 2 else 0.0
        weight = 55.0 + 5 * i
        lines.append(f"{i},{shift:g},1e8,.,1,{weight:g}")
        rows = study[study["ID"] == i]
        for time, dv in zip(rows["TIME"], rows["DV"], strict=True):
            lines.append(f"{i},{time + shift:g},.,{dv:.6g},1,{weight:g}")
            if time == TIMES[0]:  # another assay, ignored
                lines.append(f"{i},{time + 1 + shift:g},.,123,2,{weight:g}")
        if i == 3:
            lines.append("@ a note the sponsor left in the file,,,,,")
    path.write_text("\n".join(lines) + "\n")
    return path


def fit_argv(data, out, *extra):
    return ["fit", str(data), "--model", "multiphasic", "--out", str(out), *FIXED, *OMEGA, *extra]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fit_outputs")


@pytest.fixture(scope="module")
def data(folder):
    return monolix_file(folder / "monolix.csv")


@pytest.fixture(scope="module")
def fitted(folder, data):
    """One FOCE-I fit of the Monolix file through ``--columns`` and ``--ignore``, the DV unit
    given by ``--unit``; standard errors by the default (sandwich). Exit status, stdout,
    stderr and the results folder."""
    out = folder / "results"
    argv = fit_argv(data, out, *SOLVER, "--columns", COLUMNS, "--ignore", "@")
    argv += ["--ignore", "DVID.EQ.2", "--vpc", "20", "--replicates", "40", "--unit", UNIT]
    stdout, stderr = io.StringIO(), io.StringIO()  # capsys is function-scoped
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(argv)
    return status, stdout.getvalue(), stderr.getvalue(), out


def test_fit_writes_the_diagnostic_plots(fitted):
    status, _, stderr, out = fitted
    assert status == 0, stderr
    assert stderr == ""
    for name in PLOTS + ("vpc.png",):
        content = (out / name).read_bytes()
        assert content.startswith(PNG) and len(content) > 10_000, name
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(PLOTS) <= set(manifest["files"])
    assert {"npde.csv", "npde_summary.csv", "pcvpc.csv", "vpc.csv"} <= set(manifest["files"])


def test_npde_and_pcvpc_tables(fitted):
    _, stdout, _, out = fitted
    npde = pd.read_csv(out / "npde.csv")
    assert list(npde.columns) == ["ID", "TIME", "DV", "DVID", "CENS", "LIMIT", "WT", "PD", "NPDE"]
    assert len(npde) == N_SUBJECTS * len(TIMES) and set(npde["DVID"]) == {1}
    assert npde["PD"].between(0, 1).all() and np.isfinite(npde["NPDE"]).all()
    summary = pd.read_csv(out / "npde_summary.csv")
    assert list(summary.columns) == ["quantity", "value"]
    assert summary.set_index("quantity").loc["n", "value"] == len(npde)
    assert {"mean", "variance", "p_mean", "p_variance", "p_normality", "p_global"} <= set(
        summary["quantity"]
    )
    assert "NPDE: mean " in stdout and "global" in stdout
    pcvpc = pd.read_csv(out / "pcvpc.csv")
    vpc = pd.read_csv(out / "vpc.csv")
    assert list(pcvpc.columns) == list(vpc.columns)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["replicates"] == 40 and manifest["options"]["vpc_replicates"] == 20
    assert manifest["result"]["npde"]["n"] == len(npde)


def test_monolix_columns_and_ignore_rules_are_applied(fitted):
    status, stdout, _, out = fitted
    assert status == 0
    diagnostics = pd.read_csv(out / "diagnostics.csv")
    assert len(diagnostics) == N_SUBJECTS * len(TIMES)  # y_ID=2 and the @ line dropped
    assert set(diagnostics["DVID"]) == {1} and diagnostics["ID"].nunique() == N_SUBJECTS
    manifest = json.loads((out / "manifest.json").read_text())
    options = manifest["options"]
    assert options["columns"] == dict(p.split("=") for p in COLUMNS.split(","))
    assert options["ignore"] == ["@", "DVID.EQ.2"] and options["accept"] is None
    record = json.loads((out / "fit.json").read_text())["problem"]
    assert record["columns"] == options["columns"] and record["ignore"] == options["ignore"]
    assert record["observations"]["1"]["unit"] == UNIT  # --unit, kept for load_fit
    assert "Traceback" not in stdout


def test_dose_shift_warning_is_one_console_line(fitted):
    status, stdout, stderr, out = fitted
    lines = [line for line in stdout.splitlines() if "takes no dose input" in line]
    assert lines == [
        f"warning: {out.parent / 'monolix.csv'}: Multiphasic takes no dose input: the dose "
        f"records of {N_SUBJECTS} subjects are dropped, time counted from each subject's dose "
        "(1 shifted, by up to 1 d)"
    ]
    assert "UserWarning" not in stdout + stderr and "warnings.warn" not in stdout + stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["result"]["run_warnings"] == [lines[0].removeprefix("warning: ")]


def test_sandwich_standard_errors_by_default(fitted):
    _, _, _, out = fitted
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["se"] == "sandwich" and manifest["result"]["se"] == "sandwich"
    estimates = pd.read_csv(out / "estimates.csv").set_index("parameter")
    assert np.isfinite(estimates.loc[["cmax", "alpha"], "se"]).all()


def test_eta_covariates_needs_covariate_columns_and_replicates_zero_skips(
    fitted, data, folder, capsys
):
    """Without WT (``--columns WT=IGNORE``) there is no ETA-vs-covariate figure; with
    ``--replicates 0`` no NPDE or pcVPC (the residual panels are still drawn). The compiled
    objective is the module fit's; 3 OFV evaluations are enough to write the folder."""
    assert fitted[0] == 0
    out = folder / "quick"
    argv = fit_argv(data, out, *SOLVER, "--columns", COLUMNS, "--columns", "WT=IGNORE")
    argv += ["--ignore", "@", "--ignore", "DVID.EQ.2", "--vpc", "0", "--replicates", "0"]
    argv += ["--max-iter", "3", "--se", "none", "--quiet"]
    status, stdout, stderr = run(argv, capsys)
    assert status == 2 and "did not converge" in stderr  # written all the same
    names = {p.name for p in out.iterdir()}
    assert {"gof.png", "individual_fits.png", "residuals.png"} <= names
    assert not names & {"eta_covariates.png", "npde.csv", "npde_summary.csv", "pcvpc.png"}
    assert (out / "residuals.png").read_bytes().startswith(PNG)
    # --quiet: no progress, but the warning still shows, as one line
    assert [line for line in stdout.splitlines() if line] == [
        line for line in stdout.splitlines() if line.startswith("warning: ")
    ]
    assert sum("takes no dose input" in line for line in stdout.splitlines()) == 1


# -- stops before the fit --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--columns", "y=DV,y_ID"], "--columns 'y=DV,y_ID': 'y_ID' is not FILE=ROLE"),
        (["--columns", "y=DV,,dose=AMT"], "--columns 'y=DV,,dose=AMT': empty entry"),
        (["--columns", "y=DV,Y=DVID"], "--columns 'y=DV,Y=DVID': column Y given twice"),
        (["--ignore", "DVID=>2"], "--ignore 'DVID=>2': 'DVID=>2' is not a condition"),
        (["--ignore", " "], "--ignore ' ': empty rule"),
        (["--accept", "@"], "--accept '@': expected a condition COLUMN OP VALUE"),
        (["--ignore", "DVID.EQ.2", "--accept", "DVID.EQ.1"], "exclude each other"),
        (["--replicates", "-1"], "--replicates must be >= 0, got -1"),
        (["--columns", "y=OUTPUT"], "columns: unknown role 'OUTPUT' for column y"),
        (
            ["--columns", COLUMNS, "--ignore", "@", "--ignore", "DVID.EQ.2", "--replicates", "5"],
            "--replicates 5: the NPDE need more replicates than the largest number of "
            "observations of one subject (6)",
        ),
    ],
)
def test_bad_options_are_one_error_line(data, tmp_path, extra, message, capsys):
    out = tmp_path / "never"
    status, _, err = run([*fit_argv(data, out), *extra], capsys)
    assert_one_error_line(status, err, message)
    assert not out.exists()


def test_check_reads_with_columns_ignore_and_accept(data, capsys):
    status, out, err = run(["check", str(data), "--columns", COLUMNS, "--ignore", "@"], capsys)
    assert status == 0 and err == "", err
    assert f"{N_SUBJECTS} subjects" in out and "DVIDs: 1 (48 obs), 2 (8 obs)" in out
    assert "covariates: WT (all constant)" in out
    status, out, err = run(
        ["check", str(data), "--columns", COLUMNS, "--ignore", "@", "--accept", "y_ID==1"], capsys
    )
    assert status == 0 and "DVIDs: 1 (48 obs)\n" in out and "8 by accept y_ID==1" in out
    # one role per column, in file order, as NONMEM's $INPUT
    roles = "ID,TIME,AMT,DV,DVID,DROP"
    status, out, err = run(["check", str(data), "--columns", roles, "--ignore", "@"], capsys)
    assert status == 0 and "covariates: none" in out, err
    status, _, err = run(["check", str(data), "--columns", "y=DV,y_ID"], capsys)
    assert_one_error_line(status, err, "--columns 'y=DV,y_ID': 'y_ID' is not FILE=ROLE")
    status, _, err = run(["check", str(data)], capsys)  # the Monolix names unmapped
    assert_one_error_line(status, err, "missing required column")


def test_help_lists_the_new_options_with_defaults(capsys):
    for command in ("fit", "check"):
        status, out, _ = run([command, "--help"], capsys)
        assert status == 0
        text = " ".join(out.split())
        for option in ("--columns", "--ignore", "--accept"):
            assert option in text
        assert "default: the columns' own names" in text and "default: every record" in text
    _, out, _ = run(["fit", "--help"], capsys)
    text = " ".join(out.split())
    assert "--replicates N" in text and "default: 200" in text
    assert "(default: sandwich)" in text


def test_iteration_history_is_written(fitted):
    """``iterations.csv`` (NONMEM's ``.ext``): the start and each accepted step, OFV falling,
    the last row the reported estimates."""
    _, _, _, out = fitted
    history = pd.read_csv(out / "iterations.csv")
    estimates = pd.read_csv(out / "estimates.csv").set_index("parameter")["estimate"]
    assert list(history.columns[:2]) == ["iteration", "ofv"]
    assert list(history.columns[2:]) == list(estimates.index)
    assert len(history) >= 3 and (np.diff(history["ofv"]) < 0).all()
    np.testing.assert_allclose(history.iloc[-1][estimates.index], estimates, rtol=1e-6)


def test_saem_from_the_command_line(fitted, data, folder, capsys):
    """``--method saem``: a few iterations write the same folder, with the SAEM iteration
    history; a bad ``--saem-iterations`` is one error line before any work."""
    assert fitted[0] == 0
    out = folder / "saem"
    argv = fit_argv(data, out, *SOLVER, "--columns", COLUMNS, "--ignore", "@")
    argv += ["--ignore", "DVID.EQ.2", "--vpc", "0", "--replicates", "0", "--se", "none"]
    status, stdout, stderr = run([*argv, "--method", "saem", "--saem-iterations", "4,3"], capsys)
    assert status == 0, stderr
    assert "SAEM exploration iteration" in stdout and "SAEM smoothing iteration" in stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["result"]["method"] == "saem"
    history = pd.read_csv(out / "iterations.csv")
    assert list(history["iteration"]) == list(range(1, 8))
    bad = fit_argv(data, folder / "saem_bad", "--method", "saem", "--saem-iterations", "4")
    status, _, stderr = run(bad, capsys)
    assert_one_error_line(status, stderr, "--saem-iterations: expected K1,K2")
    assert not (folder / "saem_bad").exists()
