r"""`solver="auto"`: pick the fastest exact method for a chain from a short measured pilot.

**Default candidates:** `DEER`, `QuasiDEER` and `ELK`, each on segments of 16 steps
([`pnmcmc.segments`][pnmcmc.segments]: the segment maps of a contracting chain contract, so they
need several times fewer iterations than the step-by-step methods, with the same work per
iteration), and `Sequential`.

**The rule.** All methods return the same (exact) chain, so the choice is about time only:

1. *Pilot*: solve the first $P$ and $8P$ steps sequentially (cheap; timed after compilation, best
   of a few runs) and estimate the LLE on the longer prefix ([`pnmcmc.lyapunov`][pnmcmc.lyapunov]).
   If it is not clearly negative ($\hat\lambda + 2\,\mathrm{se} \ge 0$), parallel iterations
   would approach $T$: choose [`Sequential`][pnmcmc.Sequential] and stop.
2. *Memory*: drop candidates whose solve would not fit `memory_budget` bytes (default 1 GiB)
   by the solver's own formula, `solver.memory_bytes(T, D, itemsize)` (`pnmcmc.memory`): a
   full-Jacobian solver holds about $c\,W D^2$ numbers for the $W$ elements it solves for (the
   chain or its window, divided by the segment length), $c = 3.5$ for DEER and 18 for ELK (the
   Kalman smoother's elements); the diagonal ones $O(W D)$.
   A damped solver (ELK, QuasiELK) is skipped when its undamped twin with the same Jacobian
   (DEER, QuasiDEER) converged: on a contracting chain the damping only adds work.
3. *Measure*: solve the $P$-step prefix with each remaining candidate (its iteration count $k_P$
   and time per iteration), and the $8P$-step prefix $L$ with at most $8 (k_P + 1)$ iterations (its
   count $k_L$ measures how the count grows with the length; a run that needs more grows faster
   than linearly, is front-limited, and is predicted to need $T$). After compilation, all runs
   (sequential and parallel, both lengths) are timed in interleaved rounds and the fastest of
   `repeats` rounds counts, so that load on a shared machine slows every contender alike.
   The sequential times are fitted as $a + b\,n$ in the length $n$: $a$ is the fixed cost of a
   solve call (dispatch, checks), common to every solver and subtracted from the parallel times
   before they are divided by the number of passes. Times per iteration are fitted the same way
   and extrapolated to $T$ (the slope is the work, the intercept the launch overheads that
   dominate short chains on a GPU); on a CPU, which has no idle parallel width, at least
   proportionally to $T$ from the longer prefix.
4. *Predict*: each candidate's iterations on the whole chain are $k_P$ extrapolated to $T$ by
   [`calibrate_iterations`][pnmcmc.lyapunov.calibrate_iterations] with both pilots (the power law
   through $(P, k_P)$ and $(L, k_L)$; $k_L$ itself when $L = T$); predicted time =
   $a$ + (iterations + 1) x time per iteration (the +1 is the final certifying evaluation).
5. *Decide with a safety factor*: choose the fastest parallel candidate only if `safety` x its
   predicted time is below the predicted sequential time (default `safety = 2`, the accuracy the
   iteration predictor is calibrated to); otherwise choose Sequential. So unless a prediction is off
   by more than that factor, "auto" is not slower than Sequential.

[`solve_auto`][pnmcmc.auto.solve_auto] runs the choice with `max_iterations` capped so that a
wrong prediction costs at most about one sequential run: the cap is the number of iterations
that take as long as the whole sequential chain (at least twice the prediction). At the cap the
engine finishes the remaining steps sequentially, so the result is exact in every case and the
worst case is about twice the sequential time.

The pilot itself costs compilations (one per candidate and prefix length) and a few short runs;
`AutoChoice.pilot_seconds` reports it. It depends on the step function and the shapes only, so a
caller solving many chains of the same model (e.g. `parallel_sample`) should choose once and reuse
`AutoChoice.solver`.
"""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from . import lyapunov
from .solution import Solution, Status, default_tolerances
from .solve import run, solve
from .solvers import DEER, ELK, ParallelSolver, QuasiDEER, QuasiELK, Sequential

__all__ = ["AutoChoice", "CandidateReport", "choose_solver", "solve_auto"]

