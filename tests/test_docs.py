"""The documentation site builds in strict mode: every cross-reference resolves, no warnings.

Runs `mkdocs build --strict` into a temporary directory (the notebooks are rendered from their
committed outputs, nothing is executed). Skipped, with the reason, when the docs extra is not
installed (`pip install -e ".[docs]"`).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "mkdocs_jupyter")


def _missing():
    missing = []
    for name in PLUGINS:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name)
    return missing


@pytest.mark.skipif(bool(_missing()), reason=f"docs extra not installed (missing: {_missing()})")
def test_docs_build_strict(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{log[-6000:]}"
    for page in ("index.html", "api/engine/index.html", "notebooks/01_quickstart/index.html"):
        assert (tmp_path / "site" / page).is_file(), f"{page} was not built"
