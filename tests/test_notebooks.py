"""Every notebook in ``notebooks/`` runs top to bottom at small size (``CARTPK_NOTEBOOK_SMALL=1``),
and the committed copy carries its outputs (figures included), explained by a first markdown
cell."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

FOLDER = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(FOLDER.glob("[0-9][0-9]_*.ipynb"))


def _runner():
    spec = importlib.util.spec_from_file_location("run_notebooks", FOLDER / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_with_outputs_and_explained(path):
    cells = json.loads(path.read_text())["cells"]
    assert cells[0]["cell_type"] == "markdown" and cells[0]["source"][0].startswith("# ")
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(c["execution_count"] for c in code), "run notebooks/run_notebooks.py and commit"
    images = [o for c in code for o in c["outputs"] if "image/png" in o.get("data", {})]
    assert images, "the notebook shows no figure"
    errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path):
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = _runner().execute(path, small=True)  # a failing cell raises
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(c.get("execution_count") for c in code), "a code cell did not run"
