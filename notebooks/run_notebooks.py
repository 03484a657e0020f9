"""Execute the notebooks in this folder (and save their outputs, for GitHub to show).

    python notebooks/run_notebooks.py                 # every notebook, full size, saved in place
    python notebooks/run_notebooks.py 01_quickstart   # one notebook
    CARTPK_NOTEBOOK_SMALL=1 python notebooks/run_notebooks.py --no-save   # as the tests do

``tests/test_notebooks.py`` uses :func:`execute` with ``small=True`` (sizes shrunk by the
notebooks themselves when ``CARTPK_NOTEBOOK_SMALL=1``) and does not save.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

FOLDER = Path(__file__).resolve().parent


def notebooks() -> list[Path]:
    """The notebooks of this folder, in order."""
    return sorted(FOLDER.glob("[0-9][0-9]_*.ipynb"))


def execute(path: Path, *, small: bool, timeout: int = 1200):
    """Run a notebook top to bottom in a fresh kernel (working directory: this folder) and
    return it with its outputs; an error in any cell raises ``nbclient``'s CellExecutionError."""
    notebook = nbformat.read(path, as_version=4)
    env = {**os.environ, "CARTPK_NOTEBOOK_SMALL": "1" if small else "0"}  # the kernel's only
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(FOLDER)}},
    )
    client.execute(env=env)
    return notebook


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook names (default: all)")
    parser.add_argument("--no-save", action="store_true", help="do not write the outputs")
    args = parser.parse_args()
    small = os.environ.get("CARTPK_NOTEBOOK_SMALL") == "1"
    for path in notebooks():
        if args.names and path.stem not in args.names and path.name not in args.names:
            continue
        started = time.perf_counter()
        notebook = execute(path, small=small)
        if not args.no_save:
            nbformat.write(notebook, path)
        print(f"{path.name}: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
