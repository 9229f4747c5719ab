r"""The one iteration loop shared by every parallel solver, and the sequential evaluation.

Each iteration works on a window of W consecutive steps $[s, s + W)$ ($W = T$ unless the solver
has a `window`), with the state just left of the window as its fixed boundary, in four stages:

1. **evaluate** $f$ and the solver's Jacobian information at all shifted states of the window (one
   vmapped pass) and form the residuals $r_t = x_t - f(x_{t-1}, \xi_t)$;
2. **certify**: the steps whose scaled residual $\rho_t \le 1$ (see `pnmcmc.engine.solution`; relative to
   the chain's scale, computed once before the loop), up to the first one that is not, join the
   *certified prefix*. Certified steps are frozen from then on, so their recorded residuals remain
   a valid certificate without re-evaluation. Inf/NaN beyond the prefix only *restarts* the iterate
   there from its last finite state: the update is causal, so overflow in an unconverged suffix says
   nothing about the chain;
3. **decide**: stop if every step is certified (CONVERGED), the value the first uncertified step must
   take, $f$ of its certified predecessor, is inf/NaN (the chain itself is non-finite: NONFINITE),
   Ctrl-C was pressed (INTERRUPTED, `pnmcmc.engine.interrupts`), or the iteration budget is spent
   (MAX_ITERATIONS);
4. **update**: let the solver update the free steps of the window (the update rule is the only
   thing a solver defines), then set the first free step to $f$ of its certified predecessor, which
   stage 1 has already computed, and slide the window to the first uncertified step.

The last part of stage 4 is the *exactness front* made explicit: the first free step follows a
certified state, so its exact value is known. Undamped methods compute it anyway (their correction
there is $-r_t$); setting it directly gives it the very bits of the sequential chain, and it makes
damped (trust-region) solvers advance the certified prefix by at least one step per iteration too.
Every solver therefore converges in at most T iterations, which is the default cap.

**Progress of its own.** The front guarantees convergence, not speed: a solver whose updates do
nothing (or do nothing useful, as on an expanding chain) still converges, one step per iteration,
doing sequential work at parallel cost. The loop counts the iterations whose evaluation certified
exactly one new step, the front's; when those certify at least half of the chain the solution is
marked `front_limited` (`pnmcmc.Solution`), and `pnmcmc.solve` warns.

When the loop ends without convergence (iteration cap or a non-finite chain), the uncertified
suffix is computed sequentially from the last certified state, so the returned trajectory is always
the chain; `Solution.sequential_steps` says how much that took. Any non-finite state in the final
trajectory makes the status NONFINITE.

The check in stage 2 uses the residual that stage 1 needs anyway, so stopping costs no extra
evaluation; the price is that the last iteration's Jacobian is computed and not used.

**Sequential evaluation** (the `Sequential` solver and the fallback) runs `CHUNK` steps at a time
with a Ctrl-C check between chunks; within a chunk it is a plain `lax.scan` of the step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from . import interrupts
from .solution import FRONT_MIN_ELEMENTS, Solution, Status, chain_scale, scaled_residual
from .solvers import ParallelSolver, Sequential, resolve_tolerances

_RUNNING = -1
CHUNK = 256
"""Steps evaluated sequentially between two Ctrl-C checks."""


class _Loop(NamedTuple):
    """The state of the parallel iteration loop."""

    iteration: jax.Array  # updates performed
    certified: jax.Array  # length of the certified prefix
    trajectory: jax.Array  # the iterate, (T, D)
    solver_state: Any  # what the solver carries across iterations (the trust region's damping)
    status: jax.Array  # _RUNNING, then a Status
    scaled: jax.Array  # (T,) each step's scaled residual, recorded when it was certified
    front_only: jax.Array  # evaluations that certified exactly one new step: the front's


class _Window(NamedTuple):
    """The part of the chain one iteration works on."""

    start: jax.Array  # index of its first step
    boundary: jax.Array  # the state before it (x_0 or a certified state), (D,)
    trajectory: jax.Array  # (W, D)
    noise: Any


def _prepend(x0, traj):
    return jnp.concatenate([x0[None, :], traj[:-1]], axis=0)


def _rows(mask, a):
    """`mask` (W,) broadcast against the leading axis of `a`."""
    return mask.reshape(mask.shape + (1,) * (a.ndim - 1))


def _finite_rows(a):
    """Per step (leading axis): whether every entry is finite; all True for `None`."""
    if a is None:
        return jnp.asarray(True)
    return jnp.all(jnp.isfinite(a.reshape(a.shape[0], -1)), axis=1)


def _index(noise, t):
    return jax.tree.map(lambda a: lax.dynamic_index_in_dim(a, t, keepdims=False), noise)


def finish_sequentially(step, x0, noise, traj, start):
    """`(traj, interrupted)`: `traj[start:]` overwritten with the chain continued from
    `traj[start - 1]` (`x0` if `start == 0`), `CHUNK` steps between two Ctrl-C checks."""
    n = traj.shape[0]

    def one(t, carry):
        x, traj = carry
        y = step(x, _index(noise, t))
        return y, lax.dynamic_update_index_in_dim(traj, y, t, 0)

    def chunk(carry):
        t, x, traj, _ = carry
        end = jnp.minimum(t + CHUNK, n)
        x, traj = lax.fori_loop(t, end, one, (x, traj))
        return end, x, traj, interrupts.requested(end)

    x = jnp.where(start == 0, x0, traj[jnp.maximum(start - 1, 0)])
    init = (start, x, traj, jnp.asarray(False))
    _, _, traj, interrupted = lax.while_loop(lambda c: (c[0] < n) & ~c[3], chunk, init)
    return traj, interrupted


def _scan_chunks(step, x0, noise, n):
    """The chain by `lax.scan` over whole chunks of `CHUNK` steps, with a Ctrl-C check after each:
    `(trajectory of the first n - n % CHUNK steps, last state, interrupted)`."""
    full = n // CHUNK
    d = x0.shape[0]

    def scan(x, xi):
        return lax.scan(lambda c, e: (y := step(c, e), y), x, xi)

    def chunk(carry):
        c, x, traj, _ = carry
        xi = jax.tree.map(lambda a: lax.dynamic_slice_in_dim(a, c * CHUNK, CHUNK), noise)
        x, states = scan(x, xi)
        traj = lax.dynamic_update_slice_in_dim(traj, states, c * CHUNK, 0)
        return c + 1, x, traj, interrupts.requested(c)

    init = (jnp.asarray(0), x0, jnp.zeros((full * CHUNK, d), x0.dtype), jnp.asarray(False))
    _, x, traj, interrupted = lax.while_loop(lambda c: (c[0] < full) & ~c[3], chunk, init)
    return traj, x, interrupted


def sequential(step, x0, noise, solver: Sequential) -> Solution:
    """The chain step by step; certificate 0 by construction (NaN if the chain is non-finite)."""
    n = jax.tree.leaves(noise)[0].shape[0]
    head = n - n % CHUNK
    if head:
        traj, x, interrupted = _scan_chunks(step, x0, noise, n)
    else:
        traj, x, interrupted = jnp.zeros((0, x0.shape[0]), x0.dtype), x0, jnp.asarray(False)
    if head < n:  # the remainder, one static-length scan
        rest = jax.tree.map(lambda a: a[head:], noise)
        _, tail = lax.scan(lambda c, e: (y := step(c, e), y), x, rest)
        traj = jnp.concatenate([traj, tail], axis=0)
    finite = jnp.all(jnp.isfinite(traj))
    status = jnp.where(interrupted, Status.INTERRUPTED, jnp.where(finite, Status.CONVERGED, Status.NONFINITE))
    return Solution(
        trajectory=traj,
        status=status.astype(jnp.int32),
        num_iterations=jnp.asarray(0, jnp.int32),
        residual=jnp.where(finite, 0.0, jnp.nan).astype(traj.dtype),
        sequential_steps=jnp.asarray(n, jnp.int32),
        front_limited=jnp.asarray(False),
        scale=jnp.zeros_like(x0),
    )


def parallel(step, x0, noise, solver: ParallelSolver, init, callback=None) -> Solution:
    """Solve the chain with `solver`; see the module docstring for the loop."""
    n, dtype = init.shape[0], init.dtype
    rtol, atol = resolve_tolerances(solver, dtype)
    w = n if solver.window is None else min(solver.window, n)
    max_iterations = n if solver.max_iterations is None else solver.max_iterations
    jacobian = solver.jacobian
    positions = jnp.arange(w, dtype=jnp.int32)

    def window(traj, certified) -> _Window:
        if w == n:  # static: the whole chain, no slicing
            return _Window(jnp.asarray(0, jnp.int32), x0, traj, noise)
        s = jnp.minimum(certified, n - w)
        noise_w = jax.tree.map(lambda a: lax.dynamic_slice_in_dim(a, s, w), noise)
        boundary = jnp.where(s == 0, x0, traj[jnp.maximum(s - 1, 0)])
        return _Window(s, boundary, lax.dynamic_slice_in_dim(traj, s, w), noise_w)

    # The scale the tolerance is relative to: one step from the initial guess (its first window).
    first = window(init, jnp.asarray(0, jnp.int32))
    scale = chain_scale(jax.vmap(step)(_prepend(first.boundary, first.trajectory), first.noise))

    def body(loop: _Loop) -> _Loop:
        win = window(loop.trajectory, loop.certified)
        s, traj_w = win.start, win.trajectory

        # 1. Evaluate.
        fx, jac = jacobian.evaluate(step, _prepend(win.boundary, traj_w), win.noise, loop.iteration)
        r = traj_w - fx

        # 2. Certify: extend the prefix, record the newly certified residuals.
        scaled = scaled_residual(r, traj_w, scale, rtol, atol)
        ok = scaled <= 1
        first_bad = jnp.where(jnp.all(ok), w, jnp.argmin(ok)).astype(jnp.int32)
        certified = jnp.maximum(loop.certified, s + first_bad)
        new = (s + positions) >= loop.certified
        recorded = jnp.where(new, scaled, lax.dynamic_slice_in_dim(loop.scaled, s, w))
        scaled_all = lax.dynamic_update_slice_in_dim(loop.scaled, recorded, s, 0)
        front_only = loop.front_only + (certified - loop.certified == 1).astype(jnp.int32)
        free = (s + positions) >= certified
        # Restart from the first free step whose residual or Jacobian is inf/NaN: the iterate is
        # replaced by its last finite state from there on. The update is causal, so this cannot
        # disturb earlier steps; it only keeps overflow in the unconverged suffix out of the scans.
        bad_jac = ~_finite_rows(jac)
        bad = (~_finite_rows(r) | bad_jac) & free
        first_nonfinite = jnp.where(jnp.any(bad), jnp.argmax(bad), w).astype(jnp.int32)
        restart = positions >= first_nonfinite
        last_finite = _prepend(win.boundary, traj_w)[first_nonfinite]  # the boundary if the first is bad
        traj_w = jnp.where(restart[:, None], last_finite, traj_w)
        r = jnp.where(restart[:, None], 0.0, r)
        jac = jax.tree.map(lambda a: jnp.where(_rows(restart | bad_jac, a), 0.0, a), jac)
        free = free & ~restart
        if callback is not None:
            jax.debug.callback(callback, loop.iteration, certified, jnp.max(jnp.where(free, scaled, 0.0)))

        # 3. Decide. The chain itself is non-finite only if f(certified predecessor), the value
        # the front step must take, is: an inf/NaN iterate the solver produced further on is not
        # the chain's. The pass after the last allowed update only certifies (it can converge).
        converged = certified >= n
        front_value = fx[jnp.clip(certified - s, 0, w - 1)]
        status = jnp.select(
            [
                converged,
                ~jnp.all(jnp.isfinite(front_value)),
                interrupts.requested(loop.iteration),
                loop.iteration >= max_iterations,
            ],
            [Status.CONVERGED, Status.NONFINITE, Status.INTERRUPTED, Status.MAX_ITERATIONS],
            _RUNNING,
        ).astype(jnp.int32)
        running = status == _RUNNING

        # 4. Update the free steps, then set the front to its exact value.
        def residual_fn(candidate):
            return candidate - jax.vmap(step)(_prepend(win.boundary, candidate), win.noise)

        def update(_):
            new_w, new_state = solver.update(traj_w, r, jac, loop.solver_state, residual_fn, free[:, None])
            front = (s + positions == certified)[:, None]
            return jnp.where(front, fx, new_w), new_state

        new_w, new_state = lax.cond(running, update, lambda _: (traj_w, loop.solver_state), None)
        new_traj = new_w if w == n else lax.dynamic_update_slice_in_dim(loop.trajectory, new_w, s, 0)
        return _Loop(
            iteration=loop.iteration + running.astype(jnp.int32),
            certified=certified,
            trajectory=jnp.where(running, new_traj, loop.trajectory),
            solver_state=jax.tree.map(lambda a, b: jnp.where(running, a, b), new_state, loop.solver_state),
            status=status,
            scaled=scaled_all,
            front_only=front_only,
        )

    initial = _Loop(
        iteration=jnp.asarray(0, jnp.int32),
        certified=jnp.asarray(0, jnp.int32),
        trajectory=init,
        solver_state=solver.init_state(dtype),
        status=jnp.asarray(_RUNNING, jnp.int32),
        scaled=jnp.full((n,), jnp.inf, dtype),
        front_only=jnp.asarray(0, jnp.int32),
    )
    loop = lax.while_loop(lambda loop: loop.status == _RUNNING, body, initial)
    return _finish(step, x0, noise, loop, scale)


def _finish(step, x0, noise, loop: _Loop, scale) -> Solution:
    """The Solution of an ended loop: the uncertified suffix computed sequentially (unless
    interrupted), the certificate over the certified prefix, the status checked on every state."""
    n = loop.trajectory.shape[0]
    interrupted = loop.status == Status.INTERRUPTED
    traj, stopped = lax.cond(
        (loop.certified < n) & ~interrupted,
        lambda t: finish_sequentially(step, x0, noise, t, loop.certified),
        lambda t: (t, jnp.asarray(False)),
        loop.trajectory,
    )
    interrupted = interrupted | stopped
    certificate = jnp.max(jnp.where(jnp.arange(n) < loop.certified, loop.scaled, 0.0))
    finite = jnp.all(jnp.isfinite(traj))
    status = jnp.where(interrupted, Status.INTERRUPTED, jnp.where(finite, loop.status, Status.NONFINITE))
    return Solution(
        trajectory=traj,
        status=status.astype(jnp.int32),
        num_iterations=loop.iteration,
        residual=jnp.where(finite, certificate, jnp.nan).astype(traj.dtype),
        sequential_steps=(n - loop.certified).astype(jnp.int32),
        front_limited=jnp.asarray(n >= FRONT_MIN_ELEMENTS) & (2 * loop.front_only >= n),
        scale=scale,
    )
