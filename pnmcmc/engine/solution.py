r"""The result of a solve: the trajectory, a status and the certificate that backs it.

**The certificate.** A step is accepted when its residual $r_t = x_t - f(x_{t-1}, \xi_t)$ is small
relative to the chain itself, coordinate by coordinate:

$$\rho_t = \max_d \frac{|r_{t,d}|}{\mathrm{atol} + \mathrm{rtol}\,\max(|x_{t,d}|,\ s_d)} \le 1,$$

with $s_d$ the *scale* of coordinate $d$: the median over the steps of $|f(x^{(0)}_{t-1}, \xi_t)_d|$,
the states one step from the initial guess (with the default guess, one step from $x_0$), computed
once before the first update. The relative term alone would demand relative accuracy from a
coordinate that passes through zero; $s_d$ replaces it by accuracy relative to the coordinate's
typical size, so the criterion is invariant under rescaling the chain ($x \to c\,x$ changes no
decision, in float32 as in float64). The default `atol` is 0; a positive `atol` adds an absolute
floor. A residual that is exactly zero always passes; a NaN never does. The certificate of a solve
is $\max_t \rho_t$; [`pnmcmc.certificate`][pnmcmc.certificate] recomputes it from scratch.
"""

from __future__ import annotations

import dataclasses
import enum

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Solution", "Status", "default_tolerances", "scaled_residual"]


class Status(enum.IntEnum):
    """How a solve ended. Stored in `Solution.status` as an int32 array (so it survives jit/vmap)."""

    CONVERGED = 0
    """The parallel iteration met the tolerance on every step."""
    MAX_ITERATIONS = 1
    """The iteration limit was reached; the unconverged suffix was finished sequentially."""
    NONFINITE = 2
    """The chain itself contains inf/NaN (the step function returned them): there is no certificate."""
    INTERRUPTED = 3
    """Stopped by Ctrl-C (`pnmcmc.engine.interrupts`): the trajectory is incomplete and never returned to
    the user, who gets a `KeyboardInterrupt` instead."""

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    Status.CONVERGED: "converged: every step satisfies the residual tolerance",
    Status.MAX_ITERATIONS: (
        "the iteration limit was reached; the unconverged suffix was computed sequentially, so the "
        "trajectory is still the exact chain. If this is frequent the chain may be expanding "
        "(positive Lyapunov exponent, see pnmcmc.analysis.lyapunov): try a smaller step size, a "
        "reparameterisation, or the Sequential solver"
    ),
    Status.NONFINITE: (
        "the chain itself contains inf/NaN: the step function returned non-finite values "
        "(check the step size and the log density); the returned trajectory is the sequential "
        "chain up to and including the first non-finite state"
    ),
    Status.INTERRUPTED: "interrupted (Ctrl-C): the trajectory is incomplete",
}

FRONT_MIN_ELEMENTS = 16
"""Chains of fewer elements (steps, or segments with `segment=m`) are never called front-limited:
the exactness front alone solves them in a handful of iterations."""


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Solution:
    """The solved chain and how it was obtained. All fields are arrays (batched under vmap).

    **Fields:**

    - `trajectory`: the states `x_1..x_T`, shape (T, D) (the initial state `x_0` is not included).
    - `status`: an int32 [`Status`][pnmcmc.Status] code.
    - `num_iterations`: parallel iterations performed (window sweeps in sliding-window mode;
      iterations over segments with `segment=m`, each m steps deep).
    - `residual`: the certificate `max_t rho_t` (see `pnmcmc.engine.solution`) of the returned
      trajectory; at most 1 unless the status is NONFINITE (then NaN).
    - `sequential_steps`: how many trailing steps were computed one by one (0 when converged).
    - `front_limited`: True when the parallel iterations did no better than the exactness front:
      at least half of the chain's elements (steps, or segments) were certified by iterations
      that certified exactly one new element, the one the front sets. Such a solve did sequential
      work at parallel cost (every iteration evaluates the whole chain); `pnmcmc.solve` then
      warns. Never set on chains of fewer than `FRONT_MIN_ELEMENTS` elements.
    - `scale`: the scale `s_d` of each coordinate that the tolerance is relative to, shape (D,).
    """

    trajectory: jax.Array
    status: jax.Array
    num_iterations: jax.Array
    residual: jax.Array
    sequential_steps: jax.Array
    front_limited: jax.Array
    scale: jax.Array

    @property
    def converged(self) -> jax.Array:
        """True where the parallel iteration converged (no sequential fallback was needed)."""
        return self.status == Status.CONVERGED

    @property
    def exact(self) -> jax.Array:
        """True where the trajectory is certified to be the chain (CONVERGED or MAX_ITERATIONS)."""
        return (self.status == Status.CONVERGED) | (self.status == Status.MAX_ITERATIONS)

    def describe(self) -> str:
        """A one-line human summary (for an unbatched, concrete solution)."""
        status = np.asarray(self.status)
        if status.ndim:
            counts = {
                Status(s).name: int(n) for s, n in zip(*np.unique(status, return_counts=True), strict=True)
            }
            front = int(np.sum(np.asarray(self.front_limited)))
            return f"batch of {status.size} solves: {counts}" + (f", {front} front-limited" if front else "")
        s = Status(int(status))
        front = ", front-limited" if bool(self.front_limited) else ""
        return (
            f"{s.name}: {int(self.num_iterations)} iterations, certificate "
            f"{float(self.residual):.3g}, {int(self.sequential_steps)} steps finished sequentially{front}"
        )


def default_tolerances(dtype) -> tuple[float, float]:
    """Default `(rtol, atol)` of the scaled residual (see `pnmcmc.engine.solution`) for a floating dtype.

    `rtol`: float64 1e-11, so that contracting chains match lax.scan to ~1e-10 and Newton's
    quadratic convergence makes the tight tolerance nearly free; float32 2e-6 (about 16 ulps),
    tight enough to match lax.scan to ~1e-5 relative, loose enough to sit above the round-off
    floor of evaluating the step in a different order than lax.scan does; other widths 16 eps.
    `atol` is 0: the tolerance is relative to the chain's own scale at every magnitude.
    """
    eps = float(jnp.finfo(dtype).eps)
    if eps <= 1e-15:
        rtol = 1e-11
    elif eps <= 1e-6:
        rtol = 2e-6
    else:
        rtol = 16 * eps
    return rtol, 0.0


def scaled_residual(r, x, scale, rtol, atol):
    """Per step (leading axes kept): `max_d |r| / (atol + rtol max(|x|, scale))`.

    An exactly zero residual gives 0 (whatever the tolerance); a NaN residual gives NaN, which
    never passes `<= 1`.
    """
    tol = atol + rtol * jnp.maximum(jnp.abs(x), scale)
    ratio = jnp.where(r == 0, 0.0, jnp.abs(r) / tol)
    return jnp.max(ratio, axis=-1)


def chain_scale(fx):
    """The scale `s_d` of each coordinate: the median of `|fx_{t,d}|` over the steps, non-finite
    values counted as 0 (a smaller scale only makes the tolerance stricter)."""
    magnitude = jnp.where(jnp.isfinite(fx), jnp.abs(fx), 0.0)
    return jnp.median(magnitude, axis=0)
