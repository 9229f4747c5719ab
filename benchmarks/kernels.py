"""Kernel benchmark: the published parallel-MCMC configurations, every solver against the sequential chain.

Reproduces the configurations of the parallel-MCMC paper (Zoltowski et al. 2025; methods.md
section 5.1) with pnmcmc's kernels and solvers:

- `german`: Bayesian logistic regression on German credit (D = 25), MALA step 0.0015, T = 2048,
  1 to 64 chains (vmapped), each started from 0.1 N(0, I);
- `banana`: the banana ("Rosenbrock") target, HMC step 0.5 with 8 leapfrog steps, T = 1e5,
  started from 10 N(0, I);
- `mixture`: the 2-D four-component Gaussian mixture, MALA step 0.5, T = 1e5, started from N(0, I);
- `nuts` and `nuts_iid`: NUTS (BlackJAX's, through the adapter) on the correlated 10-D Gaussian
  (AR(1), rho = 0.9, step 0.2) and on the standard 10-D Gaussian (step 0.5), T = 1000;
- `nuts_schools`: NUTS on non-centred eight schools (`targets.eight_schools`, D = 10), step 0.4,
  T = 1000.

With `--moments` it runs instead long sequential chains (MALA, HMC, NUTS) against the exact
moments of the targets: a correctness check of the kernels too slow for the test suite.

For each solver: status, parallel iterations, compile time, wall time after compilation (median
of `--repeats`) and its ratio to the Sequential chain measured in the same run, peak memory (the
process's peak RSS increase while the compiled program runs on CPU, or the device's peak bytes in
use on GPU; and XLA's own estimate of the program's footprint), max |parallel - sequential| and
the number of differing decisions (accept/reject; for NUTS also the number of leapfrog steps).
"BlackJAX scan" is BlackJAX's own sequential loop, whose state carries the gradient (one gradient
per MALA step instead of pnmcmc's two) but which draws its random numbers inside the loop from the
per-step keys; "(drawing the noise)" is the time pnmcmc spends drawing all of xi up front, which
the solver rows exclude.

    python benchmarks/kernels.py                              # everything (on a CPU: hours)
    python benchmarks/kernels.py --quick                      # smoke test: small T, no files
    python benchmarks/kernels.py --targets banana --solvers DEER ELK
    python benchmarks/kernels.py --targets banana --solvers 'DEER(segment=32)'   # any solver, literal kwargs
    python benchmarks/kernels.py --jacobians                  # add the sigmoid accept Jacobian
    python benchmarks/kernels.py --moments --append           # stationary moments, kept with the rest

Writes `benchmarks/results/kernels-<device>.md` and `.json` (with the command line and machine).
Every parallel solve is capped at `--max-iterations`; a solve that hits the cap finishes
sequentially (status MAX_ITERATIONS), so nothing runs forever.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
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
from _memory import PeakMemory, mb, xla_bytes  # noqa: E402
from _problems import vmapped  # noqa: E402
from _tables import RESULTS  # noqa: E402

import pnmcmc as pn  # noqa: E402
from pnmcmc import targets  # noqa: E402
from pnmcmc.kernels import HMC, MALA, NUTS, SigmoidJacobian  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Experiment:
    target: object
    kernel: object
    steps: int
    chains: tuple[int, ...]
    init_scale: float
    blackjax: object  # () -> (BlackJAX's build_kernel(), init, params), or None


def _blackjax_mala(step_size):
    import blackjax

    return lambda: (blackjax.mala.build_kernel(), blackjax.mala.init, dict(step_size=step_size))


def _blackjax_hmc(step_size, n, dim):
    import blackjax

    params = dict(step_size=step_size, inverse_mass_matrix=jnp.ones(dim), num_integration_steps=n)
    return lambda: (blackjax.hmc.build_kernel(), blackjax.hmc.init, params)


def experiments(quick: bool):
    long = 1000 if quick else 100_000
    return {
        "german": Experiment(
            targets.german_credit(), MALA(0.0015), 2048 // (4 if quick else 1),
            (1, 4) if quick else (1, 4, 16, 64), 0.1, _blackjax_mala(0.0015),
        ),
        "banana": Experiment(
            targets.banana(), HMC(0.5, 8), long, (1,), 10.0,
            _blackjax_hmc(0.5, 8, 2),
        ),
        "mixture": Experiment(
            targets.gaussian_mixture(), MALA(0.5), long, (1,), 1.0,
            _blackjax_mala(0.5),
        ),
        "nuts": Experiment(
            targets.correlated_gaussian(10), NUTS(0.2), 1000 // (10 if quick else 1), (1,), 1.0, None
        ),
        "nuts_iid": Experiment(
            targets.correlated_gaussian(10, 0.0), NUTS(0.5), 1000 // (10 if quick else 1), (1,), 1.0, None
        ),
        "nuts_schools": Experiment(
            targets.eight_schools(), NUTS(0.4), 1000 // (10 if quick else 1), (1,), 1.0, None
        ),
    }  # fmt: skip


SOLVERS = [
    "Jacobi", "Picard", "DEER",
    "DEER(max_norm=None)",  # plain Newton
    "QuasiDEER", "QuasiDEER(probes=1)", "ELK", "QuasiELK",
    "QuasiDEER(window={window})",
    # Segments (multiple shooting, pnmcmc.engine.segments): 16 steps per parallel element.
    "DEER(segment=16)", "QuasiDEER(segment=16)", "ELK(segment=16)", "Jacobi(segment=16)",
]  # fmt: skip


def solvers(cap, window):
    """`{label: solver}` of the table's solvers; `--solvers` may name any other (`_solvers`)."""
    return _solvers.table([label.format(window=window) for label in SOLVERS], cap)


