"""pnmcmc's warning classes, and the reporting of a solution's status at the Python edge.

Warnings are raised only where values are concrete (never inside jit or vmap); a traced solve
carries the same information in `Solution.status`.
"""

from __future__ import annotations

import inspect
import os
import warnings

import numpy as np

from .solution import Solution, Status

__all__ = [
    "FrontLimitedWarning",
    "NonFiniteChainWarning",
    "NotConvergedWarning",
    "PnmcmcWarning",
    "Tally",
    "find_stack_level",
    "report",
    "solver_name",
]

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def find_stack_level() -> int:
    """The `stacklevel` that attributes a warning to the first caller outside pnmcmc (the user's
    line), however deep inside pnmcmc the warning is raised. Pass it straight to `warnings.warn`:
    this function's own frame makes up for `stacklevel` counting from 1."""
    frame, level = inspect.currentframe(), 0
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


class PnmcmcWarning(UserWarning):
    """Base class of every warning pnmcmc emits (filter them all with this class)."""


class NotConvergedWarning(PnmcmcWarning):
    """The parallel iteration did not converge; part of the chain was computed sequentially.

    The trajectory is still the exact chain: only the speed-up was lost.
    """


class NonFiniteChainWarning(PnmcmcWarning):
    """The chain itself contains inf/NaN, so no certificate can be given."""


class FrontLimitedWarning(PnmcmcWarning):
    """The parallel iterations did no better than the exactness front on a contracting chain.

    Most of the chain was certified one element per iteration, so the solve did sequential work at
    parallel cost (`Solution.front_limited`). The trajectory is exact; the solver is the wrong tool
    for this chain (Jacobi or Picard where Newton is needed, or segments too short to contract).
    On a chain that is not contracting the warning is `ExpandingDynamicsWarning` instead.
    """


def solver_name(solver) -> str:
    """A solver's short name: its class and the fields that differ from their defaults."""
    name = getattr(solver, "name", None)
    return name if isinstance(name, str) else type(solver).__name__


def report(solution: Solution) -> None:
    """Warn about every solve in `solution` (possibly batched) that did not converge."""
    status = np.asarray(solution.status).ravel()
    steps = np.asarray(solution.sequential_steps).ravel()
    total = int(np.asarray(solution.trajectory).shape[-2])
    for code in (Status.MAX_ITERATIONS,):
        hit = status == code
        if hit.any():
            where = "" if status.size == 1 else f" in {int(hit.sum())} of {status.size} chains"
            warnings.warn(
                f"Parallel solve {code.name.lower()}{where}: up to {int(steps[hit].max())} of "
                f"{total} steps were computed sequentially. {code.message}.",
                NotConvergedWarning,
                stacklevel=find_stack_level(),
            )
    hit = status == Status.NONFINITE
    if hit.any():
        where = "" if status.size == 1 else f" in {int(hit.sum())} of {status.size} chains"
        warnings.warn(
            f"Non-finite chain{where}: {Status.NONFINITE.message}.",
            NonFiniteChainWarning,
            stacklevel=find_stack_level(),
        )


class Tally:
    """Counts of a phase's solves by status (chains x windows), reported as one warning each for
    the unconverged and the non-finite ones, at the end of the phase."""

    def __init__(self):
        self.total = 0
        self.counts = {}
        self.sequential = 0

    def add(self, num_iterations, status, sequential_steps):
        status = np.asarray(status).ravel()
        steps = np.asarray(sequential_steps).ravel()
        self.total += status.size
        for code in np.unique(status):
            if code != Status.CONVERGED:
                self.counts[int(code)] = self.counts.get(int(code), 0) + int(np.sum(status == code))
                self.sequential = max(self.sequential, int(steps[status == code].max()))

    def report(self, phase: str) -> None:
        nonfinite = self.counts.pop(int(Status.NONFINITE), 0)
        if self.counts:
            what = ", ".join(f"{n} {Status(code).name.lower()}" for code, n in sorted(self.counts.items()))
            warnings.warn(
                f"{phase}: {sum(self.counts.values())} of {self.total} parallel solves (chains x windows) "
                f"did not converge ({what}); up to {self.sequential} steps per solve were computed "
                "sequentially, so the draws are still exact but slower. The chain may be expanding "
                "(see the LLE in sample_stats): try kernel step sizes that contract, a damped solver "
                "(solver='quasielk' or 'elk'), or solver='sequential'.",
                NotConvergedWarning,
                stacklevel=find_stack_level(),
            )
        if nonfinite:
            warnings.warn(
                f"{phase}: {nonfinite} of {self.total} chain solves produced inf/NaN states: "
                f"{Status.NONFINITE.message}.",
                NonFiniteChainWarning,
                stacklevel=find_stack_level(),
            )
