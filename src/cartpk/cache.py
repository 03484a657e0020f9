"""JAX's persistent compilation cache: compiled programs kept on disk between runs.

Compiling is most of a short run's time (a FOCE-I fit of a small model: about half its wall time
on first run). With the cache, a second run of the same command with the same shapes loads the
compiled programs instead (measured on the theophylline one-compartment fit, 2 cores:
49.7 s, then 25.7 s). Programs with host callbacks (equinox's runtime checks inside some
solves) are not cached by JAX and compile every time.

The command line turns the cache on; from Python call :func:`enable_compilation_cache` before
the first compile. The folder is ``$CARTPK_CACHE_DIR`` if set, else ``cartpk/jax`` in the
user's cache directory (``$XDG_CACHE_HOME``, by default ``~/.cache``); ``CARTPK_CACHE_DIR=off``
switches it off. JAX keys each entry by the program, the compile options and the jaxlib
version, and evicts the least recently used entries beyond :data:`MAX_BYTES`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

#: the cache's size limit (least recently used entries are removed beyond it)
MAX_BYTES = 1 << 30
#: programs that compile faster than this are not worth a disk entry (s)
MIN_COMPILE_SECONDS = 0.5
#: values of ``CARTPK_CACHE_DIR`` that switch the cache off
OFF = ("off", "0", "no", "none", "false")


def cache_folder() -> Path | None:
    """Where the cache lives (``None``: switched off by ``CARTPK_CACHE_DIR``)."""
    given = os.environ.get("CARTPK_CACHE_DIR")
    if given is not None:
        return None if given.strip().lower() in OFF else Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cartpk" / "jax"


def enable_compilation_cache(folder: str | os.PathLike | None = None) -> Path | None:
    """Keep compiled programs in ``folder`` (default :func:`cache_folder`) from now on.

    Returns the folder, or ``None`` when the cache is off or its folder cannot be created (a
    warning then says why; the run goes on without the cache).
    """
    import jax

    path = Path(folder).expanduser() if folder is not None else cache_folder()
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        warnings.warn(
            f"compilation cache off: cannot create {path} ({error.strerror or error}); set "
            "CARTPK_CACHE_DIR to a writable folder, or to off",
            stacklevel=2,
        )
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return path
