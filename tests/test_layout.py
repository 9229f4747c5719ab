"""The package layout: three rooms that depend in one direction, one facade, the old paths intact."""

import ast
import importlib
import pathlib

import pytest

import pnmcmc

PACKAGE = pathlib.Path(pnmcmc.__file__).parent
# engine <- analysis <- sampling: a room may import only from the rooms before it (and the zoos).
ORDER = {"engine": 0, "analysis": 1, "sampling": 2}
# The engine's one look ahead: solve() explains a front-limited solve with the Lyapunov exponent.
ALLOWED = {("engine/solve.py", "analysis")}


def _imports(path):
    """(room imported, line) for every relative import of a sibling room in a module."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module:
            yield node.module.split(".")[0], node.lineno


@pytest.mark.parametrize("room", sorted(ORDER))
def test_rooms_depend_in_one_direction(room):
    for path in sorted((PACKAGE / room).glob("*.py")):
        for imported, line in _imports(path):
            if imported not in ORDER:
                continue  # kernels, models, targets
            where = f"{room}/{path.name}"
            assert ORDER[imported] <= ORDER[room] or (where, imported) in ALLOWED, (
                f"{where}:{line} imports from {imported}"
            )


@pytest.mark.parametrize("old, new", sorted(pnmcmc._MOVED.items()))
def test_earlier_module_paths_name_the_moved_modules(old, new):
    assert importlib.import_module(f"pnmcmc.{old}") is importlib.import_module(f"pnmcmc.{new}")


def test_documented_calls_through_old_paths_still_work():
    from pnmcmc.analysis.auto import choose_solver
    from pnmcmc.sampling.sample import AutoSolver, resolve_solver

    assert AutoSolver is pnmcmc.AutoSolver and choose_solver is pnmcmc.choose_solver
    assert pnmcmc.sampling.sample.resolve_solver is resolve_solver is pnmcmc.resolve_solver
    assert callable(pnmcmc.solve) and callable(pnmcmc.compare)  # the functions, not the modules


def test_every_public_name_is_importable_from_the_facade():
    names = [n for n in dir(pnmcmc) if not n.startswith("_")]
    for name in ("solve", "parallel_sample", "sequential_sample", "DEER", "Solution", "SampleResult"):
        assert name in names
