"""Performance study: every solver against the sequential chain, per target, T, chains and device.

One entry point for issue 6. For each cell (target, T, chains, solver) it records

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
    python benchmarks/run.py --device gpu --preset gpu     # the GPU study (benchmarks/gpu.sh)
    python benchmarks/run.py --targets gauss10 --steps 1000 10000 --chains 1 8 --solvers DEER auto

Writes `benchmarks/results/<device>.json` and `.md` (device = cpu, h100, h200, ...; `-float32`
appended with `--float32`) after every group of cells, so a killed run keeps what it measured,
and the plots `<device>-speedup.png`, `-iterations.png`, `-memory.png` (`benchmarks/plots.py`).
`--append` merges into existing results (same cells replaced); every command is listed at the top.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import math
import os
import platform
import statistics
import sys
import threading
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

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import pnmcmc as pn  # noqa: E402
from pnmcmc import targets  # noqa: E402
from pnmcmc.kernels import HMC, MALA, NUTS  # noqa: E402

RESULTS = Path(__file__).parent / "results"
# An aborted run prints the callback's traceback through this logger; the abort is expected.
logging.getLogger("jax._src.debugging").setLevel(logging.CRITICAL)

# ---------------------------------------------------------------------------------------------
# Targets


@dataclasses.dataclass(frozen=True)
class Problem:
    """A chain to benchmark: log density on a flat vector, kernel, and initial positions."""

    name: str
    dim: int
    logdensity: object
    kernel: object
    init: object  # (key, chains, dtype) -> (chains, D)
    note: str


def _scaled_normal(dim, scale, loc=None):
    def init(key, chains, dtype):
        x = scale * jax.random.normal(key, (chains, dim))
        return (x if loc is None else x + jnp.asarray(loc)).astype(dtype)

    return init


def _gaussian(dim, step):
    t = targets.correlated_gaussian(dim)
    note = f"AR(1) Gaussian rho=0.9, MALA step {step}, x0 ~ N(0, I)"
    return lambda: Problem(f"gauss{dim}", dim, t.logdensity, MALA(step), _scaled_normal(dim, 1.0), note)


def _banana():
    t = targets.banana()
    note = "banana, HMC step 0.5, 8 leapfrog steps, x0 ~ 10 N(0, I) (the published configuration)"
    return Problem("banana", 2, t.logdensity, HMC(0.5, 8), _scaled_normal(2, 10.0), note)


def _mixture():
    t = targets.gaussian_mixture()
    note = "4-component 2-D Gaussian mixture, MALA step 0.5, x0 ~ N(0, I)"
    return Problem("mixture", 2, t.logdensity, MALA(0.5), _scaled_normal(2, 1.0), note)


def _german(kernel, label):
    def make():
        t = targets.german_credit()
        note = f"German credit logistic regression (D=25), {label}, x0 ~ 0.1 N(0, I)"
        return Problem(f"german_{kernel.name}", 25, t.logdensity, kernel, _scaled_normal(25, 0.1), note)

    return make


def _eight_schools():
    from numpyro.infer import init_to_uniform

    from pnmcmc.sampling.modeling import flatten_model

    post = pn.models.eight_schools()
    flat = flatten_model(
        post.model, post.model_args, post.model_kwargs, rng_key=jax.random.key(0), num_chains=1,
        init_strategy=init_to_uniform,
    )  # fmt: skip
    note = "eight schools non-centred (D=10, unconstrained), NUTS step 0.4, x0 ~ uniform(-2, 2)"
    dim = flat.dim

    def init(key, chains, dtype):
        return jax.random.uniform(key, (chains, dim), minval=-2.0, maxval=2.0).astype(dtype)

    return Problem("eight_schools", dim, flat.logdensity, NUTS(0.4), init, note)


def _posteriordb(name="sblri-blr"):
    """A posteriordb regression; MALA preconditioned with the reference posterior variances."""
    from numpyro.infer import init_to_median

    from pnmcmc.sampling.modeling import flatten_model

    post = pn.models.posteriordb(name)
    flat = flatten_model(
        post.model, post.model_args, post.model_kwargs, rng_key=jax.random.key(0), num_chains=1,
        init_strategy=init_to_median,
    )  # fmt: skip
    # Reference mean and sd per unconstrained coordinate (sigma on the log scale: delta method).
    mean, sd = [], []
    for site in flat.latent_sites:
        cols = sorted((k for k in post.reference if k == site or k.startswith(site + "[")), key=_col_index)
        for col in cols:
            m, s = post.reference[col]
            positive = site.startswith("sigma")
            mean.append(math.log(m) if positive else m)
            sd.append(s / m if positive else s)
    if len(mean) != flat.dim:
        raise RuntimeError(f"{name}: could not match the reference to the {flat.dim} coordinates")
    var = np.asarray(sd) ** 2
    kernel = MALA(0.5, inverse_mass_matrix=var)
    note = (
        f"posteriordb {name} (D={flat.dim}), MALA step 0.5 with the reference variances as inverse "
        "mass matrix, x0 ~ reference mean + sd N(0, I)"
    )
    init = _scaled_normal(flat.dim, np.asarray(sd), loc=np.asarray(mean))
    return Problem("blr", flat.dim, flat.logdensity, kernel, init, note)


def _col_index(col):
    return int(col[col.index("[") + 1 : -1]) if "[" in col else 0


TARGETS = {
    "gauss10": _gaussian(10, 0.05),
    "gauss100": _gaussian(100, 0.02),
    "gauss1000": _gaussian(1000, 0.01),
    "banana": _banana,
    "mixture": _mixture,
    "german_mala": _german(MALA(0.0015), "MALA step 0.0015"),
    "german_hmc": _german(HMC(0.03, 8), "HMC step 0.03, 8 leapfrog steps"),
    "eight_schools": _eight_schools,
    "blr": _posteriordb,
}

# ---------------------------------------------------------------------------------------------
# Solvers


def solver_table(cap, probes, window):
    table = {
        "Sequential": pn.Sequential(),
        "DEER": pn.DEER(max_iterations=cap),
        "QuasiDEER": pn.QuasiDEER(max_iterations=cap),
        f"QuasiDEER(probes={probes})": pn.QuasiDEER(probes=probes, max_iterations=cap),
        "ELK": pn.ELK(max_iterations=cap),
        "QuasiELK": pn.QuasiELK(max_iterations=cap),
        "Picard": pn.Picard(max_iterations=cap),
        "DEER(segment=16)": pn.DEER(segment=16, max_iterations=cap),
        "QuasiDEER(segment=16)": pn.QuasiDEER(segment=16, max_iterations=cap),
        "auto": "auto",
    }
    if window:
        table[f"QuasiDEER(window={window})"] = pn.QuasiDEER(window=window, max_iterations=cap)
        table[f"DEER(window={window})"] = pn.DEER(window=window, max_iterations=cap)
    return table


def _solver_short(solver) -> str:
    if isinstance(solver, pn.Sequential):
        return "Sequential"
    fields = [f"{k}={v}" for k in ("probes", "window") if (v := getattr(solver, k, None)) is not None]
    fields += [f"segment={solver.segment}"] if getattr(solver, "segment", 1) > 1 else []
    return f"{type(solver).__name__}({', '.join(fields)})" if fields else type(solver).__name__


def jacobian_bytes(solver, steps, dim, chains, itemsize):
    """A rough upper estimate of the bytes a solver needs (Jacobians, scan temporaries, trajectories)."""
    if isinstance(solver, pn.Sequential) or solver == "auto":
        return 4 * steps * dim * chains * itemsize
    w = min(steps, solver.window or steps)
    per = 6 * w * dim
    w = math.ceil(w / solver.segment)  # Jacobian information is held per segment end
    if isinstance(solver, (pn.DEER, pn.ELK)):
        per += (4 if isinstance(solver, pn.DEER) else 8) * w * dim * dim
    elif isinstance(solver, (pn.QuasiDEER, pn.QuasiELK)) and solver.probes is None:
        per += 2 * w * dim * dim  # the exact diagonal materialises the full Jacobians transiently
    return (per + 4 * steps * dim) * chains * itemsize


# ---------------------------------------------------------------------------------------------
# Presets: (target, T, chains, solvers or None for all selected)

CORE = ("Sequential", "DEER", "QuasiDEER", "QuasiDEER(probes=2)", "auto")
ALL = (*CORE, "ELK", "QuasiELK", "Picard")
SEGMENTED = ("DEER(segment=16)", "QuasiDEER(segment=16)")  # pnmcmc.engine.segments (after the CPU study)

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


class PeakMemory:
    """Peak memory while a block runs: RSS increase on CPU (polled), device peak on GPU."""

    def __init__(self, device):
        self.device = device
        self.gpu = device.platform != "cpu"

    @staticmethod
    def _rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        if self.gpu:
            self.base = (self.device.memory_stats() or {}).get("bytes_in_use", 0)
            return self
        self.base = self.peak = self._rss()
        self.running = True

        def poll():
            while self.running:
                self.peak = max(self.peak, self._rss())
                time.sleep(0.002)

        self.thread = threading.Thread(target=poll, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.gpu:
            stats = self.device.memory_stats() or {}
            self.bytes = stats.get("peak_bytes_in_use", 0) - self.base if stats else None
            return
        self.running = False
        self.thread.join()
        self.bytes = max(self.peak, self._rss()) - self.base


def _vmapped(step, solver, callback):
    return lambda x0s, noise: jax.vmap(lambda x0, xi: pn.solve(step, x0, xi, solver, callback=callback))(
        x0s, noise
    )


def _compile(fn, args):
    began = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    seconds = time.perf_counter() - began
    analysis = compiled.memory_analysis()
    xla = None
    if analysis is not None:
        xla = analysis.argument_size_in_bytes + analysis.output_size_in_bytes + analysis.temp_size_in_bytes
    return compiled, seconds, xla


def _timed(compiled, args):
    began = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    return out, time.perf_counter() - began


@dataclasses.dataclass
class Cell:
    label: str
    solver: object
    compiled: object = None
    compile_s: float = 0.0
    xla: int | None = None
    out: object = None
    times: list = dataclasses.field(default_factory=list)
    paired: list = dataclasses.field(default_factory=list)
    peak: int | None = None
    budget_hit: bool = False
    skip: str = ""
    pilot_s: float | None = None
    chosen: str = ""


def run_group(problem, steps, chains, labels, table, args, device, dtype):
    """Measure every selected solver on one (target, T, chains); returns the rows."""
    kernel, d = problem.kernel, problem.dim
    key_x0, key_noise = jax.random.split(jax.random.key(args.seed))
    x0s = problem.init(key_x0, chains, dtype)
    noise = jax.vmap(lambda k: kernel.noise(k, steps, d, dtype))(jax.random.split(key_noise, chains))
    noise = jax.block_until_ready(noise)
    data = (x0s, noise)
    step = functools.partial(kernel.step, problem.logdensity)
    callback = _Budget.callback if args.time_budget else None
    itemsize = jnp.dtype(dtype).itemsize
    cells = []
    for label in labels:
        solver = table[label]
        cell = Cell(label, solver)
        need = jacobian_bytes(solver, steps, d, chains, itemsize)
        if need > args.memory_limit * 2**30:
            cell.skip = f"skipped: needs ~{need / 2**30:.1f} GiB > --memory-limit {args.memory_limit:g}"
            cells.append(cell)
            continue
        if solver == "auto":
            began = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", pn.PnmcmcWarning)
                choice = pn.choose_solver(step, x0s[0], jax.tree.map(lambda a: a[0], noise))
            cell.pilot_s = time.perf_counter() - began
            from pnmcmc.analysis.auto import fallback_cap

            cell.solver = fallback_cap(choice)
            cell.chosen = _solver_short(choice.solver)
        seq = isinstance(cell.solver, pn.Sequential)
        fn = _vmapped(step, cell.solver, None if seq else callback)
        cell.compiled, cell.compile_s, cell.xla = _compile(fn, data)
        _Budget.arm(args.time_budget)
        try:
            with PeakMemory(device) as mem:
                cell.out, seconds = _timed(cell.compiled, data)
            cell.peak, cell.times = mem.bytes, [seconds]
        except Exception as error:  # the budget callback aborted the run, or something broke
            if "time budget exceeded" not in str(error):
                if seq:
                    raise
                cell.skip = f"error: {type(error).__name__}: {str(error).splitlines()[0][:120]}"
                cells.append(cell)
                continue
            cap = max(1, _Budget.iteration)
            print(f"    {label}: time budget hit at iteration {cap}; finishing with max_iterations={cap}")
            cell.budget_hit = True
            cell.solver = dataclasses.replace(cell.solver, max_iterations=cap)
            cell.compiled, extra, cell.xla = _compile(_vmapped(step, cell.solver, None), data)
            cell.compile_s += extra
            with PeakMemory(device) as mem:
                cell.out, seconds = _timed(cell.compiled, data)
            cell.peak, cell.times = mem.bytes, [seconds]
        cells.append(cell)
    # Interleaved rounds: Sequential and every cell still within its budget, once per round.
    reference = next(c for c in cells if c.label == "Sequential")
    active = [c for c in cells if not c.skip]
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
        _, seq_s = _timed(reference.compiled, data)
        reference.times.append(seq_s)
        for c in active:
            if c is not reference and wanted(c):
                _, s = _timed(c.compiled, data)
                c.times.append(s)
                c.paired.append(seq_s / s)
    rows = []
    ref_traj = reference.out.trajectory
    seq_median = _median_after_first(reference.times)
    common = dict(target=problem.name, steps=steps, chains=chains, dim=d, kernel=repr(kernel))
    for c in cells:
        row = dict(common, solver=c.label)
        if c.skip:
            rows.append(dict(row, status=c.skip))
            continue
        sol = c.out
        status = np.asarray(sol.status).ravel()
        names = sorted({pn.Status(int(s)).name for s in status})
        seconds = _median_after_first(c.times)
        paired = statistics.median(c.paired) if c.paired else None
        certified = steps - int(np.max(sol.sequential_steps))
        row.update(
            status="/".join(names),
            budget=c.budget_hit,
            certified=certified,
            iterations=int(np.max(sol.num_iterations)),
            compile_s=c.compile_s,
            seconds=seconds,
            runs=len(c.times),
            ratio=seq_median / seconds,
            ratio_paired=paired,
            times=c.times,
            peak_mb=None if c.peak is None else c.peak / 2**20,
            xla_mb=None if c.xla is None else c.xla / 2**20,
            max_abs_diff=float(jnp.max(jnp.abs(sol.trajectory - ref_traj))),
            pilot_s=c.pilot_s,
            chosen=c.chosen,
            solver_repr=_solver_short(c.solver),
        )
        rows.append(row)
    return rows


def _median_after_first(times):
    """The median of the timed runs, leaving out the first (budgeted) run when there are others."""
    return statistics.median(times[1:] if len(times) > 1 else times)


# ---------------------------------------------------------------------------------------------
# Output

ANCHORS = [
    dict(solver="Sequential lax.scan (A100)", iterations="-", seconds=22.6, ratio="1x"),
    dict(solver="DEER, dense, hand-damped 0.55 (A100)", iterations=139, seconds=0.135, ratio="167x"),
    dict(solver="quasi-DEER (A100)", iterations=534, seconds=22.6 / 66, ratio="66x"),
]

HEADER = (
    "| target | T | chains | solver | status | iterations | compile (s) | time (s) | runs "
    "| vs Sequential | vs fastest sequential | peak (MB) | XLA est. (MB) | max abs diff | auto pilot (s) |\n"
    f"|{'---|' * 15}"
)


def _num(v, fmt):
    return "n/a" if v is None else format(v, fmt)


def format_row(r):
    if "iterations" not in r:  # a skipped cell
        return f"| {r['target']} | {r['steps']} | {r['chains']} | {r['solver']} | {r['status']} |{' |' * 10}"
    status = r["status"]
    if r["certified"] < r["steps"] and r["solver"] != "Sequential" and r["iterations"] > 0:
        status += f" ({r['certified']} certified)"
    if r.get("budget"):
        status += ", budget"
    solver = r["solver"] + (f" -> {r['chosen']}" if r.get("chosen") else "")
    best = r.get("best_ratio")
    best_text = "n/a" if best is None else f"{best:.3g}x ({r['best_device']})"
    return (
        f"| {r['target']} | {r['steps']} | {r['chains']} | {solver} | {status} | {r['iterations']} "
        f"| {r['compile_s']:.1f} | {r['seconds']:.3g} | {r['runs']} | {r['ratio']:.3g}x | {best_text} "
        f"| {_num(r['peak_mb'], '.0f')} | {_num(r['xla_mb'], '.0f')} | {r['max_abs_diff']:.1e} "
        f"| {_num(r.get('pilot_s'), '.1f')} |"
    )


def other_devices(stem):
    """Sequential times from every other device's results: {(target, T, chains): (seconds, device)}."""
    best = {}
    for path in RESULTS.glob("*.json"):
        if path.stem == stem.name:
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if data.get("meta", {}).get("study") != "run.py":
            continue
        for r in data.get("rows", []):
            if r["solver"] == "Sequential" and "seconds" in r:
                key = (r["target"], r["steps"], r["chains"])
                if key not in best or r["seconds"] < best[key][0]:
                    best[key] = (r["seconds"], path.stem)
    return best


