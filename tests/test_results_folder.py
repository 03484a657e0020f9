"""The one results-folder writer (``cartpk.commands.ResultsFolder``) and the commands on top of it:
nothing the user gave is lost or overwritten, whatever the user or the machine does.

Cases: where results go (new, empty, symbolic links, dangling links, mount points, read-only or
full disks), what ``--force`` may replace (only a folder of cartpk results, never one holding an
input or a file the manifest does not list), inputs read once (edited mid-run, pipes such as
``<(cat file)``), a lock per destination (a second run stops at once), signals (SIGINT, SIGTERM,
SIGKILL and what the next run finds), a closed standard output, and checks of options before the
work (``fit --profile nosuch``, ``--seed -1``, ``--rtol nan``). No case compiles a model: the work
is replaced by a stand-in wherever a command is run.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import assert_one_error_line, run, tree

import cartpk
from cartpk.commands import SCHEMA, ResultsFolder
from cartpk.commands import fit as fit_command
from cartpk.commands import simulate as simulate_command
from cartpk.errors import OutputError

TINY = (Path(__file__).parent / "scenarios" / "tiny.toml").read_text()
DATA = "ID,TIME,DV,AMT,EVID,MDV\n1,0,.,1e8,1,1\n1,7,120,0,0,0\n1,28,30,0,0,0\n"


# -- helpers -------------------------------------------------------------------------------------


def rejected(argv, capsys, message: str, folder: Path) -> None:
    """The command stops with exit 2 and one error line containing ``message``, and nothing in
    ``folder`` changed."""
    before = tree(folder)
    status, _, err = run(argv, capsys)
    assert_one_error_line(status, err, message)
    assert tree(folder) == before


def write_results(out: Path, files=None, force=False) -> Path:
    """A real cartpk results folder written by the writer itself."""
    files = files or {"endpoints.csv": "arm,patient\nalone,0\n"}
    with ResultsFolder(out, command="test", force=force) as results:
        results.write(
            {name: (lambda path, text=text: path.write_text(text)) for name, text in files.items()},
            options={},
        )
    return out


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A working folder with a scenario and a dataset; simulations and fits replaced by
    stand-ins that fail the test (every case here must stop before the work)."""
    (tmp_path / "tiny.toml").write_text(TINY)
    (tmp_path / "data.csv").write_text(DATA)

    def must_not_run(*args, **kwargs):
        raise AssertionError("the command started its work instead of stopping")

    monkeypatch.setattr(simulate_command, "run_scenario", must_not_run)
    monkeypatch.setattr(fit_command, "fit", must_not_run)
    return tmp_path


@pytest.fixture
def canned(monkeypatch):
    """``cartpk simulate`` with its simulation replaced by a canned result (no compile)."""

    def fake_run(scenario, progress=None):
        endpoints = pd.DataFrame({"arm": ["alone"], "patient": [0], "status": [0]})
        summary = pd.DataFrame({"arm": ["alone"], "subgroup": ["all"]})
        return simulate_command.ScenarioResult(endpoints, summary, endpoints, None, 0.1)

    monkeypatch.setattr(simulate_command, "run_scenario", fake_run)
    monkeypatch.setattr(
        simulate_command,
        "scenario_files",
        lambda result, scenario: {"endpoints.csv": simulate_command._csv(result.endpoints)},
    )


# -- where results go ----------------------------------------------------------------------------


