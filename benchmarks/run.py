"""Performance study: every solver against the sequential chain, per target, T, chains and device.

For each cell (target, T, chains, solver) it records

- `iterations` (parallel iterations, the maximum over chains; load-independent),
- `seconds`: wall time after compilation, the median of the timed runs, and `compile_s`,
- `ratio`: Sequential time / the cell's time on the same device, the median of per-round ratios
  of interleaved rounds (Sequential and every solver once per round), so that load on a shared
  machine slows every contender alike; above 1 means faster than `lax.scan`,
- `best_ratio`: the fastest sequential baseline over every device with results in
  `benchmarks/results/` (this run's and, e.g., `cpu.json` when running on a GPU) / the cell's time,
- `peak_mb`: on CPU the process's peak resident-memory increase during the cell's first run
  (sampled every 2 ms from /proc/self/statm, in this process: memory freed by earlier cells and
  reused is not counted, so it is a lower bound); on GPU the device's peak bytes in use (a
  process-wide high-water mark, minus the bytes in use before the cell: exact when the cell is the
  largest so far); `xla_mb`: XLA's estimate for the compiled program (arguments, outputs and
  temporaries), the same on every machine,
- `max_abs_diff`: max |parallel - sequential| over the whole trajectory of every chain,
- `status`: CONVERGED, MAX_ITERATIONS (with the steps certified in parallel) or `budget`.

**Time budget.** Every parallel program carries a per-iteration host callback (`pnmcmc.solve`'s
`callback`) that aborts the first run once it has taken `--time-budget` seconds. The cell is then
recompiled with `max_iterations` = the iterations done so far and run once: the engine finishes
the uncertified rest sequentially (status MAX_ITERATIONS) and the row says `budget`. Repeats stop
once a cell has spent the budget. `--time-budget 0` removes the callback (and the budget).

**auto.** `pnmcmc.choose_solver` on the first chain (its pilot time, compilations included, is the
`pilot_s` column, not part of `seconds`), then the chosen solver with `solve_auto`'s fallback cap,
vmapped over the chains like every other solver.

    python benchmarks/run.py --preset cpu                  # the CPU study (benchmarks/README.md)
    python benchmarks/run.py --device gpu --preset gpu     # the GPU groups (benchmarks/README.md)
    python benchmarks/run.py --targets gauss10 --steps 1000 10000 --chains 1 8 --solvers DEER auto

Writes `benchmarks/results/<device>.json` and `.md` (device = cpu, h100, h200, ...; `-float32`
appended with `--float32`) after every group of cells, so a killed run keeps what it measured,
and the plots `<device>-speedup.png`, `-iterations.png`, `-memory.png` (`benchmarks/plots.py`).
`--append` merges into existing results (same cells replaced); every command is listed at the top.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")  # see docs/troubleshooting.md


def _early_device():
    """Pick the JAX platform from --device before JAX is imported."""
    if "--device" in sys.argv:
        value = sys.argv[sys.argv.index("--device") + 1]
        os.environ["JAX_PLATFORMS"] = {"gpu": "cuda", "cpu": "cpu"}.get(value, value)


_early_device()
sys.path.insert(0, str(Path(__file__).parent))  # the shared helpers, also when run as a module

import _solvers  # noqa: E402
import _timing  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _memory import PeakMemory, estimate_bytes, mb, xla_bytes  # noqa: E402
from _problems import TARGETS, chain_data, vmapped  # noqa: E402
from _study_tables import HEADER, PROFILE_HEADER, format_row, profile_row, write_results  # noqa: E402
from _tables import RESULTS, device_label, invocation  # noqa: E402
from plots import make_plots  # noqa: E402

import pnmcmc as pn  # noqa: E402

# An aborted run prints the callback's traceback through this logger; the abort is expected.
logging.getLogger("jax._src.debugging").setLevel(logging.CRITICAL)

# ---------------------------------------------------------------------------------------------
# Solvers


def solver_table(cap, probes, window):
    """`{label: solver}` of every solver the study knows (`auto` stays the string "auto")."""
    labels = ["Sequential", "DEER", "QuasiDEER", f"QuasiDEER(probes={probes})", "ELK", "QuasiELK", "Picard"]
    table = _solvers.table([*labels, "DEER(segment=16)", "QuasiDEER(segment=16)"], cap)
    table["auto"] = "auto"
    if window:
        table |= _solvers.table([f"QuasiDEER(window={window})", f"DEER(window={window})"], cap)
    return table


# ---------------------------------------------------------------------------------------------
# Presets: (target, T, chains, solver labels)

CORE = ("Sequential", "DEER", "QuasiDEER", "QuasiDEER(probes=2)", "auto")
ALL = (*CORE, "ELK", "QuasiELK", "Picard")
SEGMENTED = ("DEER(segment=16)", "QuasiDEER(segment=16)")  # multiple shooting, pnmcmc.engine.segments

PRESETS = {
    "cpu": [
        ("gauss10", 1000, 1, ALL), ("gauss10", 10000, 1, CORE), ("gauss10", 100000, 1, ALL),
        ("gauss10", 10000, 8, CORE), ("gauss10", 1000000, 1, ("Sequential", "auto")),
        ("gauss100", 1000, 1, CORE),
        ("gauss1000", 1000, 1, CORE),
        ("banana", 1000, 1, ALL), ("banana", 100000, 1, CORE),
        ("mixture", 1000, 1, ALL), ("mixture", 100000, 1, CORE),
        ("german_mala", 2048, 1, ALL), ("german_mala", 2048, 8, CORE),
        ("german_mala", 65536, 8, ("Sequential",)),
        ("german_hmc", 2048, 1, CORE),
        ("eight_schools", 1000, 1, CORE),
        ("blr", 1000, 1, CORE), ("blr", 10000, 1, CORE),
        ("german_mala", 2048, 64, ("Sequential", "QuasiDEER(probes=2)")),
    ],
    "gpu": [
        ("gauss10", 100000, 1, (*ALL, *SEGMENTED)), ("gauss10", 1000000, 1, (*CORE, *SEGMENTED)),
        ("banana", 100000, 1, (*ALL, *SEGMENTED)),
        ("mixture", 100000, 1, (*CORE, *SEGMENTED)),
        ("german_mala", 2048, 64, (*CORE, *SEGMENTED)), ("german_mala", 65536, 8, (*ALL, *SEGMENTED)),
        ("german_mala", 1000000, 1, ("Sequential", "QuasiDEER(window=65536)", "DEER(window=65536)")),
        ("eight_schools", 10000, 1, (*CORE, *SEGMENTED)),
        ("blr", 100000, 1, (*CORE, *SEGMENTED)),
    ],
}  # fmt: skip

# ---------------------------------------------------------------------------------------------
# Measurement


class _Budget:
    """The per-iteration callback: records progress and aborts a run past its deadline."""

    deadline = math.inf
    iteration = 0
    certified = 0

    class Exceeded(Exception):
        pass

    @classmethod
    def callback(cls, iteration, certified, residual):
        cls.iteration = max(cls.iteration, int(iteration))
        cls.certified = int(certified)
        if time.perf_counter() > cls.deadline:
            raise cls.Exceeded(f"time budget exceeded at iteration {int(iteration)}")

    @classmethod
    def arm(cls, seconds):
        cls.iteration, cls.certified = 0, 0
        cls.deadline = time.perf_counter() + seconds if seconds else math.inf


@dataclasses.dataclass
class Cell:
    """One solver's measurements in a group, gathered stage by stage."""

    label: str
    solver: object
    compiled: object = None
    compile_s: float = 0.0
    xla: int | None = None
    out: object = None
    times: list = dataclasses.field(default_factory=list)
    first: float = 0.0  # the first run's time, which sets how many rounds the cell gets
    paired: list = dataclasses.field(default_factory=list)  # Sequential's time / this one's, per round
    peak: int | None = None
    budget_hit: bool = False
    skip: str = ""
    pilot_s: float | None = None
    chosen: str = ""