def add_best_ratios(rows, stem):
    others = other_devices(stem)
    mine = {
        (r["target"], r["steps"], r["chains"]): r["seconds"]
        for r in rows
        if r["solver"] == "Sequential" and "seconds" in r
    }
    for r in rows:
        if "seconds" not in r:
            continue
        key = (r["target"], r["steps"], r["chains"])
        if key in mine and "times" not in r:  # rows of the first version: medians of the same run
            r["ratio"] = mine[key] / r["seconds"]
        options = [(mine[key], stem.name)] if key in mine else []
        if key in others:
            options.append(others[key])
        if options:
            seconds, device = min(options)
            r["best_ratio"], r["best_device"] = seconds / r["seconds"], device


def goals(rows, meta, stem):
    """The goals of issue 6, each met / missed / not run, with its number."""
    gpu = meta["platform_kind"] != "cpu"
    find = {(r["target"], r["steps"], r["chains"], r["solver"]): r for r in rows if "seconds" in r}
    lines = []

    def parallel(target, steps, chains):
        return [
            r
            for (t, n, c, s), r in find.items()
            if (t, n, c) == (target, steps, chains) and s != "Sequential"
        ]

    if not gpu:
        cands = [r for r in parallel("gauss10", 100000, 1) if r["solver"] != "auto"]
        if cands:
            best = max(cands, key=lambda r: r["ratio"])
            verdict = "met" if best["ratio"] >= 2 else "missed"
            lines.append(
                f"- CPU, correlated Gaussian D=10 MALA, T=1e5: >= 2x over lax.scan: **{verdict}**, best "
                f"{best['ratio']:.3g}x ({best['solver']}, {best['iterations']} iterations; one iteration "
                f"costs {1 / (best['ratio'] * (best['iterations'] + 1)):.2g} sequential chains)."
            )
        else:
            lines.append("- CPU, correlated Gaussian D=10 MALA, T=1e5: >= 2x over lax.scan: not measured.")
    autos = [r for r in rows if r["solver"] == "auto" and "seconds" in r]
    if autos:
        worst = min(autos, key=lambda r: r["ratio"])
        slow = 1 / worst["ratio"] - 1
        same = sum(r.get("chosen") == "Sequential" for r in autos)
        verdict = "met" if slow <= 0.10 else "missed"
        lines.append(
            f"- {'GPU' if gpu else 'CPU'}, auto never more than 10% slower than Sequential (pilot excluded): "
            f"**{verdict}**: worst cell {worst['target']} T={worst['steps']} chains={worst['chains']}, "
            f"{100 * slow:+.0f}% ({worst['ratio']:.3g}x, chose {worst['chosen']}); over {len(autos)} cells. "
            f"With the pilot included: worst {_worst_with_pilot(autos, find)}. {same} of the {len(autos)} "
            "cells chose Sequential, whose program is the Sequential row's: their deviation from 1x is "
            "timing noise."
        )
    if gpu:
        cands = parallel("banana", 100000, 1)
        if cands:
            best = max(cands, key=lambda r: r["ratio"])
            cpu = other_devices(stem).get(("banana", 100000, 1))
            vs_cpu = (
                f"{cpu[0] / best['seconds']:.3g}x vs {cpu[1]} lax.scan" if cpu else "no CPU result to compare"
            )
            met = best["ratio"] >= 300 and cpu and cpu[0] / best["seconds"] >= 10
            lines.append(
                "- GPU, banana HMC T=1e5: >= 300x vs GPU lax.scan and >= 10x vs CPU lax.scan, no hand "
                f"damping: **{'met' if met else 'missed'}**: {best['ratio']:.3g}x vs GPU lax.scan, {vs_cpu} "
                f"({best['solver']}, {best['iterations']} iterations)."
            )
        cands = parallel("german_mala", 65536, 8)
        if cands:
            best = max(cands, key=lambda r: r.get("best_ratio") or 0)
            lines.append(
                f"- GPU, German credit 8 chains T=65536: >= 20x vs the fastest sequential baseline: "
                f"**{'met' if (best.get('best_ratio') or 0) >= 20 else 'missed'}**: "
                f"{best.get('best_ratio') or 0:.3g}x "
                f"vs {best.get('best_device')} ({best['solver']}, {best['iterations']} iterations)."
            )
        big = [r for r in rows if r["target"] == "german_mala" and r["steps"] >= 1000000]
        if big:
            ok = [r for r in big if "seconds" in r and r["solver"] != "Sequential"]
            text = "; ".join(
                f"{r['solver']}: {r['status']}" + (f" {r['seconds']:.3g} s" if "seconds" in r else "")
                for r in big
            )
            lines.append(
                "- GPU, T=1e6 with D=25 without running out of memory: "
                f"**{'met' if ok else 'missed'}**: {text}."
            )
    else:
        for goal in (
            "GPU, banana HMC T=1e5: >= 300x vs GPU lax.scan and >= 10x vs CPU lax.scan",
            "GPU, German credit 8 chains T=65536: >= 20x vs the fastest sequential baseline",
            "GPU, T=1e6 with D=25 on one GPU without running out of memory",
        ):
            lines.append(f"- {goal}: not run: no GPU in this session (`benchmarks/gpu.sh` runs it).")
    return lines


