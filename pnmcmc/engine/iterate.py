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

**Across devices.** Given a [`TimeSplit`][pnmcmc.engine.sharding.TimeSplit] (`pnmcmc.solve(...,
devices=...)`), the loop is the same: the per-step arrays of stages 1, 2 and 4 are constrained to
be split along time over its devices, and the solver's linear solve uses its sharded scans instead
of those of `pnmcmc.engine.scans` (`pnmcmc.engine.sharding`).

The check in stage 2 uses the residual that stage 1 needs anyway, so stopping costs no extra
evaluation; the price is that the last iteration's Jacobian is computed and not used.

**Sequential evaluation** (the `Sequential` solver) runs equal chunks of at most `CHUNK` steps with
a Ctrl-C check between chunks; within a chunk it is a plain `lax.scan` of the step. The noise is
padded to whole chunks, so a program holds one compiled copy of the step whatever T is.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from . import interrupts, scans
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


def _chunking(n: int) -> tuple[int, int]:
    """`(chunks, length)`: n steps as equal chunks of at most `CHUNK` steps (the last one padded by
    fewer steps than there are chunks)."""
    chunks = -(-n // CHUNK)
    return chunks, -(-n // chunks)


def _scan_chunks(transition, x0, noise, n):
    """The chain by `lax.scan` over equal chunks, with a Ctrl-C check after each: `(trajectory,
    per-step outputs, interrupted)` of the n steps.

    `transition(x, xi) -> (x_next, output)`. The noise is padded to whole chunks with copies of its
    last step, whose states are computed and dropped: one compiled copy of the step, whatever n.
    """
    chunks, length = _chunking(n)
    pad = chunks * length - n
    padded = jax.tree.map(lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]), noise)

    def scan(x, xi):
        return lax.scan(lambda c, e: (lambda y, out: (y, (y, out)))(*transition(c, e)), x, xi)

    out1 = jax.eval_shape(transition, x0, jax.tree.map(lambda a: a[0], noise))[1]

    def chunk(carry):
        c, x, traj, outs, _ = carry
        xi = jax.tree.map(lambda a: lax.dynamic_slice_in_dim(a, c * length, length), padded)
        x, (states, out) = scan(x, xi)
        traj = lax.dynamic_update_slice_in_dim(traj, states, c * length, 0)
        outs = jax.tree.map(lambda o, new: lax.dynamic_update_slice_in_dim(o, new, c * length, 0), outs, out)
        return c + 1, x, traj, outs, interrupts.requested(c)

    total = chunks * length
    outs = jax.tree.map(lambda s: jnp.zeros((total, *s.shape), s.dtype), out1)
    init = (jnp.asarray(0), x0, jnp.zeros((total, x0.shape[0]), x0.dtype), outs, jnp.asarray(False))
    _, _, traj, outs, interrupted = lax.while_loop(lambda c: (c[0] < chunks) & ~c[4], chunk, init)
    return traj[:n], jax.tree.map(lambda o: o[:n], outs), interrupted


def sequential(step, x0, noise, solver: Sequential) -> Solution:
    """The chain step by step; certificate 0 by construction (NaN if the chain is non-finite)."""
    return sequential_transitions(lambda x, e: (step(x, e), ()), x0, noise)[0]


def sequential_transitions(transition, x0, noise) -> tuple[Solution, Any]:
    """The chain of `transition(x, xi) -> (x_next, output)` step by step: `(Solution, outputs)`,
    the outputs stacked along time (e.g. a kernel's per-step statistics, computed with the step
    rather than recomputed after it)."""
    n = jax.tree.leaves(noise)[0].shape[0]
    if n:
        traj, outs, interrupted = _scan_chunks(transition, x0, noise, n)
    else:
        one = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), noise)
        out = jax.eval_shape(transition, x0, one)[1]
        traj, interrupted = jnp.zeros((0, x0.shape[0]), x0.dtype), jnp.asarray(False)
        outs = jax.tree.map(lambda s: jnp.zeros((0, *s.shape), s.dtype), out)
    finite = jnp.all(jnp.isfinite(traj))
    status = jnp.where(interrupted, Status.INTERRUPTED, jnp.where(finite, Status.CONVERGED, Status.NONFINITE))
    solution = Solution(
        trajectory=traj,
        status=status.astype(jnp.int32),
        num_iterations=jnp.asarray(0, jnp.int32),
        residual=jnp.where(finite, 0.0, jnp.nan).astype(traj.dtype),
        sequential_steps=jnp.asarray(n, jnp.int32),
        front_limited=jnp.asarray(False),
        scale=jnp.zeros_like(x0),
    )
    return solution, outs


