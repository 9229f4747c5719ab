"""pnmcmc's warning classes, and the reporting of a solution's status at the Python edge.

Warnings are raised only where values are concrete (never inside jit or vmap); a traced solve
carries the same information in `Solution.status`.
"""

from __future__ import annotations

import warnings

import numpy as np

from .solution import Solution, Status

__all__ = [
    "FrontLimitedWarning",
    "NonFiniteChainWarning",
    "NotConvergedWarning",
    "PnmcmcWarning",
    "report",
    "solver_name",
]


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


def report(solution: Solution, *, stacklevel: int = 2) -> None:
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
                stacklevel=stacklevel + 1,
            )
    hit = status == Status.NONFINITE
    if hit.any():
        where = "" if status.size == 1 else f" in {int(hit.sum())} of {status.size} chains"
        warnings.warn(
            f"Non-finite chain{where}: {Status.NONFINITE.message}.",
            NonFiniteChainWarning,
            stacklevel=stacklevel + 1,
        )
