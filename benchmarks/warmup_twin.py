"""How close the parallel warmup is to its sequential twin, against what round-off alone does.

`parallel_sample` and `sequential_sample` adapt the kernel on the same noise; every parallel window
solve satisfies each step to its tolerance, and the adaptation (dual averaging, acceptance-curve
searches, mass-matrix estimates) then feeds each window's draws into the next window's parameters.
How far apart can the two warmups end up? The yardstick is the sequential warmup itself with each
window's start moved by **one ulp** (x0 * (1 + 2^-52), an internal hook): no parallel method can be
expected to agree with `lax.scan` better than `lax.scan` agrees with itself under round-off.

For each posterior and kernel, 2 chains x (150 warmup + 300 draws), seed 0 (the exactness rows of
`posteriordb.py`), against `sequential_sample`: the largest relative difference of the adapted step
size and inverse mass matrix and the largest |difference| of the draws, for

- `parallel`: `parallel_sample(solver=DEER(max_iterations=64))` (warmup windows at their default,
  64-ulp tolerance; `pnmcmc.sampling.warmup.warmup_solver`);
- `parallel, tol 1e-11`: the same with the sampling solver's float64 tolerance forced on the
  warmup windows too (what the warmup used before);
- `sequential + 1 ulp`: the yardstick above.

Usage: `python benchmarks/warmup_twin.py [--kernels hmc,mala] [--models a,b] [--out STEM] [--append]`.
"""

from __future__ import annotations

import os
import pathlib
import warnings

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)  # the benchmark's choice; the library never does this

import _tables  # noqa: E402
import numpy as np  # noqa: E402
from _tables import load, save  # noqa: E402
from numpyro.infer import init_to_median, init_to_uniform  # noqa: E402

import pnmcmc.sampling.warmup  # noqa: E402
from pnmcmc import DEER  # noqa: E402
from pnmcmc.models import POSTERIORDB_NAMES, posteriordb  # noqa: E402
from pnmcmc.sampling.chains import chain_runner  # noqa: E402
from pnmcmc.sampling.sample import parallel_sample, sequential_sample  # noqa: E402

WARMUP, STEPS, CHAINS, ULP = 150, 300, 2, 2.0**-52
INIT = {"arma-arma11": init_to_median}


def _one_ulp_runner(logdensity, solver, callback=None):
    """`chain_runner` with every window's start moved by one ulp (relative)."""
    run = chain_runner(logdensity, solver, callback)
    return lambda kernels, x0s, noise: run(kernels, x0s * (1 + ULP), noise)


def _differences(res, ref):
    def rel(a, b):
        return float(np.max(np.abs(np.asarray(a) / np.asarray(b) - 1)))

    return {
        "step size": rel(res.warmup.step_size, ref.warmup.step_size),
        "inverse mass matrix": rel(res.warmup.inverse_mass_matrix, ref.warmup.inverse_mass_matrix),
        "draws": float(np.max(np.abs(np.asarray(res.positions) - np.asarray(ref.positions)))),
    }


def run(name, kernel):
    post = posteriordb(name)
    options = dict(
        model_args=post.model_args,
        model_kwargs=post.model_kwargs,
        kernel=kernel,
        num_warmup=WARMUP,
        num_chains=CHAINS,
        rng_key=0,
        init_strategy=INIT.get(name, init_to_uniform),
        progress_bar=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # expanding chains warn; this table is about the warmup
        seq = sequential_sample(post.model, STEPS, **options)
        par = parallel_sample(post.model, STEPS, solver=DEER(max_iterations=64), **options)
        loose_solver = DEER(max_iterations=64, rtol=1e-11, atol=1e-11)
        loose = parallel_sample(post.model, STEPS, solver=loose_solver, **options)
        pnmcmc.sampling.warmup.chain_runner = _one_ulp_runner
        try:
            ulp = sequential_sample(post.model, STEPS, **options)
        finally:
            pnmcmc.sampling.warmup.chain_runner = chain_runner
    return {
        "posterior": name,
        "kernel": kernel,
        "parallel": _differences(par, seq),
        "parallel, tol 1e-11": _differences(loose, seq),
        "sequential + 1 ulp": _differences(ulp, seq),
        "warmup iterations": np.asarray(par.warmup.num_iterations).tolist(),
        "warmup iterations, tol 1e-11": np.asarray(loose.warmup.num_iterations).tolist(),
        "sampling LLE": np.asarray(par.sample_stats["lle"]).astype(float).round(3).tolist(),
    }


HEADER = (
    "| posterior | kernel | step size: parallel / tol 1e-11 / seq + 1 ulp | inverse mass matrix: "
    "parallel / tol 1e-11 / seq + 1 ulp | draws: parallel / tol 1e-11 / seq + 1 ulp | "
    "warmup iterations (tol 1e-11) | sampling LLE |\n|---|---|---|---|---|---|---|"
)


def _md_row(r):
    cols = ("parallel", "parallel, tol 1e-11", "sequential + 1 ulp")
    quantities = ("step size", "inverse mass matrix", "draws")
    cells = [" / ".join(f"{r[c][q]:.1e}" for c in cols) for q in quantities]
    pairs = zip(r["warmup iterations"], r["warmup iterations, tol 1e-11"], strict=True)
    its = ", ".join(f"{a} ({b})" for a, b in pairs)
    return f"| {r['posterior']} | {r['kernel']} | " + " | ".join(cells) + f" | {its} | {r['sampling LLE']} |"


def write(stem, rows, commands):
    def describe(meta):
        return (
            f"{meta['machine']}; {meta['date']}. "
            f"{CHAINS} chains x ({WARMUP} warmup + {STEPS} draws), seed 0. "
            "Each cell: the largest relative difference from `sequential_sample` (step size, inverse mass "
            "matrix) or largest |difference| (flat unconstrained draws) of `parallel_sample(solver="
            "DEER(max_iterations=64))` with the warmup's default 64-ulp window tolerance / the same with "
            "the warmup windows at 1e-11 / the sequential warmup with every window's start moved by one "
            "ulp (the round-off yardstick). Kernels as `parallel_sample` names them (`'hmc'`: 10 leapfrog "
            "steps, step size jittered by +-20%; rows measured before that default are marked in the JSON "
            "commands). Iterations: parallel warmup per chain, summed over windows."
        )

    title = "The parallel warmup against its sequential twin (CPU, float64)"
    save(stem, rows, commands, title=title, describe=describe, header=HEADER, md_row=_md_row)


def main(argv=None):
    parser = _tables.parser(__doc__, "warmup-twin-cpu")
    parser.add_argument("--kernels", default="hmc,mala")
    parser.add_argument("--append", action="store_true", help="keep the other rows of the existing table")
    args = parser.parse_args(argv)
    command = _tables.invocation("warmup_twin.py", argv)
    stem = pathlib.Path(args.out)
    rows, commands = load(stem) if args.append else ([], [])
    commands = [*commands, command]
    order = {(n, k): i for i, (n, k) in enumerate((n, k) for n in POSTERIORDB_NAMES for k in ("hmc", "mala"))}
    print(HEADER, flush=True)
    for name in args.models.split(","):
        for kernel in args.kernels.split(","):
            row = run(name, kernel)
            rows = [r for r in rows if (r["posterior"], r["kernel"]) != (name, kernel)] + [row]
            rows.sort(key=lambda r: order[(r["posterior"], r["kernel"])])
            write(stem, rows, commands)
            print(_md_row(row), flush=True)
    print(f"wrote {stem}.md and .json")


if __name__ == "__main__":
    main()
