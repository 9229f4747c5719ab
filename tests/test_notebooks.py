"""Every notebook in `notebooks/` executes from top to bottom with its small settings.

Each notebook runs in a fresh Jupyter kernel (nbclient), from a copy in a temporary directory so
that the committed outputs are left alone; any cell that raises fails the test with the cell and
its traceback. Refresh the committed outputs with `python scripts/run_notebooks.py --write`.
Skipped, with the reason, when the notebook tools are not installed (`pip install -e ".[test]"`).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # still run in CI; deselect locally with -m "not slow"

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TOOLS = ("nbclient", "nbformat", "ipykernel", "matplotlib")
MISSING = [name for name in TOOLS if importlib.util.find_spec(name) is None]


@pytest.mark.skipif(bool(MISSING), reason=f"notebook tools not installed (missing: {MISSING})")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from run_notebooks import execute
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    execute(copy, timeout=600)


def test_notebooks_exist():
    names = {p.stem for p in NOTEBOOKS}
    assert {"01_quickstart", "02_workflow_german_credit", "03_when_parallel_helps", "04_solvers"} <= names
