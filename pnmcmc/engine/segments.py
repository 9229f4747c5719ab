r"""Segments (multiple shooting): solve for every m-th state, compute the ones between step by step.

Group the chain into $B = \lceil T/m \rceil$ segments of $m$ consecutive steps and write
$X_b = x_{bm}$ for the state at the end of segment $b$. With the randomness fixed, $X_b$ is the
composition of the segment's $m$ steps applied to $X_{b-1}$:

$$X_b = F_b(X_{b-1}) = f(\cdot, \xi_{bm}) \circ \cdots \circ f(\cdot, \xi_{(b-1)m+1})\,(X_{b-1}),
\qquad X_0 = x_0,$$

a chain of the same kind, $m$ times shorter. Any parallel solver applies to it unchanged: each
iteration evaluates every $F_b$ (its $m$ steps one after another, all segments at once) and, for
the Newton-type solvers, the segment Jacobian $\partial F_b = J_{bm} \cdots J_{(b-1)m+1}$ by
forward-mode autodiff through the same loop. Three things improve at once:

- **contraction**: on a chain with Lyapunov exponent $\lambda < 0$ the segment Jacobians have norm
  about $e^{\lambda m}$, so a wrong linearisation (an accept decision the current iterate gets
  wrong, a leapfrog trajectory through a curved region) is damped by the chain itself within one
  segment instead of travelling through the linear scan; even Jacobi contracts by $e^{\lambda m}$
  per iteration;
- **the exactness front** advances $m$ steps per iteration instead of one;
- **memory**: $B = T/m$ Jacobians instead of $T$.

The work per iteration is the same as without segments (every step is evaluated once, with its
tangents); the price is depth: each iteration runs $m$ steps in sequence before its scan over $B$
elements. `benchmarks/results/kernels-cpu.md` measures the trade on the published configurations,
with and without segments.

**Certificate.** The states inside a segment are computed from the segment's start by the step
function itself, so their residuals $x_t - f(x_{t-1}, \xi_t)$ are zero by construction; the
residual at a segment end, $x_{bm} - f(x_{bm-1}, \xi_{bm}) = X_b - F_b(X_{b-1})$, is the segment
residual the solver certifies. The certificate of a segmented solve is therefore the same per-step
certificate as any other solve. Its status is decided on every state of the expanded trajectory:
a segment map can be finite where a state inside the segment is not.

When $m$ does not divide $T$ the last segment is padded with identity steps (the step is masked,
not evaluated on made-up noise), so nothing beyond step $T$ can change the chain or its status.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jax import lax

from .solution import Solution, Status

__all__ = ["segmented_solve"]


def _padded(step, masked):
    """`step` on one slice of segment noise: with padding, a masked step is the identity."""
    if not masked:
        return step

    def run(x, xi):
        xi, valid = xi
        return jnp.where(valid, step(x, xi), x)

    return run


def _segment_step(step, masked):
    """The map of one segment: its m steps in sequence."""
    one = _padded(step, masked)
    return lambda x, xi_segment: lax.scan(lambda c, xi: (one(c, xi), None), x, xi_segment)[0]


def _segment_noise(noise, n, m):
    """Noise reshaped to (B, m, ...); with padding, also the (B, m) mask of real steps."""
    b = math.ceil(n / m)
    pad = b * m - n

    def reshape(a):
        if pad:
            a = jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)], axis=0)
        return a.reshape((b, m) + a.shape[1:])

    segment_noise = jax.tree.map(reshape, noise)
    if pad:
        valid = (jnp.arange(b * m) < n).reshape(b, m)
        segment_noise = (segment_noise, valid)
    return segment_noise, b, pad


def _inner_states(step, starts, segment_noise, masked):
    """Every state of every segment from the segment starts (B, D): (B, m, D)."""
    one = _padded(step, masked)

    def states(x, xi_segment):
        return lax.scan(lambda c, xi: (y := one(c, xi), y), x, xi_segment)[1]

    return jax.vmap(states)(starts, segment_noise)


def segmented_solve(solve_chain, step, x0, noise, solver, init, callback) -> Solution:
    """Solve the chain of segment maps with `solver` (its `segment` = m) and expand the result.

    `solve_chain(step, x0, noise, solver, init, callback)` is the unsegmented parallel solve
    (`pnmcmc.engine.iterate.parallel`); it receives the segment chain and a copy of `solver` with
    `segment=1` and its window converted from steps to segments.
    """
    m = solver.segment
    n, d = init.shape
    segment_noise, b, pad = _segment_noise(noise, n, m)
    masked = pad > 0
    ends = jnp.minimum(jnp.arange(1, b + 1) * m, n) - 1  # the iterate's value at each segment end
    window = None if solver.window is None else math.ceil(solver.window / m)
    inner_solver = dataclasses.replace(solver, segment=1, window=window)
    if callback is not None:
        user_callback = callback

        def callback(k, certified, residual):
            user_callback(k, jnp.minimum(certified * m, n), residual)

    solution = solve_chain(_segment_step(step, masked), x0, segment_noise, inner_solver, init[ends], callback)
    ends_traj = solution.trajectory
    starts = jnp.concatenate([x0[None, :], ends_traj[:-1]], axis=0)
    inner = _inner_states(step, starts, segment_noise, masked)
    # Segment ends keep the solved iterate (what the certificate is about); the steps between are
    # the step function applied from the segment's start.
    traj = inner.reshape(b * m, d)[:n].at[ends].set(ends_traj)
    # The segment chain may be finite where a state inside a segment is not (a step that maps a NaN
    # back to a number): the status is decided on every state of the expanded trajectory.
    finite = jnp.all(jnp.isfinite(traj))
    return dataclasses.replace(
        solution,
        trajectory=traj,
        status=jnp.where(
            finite | (solution.status == Status.INTERRUPTED), solution.status, Status.NONFINITE
        ).astype(jnp.int32),
        residual=jnp.where(finite, solution.residual, jnp.nan).astype(solution.residual.dtype),
        sequential_steps=jnp.clip(solution.sequential_steps * m - pad, 0, n).astype(jnp.int32),
    )
