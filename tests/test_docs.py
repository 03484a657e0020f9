"""Documentation: every public name is documented, physical arguments carry units, and the
documentation site builds without warnings (``mkdocs build --strict``, when mkdocs is
installed: ``pip install -e '.[docs]'``)."""

from __future__ import annotations

import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import cartpk

ROOT = Path(__file__).resolve().parents[1]

#: Argument names that carry a physical quantity: a docstring that takes one must give units.
QUANTITIES = {
    "times",
    "time",
    "amount",
    "duration",
    "interval",
    "start",
    "dose",
    "total",
    "days",
    "median",
    "default",
    "atol",
    "bolus",
    "rate",
}
#: A unit in a docstring: ``(d)``, ``(cells/µL)``, ``(model units)``, "unit", "days" ...
UNIT = re.compile(
    r"\((?:d|1/d|-|%|[^()]*(?:cells|copies|µL|uL|mg|amount|unit)[^()]*)\)|\bunits?\b|\bdays?\b"
)


def _public():
    """(qualified name, object) of every exported name and every public method of exported
    classes that cartpk defines."""
    for name in cartpk.__all__:
        obj = getattr(cartpk, name)
        yield name, obj
        if inspect.isclass(obj):
            for attr in vars(obj):
                member = inspect.getattr_static(obj, attr)
                if attr.startswith("_") or not (
                    callable(member) or isinstance(member, property | classmethod | staticmethod)
                ):
                    continue
                yield f"{name}.{attr}", getattr(obj, attr)


def _doc(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    return "" if doc == inspect.getdoc(type(obj)) and not inspect.isclass(obj) else doc


def _defining_source(name: str) -> str:
    """Source of the module that assigns the constant ``name``."""
    for path in (ROOT / "src" / "cartpk").rglob("*.py"):
        text = path.read_text()
        if re.search(rf"^{name}\b.*=", text, re.M):
            return text
    raise AssertionError(f"{name} is not assigned in any cartpk module")


@pytest.mark.parametrize("name", cartpk.__all__)
def test_every_export_is_documented(name):
    obj = getattr(cartpk, name)
    if inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isroutine(obj):
        assert len(_doc(obj)) > 20, f"cartpk.{name} has no docstring"
    else:  # a constant: documented by a ``#:`` comment right above its assignment
        source = _defining_source(name)
        assert re.search(rf"^#:.*\n{name}\b", source, re.M), f"cartpk.{name} has no #: comment"


def test_public_methods_are_documented():
    missing = [
        name
        for name, obj in _public()
        if "." in name and not isinstance(obj, int | float | str | tuple | dict) and not _doc(obj)
    ]
    assert not missing, f"no docstring: {', '.join(missing)}"


def test_physical_arguments_have_units():
    """Every documented callable that takes a physical quantity states units."""
    missing = []
    for name, obj in _public():
        if not callable(obj):
            continue
        try:
            arguments = set(inspect.signature(obj).parameters)
        except (TypeError, ValueError):
            continue
        if arguments & QUANTITIES and not UNIT.search(_doc(obj)):
            missing.append(f"{name}({', '.join(sorted(arguments & QUANTITIES))})")
    assert not missing, f"docstrings without units: {'; '.join(missing)}"


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None,
    reason="mkdocs and mkdocstrings are not installed (pip install -e '.[docs]')",
)
def test_documentation_site_builds(tmp_path):
    """``mkdocs build --strict`` fails on any warning: broken links, missing pages, bad
    references in docstrings."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "index.html").is_file() and (tmp_path / "api" / "index.html").is_file()
