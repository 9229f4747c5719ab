"""The documentation site builds in strict mode: every cross-reference resolves, no warnings.

Runs `mkdocs build --strict` into a temporary directory (the notebooks are rendered from their
committed outputs, nothing is executed), then checks that every public name of `pnmcmc` (each
`from .x import Name as Name` in `pnmcmc/__init__.py`) has its own entry `pnmcmc.Name` in the API
reference. Skipped, with the reason, when the docs extra is not
installed (`pip install -e ".[docs]"`).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
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
    site = tmp_path / "site"
    for page in (
        "index.html",
        "api/index.html",
        "benchmarks/index.html",
        "notebooks/01_quickstart/index.html",
    ):
        assert (site / page).is_file(), f"{page} was not built"
    documented = set()
    for page in (site / "api").rglob("*.html"):
        documented |= set(re.findall(r'id="(pnmcmc[\w.]*)"', page.read_text()))
    missing = [name for name in _public_names() if f"pnmcmc.{name}" not in documented]
    assert not missing, f"public names without an entry in docs/api/*.md (add `::: pnmcmc.NAME`): {missing}"


def _public_names():
    tree = ast.parse((ROOT / "pnmcmc" / "__init__.py").read_text())
    return [
        alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.asname == alias.name
    ]
