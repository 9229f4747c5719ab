"""The result of a solve: the trajectory, a status and the certificate that backs it."""

from __future__ import annotations

import dataclasses
import enum

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Solution", "Status", "default_tolerances"]


class Status(enum.IntEnum):
    """How a solve ended. Stored in `Solution.status` as an int32 array (so it survives jit/vmap)."""

    CONVERGED = 0
    """The parallel iteration met the tolerance on every step."""
    MAX_ITERATIONS = 1
    """The iteration limit was reached; the unconverged suffix was finished sequentially."""
    NONFINITE = 2
    """The chain itself contains inf/NaN (the step function returned them): there is no certificate."""

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    Status.CONVERGED: "converged: every step satisfies the residual tolerance",
    Status.MAX_ITERATIONS: (
        "the iteration limit was reached; the unconverged suffix was computed sequentially, so the "
        "trajectory is still the exact chain. If this is frequent the chain may be expanding "
        "(positive Lyapunov exponent, see pnmcmc.lyapunov): try a smaller step size, a "
        "reparameterisation, or the Sequential solver"
    ),
    Status.NONFINITE: (
        "the chain itself contains inf/NaN: the step function returned non-finite values "
        "(check the step size and the log density); the returned trajectory is the sequential "
        "chain up to and including the first non-finite state"
    ),
}


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Solution:
    """The solved chain and how it was obtained. All fields are arrays (batched under vmap).

    **Fields:**

    - `trajectory`: the states `x_1..x_T`, shape (T, D) (the initial state `x_0` is not included).
    - `status`: an int32 [`Status`][pnmcmc.Status] code.
    - `num_iterations`: parallel iterations performed (window sweeps in sliding-window mode;
      iterations over segments with `segment=m`, each m steps deep).
    - `residual`: the certificate `max_{t,d} |x_t - f(x_{t-1}, xi_t)| / (atol + rtol |x_t|)` of
      the returned trajectory; at most 1 unless the status is NONFINITE (then inf or NaN).
    - `sequential_steps`: how many trailing steps were computed one by one (0 when converged).
    """

    trajectory: jax.Array
    status: jax.Array
    num_iterations: jax.Array
    residual: jax.Array
    sequential_steps: jax.Array

    @property
    def converged(self) -> jax.Array:
        """True where the parallel iteration converged (no sequential fallback was needed)."""
        return self.status == Status.CONVERGED

    @property
    def exact(self) -> jax.Array:
        """True where the trajectory is certified to be the chain (every status but NONFINITE)."""
        return self.status != Status.NONFINITE

    def describe(self) -> str:
        """A one-line human summary (for an unbatched, concrete solution)."""
        status = np.asarray(self.status)
        if status.ndim:
            counts = {
                Status(s).name: int(n) for s, n in zip(*np.unique(status, return_counts=True), strict=True)
            }
            return f"batch of {status.size} solves: {counts}"
        s = Status(int(status))
        return (
            f"{s.name}: {int(self.num_iterations)} iterations, certificate "
            f"{float(self.residual):.3g}, {int(self.sequential_steps)} steps finished sequentially"
        )


def default_tolerances(dtype) -> tuple[float, float]:
    """Default `(rtol, atol)` on the scaled residual for a floating dtype.

    float64: 1e-11, so that contracting chains match lax.scan to ~1e-10 and Newton's quadratic
    convergence makes the tight tolerance nearly free. float32: 2e-6 (about 16 ulps): tight enough
    to match lax.scan to ~1e-5 relative, loose enough to sit above the round-off floor of
    evaluating the step in a different order than lax.scan does. Other widths scale with eps.
    """
    eps = float(jnp.finfo(dtype).eps)
    if eps <= 1e-15:
        tol = 1e-11
    elif eps <= 1e-6:
        tol = 2e-6
    else:
        tol = 16 * eps
    return tol, tol
