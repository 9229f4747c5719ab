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

- `parallel`: `parallel_sample(solver=DEER(max_iterations=64))` (NUTS: `DEER(segment=16,
  max_iterations=64)`, as `solver="auto"` solves the warmup windows; the windows at their default
  64-ulp tolerance, `pnmcmc.sampling.warmup.warmup_solver`);
- `parallel, tol 1e-11`: the same with the sampling solver's float64 tolerance forced on the
  warmup windows too (what the warmup used before);
- `sequential + 1 ulp`: the yardstick above.

and, per chain, the warmup sensitivity that the parallel run measured itself (its one-ulp shadow,
`WarmupResult.sensitivity`; a sequential warmup is `sequential_sample`'s own program and measures
nothing) with the twin verdict of `pnmcmc.sampling.twins` (D: digit twin expected,
S: statistical twin only). A kernel name with `-dense` (`nuts-dense`) adapts a dense mass matrix
(`dense_mass=True`).

With `--defaults` it checks instead what a user gets with every default (NUTS, `solver="auto"`,
1000 warmup steps, float64; only the draws, `DEFAULT_STEPS`, and the chains, `DEFAULT_CHAINS`, are
fewer to keep the CPU time reasonable): per posterior and chain, `pnmcmc.sampling.twins.explain` of
`parallel_sample` against `sequential_sample` of seed 0: the largest |difference| of the draws,
and the verdict with its reason (results in `warmup-twin-defaults-cpu`).

Usage: `python benchmarks/warmup_twin.py [--kernels hmc,mala,nuts,nuts-dense] [--models a,b]
[--warmup 150] [--draws 300] [--out STEM] [--append] [--defaults]`.
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
from pnmcmc.models import POSTERIORDB_NAMES, check_reference, posteriordb  # noqa: E402
from pnmcmc.sampling.chains import chain_runner  # noqa: E402
from pnmcmc.sampling.sample import parallel_sample, sequential_sample  # noqa: E402
from pnmcmc.sampling.twins import TwinExpectation, explain  # noqa: E402
from pnmcmc.sampling.warmup import WindowAdaptation  # noqa: E402

WARMUP, STEPS, CHAINS, ULP = 150, 300, 2, 2.0**-52
DEFAULT_STEPS, DEFAULT_CHAINS = 300, 2
KERNELS = ("hmc", "mala", "nuts", "mala-dense", "nuts-dense")
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


def _accuracy(post, res):
    """The sequential run against posteriordb's reference draws: the worst |mean error| in reference
    sds and the worst |relative sd error| (the criterion: <= 0.15 and <= 0.2)."""
    columns = check_reference(post, res.get_samples(group_by_chain=True)).columns.values()
    return {
        "mean error (sd)": max(abs(c.mean - c.reference_mean) / c.reference_sd for c in columns),
        "sd error": max(abs(c.sd_error) for c in columns),
    }


def run(name, spec, num_warmup=WARMUP, steps=STEPS):
    post = posteriordb(name)
    kernel, _, form = spec.partition("-")
    unchecked = WindowAdaptation(twin_check=False)  # only the first parallel run measures its shadow
    options = dict(
        model_args=post.model_args,
        model_kwargs=post.model_kwargs,
        kernel=kernel,
        dense_mass=form == "dense",
        num_warmup=num_warmup,
        num_chains=CHAINS,
        rng_key=0,
        init_strategy=INIT.get(name, init_to_uniform),
        progress_bar=False,
    )
    segment = 16 if kernel == "nuts" else 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # expanding chains warn; this table is about the warmup
        seq = sequential_sample(post.model, steps, **options)
        solver = DEER(max_iterations=64, segment=segment)
        par = parallel_sample(post.model, steps, solver=solver, **options)
        loose_solver = DEER(max_iterations=64, rtol=1e-11, atol=1e-11, segment=segment)
        loose = parallel_sample(post.model, steps, solver=loose_solver, warmup=unchecked, **options)
        pnmcmc.sampling.warmup.chain_runner = _one_ulp_runner
        try:
            ulp = sequential_sample(post.model, steps, warmup=unchecked, **options)
        finally:
            pnmcmc.sampling.warmup.chain_runner = chain_runner
    return {
        "posterior": name,
        "kernel": spec,
        "warmup": num_warmup,
        "draws": steps,
        "parallel": _differences(par, seq),
        "parallel, tol 1e-11": _differences(loose, seq),
        "sequential + 1 ulp": _differences(ulp, seq),
        "warmup iterations": np.asarray(par.warmup.num_iterations).tolist(),
        "warmup iterations, tol 1e-11": np.asarray(loose.warmup.num_iterations).tolist(),
        "sampling LLE": np.asarray(par.sample_stats["lle"]).astype(float).round(3).tolist(),
        "reference": _accuracy(post, seq),
        "sensitivity": np.asarray(par.warmup.sensitivity, float).tolist(),
        "verdict": ["D" if e is TwinExpectation.DIGITS else "S" for e in par.twins.expectation],
        "why": list(par.twins.reasons),
    }


