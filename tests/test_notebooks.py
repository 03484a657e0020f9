"""Every notebook in ``notebooks/`` runs top to bottom at small size (``CARTPK_NOTEBOOK_SMALL=1``),
and the committed copy carries its outputs (figures included), explained by a first markdown
cell. The notebooks run two at a time, in separate kernels: most of their time is compiling,
which uses one core."""

from __future__ import annotations

import importlib.util
import json
from concurrent.futures import ThreadPoolExecutor
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


@pytest.fixture(scope="module")
def executed():
    """Each notebook executed once at small size: ``{path: (notebook, error)}``."""
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    runner = _runner()

    def run(path):
        try:
            return runner.execute(path, small=True), None
        except Exception as error:  # a failing cell: reported by that notebook's test
            return None, error

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(NOTEBOOKS, pool.map(run, NOTEBOOKS), strict=True))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, executed):
    notebook, error = executed[path]
    if error is not None:
        raise error
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(c.get("execution_count") for c in code), "a code cell did not run"
