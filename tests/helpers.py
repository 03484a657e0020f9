"""Helpers shared by the command-line tests: run ``cartpk`` in-process, snapshot a folder."""

from __future__ import annotations

import os
from pathlib import Path

from cartpk.cli import main


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder`` (hidden ones included): the bytes of files, the target of
    symbolic links, None for folders."""

    def content(p: Path):
        if p.is_symlink():
            return os.readlink(p).encode()
        return None if p.is_dir() else p.read_bytes()

    return {str(p.relative_to(folder)): content(p) for p in sorted(folder.rglob("*"))}


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """``cartpk ARGV``: exit status, stdout, stderr (argparse errors exit via SystemExit)."""
    try:
        status = main(argv)
    except SystemExit as exit:
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_error_line(status: int, err: str, message: str, code: int = 2) -> None:
    """Exit status ``code`` and exactly one ``error: ...`` line containing ``message``."""
    assert status == code, err
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert message in err, err