# Jacobian-based solvers for the accept-Jacobian comparison (--jacobians), with any options.
_NEWTON = (pn.DEER, pn.QuasiDEER, pn.ELK, pn.QuasiELK)


def compile_and_time(fn, args, repeats, budget=None):
    """Compile, then run up to `repeats` times (fewer once `budget` seconds are spent): returns the
    output, compile time, median run time, peak memory of the first run, XLA's estimate, runs."""
    compiled, compile_s = _timing.compile(fn, args)
    times = []
    for i in range(repeats):
        with PeakMemory() as mem:
            out, seconds = _timing.timed(compiled, args)
            times.append(seconds)
        if i == 0:
            peak = mem.bytes
        if budget is not None and sum(times) > budget:
            break
    return out, compile_s, statistics.median(times), peak, xla_bytes(compiled), len(times)


def run_experiment(name, exp, n_chains, solver_items, args, dtype, rows, print_row):
    target, kernel = exp.target, exp.kernel
    d, n = target.dim, exp.steps
    key_x0, key_noise = jax.random.split(jax.random.key(args.seed))
    x0s = (exp.init_scale * jax.random.normal(key_x0, (n_chains, d))).astype(dtype)
    noise = jax.vmap(lambda k: kernel.noise(k, n, d, dtype))(jax.random.split(key_noise, n_chains))
    noise = jax.block_until_ready(noise)

    def solve_all(kernel, solver):
        return vmapped(functools.partial(kernel.step, target.logdensity), solver)

    @jax.jit
    def decisions(traj):
        prev = jnp.concatenate([x0s[:, None], traj[:, :-1]], axis=1)
        info = jax.vmap(jax.vmap(kernel.info, (None, 0, 0)), (None, 0, 0))(target.logdensity, prev, noise)
        return info.accepted, info.num_integration_steps

    seq, compile_s, seq_s, peak, xla, runs = compile_and_time(
        solve_all(kernel, pn.Sequential()), (x0s, noise), args.repeats, args.time_budget
    )
    reference = seq.trajectory
    ref_acc, ref_steps = decisions(reference)
    common = dict(target=name, steps=n, chains=n_chains, dim=d, kernel=repr(kernel))
    print_row(
        rows, dict(common, solver="Sequential", accept="exact", status="CONVERGED", iterations=0,
                   compile_s=compile_s, runs=runs, seconds=seq_s, ratio=1.0, peak_mb=mb(peak),
                   xla_mb=mb(xla), max_abs_diff=0.0, differing=0, acceptance=float(ref_acc.mean()))
    )  # fmt: skip
    # Drawing xi up front: not part of the Sequential time above (BlackJAX draws inside its loop).
    noise_keys = jax.random.split(key_noise, n_chains)
    draw = jax.jit(lambda keys: jax.vmap(lambda k: kernel.noise(k, n, d, dtype))(keys))
    _, compile_s, secs, peak, xla, runs = compile_and_time(
        draw, (noise_keys,), args.repeats, args.time_budget
    )
    print_row(
        rows, dict(common, solver="(drawing the noise)", accept="", status="", iterations=0,
                   compile_s=compile_s, runs=runs, seconds=secs, ratio=seq_s / secs, peak_mb=mb(peak),
                   xla_mb=mb(xla), max_abs_diff=0.0, differing=None, acceptance=None)
    )  # fmt: skip
    if exp.blackjax is not None and "BlackJAX scan" in args.solvers_selected:
        build, init, params = exp.blackjax()
        # The same per-step keys as pnmcmc's noise; BlackJAX draws its normals/uniforms in the loop.
        step_keys = jax.vmap(lambda k: jax.random.split(k, n))(noise_keys)

        def blackjax_scan(x0s, step_keys):
            def one(x0, keys):
                def body(state, key):
                    state, _ = build(key, state, target.logdensity, **params)
                    return state, state.position

                return jax.lax.scan(body, init(x0, target.logdensity), keys)[1]

            return jax.vmap(one)(x0s, step_keys)

        traj, compile_s, secs, peak, xla, runs = compile_and_time(
            blackjax_scan, (x0s, step_keys), args.repeats, args.time_budget
        )
        print_row(
            rows, dict(common, solver="BlackJAX scan", accept="exact", status="CONVERGED", iterations=0,
                       compile_s=compile_s, runs=runs, seconds=secs, ratio=seq_s / secs, peak_mb=mb(peak),
                       xla_mb=mb(xla), max_abs_diff=float(jnp.max(jnp.abs(traj - reference))),
                       differing=None, acceptance=None)
        )  # fmt: skip
    for label, solver in solver_items:
        # The accept-Jacobian choice exists for pnmcmc's own (dataclass) kernels, not BlackJAX's.
        sigmoid = args.jacobians and isinstance(solver, _NEWTON) and dataclasses.is_dataclass(kernel)
        accepts = ["exact", "sigmoid"] if sigmoid else ["exact"]
        for accept in accepts:
            k = kernel
            if accept == "sigmoid":
                k = dataclasses.replace(kernel, accept_jacobian=SigmoidJacobian())
            fn = solve_all(k, solver)
            sol, compile_s, secs, peak, xla, runs = compile_and_time(
                fn, (x0s, noise), args.repeats, args.time_budget
            )
            acc, steps = decisions(sol.trajectory)
            status = np.asarray(sol.status).ravel()
            names = sorted({pn.Status(int(s)).name for s in status})
            print_row(
                rows, dict(common, solver=label, accept=accept, status="/".join(names),
                           iterations=int(np.max(sol.num_iterations)), compile_s=compile_s, runs=runs,
                           seconds=secs, ratio=seq_s / secs, peak_mb=mb(peak), xla_mb=mb(xla),
                           max_abs_diff=float(jnp.max(jnp.abs(sol.trajectory - reference))),
                           differing=int(jnp.sum((acc != ref_acc) | (steps != ref_steps))),
                           sequential_steps=int(np.max(sol.sequential_steps)), acceptance=None)
            )  # fmt: skip