def _worst_with_pilot(autos, find):
    worst = None
    for r in autos:
        seq = find.get((r["target"], r["steps"], r["chains"], "Sequential"))
        if seq is None or r.get("pilot_s") is None:
            continue
        factor = (r["seconds"] + r["pilot_s"]) / seq["seconds"]
        if worst is None or factor > worst[0]:
            worst = (factor, r)
    if worst is None:
        return "n/a"
    r = worst[1]
    return (
        f"{worst[0]:.3g}x the Sequential time ({r['target']} T={r['steps']} chains={r['chains']}: a "
        f"{r['pilot_s']:.3g} s pilot, compilations included, for a {r['seconds']:.2g} s chain)"
    )


def write_results(stem, meta, rows, notes):
    RESULTS.mkdir(exist_ok=True)
    add_best_ratios(rows, stem)
    stem.with_suffix(".json").write_text(json.dumps(dict(meta=meta, rows=rows, notes=notes), indent=1))
    commands = list(dict.fromkeys(r["command"] for r in [*rows, *meta.get("profile", [])]))
    lines = [
        f"# Performance study on {meta['device']} ({meta['cpu_count']} CPU cores), {meta['dtype']}",
        "",
        "Reproduce (each row's own command is in the JSON):",
        "",
        *(f"    {c}" for c in commands),
        "",
        f"Machine: {meta['platform']}, jax {meta['jax']}; last run {meta['date']}.",
        "",
    ]
    if meta["platform_kind"] == "cpu":
        lines += [
            "**Measured on a shared 2-core CPU** (other jobs ran at the same time, load average well above",
            "2): absolute times are inflated and noisy. Trust the iteration counts (load-independent) and",
            "the ratios, which come from interleaved rounds in the same run (Sequential and every solver",
            "once per round; cells under 50 ms / 0.5 s get up to 20 / 10 rounds).",
            "",
        ]
    lines += [
        "Columns: iterations = parallel iterations (the maximum over chains); time = median wall time",
        "after compilation (the first run, which carries the time-budget check, left out when there are",
        "more); runs = timed runs; vs Sequential = the median Sequential (`lax.scan`) time over the",
        "interleaved rounds on this device / the row's median (above 1: faster); vs fastest sequential",
        "= the fastest Sequential time for the same cell over every device in `benchmarks/results/` /",
        "the row's, with that device named; peak = "
        + (
            "the process's peak RSS increase during the cell's first run (polled every 2 ms, a lower bound)"
            if meta["platform_kind"] == "cpu"
            else "the device's peak bytes in use minus those in use before the cell (a high-water mark)"
        )
        + "; XLA est. = the compiled program's arguments + outputs + temporaries;",
        "max abs diff = max |parallel - sequential| over all chains and steps. Status MAX_ITERATIONS:",
        "the parallel iteration was capped and the rest finished sequentially (the steps certified in",
        "parallel in brackets); 'budget': the cap came from the per-cell time budget of the row's",
        f"command (`--time-budget`, default 20 s; else `--max-iterations`, default"
        f" {meta['max_iterations']}). 'auto -> X': the solver auto chose;",
        "its pilot (compilations included) is the last column, not part of the time.",
        "",
        "## Goals (issue 6)",
        "",
        *goals(rows, meta, stem),
        "",
        "## Results",
        "",
        HEADER,
        *(format_row(r) for r in rows),
        "",
        "## Published anchors (banana HMC, T = 1e5, A100; Zoltowski et al. 2025, methods.md section 5.2)",
        "",
        "| solver | iterations | time (s) | vs GPU lax.scan |",
        "|---|---|---|---|",
        *(f"| {a['solver']} | {a['iterations']} | {a['seconds']:.3g} | {a['ratio']} |" for a in ANCHORS),
        "",
        "## Targets",
        "",
        *(f"- `{name}`: {note}" for name, note in notes.items()),
    ]
    if meta.get("profile"):
        lines += [
            "",
            "## Profile of one iteration (`--profile TARGET T`)",
            "",
            "Best of 5 runs after compilation, one chain, as a multiple of the whole sequential chain:",
            "a parallel solver pays, per iteration, the residual (vmapped step) plus its Jacobian plus",
            "its scan, so it can beat `lax.scan` only when (iterations + 1) x that sum is below 1.",
            "",
            "| target | T | piece | seconds | / sequential chain |",
            "|---|---|---|---|---|",
            *(_profile_row(r) for r in meta["profile"]),
        ]
    if meta.get("acceptance"):
        lines += ["", "Acceptance of the sequential chains (mean over steps and chains):", ""]
        lines += [f"- {k}: {v:.2f}" for k, v in meta["acceptance"].items()]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


