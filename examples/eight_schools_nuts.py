"""A hierarchical model with NUTS: eight schools through `parallel_sample` and `sequential_sample`.

The non-centred eight schools model (10 unconstrained parameters) is sampled with BlackJAX's NUTS
kernel, each chain solved whole by a parallel solver, and again step by step with the same seed.
The two runs give the same draws (the solves are exact), so the ArviZ summaries agree and the
last column, the largest difference between the draws, is at the solver tolerance.

Exact is not converged: the small default (100 warmup steps and 100 draws per chain) is too short
for this posterior, and pnmcmc says so after each run (a `ConvergenceWarning`, and the
`convergence:` block of the report: R-hat, ESS and, with so short a warmup, divergences). Use
`--full` for draws to infer from.

    python examples/eight_schools_nuts.py            # small: 2 chains x (100 warmup + 100 draws)
    python examples/eight_schools_nuts.py --full     # 4 chains x (1000 warmup + 1000 draws)
    python examples/eight_schools_nuts.py --segment 1   # DEER step by step instead of 16-step segments
"""

from __future__ import annotations

import argparse
import dataclasses
import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")  # docs/troubleshooting.md

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="4 chains x (1000 warmup + 1000 draws)")
    parser.add_argument("--steps", type=int, help="draws per chain (default 100, --full 1000)")
    parser.add_argument("--warmup", type=int, help="warmup steps per chain (default 100, --full 1000)")
    parser.add_argument("--chains", type=int, help="chains (default 2, --full 4)")
    # DEER by default: "auto" times a pilot and on a CPU usually picks Sequential, a trivial comparison.
    parser.add_argument("--solver", default="deer", help="parallel solver name or auto (default deer)")
    parser.add_argument("--segment", type=int, default=16, help="steps per parallel element (default 16)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)  # the example's choice; pnmcmc never does this

    import pnmcmc as pn

    schools = pn.models.eight_schools()
    options = dict(
        model_kwargs=schools.model_kwargs,
        kernel="nuts",
        num_chains=args.chains or (4 if args.full else 2),
        num_warmup=args.warmup or (1000 if args.full else 100),
        rng_key=args.seed,
        progress_bar=False,
    )
    steps = args.steps or (1000 if args.full else 100)
    solver = pn.sampling.sample.resolve_solver(args.solver)
    if isinstance(solver, pn.ParallelSolver):
        solver = dataclasses.replace(solver, segment=args.segment)
    par = pn.parallel_sample(schools.model, steps, solver=solver, **options)
    seq = pn.sequential_sample(schools.model, steps, **options)

    table = pn.compare(par, seq)
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.precision", 3):
        print(table)
    print()
    print(par.describe())
    diff = float(np.nanmax(table[("max |diff|", "")]))
    print(f"max |parallel - sequential| over all draws: {diff:.2e}")
    print(f"sequential: warmup {seq.warmup_time:.3g} s, sampling {seq.sampling_time:.3g} s")
    return diff


if __name__ == "__main__":
    main()
