r"""The one iteration loop shared by every parallel solver.

Each iteration works on a window of W consecutive steps $[s, s + W)$ ($W = T$ unless the solver
has a `window`), with the state just left of the window as its fixed boundary:

1. evaluate $f$ and the solver's Jacobian information at all shifted states of the window (one
   vmapped pass) and form the residuals $r_t = x_t - f(x_{t-1}, \xi_t)$;
2. certify: the steps whose scaled residual $\max_d |r_{t,d}| / (atol + rtol |x_{t,d}|)$ is at
   most 1, up to the first one that is not, join the *certified prefix*. Certified steps are frozen
   from then on, so their recorded residuals remain a valid certificate without re-evaluation;
3. stop if every step is certified (CONVERGED), the first uncertified step is inf/NaN although
   its predecessor is certified (the chain itself is non-finite: NONFINITE), or the iteration
   budget is spent (MAX_ITERATIONS). Inf/NaN further out only *restarts* the iterate there from
   its last finite state: the update is causal, so overflow in an unconverged suffix says nothing
   about the chain;
4. otherwise let the solver update the free steps of the window (the update rule is the only
   thing a solver defines), then set the first free step to $f$ of its certified predecessor,
   which step 1 has already computed, and slide the window to the first uncertified step.

The last part of step 4 is the *exactness front* made explicit: the first free step follows a
certified state, so its exact value is known. Undamped methods compute it anyway (their correction
there is $-r_t$); setting it directly gives it the very bits of the sequential chain, and it makes
damped (trust-region) solvers advance the certified prefix by at least one step per iteration too.
Every solver therefore converges in at most T iterations, which is the default cap.

When the loop ends without convergence (iteration cap or a non-finite chain), the uncertified
suffix is computed sequentially from the last certified state, so the returned trajectory is always
the chain; `Solution.sequential_steps` says how much that took.

The check in step 2 uses the residual that step 1 needs anyway, so stopping costs no extra
evaluation; the price is that the last iteration's Jacobian is computed and not used.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from .solution import Solution, Status
from .solvers import ParallelSolver, Sequential, resolve_tolerances

_RUNNING = -1


def _prepend(x0, traj):
    return jnp.concatenate([x0[None, :], traj[:-1]], axis=0)


def _scaled(r, x, rtol, atol):
    """Per-step scaled residual; NaN stays NaN so that it can never pass `<= 1`."""
    return jnp.max(jnp.abs(r) / (atol + rtol * jnp.abs(x)), axis=-1)


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
    """Overwrite `traj[start:]` with the sequential chain continued from `traj[start - 1]`."""
    n = traj.shape[0]

    def body(carry):
        t, traj = carry
        prev = jnp.where(t == 0, x0, traj[jnp.maximum(t - 1, 0)])
        return t + 1, traj.at[t].set(step(prev, _index(noise, t)))

    return lax.while_loop(lambda c: c[0] < n, body, (start, traj))[1]


def sequential(step, x0, noise, solver: Sequential) -> Solution:
    """The chain by `lax.scan`; certificate 0 by construction (NaN if the chain is non-finite)."""

    def body(x, xi):
        y = step(x, xi)
        return y, y

    _, traj = lax.scan(body, x0, noise)
    n = traj.shape[0]
    finite = jnp.all(jnp.isfinite(traj))
    return Solution(
        trajectory=traj,
        status=jnp.where(finite, Status.CONVERGED, Status.NONFINITE).astype(jnp.int32),
        num_iterations=jnp.asarray(0, jnp.int32),
        residual=jnp.where(finite, 0.0, jnp.nan).astype(traj.dtype),
        sequential_steps=jnp.asarray(n, jnp.int32),
    )


def parallel(step, x0, noise, solver: ParallelSolver, init, callback=None) -> Solution:
    """Solve the chain with `solver`; see the module docstring for the loop."""
    n, dtype = init.shape[0], init.dtype
    rtol, atol = resolve_tolerances(solver, dtype)
    w = n if solver.window is None else min(solver.window, n)
    max_iterations = n if solver.max_iterations is None else solver.max_iterations
    jacobian = solver.jacobian
    positions = jnp.arange(w, dtype=jnp.int32)

    def window(traj, s):
        if w == n:  # static: the whole chain, no slicing
            return x0, traj, noise
        noise_w = jax.tree.map(lambda a: lax.dynamic_slice_in_dim(a, s, w), noise)
        boundary = jnp.where(s == 0, x0, traj[jnp.maximum(s - 1, 0)])
        return boundary, lax.dynamic_slice_in_dim(traj, s, w), noise_w

    def body(carry):
        k, start, traj, state, _, certs = carry
        s = jnp.minimum(start, n - w)
        boundary, traj_w, noise_w = window(traj, s)
        fx, jac = jacobian.evaluate(step, _prepend(boundary, traj_w), noise_w, k)
        r = traj_w - fx
        scaled = _scaled(r, traj_w, rtol, atol)
        ok = scaled <= 1
        first_bad = jnp.where(jnp.all(ok), w, jnp.argmin(ok)).astype(jnp.int32)
        new_start = jnp.maximum(start, s + first_bad)
        in_front = (s + positions) >= start  # record only what was not certified before
        certs = lax.dynamic_update_slice_in_dim(
            certs, jnp.where(in_front, scaled, lax.dynamic_slice_in_dim(certs, s, w)), s, 0
        )
        converged = new_start >= n
        free = (s + positions) >= new_start
        # Restart: from the first step whose residual or Jacobian is inf/NaN, the iterate is replaced
        # by its last finite state. The Newton update is causal, so this cannot disturb earlier
        # steps; it only keeps overflow in an unconverged suffix from poisoning the scans. If that
        # step is the first free one, its predecessor is certified: the chain itself is non-finite.
        # The chain itself is non-finite only if f(certified predecessor), the value the front step
        # must take, is: an inf/NaN iterate the solver produced further on is not the chain's.
        bad_jac = ~_finite_rows(jac)
        bad = (~_finite_rows(r) | bad_jac) & free
        first_nonfinite = jnp.where(jnp.any(bad), jnp.argmax(bad), w).astype(jnp.int32)
        front_value = fx[jnp.clip(new_start - s, 0, w - 1)]
        nonfinite_chain = ~converged & ~jnp.all(jnp.isfinite(front_value))
        restart = positions >= first_nonfinite
        last_finite = _prepend(boundary, traj_w)[first_nonfinite]  # the boundary if the first is bad
        traj_w = jnp.where(restart[:, None], last_finite, traj_w)
        r = jnp.where(restart[:, None], 0.0, r)
        jac = jax.tree.map(lambda a: jnp.where(_rows(restart | bad_jac, a), 0.0, a), jac)
        free = free & ~restart
        # The pass after the last allowed update only certifies (it can still converge).
        budget = k < max_iterations
        if callback is not None:
            jax.debug.callback(callback, k, new_start, jnp.max(jnp.where(free, scaled, 0.0)))

        def residual_fn(candidate):
            return candidate - jax.vmap(step)(_prepend(boundary, candidate), noise_w)

        def do_update(_):
            new_w, new_state = solver.update(traj_w, r, jac, state, residual_fn, free[:, None])
            front = (s + positions == new_start)[:, None]
            return jnp.where(front, fx, new_w), new_state

        def skip(_):
            return traj_w, state

        new_w, new_state = lax.cond(converged | nonfinite_chain | ~budget, skip, do_update, None)
        status = jnp.select(
            [converged, nonfinite_chain, ~budget],
            [Status.CONVERGED, Status.NONFINITE, Status.MAX_ITERATIONS],
            _RUNNING,
        ).astype(jnp.int32)
        running = status == _RUNNING
        if w == n:
            new_traj = new_w
        else:
            new_traj = lax.dynamic_update_slice_in_dim(traj, new_w, s, 0)
        traj = jnp.where(running, new_traj, traj)
        state = jax.tree.map(lambda a, b: jnp.where(running, a, b), new_state, state)
        return k + running.astype(jnp.int32), new_start, traj, state, status, certs

    def cond(carry):
        return carry[4] == _RUNNING

    carry = (
        jnp.asarray(0, jnp.int32),
        jnp.asarray(0, jnp.int32),
        init,
        solver.init_state(dtype),
        jnp.asarray(_RUNNING, jnp.int32),
        jnp.full((n,), jnp.inf, dtype),
    )
    k, start, traj, _, status, certs = lax.while_loop(cond, body, carry)

    # The certified prefix [0, start) is frozen and certified; the rest is computed sequentially,
    # so each of its states is the step of the previous one (residual 0 by construction).
    traj = lax.cond(
        start < n,
        lambda t: finish_sequentially(step, x0, noise, t, start),
        lambda t: t,
        traj,
    )
    certified = jnp.arange(n) < start
    certificate = jnp.max(jnp.where(certified, certs, 0.0))
    finite = jnp.all(jnp.isfinite(traj))
    return Solution(
        trajectory=traj,
        status=jnp.where(finite, status, Status.NONFINITE).astype(jnp.int32),
        num_iterations=k,
        residual=jnp.where(finite, certificate, jnp.nan).astype(dtype),
        sequential_steps=(n - start).astype(jnp.int32),
    )