class _Setup(NamedTuple):
    """What every iteration of one parallel solve shares."""

    step: Any
    x0: jax.Array
    noise: Any
    solver: ParallelSolver
    n: int  # steps
    w: int  # steps per window (n without a window)
    rtol: float
    atol: float
    scale: jax.Array  # (D,) the chain's scale, from one step of the initial guess
    max_iterations: int
    callback: Any
    split: Any  # a TimeSplit, or None on one device

    @property
    def positions(self):
        return jnp.arange(self.w, dtype=jnp.int32)

    @property
    def linear(self):
        """Where the solver's scans come from: this module's default, or the split across devices."""
        return scans if self.split is None else self.split

    def place(self, tree):
        """Per-step arrays split along time across the devices (unchanged on one device)."""
        return tree if self.split is None else self.split.constrain(tree)


class _Certified(NamedTuple):
    """What stage 2 (certify) leaves for the decision and the update."""

    certified: jax.Array  # the new length of the certified prefix
    scaled: jax.Array  # (T,) recorded scaled residuals
    front_only: jax.Array
    free: jax.Array  # (W,) the steps the update may change
    trajectory: jax.Array  # (W, D) the window's iterate, restarted past a non-finite step
    residual: jax.Array  # (W, D), zero where restarted
    jac: Any  # the Jacobian information, zero where restarted or non-finite


def parallel(step, x0, noise, solver: ParallelSolver, init, callback=None, split=None) -> Solution:
    """Solve the chain with `solver`; see the module docstring for the loop and its stages.
    `split`: a [`TimeSplit`][pnmcmc.engine.sharding.TimeSplit] to spread the time axis over devices."""
    n, dtype = init.shape[0], init.dtype
    rtol, atol = resolve_tolerances(solver, dtype)
    w = n if solver.window is None else min(solver.window, n)
    max_iterations = n if solver.max_iterations is None else solver.max_iterations
    setup = _Setup(step, x0, noise, solver, n, w, rtol, atol, None, max_iterations, callback, split)
    init = setup.place(init)
    first = _window(setup, init, jnp.asarray(0, jnp.int32))
    prev, first_noise = setup.place((_prepend(first.boundary, first.trajectory), first.noise))
    scale = chain_scale(jax.vmap(step)(prev, first_noise))
    setup = setup._replace(scale=scale)

    def body(loop: _Loop) -> _Loop:
        win = _window(setup, loop.trajectory, loop.certified)
        prev, win_noise = setup.place((_prepend(win.boundary, win.trajectory), win.noise))
        fx, jac = setup.place(solver.jacobian.evaluate(step, prev, win_noise, loop.iteration))
        cert = _certify(setup, loop, win, fx, jac)
        status = _decide(setup, loop, win, fx, cert)
        return _update(setup, loop, win, fx, cert, status)

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


def _window(setup: _Setup, traj, certified) -> _Window:
    """The W steps the iteration works on: from the first uncertified step (at most n - W)."""
    if setup.w == setup.n:  # static: the whole chain, no slicing
        return _Window(jnp.asarray(0, jnp.int32), setup.x0, traj, setup.noise)
    s = jnp.minimum(certified, setup.n - setup.w)
    noise = jax.tree.map(lambda a: lax.dynamic_slice_in_dim(a, s, setup.w), setup.noise)
    boundary = jnp.where(s == 0, setup.x0, traj[jnp.maximum(s - 1, 0)])
    return _Window(s, boundary, lax.dynamic_slice_in_dim(traj, s, setup.w), noise)


