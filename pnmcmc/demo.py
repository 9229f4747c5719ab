"""`python -m pnmcmc`: eight schools sampled by `parallel_sample` and by its sequential twin.

Both runs use the same seed, so they produce the same draws (to many digits on the chains that
`SampleResult.twins` names digit twins); the demo prints the two ArviZ summaries side by side, the
largest difference between the draws, each chain's twin verdict, the Newton iterations and the
largest Lyapunov exponent of each chain, and the two wall times (compilation excluded).
Options: `--steps`, `--warmup`, `--chains`, `--kernel`, `--solver`, `--segment`, `--seed`,
`--float32`.

The defaults (MALA rather than `parallel_sample`'s NUTS, dense Newton `DEER` on 16-step segments)
show the parallel solve at its best: the adapted MALA chain contracts, so Newton converges in a few
dozen iterations (`--segment 1`: step by step, several hundred); `--kernel nuts` runs the default
kernel. `--solver auto` lets a measured pilot
choose instead (on a CPU it usually picks Sequential, which is faster there); `--kernel hmc`
gives a chain with a positive Lyapunov exponent on this posterior, where parallel iterations
approach T (the draws are exact either way).

The demo ends with the convergence checks of the draws (`pnmcmc.sampling.convergence`), printed once for
both twins. Exact is not converged: MALA does not mix well on this funnel-shaped posterior, and
with the defaults the checks fail (divergences, a low tail ESS for `tau`) and say what to try;
`--kernel nuts` mixes far better (with seed 0, only 2 divergent transitions of 4000 remain).
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings

import jax
import numpy as np

__all__ = ["main"]

KERNELS = ("mala", "hmc", "nuts")


def _count(smallest: int):
    """An argparse type: an integer of at least `smallest`, else a usage error naming the option."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < smallest:
            raise argparse.ArgumentTypeError(f"must be at least {smallest}, got {value}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse


def main(argv=None) -> None:
    """Run the demo (see the module docstring); `argv` defaults to the command line."""
    parser = argparse.ArgumentParser(prog="python -m pnmcmc", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=_count(1), default=1000, help="draws per chain (default 1000)")
    parser.add_argument("--warmup", type=_count(0), default=500, help="warmup steps per chain (default 500)")
    parser.add_argument("--chains", type=_count(1), default=4, help="number of chains (default 4)")
    parser.add_argument(
        "--kernel",
        type=str.lower,
        choices=KERNELS,
        default="mala",
        help="mala, hmc or nuts (default mala; parallel_sample's default is nuts)",
    )
    parser.add_argument("--solver", default="deer", help="deer, quasideer, ..., or auto (default deer)")
    parser.add_argument(
        "--segment",
        type=_count(1),
        default=16,
        help="steps per parallel element of a named solver (default 16)",
    )
    parser.add_argument("--seed", type=_count(0), default=0)
    parser.add_argument("--float32", action="store_true", help="work in float32 (default float64)")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    args = parser.parse_args(argv)
    if not args.float32:
        jax.config.update("jax_enable_x64", True)  # the demo's choice; the library never does this

    import pandas as pd

    import pnmcmc
    from pnmcmc.models import eight_schools
    from pnmcmc.sampling.compare import compare
    from pnmcmc.sampling.results import _solver_name
    from pnmcmc.sampling.sample import parallel_sample, resolve_solver, sequential_sample

    try:
        solver = resolve_solver(args.solver)
    except ValueError as error:
        parser.error(f"argument --solver: {error}")  # a usage error (exit status 2), not a traceback
    if isinstance(solver, pnmcmc.ParallelSolver):
        solver = dataclasses.replace(solver, segment=args.segment)

    schools = eight_schools()
    options = dict(
        model_kwargs=schools.model_kwargs,
        kernel=args.kernel,
        num_chains=args.chains,
        num_warmup=args.warmup,
        rng_key=args.seed,
        progress_bar=args.progress,
    )
    print(
        f"pnmcmc {pnmcmc.__version__} on {jax.devices()[0].device_kind}: eight schools (non-centred), "
        f"{args.kernel.upper()}, {args.chains} chains x ({args.warmup} warmup + {args.steps}) steps, "
        f"{'float32' if args.float32 else 'float64'}\n"
    )
    with warnings.catch_warnings():
        # Not hidden: the twins share their draws, so their verdict is printed once, below.
        warnings.simplefilter("ignore", pnmcmc.ConvergenceWarning)
        par = parallel_sample(schools.model, args.steps, solver=solver, **options)
        seq = sequential_sample(schools.model, args.steps, **options)
    table = compare(par, seq)
    with pd.option_context("display.precision", 3):
        print(table)  # whole: compare's table ignores the display limits
    stats = par.sample_stats
    largest = float(np.nanmax(table[("max |diff|", "")]))
    name = _solver_name(par.solver)
    print(
        f"\nlargest |parallel - sequential| over all draws: {largest:.2e}\n"
        f"solver: {name} ({par.solver_reason})\n"
        f"Newton iterations per chain: sampling {np.asarray(stats['num_iterations']).tolist()}, "
        f"warmup {np.asarray(stats['warmup_iterations']).tolist()} over {par.warmup.num_windows} windows\n"
        f"largest Lyapunov exponent per chain: {np.array2string(np.asarray(stats['lle']), precision=4)}\n"
        f"twins:\n{par.twins.describe()}\n"
        f"wall time (compilation excluded)   warmup    sampling\n"
        f"  {f'parallel ({name})':<31}{par.warmup_time:8.3f} s {par.sampling_time:8.3f} s\n"
        f"  sequential (lax.scan)          {seq.warmup_time:8.3f} s {seq.sampling_time:8.3f} s\n"
        f"compilation: parallel {par.timings['compile']:.1f} s, sequential {seq.timings['compile']:.1f} s. "
        "On a CPU the parallel solve is usually the slower one; it pays on a GPU."
    )
    if par.solver_choice is not None:
        print(f"\nsolver='auto' pilot:\n{par.solver_choice.describe()}")
    print(f"\n{par.convergence.describe()}")


if __name__ == "__main__":
    main()
