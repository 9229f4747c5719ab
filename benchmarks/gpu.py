"""The GPU run: the headline cells first, each row written as soon as it is measured.

    bash benchmarks/gpu.sh                              # builds .whl/, prints the one device command
    python benchmarks/gpu.py --dry-run                  # the same cells with tiny T, on this machine

Cells, by priority (`--cells`, `--dtypes` and `--models` select among them):

1. `banana`: HMC step 0.5, 8 leapfrog steps, x0 ~ 10 N(0, I) (the published configuration), T = 1e5;
2. `german`: German credit logistic regression, MALA step 0.0015, x0 ~ 0.1 N(0, I), 8 chains, T = 65536;
3. `nuts`: BlackJAX's NUTS, step 0.2, on the 10-D correlated Gaussian, x0 ~ N(0, I), T = 1e4;
4. `posteriors`: the eight posteriordb posteriors, each sampler a cell of its own.

They run in this order (`ORDER`): 1 and 2 in float32, 1 and 2 in float64, 3 in float32, 4 in float32,
3 in float64, 4 in float64.

Rows of a chain cell (1-3): `Sequential` (`lax.scan`) on the default device (the GPU when there is
one), `Sequential (CPU)` on the same machine's CPU (`jax.devices("cpu")`), then DEER on 16- and
64-step segments. Each: compilation time; wall time after compilation (the median of the runs after
the first, up to `--repeats` runs while a method's runs stay under `--repeat-seconds`; one run
otherwise); status and parallel iterations (the maximum over chains); max |x - x_Sequential| over
every chain and step; its speed against the default device's Sequential and against the cell's
fastest sequential baseline (CPU or GPU, this run).

Rows of a posterior (4): 4 chains of 10^4 draws after parallel_sample's default warmup, for both
(each sampler's own defaults otherwise; arma11 starts at the prior medians in both, as in
posteriordb.py, since its recursion explodes for |theta| > 1):
- `parallel_sample` with its defaults (plus chains, draws, seed; no progress bar), whose kernel and
  solver the row records: the first call's wall time (compilation included), pnmcmc's own
  compilation time, warmup and sampling (each compilation excluded);
- NumPyro `MCMC(NUTS(model), chain_method="vectorized")` (one device): `warmup()` then `run()`, the
  first call being both (compilation included); the sampling alone is a second `run()` from the
  post-warmup state (its programs compiled) when the cell's budget allows, else the first `run()`.
ESS: `numpyro.diagnostics.effective_sample_size` (Stan's multi-chain estimator: FFT autocovariances,
Geyer's initial monotone sequence; no rank normalisation, no chain splitting), on every scalar of
every site of `get_samples(group_by_chain=True)` (constrained latent and deterministic sites); the
row gives the smallest, per second of the sampling alone and of the first call. ArviZ is not on the
GPU image and is not needed for this.

Bounded: this (parent) process touches no device. It hands the cells to one worker process per dtype
(JAX's float64 switch is process-wide), which sends back each row as it is measured, and rewrites
`results/gpu-<device>.{md,json}` (and the copies in `--copy-to`) after every row. A cell still running
at its budget (per kind, or `--cell-budget`) or at the global `--budget` is killed with its worker
(rows left: "timeout"); a cell that no longer fits is "not reached"; an error is recorded in its row
and the run goes on. `--dry-run`: tiny T, 32 draws, 32 warmup steps, and (compiling the defaults takes
minutes on a 2-core CPU) parallel_sample with kernel="mala", solver="sequential".
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

# Set before any backend starts: the workers' CPU baselines run single-threaded like every benchmark.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")  # see docs/troubleshooting.md
sys.path.insert(0, str(Path(__file__).parent))  # the shared helpers, also when run as a module

# The folder of `_tables.RESULTS`, named here: this module imports no JAX before a worker sets its dtype.
RESULTS = Path(__file__).parent / "results"
TAG = "@gpu.py "  # marks the worker's protocol lines among whatever else it prints
SEGMENTS = ("DEER(segment=16)", "DEER(segment=64)")
CHAIN_CELLS = {  # cell: (`_problems` name, T, chains, T in the dry run)
    "banana": ("banana", 100_000, 1, 256),
    "german": ("german_mala", 65_536, 8, 64),
    "nuts": ("gauss10_nuts", 10_000, 1, 64),
}
# Priority order: float32 of the headline cells first (GPUs are fast in float32), then their float64;
# the posteriors in float32 (NumPyro's default, the GPU's precision) come before NUTS in float64.
ORDER = [
    ("banana", "float32"), ("german", "float32"), ("banana", "float64"), ("german", "float64"),
    ("nuts", "float32"), ("posteriors", "float32"), ("nuts", "float64"), ("posteriors", "float64"),
]  # fmt: skip
SAMPLERS = ("parallel_sample", "NumPyro NUTS")  # a posterior's two cells, each with its own budget
BUDGETS = {"banana": 120, "german": 120, "nuts": 150, "posterior": 75}  # seconds per cell
MIN_START = 20  # seconds: a cell is not started with less of the global budget left
DRAWS, POSTERIOR_CHAINS, DRY_DRAWS = 10_000, 4, 32
DRY_SAMPLE = {"num_warmup": 32, "kernel": "mala", "solver": "sequential"}
INIT_MEDIAN = ("arma-arma11",)  # its error recursion explodes for |theta| > 1 (as in posteriordb.py)


# ---------------------------------------------------------------------------------------------
# Plan (pure data: the parent needs no JAX device)


def plan(args):
    """The cells to run, in priority order, each with the rows (methods) it will produce."""
    from pnmcmc.models import POSTERIORDB_NAMES

    models = args.models.split(",") if args.models else list(POSTERIORDB_NAMES)
    cells = []
    for name, dtype in ORDER:
        if name not in args.cells or dtype not in args.dtypes:
            continue
        if name == "posteriors":
            cells += [_posterior_cell(m, dtype, sampler, args) for m in models for sampler in SAMPLERS]
        else:
            cells.append(_chain_cell(name, dtype, args))
    for cell in cells:
        kind = "posterior" if cell["kind"] == "posterior" else cell["cell"]
        cell["budget"] = args.cell_budget or BUDGETS[kind]
    return cells


def _chain_cell(name, dtype, args):
    target, steps, chains, dry_steps = CHAIN_CELLS[name]
    return dict(
        kind="chain", cell=name, dtype=dtype, target=target, steps=dry_steps if args.dry_run else steps,
        chains=chains, solvers=list(SEGMENTS), methods=["Sequential", "Sequential (CPU)", *SEGMENTS],
        seed=args.seed, repeats=args.repeats, repeat_seconds=args.repeat_seconds,
    )  # fmt: skip


def _posterior_cell(model, dtype, sampler, args):
    return dict(
        kind="posterior", cell=model, dtype=dtype, draws=DRY_DRAWS if args.dry_run else args.draws,
        chains=POSTERIOR_CHAINS, overrides=DRY_SAMPLE if args.dry_run else {}, seed=args.seed,
        methods=[sampler],
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Worker: measures the cells it is sent, one row at a time


def emit(event, **fields):
    print(TAG + json.dumps(dict(event=event, **fields), default=float), flush=True)


def serve(dtype):
    """The worker's loop: one cell (a JSON line) in, its rows out, then `done`."""
    import warnings

    import jax

    jax.config.update("jax_enable_x64", dtype == "float64")  # before pnmcmc or a target is imported
    warnings.simplefilter("ignore")  # keep the log (the device returns its tail) readable
    import numpyro
    from _tables import device_label

    device = jax.devices()[0]
    emit(
        "hello", device=str(device.device_kind), platform=device.platform,
        label=device_label(device, False), jax=jax.__version__, numpyro=numpyro.__version__,
        cpu_count=os.cpu_count(),
    )  # fmt: skip
    for line in sys.stdin:
        spec = json.loads(line)
        measure = chain_rows if spec["kind"] == "chain" else posterior_rows
        try:
            for method, row in measure(spec):
                emit("row", row=dict(cell=spec["cell"], dtype=spec["dtype"], method=method, **row))
        except Exception as error:  # setting the cell up failed: its rows not yet sent say why
            emit("error", status=_error_text(error))
        emit("done")


