"""`pnmcmc.solve`: evaluate a deterministic recurrence x_t = step(x_{t-1}, xi_t) with a solver.

With `devices=`, the time axis of the solve is split across devices (`pnmcmc.engine.sharding`).

Called at the Python edge (not inside `jax.jit`/`jax.vmap`), a solve is compiled ahead of time,
checked against the device's memory before it runs (`pnmcmc.engine.memory`), run so that Ctrl-C stops it
within an iteration (`pnmcmc.engine.interrupts`), and reported: a solve that did not converge, reached
inf/NaN, or made no progress beyond the exactness front warns. Inside a traced function it is the
plain computation, and `Solution.status` / `Solution.front_limited` carry the same information.
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp

from . import interrupts, iterate, memory
from .reporting import FrontLimitedWarning, find_stack_level, report, solver_name
from .segments import segmented_solve
from .sharding import TimeSplit, as_mesh
from .solution import Solution, scaled_residual
from .solvers import DEER, ParallelSolver, Sequential, resolve_tolerances

__all__ = ["certificate", "solve"]


def solve(
    step, x0, noise, solver=None, *, init=None, callback=None, memory_budget=None, devices=None
) -> Solution:
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
    - `solver`: a solver object ([`DEER`][pnmcmc.DEER] by default; see `pnmcmc.engine.solvers`).
    - `init`: an initial guess for the trajectory, shape (T, D); `x0` repeated by default.
    - `callback`: an optional function `callback(iteration, certified_steps, residual)` called
      after each parallel iteration's residual evaluation (from inside the compiled loop, through
      `jax.debug.callback`; once per chain under `vmap`), e.g. to drive a progress bar. `residual`
      is the largest scaled residual of the steps not yet certified. It cannot change the result.
    - `memory_budget`: bytes the solve may use; `None` is the device's free memory. A program
      that XLA says needs more raises [`InsufficientMemoryError`][pnmcmc.InsufficientMemoryError]
      before it runs, naming settings that fit. With `devices`, the budget is per device.
    - `devices`: `None` (the default device, as `jax.jit` places it), or a list of devices or a 1-D
      `jax.sharding.Mesh` to split the time axis across: each device holds and evaluates about
      T / n of the steps and their Jacobians, and the linear scans exchange one composed map per
      device (`pnmcmc.engine.sharding`). The result equals the one-device result up to the scans'
      round-off, well within the solver's tolerance. Several hosts: the devices of every process
      after `jax.distributed.initialize` (see the scaling guide).

    **Returns:** a [`Solution`][pnmcmc.Solution]: the trajectory `x_1..x_T` (always the exact
    chain: what a parallel iteration leaves unconverged is finished sequentially), the status,
    iterations, certificate and number of sequentially computed steps. Called outside `jit`, a
    solve that did not converge raises a `NotConvergedWarning` (or `NonFiniteChainWarning`), and
    one whose iterations did no better than the exactness front (`Solution.front_limited`) an
    `ExpandingDynamicsWarning` when the chain's Lyapunov exponent is not clearly negative, else a
    `FrontLimitedWarning`. Ctrl-C stops it within about one iteration (`KeyboardInterrupt`).

    Works under `jax.jit` and `jax.vmap` (e.g. over a batch of chains); there nothing is checked
    or reported beyond what `Solution` holds.
    """
    solver = DEER() if solver is None else solver
    x0, noise, init = _check(step, x0, noise, solver, init)
    split = None if devices is None else TimeSplit(as_mesh(devices))
    if _traced(x0, noise, init):
        return _solve(step, solver, callback, x0, noise, init, split=split)
    solution = run(step, x0, noise, solver, init, callback, memory_budget, split)
    report(solution)
    if bool(solution.front_limited) and bool(solution.converged):
        _warn_front_limited(step, x0, noise, solution, solver)
    return solution