@dataclasses.dataclass(frozen=True)
class Group:
    """One (target, T, chains): the chains every cell of the group solves."""

    problem: object
    steps: int
    chains: int
    data: tuple  # (x0s, noise)
    step: object


def run_group(problem, steps, chains, labels, table, args, device, dtype):
    """Measure every selected solver on one (target, T, chains); returns the rows."""
    data = chain_data(problem, steps, chains, dtype, args.seed)
    group = Group(problem, steps, chains, data, problem.step)
    cells = [_first_run(Cell(label, table[label]), group, args, device, dtype) for label in labels]
    reference = next(c for c in cells if c.label == "Sequential")
    _interleaved_rounds([c for c in cells if not c.skip], reference, data, args)
    return [_row(c, reference, group) for c in cells]


def _first_run(cell, group, args, device, dtype):
    """Screen the cell's memory, let `auto` choose, compile, and run once under the time budget; a
    run past the budget is finished with `max_iterations` = the iterations it had done."""
    step, data, dim = group.step, group.data, group.problem.dim
    need = estimate_bytes(cell.solver, group.steps, dim, group.chains, jnp.dtype(dtype).itemsize)
    if need > args.memory_limit * 2**30:
        cell.skip = f"skipped: needs ~{need / 2**30:.1f} GiB > --memory-limit {args.memory_limit:g}"
        return cell
    if cell.solver == "auto":
        _choose(cell, step, data)
    seq = isinstance(cell.solver, pn.Sequential)
    callback = _Budget.callback if args.time_budget and not seq else None
    _compile(cell, vmapped(step, cell.solver, callback), data)
    _Budget.arm(args.time_budget)
    try:
        _run_once(cell, data, device)
    except Exception as error:  # the budget callback aborted the run, or something broke
        if "time budget exceeded" not in str(error):
            if seq:
                raise
            cell.skip = f"error: {type(error).__name__}: {str(error).splitlines()[0][:120]}"
            return cell
        cap = max(1, _Budget.iteration)
        print(f"    {cell.label}: time budget hit at iteration {cap}; finishing with max_iterations={cap}")
        cell.budget_hit = True
        cell.solver = dataclasses.replace(cell.solver, max_iterations=cap)
        _compile(cell, vmapped(step, cell.solver), data)
        _run_once(cell, data, device)
    return cell