def test_new_folder_gets_results_inputs_and_manifest(tmp_path):
    source = tmp_path / "in.toml"
    source.write_text("x = 1\n")
    out = tmp_path / "a" / "b" / "results"
    with ResultsFolder(out, command="cartpk test", argv=["cartpk", "test"]) as results:
        content = results.read_input("scenario", source)
        results.write({"t.csv": lambda p: p.write_text("a\n1\n")}, options={"k": float("nan")})
    assert content == b"x = 1\n"
    assert tree(out)["inputs/scenario.toml"] == b"x = 1\n"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["schema"] == SCHEMA and manifest["command"] == "cartpk test"
    assert manifest["argv"] == ["cartpk", "test"]
    assert manifest["inputs"]["scenario"] == {
        "path": str(source),
        "sha256": hashlib.sha256(b"x = 1\n").hexdigest(),
        "bytes": 6,
        "copy": "inputs/scenario.toml",
    }
    assert manifest["files"] == ["inputs", "manifest.json", "t.csv"]
    assert manifest["options"] == {"k": None}  # NaN is not JSON
    assert manifest["versions"]["cartpk"] == cartpk.__version__
    assert {p.name for p in out.parent.iterdir()} == {"results"}  # no lock, no staging


def test_empty_existing_folder_is_used_without_force(tmp_path):
    (tmp_path / "out").mkdir()
    write_results(tmp_path / "out")
    assert (tmp_path / "out" / "endpoints.csv").is_file()


def test_symbolic_link_is_followed_and_kept(tmp_path):
    target = write_results(tmp_path / "real")
    link = tmp_path / "link"
    link.symlink_to(target)
    write_results(link, {"new.csv": "b\n"}, force=True)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "new.csv"]
    assert {p.name for p in tmp_path.iterdir()} == {"real", "link"}


def test_dangling_link_is_refused_before_the_work(work, capsys):
    (work / "gone").symlink_to(work / "nowhere")
    argv = ["simulate", str(work / "tiny.toml"), "--out", str(work / "gone")]
    rejected(argv, capsys, "is a symbolic link to", work)


def test_mount_point_is_refused_before_the_work(work, capsys, monkeypatch):
    mount = work / "volume"
    mount.mkdir()
    ismount = os.path.ismount
    monkeypatch.setattr(os.path, "ismount", lambda p: Path(p) == mount or ismount(p))
    argv = ["simulate", str(work / "tiny.toml"), "--out", str(mount), "--force"]
    rejected(argv, capsys, "is a mount point", work)


def test_unwritable_parent_is_refused_before_the_work(work, capsys, monkeypatch):
    locked = work / "locked"
    locked.mkdir()
    access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: access(p, mode) and Path(p) != locked)
    argv = ["fit", str(work / "data.csv"), "--model", "multiphasic", "--out", str(locked / "o")]
    rejected(argv, capsys, "is not writable", work)


def test_real_permission_error_is_refused_before_the_work(work, capsys):
    """As root, permission bits do not stop writing; as a user they do, at the start."""
    locked = work / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        argv = ["simulate", str(work / "tiny.toml"), "--out", str(locked / "o")]
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        rejected(argv, capsys, "not writable", work)
    finally:
        locked.chmod(0o755)


def test_full_disk_is_refused_before_the_work(work, capsys, monkeypatch):
    import shutil

    usage = shutil.disk_usage(work)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=1000))
    argv = ["simulate", str(work / "tiny.toml"), "--out", str(work / "o")]
    rejected(argv, capsys, "MiB free, the results need about", work)


def test_missing_parents_are_removed_when_the_run_stops(work, capsys):
    bad = work / "bad.toml"
    bad.write_text("name = 3\n")
    argv = ["simulate", str(bad), "--out", str(work / "new" / "deeper" / "out")]
    rejected(argv, capsys, "bad.toml", work)


def test_out_is_a_file(work, capsys):
    argv = ["simulate", str(work / "tiny.toml"), "--out", str(work / "data.csv"), "--force"]
    rejected(argv, capsys, "exists and is not a folder", work)


# -- what --force may replace --------------------------------------------------------------------


def test_fit_force_never_deletes_the_dataset_or_other_files(work, capsys):
    """``cartpk fit DIR/data.csv --out DIR --force`` deleted the dataset in an earlier release."""
    (work / "notes.txt").write_text("mine")
    argv = ["fit", str(work / "data.csv"), "--model", "multiphasic", "--out", str(work)]
    rejected(argv + ["--force"], capsys, "not cartpk results", work)