HEADER = (
    "| target | T | chains | solver | accept Jacobian | status | iterations | compile (s) | time (s) "
    "| vs Sequential | peak RSS (MB) | XLA est. (MB) | max abs diff | differing decisions |\n"
    f"|{'---|' * 14}"
)


def format_row(r):
    def num(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    status = r["status"]
    if r.get("sequential_steps"):  # how far the parallel iteration certified the chain
        status += f" ({r['steps'] - r['sequential_steps']} certified)"
    return (
        f"| {r['target']} | {r['steps']} | {r['chains']} | {r['solver']} | {r['accept']} | {status} "
        f"| {r['iterations']} | {r['compile_s']:.1f} | {r['seconds']:.3g} | {r['ratio']:.3g}x "
        f"| {num(r['peak_mb'], '.0f')} | {num(r['xla_mb'], '.0f')} | {r['max_abs_diff']:.1e} "
        f"| {num(r['differing'], 'd')} |"
    )


MOMENT_CHECKS = {
    "mala-gaussian": (lambda: targets.correlated_gaussian(10, 0.0), MALA(0.5), 100_000),
    "mala-mixture": (targets.gaussian_mixture, MALA(0.5), 100_000),
    "hmc-banana": (targets.banana, HMC(0.5, 8), 100_000),
    "nuts-gaussian": (lambda: targets.correlated_gaussian(10, 0.0), NUTS(0.5), 20_000),
}


def stationary_moments(dtype, quick, seed):
    """Long sequential chains against the exact mean and standard deviation of each target.

    z = (chain mean - true mean) / MCSE, with the Monte Carlo standard error from 50 batch means
    (the first 10% of the chain discarded); |z| beyond ~4 would point at a wrong kernel.
    """
    rows = []
    for name, (make, kernel, n) in MOMENT_CHECKS.items():
        n = n // 100 if quick else n
        target = make()
        key_x0, key_noise = jax.random.split(jax.random.key(seed))
        x0 = jax.random.normal(key_x0, (target.dim,), dtype)
        noise = kernel.noise(key_noise, n, target.dim, dtype)
        step = functools.partial(kernel.step, target.logdensity)
        start = time.perf_counter()
        traj = np.asarray(pn.solve(step, x0, noise, pn.Sequential()).trajectory)[n // 10 :]
        seconds = time.perf_counter() - start
        batches = traj[: len(traj) // 50 * 50].reshape(50, -1, target.dim).mean(axis=1)
        mcse = batches.std(axis=0, ddof=1) / np.sqrt(50)
        z = (traj.mean(axis=0) - target.mean) / mcse
        std_err = traj.std(axis=0) / target.std - 1.0
        ess = (traj.var(axis=0) / mcse**2).min()
        rows.append(
            dict(check=name, kernel=repr(kernel), steps=n, seconds=seconds, max_abs_z=float(np.abs(z).max()),
                 max_rel_std_error=float(np.abs(std_err).max()), min_ess=float(ess))
        )  # fmt: skip
        r = rows[-1]
        print(f"| {name} | {n} | {r['max_abs_z']:.2f} | {r['max_rel_std_error']:.3f} | {ess:.0f} |")
    return rows


MOMENTS_HEADER = (
    "| chain | T | max abs z of the mean | max relative error of the std | min ESS (batch means) |\n"
    "|---|---|---|---|---|"
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--targets", nargs="+", default=["german", "banana", "mixture", "nuts", "nuts_iid", "nuts_schools"]
    )
    parser.add_argument(
        "--solvers", nargs="+", default=None, help="names as in the table, or e.g. 'DEER(segment=32)'"
    )
    parser.add_argument("--chains", type=int, nargs="+", default=None, help="override chain counts")
    parser.add_argument("--steps", type=int, default=None, help="override T for every target")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--time-budget", type=float, default=30.0, help="stop repeating a row after this many seconds"
    )
    parser.add_argument("--max-iterations", type=int, default=1000)
    parser.add_argument("--window", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jacobians", action="store_true", help="also the sigmoid accept Jacobian")
    parser.add_argument("--float32", action="store_true")
    parser.add_argument("--quick", action="store_true", help="small T, 1 repeat, no files written")
    parser.add_argument(
        "--moments", action="store_true", help="only the stationary-moment check of long sequential chains"
    )
    parser.add_argument("--output", default=None, help="file stem (default results/kernels-<device>)")
    parser.add_argument(
        "--append", action="store_true", help="merge into the existing results (same rows are replaced)"
    )
    parser.add_argument("--note", default=None, help="a paragraph for the top of the Markdown file")
    parser.add_argument("--render", action="store_true", help="only rewrite the Markdown from the JSON")
    args = parser.parse_args(argv)
    if not args.float32:
        jax.config.update("jax_enable_x64", True)  # the benchmark's choice; the library never does
    dtype = jnp.float32 if args.float32 else jnp.float64
    if args.quick:
        args.repeats = 1
    all_solvers = solvers(args.max_iterations, args.window)
    args.solvers_selected = set(args.solvers or ["BlackJAX scan", *all_solvers])
    solver_items = [(k, v) for k, v in all_solvers.items() if k in args.solvers_selected]
    solver_items += [
        (label, _solvers.from_label(label, args.max_iterations))
        for label in args.solvers or []
        if label not in (*all_solvers, "BlackJAX scan", "Sequential")  # Sequential: always the first row
    ]
    device = jax.devices()[0]
    command = _tables.invocation("kernels.py", argv)
    stem = Path(args.output) if args.output else RESULTS / f"kernels-{_tables.device_slug(device)}"
    meta = dict(
        device=str(device.device_kind),
        platform=platform.platform(),
        processor=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        jax=jax.__version__,
        dtype=jnp.dtype(dtype).name,
        date=time.strftime("%Y-%m-%d %H:%M"),
    )
    results = dict(rows=[], moments=[])
    if (args.append or args.render) and stem.with_suffix(".json").exists():
        old = json.loads(stem.with_suffix(".json").read_text())
        results = dict(rows=old["rows"], moments=old.get("moments", []))
        if args.render or args.note is None:
            meta = dict(meta, note=old["meta"].get("note"))
        if args.render:  # nothing was run: the date stays that of the last run
            meta["date"] = old["meta"]["date"]
    if args.note is not None:
        meta["note"] = args.note
    if args.render:
        write_results(stem, meta, results)
        return results
    rows = []

    def print_row(_, row):
        """Print a row and (unless --quick) write all results so far: a killed run keeps its rows."""
        row = dict(row, max_iterations=args.max_iterations, command=command)
        rows.append(row)
        print(format_row(row), flush=True)
        if not args.quick:
            if args.append and stem.with_suffix(".json").exists():
                # Re-read: another run appending to the same file may have added rows meanwhile.
                on_disk = json.loads(stem.with_suffix(".json").read_text())
                results["rows"] = _merge(on_disk["rows"], rows)
                results["moments"] = results["moments"] or on_disk.get("moments", [])
            else:
                results["rows"] = _merge(results["rows"], rows)
            write_results(stem, meta, results)

    if args.moments:
        print(MOMENTS_HEADER)
        results["moments"] = stationary_moments(dtype, args.quick, args.seed)
        if not args.quick:
            write_results(stem, meta, results)
        return results
    print(HEADER, flush=True)
    for name in args.targets:
        exp = experiments(args.quick)[name]
        if args.steps:
            exp = dataclasses.replace(exp, steps=args.steps)
        for n_chains in args.chains or exp.chains:
            run_experiment(name, exp, n_chains, solver_items, args, dtype, rows, print_row)
    if not args.quick:
        print(f"\nwrote {stem}.md and .json")
    return rows


_ROW_KEY = ("target", "steps", "chains", "solver", "accept")


def _merge(old_rows, new_rows):
    """`old_rows` with every row of `new_rows` added, replacing old rows with the same key."""
    new_keys = {tuple(r[k] for k in _ROW_KEY) for r in new_rows}
    return [r for r in old_rows if tuple(r[k] for k in _ROW_KEY) not in new_keys] + list(new_rows)


def write_results(stem, meta, results):
    RESULTS.mkdir(exist_ok=True)
    order = list(experiments(False))
    rows = sorted(results["rows"], key=lambda r: (order.index(r["target"]), r["steps"], r["chains"]))
    moments = results["moments"]
    stem.with_suffix(".json").write_text(json.dumps(dict(meta=meta, rows=rows, moments=moments), indent=1))
    commands = list(dict.fromkeys(r["command"] for r in rows))
    lines = [
        f"# Kernel benchmark on {meta['device']} ({meta['cpu_count']} cores), {meta['dtype']}",
        "",
        f"Machine: {meta['platform']}, {meta['processor']}, jax {meta['jax']}; last run {meta['date']}.",
        *(["", meta["note"]] if meta.get("note") else []),
        "",
        "Commands (each row's own command is in the JSON):",
        "",
        *(f"    {c}" for c in commands),
        "",
        "Times are medians of the runs after compilation (up to `--repeats` runs, fewer once",
        "`--time-budget` seconds are spent; the JSON has the count); 'vs Sequential' is the Sequential",
        "solver's time divided by the row's (above 1: faster), measured in the same run. Iterations are",
        "the maximum over chains, capped at `--max-iterations` (then the rest is computed sequentially:",
        "status MAX_ITERATIONS, with the number of steps the parallel iteration certified, the minimum",
        "over chains). Peak RSS: the process's peak resident-memory increase during the first",
        "timed run; XLA est.: arguments + outputs + temporaries of the compiled program.",
        "",
        HEADER,
        *(format_row(r) for r in rows),
    ]
    if moments:
        lines += [
            "",
            "## Stationary moments of long sequential chains (`--moments`)",
            "",
            "z: (chain mean - exact mean) / Monte Carlo standard error (50 batch means, first 10%",
            "discarded); |z| beyond ~4 would point at a wrong kernel.",
            "",
            MOMENTS_HEADER,
            *(
                f"| {m['check']} | {m['steps']} | {m['max_abs_z']:.2f} | {m['max_rel_std_error']:.3f} "
                f"| {m['min_ess']:.0f} |"
                for m in moments
            ),
        ]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
