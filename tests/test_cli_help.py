"""What the command line offers besides its results: complete help with defaults, shell
completion, and progress of long steps (live bars on a terminal, lines otherwise, nothing when
quiet)."""

from __future__ import annotations

import argparse
import io
import re
import shutil
import subprocess
import time

import pytest

from cartpk import progress
from cartpk.cli import build_parser, main
from cartpk.commands import Console
from cartpk.progress import step, track

COMMANDS = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)][
    0
].choices


def _options(parser):
    return [a for a in parser._actions if a.help != argparse.SUPPRESS and a.dest != "help"]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_is_complete_plain_text_with_defaults(name, capsys):
    with pytest.raises(SystemExit) as done:
        main([name, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "``" not in text and not re.search(r":\w+:`", text), "reStructuredText markup"
    formatter = COMMANDS[name]._get_formatter()
    for action in _options(COMMANDS[name]):
        help_text = action.help or ""
        where = f"{name} {'/'.join(action.option_strings) or action.dest}"
        assert len(help_text.split()) >= 2, f"{where}: no help"
        assert not re.search(r"\b(of|for|to|the|a|an|and|or|with)$", help_text), where
        if action.option_strings and action.default not in (None, False):
            shown = formatter._get_help_string(action) % {"default": action.default}
            assert "default" in shown and shown in " ".join(text.split()), where


def test_every_command_can_be_quiet():
    for name, parser in COMMANDS.items():
        if name != "completion":
            assert any(a.dest == "quiet" for a in parser._actions), name


def test_completion_script_completes_commands_options_and_choices(capsys):
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    if shutil.which("bash") is None:
        pytest.skip("no bash")

    def complete(*words):
        line = " ".join(words)
        current, previous = words[-1], words[-2]
        probe = (
            f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
            f"_shtab_cartpk cartpk {current} {previous}; " + 'echo "${COMPREPLY[@]}"'
        )
        run = subprocess.run(
            ["bash", "-c", script + "\n" + probe], capture_output=True, text=True, check=True
        )
        return run.stdout.split()

    assert complete("cartpk", "fi") == ["fit"]
    assert complete("cartpk", "fit", "--sol") == ["--solver"]
    assert complete("cartpk", "fit", "--solver", '""') == ["kvaerno5", "tsit5", "dopri5"]


# -- progress ---------------------------------------------------------------------------------


def test_steps_as_lines_with_count_rate_and_time_left(monkeypatch):
    monkeypatch.setattr(progress, "EVERY", 0.0)
    lines = []
    with step(lines.append, "SAEM iterations", 4) as task:
        for _ in range(4):
            time.sleep(0.01)
            task.advance()
    assert lines[0] == "SAEM iterations"
    assert re.fullmatch(r"SAEM iterations: 1/4 in 0 s, [\d.e+]+/s, about 0 s left", lines[1])
    assert len(lines) == 4  # the label, then 1/4, 2/4, 3/4; a step under a second: no end line
    seen = list(track([1, 2], lines.append, "points"))
    assert seen == [1, 2] and lines[4] == "points"


def test_a_long_step_ends_with_its_duration(monkeypatch):
    ticks = iter([0.0, 75.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(ticks))
    lines = []
    with step(lines.append, "compiling the model"):
        pass
    assert lines == ["compiling the model", "compiling the model: done in 1 min 15 s"]


def test_console_off_a_terminal_prints_lines_and_nothing_when_quiet(capsys):
    with step(Console(live=False), "covariance step"):
        Console(live=False)("a line")
    assert capsys.readouterr().out == "covariance step\na line\n"
    quiet = Console(quiet=True)
    with step(quiet, "covariance step") as task:
        task.advance()
        quiet("a line")
    assert capsys.readouterr().out == ""


def test_console_on_a_terminal_shows_live_bars(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    say = Console(live=True)
    with step(say, "simulations", 8) as task:
        say("a line above the bar")
        with step(say, "compiling", None):  # a step within a step
            pass
        task.advance(8)
    text = out.getvalue()
    assert "a line above the bar" in text
    assert re.search(r"simulations .*\d:\d\d:\d\d 8/8", text), text
    assert say._bars is None  # the live display is closed


def test_duration_reads_as_words():
    assert [progress.duration(s) for s in (4.4, 65, 3725)] == ["4 s", "1 min 05 s", "1 h 02 min"]