def _choose(cell, step, data):
    """`auto`: choose on the first chain (the pilot's time is the cell's `pilot_s`), then the chosen
    solver with `solve_auto`'s fallback cap, vmapped like every other solver."""
    from pnmcmc.analysis.auto import fallback_cap

    x0s, noise = data
    began = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pn.PnmcmcWarning)
        choice = pn.choose_solver(step, x0s[0], jax.tree.map(lambda a: a[0], noise))
    cell.pilot_s = time.perf_counter() - began
    cell.solver = fallback_cap(choice)
    cell.chosen = _solvers.short_name(choice.solver)


def _compile(cell, fn, data):
    cell.compiled, seconds = _timing.compile(fn, data)
    cell.compile_s += seconds
    cell.xla = xla_bytes(cell.compiled)


def _run_once(cell, data, device):
    with PeakMemory(device) as mem:
        cell.out, seconds = _timing.timed(cell.compiled, data)
    cell.peak, cell.times = mem.bytes, [seconds]


def _interleaved_rounds(active, reference, data, args):
    """Sequential and every cell still within its budget, once per round, so that load on a shared
    machine slows every contender alike."""
    for c in active:
        c.first = c.times[0]

    # Cheap cells (first run under 50 ms / 0.5 s) get up to 20 / 10 rounds: single short runs are
    # too noisy on a shared machine.
    def wanted(c):
        fast = max(c.first, reference.first)
        many = 20 if fast < 0.05 else max(args.repeats, 10) if fast < 0.5 else args.repeats
        within = sum(c.times) + c.times[-1] <= args.time_budget_or_inf  # one more run fits the budget
        return not c.budget_hit and len(c.times) < many and within

    _Budget.arm(0)
    while any(wanted(c) for c in active if c is not reference):
        _, seq_s = _timing.timed(reference.compiled, data)
        reference.times.append(seq_s)
        for c in active:
            if c is not reference and wanted(c):
                _, s = _timing.timed(c.compiled, data)
                c.times.append(s)
                c.paired.append(seq_s / s)


def _row(c, reference, group):
    problem, steps = group.problem, group.steps
    row = dict(
        target=problem.name, steps=steps, chains=group.chains, dim=problem.dim, kernel=repr(problem.kernel),
        solver=c.label,
    )  # fmt: skip
    if c.skip:
        return dict(row, status=c.skip)
    sol = c.out
    names = sorted({pn.Status(int(s)).name for s in np.asarray(sol.status).ravel()})
    seconds = _timing.median_after_first(c.times)
    return dict(
        row,
        status="/".join(names),
        budget=c.budget_hit,
        certified=steps - int(np.max(sol.sequential_steps)),
        iterations=int(np.max(sol.num_iterations)),
        compile_s=c.compile_s,
        seconds=seconds,
        runs=len(c.times),
        ratio=_timing.median_after_first(reference.times) / seconds,
        ratio_paired=statistics.median(c.paired) if c.paired else None,
        times=c.times,
        peak_mb=mb(c.peak),
        xla_mb=mb(c.xla),
        max_abs_diff=float(jnp.max(jnp.abs(sol.trajectory - reference.out.trajectory))),
        pilot_s=c.pilot_s,
        chosen=c.chosen,
        solver_repr=_solvers.short_name(c.solver),
    )