def test_force_never_deletes_a_folder_of_other_files(work, capsys):
    mine = work / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("\\documentclass{article}")
    for command in (["simulate", str(work / "tiny.toml")], ["fit", str(work / "data.csv")]):
        argv = [*command, "--out", str(mine), "--force", "--model", "multiphasic"]
        if command[0] == "simulate":
            argv.remove("--model"), argv.remove("multiphasic")
        rejected(argv, capsys, "not cartpk results", work)


def test_force_never_deletes_an_input_inside_the_results(work, capsys):
    out = write_results(work / "previous")
    (out / "s.toml").write_text(TINY)
    argv = ["simulate", str(out / "s.toml"), "--out", str(out), "--force"]
    rejected(argv, capsys, "not one of its cartpk results", work)  # s.toml is not listed


def test_force_never_deletes_a_listed_input(work, capsys):
    out = write_results(work / "previous", {"data.csv": DATA})
    argv = ["fit", str(out / "data.csv"), "--model", "multiphasic", "--out", str(out), "--force"]
    rejected(argv, capsys, "is inside", work)


def test_force_never_deletes_a_file_added_to_results(work, capsys):
    out = write_results(work / "previous")
    (out / "my notes.txt").write_text("do not lose me")
    argv = ["simulate", str(work / "tiny.toml"), "--out", str(out), "--force"]
    rejected(argv, capsys, "'my notes.txt', which is not one of its cartpk results", work)


def test_force_never_deletes_a_subfolder_added_to_results(work, capsys):
    out = write_results(work / "previous")
    (out / "endpoints.csv").unlink()
    (out / "endpoints.csv").mkdir()
    (out / "endpoints.csv" / "x").write_text("mine")
    argv = ["simulate", str(work / "tiny.toml"), "--out", str(out), "--force"]
    rejected(argv, capsys, "not one of its cartpk results", work)


def test_force_refuses_a_manifest_that_is_not_cartpk(work, capsys):
    out = work / "other"
    out.mkdir()
    (out / "manifest.json").write_text('{"name": "another tool"}')
    argv = ["simulate", str(work / "tiny.toml"), "--out", str(out), "--force"]
    rejected(argv, capsys, "not cartpk results", work)


def test_force_replaces_results_of_earlier_releases(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "manifest.json").write_text('{"command": "cartpk simulate"}\n')
    (old / "endpoints.csv").write_text("a\n")
    write_results(old, {"new.csv": "b\n"}, force=True)
    assert sorted(p.name for p in old.iterdir()) == ["manifest.json", "new.csv"]


def test_without_force_results_are_kept(work, capsys):
    out = write_results(work / "previous")
    for argv in (
        ["simulate", str(work / "tiny.toml"), "--out", str(out)],
        ["demo", "--out", str(out)],
        ["fit", str(work / "data.csv"), "--model", "multiphasic", "--out", str(out)],
    ):
        rejected(argv, capsys, "use --force to overwrite", work)


def test_simulate_and_fit_force_behave_the_same(work, capsys):
    """The same destination rules for every command: one writer."""
    out = write_results(work / "previous")
    (out / "extra.txt").write_text("x")
    messages = set()
    for argv in (
        ["simulate", str(work / "tiny.toml"), "--out", str(out), "--force"],
        ["optimize", str(work / "tiny.toml"), "--out", str(out), "--force"],
        ["fit", str(work / "data.csv"), "--model", "multiphasic", "--out", str(out), "--force"],
        ["demo", "--out", str(out), "--force"],
    ):
        status, _, err = run(argv, capsys)
        assert status == 2
        messages.add(err)
    assert len(messages) == 1 and "'extra.txt'" in messages.pop()


# -- writing: failures keep the old results ------------------------------------------------------


