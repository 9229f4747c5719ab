"""Time to first draw: the wall time of a whole call, compilation included, against NumPyro.

For each model (a 2-parameter normal model on 5 observations, then the eight posteriordb
posteriors), three fresh processes, each timing the library's import, a first call and repeat
calls of the same size (`--chains` chains, `--warmup` warmup steps, `--draws` draws, float64); the
repeat time is the fastest of `REPEATS` calls, for every library (NumPyro's repeat call on earnings
took 6.0 s in one process and 9.2 s in the next):

- `pnmcmc.parallel_sample(model, draws, ...)` with every default (repeat: the same call again, on
  data shifted by nothing: the same shapes);
- `pnmcmc.sequential_sample` with the same arguments;
- NumPyro `MCMC(NUTS(model), chain_method="vectorized")` (repeat: `run` again on the same `MCMC`
  object, which reuses its compiled sampler).

A fresh process per library and model makes every first call a real first call (nothing compiled
before, no persistent compilation cache). Targets (issue "Time to first draw"): the default's
first call within 1.5x of NumPyro's, its repeat call within 1.1x of NumPyro's repeat call, and
within 1.1x of `sequential_sample` wherever it chooses Sequential.

Rows are written to `--out` (`.md` and `.json`) as soon as they are measured.

    python benchmarks/time_to_draw.py
    python benchmarks/time_to_draw.py --models normal --draws 100 --warmup 100   # a quick look
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).parent
KINDS = ("parallel_sample", "sequential_sample", "numpyro")
REPEATS = 3  # repeat calls per process; the table keeps the fastest (a repeat call's time varies)


def _normal():
    import numpy as np
    import numpyro
    import numpyro.distributions as dist

    def model(y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
        sigma = numpyro.sample("sigma", dist.HalfNormal(5.0))
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)

    return model, (np.array([1.0, 2.0, 0.5, 1.5, 3.0]),), {}


def _problem(name):
    if name == "normal":
        return _normal()
    from pnmcmc.models import posteriordb

    post = posteriordb(name)
    return post.model, post.model_args, post.model_kwargs


def child(kind, name, chains, warmup, draws):
    """Runs in a fresh process: `(first, repeat, solver)` of one library on one model."""
    import warnings

    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
    import jax

    jax.config.update("jax_enable_x64", True)  # the benchmark's choice; the library never does this
    began = time.perf_counter()  # the library's import, before the model (which may import pnmcmc)
    if kind == "numpyro":
        from numpyro.infer import MCMC, NUTS  # noqa: F401
    else:
        import pnmcmc  # noqa: F401
    imported = time.perf_counter() - began
    model, args, kwargs = _problem(name)
    warnings.simplefilter("ignore")  # the warnings are the defaults benchmark's subject, not this one's
    if kind == "numpyro":
        from numpyro.infer import MCMC, NUTS

        mcmc = MCMC(
            NUTS(model), num_warmup=warmup, num_samples=draws, num_chains=chains,
            chain_method="vectorized", progress_bar=False,
        )  # fmt: skip

        def call():
            mcmc.run(jax.random.key(0), *args, **kwargs)
            jax.block_until_ready(mcmc.get_samples())
            return "NUTS (NumPyro)"
    else:
        import pnmcmc

        sampler = getattr(pnmcmc, kind)

        def call():
            result = sampler(
                model, draws, model_args=args, model_kwargs=kwargs, num_chains=chains,
                num_warmup=warmup, rng_key=0, progress_bar=False,
            )  # fmt: skip
            jax.block_until_ready(result.positions)
            return getattr(result.solver, "name", type(result.solver).__name__)

    began = time.perf_counter()
    solver = call()
    first = time.perf_counter() - began
    repeats = []
    for _ in range(REPEATS):
        began = time.perf_counter()
        call()
        repeats.append(time.perf_counter() - began)
    return {"first": first, "repeat": min(repeats), "repeats": repeats, "solver": solver, "import": imported}


def _measure(kind, name, args):
    command = [
        sys.executable,
        __file__,
        "--child",
        kind,
        name,
        str(args.chains),
        str(args.warmup),
        str(args.draws),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise RuntimeError(f"{kind} on {name} failed:\n{done.stderr[-2000:]}")
    return json.loads(lines[-1])


def _md_row(r):
    def ratio(a, b, target):
        value = r[a] / r[b]
        text = f"{value:.2f}"
        return text if value <= target else f"**{text}**"

    sequential = r["solver"].startswith("Sequential")
    return (
        f"| {r['model']} | {r['solver']} | {r['parallel first']:.1f} / {r['parallel repeat']:.1f} | "
        f"{r['sequential first']:.1f} / {r['sequential repeat']:.1f} | "
        f"{r['numpyro first']:.1f} / {r['numpyro repeat']:.1f} | "
        f"{ratio('parallel first', 'numpyro first', 1.5)} | "
        f"{ratio('parallel repeat', 'numpyro repeat', 1.1)} | "
        + (f"{ratio('parallel first', 'sequential first', 1.1)} |" if sequential else "- |")
        + f" {r['parallel import']:.1f} / {r['numpyro import']:.1f} | "
        f"{(r['parallel first'] + r['parallel import']) / (r['numpyro first'] + r['numpyro import']):.2f} |"
    )


HEADER = (
    "| model | default's solver | parallel_sample first / repeat (s) | "
    "sequential_sample first / repeat (s) | "
    "NumPyro first / repeat (s) | first: default / NumPyro (target <= 1.5) | "
    "repeat: default / NumPyro (target <= 1.1) | first: default / sequential_sample (target <= 1.1) | "
    "import pnmcmc / NumPyro (s) | import + first: default / NumPyro |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def main(argv=None):
    sys.path.insert(0, str(HERE))
    import _tables

    from pnmcmc.models import POSTERIORDB_NAMES

    parser = _tables.parser(__doc__, "time-to-draw-cpu")
    parser.set_defaults(models=",".join(["normal", *POSTERIORDB_NAMES]))
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--append", action="store_true", help="keep the rows of earlier commands")
    args = parser.parse_args(argv)
    command = _tables.invocation("time_to_draw.py", argv)
    stem = pathlib.Path(args.out)
    rows, commands = _tables.load(stem) if args.append else ([], [])
    commands = commands if command in commands else [*commands, command]

    def describe(meta):
        return (
            f"{meta['machine']}, {meta['date']}, float64. {args.chains} chains x ({args.warmup} warmup + "
            f"{args.draws} draws) for every library and row; every pnmcmc option at its default. Each cell "
            "is a fresh process: the first call compiles everything, the repeat call is the same call "
            f"again (NumPyro: `run` again on the same `MCMC` object), the fastest of {REPEATS} (one "
            "library's repeat calls varied by up to 1.5x between processes). The library's import "
            "(`import pnmcmc`, which imports NumPyro, BlackJAX and ArviZ; `from numpyro.infer import MCMC, "
            "NUTS`) is timed "
            "apart, first in the process, and the last column adds it to the first call. Wall times on a "
            "2-core CPU; trust the ratios within a row more than absolute values. Bold: a ratio above its "
            "target."
        )

    print(HEADER, flush=True)
    for name in args.models.split(","):
        try:
            cells = {kind: _measure(kind, name, args) for kind in KINDS}
        except RuntimeError as error:  # a row that fails is recorded on the console, the others run
            print(error, flush=True)
            continue
        row = {"model": name, "solver": cells["parallel_sample"]["solver"], "command": command}
        for kind, label in zip(KINDS, ("parallel", "sequential", "numpyro"), strict=True):
            row[f"{label} first"] = cells[kind]["first"]
            row[f"{label} repeat"] = cells[kind]["repeat"]
            row[f"{label} import"] = cells[kind]["import"]
        rows = [r for r in rows if r["model"] != name] + [row]
        _tables.save(
            stem, rows, commands, title="Time to first draw: whole calls against NumPyro", describe=describe,
            header=HEADER, md_row=_md_row,
        )  # fmt: skip
        print(_md_row(row), flush=True)
    print(f"wrote {stem}.md and .json")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, name, chains, warmup, draws = sys.argv[2:7]
        print(json.dumps(child(kind, name, int(chains), int(warmup), int(draws))), flush=True)
    else:
        main()
