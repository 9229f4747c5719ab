"""Engine benchmark: every solver against the sequential chain on a small suite of maps.

Prints and writes `benchmarks/results/engine-<device>.md` (and `.json`): per map, T and solver the
status, parallel iterations, compile time, wall time after compilation (median of `--repeats`
runs), its ratio to `lax.scan` measured in the same run, the compiled program's peak memory
(XLA's memory analysis: arguments + outputs + temporaries) and max |parallel - sequential|.

    python benchmarks/engine.py                      # T = 1e3, 1e4, 1e5 (float64)
    python benchmarks/engine.py --steps 1000 --quick # a smoke test

Iterations are capped at `--max-iterations` (then the rest is finished sequentially and the
status says MAX_ITERATIONS), so that slow solvers cannot run for hours at T = 1e5.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")  # see docs/troubleshooting.md
sys.path.insert(0, str(Path(__file__).parent))  # the shared helpers, also when run as a module

import _solvers  # noqa: E402
import _tables  # noqa: E402
import _timing  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _memory import mb, xla_bytes  # noqa: E402
from _tables import RESULTS  # noqa: E402

import pnmcmc as pn  # noqa: E402


def tanh_rnn(n, dtype, d=8, gain=0.8):
    """A contracting random tanh RNN driven by Gaussian input."""
    kw, kn = jax.random.split(jax.random.key(0))
    w = (gain * jax.random.normal(kw, (d, d)) / np.sqrt(d)).astype(dtype)
    return (lambda x, xi: jnp.tanh(w @ x + xi)), jnp.zeros(d, dtype), jax.random.normal(kn, (n, d), dtype)


def langevin(n, dtype, d=10, h=0.1):
    """Unadjusted Langevin on a correlated log-cosh target (smooth, mildly contracting)."""
    chol = np.linalg.cholesky(0.5 * np.eye(d) + 0.5 * np.ones((d, d)))
    inv = jnp.asarray(np.linalg.inv(chol), dtype)
    grad = jax.grad(lambda x: -jnp.sum(jnp.log(jnp.cosh(inv @ x))))
    noise = jax.random.normal(jax.random.key(1), (n, d), dtype)
    return (lambda x, xi: x + h * grad(x) + jnp.sqrt(2 * h).astype(dtype) * xi), jnp.zeros(d, dtype), noise


def sharp(n, dtype):
    """A 1-D saturating map with steep Jacobians away from the chain (hard for plain Newton)."""
    noise = 0.3 * jax.random.normal(jax.random.key(3), (n, 1), dtype)
    return (lambda x, xi: xi + 0.6 * jnp.tanh(8.0 * x)), jnp.full((1,), 0.3, dtype), noise


MAPS = {"tanh_rnn_d8": tanh_rnn, "langevin_d10": langevin, "sharp_d1": sharp}


SOLVERS = [
    "Sequential", "Jacobi", "Picard", "DEER", "QuasiDEER", "QuasiDEER(probes=1)", "ELK", "QuasiELK",
    "DEER(window={window})",
]  # fmt: skip


def solvers(cap, window):
    """`{label: solver}`, Sequential (the reference) first."""
    return _solvers.table([label.format(window=window) for label in SOLVERS], cap)


def measure(step, x0, noise, solver, repeats):
    """One chain (no vmap): the solution, compile time, median run time and XLA's figure."""
    compiled, compile_s = _timing.compile(lambda x0, noise: pn.solve(step, x0, noise, solver), (x0, noise))
    times = []
    for _ in range(repeats):
        sol, seconds = _timing.timed(compiled, (x0, noise))
        times.append(seconds)
    return sol, compile_s, statistics.median(times), xla_bytes(compiled)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--maps", nargs="+", default=list(MAPS), choices=list(MAPS))
    parser.add_argument("--solvers", nargs="+", default=None, help="names as in the table")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-iterations", type=int, default=300)
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--float32", action="store_true")
    parser.add_argument(
        "--elk-max-steps",
        type=int,
        default=20_000,
        help="skip ELK/QuasiELK above this T (their Kalman scan takes minutes per solve on a CPU)",
    )
    parser.add_argument("--quick", action="store_true", help="1 repeat, no files written")
    args = parser.parse_args(argv)
    if not args.float32:
        jax.config.update("jax_enable_x64", True)  # the benchmark's choice; the library never does
    dtype = jnp.float32 if args.float32 else jnp.float64
    repeats = 1 if args.quick else args.repeats
    device = jax.devices()[0]
    command = _tables.invocation("engine.py", argv)
    rows = []
    header = (
        f"| map | T | solver | status | iterations | compile (s) | time (s) | vs lax.scan | "
        f"peak memory (MB) | max abs diff |\n|{'---|' * 10}"
    )
    print(header)
    for map_name in args.maps:
        for n in args.steps:
            step, x0, noise = MAPS[map_name](n, dtype)
            reference = None
            for name, solver in solvers(args.max_iterations, args.window).items():
                if args.solvers and name not in args.solvers and name != "Sequential":
                    continue
                if "ELK" in name and n > args.elk_max_steps:
                    continue
                with jax.default_matmul_precision("highest"):
                    sol, compile_s, seconds, peak = measure(step, x0, noise, solver, repeats)
                if reference is None:
                    reference, seq_seconds = sol.trajectory, seconds
                row = dict(
                    map=map_name,
                    steps=n,
                    solver=name,
                    status=pn.Status(int(sol.status)).name,
                    iterations=int(sol.num_iterations),
                    sequential_steps=int(sol.sequential_steps),
                    compile_s=round(compile_s, 3),
                    seconds=seconds,
                    speedup=seq_seconds / seconds,
                    peak_mb=mb(peak),
                    max_abs_diff=float(jnp.max(jnp.abs(sol.trajectory - reference))),
                )
                rows.append(row)
                peak_text = "n/a" if row["peak_mb"] is None else f"{row['peak_mb']:.1f}"
                print(
                    f"| {map_name} | {n} | {name} | {row['status']} | {row['iterations']} | "
                    f"{compile_s:.2f} | {seconds:.4f} | {row['speedup']:.2f}x | {peak_text} | "
                    f"{row['max_abs_diff']:.1e} |",
                    flush=True,
                )
    if args.quick:
        return
    RESULTS.mkdir(exist_ok=True)
    meta = dict(
        command=command,
        device=str(device.device_kind),
        platform=platform.platform(),
        cpu_count=os.cpu_count(),
        jax=jax.__version__,
        dtype=jnp.dtype(dtype).name,
        date=time.strftime("%Y-%m-%d"),
    )
    stem = RESULTS / f"engine-{_tables.device_slug(device)}{'-float32' if args.float32 else ''}"
    stem.with_suffix(".json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
    lines = [
        f"# Engine benchmark on {meta['device']} ({meta['cpu_count']} cores), {meta['dtype']}",
        "",
        f"Command: `{command}` (jax {meta['jax']}, {meta['date']}).",
        "",
        "Times are medians after compilation; 'vs lax.scan' is the sequential time divided by the",
        f"solver's, measured in the same run. Iterations are capped at {args.max_iterations}, after",
        "which the rest is computed sequentially (status MAX_ITERATIONS). Peak memory is XLA's",
        "memory analysis of the compiled program (arguments + outputs + temporaries).",
        "",
        header,
    ]
    for r in rows:
        peak_text = "n/a" if r["peak_mb"] is None else f"{r['peak_mb']:.1f}"
        lines.append(
            f"| {r['map']} | {r['steps']} | {r['solver']} | {r['status']} | {r['iterations']} | "
            f"{r['compile_s']:.2f} | {r['seconds']:.4f} | {r['speedup']:.2f}x | {peak_text} | "
            f"{r['max_abs_diff']:.1e} |"
        )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"\nwrote {stem}.md and .json")


if __name__ == "__main__":
    main()