SEGMENT = 16  # steps per parallel element of the default candidates (see pnmcmc.segments)
DEFAULT_CANDIDATES = (
    DEER(segment=SEGMENT),
    QuasiDEER(segment=SEGMENT),
    ELK(segment=SEGMENT),
    Sequential(),
)
MEMORY_BUDGET = 2**30  # bytes of Jacobian information a candidate may hold (1 GiB)
SAFETY = 2.0  # a parallel solver must be predicted this many times faster than Sequential


@dataclasses.dataclass(frozen=True)
class CandidateReport:
    """What the pilot measured and predicted for one candidate (times in seconds, for the whole chain).

    `predicted_iterations`, `seconds_per_iteration` and `predicted_seconds` are None where the
    candidate was not measured (`note` says why); for Sequential, `seconds_per_iteration` is the
    time per step and `predicted_iterations` 0.
    """

    solver: object
    predicted_iterations: int | None
    pilot_iterations: int | None
    seconds_per_iteration: float | None
    predicted_seconds: float | None
    note: str


@dataclasses.dataclass(frozen=True)
class AutoChoice:
    """The solver `choose_solver` picked, and why.

    **Fields:**

    - `solver`: the chosen solver object (pass it to [`pnmcmc.solve`][pnmcmc.solve]).
    - `reasons`: a human-readable explanation of the choice.
    - `estimate`: the [`LyapunovEstimate`][pnmcmc.lyapunov.LyapunovEstimate] from the pilot.
    - `candidates`: one [`CandidateReport`][pnmcmc.auto.CandidateReport] per candidate.
    - `pilot_steps`: the pilot length P.
    - `pilot_seconds`: wall time of the whole choice (compilations included).
    """

    solver: object
    reasons: str
    estimate: lyapunov.LyapunovEstimate
    candidates: tuple[CandidateReport, ...]
    pilot_steps: int
    pilot_seconds: float

    def report(self, solver) -> CandidateReport:
        """The candidate report of `solver` (e.g. of the chosen one)."""
        for c in self.candidates:
            if c.solver == solver:
                return c
        raise KeyError(f"{solver!r} was not a candidate.")

    def describe(self) -> str:
        """A small text table of the candidates and the reasons."""
        lines = [f"{'candidate':<34}{'pilot it':>9}{'pred it':>8}{'s/iter':>11}{'pred s':>11}  note"]
        for c in self.candidates:
            lines.append(
                f"{_name(c.solver):<34}{_fmt(c.pilot_iterations):>9}{_fmt(c.predicted_iterations):>8}"
                f"{_fmt(c.seconds_per_iteration, '.3g'):>11}{_fmt(c.predicted_seconds, '.3g'):>11}  {c.note}"
            )
        return f"chosen: {_name(self.solver)}. {self.reasons}\n" + "\n".join(lines)


def _fmt(value, spec="d"):
    return "-" if value is None else format(value, spec)


def _name(solver) -> str:
    return repr(solver).replace("rtol=None, atol=None, ", "").replace(", window=None", "")