def acceptance(problem, steps, chains, args, dtype):
    """The mean acceptance of a short sequential chain (a sanity check of the configuration)."""
    kernel, d = problem.kernel, problem.dim
    n = min(steps, 1000)
    key_x0, key_noise = jax.random.split(jax.random.key(args.seed))
    x0 = problem.init(key_x0, 1, dtype)[0]
    noise = kernel.noise(jax.random.split(key_noise, 1)[0], n, d, dtype)
    step = functools.partial(kernel.step, problem.logdensity)
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

    kernel, d = problem.kernel, problem.dim
    key_x0, key_noise = jax.random.split(jax.random.key(args.seed))
    x0 = problem.init(key_x0, 1, dtype)[0]
    noise = kernel.noise(key_noise, steps, d, dtype)
    step = functools.partial(kernel.step, problem.logdensity)
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
        jax.block_until_ready(fn(*fargs))
        best = math.inf
        for _ in range(repeats):
            began = time.perf_counter()
            jax.block_until_ready(fn(*fargs))
            best = min(best, time.perf_counter() - began)
        out.append(dict(target=problem.name, steps=steps, piece=name, seconds=best))
    seq = out[0]["seconds"]
    for r in out:
        r["per_sequential"] = r["seconds"] / seq
        print(_profile_row(r))
    return out


def _profile_row(r):
    return f"| {r['target']} | {r['steps']} | {r['piece']} | {r['seconds']:.3g} | {r['per_sequential']:.3g} |"


def device_label(device, float32):
    if device.platform == "cpu":
        name = "cpu"
    else:
        kind = device.device_kind.lower()
        name = next((g for g in ("h100", "h200", "a100", "l4", "t4") if g in kind), kind.replace(" ", "_"))
    return name + ("-float32" if float32 else "")


def main(argv=None):
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
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
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
        print("| target | T | piece | seconds | / sequential chain |\n|---|---|---|---|---|")
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
    try:
        from plots import make_plots
    except ImportError:  # run as a module or without matplotlib
        try:
            from benchmarks.plots import make_plots
        except ImportError:
            make_plots = None
    if make_plots is not None:
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