def _guarded(fn, *args):
    """`fn(*args)`, or a row that records the error (the cell goes on)."""
    try:
        return fn(*args)
    except Exception as error:  # anything: out of memory, a failed compile, a library bug
        return dict(status=_error_text(error), measured=False)


def _error_text(error):
    text = str(error).strip().splitlines()
    return f"error: {type(error).__name__}: {text[0][:200] if text else ''}"


def chain_rows(spec):
    """Sequential on the default device and on the CPU, then each solver against them."""
    import _problems
    import jax

    dtype = jax.numpy.dtype(spec["dtype"])
    problem = _problems.make(spec["target"])
    data = _problems.chain_data(problem, spec["steps"], spec["chains"], dtype, spec["seed"])
    step = problem.step
    base = dict(target=spec["target"], steps=spec["steps"], chains=spec["chains"], dim=problem.dim)
    seq = _guarded(_measure, step, "Sequential", data, spec)
    yield "Sequential", dict(base, **_public(seq))
    cpu = jax.devices("cpu")[0]
    seq_cpu = _guarded(_measure, step, "Sequential", jax.device_put(data, cpu), spec, cpu)
    yield "Sequential (CPU)", dict(base, **_public(seq_cpu), **_against(seq_cpu, seq, seq_cpu))
    yield "Sequential", _against(seq, seq, seq_cpu)  # its ratios, now that the CPU's time is known
    for label in spec["solvers"]:
        row = _guarded(_measure, step, label, data, spec)
        yield label, dict(base, **_public(row), **_against(row, seq, seq_cpu))


