"""The persistent compilation cache (cartpk.cache): where it lives, how it is switched off, and
that a program compiled by one process is read back by the next."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cartpk.cache import cache_folder, enable_compilation_cache


def test_folder_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CARTPK_CACHE_DIR", str(tmp_path / "c"))
    assert cache_folder() == tmp_path / "c"
    for off in ("off", "0", "None", " false "):
        monkeypatch.setenv("CARTPK_CACHE_DIR", off)
        assert cache_folder() is None and enable_compilation_cache() is None
    monkeypatch.delenv("CARTPK_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_folder() == tmp_path / "xdg" / "cartpk" / "jax"


def test_a_folder_that_cannot_be_made_warns_and_leaves_the_cache_off(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.warns(UserWarning, match=r"compilation cache off: cannot create .*file/jax"):
        assert enable_compilation_cache(blocker / "jax") is None


PROGRAM = """
import sys, jax, jax.numpy as jnp
from cartpk.cache import enable_compilation_cache
events = []
jax.monitoring.register_event_listener(lambda name, **kwargs: events.append(name))
folder = enable_compilation_cache(sys.argv[1])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.jit(lambda x: jnp.cumsum(jnp.sin(x) ** 2))(jnp.ones(7)).block_until_ready()
print(folder)
print(events.count("/jax/compilation_cache/cache_hits"))
"""


def test_a_second_process_reads_what_the_first_compiled(tmp_path):
    folder = tmp_path / "cache"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    written = []
    for _ in range(2):
        run = subprocess.run(
            [sys.executable, "-c", PROGRAM, str(folder)], capture_output=True, text=True, env=env
        )
        assert run.returncode == 0, run.stderr
        printed, hits = run.stdout.split()
        assert Path(printed) == folder
        written.append((sorted(p.name for p in folder.glob("*-cache")), int(hits)))
    (first, first_hits), (second, second_hits) = written
    assert sum(name.startswith("jit__lambda") for name in first) == 1 and first_hits == 0
    assert second == first and second_hits >= 1  # read back, not compiled again