def run(step, x0, noise, solver, init=None, callback=None, memory_budget=None, split=None) -> Solution:
    """`solve` without its reports, for callers that judge the solution themselves (the pilot
    solves of `solver="auto"`): compiled ahead of time, memory-checked, interruptible. `split`: a
    [`TimeSplit`][pnmcmc.engine.sharding.TimeSplit] to spread the time axis over devices."""
    if init is None:
        x0, noise, init = _check(step, x0, noise, solver, init)
    devices = None
    if split is not None:
        x0, noise, init = split.put((x0, noise, init))
        devices = list(split.mesh.devices.flat)
    compiled = _solve.lower(step, solver, callback, x0, noise, init, split=split).compile()
    n, d = init.shape
    on = "" if split is None else f", split over {split.devices} devices"
    memory.check_fits(
        compiled,
        budget=memory_budget,
        what=f"solve with {solver_name(solver)} (T = {n}, D = {d}, {x0.dtype}{on})",
        advice=lambda need, have: memory.advice(solver, n, d, x0.dtype, have),
        devices=devices,
    )
    with interrupts.listening():
        return jax.block_until_ready(compiled(x0, noise, init))


def certificate(step, x0, noise, solution: Solution, solver=None) -> jax.Array:
    """Recompute a solution's certificate from scratch: `max_t rho_t` (see `pnmcmc.engine.solution`).

    Evaluates every step of `solution.trajectory` once (vmapped) with `solver`'s tolerances
    (`DEER()`'s defaults if None) and the solution's `scale`, independently of the solver's own
    bookkeeping; for a CONVERGED or MAX_ITERATIONS solve the result is at most 1 (0 inside
    segments and for the sequentially finished suffix, which are the step function's own output).
    """
    solver = DEER() if solver is None else solver
    traj = jnp.asarray(solution.trajectory)
    rtol, atol = resolve_tolerances(solver, traj.dtype)
    prev = jnp.concatenate([jnp.asarray(x0, traj.dtype)[None], traj[:-1]])
    r = traj - jax.vmap(step)(prev, noise)
    return jnp.max(scaled_residual(r, traj, solution.scale, rtol, atol))


def _traced(*trees) -> bool:
    return any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves(trees))


@functools.partial(jax.jit, static_argnums=(0, 1, 2), static_argnames=("split",))
def _solve(step, solver, callback, x0, noise, init, split=None):
    if isinstance(solver, Sequential):
        return iterate.sequential(step, x0, noise, solver)
    if split is None:
        chain = iterate.parallel
    else:
        chain = functools.partial(iterate.parallel, split=split)
    if solver.segment > 1:
        solution = segmented_solve(chain, step, x0, noise, solver, init, callback)
    else:
        solution = chain(step, x0, noise, solver, init, callback)
    return solution if split is None else split.deliver(solution)


def _warn_front_limited(step, x0, noise, solution, solver):
    """Say why a converged solve was front-limited: the chain expands, or the solver is wrong for it.

    The Lyapunov exponent costs a few sequential passes of tangents: little next to a front-limited
    solve, which evaluated the whole chain about T/2 (or T/2m) times.
    """
    from ..analysis.lyapunov import ExpandingDynamicsWarning, lyapunov_exponent

    n = int(solution.trajectory.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimate = lyapunov_exponent(
            step, solution.trajectory, noise, x0=x0, method="benettin", num_blocks=max(2, min(16, n // 8))
        )
    lam, se = float(estimate.exponent), float(estimate.stderr)
    head = (
        f"{solver_name(solver)} took {int(solution.num_iterations)} iterations for T = {n} steps and "
        "certified most of the chain one element per iteration, the exactness front's pace: sequential "
        "work at parallel cost (the trajectory is still the exact chain)."
    )
    if not lam + 2 * se < 0:
        warnings.warn(
            f"{head} The chain is not contracting: its largest Lyapunov exponent is {lam:.3g} +- {se:.2g} "
            "per step, so no parallel solver can converge quickly. Use pnmcmc.Sequential(); a smaller step "
            "size or a better-conditioned parameterisation makes an MCMC chain contract.",
            ExpandingDynamicsWarning,
            stacklevel=find_stack_level(),
        )
        return
    better = (
        "the full Jacobian (DEER) where it is diagonal or probed"
        if getattr(solver, "linearises", False)
        else "a Newton-type solver (DEER, QuasiDEER)"
    )
    warnings.warn(
        f"{head} The chain contracts (largest Lyapunov exponent {lam:.3g} +- {se:.2g} per step), so the "
        f"solver is what fails: try {better}, a longer segment (segment=m contracts each element by "
        "about exp(m * exponent)), or pnmcmc.Sequential().",
        FrontLimitedWarning,
        stacklevel=find_stack_level(),
    )


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
