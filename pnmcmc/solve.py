"""`pnmcmc.solve`: evaluate a deterministic recurrence x_t = step(x_{t-1}, xi_t) with a solver."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from . import iterate
from .diagnostics import report
from .segments import segmented_solve
from .solution import Solution
from .solvers import DEER, ParallelSolver, Sequential

__all__ = ["solve"]


def solve(step, x0, noise, solver=None, *, init=None, callback=None) -> Solution:
    """Solve `x_t = step(x_{t-1}, noise_t)`, t = 1..T, for the whole trajectory at once.

    **Arguments:**

    - `step`: a function `(x, xi) -> x` mapping a flat float vector of shape (D,) and one step's
      noise (a pytree slice) to the next state, of the same shape and dtype. Must be
      deterministic and JAX-traceable. Reuse the same function object across calls to reuse
      the compiled program.
    - `x0`: the initial state, shape (D,); its dtype (float32 or float64) is the working dtype.
    - `noise`: a pytree whose leaves all have leading axis T (one slice per step), e.g. an
      array (T, k) or a (T,) array of PRNG keys. For a recurrence without randomness pass
      `jnp.zeros((T, 0))`.
    - `solver`: a solver object ([`DEER`][pnmcmc.DEER] by default; see `pnmcmc.solvers`).
    - `init`: an initial guess for the trajectory, shape (T, D); `x0` repeated by default.
    - `callback`: an optional function `callback(iteration, certified_steps, residual)` called
      after each parallel iteration's residual evaluation (from inside the compiled loop, through
      `jax.debug.callback`; once per chain under `vmap`), e.g. to drive a progress bar. `residual`
      is the largest scaled residual of the steps not yet certified. It cannot change the result.

    **Returns:** a [`Solution`][pnmcmc.Solution]: the trajectory `x_1..x_T` (always the exact
    chain: what a parallel iteration leaves unconverged is finished sequentially), the status,
    iterations, certificate and number of sequentially computed steps. Called outside `jit`, a
    solve that did not converge also raises a `NotConvergedWarning` (or `NonFiniteChainWarning`).

    Works under `jax.jit` and `jax.vmap` (e.g. over a batch of chains).
    """
    solver = DEER() if solver is None else solver
    x0, noise, init = _check(step, x0, noise, solver, init)
    solution = _solve(step, solver, callback, x0, noise, init)
    if not isinstance(solution.status, jax.core.Tracer):
        report(solution, stacklevel=2)
    return solution


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _solve(step, solver, callback, x0, noise, init):
    if isinstance(solver, Sequential):
        return iterate.sequential(step, x0, noise, solver)
    if solver.segment > 1:
        return segmented_solve(iterate.parallel, step, x0, noise, solver, init, callback)
    return iterate.parallel(step, x0, noise, solver, init, callback)


def _check(step, x0, noise, solver, init):
    """Validate the problem at trace time, with messages that say what to do."""
    if not callable(step):
        raise TypeError(f"step must be a function (x, xi) -> x, got {type(step).__name__}.")
    if not isinstance(solver, (Sequential, ParallelSolver)):
        raise TypeError(
            f"solver must be a pnmcmc solver object such as pnmcmc.DEER() or pnmcmc.Sequential(), "
            f"got {solver!r}."
        )
    x0 = jnp.asarray(x0)
    if x0.ndim != 1 or x0.shape[0] < 1:
        raise ValueError(
            f"x0 must be a flat vector of shape (D,) with D >= 1, got shape {x0.shape}; "
            "flatten a pytree state with jax.flatten_util.ravel_pytree."
        )
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        raise TypeError(f"x0 must be a floating-point array (float32 or float64), got {x0.dtype}.")
    leaves = jax.tree.leaves(noise)
    if not leaves:
        raise ValueError(
            "noise must contain at least one array with leading axis T (the number of steps); "
            "for a recurrence without randomness pass jnp.zeros((T, 0))."
        )
    lengths = {jnp.shape(leaf)[0] if jnp.ndim(leaf) else None for leaf in leaves}
    if None in lengths or len(lengths) != 1:
        raise ValueError(
            "every leaf of noise must have the same leading axis T (one slice per step); got "
            f"shapes {[jnp.shape(leaf) for leaf in leaves]}."
        )
    (n,) = lengths
    if n < 1:
        raise ValueError("noise has T = 0 steps; a chain needs at least one step (T >= 1).")
    noise_step = jax.tree.map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a)[1:], a.dtype), noise)
    out = jax.eval_shape(step, jax.ShapeDtypeStruct(x0.shape, x0.dtype), noise_step)
    if not hasattr(out, "shape") or out.shape != x0.shape or out.dtype != x0.dtype:
        got = f"{out.shape} {out.dtype}" if hasattr(out, "shape") else type(out).__name__
        raise ValueError(
            f"step(x, xi) must return an array like x0 ({x0.shape} {x0.dtype}), got {got}. "
            "If the dtypes differ, make the noise and any constants inside step match x0's dtype."
        )
    if init is None:
        init = jnp.broadcast_to(x0, (n, x0.shape[0]))
    else:
        init = jnp.asarray(init)
        if init.shape != (n, x0.shape[0]) or init.dtype != x0.dtype:
            raise ValueError(
                f"init must have shape (T, D) = {(n, x0.shape[0])} and dtype {x0.dtype}, "
                f"got {init.shape} {init.dtype}."
            )
    return x0, noise, init
