r"""`solver="auto"`: pick the fastest exact method for a chain, measuring as little as it must.

**Default candidates:** `DEER`, `QuasiDEER` and `ELK`, each on segments of `SEGMENT` = 16 steps
([`pnmcmc.engine.segments`][pnmcmc.engine.segments]: the segment maps of a contracting chain contract, so they
need several times fewer iterations than the step-by-step methods, with the same work per
iteration), and `Sequential`.

**The rule.** All methods return the same (exact) chain, so the choice is about time only. It runs
in stages, each of which can settle the choice before the costlier ones (compiling and timing
every candidate) run:

1. *Sequential pilot*: solve the first $L = \min(T, 8P)$ steps sequentially and time one vmapped
   evaluation of the step over the same $L$ states: their ratio $r$ is what one parallel pass over
   the chain costs relative to the whole sequential chain.
2. *Cost bound*: a parallel solve needs at least one update and one certifying pass, each
   evaluating the step `solver.step_evaluations` times per element (1 for Jacobi and Picard,
   2 for solvers that linearise, one more for a trust region), so it takes at least
   $2\,e\,r$ sequential chains. A candidate for which $\text{safety} \times 2 e r \ge 1$ cannot
   win and is not compiled; if none can, Sequential is chosen here. On a CPU, where one vmapped
   pass already costs a good fraction of a sequential chain, this is where the choice usually ends.
3. *Dynamics*: estimate the largest Lyapunov exponent on the $L$ steps
   ([`pnmcmc.analysis.lyapunov`][pnmcmc.analysis.lyapunov]). If it is not clearly negative
   ($\hat\lambda + 2\,\mathrm{se} \ge 0$), parallel iterations would approach $T$: Sequential.
4. *Memory*: drop candidates whose solve would not fit `memory_budget` bytes (default 1 GiB) by
   the solver's own formula, `solver.memory_bytes(T, D, itemsize)` (`pnmcmc.engine.memory`).
5. *Measure*: solve the $P$-step prefix with each remaining candidate (its iteration count $k_P$
   and time per iteration), and the $L$-step prefix with at most $8 (k_P + 1)$ iterations (its
   count $k_L$ measures how the count grows with the length; a run that needs more grows faster
   than linearly and is predicted to need $T$). A damped solver (ELK, QuasiELK) is skipped when its
   undamped twin with the same Jacobian converged, and a candidate whose $P$-step pilot alone costs
   more than $1/\text{safety}$ of the whole sequential chain is screened out. After compilation,
   every run is timed in interleaved rounds and the fastest of `repeats` counts, so that load on a
   shared machine slows every contender alike. Sequential times are fitted as $a + b\,n$ in the
   length; $a$, the fixed cost of a solve call, is subtracted from the parallel times before they
   are divided by the number of passes, and times per iteration are extrapolated to $T$ the same
   way (on a CPU, which has no idle parallel width, at least proportionally to $T$).
6. *Predict*: each candidate's iterations on the whole chain are $k_P$ extrapolated to $T$ by
   [`calibrate_iterations`][pnmcmc.analysis.prediction.calibrate_iterations] with both pilots (the power law
   through $(P, k_P)$ and $(L, k_L)$; $k_L$ itself when $L = T$); a front-limited or unconverged
   pilot predicts $T$. Predicted time = $a$ + (iterations + 1) x time per iteration.
7. *Decide* ([`decide`][pnmcmc.analysis.auto.decide], a pure function of the reports): the fastest
   parallel candidate only if `safety` x its predicted time is below the predicted sequential time
   (default `safety = 2`, the accuracy the iteration predictor is calibrated to); otherwise
   Sequential.

[`solve_auto`][pnmcmc.analysis.auto.solve_auto] runs the choice with `max_iterations` capped so that a
wrong prediction costs at most about one sequential run: the cap is the number of iterations
that take as long as the whole sequential chain (at least twice the prediction). At the cap the
engine finishes the remaining steps sequentially, so the result is exact in every case.

The stages' compilations and runs are `AutoChoice.pilot_seconds`. They depend on the step function
and the shapes only, so a caller solving many chains of the same model (e.g. `parallel_sample`)
should choose once and reuse `AutoChoice.solver`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..engine.solution import Solution, Status, default_tolerances
from ..engine.solve import run, solve
from ..engine.solvers import DEER, ELK, SEGMENT, ParallelSolver, QuasiDEER, Sequential
from . import lyapunov, prediction

__all__ = [
    "AutoChoice",
    "AutoSolver",
    "CandidateReport",
    "choose_solver",
    "decide",
    "fallback_cap",
    "settle",
    "solve_auto",
]

DEFAULT_CANDIDATES = (
    DEER(segment=SEGMENT),
    QuasiDEER(segment=SEGMENT),
    ELK(segment=SEGMENT),
    Sequential(),
)
MEMORY_BUDGET = 2**30  # bytes a candidate's solve may need (1 GiB)
SAFETY = 2.0  # a parallel solver must be predicted this many times faster than Sequential


@dataclasses.dataclass(frozen=True)
class CandidateReport:
    """What the stages measured and predicted for one candidate (times in seconds, for the whole chain).

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
    - `estimate`: the [`LyapunovEstimate`][pnmcmc.analysis.lyapunov.LyapunovEstimate] from the pilot, or
      None when the cost bound settled the choice before the dynamics were needed.
    - `candidates`: one [`CandidateReport`][pnmcmc.analysis.auto.CandidateReport] per candidate, Sequential
      first.
    - `pilot_steps`: the pilot length P.
    - `pilot_seconds`: wall time of the whole choice (compilations included).
    """

    solver: object
    reasons: str
    estimate: lyapunov.LyapunovEstimate | None
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
                f"{c.solver.name:<34}{_fmt(c.pilot_iterations):>9}{_fmt(c.predicted_iterations):>8}"
                f"{_fmt(c.seconds_per_iteration, '.3g'):>11}{_fmt(c.predicted_seconds, '.3g'):>11}  {c.note}"
            )
        return f"chosen: {self.solver.name}. {self.reasons}\n" + "\n".join(lines)


def _fmt(value, spec="d"):
    return "-" if value is None else format(value, spec)


class _Problem(NamedTuple):
    """The chain the choice is about, and the two pilot lengths (P, L)."""

    step: Any
    x0: jax.Array
    noise: Any
    n: int
    d: int
    itemsize: int
    sizes: tuple[int, int]

    def prefix(self, m):
        return jax.tree.map(lambda a: a[:m], self.noise)

    def runner(self, solver, m):
        """A thunk solving the first m steps with `solver`, without reports (a pilot that does not
        converge is information, not a problem to warn the user about)."""
        return lambda: run(self.step, self.x0, self.prefix(m), solver)


class _Dynamics(NamedTuple):
    """What stage 3 learned from the sequential pilot's trajectory."""

    estimate: lyapunov.LyapunovEstimate
    spread: float  # standard deviation of the per-step log-growth
    scale: float  # typical |x|
    initial_error: float  # largest error of the default initial guess (x0 repeated)

    @property
    def contracting(self) -> bool:
        return float(self.estimate.exponent) + 2.0 * float(self.estimate.stderr) < 0


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
    """Choose the fastest exact solver for `x_t = step(x_{t-1}, noise_t)`, measuring as little as
    it must (see the module docstring for the stages).

    Runs (and times) code on the current device, so it must be called outside `jax.jit` /
    `jax.vmap`; for a batch of chains choose once on one chain.

    **Arguments:**

    - `step`, `x0`, `noise`: the problem, as for [`pnmcmc.solve`][pnmcmc.solve].
    - `candidates`: solver objects to choose from; `Sequential()` is always considered.
    - `pilot_steps`: the pilot length P (default `min(T, 256)`); the longer pilot is `min(T, 8P)`.
    - `memory_budget`: bytes a candidate's solve may need by its formula (default 1 GiB).
    - `safety`: how many times faster than Sequential a parallel candidate must be predicted.
    - `repeats`: timed runs per measurement (the fastest counts).

    **Returns:** an [`AutoChoice`][pnmcmc.analysis.auto.AutoChoice].
    """
    began = time.perf_counter()
    problem = _problem(step, x0, noise, candidates, pilot_steps, safety)
    sequential = next((c for c in candidates if isinstance(c, Sequential)), Sequential())
    parallel = [c for c in candidates if isinstance(c, ParallelSolver)]

    # 1. The sequential pilot, and the cost of one vmapped pass.
    jobs = {("seq", m): problem.runner(Sequential(), m) for m in problem.sizes}
    results = {key: jax.block_until_ready(fn()) for key, fn in jobs.items()}  # compiles too
    trajectory = results[("seq", problem.sizes[1])].trajectory
    if not bool(jnp.all(jnp.isfinite(trajectory))):
        raise ValueError(
            f"the chain becomes non-finite within its first {problem.sizes[1]} steps; fix the step "
            "function (step size, log density) before choosing a solver."
        )
    ratio = _pass_ratio(problem, trajectory, jobs[("seq", problem.sizes[1])], repeats)

    def finish(chosen, why, reports, seconds, estimate=None):
        seq = CandidateReport(sequential, 0, None, seconds / problem.n, seconds, "seconds per step")
        order = [c for c in candidates if c is not sequential]
        reports = sorted(reports, key=lambda r: order.index(r.solver))
        return AutoChoice(
            chosen, why, estimate, (seq, *reports), problem.sizes[0], time.perf_counter() - began
        )

    def sequential_seconds():
        times = [_timed(jobs[("seq", m)], repeats, compiled=True)[1] for m in problem.sizes]
        return _affine(problem.sizes, times, problem.n)

    # 2. The cost bound.
    bound = {c: 2 * c.step_evaluations * ratio for c in parallel}
    hopeless = [c for c in parallel if safety * bound[c] >= 1]
    reports = [
        CandidateReport(
            c, None, None, None, None,
            f"cannot win: even one update and the certifying pass cost >= {bound[c]:.2g} sequential chains",
        )
        for c in hopeless
    ]  # fmt: skip
    parallel = [c for c in parallel if c not in hopeless]
    if not parallel:
        return finish(
            sequential,
            f"One vmapped pass of the step over {problem.sizes[1]} states costs {ratio:.2g} of the "
            f"sequential chain of the same length, so no parallel candidate can be {safety:g}x faster "
            "than Sequential (each needs at least two such passes).",
            reports,
            sequential_seconds(),
        )

    # 3. The dynamics.
    dynamics = _dynamics(problem, trajectory, memory_budget)
    lam, se = float(dynamics.estimate.exponent), float(dynamics.estimate.stderr)
    head = f"The pilot's largest Lyapunov exponent is {lam:.3g} +- {se:.2g} per step"
    if not dynamics.contracting:
        reports += [
            CandidateReport(c, problem.n, None, None, None, "skipped: not contracting") for c in parallel
        ]
        return finish(
            sequential,
            f"{head}, not clearly negative: parallel iterations would approach T = {problem.n}, so "
            "Sequential is fastest.",
            reports,
            sequential_seconds(),
            dynamics.estimate,
        )

    # 4. Memory.
    fits = []
    for c in parallel:
        need = c.memory_bytes(problem.n, problem.d, problem.itemsize)
        if need > memory_budget:
            note = f"skipped: needs ~{need / 2**30:.2g} GiB > budget {memory_budget / 2**30:.2g} GiB"
            reports.append(CandidateReport(c, None, None, None, None, note))
        else:
            fits.append(c)

    # 5.-6. Measure and predict.
    measured, screened = _measure(problem, fits, jobs, results, dynamics, safety, repeats, reports)
    seq_seconds, predicted = _predict(problem, measured, jobs, results, dynamics, repeats)

    # 7. Decide.
    chosen, why = decide(predicted, seq_seconds, safety)
    return finish(
        sequential if chosen is None else chosen,
        f"{head} (contracting). {why}",
        reports + predicted + screened,
        seq_seconds,
        dynamics.estimate,
    )


