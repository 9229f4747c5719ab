"""Solver labels: how the benchmark tables and command lines name a solver, and back.

A label is a constructor call as `solver.name` writes it, e.g. `DEER(segment=16)` or
`QuasiDEER(probes=1, segment=16)` (keyword arguments, literals only), or a bare class name (`DEER`,
`Sequential`). A script's solver table is built from its labels, so a label is exactly the solver
its row measured, apart from the iteration cap the script adds.
"""

from __future__ import annotations

import ast
import dataclasses

import pnmcmc as pn

CLASSES = ("Sequential", "Jacobi", "Picard", "DEER", "QuasiDEER", "ELK", "QuasiELK")


def from_label(label, max_iterations=None):
    """The solver a label names, with `max_iterations` (a parallel solver's cap) unless the label
    gives one. Exits with a message naming the valid forms (labels come from the command line)."""
    try:
        call = ast.parse(label.strip(), mode="eval").body
    except SyntaxError:
        call = None
    if isinstance(call, ast.Name):
        call = ast.Call(func=call, args=[], keywords=[])
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and not call.args):
        raise SystemExit(f"unknown solver {label!r}: use a name from the table or e.g. 'DEER(segment=32)'")
    if call.func.id not in CLASSES:
        raise SystemExit(f"unknown solver class in {label!r}; one of {', '.join(CLASSES)}")
    kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    if call.func.id != "Sequential":
        kwargs = {"max_iterations": max_iterations, **kwargs}
    return getattr(pn, call.func.id)(**kwargs)


def table(labels, max_iterations=None):
    """`{label: solver}` for a script's solver menu, in the order given."""
    return {label: from_label(label, max_iterations) for label in labels}


def short_name(solver) -> str:
    """The label a row gives a solver configured around the benchmark (a pick of `auto`, the solver
    `parallel_sample` chose): its `.name` without the cap and tolerances set for it (they would make
    the same solver read differently from row to row) and without empty parentheses, e.g. `DEER`,
    `QuasiDEER(probes=2)`, `DEER(segment=16)`."""
    if isinstance(solver, pn.Sequential):
        return "Sequential"
    plain = dataclasses.replace(solver, max_iterations=None, rtol=None, atol=None)
    return plain.name.removesuffix("()")