def _certify(setup: _Setup, loop: _Loop, win: _Window, fx, jac) -> _Certified:
    """Stage 2: extend the certified prefix, record the newly certified residuals, and restart the
    iterate past the first non-finite free step."""
    s, traj, positions = win.start, win.trajectory, setup.positions
    r = traj - fx
    scaled = scaled_residual(r, traj, setup.scale, setup.rtol, setup.atol)
    ok = scaled <= 1
    first_bad = jnp.where(jnp.all(ok), setup.w, jnp.argmin(ok)).astype(jnp.int32)
    certified = jnp.maximum(loop.certified, s + first_bad)
    new = (s + positions) >= loop.certified
    recorded = jnp.where(new, scaled, lax.dynamic_slice_in_dim(loop.scaled, s, setup.w))
    scaled_all = lax.dynamic_update_slice_in_dim(loop.scaled, recorded, s, 0)
    front_only = loop.front_only + (certified - loop.certified == 1).astype(jnp.int32)
    free = (s + positions) >= certified
    # Restart from the first free step whose residual or Jacobian is inf/NaN: the iterate is
    # replaced by its last finite state from there on. The update is causal, so this cannot
    # disturb earlier steps; it only keeps overflow in the unconverged suffix out of the scans.
    bad_jac = ~_finite_rows(jac)
    bad = (~_finite_rows(r) | bad_jac) & free
    first_nonfinite = jnp.where(jnp.any(bad), jnp.argmax(bad), setup.w).astype(jnp.int32)
    restart = positions >= first_nonfinite
    last_finite = _prepend(win.boundary, traj)[first_nonfinite]  # the boundary if the first is bad
    free = free & ~restart
    if setup.callback is not None:
        jax.debug.callback(setup.callback, loop.iteration, certified, jnp.max(jnp.where(free, scaled, 0.0)))
    return _Certified(
        certified=certified,
        scaled=scaled_all,
        front_only=front_only,
        free=free,
        trajectory=jnp.where(restart[:, None], last_finite, traj),
        residual=jnp.where(restart[:, None], 0.0, r),
        jac=jax.tree.map(lambda a: jnp.where(_rows(restart | bad_jac, a), 0.0, a), jac),
    )


def _decide(setup: _Setup, loop: _Loop, win: _Window, fx, cert: _Certified):
    """Stage 3: the status after this evaluation (_RUNNING to go on).

    The chain itself is non-finite only if f(certified predecessor), the value the front step must
    take, is: an inf/NaN iterate the solver produced further on is not the chain's. The pass after
    the last allowed update only certifies (it can still converge)."""
    converged = cert.certified >= setup.n
    front_value = fx[jnp.clip(cert.certified - win.start, 0, setup.w - 1)]
    return jnp.select(
        [
            converged,
            ~jnp.all(jnp.isfinite(front_value)),
            interrupts.requested(loop.iteration),
            loop.iteration >= setup.max_iterations,
        ],
        [Status.CONVERGED, Status.NONFINITE, Status.INTERRUPTED, Status.MAX_ITERATIONS],
        _RUNNING,
    ).astype(jnp.int32)


def _update(setup: _Setup, loop: _Loop, win: _Window, fx, cert: _Certified, status) -> _Loop:
    """Stage 4: the solver updates the free steps, then the front gets its exact value."""
    running = status == _RUNNING
    s = win.start

    def residual_fn(candidate):
        return candidate - jax.vmap(setup.step)(_prepend(win.boundary, candidate), win.noise)

    def update(_):
        new_w, new_state = setup.solver.update(
            cert.trajectory,
            cert.residual,
            cert.jac,
            loop.solver_state,
            residual_fn,
            cert.free[:, None],
            setup.linear,
        )
        front = (s + setup.positions == cert.certified)[:, None]
        return jnp.where(front, fx, new_w), new_state

    new_w, new_state = lax.cond(running, update, lambda _: (cert.trajectory, loop.solver_state), None)
    if setup.w == setup.n:
        new_traj = new_w
    else:
        new_traj = lax.dynamic_update_slice_in_dim(loop.trajectory, new_w, s, 0)
    return _Loop(
        iteration=loop.iteration + running.astype(jnp.int32),
        certified=cert.certified,
        trajectory=setup.place(jnp.where(running, new_traj, loop.trajectory)),
        solver_state=jax.tree.map(lambda a, b: jnp.where(running, a, b), new_state, loop.solver_state),
        status=status,
        scaled=cert.scaled,
        front_only=cert.front_only,
    )


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