def acceptance(problem, steps, chains, args, dtype):
    """The mean acceptance of a short sequential chain (a sanity check of the configuration)."""
    kernel, d = problem.kernel, problem.dim
    n = min(steps, 1000)
    key_x0, key_noise = jax.random.split(jax.random.key(args.seed))
    x0 = problem.init(key_x0, 1, dtype)[0]
    noise = kernel.noise(jax.random.split(key_noise, 1)[0], n, d, dtype)
    step = problem.step
    traj = pn.solve(step, x0, noise, pn.Sequential()).trajectory
    prev = jnp.concatenate([x0[None], traj[:-1]])
    info = jax.vmap(kernel.info, (None, 0, 0))(problem.logdensity, prev, noise)
    return float(jnp.mean(info.acceptance_rate))


def profile_iteration(problem, steps, args, dtype, repeats=5):
    """What one DEER / QuasiDEER iteration costs, piece by piece, against the whole sequential chain.

    Times (best of `repeats`, after compilation) of: the sequential chain; one vmapped evaluation of
    the step over all T states (the residual); the full Jacobians (forward mode, D JVPs per step)
    with the step values; the dense affine scan; the exact diagonal; the diagonal scan.
    """
    from pnmcmc import jacobians, scans

    print(PROFILE_HEADER)
    kernel, d = problem.kernel, problem.dim
    key_x0, key_noise = jax.random.split(jax.random.key(args.seed))
    x0 = problem.init(key_x0, 1, dtype)[0]
    noise = kernel.noise(key_noise, steps, d, dtype)
    step = problem.step
    traj = pn.solve(step, x0, noise, pn.Sequential()).trajectory
    prev = jnp.concatenate([x0[None], traj[:-1]])
    _, full_jac = jax.jit(lambda p, n: jacobians.Full().evaluate(step, p, n, 0))(prev, noise)
    diag = jnp.diagonal(full_jac, axis1=1, axis2=2) if d <= 100 else jnp.zeros((steps, d), dtype)
    rhs = traj - prev
    pieces = {
        "sequential chain (lax.scan)": (lambda: pn.solve(step, x0, noise, pn.Sequential()).trajectory, ()),
        "vmapped step over T (residual)": (jax.jit(jax.vmap(step)), (prev, noise)),
        "full Jacobians (jacfwd) + values": (
            jax.jit(lambda p, n: jacobians.Full().evaluate(step, p, n, 0)),
            (prev, noise),
        ),
        "dense affine scan (T, D, D)": (jax.jit(scans.affine_dense), (full_jac, rhs)),
        "exact diagonal Jacobian + values": (
            jax.jit(lambda p, n: jacobians.Diagonal().evaluate(step, p, n, 0)),
            (prev, noise),
        ),
        "diagonal affine scan (T, D)": (jax.jit(scans.affine_diagonal), (diag, rhs)),
    }
    out = []
    for name, (fn, fargs) in pieces.items():
        jax.block_until_ready(fn(*fargs))  # compiles
        best = min(_timing.timed(fn, fargs)[1] for _ in range(repeats))
        out.append(dict(target=problem.name, steps=steps, piece=name, seconds=best))
    seq = out[0]["seconds"]
    for r in out:
        r["per_sequential"] = r["seconds"] / seq
        print(profile_row(r))
    return out


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or gpu (selects JAX_PLATFORMS)")
    parser.add_argument("--preset", choices=list(PRESETS), help="a curated list of cells")
    parser.add_argument("--targets", nargs="+", choices=list(TARGETS), help="restrict to these targets")
    parser.add_argument(
        "--solvers", nargs="+", help="restrict to these solver names (Sequential always runs)"
    )
    parser.add_argument("--steps", type=int, nargs="+", help="T values (replace the preset's)")
    parser.add_argument("--chains", type=int, nargs="+", help="chain counts (replace the preset's)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per cell")
    parser.add_argument("--time-budget", type=float, default=20.0, help="seconds per cell (0: none)")
    parser.add_argument("--max-iterations", type=int, default=2000)
    parser.add_argument("--probes", type=int, default=2, help="Hutchinson probes of the stochastic QuasiDEER")
    parser.add_argument("--window", type=int, default=65536, help="window of the sliding-window solvers")
    parser.add_argument(
        "--memory-limit", type=float, default=2.0, help="skip cells estimated above this (GiB)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--float32", action="store_true")
    parser.add_argument("--name", help="results file stem (default: the device, e.g. cpu, h100)")
    parser.add_argument("--append", action="store_true", help="merge into existing results")
    parser.add_argument(
        "--groups", type=int, nargs="+", help="run only these groups (indices from --dry-run)"
    )
    parser.add_argument("--dry-run", action="store_true", help="list the groups of cells and exit")
    parser.add_argument(
        "--profile", nargs=2, metavar=("TARGET", "T"), help="time the pieces of one iteration instead"
    )
    args = parser.parse_args(argv)
    args.time_budget_or_inf = args.time_budget or math.inf
    return args


