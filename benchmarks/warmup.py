"""Parallel window adaptation vs BlackJAX's window_adaptation on the posteriordb posteriors.

For each posterior and kernel, 4 chains with the same seed are warmed up by

- `parallel`: `pnmcmc.sampling.warmup.WindowAdaptation` (Stan's schedule cut into windows of fixed
  parameters, dual averaging across windows, acceptance-curve searches); run twice, with the
  `Sequential` solver (identical adaptation, cheap on a CPU) for the quality columns and with
  the DEER solver for its wall time;
- `blackjax`: `blackjax.window_adaptation` (Stan's per-step schedule, sequential), with the
  BlackJAX algorithm equivalent to the kernel (HMC with one leapfrog step for MALA).

Then each samples `n_steps` draws with the adapted parameters (`Sequential` solver). Columns:
the mean sampling acceptance against the kernel's target; the adapted step size (median over
chains); the mass-matrix error: for each chain the largest |log(m_d / v_d)| over parameters, where
m is the adapted diagonal inverse mass matrix and v the reference posterior variance of the
unconstrained parameter (delta method: v = (sd / mean)^2 for a positive parameter sampled on the
log scale), after removing the common scale (which the step size absorbs), median over chains;
the worst mean error in MCSE and sd error against the reference; the smallest bulk ESS and the
smallest bulk ESS per second of sampling; and the warmup wall time (compilation excluded).

Rows are written to `--out` (`.json`, `.md`) as they finish; `--append` keeps earlier commands'
rows; `--time-budget` stops starting new rows after that many seconds.

A method `parallel@0.8` (or `blackjax@0.8`) adapts to that target acceptance instead of the
kernel's (`WindowAdaptation(target_acceptance=0.8)`).

Usage: `python benchmarks/warmup.py [--kernels mala,hmc] [--methods parallel,blackjax,parallel@0.8]
[--models ...] [--out STEM] [--append] [--time-budget S]`.
"""

from __future__ import annotations

import os
import pathlib
import time
import warnings

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)  # the benchmark's choice; the library never does this

import _tables  # noqa: E402
import numpy as np  # noqa: E402
from _tables import load, save  # noqa: E402
from numpyro.infer import init_to_median, init_to_uniform  # noqa: E402

from pnmcmc.models import POSTERIORDB_NAMES, check_reference, posteriordb  # noqa: E402
from pnmcmc.sampling.sample import parallel_sample, sequential_sample  # noqa: E402
from pnmcmc.sampling.warmup import BlackJAXWindowAdaptation, WindowAdaptation  # noqa: E402

SETTINGS = {"mala": (1000, 4000), "hmc": (1000, 1000)}  # (num_warmup, n_steps)
INIT = {"arma-arma11": init_to_median}


def reference_variances(post, res):
    """Reference variances of the flat unconstrained parameters, in the flat order.

    The delta method through NumPyro's bijection of each site's support: for a site with
    constrained reference (mean, sd), the unconstrained sd is sd * |d inv(x) / dx| at the mean
    (e.g. sd / mean for a positive site sampled on the log scale).
    """
    from numpyro import handlers
    from numpyro.distributions.transforms import biject_to

    trace = handlers.trace(handlers.substitute(handlers.seed(post.model, 0), substitute_fn=init_to_uniform))
    sites = trace.get_trace(*post.model_args, **post.model_kwargs)
    variances = []
    for site in res.latent_sites:
        inverse = biject_to(sites[site]["fn"].support).inv
        shape = np.shape(sites[site]["value"])
        names = [site] if not shape else [f"{site}[{i + 1}]" for i in range(int(np.prod(shape)))]
        for name in names:
            mean, sd = post.reference[name]
            slope = float(jax.grad(lambda x, f=inverse: f(x))(float(mean)))
            variances.append((sd * slope) ** 2)
    return np.asarray(variances)


def mass_matrix_error(imm, variances):
    log_ratio = np.log(np.asarray(imm)) - np.log(variances)[None, :]
    log_ratio -= np.median(log_ratio, axis=1, keepdims=True)  # the step size absorbs a common scale
    return float(np.median(np.max(np.abs(log_ratio), axis=1)))


