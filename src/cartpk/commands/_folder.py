"""The one writer of results folders: every command's output goes through :class:`ResultsFolder`.

What it guarantees, by construction rather than by a check in one command:

- **Checks before the work.** Opening the folder checks the destination (its kind, a symbolic
  link's target, a mount point, writability by creating the staging folder, free space) and takes
  a lock, so a run never fails at its end for a reason known at its start.
- **Inputs read once.** :meth:`ResultsFolder.read_input` returns a file's bytes; the manifest
  records the hash of those bytes and the copy in ``inputs/`` is written from them, so a file
  edited during the run, or a pipe such as ``<(cat file)``, is recorded as it ran.
- **Nothing the user gave is lost.** A non-empty destination is replaced only with ``force``,
  only if every entry in it is a file its cartpk manifest lists, and never if an input of the run
  lies inside it.
- **Old results kept until the new ones are in place.** Results are written into a staging folder
  beside the destination and swapped in by two renames; if the second fails the old results are
  put back. An exception, Ctrl-C or SIGTERM removes the staging folder; after SIGKILL the next
  run on the same destination removes it (and puts back results caught mid-swap).
- **One writer at a time.** An exclusive lock per destination: a second run on the same folder
  stops at once with an error naming the first one's process.
- **One manifest schema** (:data:`SCHEMA`) for every command.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import hashlib
import json
import math
import os
import platform
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import OutputError, Terminated

#: ``manifest.json``'s ``schema`` value; a folder whose manifest has it is a cartpk results folder.
SCHEMA = "cartpk-results/1"
#: Packages whose versions every manifest records.
PACKAGES = (
    "cartpk",
    "jax",
    "jaxlib",
    "diffrax",
    "equinox",
    "lineax",
    "optax",
    "optimistix",
    "numpy",
    "pandas",
    "matplotlib",
)
#: Free space kept beyond a command's estimate of its results' size, in bytes.
SPARE_BYTES = 16 * 2**20
#: Entries written by cartpk before manifests listed their files (``files`` key).
_LEGACY_SUFFIXES = (".csv", ".png", ".toml", ".json")


class ResultsFolder(contextlib.AbstractContextManager):
    """A destination for one run's results (use as a context manager; see the module docstring).

    Args:
        out: the results folder (need not exist). A symbolic link is followed: the folder it
            points to is replaced and the link is kept.
        command: what writes the results, recorded in the manifest (``"cartpk simulate"`` ...).
        force: replace an existing results folder.
        argv: the command line, recorded in the manifest.

    Raises:
        OutputError: if the destination cannot take the results (one line saying why).
    """

    def __init__(
        self,
        out: str | os.PathLike,
        *,
        command: str,
        force: bool = False,
        argv: list[str] | None = None,
    ):
        self.given = str(out)
        self.command = command
        self.force = force
        self.argv = list(sys.argv if argv is None else argv)
        self.target = _destination(out)
        self.inputs: dict[str, dict[str, Any]] = {}
        self._input_bytes: dict[str, bytes] = {}
        self._lock: int | None = None
        self._staging: Path | None = None
        self._signals: dict[int, Any] = {}
        self._created: list[Path] = []
        self._started = time.perf_counter()
        self._started_at = _now()

    # -- opening: every check before the work ------------------------------------------------

    def __enter__(self) -> ResultsFolder:
        try:
            self._check_parent()
            self._acquire_lock()
            self._recover()
            self._check_existing()
            self._staging = Path(
                tempfile.mkdtemp(prefix=f".{self.target.name}.cartpk-staging-", dir=self.parent)
            )
            umask = os.umask(0)
            os.umask(umask)
            self._staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; results are not
            self.reserve(0)
            self._catch_signals()
        except BaseException as error:
            self._close()
            if isinstance(error, OSError) and not isinstance(error, OutputError):
                raise self._os_error("cannot write results to", error) from None
            raise
        return self

    @property
    def parent(self) -> Path:
        return self.target.parent

    def _check_parent(self) -> None:
        if os.path.ismount(self.target):
            raise OutputError(
                f"{self.given} is a mount point; results are swapped in by renaming a folder, "
                "which a mount point cannot be: give a folder inside it"
            )
        ancestor = self.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise OutputError(f"cannot write results to {self.given}: {ancestor} is not a folder")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise OutputError(f"cannot write results to {self.given}: {ancestor} is not writable")
        missing = []
        folder = self.parent
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        self.parent.mkdir(parents=True, exist_ok=True)
        self._created = missing  # removed again if the run ends without results

    def _acquire_lock(self) -> None:
        path = self.parent / f".{self.target.name}.cartpk-lock"
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise OutputError(
                    f"{self.given} is being written by another cartpk run (process {holder}); "
                    "wait for it or choose another folder"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # else the previous holder removed the file between our open and lock
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock, self._lock_path = fd, path

    def _recover(self) -> None:
        """Remove what a killed run on this destination left behind (we hold the lock)."""
        prefix = f".{self.target.name}.cartpk-"
        for leftover in self.parent.glob(prefix + "*"):
            kind = leftover.name[len(prefix) :].split("-", 1)[0]
            if kind == "previous" and not self.target.exists():
                leftover.rename(self.target)  # killed mid-swap: the old results go back
            elif kind in ("staging", "previous"):
                shutil.rmtree(leftover, ignore_errors=True)

    def _check_existing(self) -> None:
        target, given = self.target, self.given
        if not target.exists():
            return
        if not target.is_dir():
            raise OutputError(f"{given} exists and is not a folder")
        entries = sorted(p.name for p in target.iterdir())
        if not entries:
            return
        if not self.force:
            raise OutputError(f"{given} already holds results; use --force to overwrite them")
        listed = _listed_files(target)
        if listed is None:
            raise OutputError(
                f"{given} holds files that are not cartpk results (no cartpk manifest.json); "
                "--force only replaces results, choose another folder"
            )
        foreign = [name for name in entries if not _is_result(target, name, listed)]
        if foreign:
            raise OutputError(
                f"{given} holds {foreign[0]!r}, which is not one of its cartpk results; "
                "--force would delete it: move it or choose another folder"
            )

    def reserve(self, size_estimate: int) -> None:
        """Check that the results' expected size (in bytes) fits the free space."""
        free = shutil.disk_usage(self.parent).free
        need = int(size_estimate) + SPARE_BYTES
        if free < need:
            raise OutputError(
                f"cannot write results to {self.given}: {free / 2**20:.0f} MiB free, the results "
                f"need about {need / 2**20:.0f} MiB"
            )

    def _catch_signals(self) -> None:
        """SIGTERM (and SIGHUP) end the run as Ctrl-C does, so the staging folder is removed."""
        if threading.current_thread() is not threading.main_thread():
            return

        def terminate(number, frame):
            raise Terminated(signal.Signals(number).name)

        for number in (signal.SIGTERM, signal.SIGHUP):
            self._signals[number] = signal.signal(number, terminate)

    # -- inputs --------------------------------------------------------------------------------

    def read_input(self, name: str, path: str | os.PathLike, *, suffix: str = "") -> bytes:
        """Read an input of the run once; record its hash and keep its bytes for ``inputs/``.

        Raises:
            OutputError: if the input lies inside the destination (``--force`` would delete it).
            OSError: if it cannot be read.
        """
        given = str(path)
        resolved = Path(os.path.realpath(given))
        if resolved.is_relative_to(self.target):
            raise OutputError(
                f"the input {given} is inside {self.given}, which --force would replace; "
                "move it or choose another folder"
            )
        with open(given, "rb") as handle:
            content = handle.read()
        suffix = suffix or Path(given).suffix
        self.inputs[name] = {
            "path": given,
            "sha256": hashlib.sha256(content).hexdigest(),
            "bytes": len(content),
            "copy": f"inputs/{name}{suffix}",
        }
        self._input_bytes[name] = content
        return content

    # -- writing -------------------------------------------------------------------------------

    def write(
        self,
        files: Mapping[str, Callable[[Path], Any]],
        *,
        options: Mapping[str, Any],
        result: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write the results and swap them into place; returns the destination.

        Args:
            files: file name -> a function writing that file at the path it is given (tables
                with ``frame.to_csv``, figures with ``plots.save`` ...).
            options: the run's options, as the manifest records them.
            result: a summary of the result for the manifest (numbers, messages).
        """
        if self._staging is None:
            raise RuntimeError("ResultsFolder.write() outside its `with` block")
        staging = self._staging
        try:
            for name, content in self._input_bytes.items():
                copy = staging / self.inputs[name]["copy"]
                copy.parent.mkdir(exist_ok=True)
                copy.write_bytes(content)
            for name, write in files.items():
                write(staging / name)
            names = sorted([p.name for p in staging.iterdir()] + ["manifest.json"])
            manifest = self._manifest(options, result or {}, names)
            (staging / "manifest.json").write_text(
                json.dumps(manifest, indent=2, default=_plain, allow_nan=False) + "\n"
            )
        except OSError as error:
            raise self._os_error("cannot write results for", error) from None
        self._swap()
        return self.target

    def _manifest(self, options, result, names) -> dict:
        return {
            "schema": SCHEMA,
            "command": self.command,
            "argv": self.argv,
            "started": self._started_at,
            "finished": _now(),
            "elapsed_s": round(time.perf_counter() - self._started, 3),
            "versions": versions(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "inputs": self.inputs,
            "options": _finite(dict(options)),
            "result": _finite(dict(result)),
            "files": names,
        }

    def _swap(self) -> None:
        staging, target = self._staging, self.target
        previous = staging.with_name(staging.name.replace("cartpk-staging-", "cartpk-previous-", 1))
        try:
            if target.exists():
                target.rename(previous)
            staging.rename(target)
        except OSError as error:
            if previous.exists() and not target.exists():
                previous.rename(target)
            raise self._os_error("cannot move results into", error) from None
        self._staging = None
        self._created = []
        shutil.rmtree(previous, ignore_errors=True)

    # -- closing -------------------------------------------------------------------------------

    def __exit__(self, kind, error, traceback) -> None:
        self._close()
        if isinstance(error, OSError) and not isinstance(error, OutputError) and self._ours(error):
            raise self._os_error("cannot write results for", error) from None

    def _ours(self, error: OSError) -> bool:
        """Whether ``error`` is about the results (the target, its staging, previous or lock
        files) rather than about an input read within the block; one without a file name is."""
        names = [os.path.abspath(os.fsdecode(n)) for n in (error.filename, error.filename2) if n]
        target = str(self.target)
        ours = (target + os.sep, str(self.parent / f".{self.target.name}.cartpk-"))
        return not names or any(n == target or n.startswith(ours) for n in names)

    def _close(self) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        for number, handler in self._signals.items():
            signal.signal(number, handler)
        self._signals = {}
        if self._lock is not None:
            with contextlib.suppress(OSError):
                self._lock_path.unlink()
            os.close(self._lock)
            self._lock = None
        for folder in self._created:  # the parents this run made, if it made no results
            with contextlib.suppress(OSError):
                folder.rmdir()
        self._created = []

    def _os_error(self, what: str, error: OSError) -> OutputError:
        reason = error.strerror or str(error)
        if error.errno == errno.ENOSPC:
            reason = "No space left on device"
        return OutputError(f"{what} {self.given}: {reason}")


def _destination(out: str | os.PathLike) -> Path:
    """The absolute folder ``out`` names, through a symbolic link if it is one."""
    given = str(out)
    if not given.strip():
        raise OutputError("the output folder name is empty")
    path = Path(os.path.abspath(given))
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        if not target.exists():
            raise OutputError(
                f"{given} is a symbolic link to {os.readlink(path)}, which does not exist; "
                "create that folder or give another one"
            )
        return target
    try:
        return Path(os.path.realpath(path.parent)) / path.name
    except OSError as error:
        raise OutputError(f"cannot write results to {given}: {error.strerror}") from None


def _is_result(folder: Path, name: str, listed: set[str]) -> bool:
    """Whether ``folder/name`` is a result its manifest lists: a file, or a folder holding only
    listed files (``inputs/``)."""
    path = folder / name
    if name not in listed or path.is_symlink():
        return False
    if path.is_file():
        return True
    return path.is_dir() and all(
        p.is_file() and not p.is_symlink() and str(p.relative_to(folder)) in listed
        for p in path.rglob("*")
    )


def _listed_files(folder: Path) -> set[str] | None:
    """The entries a cartpk results folder may hold (top-level names and the copies of its
    inputs), from its manifest; None if it has none."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict):
        return None
    if manifest.get("schema") == SCHEMA and isinstance(manifest.get("files"), list):
        copies = [i.get("copy") for i in dict(manifest.get("inputs") or {}).values()]
        return {str(name) for name in manifest["files"]} | {str(c) for c in copies if c}
    if str(manifest.get("command", "")).startswith("cartpk"):  # written before the schema
        return {p.name for p in folder.iterdir() if p.suffix in _LEGACY_SUFFIXES}
    return None


def versions() -> dict[str, str | None]:
    """Installed versions of cartpk and its main dependencies."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _finite(value):
    """JSON-ready: non-finite floats become None, containers are walked."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return _finite(value.item())
    return value


def _plain(value):
    if hasattr(value, "tolist"):
        return _finite(value.tolist())
    return str(value)
