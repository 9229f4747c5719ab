"""Every default, side by side with NumPyro: does `parallel_sample(model, n)` get the posterior?

For each posterior (the eight posteriordb posteriors in `pnmcmc.models`, or the NumPyro example
models of `benchmarks/example_models.py` with `--suite examples`) and seed, three runs of the same
size (`--chains` chains, `--warmup` warmup steps, `--draws` draws):

- `pnmcmc.parallel_sample(model, draws, ...)` with every default (kernel, solver, warmup, metric);
- `pnmcmc.sequential_sample` with the same seed: its twin (largest |difference| of the draws, and
  the result's own verdict when they are not expected to be digit twins);
- NumPyro's `MCMC(NUTS(model), chain_method="vectorized")`, the same sizes and seed.

Each is scored against the reference (posteriordb's gold-standard draws; for the example models,
against NumPyro's run and a long NumPyro run): the posteriordb criterion is every mean within
0.15 reference sd and every sd within 20% (`ReferenceCheck.matches`); the example models must
agree with NumPyro within 4 combined Monte Carlo standard errors. Wall times are those a user
feels: the first call (compilation included) and a repeat call of the same size; pnmcmc's own
compilation-excluded time is given too. pnmcmc's warnings are listed per row.

Rows are written to `--out` (`.md` and `.json`) as soon as they are measured.

    python benchmarks/defaults.py                       # eight posteriors, seeds 0 1 2
    python benchmarks/defaults.py --suite examples      # the NumPyro example models
"""

from __future__ import annotations

import os
import pathlib
import sys
import time
import warnings

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)  # the benchmark's choice; the library never does this

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import _tables  # noqa: E402
import numpy as np  # noqa: E402
from numpyro.infer import MCMC, NUTS  # noqa: E402

import pnmcmc  # noqa: E402
from pnmcmc.models import POSTERIORDB_NAMES, check_reference, posteriordb  # noqa: E402


def _timed(fn):
    began = time.perf_counter()
    out = fn()
    jax.block_until_ready(jax.tree.leaves(out))
    return out, time.perf_counter() - began