def choose_solver(
    step,
    x0,
    noise,
    *,
    candidates=DEFAULT_CANDIDATES,
    pilot_steps: int | None = None,
    memory_budget: float = MEMORY_BUDGET,
    safety: float = SAFETY,
    repeats: int = 5,
) -> AutoChoice:
    """Choose the fastest exact solver for `x_t = step(x_{t-1}, noise_t)` from a measured pilot.

    See the module docstring for the rule. Runs (and times) code on the current device, so it must
    be called outside `jax.jit` / `jax.vmap`; for a batch of chains choose once on one chain.

    **Arguments:**

    - `step`, `x0`, `noise`: the problem, as for [`pnmcmc.solve`][pnmcmc.solve].
    - `candidates`: solver objects to choose from; `Sequential()` is always considered.
    - `pilot_steps`: the pilot length P (default `min(T, 256)`); timing also uses `min(T, 8P)` steps.
    - `memory_budget`: bytes of Jacobian information a candidate may hold (default 1 GiB).
    - `safety`: how many times faster than Sequential a parallel candidate must be predicted.
    - `repeats`: timed runs per measurement (the fastest counts).

    **Returns:** an [`AutoChoice`][pnmcmc.auto.AutoChoice].
    """
    began = time.perf_counter()
    x0 = jnp.asarray(x0)
    if isinstance(x0, jax.core.Tracer) or any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves(noise)):
        raise TypeError(
            "choose_solver times code on the device and cannot run inside jax.jit or jax.vmap: call it "
            "outside (for a batch of chains, on one chain) and pass the chosen solver to the traced solve."
        )
    for c in candidates:
        if not isinstance(c, (Sequential, ParallelSolver)):
            raise TypeError(f"candidates must be pnmcmc solver objects, got {c!r}.")
    if not safety >= 1:
        raise ValueError(f"safety must be >= 1, got {safety!r}.")
    n = int(jax.tree.leaves(noise)[0].shape[0])
    d, itemsize = int(x0.shape[-1]), jnp.dtype(x0.dtype).itemsize
    p = min(n, 256) if pilot_steps is None else int(pilot_steps)
    if not 2 <= p <= n:
        raise ValueError(f"pilot_steps must be in [2, T] = [2, {n}], got {pilot_steps!r}.")
    sizes = (p, min(n, 8 * p))

    def prefix(m):
        return jax.tree.map(lambda a: a[:m], noise)

    # 1. The sequential chain on both prefixes, and the LLE on the longer one.
    def run(solver, m):
        return lambda: _quiet_solve(step, x0, prefix(m), solver)

    jobs = {("seq", m): run(Sequential(), m) for m in sizes}
    results = {key: jax.block_until_ready(fn()) for key, fn in jobs.items()}  # compiles too
    traj = results[("seq", sizes[1])].trajectory
    if not bool(jnp.all(jnp.isfinite(traj))):
        raise ValueError(
            f"the chain becomes non-finite within its first {sizes[1]} steps; fix the step function "
            "(step size, log density) before choosing a solver."
        )
    m = sizes[1]
    method = "parallel" if 4 * m * d * d * itemsize <= memory_budget else "benettin"
    estimate = lyapunov.lyapunov_exponent(step, traj, prefix(m), x0=x0, method=method)
    lam, se = float(estimate.exponent), float(estimate.stderr)
    spread = float(np.std(np.asarray(estimate.blocks))) * math.sqrt(m // estimate.blocks.shape[0])
    rtol, atol = default_tolerances(x0.dtype)
    scale = float(jnp.mean(jnp.abs(traj)))
    initial_error = float(jnp.max(jnp.abs(traj - x0[None, :])))
    sequential = next((c for c in candidates if isinstance(c, Sequential)), Sequential())
    reports, seq_seconds = [], math.nan
    # Undamped solvers first: a damped twin is measured only if its undamped twin failed.
    parallel = sorted((c for c in candidates if isinstance(c, ParallelSolver)), key=_is_damped)

    def finish(chosen, why):
        seq = CandidateReport(sequential, 0, None, seq_seconds / n, seq_seconds, "seconds per step")
        return AutoChoice(chosen, why, estimate, (seq, *reports), p, time.perf_counter() - began)

    head = f"The pilot's largest Lyapunov exponent is {lam:.3g} +- {se:.2g} per step"
    if not lam + 2.0 * se < 0:
        seq_seconds = _affine(sizes, [_timed(jobs[("seq", m)], repeats)[1] for m in sizes], n)
        reports.extend(CandidateReport(c, n, None, None, None, "skipped: not contracting") for c in parallel)
        return finish(
            sequential,
            f"{head}, not clearly negative: parallel iterations would approach T = {n}, so Sequential "
            "is fastest.",
        )

    # 2.-3. Memory, then each candidate on both prefixes (the longer one capped at 8 (k_P + 1)
    # iterations: linear growth).
    converged_kinds, measured, screened, quick_seq = set(), [], [], None
    for c in parallel:
        need = c.memory_bytes(n, d, itemsize)
        if need > memory_budget:
            note = f"skipped: needs ~{need / 2**30:.2g} GiB > budget {memory_budget / 2**30:.2g} GiB"
            reports.append(CandidateReport(c, None, None, None, None, note))
            continue
        if _is_damped(c) and c.jacobian in converged_kinds:
            note = "skipped: its undamped twin converged (same Jacobian, cheaper step)"
            reports.append(CandidateReport(c, None, None, None, None, note))
            continue
        jobs[(c, p)] = run(c, p)
        results[(c, p)] = pilot = jax.block_until_ready(jobs[(c, p)]())
        k = int(pilot.num_iterations)
        if _progressed(pilot):
            converged_kinds.add(c.jacobian)
        # Screen: the whole chain needs at least the prefix's iterations (the solvers are causal: the
        # prefix of their iterates is the prefix solve), each at least as long, so a candidate whose
        # P-step pilot alone is too slow cannot win, and its costly longer pilot is not run.
        if quick_seq is None:
            quick_seq = _affine(sizes, [_timed(jobs[("seq", m)], 3, compiled=True)[1] for m in sizes], n)
        pilot_seconds = _timed(jobs[(c, p)], 2, compiled=True)[1]
        if safety * pilot_seconds >= quick_seq:
            del jobs[(c, p)]
            iterations = lyapunov.calibrate_iterations(
                k, p, n, exponent=lam, tol=_tol(c, rtol, atol, scale), initial_error=initial_error,
                solver_kind=c, spread=spread, converged=_progressed(pilot),
            )  # fmt: skip
            note = (
                f"screened out: its {p}-step pilot alone takes {pilot_seconds:.3g} s, more than 1/{safety:g} "
                f"of Sequential's {quick_seq:.3g} s for the whole chain (no longer pilot)"
            )
            per_iteration = pilot_seconds / (k + 1)
            screened.append(
                CandidateReport(c, iterations, k, per_iteration, (iterations + 1) * per_iteration, note)
            )
            continue
        if sizes[1] > p:
            # Up to linear growth of the count over the 8x longer prefix is measured; beyond that
            # the chain is front-limited and parallel iterations cannot win.
            capped = dataclasses.replace(c, max_iterations=8 * (int(pilot.num_iterations) + 1))
            jobs[(c, sizes[1])] = run(capped, sizes[1])
            results[(c, sizes[1])] = jax.block_until_ready(jobs[(c, sizes[1])]())
        measured.append(c)

    # Time everything after compilation, interleaved round by round, so that load on a shared
    # machine slows all contenders alike; the fastest of `repeats` rounds counts.
    seconds = {key: math.inf for key in jobs}
    for _ in range(max(1, repeats)):
        for key, fn in jobs.items():
            seconds[key] = min(seconds[key], _timed(fn, 1, compiled=True)[1])
    seq_times = [seconds[("seq", m)] for m in sizes]
    seq_seconds = _affine(sizes, seq_times, n)
    call = min(_affine(sizes, seq_times, 0), *seq_times)  # the fixed cost of any solve call

    # 4. Time per iteration (the call cost and any sequential finish removed) and predictions.
    for c in measured:
        pilot = results[(c, p)]
        k, converged = int(pilot.num_iterations), _progressed(pilot)
        per_iteration = [max(seconds[(c, p)] - call, 0.0) / (k + 1)]
        if sizes[1] > p:
            long = results[(c, sizes[1])]
            rest = int(long.sequential_steps) * seq_times[1] / sizes[1]  # the sequential finish
            spent = (seconds[(c, sizes[1])] - call - rest) / (int(long.num_iterations) + 1)
            per_iteration.append(max(spent, per_iteration[0]))  # more steps never cost less
        else:
            per_iteration.append(per_iteration[0])
        iter_seconds = _affine(sizes, per_iteration, n)
        if jax.default_backend() == "cpu":
            # A CPU has no idle parallel width to absorb a longer chain: one iteration's work, O(T),
            # is at least proportional to T (an affine fit through two short prefixes dominated by
            # launch costs once predicted 200x too little at T = 1e5).
            iter_seconds = max(iter_seconds, per_iteration[-1] * n / sizes[-1])
        tol = _tol(c, rtol, atol, scale)
        longer = None
        if sizes[1] > p and converged:
            long = results[(c, sizes[1])]
            if _progressed(long):
                longer = (int(long.num_iterations), sizes[1])
            else:  # faster than linear growth up to the cap: at least linear beyond it
                converged = False
        predicted = lyapunov.calibrate_iterations(
            k,
            p,
            n,
            exponent=lam,
            tol=tol,
            initial_error=initial_error,
            solver_kind=c,
            spread=spread,
            converged=converged,
            longer_pilot=longer,
        )
        note = "" if converged else f"pilot ended {Status(int(pilot.status)).name}"
        if bool(pilot.front_limited):
            note = "front-limited pilot: its iterations did no better than the exactness front"
        elif converged is False and int(pilot.status) == Status.CONVERGED:
            note = f"count grows faster than linearly (the {sizes[1]}-step pilot hit its cap)"
        total = call + (predicted + 1) * iter_seconds
        reports.append(CandidateReport(c, predicted, k, iter_seconds, total, note))
    reports.extend(screened)
    reports.sort(key=lambda r: [c for c in candidates if c is not sequential].index(r.solver))

    # 5. The decision, with the safety factor.
    # Screened-out candidates keep their (optimistic) prediction in the table but cannot win: their
    # pilot alone was already too slow, and their iteration growth was never measured.
    measured = [r for r in reports if r.predicted_seconds is not None and r not in screened]
    head += " (contracting). "
    if not measured:
        return finish(
            sequential,
            head + "No parallel candidate fits the memory budget or survived its pilot, so Sequential.",
        )
    best = min(measured, key=lambda r: r.predicted_seconds)
    if safety * best.predicted_seconds < seq_seconds:
        return finish(
            best.solver,
            head + f"{_name(best.solver)} is predicted to take {best.predicted_iterations} iterations, "
            f"{best.predicted_seconds:.3g} s, versus {seq_seconds:.3g} s sequentially "
            f"({seq_seconds / best.predicted_seconds:.2g}x faster, more than the safety factor {safety:g}).",
        )
    return finish(
        sequential,
        head + f"The fastest parallel candidate, {_name(best.solver)}, is predicted to take "
        f"{best.predicted_seconds:.3g} s ({best.predicted_iterations} iterations) versus "
        f"{seq_seconds:.3g} s sequentially: not faster by the safety factor {safety:g}, so Sequential.",
    )


def solve_auto(step, x0, noise, **options) -> tuple[Solution, AutoChoice]:
    """Choose a solver with [`choose_solver`][pnmcmc.auto.choose_solver] and solve the whole chain.

    A chosen parallel solver gets `max_iterations` = the number of its iterations that take as long
    as the sequential chain (at least twice the predicted count; a smaller cap the solver already
    has is kept). If the prediction was wrong the engine stops there and finishes the chain
    sequentially, so the answer is exact and the loss at most about one sequential run.

    **Arguments:** `step`, `x0`, `noise` as for [`pnmcmc.solve`][pnmcmc.solve]; `options` are passed
    to `choose_solver`. Call outside `jit`.

    **Returns:** `(solution, choice)`: the [`Solution`][pnmcmc.Solution] (compare
    `solution.num_iterations` with `choice.report(choice.solver).predicted_iterations`) and the
    [`AutoChoice`][pnmcmc.auto.AutoChoice].
    """
    choice = choose_solver(step, x0, noise, **options)
    solver = fallback_cap(choice)
    return solve(step, x0, noise, solver), choice


def fallback_cap(choice: AutoChoice):
    """The chosen solver with `max_iterations` capped as `solve_auto` does (Sequential unchanged)."""
    solver = choice.solver
    if isinstance(solver, Sequential):
        return solver
    mine, seq = choice.report(solver), choice.candidates[0]
    affordable = int(seq.predicted_seconds / max(mine.seconds_per_iteration, 1e-9))
    cap = max(2 * (mine.predicted_iterations + 1), affordable)
    if solver.max_iterations is not None:
        cap = min(cap, solver.max_iterations)
    return dataclasses.replace(solver, max_iterations=cap)


def _quiet_solve(step, x0, noise, solver):
    # A pilot that does not converge is information, not a problem to warn the user about.
    return run(step, x0, noise, solver)


def _timed(fn, repeats, compiled=False):
    """(result, fastest wall time of `repeats` runs, after a compiling run unless `compiled`)."""
    out = None if compiled else jax.block_until_ready(fn())
    best = math.inf
    for _ in range(max(1, repeats)):
        began = time.perf_counter()
        out = jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - began)
    return out, best


def _affine(sizes, seconds, n):
    """Fit `a + b m` (a, b >= 0) through (sizes[i], seconds[i]) and evaluate it at m = n."""
    (m1, m2), (t1, t2) = sizes, seconds
    t2 = max(t1, t2)  # more steps never take less time (noise)
    if m2 <= m1:  # a single size: proportional to the length
        return t2 * n / m2
    slope = max(0.0, (t2 - t1) / (m2 - m1))
    intercept = max(0.0, t2 - slope * m2)
    return intercept + slope * n


def _tol(solver, rtol, atol, scale):
    """The solver's absolute tolerance on a state of typical magnitude `scale`."""
    return (atol if solver.atol is None else solver.atol) + (
        rtol if solver.rtol is None else solver.rtol
    ) * scale


def _progressed(solution) -> bool:
    """A pilot converged by its own iterations: CONVERGED and not front-limited (a front-limited
    solve converged only because the exactness front guarantees it, one element per iteration)."""
    return int(solution.status) == Status.CONVERGED and not bool(solution.front_limited)


def _is_damped(solver):
    return isinstance(solver, (ELK, QuasiELK))
