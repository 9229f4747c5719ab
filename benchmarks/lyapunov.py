"""The iteration predictor and `solver="auto"` on the benchmark suite.

The suite: the four targets of `pnmcmc.targets` with the kernels of the published parallel-MCMC
configurations (correlated 10-D Gaussian with MALA, banana with HMC, the 2-D mixture with MALA,
German credit logistic regression with MALA), plus three toy maps: a contracting tanh RNN (gain
0.5), a tanh RNN of gain 2.5 (chaotic without input, contracting with it: the input saturates the
tanh) and an expanding one (the logistic map at r = 4, LLE ln 2).

Two tables, each from its own command:

- `--table iterations` writes `benchmarks/results/lyapunov-<device>.md` and `.json`: for every
  chain, T and solver (DEER, QuasiDEER), the iterations `choose_solver` predicts from its pilot
  (`calibrate_iterations` on the pilot's measured count, as `solve_auto` uses them) against the
  iterations the solver actually needs on the whole chain, and their ratio (goal: within a factor
  2). Iteration counts do not depend on the machine's load.
- `--table auto` writes `benchmarks/results/auto-<device>.md` and `.json`: for every chain, the
  time of `solve_auto` with the pilot included and without it (the solve of the solver it picked,
  with the fallback cap it sets), of Sequential and of the fastest fixed parallel solver, all
  measured in the same run in interleaved rounds (the fastest round counts), so that load on a
  shared machine slows every contender alike. Goals: auto (without the pilot) never more than
  10% slower than Sequential, and a parallel pick wherever a parallel solver is faster.

    XLA_FLAGS=--xla_cpu_multi_thread_eigen=false python benchmarks/lyapunov.py --table iterations
    XLA_FLAGS=--xla_cpu_multi_thread_eigen=false python benchmarks/lyapunov.py --table auto

Results are written after every row, so a run stopped by `--time-budget` or by hand keeps them.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")  # see docs/troubleshooting.md
sys.path.insert(0, str(Path(__file__).parent))  # the shared helpers, also when run as a module

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from _tables import RESULTS, device_slug, invocation  # noqa: E402

import pnmcmc as pn  # noqa: E402
from pnmcmc import auto, lyapunov, targets  # noqa: E402
from pnmcmc.kernels import HMC, MALA  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Problem:
    """A chain of the suite: `step(x, xi)`, its start and a function drawing T steps of noise."""

    name: str
    step: object
    x0: jax.Array
    noise: object  # n -> noise pytree with leading axis n


def _kernel_problem(name, target, kernel, init_scale, seed=0):
    key_x0, key_noise = jax.random.split(jax.random.key(seed))
    x0 = init_scale * jax.random.normal(key_x0, (target.dim,), jnp.float64)
    step = functools.partial(kernel.step, target.logdensity)
    return Problem(name, step, x0, lambda n: kernel.noise(key_noise, n, target.dim, jnp.float64))


def _tanh_rnn(name, gain, d=8, seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    w = gain * jax.random.normal(k1, (d, d), jnp.float64) / math.sqrt(d)

    def step(x, xi):
        return jnp.tanh(w @ x + xi)

    return Problem(name, step, jnp.zeros(d), lambda n: 0.5 * jax.random.normal(k2, (n, d), jnp.float64))


def _logistic(x, xi):
    return 4.0 * x * (1.0 - x)  # chaotic: LLE ln 2


def suite():
    problems = [
        _kernel_problem("Gaussian D=10 rho=0.9, MALA 0.05", targets.correlated_gaussian(10, 0.9),
                        MALA(0.05), 1.0),
        _kernel_problem("banana, HMC 0.5 x 8", targets.banana(), HMC(0.5, 8), 10.0),
        _kernel_problem("mixture, MALA 0.5", targets.gaussian_mixture(), MALA(0.5), 1.0),
        _kernel_problem("German credit, MALA 0.0015", targets.german_credit(), MALA(0.0015), 0.1),
        _tanh_rnn("contracting map: tanh RNN D=8, gain 0.5", 0.5),
        # Gain 2.5 would be chaotic without input, but the input noise saturates the tanh: contracting.
        _tanh_rnn("saturated map: tanh RNN D=8, gain 2.5", 2.5),
        Problem("expanding map: logistic r=4", _logistic, jnp.array([0.3]), lambda n: jnp.zeros((n, 0))),
    ]  # fmt: skip
    return {p.name: p for p in problems}


def _quiet(fn):
    # Non-convergence and expanding dynamics are what the tables report, not something to warn about.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pn.PnmcmcWarning)
        return fn()


def _solve(p, noise, solver):
    return jax.block_until_ready(_quiet(lambda: pn.solve(p.step, p.x0, noise, solver)))


def predict(p, noise, n, solver, pilot):
    """`choose_solver`'s two-pilot prediction for one solver, computed here so that its screening
    (which skips the longer pilot of candidates too slow to win) does not change the model tested.

    Returns (LLE estimate, pilot iterations, predicted iterations)."""
    sizes = (min(n, pilot), min(n, 8 * pilot))
    prefix = lambda m: jax.tree.map(lambda a: a[:m], noise)  # noqa: E731
    traj = _solve(p, prefix(sizes[1]), pn.Sequential()).trajectory
    est = pn.lyapunov_exponent(p.step, traj, prefix(sizes[1]), x0=p.x0)
    lam, se = float(est.exponent), float(est.stderr)
    if not lam + 2 * se < 0:
        return est, None, n  # what choose_solver reports for a chain that is not contracting
    first = _solve(p, prefix(sizes[0]), solver)
    k, converged = int(first.num_iterations), int(first.status) == pn.Status.CONVERGED
    longer = None
    if sizes[1] > sizes[0] and converged:
        second = _solve(p, prefix(sizes[1]), dataclasses.replace(solver, max_iterations=8 * (k + 1)))
        if int(second.status) == pn.Status.CONVERGED:
            longer = (int(second.num_iterations), sizes[1])
        else:
            converged = False
    rtol, atol = pn.default_tolerances(jnp.float64)
    predicted = lyapunov.calibrate_iterations(
        k, sizes[0], n, exponent=lam, tol=atol + rtol * float(jnp.mean(jnp.abs(traj))),
        initial_error=float(jnp.max(jnp.abs(traj - p.x0))), solver_kind=solver,
        spread=float(jnp.std(est.blocks)) * math.sqrt(sizes[1] // est.blocks.shape[0]),
        converged=converged, longer_pilot=longer,
    )  # fmt: skip
    return est, k, predicted


def iterations_rows(p, n, args):
    """One row per parallel solver: the pilots' prediction against the whole chain's count."""
    noise = p.noise(n)
    rows = []
    for solver in (pn.DEER(), pn.QuasiDEER()):
        est, pilot_iterations, predicted = predict(p, noise, n, solver, args.pilot)
        sol = _solve(p, noise, dataclasses.replace(solver, max_iterations=args.max_iterations))
        status = pn.Status(int(sol.status)).name
        actual = int(sol.num_iterations)
        # Counts below 1 count as 1. A capped run's true count is unknown (at least the cap): the
        # ratio is then an upper bound, and only a ratio already below 1/2 decides.
        ratio = max(predicted, 1) / max(actual, 1)
        within = 0.5 <= ratio <= 2.0
        if status == "MAX_ITERATIONS":
            within = False if ratio < 0.5 else None
        rows.append(
            dict(
                chain=p.name, steps=n, solver=type(solver).__name__, pilot_steps=min(n, args.pilot),
                lle=float(est.exponent), lle_se=float(est.stderr), pilot_iterations=pilot_iterations,
                predicted=predicted, actual=actual, status=status, ratio=ratio, within_2=within,
            )
        )  # fmt: skip
    return rows


def auto_row(p, n, args):
    """solve_auto (with and without its pilot), Sequential and every fixed parallel solver, timed."""
    noise = jax.block_until_ready(p.noise(n))
    began = time.perf_counter()
    choice = _quiet(lambda: auto.choose_solver(p.step, p.x0, noise))
    picked = auto.fallback_cap(choice)
    _solve(p, noise, picked)  # compile (part of what a user of solve_auto pays)
    pilot_seconds = time.perf_counter() - began
    cap = args.max_iterations
    contenders = {"Sequential": pn.Sequential()}
    contenders |= {k: s(max_iterations=cap) for k, s in (("DEER", pn.DEER), ("QuasiDEER", pn.QuasiDEER))}
    contenders["auto"] = picked
    solutions, compile_s = {}, {}
    for label, solver in contenders.items():
        t = time.perf_counter()
        solutions[label] = _solve(p, noise, solver)
        compile_s[label] = time.perf_counter() - t
    labels, seconds = list(contenders), dict.fromkeys(contenders, math.inf)
    spent = time.perf_counter()
    for r in range(args.repeats):  # interleaved rounds in rotating order: load hits every contender
        for label in labels[r % len(labels) :] + labels[: r % len(labels)]:
            t = time.perf_counter()
            _solve(p, noise, contenders[label])
            seconds[label] = min(seconds[label], time.perf_counter() - t)
        if r >= 1 and time.perf_counter() - spent > args.row_budget:
            break
    rounds = r + 1
    seq = seconds["Sequential"]
    fixed = {k: v for k, v in seconds.items() if k not in ("Sequential", "auto")}
    best = min(fixed, key=fixed.get)
    parallel_faster = fixed[best] < seq
    picked_parallel = not isinstance(choice.solver, pn.Sequential)
    reference = solutions["Sequential"].trajectory
    return dict(
        chain=p.name, steps=n, lle=float(choice.estimate.exponent), pick=choice.solver.name,
        pick_iterations=int(solutions["auto"].num_iterations),
        pick_status=pn.Status(int(solutions["auto"].status)).name,
        predicted_seconds=choice.report(choice.solver).predicted_seconds,
        auto_seconds=seconds["auto"], pilot_seconds=pilot_seconds,
        choose_seconds=choice.pilot_seconds, sequential_seconds=seq,
        best_parallel=best, best_parallel_seconds=fixed[best],
        best_parallel_iterations=int(solutions[best].num_iterations),
        best_parallel_status=pn.Status(int(solutions[best].status)).name,
        deer_seconds=seconds["DEER"], quasideer_seconds=seconds["QuasiDEER"],
        auto_vs_seq=seconds["auto"] / seq, auto_with_pilot_vs_seq=(seconds["auto"] + pilot_seconds) / seq,
        within_10pct=seconds["auto"] <= 1.1 * seq,
        right_pick=picked_parallel == parallel_faster,
        max_abs_diff=float(jnp.max(jnp.abs(solutions["auto"].trajectory - reference))),
        rounds=rounds, compile_seconds=compile_s,
    )  # fmt: skip


def _fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def _verdict(within):
    return "unknown (capped)" if within is None else "yes" if within else "**no**"


def iterations_markdown(meta, rows):
    ok = sum(r["within_2"] is True for r in rows)
    decided = sum(r["within_2"] is not None for r in rows)
    lines = [
        f"# Predicted versus actual parallel iterations ({meta['device']}, float64)",
        "",
        "Commands (run in this order, each appending its rows):",
        "",
        *(f"    {c}" for c in meta["command"].split("\n")),
        "",
        f"Measured on a shared {meta['cpu_count']}-core CPU ({meta['platform']}, jax {meta['jax']}; "
        f"{meta['date']}); iteration counts do not depend on the load.",
        "",
        "Predicted: what `choose_solver` predicts for the whole chain from its pilots (the counts on the",
        f"first P = {meta['pilot']} and L = 8P steps, extrapolated by `calibrate_iterations`; T when the",
        "pilot's LLE is not clearly negative or the count grows faster than linearly from P to L).",
        "Actual: `Solution.num_iterations` of the solver on the whole chain (capped at",
        f"{meta['max_iterations']}; a capped run finishes sequentially and its true count is at least",
        "the cap, so its ratio is an upper bound). Ratio = predicted / actual (counts below 1 count as",
        f"1); goal: within a factor 2. **{ok} of {decided} decided rows meet it** ({len(rows) - decided}",
        "capped rows undecided).",
        "",
        "| chain | T | solver | LLE (pilot) | pilot iterations | predicted | actual | status | ratio "
        "| within 2x |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['chain']} | {r['steps']} | {r['solver']} | {r['lle']:.3g} ± {r['lle_se']:.1g} "
            f"| {_fmt(r['pilot_iterations'], 'd')} | {r['predicted']} "
            f"| {('>= ' if r['status'] == 'MAX_ITERATIONS' else '') + str(r['actual'])} | {r['status']} "
            f"| {r['ratio']:.2f} | {_verdict(r['within_2'])} |"
        )
    return "\n".join(lines) + "\n"


def auto_markdown(meta, rows):
    fast = sum(r["within_10pct"] for r in rows)
    right = sum(r["right_pick"] for r in rows)
    lines = [
        f'# solver="auto" against Sequential and the best fixed parallel solver ({meta["device"]}, float64)',
        "",
        "Commands (run in this order, each appending its rows):",
        "",
        *(f"    {c}" for c in meta["command"].split("\n")),
        "",
        f"Measured on a shared {meta['cpu_count']}-core CPU ({meta['platform']}, jax {meta['jax']}; "
        f"{meta['date']}): other jobs were running, so absolute times are noisy; every contender of a row",
        "was timed in the same interleaved rounds (rotating order, the fastest round counts, at least 2).",
        "",
        "auto: the solve `solve_auto` runs (the picked solver with its fallback cap), after compilation.",
        "pilot: the one-off cost of the choice (`choose_solver`: compilations, pilot runs and their timing)",
        "plus compiling the picked solver; 'auto + pilot' is what one `solve_auto` call costs. The fixed",
        f"parallel solvers are DEER and QuasiDEER (capped at {meta['max_iterations']} iterations).",
        f"Goals: auto / seq <= 1.10 on every row (**{fast} of {len(rows)}**), and a parallel pick exactly",
        f"where the best fixed parallel solver beats Sequential (**{right} of {len(rows)}**).",
        "Where the pick is Sequential, 'auto' and 'seq' time the identical compiled program: their ratio",
        "only shows the timing noise of millisecond runs on the loaded machine (load average",
        f"{meta.get('load', 'n/a')}), not a cost of auto.",
        "",
        "| chain | T | LLE | pick (iterations) | auto s | auto + pilot s | seq s "
        "| best parallel s (iterations) | auto / seq | (auto + pilot) / seq | best parallel / seq "
        "| <= 1.1 seq | right pick |",
        "|" + "---|" * 13,
    ]
    for r in rows:
        lines.append(
            f"| {r['chain']} | {r['steps']} | {r['lle']:.3g} "
            f"| {r['pick'].split('(')[0]} ({r['pick_iterations']}) "
            f"| {r['auto_seconds']:.3g} | {r['auto_seconds'] + r['pilot_seconds']:.3g} "
            f"| {r['sequential_seconds']:.3g} "
            f"| {r['best_parallel']} {r['best_parallel_seconds']:.3g} ({r['best_parallel_iterations']}"
            f"{'' if r['best_parallel_status'] == 'CONVERGED' else ', ' + r['best_parallel_status']}) "
            f"| {r['auto_vs_seq']:.2f} | {r['auto_with_pilot_vs_seq']:.1f} "
            f"| {r['best_parallel_seconds'] / r['sequential_seconds']:.2f} "
            f"| {'yes' if r['within_10pct'] else '**no**'} | {'yes' if r['right_pick'] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=("iterations", "auto"), required=True)
    parser.add_argument("--chains", nargs="+", default=None, help="names (prefixes) of suite chains")
    parser.add_argument("--steps", type=int, nargs="+", default=None, help="chain lengths T")
    parser.add_argument("--max-iterations", type=int, default=1000, help="cap of the fixed solvers")
    parser.add_argument("--pilot", type=int, default=256, help="pilot length P of choose_solver")
    parser.add_argument("--max-dim-steps", type=int, default=2**17, help="skip rows with T * D above this")
    parser.add_argument("--append", action="store_true", help="merge into the existing results")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (auto table)")
    parser.add_argument("--row-budget", type=float, default=20.0, help="stop timing a row after this (s)")
    parser.add_argument("--time-budget", type=float, default=540.0, help="start no new row after this (s)")
    parser.add_argument("--output", default=None, help="file stem (default results/<table>-<device>)")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)  # the benchmark's choice; the library never does this
    steps = args.steps or ([1024, 4096, 16384] if args.table == "iterations" else [4096, 32768])
    problems = [
        p for k, p in suite().items() if args.chains is None or any(k.startswith(c) for c in args.chains)
    ]
    device = jax.devices()[0]
    prefix = "lyapunov" if args.table == "iterations" else "auto"
    stem = Path(args.output) if args.output else RESULTS / f"{prefix}-{device_slug(device)}"
    command = "XLA_FLAGS=--xla_cpu_multi_thread_eigen=false " + invocation("lyapunov.py", argv)
    meta = dict(
        command=command.strip(), device=str(device.device_kind), platform=platform.platform(),
        cpu_count=os.cpu_count(), jax=jax.__version__, date=time.strftime("%Y-%m-%d %H:%M"),
        max_iterations=args.max_iterations, pilot=args.pilot,
    )  # fmt: skip
    render = iterations_markdown if args.table == "iterations" else auto_markdown
    old_rows = []
    if args.append and stem.with_suffix(".json").exists():
        old = json.loads(stem.with_suffix(".json").read_text())
        old_rows = old["rows"]
        commands = old["meta"]["command"].split("\n")
        meta["command"] = "\n".join(dict.fromkeys(commands + [meta["command"]]))
    rows, began, skipped = [], time.perf_counter(), []
    for n in steps:
        for p in problems:
            if n * p.x0.shape[0] > args.max_dim_steps:
                skipped.append(f"{p.name} T={n} (T D > {args.max_dim_steps})")
                continue
            if time.perf_counter() - began > args.time_budget:
                skipped.append(f"{p.name} T={n}")
                continue
            t = time.perf_counter()
            new = iterations_rows(p, n, args) if args.table == "iterations" else [auto_row(p, n, args)]
            for r in new:
                r["row_seconds"] = time.perf_counter() - t
                print(json.dumps({k: v for k, v in r.items() if k != "compile_seconds"}), flush=True)
            rows += new
            meta["elapsed_seconds"] = time.perf_counter() - began
            meta["load"] = round(os.getloadavg()[0], 1)
            _write(stem, meta, old_rows, rows, skipped, render)
    _write(stem, meta, old_rows, rows, skipped, render)
    print(f"wrote {stem}.md and .json; skipped: {skipped}")


def _write(stem, meta, old_rows, rows, skipped, render):
    meta["skipped"] = skipped
    key = ("chain", "steps", "solver")
    new_keys = {tuple(r.get(k) for k in key) for r in rows}
    merged = [r for r in old_rows if tuple(r.get(k) for k in key) not in new_keys] + rows
    names = list(suite())
    order = {name: i for i, name in enumerate(names)}
    merged.sort(key=lambda r: (r["steps"], order.get(r["chain"], len(order)), r.get("solver", "")))
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(dict(meta=meta, rows=merged), indent=1))
    stem.with_suffix(".md").write_text(render(meta, merged))


if __name__ == "__main__":
    main()