def _pnmcmc(sampler, post, args, seed):
    options = dict(
        model_args=post.model_args,
        model_kwargs=post.model_kwargs,
        num_chains=args.chains,
        num_warmup=args.warmup,
        rng_key=seed,
        progress_bar=False,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result, first = _timed(lambda: sampler(post.model, args.draws, **options))
    _, repeat = _timed(lambda: sampler(post.model, args.draws, **options))
    names = sorted({type(w.message).__name__ for w in caught if "pnmcmc" in type(w.message).__module__})
    failed = [check.name for check in result.convergence.failed]  # what the ConvergenceWarning said
    if failed:
        names = [f"{n} ({', '.join(failed)})" if n == "ConvergenceWarning" else n for n in names]
    return result, first, repeat, names


def _numpyro(post, args, seed):
    mcmc = MCMC(
        NUTS(post.model),
        num_warmup=args.warmup,
        num_samples=args.draws,
        num_chains=args.chains,
        chain_method="vectorized",
        progress_bar=False,
    )

    def run():
        mcmc.run(jax.random.key(seed), *post.model_args, extra_fields=("diverging",), **post.model_kwargs)
        return mcmc.get_samples(group_by_chain=True)

    samples, first = _timed(run)
    _, repeat = _timed(run)
    divergences = int(np.sum(np.asarray(mcmc.get_extra_fields()["diverging"])))
    return samples, first, repeat, divergences


def row_posteriordb(name, seed, args):
    post = posteriordb(name)
    par, par_first, par_repeat, par_warnings = _pnmcmc(pnmcmc.parallel_sample, post, args, seed)
    seq, seq_first, _, _ = _pnmcmc(pnmcmc.sequential_sample, post, args, seed)
    ref, ref_first, ref_repeat, _ = _numpyro(post, args, seed)
    ours = check_reference(post, par.get_samples(group_by_chain=True))
    theirs = check_reference(post, ref)
    twin = float(np.max(np.abs(np.asarray(par.positions) - np.asarray(seq.positions))))
    timings = par.timings
    return {
        "posterior": name,
        "seed": seed,
        "kernel": str(getattr(par.kernel, "name", type(par.kernel).__name__)),
        "solver": getattr(par.solver, "name", type(par.solver).__name__),
        "matches": bool(ours.matches()),
        "worst mean error (sd)": ours.worst_mean_error_sd,
        "worst sd error": ours.worst_sd_error,
        "min ESS": ours.min_ess,
        "numpyro matches": bool(theirs.matches()),
        "numpyro worst mean error (sd)": theirs.worst_mean_error_sd,
        "numpyro worst sd error": theirs.worst_sd_error,
        "numpyro min ESS": theirs.min_ess,
        "first call (s)": par_first,
        "repeat call (s)": par_repeat,
        "compile-excluded (s)": timings["warmup"] + timings["sampling"] + timings["diagnostics"],
        "sequential_sample first call (s)": seq_first,
        "numpyro first call (s)": ref_first,
        "numpyro repeat call (s)": ref_repeat,
        "max |parallel - sequential|": twin,
        "twin verdict": _twin_verdict(par),
        "warnings": ", ".join(par_warnings) or "-",
    }


def _twin_verdict(result) -> str:
    """What the result says about its sequential twin, if it says anything."""
    for attribute in ("twin", "twins"):
        verdict = getattr(result, attribute, None)
        if verdict is not None:
            describe = getattr(verdict, "describe", None)
            return describe() if callable(describe) else str(verdict)
    return "-"


def _md_posteriordb(r):
    return (
        f"| {r['posterior']} | {r['seed']} | {r['kernel']} / {r['solver']} | "
        f"{'yes' if r['matches'] else '**no**'} ({r['worst mean error (sd)']:.3f} sd, "
        f"{r['worst sd error']:.1%}, ESS {r['min ESS']:.0f}) | "
        f"{'yes' if r['numpyro matches'] else '**no**'} ({r['numpyro worst mean error (sd)']:.3f} sd, "
        f"{r['numpyro worst sd error']:.1%}, ESS {r['numpyro min ESS']:.0f}) | "
        f"{r['first call (s)']:.1f} / {r['numpyro first call (s)']:.1f} | "
        f"{r['repeat call (s)']:.1f} / {r['numpyro repeat call (s)']:.1f} | "
        f"{r['compile-excluded (s)']:.1f} | "
        f"{r['max |parallel - sequential|']:.1e} | {r['twin verdict'].replace(chr(10), '; ')} | "
        f"{r['warnings']} |"
    )


HEADER_POSTERIORDB = (
    "| posterior | seed | kernel / solver | pnmcmc matches (worst mean error, sd error, min ESS) | "
    "NumPyro matches | first call pnmcmc / NumPyro (s) | repeat call pnmcmc / NumPyro (s) | "
    "pnmcmc without compilation (s) | max abs(parallel - sequential) | twin verdict | warnings |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def row_example(name, seed, args):
    import example_models

    post = example_models.MODELS[name]()
    par, par_first, par_repeat, par_warnings = _pnmcmc(pnmcmc.parallel_sample, post, args, seed)
    ref, ref_first, ref_repeat, ref_divergences = _numpyro(post, args, seed)
    worst, where = example_models.agreement(par.get_samples(group_by_chain=True), ref)
    return {
        "model": name,
        "seed": seed,
        "kernel": str(getattr(par.kernel, "name", type(par.kernel).__name__)),
        "solver": getattr(par.solver, "name", type(par.solver).__name__),
        "worst difference (MCSE)": worst,
        "worst parameter": where,
        "agrees (4 MCSE)": bool(worst <= 4.0),
        "first call (s)": par_first,
        "repeat call (s)": par_repeat,
        "numpyro first call (s)": ref_first,
        "numpyro repeat call (s)": ref_repeat,
        "warnings": ", ".join(par_warnings) or "-",
        "divergences": int(np.sum(np.asarray(par.sample_stats["diverging"]))),
        "numpyro divergences": ref_divergences,
    }


def _md_example(r):
    return (
        f"| {r['model']} | {r['seed']} | {r['kernel']} / {r['solver']} | "
        f"{'yes' if r['agrees (4 MCSE)'] else '**no**'} ({r['worst difference (MCSE)']:.2f} at "
        f"{r['worst parameter']}) | {r['first call (s)']:.1f} / {r['numpyro first call (s)']:.1f} | "
        f"{r['repeat call (s)']:.1f} / {r['numpyro repeat call (s)']:.1f} | "
        f"{r.get('divergences', '-')} / {r.get('numpyro divergences', '-')} | {r['warnings']} |"
    )


HEADER_EXAMPLES = (
    "| model | seed | kernel / solver | agrees with NumPyro NUTS (worst difference in MCSE) | "
    "first call pnmcmc / NumPyro (s) | repeat call pnmcmc / NumPyro (s) | "
    "divergent transitions pnmcmc / NumPyro | pnmcmc warnings (failed checks) |\n"
    "|---|---|---|---|---|---|---|---|"
)


def main(argv=None):
    parser = _tables.parser(__doc__, "defaults-cpu")
    parser.add_argument("--suite", choices=("posteriordb", "examples"), default="posteriordb")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--append", action="store_true", help="keep the rows of earlier commands")
    args = parser.parse_args(argv)
    examples = args.suite == "examples"
    if examples:
        import example_models

        if args.models == ",".join(POSTERIORDB_NAMES):
            args.models = ",".join(example_models.MODELS)
        if args.out == "benchmarks/results/defaults-cpu":
            args.out = "benchmarks/results/examples-cpu"
    command = _tables.invocation("defaults.py", argv)
    stem = pathlib.Path(args.out)
    rows, commands = _tables.load(stem) if args.append else ([], [])
    commands = commands if command in commands else [*commands, command]
    key = "model" if examples else "posterior"
    header = HEADER_EXAMPLES if examples else HEADER_POSTERIORDB
    md_row = _md_example if examples else _md_posteriordb

    def describe(meta):
        return (
            f"{meta['machine']}, {meta['date']}, float64. {args.chains} chains x ({args.warmup} warmup + "
            f"{args.draws} draws) for every library and row; every pnmcmc option at its default. Times are "
            "wall times of a whole call on a shared 2-core CPU (trust the ratios within a row more than "
            "absolute values): the first call compiles, the repeat call is the same call again."
        )

    print(header, flush=True)
    for name in args.models.split(","):
        for seed in args.seeds:
            try:
                row = (row_example if examples else row_posteriordb)(name, seed, args)
            except Exception as error:  # a row that fails is recorded, the others still run
                print(f"{name} seed {seed}: {type(error).__name__}: {error}", flush=True)
                continue
            row["command"] = command
            rows = [r for r in rows if (r[key], r["seed"]) != (name, seed)] + [row]
            _tables.save(
                stem, rows, commands, title=f"Defaults against NumPyro ({args.suite})", describe=describe,
                header=header, md_row=md_row,
            )  # fmt: skip
            print(md_row(row), flush=True)
    print(f"wrote {stem}.md and .json")


if __name__ == "__main__":
    main()