@pytest.mark.parametrize(
    "failure, raised",
    [
        (RuntimeError("bug while plotting"), RuntimeError),
        (KeyboardInterrupt(), KeyboardInterrupt),
        (OSError(errno.ENOSPC, "No space left on device"), OutputError),
    ],
    ids=["exception", "interrupt", "disk full"],
)
def test_failure_while_writing_keeps_the_old_results(failure, raised, tmp_path):
    out = write_results(tmp_path / "results")
    before = tree(tmp_path)

    def half(path):
        path.write_text("half")
        raise failure

    with pytest.raises(raised):
        with ResultsFolder(out, command="test", force=True) as results:
            results.write({"a.csv": half}, options={})
    assert tree(tmp_path) == before


def test_an_input_missing_within_the_block_is_named_as_itself(tmp_path):
    """Reading an input inside the block fails with the input's own error, not as a failure
    to write the results, even when the input sits beside the results folder."""
    with pytest.raises(FileNotFoundError) as error:
        with ResultsFolder(tmp_path / "results", command="test"):
            (tmp_path / "data.csv").read_text()
    assert error.value.filename == str(tmp_path / "data.csv")
    assert not (tmp_path / "results").exists()


def test_failed_swap_puts_the_old_results_back(tmp_path, monkeypatch):
    out = write_results(tmp_path / "results")
    before = tree(tmp_path)
    rename = Path.rename

    def failing(self, target):
        if Path(target) == out and "staging" in self.name:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", failing)
    with pytest.raises(OutputError, match="cannot move results into .*Invalid cross-device"):
        write_results(out, {"new.csv": "b"}, force=True)
    assert tree(tmp_path) == before


def test_full_disk_from_the_command_line(work, canned, capsys, monkeypatch):
    out = write_results(work / "previous")

    def full(result, scenario):
        def write(path):
            raise OSError(errno.ENOSPC, "No space left on device")

        return {"endpoints.csv": write}

    monkeypatch.setattr(simulate_command, "scenario_files", full)
    argv = ["simulate", str(work / "tiny.toml"), "--out", str(out), "--force", "--quiet"]
    rejected(argv, capsys, "No space left on device", work)


# -- inputs are read once ------------------------------------------------------------------------


def test_input_edited_during_the_run_is_recorded_as_it_ran(tmp_path):
    source = tmp_path / "s.toml"
    source.write_text("version = 1\n")
    out = tmp_path / "out"
    with ResultsFolder(out, command="test") as results:
        results.read_input("scenario", source)
        source.write_text("version = 2, edited while the run went on\n")
        results.write({}, options={})
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"]["scenario"]["sha256"] == hashlib.sha256(b"version = 1\n").hexdigest()
    assert (out / "inputs" / "scenario.toml").read_bytes() == b"version = 1\n"


def test_input_from_a_pipe_is_read_once(work, canned, capsys):
    """``cartpk simulate <(cat tiny.toml)``: a pipe can be read only once."""
    fifo = work / "pipe"
    os.mkfifo(fifo)
    feeder = threading.Thread(target=lambda: fifo.write_text(TINY))
    feeder.start()
    status, _, err = run(["simulate", str(fifo), "--out", str(work / "o"), "--quiet"], capsys)
    feeder.join(timeout=10)
    assert status == 0, err
    manifest = json.loads((work / "o" / "manifest.json").read_text())
    assert manifest["inputs"]["scenario"]["bytes"] == len(TINY.encode())
    assert manifest["inputs"]["scenario"]["sha256"] == hashlib.sha256(TINY.encode()).hexdigest()
    assert (work / "o" / "inputs" / "scenario.toml").read_text() == TINY


# -- one writer per destination ------------------------------------------------------------------


def test_second_writer_in_the_same_process_is_refused(tmp_path):
    out = tmp_path / "out"
    with ResultsFolder(out, command="first"):
        with pytest.raises(
            OutputError, match=rf"being written by another cartpk run \(process {os.getpid()}\)"
        ):
            ResultsFolder(out, command="second").__enter__()
    write_results(out)  # the lock is released with the first