def main(argv=None):
    args = parse(argv)
    if not args.float32:
        jax.config.update("jax_enable_x64", True)  # the benchmark's choice; the library never does
    dtype = jnp.float32 if args.float32 else jnp.float64
    table = solver_table(args.max_iterations, args.probes, args.window)
    groups = plan(args, table)
    if args.dry_run:
        for i, g in enumerate(groups):
            print(i, *g)
        return groups
    if args.groups:
        groups = [groups[i] for i in args.groups]
    device = jax.devices()[0]
    stem = RESULTS / (args.name or device_label(device, args.float32))
    command = invocation("run.py", argv)
    meta = dict(
        study="run.py",
        device=str(device.device_kind),
        platform_kind=device.platform,
        platform=platform.platform(),
        cpu_count=os.cpu_count(),
        jax=jax.__version__,
        dtype=jnp.dtype(dtype).name,
        date=time.strftime("%Y-%m-%d %H:%M"),
        time_budget=args.time_budget,
        max_iterations=args.max_iterations,
        acceptance={},
    )
    rows, notes = [], {}
    if args.append and stem.with_suffix(".json").exists():
        old = json.loads(stem.with_suffix(".json").read_text())
        rows, notes = old["rows"], old.get("notes", {})
        meta["acceptance"] = old["meta"].get("acceptance", {})
        meta["profile"] = old["meta"].get("profile", [])
    if args.profile:
        target, steps = args.profile[0], int(args.profile[1])
        new = profile_iteration(TARGETS[target](), steps, args, dtype)
        for r in new:
            r["command"] = command
        keep = [r for r in meta.get("profile", []) if (r["target"], r["steps"]) != (target, steps)]
        meta["profile"] = keep + new
        write_results(stem, meta, rows, notes)
        return new
    print(HEADER, flush=True)
    problems = {}
    for target, steps, chains, labels in groups:
        if target not in problems:
            problems[target] = TARGETS[target]()
            notes[target] = problems[target].note
            meta["acceptance"][target] = acceptance(problems[target], steps, 1, args, dtype)
        print(
            f"  [{time.strftime('%H:%M:%S')}] {target} T={steps} chains={chains}: {', '.join(labels)}",
            flush=True,
        )
        new = run_group(problems[target], steps, chains, labels, table, args, device, dtype)
        for r in new:
            r["command"] = command
            print(format_row(r), flush=True)
        key = ("target", "steps", "chains", "solver")
        rows = [r for r in rows if not any(all(r[k] == n[k] for k in key) for n in new)] + new
        rows.sort(key=lambda r: (list(TARGETS).index(r["target"]), r["steps"], r["chains"]))
        write_results(stem, meta, rows, notes)
    make_plots(stem)
    print(f"\nwrote {stem}.md and .json")
    return rows


def plan(args, table):
    """The (target, T, chains, solver labels) groups to run, from the preset and the filters."""
    if args.preset:
        groups = list(PRESETS[args.preset])
        if args.targets:
            groups = [g for g in groups if g[0] in args.targets]
        if args.steps:
            groups = [(t, n, c, s) for t, _, c, s in groups for n in args.steps]
        if args.chains:
            groups = [(t, n, c, s) for t, n, _, s in groups for c in args.chains]
        groups = list(dict.fromkeys(groups))
    else:
        groups = [
            (t, n, c, tuple(table))
            for t in (args.targets or ["gauss10"])
            for n in (args.steps or [1000])
            for c in (args.chains or [1])
        ]
    out = []
    for t, n, c, labels in groups:
        labels = [lbl for lbl in labels if lbl in table]
        if args.solvers:
            unknown = set(args.solvers) - set(table)
            if unknown:
                raise SystemExit(f"unknown solvers {sorted(unknown)}; choose from {list(table)}")
            labels = [lbl for lbl in labels if lbl in args.solvers] if args.preset else list(args.solvers)
        labels = ["Sequential"] + [lbl for lbl in labels if lbl != "Sequential"]
        out.append((t, n, c, tuple(labels)))
    return out


if __name__ == "__main__":
    main()
