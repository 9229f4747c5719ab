"""Parallel MALA on German credit logistic regression (D = 25): the published configuration.

Every chain x_t = MALA(x_{t-1}, xi_t) is solved whole by a parallel Newton-type solver and
compared with the same chain evaluated step by step (`lax.scan`): the iterations, the wall times
(compilation excluded) and the largest difference between the two trajectories.

    python examples/german_credit_mala.py            # small: T = 256, 2 chains (seconds)
    python examples/german_credit_mala.py --full     # published: T = 2048, 16 chains
    python examples/german_credit_mala.py --solver quasideer --chains 64 --steps 2048

Published configuration (parallel-MCMC paper): MALA step size 0.0015, T = 2048, chains started
from 0.1 N(0, I).
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="published size: T = 2048, 16 chains")
    parser.add_argument("--steps", type=int, help="chain length T (default 256, --full 2048)")
    parser.add_argument("--chains", type=int, help="chains, vmapped together (default 2, --full 16)")
    parser.add_argument("--solver", default="deer", choices=sorted(SOLVERS))
    parser.add_argument("--float32", action="store_true", help="work in float32 (default float64)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    steps = args.steps or (2048 if args.full else 256)
    chains = args.chains or (16 if args.full else 2)
    if not args.float32:
        jax.config.update("jax_enable_x64", True)  # the example's choice; pnmcmc never does this
    dtype = jnp.float32 if args.float32 else jnp.float64

    target = pn.targets.german_credit()
    kernel = pn.MALA(step_size=0.0015)
    step = functools.partial(kernel.step, target.logdensity)
    key_x0, key_noise = jax.random.split(jax.random.key(args.seed))
    x0s = (0.1 * jax.random.normal(key_x0, (chains, target.dim))).astype(dtype)
    keys = jax.random.split(key_noise, chains)
    noise = jax.vmap(lambda k: kernel.noise(k, steps, target.dim, dtype))(keys)

    def run(solver):
        return jax.jit(jax.vmap(lambda x0, xi: pn.solve(step, x0, xi, solver)))

    solver = SOLVERS[args.solver]()
    par, t_par = timed(run(solver), x0s, noise)
    seq, t_seq = timed(run(pn.Sequential()), x0s, noise)
    pn.diagnostics.report(par)  # warnings for chains that did not converge (none expected)

    prev = jnp.concatenate([x0s[:, None], par.trajectory[:, :-1]], axis=1)
    info = jax.vmap(jax.vmap(kernel.info, (None, 0, 0)), (None, 0, 0))(target.logdensity, prev, noise)
    diff = float(jnp.max(jnp.abs(par.trajectory - seq.trajectory)))
    print(f"German credit, MALA step 0.0015: {chains} chains x {steps} steps, {dtype.__name__}")
    print(f"solver {type(solver).__name__}: {par.describe()}")
    print(f"Newton iterations per chain: {np.asarray(par.num_iterations).tolist()}")
    acceptance = np.asarray(info.accepted.mean(axis=1))
    print(f"acceptance rate per chain: {np.array2string(acceptance, precision=3)}")
    print(f"time (compilation excluded): parallel {t_par:.3g} s, sequential {t_seq:.3g} s")
    print(f"max |parallel - sequential| = {diff:.2e}")
    return diff


if __name__ == "__main__":
    main()