#: A process that opens a results folder, says so and waits (``sys.argv[1]``: the folder).
HOLDER = textwrap.dedent(
    """
    import sys, time
    from cartpk.commands import ResultsFolder
    with ResultsFolder(sys.argv[1], command="holder") as results:
        print("ready", flush=True)
        time.sleep(120)
        results.write({}, options={})
    """
)


def hold(out: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout.readline().strip() == b"ready", process.stderr.read()
    return process


def test_two_runs_on_one_folder(work, capsys):
    """A second ``cartpk simulate`` on a folder another run is writing stops at once."""
    process = hold(work / "out")
    try:
        argv = ["simulate", str(work / "tiny.toml"), "--out", str(work / "out")]
        rejected(argv, capsys, f"being written by another cartpk run (process {process.pid})", work)
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT])
def test_signal_removes_the_staging_folder(tmp_path, sent):
    holder = HOLDER.replace(
        "import sys, time",
        "import signal, sys, time\nsignal.signal(signal.SIGINT, signal.default_int_handler)",
    )
    process = subprocess.Popen(
        [sys.executable, "-c", holder, str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout.readline().strip() == b"ready"
    assert any("staging" in p.name for p in tmp_path.iterdir())
    process.send_signal(sent)
    process.wait(timeout=60)
    assert process.returncode != 0
    assert list(tmp_path.iterdir()) == []


def test_sigkill_leftovers_are_removed_by_the_next_run(tmp_path):
    out = write_results(tmp_path / "out")
    before = tree(out)
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HOLDER.replace('command="holder"', 'command="h", force=True'),
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout.readline().strip() == b"ready"
    process.kill()
    process.wait()
    names = {p.name for p in tmp_path.iterdir()}
    assert any("staging" in n for n in names) and any("lock" in n for n in names)
    assert tree(out) == before  # the old results are untouched
    write_results(out, {"new.csv": "b"}, force=True)
    assert {p.name for p in tmp_path.iterdir()} == {"out"}


def test_sigkill_in_the_middle_of_the_swap_keeps_the_old_results(tmp_path):
    """Killed between the two renames: the next run puts the old results back first."""
    out = write_results(tmp_path / "out")
    before = tree(out)
    out.rename(tmp_path / ".out.cartpk-previous-123")
    (tmp_path / ".out.cartpk-staging-123").mkdir()
    with pytest.raises(OutputError, match="use --force"):
        ResultsFolder(out, command="next").__enter__()
    assert tree(out) == before
    assert {p.name for p in tmp_path.iterdir()} == {"out"}


def test_sigterm_from_the_command_line(work):
    """``cartpk simulate`` ended by SIGTERM mid-run: exit 143, one line, nothing left."""
    script = textwrap.dedent(
        """
        import sys, time
        from cartpk.commands import simulate
        def slow(scenario, progress):
            progress("working")
            time.sleep(120)
        simulate.run_scenario = slow
        from cartpk.cli import main
        sys.exit(main(sys.argv[1:]))
        """
    )
    argv = [sys.executable, "-c", script, "simulate", str(work / "tiny.toml"), "--out", "out"]
    before = tree(work)
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=work
    )
    for line in process.stdout:
        if line.strip() == "working":
            break
    process.terminate()
    err = process.stderr.read()
    assert process.wait(timeout=60) == 143, err
    assert err == "error: terminated (SIGTERM)\n"
    assert tree(work) == before


def test_closed_stdout_does_not_lose_the_run(work):
    """``cartpk simulate ... | head -1``: output stops, the results are still written."""
    script = textwrap.dedent(
        """
        import sys
        import pandas as pd
        from cartpk.commands import simulate
        def fake(scenario, progress):
            for i in range(2000):
                progress(f"line {i}")
            rows = pd.DataFrame({"arm": ["a"], "patient": [0], "status": [0]})
            return simulate.ScenarioResult(rows, rows.assign(subgroup="all"), rows, None, 0.1)
        simulate.run_scenario = fake
        simulate.scenario_files = lambda r, s: {"endpoints.csv": simulate._csv(r.endpoints)}
        from cartpk.cli import main
        sys.exit(main(sys.argv[1:]))
        """
    )
    argv = [sys.executable, "-c", script, "simulate", str(work / "tiny.toml"), "--out", "out"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=work)
    process.stdout.readline()
    process.stdout.close()  # the reader goes away, as `head -1` does
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0, err
    assert err == ""
    assert (work / "out" / "endpoints.csv").is_file()
    assert json.loads((work / "out" / "manifest.json").read_text())["schema"] == SCHEMA


# -- options checked before the work -------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--seed", "-1"], "--seed must be >= 0, got -1"),
        (["--rtol", "nan"], "--rtol must be a number in (0, 1), got nan"),
        (["--rtol", "-1"], "--rtol must be a number in (0, 1), got -1.0"),
        (["--rtol", "inf"], "--rtol must be a number in (0, 1), got inf"),
        (["--max-iter", "0"], "--max-iter must be >= 1"),
        (["--vpc", "-2"], "--vpc must be >= 0"),
        (["--bootstrap", "-1"], "--bootstrap must be >= 0"),
        (["--starts", "0"], "--starts must be >= 1"),
        (["--profile", "nosuch"], "profile: unknown parameter 'nosuch'; estimated: cmax"),
        (["--method", "individual", "--profile", "cmax"], "need a FOCE-I or Laplace fit"),
        (["--method", "individual", "--bootstrap", "3"], "need a FOCE-I or Laplace fit"),
        (["--fix", "cmax", "--profile", "cmax"], "profile: cmax is fixed in this fit"),
    ],
)
def test_fit_options_are_checked_before_the_fit(work, capsys, extra, message):
    argv = ["fit", str(work / "data.csv"), "--model", "multiphasic", "--out", str(work / "o")]
    rejected(argv + ["--ignore-doses", *extra], capsys, message, work)