def run(name, kernel, method, solver):
    post = posteriordb(name)
    num_warmup, n_steps = SETTINGS[kernel]
    options = dict(
        model_args=post.model_args,
        model_kwargs=post.model_kwargs,
        kernel=kernel,
        num_warmup=num_warmup,
        rng_key=0,
        init_strategy=INIT.get(name, init_to_uniform),
        progress_bar=False,
    )
    base, _, target = method.partition("@")
    warmup = {"parallel": WindowAdaptation, "blackjax": BlackJAXWindowAdaptation}[base]
    options["warmup"] = warmup(target_acceptance=float(target) if target else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if solver == "sequential":
            return sequential_sample(post.model, n_steps, **options), post
        # Only the warmup is timed here: one draw (its solve is trivial).
        return parallel_sample(post.model, 1, solver=solver, **options), post


def measure(name, kernel, method):
    res, post = run(name, kernel, method, "sequential")
    check = check_reference(post, res.get_samples(group_by_chain=True))
    ess = float(res.summary()["ess_bulk"].min())
    row = {
        "posterior": name,
        "kernel": kernel,
        "warmup": method,
        "acceptance": float(np.asarray(res.sample_stats["acceptance_rate"]).mean()),
        "target": float(res.warmup.target_acceptance),
        "step size": float(np.median(np.asarray(res.warmup.step_size))),
        "mass-matrix error": mass_matrix_error(
            res.warmup.inverse_mass_matrix, reference_variances(post, res)
        ),
        "worst mean error (MCSE)": check.worst_z,
        "worst sd error": check.worst_sd_error,
        "min ESS": ess,
        "min ESS/s": ess / res.sampling_time,
        "warmup time (s)": res.warmup_time,
        "parallel solver": None,
        "warmup time, parallel solver (s)": None,
    }
    if method.startswith("parallel"):
        timed, _ = run(name, kernel, method, PARALLEL_SOLVER)
        row["parallel solver"] = type(timed.solver).__name__
        row["warmup time, parallel solver (s)"] = timed.warmup_time
    return row


PARALLEL_SOLVER = "deer"
COLUMNS = (
    "| posterior | kernel | warmup | acceptance (target) | step size | mass-matrix error | "
    "worst mean error (MCSE) | worst sd error | min ESS | min ESS/s | warmup time (s), Sequential solver | "
    "warmup time (s), DEER |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def _md_row(r):
    par = r["warmup time, parallel solver (s)"]
    return (
        f"| {r['posterior']} | {r['kernel']} | {r['warmup']} | {r['acceptance']:.2f} ({r['target']:.3g}) | "
        f"{r['step size']:.3g} | {r['mass-matrix error']:.2f} | {r['worst mean error (MCSE)']:.2f} | "
        f"{r['worst sd error']:.1%} | {r['min ESS']:.0f} | {r['min ESS/s']:.0f} | "
        f"{r['warmup time (s)']:.2f} | {'-' if par is None else f'{par:.2f}'} |"
    )


def write(stem, rows, commands):
    order = {(n, k): i for i, (n, k) in enumerate((n, k) for n in POSTERIORDB_NAMES for k in SETTINGS)}
    rows = sorted(
        rows, key=lambda r: (order[(r["posterior"], r["kernel"])], r["warmup"] != "parallel", r["warmup"])
    )
    (mala_w, mala_n), (hmc_w, hmc_n) = SETTINGS["mala"], SETTINGS["hmc"]

    def describe(meta):
        return (
            f"Measured on a **shared 2-core CPU** (several agents running at once; {meta['machine']}; "
            f"{meta['date']}), float64, 4 chains, seed 0; MALA {mala_w} warmup + {mala_n} draws, HMC "
            f"(10 leapfrog steps, step size jittered by +-20%: `kernel='hmc'`) {hmc_w} + {hmc_n}. "
            "`parallel` is pnmcmc's window adaptation (windows of fixed parameters, solved whole), "
            "`blackjax` is `blackjax.window_adaptation` (Stan's per-step schedule). After warmup both "
            "sample with the Sequential solver. Mass-matrix error: per chain the largest |log(m_d / v_d)| "
            "against the reference posterior variances of the unconstrained parameters (common scale "
            "removed), median over chains (0 is perfect; log 2 = 0.69 is a factor 2). Times exclude "
            "compilation and are single runs under load: compare the two rows of a posterior, and the "
            "load-independent columns (acceptance, step size, mass-matrix error, ESS)."
        )

    title = "Warmup: parallel window adaptation vs BlackJAX window_adaptation (CPU)"
    save(stem, rows, commands, title=title, describe=describe, header=COLUMNS, md_row=_md_row)


def main(argv=None):
    parser = _tables.parser(__doc__, "warmup-cpu")
    parser.add_argument("--kernels", default="mala,hmc")
    parser.add_argument("--methods", default="parallel,blackjax")
    parser.add_argument("--append", action="store_true", help="keep the rows of earlier commands")
    parser.add_argument("--time-budget", type=float, default=540.0, help="start no row after this (s)")
    args = parser.parse_args(argv)
    command = _tables.invocation("warmup.py", argv)
    stem = pathlib.Path(args.out)
    if not args.append:
        stem.with_suffix(".json").unlink(missing_ok=True)
    began = time.perf_counter()
    print(COLUMNS, flush=True)
    for name in args.models.split(","):
        for kernel in args.kernels.split(","):
            for method in args.methods.split(","):
                if time.perf_counter() - began > args.time_budget:
                    print(f"time budget spent: skipping {name} {kernel} {method}", flush=True)
                    continue
                start = time.perf_counter()
                row = {**measure(name, kernel, method), "command": command}
                key = (name, kernel, method)
                # Re-read the file: another command may have appended rows meanwhile.
                rows, commands = load(stem)
                rows = [r for r in rows if (r["posterior"], r["kernel"], r["warmup"]) != key] + [row]
                write(stem, rows, commands if command in commands else [*commands, command])
                print(_md_row(row), f"({time.perf_counter() - start:.0f} s with compilation)", flush=True)
    print(f"wrote {stem}.md and .json")


if __name__ == "__main__":
    main()
