"""What the three published-configuration examples share: one chain solved in parallel and step by step.

Each example names its target, kernel, starting scale and sizes, and calls `run`, which parses the
command line (`--full`, `--steps`, `--chains`, `--solver`, `--segment`, `--float32`, `--seed`),
solves every chain with the chosen parallel solver and with `lax.scan` (`pnmcmc.Sequential`), and
prints the iterations, acceptance, wall times (compilation excluded) and the largest difference.
"""

from __future__ import annotations

import argparse
import functools
import os
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")  # docs/troubleshooting.md

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import pnmcmc as pn  # noqa: E402

SOLVERS = {
    "deer": pn.DEER,
    "quasideer": pn.QuasiDEER,
    "elk": pn.ELK,
    "quasielk": pn.QuasiELK,
    "jacobi": pn.Jacobi,
}


def timed(fn, *args):
    """(result, seconds) of a second call: the first one compiles."""
    jax.block_until_ready(fn(*args))
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - start


def run(doc, *, title, make_target, make_kernel, init_scale, small, full, show_moments=False, argv=None):
    """Run one example; `small` and `full` are `(steps, chains)`. Returns max |parallel - sequential|."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(
        "--full", action="store_true", help=f"published size: T = {full[0]}, {full[1]} chains"
    )
    parser.add_argument("--steps", type=int, help=f"chain length T (default {small[0]}, --full {full[0]})")
    parser.add_argument("--chains", type=int, help=f"chains, vmapped together (default {small[1]})")
    parser.add_argument("--solver", default="deer", choices=sorted(SOLVERS))
    parser.add_argument(
        "--segment", type=int, default=16, help="steps per parallel element (pnmcmc.engine.segments; 1: none)"
    )
    parser.add_argument("--float32", action="store_true", help="work in float32 (default float64)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    steps = args.steps or (full if args.full else small)[0]
    chains = args.chains or (full if args.full else small)[1]
    if not args.float32:
        jax.config.update("jax_enable_x64", True)  # the example's choice; pnmcmc never does this
    dtype = jnp.float32 if args.float32 else jnp.float64

    target, kernel = make_target(), make_kernel()
    step = functools.partial(kernel.step, target.logdensity)
    key_x0, key_noise = jax.random.split(jax.random.key(args.seed))
    x0s = (init_scale * jax.random.normal(key_x0, (chains, target.dim))).astype(dtype)
    keys = jax.random.split(key_noise, chains)
    noise = jax.vmap(lambda k: kernel.noise(k, steps, target.dim, dtype))(keys)

    def solve_all(solver):
        return jax.jit(jax.vmap(lambda x0, xi: pn.solve(step, x0, xi, solver)))

    solver = SOLVERS[args.solver](segment=args.segment)
    par, t_par = timed(solve_all(solver), x0s, noise)
    seq, t_seq = timed(solve_all(pn.Sequential()), x0s, noise)
    pn.engine.reporting.report(par)  # warnings for chains that did not converge (none expected)

    prev = jnp.concatenate([x0s[:, None], par.trajectory[:, :-1]], axis=1)
    info = jax.vmap(jax.vmap(kernel.info, (None, 0, 0)), (None, 0, 0))(target.logdensity, prev, noise)
    diff = float(jnp.max(jnp.abs(par.trajectory - seq.trajectory)))
    print(f"{title}: {chains} chains x {steps} steps, {dtype.__name__}")
    print(f"solver {solver.name}: {par.describe()}")
    print(f"Newton iterations per chain: {np.asarray(par.num_iterations).tolist()}")
    acceptance = np.asarray(info.accepted.mean(axis=1))
    print(f"acceptance rate per chain: {np.array2string(acceptance, precision=3)}")
    print(f"time (compilation excluded): parallel {t_par:.3g} s, sequential {t_seq:.3g} s")
    print(f"max |parallel - sequential| = {diff:.2e}")
    if show_moments:
        draws = np.asarray(par.trajectory).reshape(-1, target.dim)
        mean, std, exact = (
            np.array2string(a, precision=2) for a in (draws.mean(0), draws.std(0), target.std)
        )
        print(f"mean {mean} (exact 0), std {std} (exact {exact})")
    # What the example claims, checked: the parallel chains are certified and equal the sequential
    # ones (to the solver's tolerance in float64; float32 chains may part at a flipped decision).
    if not bool(jnp.all(par.exact)):
        raise SystemExit(f"the parallel solve is not certified: {par.describe()}")
    if not args.float32 and diff > 1e-8:
        raise SystemExit(f"parallel and sequential chains differ by {diff:.2e} in float64 (expected <= 1e-8)")
    return diff