def _measure(step, label, data, spec, device=None):
    """Compile once, run until `repeats` runs or `repeat_seconds` of runs; the row's numbers."""
    import _solvers
    import _timing
    import jax
    import numpy as np
    from _memory import mb, xla_bytes
    from _problems import vmapped

    import pnmcmc as pn

    solver = _solvers.from_label(label)
    with jax.default_device(device or jax.devices()[0]):
        compiled, compile_s = _timing.compile(vmapped(step, solver), data)
        out, first = _timing.timed(compiled, data)
        times = [first]
        while len(times) < spec["repeats"] and sum(times) < spec["repeat_seconds"]:
            times.append(_timing.timed(compiled, data)[1])
    status = sorted({pn.Status(int(s)).name for s in np.asarray(out.status).ravel()})
    return dict(
        measured=True, device=str(next(iter(out.trajectory.devices())).device_kind),
        status="/".join(status), certified=spec["steps"] - int(np.max(out.sequential_steps)),
        iterations=int(np.max(out.num_iterations)), compile_s=compile_s, first_call_s=compile_s + first,
        seconds=_timing.median_after_first(times), runs=len(times), times=times,
        solver_repr=_solvers.short_name(solver),
        xla_mb=mb(xla_bytes(compiled)), computed_dtype=str(out.trajectory.dtype),
        trajectory=out.trajectory,
    )  # fmt: skip


def _public(row):
    return {k: v for k, v in row.items() if k != "trajectory"}


def _against(row, seq, seq_cpu):
    """Max |difference| from the default device's Sequential; speed against it and the fastest."""
    import jax
    import jax.numpy as jnp

    if not (row.get("measured") and seq.get("measured")):
        return {}
    mine = jax.device_put(row["trajectory"], next(iter(seq["trajectory"].devices())))
    baselines = [s["seconds"] for s in (seq, seq_cpu) if s.get("measured")]
    return dict(
        max_abs_diff=float(jnp.max(jnp.abs(mine - seq["trajectory"]))),
        ratio=seq["seconds"] / row["seconds"],
        best_ratio=min(baselines) / row["seconds"],
    )


def posterior_rows(spec):
    """parallel_sample with its defaults, or NumPyro's NUTS, on one posteriordb posterior."""
    from pnmcmc.models import posteriordb

    (method,) = spec["methods"]
    measure = _pnmcmc_row if method == "parallel_sample" else _numpyro_row
    yield method, _guarded(measure, posteriordb(spec["cell"]), spec)


def _init_strategy(name):
    from numpyro.infer import init_to_median, init_to_uniform

    return init_to_median if name in INIT_MEDIAN else init_to_uniform


def _num_warmup(spec):
    """parallel_sample's default warmup (whatever it is when this runs), or the dry run's."""
    import inspect

    from pnmcmc import parallel_sample

    default = inspect.signature(parallel_sample).parameters["num_warmup"].default
    return spec["overrides"].get("num_warmup", default)