def decide(reports, sequential_seconds: float, safety: float = SAFETY):
    """The decision rule, a pure function: `(solver or None, why)`.

    The fastest of the measured candidates (`predicted_seconds` not None) is chosen if `safety` times
    its predicted time is below `sequential_seconds`; otherwise None (Sequential).
    """
    measured = [r for r in reports if r.predicted_seconds is not None]
    if not measured:
        return None, "No parallel candidate fits the memory budget or survived its pilot, so Sequential."
    best = min(measured, key=lambda r: r.predicted_seconds)
    if safety * best.predicted_seconds < sequential_seconds:
        return best.solver, (
            f"{best.solver.name} is predicted to take {best.predicted_iterations} iterations, "
            f"{best.predicted_seconds:.3g} s, versus {sequential_seconds:.3g} s sequentially "
            f"({sequential_seconds / best.predicted_seconds:.2g}x faster, more than the safety factor "
            f"{safety:g})."
        )
    return None, (
        f"The fastest parallel candidate, {best.solver.name}, is predicted to take "
        f"{best.predicted_seconds:.3g} s ({best.predicted_iterations} iterations) versus "
        f"{sequential_seconds:.3g} s sequentially: not faster by the safety factor {safety:g}, so Sequential."
    )


def _problem(step, x0, noise, candidates, pilot_steps, safety) -> _Problem:
    """Check the arguments (before anything is compiled) and fix the pilot lengths."""
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
    p = min(n, 256) if pilot_steps is None else int(pilot_steps)
    if not 2 <= p <= n:
        raise ValueError(f"pilot_steps must be in [2, T] = [2, {n}], got {pilot_steps!r}.")
    return _Problem(step, x0, noise, n, int(x0.shape[-1]), jnp.dtype(x0.dtype).itemsize, (p, min(n, 8 * p)))


