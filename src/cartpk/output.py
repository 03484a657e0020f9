"""Result folders: never overwrite without ``force``, never leave a half-written folder, and
always write a manifest that makes the run reproducible."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from importlib import metadata
from pathlib import Path

from .errors import OutputError

#: Packages whose versions every manifest records.
_PACKAGES = (
    "cartpk",
    "jax",
    "jaxlib",
    "diffrax",
    "equinox",
    "optax",
    "optimistix",
    "numpy",
    "pandas",
    "matplotlib",
)


def check_destination(out: str | Path, force: bool, inputs: Iterable[str | Path] = ()) -> Path:
    """Refuse a bad ``out`` before any work is done.

    ``out`` must be a folder (or not exist yet) under a writable folder. A non-empty ``out`` is
    replaced only with ``force``, only if it holds cartpk results (a ``manifest.json``), and never
    if one of ``inputs`` lies inside it.
    """
    if not str(out).strip():
        raise OutputError("the output folder name is empty")
    out = Path(out)
    try:
        if out.exists() and not out.is_dir():
            raise OutputError(f"{out} exists and is not a folder")
        ancestor = Path(os.path.abspath(out)).parent
        while not ancestor.exists():
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise OutputError(f"cannot write results to {out}: {ancestor} is not a folder")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise OutputError(f"cannot write results to {out}: {ancestor} is not writable")
        if out.is_dir() and any(out.iterdir()):
            if not force:
                raise OutputError(f"{out} already holds results; use --force to overwrite them")
            if not (out / "manifest.json").is_file():
                raise OutputError(
                    f"{out} holds files that are not cartpk results (no manifest.json); "
                    "--force only replaces results, choose another folder"
                )
            for path in inputs:
                if Path(path).resolve().is_relative_to(out.resolve()):
                    raise OutputError(
                        f"the input {path} is inside {out}, which --force would replace; "
                        "move it or choose another folder"
                    )
    except OutputError:
        raise
    except OSError as error:
        raise OutputError(f"cannot write results to {out}: {error.strerror or error}") from None
    return out


@contextlib.contextmanager
def staged_output(
    out: str | Path, force: bool = False, inputs: Iterable[str | Path] = ()
) -> Iterator[Path]:
    """Yield an empty staging folder next to ``out``; on success it replaces ``out``.

    If the body raises (or is interrupted), or the swap fails, ``out`` is left exactly as it was
    and the staging folder is removed. An ``OSError`` of the body (e.g. a full disk) is raised as
    an :class:`~cartpk.errors.OutputError`.
    """
    out = check_destination(out, force, inputs)
    target = Path(os.path.abspath(out))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; results are ordinary folders
    except OSError as error:
        raise OutputError(f"cannot write results next to {out}: {error.strerror}") from None
    previous = tmp.with_name(tmp.name + ".previous")  # the old results during the swap
    try:
        try:
            yield tmp
        except OutputError:
            raise
        except OSError as error:
            reason = error.strerror or error
            raise OutputError(f"cannot write results for {out}: {reason}") from None
        try:
            if target.exists():
                target.rename(previous)
            tmp.rename(target)
        except OSError as error:
            if previous.exists() and not target.exists():
                previous.rename(target)
            raise OutputError(f"cannot move results into {out}: {error.strerror}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if target.exists():  # else the swap failed and could not be undone: keep the old results
            shutil.rmtree(previous, ignore_errors=True)


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_manifest(
    folder: Path,
    *,
    command: str,
    inputs: Mapping[str, str | Path] = (),
    options: Mapping | None = None,
    started: float | None = None,
) -> Path:
    """Write ``manifest.json``: versions, platform, input hashes, options and run time."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    manifest = {
        "command": command,
        "versions": versions,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "inputs": {name: {"path": str(p), "sha256": sha256(p)} for name, p in dict(inputs).items()},
        "options": dict(options or {}),
    }
    if started is not None:
        manifest["elapsed_s"] = round(time.perf_counter() - started, 3)
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return path