def _pnmcmc_row(post, spec):
    import warnings

    import jax
    import numpy as np
    from _solvers import short_name

    from pnmcmc import parallel_sample

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        began = time.perf_counter()
        res = parallel_sample(
            post.model, spec["draws"], model_args=post.model_args, model_kwargs=post.model_kwargs,
            num_chains=spec["chains"], rng_key=spec["seed"], init_strategy=_init_strategy(spec["cell"]),
            progress_bar=False, **spec["overrides"],
        )  # fmt: skip
        jax.block_until_ready(res.positions)
        first = time.perf_counter() - began
    ess = min_ess(res.get_samples(group_by_chain=True))
    stats, timings = res.sample_stats, res.timings
    names = sorted({type(w.message).__name__ for w in caught if "pnmcmc" in type(w.message).__module__})
    return dict(
        measured=True, status="ok", device=str(next(iter(res.positions.devices())).device_kind),
        sampler=f"{getattr(res.kernel, 'name', type(res.kernel).__name__)}, {short_name(res.solver)}",
        solver_reason=res.solver_reason, draws=spec["draws"], chains=spec["chains"],
        num_warmup=_num_warmup(spec), first_call_s=first, compile_s=timings.get("compile"),
        warmup_s=res.warmup_time, seconds=res.sampling_time, pilot_s=timings.get("solver_choice"),
        iterations=int(np.max(stats["num_iterations"])), min_ess=ess, ess_per_s=ess / res.sampling_time,
        ess_per_s_first_call=ess / first, warnings=names, overrides=spec["overrides"],
        computed_dtype=str(res.positions.dtype),
    )  # fmt: skip


def _numpyro_row(post, spec):
    import jax
    from numpyro.infer import MCMC, NUTS

    mcmc = MCMC(
        NUTS(post.model, init_strategy=_init_strategy(spec["cell"])), num_warmup=_num_warmup(spec),
        num_samples=spec["draws"], num_chains=spec["chains"], chain_method="vectorized", progress_bar=False,
    )  # fmt: skip
    began = time.perf_counter()
    key = jax.random.PRNGKey(spec["seed"])
    warmup_s = _wall(
        lambda: mcmc.warmup(key, *post.model_args, **post.model_kwargs) or mcmc.post_warmup_state
    )
    run_s = _wall(lambda: mcmc.run(key, *post.model_args, **post.model_kwargs) or mcmc.get_samples())
    first = time.perf_counter() - began
    samples = mcmc.get_samples(group_by_chain=True)
    # Sampling alone: a second run() from the post-warmup state, if it fits the cell's budget.
    again = None
    if time.time() + 1.5 * run_s + 5 < spec["deadline"]:
        again = _wall(
            lambda: (
                mcmc.run(jax.random.PRNGKey(1), *post.model_args, **post.model_kwargs) or mcmc.get_samples()
            )
        )
    seconds = run_s if again is None else again
    ess = min_ess(samples)
    return dict(
        measured=True, status="ok", device=str(next(iter(jax.tree.leaves(samples)[0].devices())).device_kind),
        sampler="chain_method=vectorized", draws=spec["draws"], chains=spec["chains"],
        num_warmup=_num_warmup(spec), first_call_s=first, warmup_s=warmup_s, first_run_s=run_s,
        seconds=seconds, sampling_repeated=again is not None, min_ess=ess, ess_per_s=ess / seconds,
        ess_per_s_first_call=ess / first, computed_dtype=str(jax.tree.leaves(samples)[0].dtype),
    )  # fmt: skip


def _wall(fn):
    import jax

    began = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - began


def min_ess(samples):
    """The smallest ESS over every scalar of every site; samples are (chains, draws, ...)."""
    import numpy as np
    from numpyro.diagnostics import effective_sample_size

    values = [np.asarray(v, dtype=np.float64) for v in samples.values()]
    return float(min(np.min(effective_sample_size(v)) for v in values if v.shape[1] > 3))


# ---------------------------------------------------------------------------------------------
# Parent: drives the workers within the budgets, writes the tables after every row


class Worker:
    """One worker process (one dtype): cells in on stdin, events out on stdout (lines with TAG)."""

    TIMEOUT = object()

    def __init__(self, dtype):
        # Two workers share the GPU: neither may take XLA's default 75% of its memory up front.
        env = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", **os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", dtype],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, env=env,
        )  # fmt: skip
        self.events = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith(TAG):
                self.events.put(json.loads(line[len(TAG) :]))
            else:
                print(line, end="", flush=True)  # the worker's own output goes to the log
        self.events.put(dict(event="exit"))

    def send(self, spec):
        try:
            self.proc.stdin.write(json.dumps(spec) + "\n")
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    def next(self, deadline):
        try:
            return self.events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return self.TIMEOUT

    def kill(self):
        self.proc.kill()  # it starts no processes of its own
        self.proc.wait()


