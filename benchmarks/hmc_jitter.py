"""HMC with a fixed trajectory length vs a jittered step size, on the posteriordb posteriors.

HMC with L fixed leapfrog steps moves a posterior direction of period near L * step size hardly at
all, so its ESS swings with where the adapted step size lands (the warmup table shows 58 to 6662
on kidiq for two adaptations of similar quality). `HMC(step_size_jitter=j)` draws each
transition's step size uniformly in step * [1 - j, 1 + j] (from the step's noise, so the chain is
still a deterministic map of the noise and is solved in parallel as before).

For each posterior and jitter: `sequential_sample` (the same draws as `parallel_sample`), HMC with
10 leapfrog steps, 4 chains x (1000 warmup + 1000 draws), seed 0, the parallel window adaptation;
columns: adapted step size (median over chains), mean acceptance, smallest bulk ESS over the
parameters, and the accuracy against the posteriordb reference (worst |mean error| in MCSE, worst
relative sd error).

Usage: `python benchmarks/hmc_jitter.py [--jitters 0,0.2,0.5] [--models a,b] [--out STEM]`.
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
from _tables import save  # noqa: E402
from numpyro.infer import init_to_median, init_to_uniform  # noqa: E402

from pnmcmc.kernels import HMC  # noqa: E402
from pnmcmc.models import check_reference, posteriordb  # noqa: E402
from pnmcmc.sampling.sample import HMC_INTEGRATION_STEPS, sequential_sample  # noqa: E402

WARMUP, STEPS, CHAINS = 1000, 1000, 4
INIT = {"arma-arma11": init_to_median}


def run(name, jitter):
    post = posteriordb(name)
    kernel = HMC(1.0, HMC_INTEGRATION_STEPS, step_size_jitter=jitter)  # what kernel="hmc" starts from
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sequential_sample(
            post.model,
            STEPS,
            model_args=post.model_args,
            model_kwargs=post.model_kwargs,
            kernel=kernel,
            num_warmup=WARMUP,
            num_chains=CHAINS,
            rng_key=0,
            init_strategy=INIT.get(name, init_to_uniform),
            progress_bar=False,
        )
    check = check_reference(post, res.get_samples(group_by_chain=True))
    return {
        "posterior": name,
        "jitter": jitter,
        "step size": float(np.median(np.asarray(res.warmup.step_size))),
        "acceptance": float(np.asarray(res.sample_stats["acceptance_rate"]).mean()),
        "min ESS": float(res.summary()["ess_bulk"].min()),
        "worst mean error (MCSE)": check.worst_z,
        "worst sd error": check.worst_sd_error,
    }


HEADER = (
    "| posterior | jitter | step size | acceptance | min ESS | worst mean error (MCSE) | worst sd error |\n"
    "|---|---:|---:|---:|---:|---:|---:|"
)


def _md_row(r):
    return (
        f"| {r['posterior']} | {r['jitter']:g} | {r['step size']:.3g} | {r['acceptance']:.2f} | "
        f"{r['min ESS']:.0f} | {r['worst mean error (MCSE)']:.2f} | {r['worst sd error']:.1%} |"
    )


def write(stem, rows, commands):
    def describe(meta):
        return (
            f"{meta['machine']}; {meta['date']}. HMC with {HMC_INTEGRATION_STEPS} leapfrog steps, "
            f"{CHAINS} chains x ({WARMUP} warmup + {STEPS} draws), seed 0, `sequential_sample` (the same "
            "draws as `parallel_sample`), parallel window adaptation. min ESS: the smallest bulk ESS "
            f"over the parameters (of {CHAINS * STEPS} draws)."
        )

    title = "HMC step-size jitter (CPU, float64)"
    save(stem, rows, commands, title=title, describe=describe, header=HEADER, md_row=_md_row)


def main(argv=None):
    parser = _tables.parser(__doc__, "hmc-jitter-cpu")
    parser.add_argument("--jitters", default="0,0.2,0.5")
    args = parser.parse_args(argv)
    command = _tables.invocation("hmc_jitter.py", argv)
    stem = pathlib.Path(args.out)
    rows = []
    print(HEADER, flush=True)
    for name in args.models.split(","):
        for jitter in (float(j) for j in args.jitters.split(",")):
            rows.append(run(name, jitter))
            write(stem, rows, [command])
            print(_md_row(rows[-1]), flush=True)
    print(f"wrote {stem}.md and .json")


if __name__ == "__main__":
    main()