def run_defaults(name):
    """`parallel_sample` and `sequential_sample` with every default but the draws and chains."""
    post = posteriordb(name)
    options = dict(
        model_args=post.model_args,
        model_kwargs=post.model_kwargs,
        num_chains=DEFAULT_CHAINS,
        rng_key=0,
        init_strategy=INIT.get(name, init_to_uniform),
        progress_bar=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the verdicts are the point; TwinWarning says the same
        par = parallel_sample(post.model, DEFAULT_STEPS, **options)
        seq = sequential_sample(post.model, DEFAULT_STEPS, **options)
        chains = explain(par, seq)
    return {
        "posterior": name,
        "solver": par.solver_reason.split(":")[0] + f": {type(par.solver).__name__}",
        "max |diff| draws": chains["max |diff| draws"].tolist(),
        "step size rel. diff": chains["step size rel. diff"].tolist(),
        "verdict": ["D" if v == TwinExpectation.DIGITS.value else "S" for v in chains["expected"]],
        "why": chains["why"].tolist(),
        "sensitivity": [np.asarray(r.warmup.sensitivity, float).tolist() for r in (par, seq)],
        "times": [par.warmup_time, par.sampling_time, seq.warmup_time, seq.sampling_time],
    }


DEFAULTS_HEADER = (
    "| posterior | chain | max \\|diff\\| draws | step size rel. diff | verdict | why |\n"
    "|---|---|---|---|---|---|"
)


def _defaults_md_row(r):
    lines = []
    for c, (diff, step, verdict, why) in enumerate(
        zip(r["max |diff| draws"], r["step size rel. diff"], r["verdict"], r["why"], strict=True)
    ):
        ok = "twin" if verdict == "D" and diff <= 1e-8 else ("named" if verdict == "S" else "**differs**")
        name = r["posterior"] if c == 0 else ""
        lines.append(f"| {name} | {c} | {diff:.1e} | {step:.1e} | {verdict} ({ok}) | {why} |")
    return "\n".join(lines)


def write_defaults(stem, rows, commands):
    def describe(meta):
        return (
            f"{meta['machine']}; {meta['date']}. Every default of `parallel_sample` and `sequential_sample` "
            f'(kernel NUTS, `solver="auto"`, 1000 warmup steps, float64) except {DEFAULT_CHAINS} chains x '
            f"{DEFAULT_STEPS} draws, seed 0. Per chain, from `pnmcmc.sampling.twins.explain`: the largest "
            "|difference| of the flat draws and the relative step-size difference between the two, and "
            "the verdict (D: digit twin expected, S: statistical twin only) with its reason. Issue 15's "
            "criterion: a chain is a twin (max |difference| <= 1e-8) or is named with the reason."
        )

    title = "Twins with every default (CPU, float64)"
    save(
        stem, rows, commands, title=title, describe=describe, header=DEFAULTS_HEADER, md_row=_defaults_md_row
    )


HEADER = (
    "| posterior | kernel | step size: parallel / tol 1e-11 / seq + 1 ulp | inverse mass matrix: "
    "parallel / tol 1e-11 / seq + 1 ulp | draws: parallel / tol 1e-11 / seq + 1 ulp | "
    "warmup iterations (tol 1e-11) | sampling LLE | shadow sensitivity (verdict) | "
    "reference: mean / sd error |\n|---|---|---|---|---|---|---|---|---|"
)


def _md_row(r):
    cols = ("parallel", "parallel, tol 1e-11", "sequential + 1 ulp")
    quantities = ("step size", "inverse mass matrix", "draws")
    cells = [" / ".join(f"{r[c][q]:.1e}" for c in cols) for q in quantities]
    pairs = zip(r["warmup iterations"], r["warmup iterations, tol 1e-11"], strict=True)
    its = ", ".join(f"{a} ({b})" for a, b in pairs)
    if "sensitivity" in r:
        verdicts = ", ".join(f"{v:.1e} ({d})" for v, d in zip(r["sensitivity"], r["verdict"], strict=True))
    else:
        verdicts = "(measured before the shadow existed)"
    length = (r.get("warmup", WARMUP), r.get("draws", STEPS))
    kernel = r["kernel"] + (f", {length[0]} warmup + {length[1]} draws" if length != (WARMUP, STEPS) else "")
    reference = r.get("reference")
    accuracy = f"{reference['mean error (sd)']:.3f} / {reference['sd error']:.3f}" if reference else ""
    tail = f" | {its} | {r['sampling LLE']} | {verdicts} | {accuracy} |"
    return f"| {r['posterior']} | {kernel} | " + " | ".join(cells) + tail


def write(stem, rows, commands):
    def describe(meta):
        return (
            f"{meta['machine']}; {meta['date']}. "
            f"{CHAINS} chains x ({WARMUP} warmup + {STEPS} draws), seed 0. "
            "Each cell: the largest relative difference from `sequential_sample` (step size, inverse mass"
            " matrix) or largest |difference| (flat unconstrained draws) of "
            "`parallel_sample(solver=DEER(max_iterations=64))` with the warmup's default 64-ulp window "
            "tolerance / the same with the warmup windows at 1e-11 / the sequential warmup with every "
            "window's start moved by one ulp (the round-off yardstick). Kernels as `parallel_sample` "
            "names them (`'hmc'`: 10 leapfrog steps, step size jittered by +-20%); `-dense`: "
            "`dense_mass=True`; NUTS solved with `DEER(segment=16, max_iterations=64)`. Iterations: "
            "parallel warmup per chain, summed over windows. Last column: per chain, the warmup "
            "sensitivity the parallel run measured with its own one-ulp shadow "
            "(`WarmupResult.sensitivity`, a lower bound where it stopped early above 1e-3) and the twin "
            "verdict of `pnmcmc.sampling.twins` (D: digit twin expected, S: statistical twin only). "
            "Reference: the "
            "sequential run against posteriordb's reference draws, the worst |mean error| in reference "
            "sds and the worst relative sd error (issue 15's criterion: <= 0.15 and <= 0.2, here on "
            "2 x 300 draws unless the kernel cell says otherwise). Short runs (2 "
            "chains, 150 warmup steps unless the kernel cell says otherwise) keep the CPU time "
            "reasonable; the default warmup is 1000 steps."
        )

    title = "The parallel warmup against its sequential twin (CPU, float64)"
    save(stem, rows, commands, title=title, describe=describe, header=HEADER, md_row=_md_row)


def _identity(r):
    return (r["posterior"], r["kernel"], r.get("warmup", WARMUP), r.get("draws", STEPS))


def main(argv=None):
    parser = _tables.parser(__doc__, "warmup-twin-cpu")
    parser.add_argument("--kernels", default=",".join(KERNELS))
    parser.add_argument("--warmup", type=int, default=WARMUP, help=f"warmup steps (default {WARMUP})")
    parser.add_argument("--draws", type=int, default=STEPS, help=f"draws per chain (default {STEPS})")
    parser.add_argument("--append", action="store_true", help="keep the other rows of the existing table")
    parser.add_argument("--defaults", action="store_true", help="every default instead (see the docstring)")
    args = parser.parse_args(argv)
    command = _tables.invocation("warmup_twin.py", argv)
    if args.defaults:
        stem = pathlib.Path(args.out.replace("warmup-twin-cpu", "warmup-twin-defaults-cpu"))
        rows, commands = load(stem) if args.append else ([], [])
        commands = [*commands, command]
        print(DEFAULTS_HEADER, flush=True)
        for name in args.models.split(","):
            row = run_defaults(name)
            rows = [r for r in rows if r["posterior"] != name] + [row]
            rows.sort(key=lambda r: POSTERIORDB_NAMES.index(r["posterior"]))
            write_defaults(stem, rows, commands)
            print(_defaults_md_row(row), flush=True)
        return
    stem = pathlib.Path(args.out)
    rows, commands = load(stem) if args.append else ([], [])
    commands = [*commands, command]
    order = {(n, k): i for i, (n, k) in enumerate((n, k) for n in POSTERIORDB_NAMES for k in KERNELS)}

    def key(r):
        return (r.get("warmup", WARMUP), r.get("draws", STEPS), order[(r["posterior"], r["kernel"])])

    print(HEADER, flush=True)
    for name in args.models.split(","):
        for kernel in args.kernels.split(","):
            row = run(name, kernel, args.warmup, args.draws)
            same = (name, kernel, args.warmup, args.draws)
            rows = [r for r in rows if _identity(r) != same] + [row]
            rows.sort(key=key)
            write(stem, rows, commands)
            print(_md_row(row), flush=True)
    print(f"wrote {stem}.md and .json")


if __name__ == "__main__":
    main()