class Table:
    """Every planned row (not reached until measured), written after every change."""

    def __init__(self, cells, args, command):
        self.args, self.command, self.hello = args, command, None
        self.end = time.monotonic() + args.budget  # the global deadline (reset when the run starts)
        self.rows = [_placeholder(c, m) for c in cells for m in c["methods"]]
        self.index = {(r["cell"], r["dtype"], r["method"]): i for i, r in enumerate(self.rows)}

    def put(self, row):
        i = self.index[(row["cell"], row["dtype"], row["method"])]
        self.rows[i] = {**self.rows[i], **row}
        print(md_row(self.rows[i]), flush=True)
        self.write()

    def fail(self, cell, status):
        """Mark the rows of `cell` that were not measured."""
        for m in cell["methods"]:
            i = self.index[(cell["cell"], cell["dtype"], m)]
            if not self.rows[i].get("measured"):
                self.rows[i] = {**self.rows[i], "status": status}
        print(f"  {cell['cell']} {cell['dtype']}: {status}", flush=True)
        self.write()

    def stem(self):
        name = self.args.name or f"gpu-{self.hello['label'] if self.hello else 'unknown'}"
        return Path(self.args.results_dir) / name

    def write(self):
        """Both files, replaced whole (a kill never leaves half a file), then copied."""
        import shutil

        from _tables import save

        final = self.stem()
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.partial")
        save(tmp, self.rows, [self.command], title=self.title(), describe=self.describe, header=HEADER,
             md_row=md_row)  # fmt: skip
        for suffix in (".json", ".md"):
            os.replace(tmp.with_suffix(suffix), final.with_suffix(suffix))
            if self.args.copy_to:
                Path(self.args.copy_to).mkdir(parents=True, exist_ok=True)
                shutil.copy(
                    final.with_suffix(suffix), Path(self.args.copy_to) / final.with_suffix(suffix).name
                )

    def title(self):
        device = self.hello["device"] if self.hello else "no device reached"
        return f"GPU run (issue 17): {device}" + (" (dry run)" if self.args.dry_run else "")

    def describe(self, meta):
        h = self.hello or {}
        lines = [
            f"Device: {h.get('device', 'n/a')} ({h.get('platform', 'n/a')}); jax {h.get('jax', 'n/a')}, "
            f"numpyro {h.get('numpyro', 'n/a')}; {meta['machine']}; written {meta['date']}. Budget: "
            f"{self.args.budget:g} s in all; a row not measured says why.",
            "",
            LEGEND,
            "",
            "## Summary",
            "",
            *summary(self.rows),
            "",
            "## Rows",
        ]
        return "\n".join(lines)


def _placeholder(cell, method):
    keys = ("kind", "target", "steps", "chains", "draws")
    return dict(
        cell=cell["cell"], dtype=cell["dtype"], method=method, status="not reached", measured=False,
        **{k: cell[k] for k in keys if k in cell},
    )  # fmt: skip


BROKEN = "error: the worker exited before it started (its traceback is in the log)"


def run_cell(cell, workers, deadline, table):
    """Send one cell to its dtype's worker (started if needed) and record its rows until done."""
    began = time.monotonic()
    why = "timeout: cell budget" if deadline < table.end else "timeout: global budget"
    worker = _worker(cell["dtype"], workers, deadline, table)
    if worker is Worker.TIMEOUT:
        return table.fail(cell, f"{why} while the worker started")
    if worker == BROKEN:
        return table.fail(cell, BROKEN)
    if not worker.send(dict(cell, deadline=time.time() + deadline - time.monotonic())):
        _drop(workers, cell["dtype"])
        return table.fail(cell, "error: the worker had exited")
    while True:
        event = worker.next(deadline)
        if event is Worker.TIMEOUT:
            _drop(workers, cell["dtype"])
            return table.fail(cell, f"{why} (killed after {time.monotonic() - began:.0f} s)")
        if event["event"] == "exit":
            _drop(workers, cell["dtype"])
            return table.fail(cell, f"error: the worker died (exit code {worker.proc.wait()})")
        if event["event"] == "row":
            table.put(event["row"])
        if event["event"] == "error":
            table.fail(cell, event["status"])
        if event["event"] == "done":
            return None