def _pass_ratio(problem, trajectory, sequential_job, repeats) -> float:
    """One vmapped evaluation of the step at the L states of the pilot, over the sequential chain of
    the same L steps (both timed after compilation)."""
    m = problem.sizes[1]
    prev = jnp.concatenate([problem.x0[None], trajectory[:-1]])
    evaluate = jax.jit(jax.vmap(problem.step))
    noise = problem.prefix(m)
    pass_seconds = _timed(lambda: evaluate(prev, noise), repeats)[1]
    return pass_seconds / _timed(sequential_job, repeats, compiled=True)[1]


def _dynamics(problem, trajectory, memory_budget) -> _Dynamics:
    m, d = problem.sizes[1], problem.d
    method = "parallel" if 4 * m * d * d * problem.itemsize <= memory_budget else "benettin"
    estimate = lyapunov.lyapunov_exponent(
        problem.step, trajectory, problem.prefix(m), x0=problem.x0, method=method
    )
    blocks = np.asarray(estimate.blocks)
    spread = float(np.nanstd(blocks)) * math.sqrt(m // blocks.shape[0])
    scale = float(jnp.mean(jnp.abs(trajectory)))
    initial_error = float(jnp.max(jnp.abs(trajectory - problem.x0[None, :])))
    return _Dynamics(estimate, spread, scale, initial_error)


def _measure(problem, candidates, jobs, results, dynamics, safety, repeats, reports):
    """Stage 5: each candidate's pilots (adding their jobs to `jobs`), in order, undamped first.

    Returns `(measured, screened)`: the candidates whose both pilots ran, and the reports of those
    screened out because their short pilot alone was too slow (kept in the table, optimistic, but
    they cannot win: their iteration growth was never measured)."""
    p, long = problem.sizes
    rtol, atol = default_tolerances(problem.x0.dtype)
    converged_kinds, measured, screened, quick_seq = set(), [], [], None
    for c in sorted(candidates, key=lambda c: c.damped):
        if c.damped and c.jacobian in converged_kinds:
            note = "skipped: its undamped twin converged (same Jacobian, cheaper step)"
            reports.append(CandidateReport(c, None, None, None, None, note))
            continue
        jobs[(c, p)] = problem.runner(c, p)
        results[(c, p)] = pilot = jax.block_until_ready(jobs[(c, p)]())
        k = int(pilot.num_iterations)
        if _progressed(pilot):
            converged_kinds.add(c.jacobian)
        # The whole chain needs at least the prefix's iterations (the solvers are causal: the prefix
        # of their iterates is the prefix solve), each at least as long, so a candidate whose P-step
        # pilot alone is too slow cannot win, and its costly longer pilot is not run.
        if quick_seq is None:
            times = [_timed(jobs[("seq", m)], 3, compiled=True)[1] for m in problem.sizes]
            quick_seq = _affine(problem.sizes, times, problem.n)
        pilot_seconds = _timed(jobs[(c, p)], 2, compiled=True)[1]
        if safety * pilot_seconds >= quick_seq:
            del jobs[(c, p)]
            iterations = prediction.calibrate_iterations(
                k, p, problem.n, exponent=float(dynamics.estimate.exponent),
                tol=_tol(c, rtol, atol, dynamics.scale), initial_error=dynamics.initial_error,
                solver_kind=c, spread=dynamics.spread, converged=_progressed(pilot),
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
        if long > p:
            # Up to linear growth of the count over the 8x longer prefix is measured; beyond that
            # the chain is front-limited and parallel iterations cannot win.
            capped = dataclasses.replace(c, max_iterations=8 * (k + 1))
            jobs[(c, long)] = problem.runner(capped, long)
            results[(c, long)] = jax.block_until_ready(jobs[(c, long)]())
        measured.append(c)
    return measured, screened


def _predict(problem, measured, jobs, results, dynamics, repeats):
    """Stage 6: `(sequential seconds, reports)` from every job timed in interleaved rounds (so that
    load on a shared machine slows all contenders alike; the fastest of `repeats` counts)."""
    p, long = problem.sizes
    n = problem.n
    seconds = {key: math.inf for key in jobs}
    for _ in range(max(1, repeats)):
        for key, fn in jobs.items():
            seconds[key] = min(seconds[key], _timed(fn, 1, compiled=True)[1])
    seq_times = [seconds[("seq", m)] for m in problem.sizes]
    seq_seconds = _affine(problem.sizes, seq_times, n)
    call = min(_affine(problem.sizes, seq_times, 0), *seq_times)  # the fixed cost of any solve call
    rtol, atol = default_tolerances(problem.x0.dtype)
    reports = []
    for c in measured:
        pilot = results[(c, p)]
        k, converged = int(pilot.num_iterations), _progressed(pilot)
        per_iteration = [max(seconds[(c, p)] - call, 0.0) / (k + 1)]
        if long > p:
            longer = results[(c, long)]
            rest = int(longer.sequential_steps) * seq_times[1] / long  # the sequential finish
            spent = (seconds[(c, long)] - call - rest) / (int(longer.num_iterations) + 1)
            per_iteration.append(max(spent, per_iteration[0]))  # more steps never cost less
        else:
            per_iteration.append(per_iteration[0])
        iter_seconds = _affine(problem.sizes, per_iteration, n)
        if jax.default_backend() == "cpu":
            # A CPU has no idle parallel width to absorb a longer chain: one iteration's work, O(T),
            # is at least proportional to T.
            iter_seconds = max(iter_seconds, per_iteration[-1] * n / long)
        longer_pilot = None
        if long > p and converged:
            if _progressed(results[(c, long)]):
                longer_pilot = (int(results[(c, long)].num_iterations), long)
            else:  # faster than linear growth up to the cap: at least linear beyond it
                converged = False
        predicted = prediction.calibrate_iterations(
            k, p, n, exponent=float(dynamics.estimate.exponent), tol=_tol(c, rtol, atol, dynamics.scale),
            initial_error=dynamics.initial_error, solver_kind=c, spread=dynamics.spread,
            converged=converged, longer_pilot=longer_pilot,
        )  # fmt: skip
        note = "" if converged else f"pilot ended {Status(int(pilot.status)).name}"
        if bool(pilot.front_limited):
            note = "front-limited pilot: its iterations did no better than the exactness front"
        elif not converged and int(pilot.status) == Status.CONVERGED:
            note = f"count grows faster than linearly (the {long}-step pilot hit its cap)"
        total = call + (predicted + 1) * iter_seconds
        reports.append(CandidateReport(c, predicted, k, iter_seconds, total, note))
    return seq_seconds, reports


def solve_auto(step, x0, noise, **options) -> tuple[Solution, AutoChoice]:
    """Choose a solver with [`choose_solver`][pnmcmc.analysis.auto.choose_solver] and solve the whole chain.

    A chosen parallel solver gets `max_iterations` = the number of its iterations that take as long
    as the sequential chain (at least twice the predicted count; a smaller cap the solver already
    has is kept). If the prediction was wrong the engine stops there and finishes the chain
    sequentially, so the answer is exact and the loss at most about one sequential run.

    **Arguments:** `step`, `x0`, `noise` as for [`pnmcmc.solve`][pnmcmc.solve]; `options` are passed
    to `choose_solver`. Call outside `jit`.

    **Returns:** `(solution, choice)`: the [`Solution`][pnmcmc.Solution] (compare
    `solution.num_iterations` with `choice.report(choice.solver).predicted_iterations`) and the
    [`AutoChoice`][pnmcmc.analysis.auto.AutoChoice].
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


# --- solver="auto" in parallel_sample ------------------------------------------------------------

DENSE_MAX_DIM = 32
"""Largest D for which the warmup windows under "auto" use dense Newton (`DEER`); above it the
diagonal `QuasiDEER` (O(T D) memory)."""

PILOTS = ("auto", "always")
"""`AutoSolver.pilot`: "auto" runs the pilot only where the cost model cannot settle the choice."""


def settle(backend: str) -> str | None:
    """The cost model, before any pilot: why Sequential is the choice, or None when only a pilot
    can tell.

    A parallel solve evaluates the step over the whole chain at least twice per iteration (an
    update and a certifying pass, stage 2 of the rule above). A CPU has no idle parallel width to
    hide that in: one vmapped pass costs a good fraction of the sequential chain, so no parallel
    solver can win there (`benchmarks/results/auto-cpu.md`), and a pilot would only cost its own
    compilations.
    """
    if backend == "cpu":
        return (
            "auto: Sequential without a pilot, because on a CPU one parallel pass over the chain costs "
            "about as much as the whole sequential chain (pass solver='deer' to see a parallel solve, or "
            'AutoSolver(pilot="always") to measure)'
        )
    return None


@dataclasses.dataclass(frozen=True)
class AutoSolver:
    """`solver="auto"` with options: the sampling solver from a cost model, or a measured pilot.

    On a backend where the cost model settles the choice ([`settle`][pnmcmc.analysis.auto.settle]:
    a CPU), every solve is `Sequential` and nothing is measured. Elsewhere, after warmup,
    [`pnmcmc.choose_solver`][pnmcmc.analysis.auto.choose_solver] runs once on chain 0's sampling
    chain (its adapted step size and mass matrix, its start and its noise): it estimates the
    largest Lyapunov exponent, times one parallel iteration of each candidate against one
    sequential step, and picks the fastest expected exact method (Sequential unless a parallel
    one is predicted `safety` times faster). Every chain is then solved with that solver, its
    `max_iterations` capped by [`fallback_cap`][pnmcmc.analysis.auto.fallback_cap] so that a wrong
    prediction costs at most about one sequential run (the rest is finished sequentially: still
    exact). The pilot reads the chain's noise but draws none, so the draws are those of any other
    solver. The warmup windows, short and many, use
    [`window_solver`][pnmcmc.analysis.auto.AutoSolver.window_solver] instead of a pilot each.

    **Fields:** `pilot` ("auto": only where the cost model cannot settle the choice; "always"),
    and, passed to `choose_solver`, `pilot_steps` (P; default `min(T, 256)`, timing also uses
    `min(T, 8P)` steps), `candidates`, `safety`, `repeats` (timed rounds; the fastest counts).
    """

    pilot_steps: int | None = None
    candidates: tuple = DEFAULT_CANDIDATES
    safety: float = SAFETY
    repeats: int = 5
    pilot: str = "auto"

    def __post_init__(self):
        if self.pilot not in PILOTS:
            raise ValueError(f"AutoSolver: pilot must be one of {PILOTS}, got {self.pilot!r}.")

    def settle(self, backend: str) -> str | None:
        """Why the choice is Sequential without a pilot on `backend`, or None (a pilot decides)."""
        return settle(backend) if self.pilot == "auto" else None

    def window_solver(self, dim: int, backend: str):
        """The warmup windows' solver and why: `(solver, reason)`.

        Sequential where the cost model settles the choice; otherwise dense Newton (`DEER`), which
        converges in the fewest iterations but stores (D, D) Jacobians, up to D = `DENSE_MAX_DIM`,
        and the diagonal `QuasiDEER` (O(T D) memory) above, both on `SEGMENT`-step segments
        ([`pnmcmc.engine.segments`][pnmcmc.engine.segments]), which cut a warmup's iterations
        several-fold.
        """
        settled = self.settle(backend)
        if settled is not None:
            return Sequential(), settled
        m = SEGMENT
        if dim > DENSE_MAX_DIM:
            why = f"auto: D = {dim} > {DENSE_MAX_DIM}, diagonal quasi-Newton (O(T D) memory)"
            return QuasiDEER(segment=m), f"{why} on {m}-step segments"
        return DEER(segment=m), f"auto: D = {dim} <= {DENSE_MAX_DIM}, dense Newton on {m}-step segments"

    def choose(self, logdensity, kernels, positions, noise) -> AutoChoice:
        """The `AutoChoice` for chain 0 of a batch (kernel parameters, positions and noise batched)."""
        kernel, x0, xi = jax.tree.map(lambda a: a[0], (kernels, positions, noise))

        def step(x, e):
            return kernel.step(logdensity, x, e)

        n = int(jax.tree.leaves(xi)[0].shape[0])
        pilot = None if self.pilot_steps is None else max(2, min(int(self.pilot_steps), n))
        return choose_solver(
            step,
            x0,
            xi,
            candidates=self.candidates,
            pilot_steps=pilot,
            safety=self.safety,
            repeats=self.repeats,
        )