def test_help_lists_every_command_with_defaults(capsys):
    status, out, _ = run(["--help"], capsys)
    assert status == 0
    for name in ("demo", "simulate", "optimize", "check", "fit"):
        assert name in out
    status, out, _ = run(["fit", "--help"], capsys)
    assert status == 0 and "default: 1e-8" in out and "default: kvaerno5" in out


def test_results_are_replaced_only_after_the_new_ones_are_complete(tmp_path):
    """While the new results are written, the old ones are still in place."""
    out = write_results(tmp_path / "out")
    before = tree(out)
    seen = {}

    def look(path):
        seen["during"] = tree(out)
        path.write_text("new")

    with ResultsFolder(out, command="test", force=True) as results:
        results.write({"new.csv": look}, options={})
    assert seen["during"] == before
    assert (out / "new.csv").read_text() == "new"


def test_lock_is_free_after_a_failed_run(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with ResultsFolder(out, command="test"):
            raise RuntimeError("boom")
    start = time.perf_counter()
    write_results(out)
    assert time.perf_counter() - start < 10


def test_force_replaces_its_own_results_with_their_inputs(tmp_path):
    """A results folder with ``inputs/`` is cartpk's own; a file added to ``inputs/`` is not."""
    source = tmp_path / "s.toml"
    source.write_text("x = 1\n")
    out = tmp_path / "out"
    for _ in range(2):
        with ResultsFolder(out, command="test", force=True) as results:
            results.read_input("scenario", source)
            results.write({"a.csv": lambda p: p.write_text("a\n")}, options={})
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "inputs", "manifest.json"]
    (out / "inputs" / "mine.txt").write_text("mine")
    with pytest.raises(OutputError, match="'inputs', which is not one of its cartpk results"):
        ResultsFolder(out, command="test", force=True).__enter__()