def _worker(dtype, workers, deadline, table):
    """The dtype's running worker, started if needed; Worker.TIMEOUT, or BROKEN when it cannot start
    (an import error, say: then it is not started again for every later cell)."""
    worker = workers.get(dtype)
    if worker == BROKEN or (worker is not None and worker.proc.poll() is None):
        return worker
    worker = workers[dtype] = Worker(dtype)
    hello = worker.next(deadline)
    if hello is Worker.TIMEOUT or hello["event"] != "hello":
        _drop(workers, dtype)
        if hello is Worker.TIMEOUT:
            return hello
        workers[dtype] = BROKEN
        return BROKEN
    table.hello = table.hello or hello
    return worker


def _drop(workers, dtype):
    worker = workers.pop(dtype)
    if isinstance(worker, Worker):
        worker.kill()


def drive(cells, table, budget):
    """Run the cells in order within the global budget; whatever happens, write the tables."""
    began = time.monotonic()
    table.end = began + budget
    workers = {}
    try:
        for cell in cells:
            left = table.end - time.monotonic()
            if left < MIN_START:
                continue  # its rows stay "not reached"
            what = f"{cell['cell']} {cell['dtype']} {', '.join(cell['methods'])}"
            print(f"[{time.monotonic() - began:5.0f} s] {what}", flush=True)
            try:
                run_cell(cell, workers, time.monotonic() + min(cell["budget"], left), table)
            except (SystemExit, KeyboardInterrupt) as stop:
                table.fail(cell, f"stopped: {stop or 'interrupted'}")
                raise
    finally:
        for dtype in list(workers):
            _drop(workers, dtype)
        table.write()


def _terminate(signum, frame):
    raise SystemExit(f"signal {signum}")  # `drive` still writes the tables


# ---------------------------------------------------------------------------------------------
# Output

HEADER = (
    "| cell | dtype | method | device | status | first call (s) | compile (s) | time (s) | runs | iterations "
    "| max abs diff | vs Sequential | vs fastest sequential | min ESS (per s: sampling; first call) |\n"
    f"|{'---|' * 14}"
)

LEGEND = """Columns. Chain cells (banana, german, nuts): time = median wall time after compilation (runs
after the first; `runs` in all), first call = compilation + the first run; iterations = parallel
iterations (max over chains); max abs diff = max |x - x_Sequential| over every chain and step, against
Sequential on the default device; vs Sequential = that Sequential's time / the row's (above 1: faster);
vs fastest sequential = the faster of Sequential and Sequential (CPU), both measured in this run, /
the row's. Posteriors: method parallel_sample (kernel, solver as it reports them) or NumPyro NUTS;
4 chains, draws and warmup in the JSON; time = the sampling alone (compilation excluded: pnmcmc's own
account; NumPyro: a second run() after warmup); compile = pnmcmc's own count (NumPyro's is not
separable); first call = wall time of the whole first call, compilation included; iterations = the
sampling solve's parallel iterations; min ESS = the smallest numpyro ESS over every scalar of every
site, per second of the sampling alone and of the first call."""


def _num(value, fmt):
    return "-" if value is None else format(value, fmt)


def md_row(r):
    method = r["method"] + (f" ({r['sampler']})" if r.get("sampler") else "")
    ess = "-"
    if r.get("min_ess") is not None:
        ess = f"{r['min_ess']:.0f} ({r['ess_per_s']:.3g}/s; {r['ess_per_s_first_call']:.3g}/s)"
    status = r["status"]
    partial = r.get("certified") is not None and r["certified"] < r["steps"]
    if partial and not r["method"].startswith("Sequential"):  # where Newton stopped; the rest is exact too
        status += f" ({r['certified']} certified)"
    if r.get("warnings"):
        status += "; " + ", ".join(r["warnings"])
    return (
        f"| {r['cell']} | {r['dtype']} | {method} | {r.get('device', '-')} | {status} "
        f"| {_num(r.get('first_call_s'), '.3g')} | {_num(r.get('compile_s'), '.3g')} "
        f"| {_num(r.get('seconds'), '.3g')} | {_num(r.get('runs'), 'd')} | {_num(r.get('iterations'), 'd')} "
        f"| {_num(r.get('max_abs_diff'), '.1e')} | {_ratio(r.get('ratio'))} | {_ratio(r.get('best_ratio'))} "
        f"| {ess} |"
    )


def _ratio(value):
    return "-" if value is None else f"{value:.3g}x"


GOALS = {  # the study's GPU goals (run.py): met(best vs GPU lax.scan, vs CPU lax.scan, vs the fastest)
    "banana": (
        "at least 300x vs GPU lax.scan and 10x vs CPU lax.scan (published, A100: hand-damped DEER, "
        "139 iterations, 167x vs lax.scan)",
        lambda g, c, f: g >= 300 and c >= 10,
    ),
    "german": ("at least 20x vs the fastest sequential baseline", lambda g, c, f: f >= 20),
}


def summary(rows):
    """One line per measured chain cell (its best solver) and per posterior (pnmcmc / NumPyro)."""
    by_cell = {}
    for r in rows:
        if r.get("measured"):
            by_cell.setdefault((r["cell"], r["dtype"]), {})[r["method"]] = r
    lines = []
    for (cell, dtype), done in by_cell.items():
        describe = _chain_summary if cell in CHAIN_CELLS else _posterior_summary
        lines += [line] if (line := describe(cell, dtype, done)) else []
    return lines or ["- nothing measured yet."]


def _chain_summary(cell, dtype, done):
    solvers = [r for m, r in done.items() if m in SEGMENTS and r.get("best_ratio") is not None]
    if not solvers:
        return None
    b = max(solvers, key=lambda r: r["best_ratio"])
    cpu = done.get("Sequential (CPU)")
    vs_cpu = cpu["seconds"] / b["seconds"] if cpu else float("nan")
    line = (
        f"- {cell} T={b['steps']} chains={b['chains']}, {dtype}: best {b['method']}, {b['ratio']:.3g}x vs "
        f"Sequential on {b['device']}, {vs_cpu:.3g}x vs Sequential on the CPU, {b['best_ratio']:.3g}x vs the "
        f"fastest ({b['iterations']} iterations, max abs diff {b['max_abs_diff']:.1e})."
    )
    if cell in GOALS:
        text, met = GOALS[cell]
        verdict = "met" if met(b["ratio"], vs_cpu, b["best_ratio"]) else "missed"
        if b["device"] == "cpu":
            verdict = "not judged: no GPU"
        line += f" Goal (issue 6), {text}: **{verdict}**."
    return line


def _posterior_summary(cell, dtype, done):
    p, n = done.get("parallel_sample"), done.get("NumPyro NUTS")
    if not (p and n and p.get("min_ess") and n.get("min_ess")):
        return None
    return (
        f"- {cell}, {dtype}: parallel_sample ({p['sampler']}) / NumPyro NUTS, ESS per second: "
        f"{p['ess_per_s'] / n['ess_per_s']:.3g}x (sampling alone), "
        f"{p['ess_per_s_first_call'] / n['ess_per_s_first_call']:.3g}x (first call)."
    )


# ---------------------------------------------------------------------------------------------


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=445.0, help="seconds in all (cells past it are killed)")
    p.add_argument("--cell-budget", type=float, help="seconds per cell (default: per kind, BUDGETS)")
    p.add_argument(
        "--cells", nargs="+", default=[*CHAIN_CELLS, "posteriors"], choices=[*CHAIN_CELLS, "posteriors"]
    )
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    p.add_argument("--models", help="comma-separated posteriordb names (default: all eight)")
    p.add_argument("--draws", type=int, default=DRAWS, help="draws per chain of each posterior")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per method at most")
    p.add_argument(
        "--repeat-seconds", type=float, default=3.0, help="no further run once a method's reach this"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--dry-run", action="store_true", help="tiny T and draws (a structure check, on any device)"
    )
    p.add_argument("--results-dir", default=str(RESULTS))
    p.add_argument("--name", help="results file stem (default gpu-<device>, e.g. gpu-h100)")
    p.add_argument("--copy-to", help="also copy the result files here after every row (the device's $OUT)")
    p.add_argument("--worker", choices=["float32", "float64"], help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    if args.worker:
        return serve(args.worker)
    import _tables

    signal.signal(signal.SIGTERM, _terminate)  # `timeout` sends SIGTERM: write what we have
    cells = plan(args)
    table = Table(cells, args, _tables.invocation("gpu.py", argv))
    drive(cells, table, args.budget)
    print(f"wrote {table.stem()}.md and .json", flush=True)
    return table


if __name__ == "__main__":
    main()
