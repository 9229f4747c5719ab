r"""Warmup (adaptation of the step size and the mass matrix) whose windows are solved in parallel.

**Windows.** Adaptation only changes the kernel's parameters *between* windows: inside a window the
step size $h$ and inverse mass matrix $m$ are fixed, so the window is an ordinary Markov chain
$x_t = f_{h,m}(x_{t-1}, \xi_t)$ and is solved whole by `pnmcmc.solve` (all chains at once). The
schedule is Stan's (Hoffman and Gelman 2014; the Stan reference manual): an initial *fast* buffer
(75 steps) where only $h$ adapts, *slow* windows of doubling length (the first 25 steps, the last
stretched to fill) at the end of each of which $m$ is re-estimated from that window's draws, and a
final fast buffer (50 steps); 15% / 75% / 10% of warmups shorter than 150 steps. The warmup is cut
into about `windows` windows of equal length $L$ (one compiled solve serves them all), and the
buffers and slow windows are whole numbers of them.

**Step size: dual averaging across windows.** After a window with mean acceptance statistic
$\bar a_k$ (the mean over its $L$ steps, far less noisy than one step's), Nesterov's dual averaging
as in Stan updates, with $\delta$ the target acceptance (the kernel's `target_acceptance` unless
`WindowAdaptation(target_acceptance=...)` sets one), $\gamma = 0.05$ (NUTS: 0.2, below), $t_0 = 10$,
$\kappa = 0.75$:

$$\bar H_k = (1 - \tfrac{1}{k + t_0}) \bar H_{k-1} + \tfrac{1}{k + t_0}(\delta - \bar a_k),\quad
\log h_{k+1} = \mu - \tfrac{\sqrt k}{\gamma} \bar H_k,\quad
\log \bar h_k = k^{-\kappa} \log h_{k+1} + (1 - k^{-\kappa}) \log \bar h_{k-1}.$$

The next window uses $h_{k+1}$. (Applying Stan's per-step updates to the $L$ steps of a window
instead oscillates: the step size cannot react within the window, so the updates overshoot.)

**The gain, and why NUTS uses $\gamma = 0.2$.** A window's mean acceptance moves the next log step
size with the gain $g_k = \partial \log h_{k+1} / \partial \bar a_k = \sqrt k / (\gamma (k + t_0))$,
at most $g^\star = 1 / (2 \gamma \sqrt{t_0})$ (3.2 for Stan's $\gamma = 0.05$). Linearised, the loop
"step size -> window acceptance -> step size" contracts a perturbation only while $g |s| < 2$,
where $s = d\bar a / d \log h$ is the slope of the acceptance curve. NUTS's acceptance statistic
falls off a cliff at the leapfrog stability limit (trajectories diverge and the window's
acceptance collapses), where $|s| \approx 2$: with Stan's $\gamma$ the step size bounces onto and
off the cliff window after window, a chaotic regime in which the final step size depends on
round-off (and windows at acceptance 0.1 are wasted). NUTS therefore uses `NUTS_GAMMA` = 0.2
($g^\star = 0.79$), which keeps the loop contracting; the restarts at the searched step size
(below) keep its smaller steps short. MALA's acceptance curve has no cliff and its warmup is
insensitive with Stan's $\gamma$, and it needs the larger gain to travel the orders of magnitude
between the initial point's step size and the typical set's; HMC's warmups stay sensitive with
either value (its fixed-length, jittered trajectories), so both keep Stan's. The measurements are
in `benchmarks/results/warmup-twin-cpu.md`; `pnmcmc.sampling.twins` reports the chains that stay
sensitive.

**Acceptance-curve searches.** With every $x_{t-1}$ and $\xi_t$ of a window known, the *acceptance
curve* $\hat a(h) = \frac1n \sum_t a(x_{t-1}, \xi_t; h, m)$ can be evaluated for any $h$ in one
vmapped pass (no chain is solved), and $\hat a(h^\star) = \delta$ solved by bracketing with
factors of 2, the Illinois method (regula falsi in $\log h$ whose kept end has its residual halved)
until the bracket is $10^{-3}$ wide or an evaluation lands within 0.01 of the target (far inside
the sampling error of a mean over $n$ states), and linear interpolation inside the last bracket.
Each evaluation costs $n$ kernel transitions, so the searches are the warmup's cost beyond its
windows (`WarmupResult.search_transitions`). NUTS's acceptance curve is only piecewise smooth
(tree sizes jump with $h$): narrowing its bracket to $10^{-3}$ took as many steps as bisection,
and the acceptance tolerance stops most searches after a few. Every point but the last is then
more than 0.01 from the target, so a rounding-level change of the states can flip only the last
comparison, which the interpolation absorbs. The interpolation makes $h^\star$ a continuous function of the
states (a bracket's midpoint would jump by the bracket's width whenever a rounding-level change of
the states flips one comparison, and that jump would travel through the rest of the warmup). Such a
search (over $n = L$ states) sets

- the initial step size (the initial point repeated, with the first window's noise);
- the restart of dual averaging ($\mu = \log h^\star$) after each mass-matrix update, on the
  window just finished with the new $m$, starting from the window's step size rescaled to the new
  metric: $h$ scales with the smallest posterior scale in the metric's units,
  $\min_i \sigma_i / \sqrt{m_i}$, so with $\sigma_i^2 \approx m_i^{new}$ the start is
  $h / \min_i \sqrt{m^{new}_i / m^{old}_i}$ (diagonals of dense metrics). From the identity
  metric to a posterior with scales of $10^{-3}$, this saves the bracketing about ten evaluations,
  each at step sizes so small that NUTS builds its deepest trees. Stan restarts at
  $\mu = \log(10 h)$, an exploratory jump that its one-step updates correct within a few dozen
  iterations; with one update per window that would waste whole windows;
- the final step size, on $L$ states spread over the final buffer, starting from the dual
  average $\bar h$: with only a few windows after the last mass-matrix update, $\bar h$ alone
  left some HMC chains at acceptance 0 or 0.95.

**Mass matrix.** The draws of a slow window (per chain) give the sample variance $s^2$ (window
moments merged with Chan et al.'s pairwise update), regularised as in Stan:
$m = \frac{n}{n + 5} s^2 + 10^{-3} \frac{5}{n + 5}$. With `dense_mass=True` they give the sample
covariance $S$ instead (the same merge with outer products: $M_2 = M_{2,a} + M_{2,b} +
\delta\delta^\top n_a n_b / n$), regularised as Stan's dense metric is:
$m = \frac{n}{n + 5} S + 10^{-3} \frac{5}{n + 5} I$, positive definite for any draws.

**The sequential twin** (the `Sequential` solver in every window) runs the same adaptation on the
same noise. The adaptation feeds each window's draws into the next window's parameters, so the
warmup amplifies small differences like round-off, by how much depends on the posterior and the
kernel (`benchmarks/results/warmup-twin-cpu.md`: from nothing measurable to the whole posterior
width). The windows are therefore solved to `WARMUP_ULPS` = 64 ulps (`warmup_solver`) instead of
the sampling default (1e-11 in float64), for a few percent more iterations, and the parallel
warmup then differs from the sequential one by no more than moving every window's start by one
ulp does to the sequential warmup itself. That yardstick is measured in every float64 run by a
*shadow* (`WindowAdaptation.twin_check`): the warmup once more with every window's start moved by
one ulp and its own adaptation carried through, its distance from the warmup reported as
`WarmupResult.sensitivity`; `pnmcmc.sampling.twins` turns it into the per-chain twin verdict.

`BlackJAXWindowAdaptation` runs `blackjax.window_adaptation` instead (sequential, one step at a
time, Stan's per-step dual averaging) with the BlackJAX algorithm equivalent to the kernel: HMC
with one leapfrog step for MALA ($h = \varepsilon^2 / 2$), HMC, or NUTS.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..engine.reporting import Tally, find_stack_level
from ..engine.solution import Solution, Status, default_tolerances
from ..engine.solvers import Sequential
from . import programs, progress
from .chains import ChainBatch, chain_runner, kernel_parameters, with_parameters, with_step_size

__all__ = [
    "BlackJAXWindowAdaptation",
    "Window",
    "WarmupProblem",
    "WarmupResult",
    "WindowAdaptation",
    "window_schedule",
]

_GAMMA, _T0, _KAPPA = 0.05, 10.0, 0.75  # Stan's dual-averaging constants
NUTS_GAMMA = 0.2  # NUTS's dual-averaging gamma: a gain the feedback loop stays stable with (docstring)
_SHRINK_COUNT, _SHRINK_TARGET = 5.0, 1e-3  # Stan's variance regularisation
_EXPAND = 40  # step-size search: at most this many factor-2 bracketing steps,
# then Illinois steps until the bracket is this narrow in log h, or the latest acceptance this close
# to the target (far below the sampling error of a mean over a window's states), or this many steps
_SEARCH_WIDTH, _SEARCH_ACCEPTANCE, _REFINE = 1e-3, 0.01, 24
_MIN_WINDOW = 5  # shorter windows would make the warmup a sequence of tiny solves
WARMUP_ULPS = 64  # warmup windows are solved to this many ulps (see `warmup_solver`)
SHADOW_STOP = 1e-3  # the one-ulp shadow stops once every chain's parameters moved this much
INITIAL_SEARCH = 32  # steps of noise for the step-size search when there is no warmup window


class Window(NamedTuple):
    """One window of the warmup with fixed kernel parameters.

    - `length`: its number of steps.
    - `slow`: its draws feed the mass-matrix estimate.
    - `window_end`: the mass matrix is re-estimated after it (the end of a slow window).
    """

    length: int
    slow: bool
    window_end: bool


def _window_length(num_warmup: int, windows: int) -> int:
    """About `num_warmup / windows`, preferring a divisor of `num_warmup` (one compiled length)."""
    target = max(num_warmup / windows, min(_MIN_WINDOW, num_warmup))
    candidates = [
        n for n in range(max(1, math.ceil(target / 2)), math.floor(2 * target) + 1) if num_warmup % n == 0
    ]
    if candidates:
        return min(candidates, key=lambda n: (abs(math.log(n / target)), n))
    return math.ceil(target)


def window_schedule(num_warmup: int, windows: int = 40) -> tuple[Window, ...]:
    """Stan's warmup schedule, cut into windows of equal length.

    **Arguments:**

    - `num_warmup`: the number of warmup steps.
    - `windows`: about how many windows. Their length $L$ is near `num_warmup / windows`, a
      divisor of `num_warmup` when one is close (else a shorter last window takes the remainder).

    **Returns:** the windows in order. Stan's buffers (75 initial fast steps, a first slow window
    of 25, 50 final fast steps; 15% / 75% / 10% of the warmup when it is shorter than 150 steps)
    rounded to whole windows (at least one each). With fewer than 8 windows (or fewer than 20
    steps) only the step size adapts.
    """
    if num_warmup <= 0:
        return ()
    length = _window_length(num_warmup, windows)
    full, rest = divmod(num_warmup, length)
    tail = (Window(rest, False, False),) if rest else ()
    if full < 8 or num_warmup < 20:
        return (Window(length, False, False),) * full + tail
    if num_warmup >= 150:
        init, size, term = 75, 25, 50
    else:
        init, size, term = 0.15 * num_warmup, 0.75 * num_warmup, 0.1 * num_warmup
    init, size, term = (max(1, round(n / length)) for n in (init, size, term))
    slow_total = full - init - term
    if slow_total < 1:
        return (Window(length, False, False),) * full + tail
    out = [Window(length, False, False)] * init
    done = 0
    while done < slow_total:
        left = slow_total - done
        if 3 * size > left:  # Stan: stretch the last slow window to the end of the slow phase
            size = left
        out += [Window(length, True, False)] * (size - 1) + [Window(length, True, True)]
        done += size
        size *= 2
    out += [Window(length, False, False)] * term
    return tuple(out) + tail


# --- Step-size adaptation -----------------------------------------------------------------------


class DualAveraging(NamedTuple):
    """Per-chain dual-averaging state (all arrays (C,))."""

    mu: jax.Array
    log_step: jax.Array
    log_step_avg: jax.Array
    h_bar: jax.Array
    count: jax.Array


def _da_init(log_step):
    zero = jnp.zeros_like(log_step)
    return DualAveraging(log_step, log_step, log_step, zero, zero)


def dual_averaging_gamma(kernel) -> float:
    r"""The $\gamma$ of the per-window dual averaging: `NUTS_GAMMA` for NUTS, Stan's 0.05 otherwise
    (see the module docstring)."""
    return NUTS_GAMMA if kernel.name == "nuts" else _GAMMA


def _da_update(state, acceptance, target, gamma=_GAMMA):
    count = state.count + 1
    eta = 1.0 / (count + _T0)
    h_bar = (1.0 - eta) * state.h_bar + eta * (target - acceptance)
    log_step = state.mu - jnp.sqrt(count) / gamma * h_bar
    weight = count**-_KAPPA
    log_step_avg = weight * log_step + (1.0 - weight) * state.log_step_avg
    return DualAveraging(state.mu, log_step, log_step_avg, h_bar, count)


def _final_windows(schedule) -> int:
    """How many trailing windows form the final buffer: those after the last mass-matrix update,
    or the last 10% of the windows when the mass matrix is not adapted."""
    ends = [i for i, window in enumerate(schedule) if window.window_end]
    if ends:
        return len(schedule) - 1 - ends[-1]
    return max(1, round(0.1 * len(schedule))) if schedule else 0


def _repeat(positions, n):
    """(C, D) -> (C, n, D): the initial point as the previous state of n steps."""
    return jnp.broadcast_to(positions[:, None, :], (positions.shape[0], n, positions.shape[1]))


def _mean_acceptance(kernel, logdensity, prev, noise, log_step):
    """The acceptance curve of one chain's window at step size exp(log_step)."""
    trial = with_step_size(kernel, jnp.exp(log_step))
    info = jax.lax.map(lambda step: trial.info(logdensity, *step), (prev, noise))
    rate = info.acceptance_rate
    # A non-finite proposal is a rejection (acceptance 0), exactly as in the accept test.
    return jnp.mean(jnp.where(jnp.isnan(rate), 0.0, rate))


class _Search(NamedTuple):
    """The state of the step-size search: `a` and `b` bracket the root once `crossed`, with the
    acceptance `fa` at `a` on the side of the first evaluation (`high`) and `fb` at `b`, the
    latest point; `ga` is the Illinois weight of `a`'s residual (halved each time `a` is kept)."""

    evaluations: jax.Array  # of the acceptance curve so far
    expansions: jax.Array  # factor-2 steps taken (bracketing ends at a crossing or _EXPAND)
    refinements: jax.Array  # Illinois steps inside the bracket
    high: jax.Array  # the first acceptance is above the target: the step size can grow
    a: jax.Array
    b: jax.Array
    fa: jax.Array
    fb: jax.Array
    ga: jax.Array
    crossed: jax.Array


def _search(kernel, logdensity, prev, noise, log_step, target):
    """`(log h, search state)`: solve mean_acceptance(log h) = target for one chain. Bracket by
    factors of 2, narrow the bracket with the Illinois method (regula falsi whose kept end's
    residual is halved, so that both ends converge) until it is `_SEARCH_WIDTH` wide in log h or
    the latest point's acceptance is within `_SEARCH_ACCEPTANCE` of the target, then interpolate
    linearly inside it.

    The interpolation makes the result a continuous function of the states: a point of the
    search whose comparison with the target a rounding-level change of the states flips has its
    residual at zero, so it ends the search as a bracket end where the interpolation returns it
    from either side. One loop evaluates the acceptance curve once per iteration (first point,
    bracketing, refinement), so the program holds one copy of the kernel.
    """
    log2 = jnp.log(2.0).astype(log_step.dtype)
    zero = jnp.asarray(0, jnp.int32)
    false = jnp.asarray(False)

    def bracketing(s: _Search):
        return (s.expansions < _EXPAND) & ~s.crossed

    def point(s: _Search):
        direction = jnp.where(s.high, 1.0, -1.0).astype(log_step.dtype)
        gb = s.fb - target
        secant = s.b - gb * (s.b - s.a) / (gb - s.ga)
        expanded = s.b + direction * log2
        return jnp.where(s.evaluations == 0, log_step, jnp.where(bracketing(s), expanded, secant))

    def evaluate(s: _Search) -> _Search:
        at = point(s)
        f = _mean_acceptance(kernel, logdensity, prev, noise, at)
        first = s.evaluations == 0
        high = jnp.where(first, f > target, s.high)
        expanding = ~first & bracketing(s)
        refining = ~first & ~bracketing(s)
        same = (f > target) == (s.fb > target)  # the new point replaces b and keeps a
        moved = first | expanding | (refining & ~same)  # b becomes the new a
        return _Search(
            evaluations=s.evaluations + 1,
            expansions=s.expansions + expanding,
            refinements=s.refinements + refining,
            high=high,
            a=jnp.where(moved, s.b, s.a),
            b=at,
            fa=jnp.where(moved, s.fb, s.fa),
            fb=f,
            ga=jnp.where(moved, s.fb - target, 0.5 * s.ga),
            crossed=jnp.where(expanding, (f > target) != high, s.crossed),
        )

    def searching(s: _Search):
        found = (jnp.abs(s.b - s.a) <= _SEARCH_WIDTH) | (jnp.abs(s.fb - target) <= _SEARCH_ACCEPTANCE)
        return (s.evaluations == 0) | bracketing(s) | (s.crossed & ~found & (s.refinements < _REFINE))

    nan = jnp.full((), jnp.nan, log_step.dtype)
    start = _Search(zero, zero, zero, false, nan, nan, nan, nan, nan, false)
    s = jax.lax.while_loop(searching, evaluate, start)
    # fa and fb lie on opposite sides of the target, so fb - fa != 0; the clip only guards round-off.
    weight = jnp.clip((target - s.fa) / (s.fb - s.fa), 0.0, 1.0)
    return jnp.where(s.crossed, s.a + weight * (s.b - s.a), s.b), s


def warmup_solver(solver, dtype):
    """`solver` with a default relative tolerance tightened to `WARMUP_ULPS` ulps.

    Each window's draws feed the adaptation of the next window's parameters, so a window's error
    is carried through the rest of the warmup, and windows that try large step sizes amplify it.
    At the default float64 tolerance (1e-11) this moved HMC's adapted step size by ~1e-7 relative
    on posteriordb; at 64 ulps the difference is that of the sequential warmup itself perturbed
    by one ulp, for a few percent more iterations. An explicit `rtol` is kept, and so is `atol`
    (default 0: the tolerance is relative to the chain's scale, see `pnmcmc.engine.solution`).
    """
    if solver.rtol is not None:
        return solver
    tol = min(default_tolerances(dtype)[0], WARMUP_ULPS * float(jnp.finfo(dtype).eps))
    return dataclasses.replace(solver, rtol=tol)


# --- The parallel window adaptation -------------------------------------------------------------


class _Moments(NamedTuple):
    count: jax.Array  # (C,)
    mean: jax.Array  # (C, D)
    m2: jax.Array  # (C, D): sums of squared deviations; (C, D, D): of their outer products (dense)


def _merge(a: _Moments, traj) -> _Moments:
    """Chan et al.'s pairwise update: the moments of a's draws plus a window's (C, L, D)."""
    n_b = jnp.asarray(traj.shape[1], traj.dtype)
    mean_b = jnp.mean(traj, axis=1)
    centred = traj - mean_b[:, None, :]
    n = a.count + n_b
    delta = mean_b - a.mean
    mean = a.mean + delta * (n_b / n)[:, None]
    weight = a.count * n_b / n
    if a.m2.ndim == 3:
        m2_b = jnp.einsum("cti,ctj->cij", centred, centred, precision=jax.lax.Precision.HIGHEST)
        m2 = a.m2 + m2_b + delta[:, :, None] * delta[:, None, :] * weight[:, None, None]
    else:
        m2_b = jnp.sum(centred**2, axis=1)
        m2 = a.m2 + m2_b + delta**2 * weight[:, None]
    return _Moments(n, mean, m2)


def _regularised_variance(moments: _Moments):
    """Stan's regularised estimate from the merged moments: the variance (C, D), or the covariance
    (C, D, D) when the moments are dense."""
    n = moments.count[:, None]
    if moments.m2.ndim == 3:
        n = n[:, :, None]
        covariance = moments.m2 / jnp.maximum(n - 1.0, 1.0)
        identity = jnp.eye(moments.m2.shape[-1], dtype=moments.m2.dtype)
        shrink = _SHRINK_TARGET * (_SHRINK_COUNT / (n + _SHRINK_COUNT))
        return (n / (n + _SHRINK_COUNT)) * covariance + shrink * identity
    var = moments.m2 / jnp.maximum(n - 1.0, 1.0)
    return (n / (n + _SHRINK_COUNT)) * var + _SHRINK_TARGET * (_SHRINK_COUNT / (n + _SHRINK_COUNT))


class _Adaptation(NamedTuple):
    """The state the warmup carries from window to window (leading axis C)."""

    positions: jax.Array
    dual: DualAveraging
    moments: _Moments
    inverse_mass_matrix: jax.Array


def _digit_dtype(dtype) -> bool:
    """Whether twins can agree digit by digit in `dtype` (float64; see `pnmcmc.sampling.twins`)."""
    return float(jnp.finfo(dtype).eps) <= 1e-15


def _distance(log_step_a, a: _Adaptation, log_step_b, b: _Adaptation) -> np.ndarray:
    """Per chain, how far two warmups ended apart: the largest of |log step-size ratio|, the
    relative inverse-mass-matrix change (entries over sqrt(m_ii m_jj)) and the position change in
    posterior scales (over sqrt(m_ii))."""
    imm_a, imm_b = np.asarray(a.inverse_mass_matrix), np.asarray(b.inverse_mass_matrix)
    scale = np.diagonal(imm_a, axis1=-2, axis2=-1) if imm_a.ndim == 3 else imm_a
    root = np.sqrt(scale)
    if imm_a.ndim == 3:
        mass = np.abs(imm_a - imm_b) / (root[:, :, None] * root[:, None, :])
        mass = mass.reshape(mass.shape[0], -1)
    else:
        mass = np.abs(imm_a - imm_b) / scale
    moved = np.abs(np.asarray(a.positions) - np.asarray(b.positions)) / root
    step = np.abs(np.asarray(log_step_a) - np.asarray(log_step_b))
    return np.maximum(step, np.maximum(mass.max(axis=1), moved.max(axis=1)))


@dataclasses.dataclass(frozen=True)
class WarmupResult:
    """What a warmup produced (per chain, leading axis C).

    **Fields:**

    - `positions`: the last warmup state of each chain, (C, D): where sampling starts.
    - `step_size`: the adapted (or fixed) step size, (C,).
    - `inverse_mass_matrix`: the adapted (or fixed) inverse mass matrix: a diagonal (C, D), or
      dense (C, D, D) under `dense_mass=True`.
    - `acceptance_rate`: the mean acceptance statistic of the last warmup window, (C,).
    - `num_iterations`: parallel iterations summed over the warmup windows, (C,).
    - `num_windows`: how many windows were solved.
    - `method`: `"parallel"` or `"blackjax"`.
    - `target_acceptance`: the acceptance rate the step size was adapted to.
    - `time`: wall time in seconds, compilation excluded; `compile_time`: compilation.
    - `sensitivity`: per chain (C,), how far the warmup's result moves when every window's start
      moves by one ulp (measured by a shadow pass, see `WindowAdaptation.twin_check`): the
      largest of the |log step-size| change, the relative inverse-mass-matrix change and the
      final positions' change in posterior scales; 0 where nothing was adapted; `None` where not
      measured (float32, `twin_check=False`, windows solved sequentially or the BlackJAX warmup:
      the last two are the very program `sequential_sample` runs). `pnmcmc.sampling.twins` turns
      it into the twin verdict.
    - `sensitivity_windows`: how many windows the shadow ran (it stops once every chain moved by
      more than `SHADOW_STOP`); `sensitivity_time`: its wall time (not in `time`).
    - `sequential`: the windows were solved step by step (the `Sequential` solver): the warmup is
      `sequential_sample`'s own.
    - `search_transitions`: per chain (C,), the kernel transitions the step-size searches took
      (each evaluation of an acceptance curve is one transition from each of its stored states),
      on top of the `num_warmup` of the windows; `None` for the BlackJAX warmup.
    """

    positions: jax.Array
    step_size: jax.Array
    inverse_mass_matrix: jax.Array
    acceptance_rate: jax.Array
    num_iterations: jax.Array
    num_windows: int
    method: str
    target_acceptance: float
    time: float
    compile_time: float
    sensitivity: np.ndarray | None = None
    sensitivity_windows: int = 0
    sensitivity_time: float = 0.0
    sequential: bool = False
    search_transitions: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class WarmupProblem:
    """Everything a warmup method needs (built by `pnmcmc.sampling.sample`).

    **Fields:**

    - `logdensity`: the flat log density.
    - `kernel`: the kernel template (its step size and inverse mass matrix are starting values).
    - `solver`: the solver of every window.
    - `positions`: the initial positions, (C, D).
    - `step_size`: a fixed step size per chain (C,), or `None` to adapt it.
    - `inverse_mass_matrix`: a fixed one per chain, diagonal (C, D) or dense (C, D, D), or `None`
      to adapt it.
    - `display`: the [`ProgressDisplay`][pnmcmc.sampling.progress.ProgressDisplay] (its `newton` is the
      engine callback).
    - `noise`: the warmup's randomness, leaves (C, max(num_warmup, 32), ...), drawn with the
      sampling noise in one program (the windows take consecutive slices).
    - `dense_mass`: adapt a dense inverse mass matrix (Stan's regularised covariance) instead of a
      diagonal one.
    """

    logdensity: object
    kernel: object
    solver: object
    positions: jax.Array
    step_size: jax.Array | None
    inverse_mass_matrix: jax.Array | None
    display: object
    noise: object
    dense_mass: bool = False

    def initial_step_size(self):
        if self.step_size is not None:
            return self.step_size
        step_size = kernel_parameters(self.kernel)[0]
        return jnp.broadcast_to(jnp.asarray(step_size, self.positions.dtype), self.positions.shape[:1])

    def initial_inverse_mass_matrix(self):
        """The fixed matrices, else the kernel's (the identity if it has none) per chain: (C, D),
        or (C, D, D) under `dense_mass` (a diagonal starting value becomes its diagonal matrix)."""
        if self.inverse_mass_matrix is not None:
            return self.inverse_mass_matrix
        (num_chains, dim), dtype = self.positions.shape, self.positions.dtype
        imm = kernel_parameters(self.kernel)[1]
        imm = jnp.ones((dim,), dtype) if imm is None else jnp.asarray(imm, dtype)
        if imm.ndim == 2 and not self.dense_mass:
            raise ValueError(
                "The kernel's inverse_mass_matrix is dense (D, D) but dense_mass=False adapts a diagonal: "
                "pass dense_mass=True, or a kernel with a diagonal (D,) inverse_mass_matrix."
            )
        if self.dense_mass and imm.ndim == 1:
            imm = jnp.diag(imm)
        return jnp.broadcast_to(imm, (num_chains, *imm.shape))


@dataclasses.dataclass(frozen=True)
class WindowAdaptation:
    """Stan-like windowed adaptation with every window solved in parallel (see the module docstring).

    **Fields:**

    - `windows`: about how many constant-parameter windows the warmup is cut into (each one
      dual-averaging update; more means finer step-size control but shorter parallel solves).
    - `target_acceptance`: the mean acceptance the step size is adapted to; `None` is the
      kernel's `target_acceptance` (MALA 0.574, HMC 0.65, NUTS 0.8).
    - `twin_check`: in float64, also run the warmup's one-ulp *shadow* (every window's start
      moved by one ulp, its adaptation carried on separately) to measure
      `WarmupResult.sensitivity`, which tells whether this run and its sequential twin can agree
      digit by digit (`pnmcmc.sampling.twins`). It costs up to one more pass over the warmup (it stops as
      soon as every chain has diverged) and never changes the result; `False` skips it.
    """

    windows: int = 40
    target_acceptance: float | None = None
    twin_check: bool = True
    segments: int | None = dataclasses.field(default=None, repr=False)  # deprecated name of `windows`
    name = "parallel"

    def __post_init__(self):
        if self.segments is not None:
            warnings.warn(
                "WindowAdaptation(segments=...) is deprecated: the number of warmup windows is "
                "WindowAdaptation(windows=...) (a segment is a solver's multiple-shooting length).",
                DeprecationWarning,
                stacklevel=find_stack_level(),
            )
            object.__setattr__(self, "windows", self.segments)
            object.__setattr__(self, "segments", None)
        if isinstance(self.windows, bool) or not isinstance(self.windows, int) or self.windows < 1:
            raise ValueError(f"WindowAdaptation: windows must be an int >= 1, got {self.windows!r}.")
        if not isinstance(self.twin_check, bool):
            raise TypeError(f"WindowAdaptation: twin_check must be True or False, got {self.twin_check!r}.")
        _check_target(type(self).__name__, self.target_acceptance)

    def run(self, problem: WarmupProblem, num_warmup: int, key) -> WarmupResult:
        """Adapt the kernel for `num_warmup` steps from `problem.positions`; see the module docstring."""
        start_time, compiled_before = time.perf_counter(), programs.compile_seconds()
        # 1. The window schedule and the compiled programs that run it.
        windows = _Windows.prepare(
            problem, window_schedule(num_warmup, self.windows), _target(self, problem.kernel)
        )
        # 2. The initial state: the step size from an acceptance search at the initial point.
        track = _Track.empty(problem.positions.shape[0])
        state = windows.initial_state(track)
        # 3. The windows, each followed by the one-ulp shadow's window while it still measures.
        # (Sequential windows are sequential_sample's own program: nothing to measure.)
        sequential = isinstance(windows.solver, Sequential)
        measure = (
            windows.adapts and self.twin_check and _digit_dtype(problem.positions.dtype) and not sequential
        )
        sweep = windows.sweep(
            state, track, shadow=state if measure else None, display=problem.display, total=num_warmup
        )
        # 4. The final step size (and the shadow's, for the sensitivity).
        log_step = windows.final_log_step(sweep.state, track)
        sensitivity, shadow_time = sweep.sensitivity, sweep.shadow_time
        if sweep.shadow is not None:
            jax.block_until_ready(log_step)
            shadow_start = time.perf_counter()
            shadow_log_step = windows.final_log_step(sweep.shadow, sweep.shadow_track)
            sensitivity = _distance(log_step, sweep.state, shadow_log_step, sweep.shadow)
            shadow_time += time.perf_counter() - shadow_start
        # 5. The result, and one report of the windows' solves.
        jax.block_until_ready(sweep.state.positions)
        compile_time = programs.compile_seconds() - compiled_before
        elapsed = time.perf_counter() - start_time - compile_time - shadow_time
        sweep.tally.report("warmup")
        num_chains = problem.positions.shape[0]
        return WarmupResult(
            positions=sweep.state.positions,
            step_size=jnp.exp(log_step),
            inverse_mass_matrix=sweep.state.inverse_mass_matrix,
            acceptance_rate=sweep.acceptance,
            num_iterations=jnp.asarray(sweep.iterations),
            num_windows=len(windows.schedule),
            method=self.name,
            target_acceptance=_target(self, problem.kernel),
            time=elapsed,
            compile_time=compile_time,
            sensitivity=np.zeros(num_chains) if not windows.adapts else sensitivity,
            sensitivity_windows=sweep.measured if windows.adapts else 0,
            sensitivity_time=shadow_time,
            sequential=sequential,
            search_transitions=track.search_transitions,
        )


@dataclasses.dataclass
class _Track:
    """What one track of the warmup (the warmup, or its one-ulp shadow) collects on its way: the
    final buffer's `(prev, times)` for the final search, and the kernel transitions its step-size
    searches took, per chain."""

    tail: list
    search_transitions: np.ndarray

    @classmethod
    def empty(cls, num_chains: int) -> _Track:
        return cls([], np.zeros(num_chains, np.int64))


class _Sweep(NamedTuple):
    """The windows swept: the adapted `state`, the shadow's and its track (the shadow is None
    once every chain diverged from it, or when not measured), and the windows' statistics."""

    state: _Adaptation
    shadow: _Adaptation | None
    shadow_track: _Track
    sensitivity: np.ndarray | None  # set when the shadow stopped early
    measured: int  # windows the shadow followed
    shadow_time: float
    acceptance: jax.Array
    iterations: np.ndarray
    tally: Tally


@dataclasses.dataclass
class _Windows:
    """What every window of one parallel warmup shares: the problem, its schedule, and the two
    compiled programs (a window, the step-size search).

    The programs take the model's density, the kernel and the target as arguments and close over
    nothing else but what their keys hold (`pnmcmc.sampling.programs`): a later call with the same
    model and shapes runs them without compiling.
    """

    problem: WarmupProblem
    schedule: tuple
    solver: object
    build_runner: object
    adapt_step: bool
    given: tuple  # (logdensity, kernel, target): the programs' leading arguments
    n_search: int
    by_length: dict  # one compiled window per length (one unless num_warmup has no divisor)

    @classmethod
    def prepare(cls, problem: WarmupProblem, schedule, target: float) -> _Windows:
        dtype = problem.positions.dtype
        if problem.inverse_mass_matrix is not None:
            schedule = tuple(Window(s.length, False, False) for s in schedule)
        given = (problem.logdensity, problem.kernel, jnp.asarray(target, dtype))
        n_search = schedule[0].length if schedule else INITIAL_SEARCH
        solver = warmup_solver(problem.solver, dtype)
        return cls(problem, schedule, solver, chain_runner, problem.step_size is None, given, n_search, {})

    @property
    def adapts(self) -> bool:
        """Whether anything is adapted (else the warmup only moves the chains)."""
        return bool(self.schedule) and (self.adapt_step or self.problem.inverse_mass_matrix is None)

    @property
    def searcher(self):
        # one compiled search: every search looks at `n_search` steps
        return programs.program(("warmup search",), lambda: _search_program, what="the step-size search")

    def window_program(self, length: int):
        if length not in self.by_length:
            self.by_length[length] = window_program(self.solver, self.build_runner, self.adapt_step, length)
        return self.by_length[length]

    def initial_state(self, track: _Track) -> _Adaptation:
        problem = self.problem
        positions = problem.positions
        imm = problem.initial_inverse_mass_matrix()
        da = _da_init(jnp.log(problem.initial_step_size()))
        if self.adapt_step:  # the initial step size: the acceptance search at the initial point
            start = _repeat(positions, self.n_search)
            da = self.search(track, da.log_step, imm, imm, start, np.arange(self.n_search))
        zeros = jnp.zeros_like(positions)
        return _Adaptation(positions, da, _Moments(zeros[:, 0], zeros, jnp.zeros_like(imm)), imm)

    def search(self, track: _Track, log_step, imm, adapted_to, prev, times):
        """The acceptance search (`_search_program`), its cost added to `track`."""
        found, transitions = self.searcher(
            *self.given, log_step, imm, adapted_to, prev, self.problem.noise, jnp.asarray(times)
        )
        track.search_transitions += np.asarray(transitions)
        return found

    def advance(self, state, index, span: Window, offset, track: _Track):
        """One window of one track (the warmup, or its one-ulp shadow), with the step-size
        restart after a mass-matrix update; the final buffer's states are appended to the
        track's `tail`."""
        noise = self.problem.noise
        flags = (jnp.asarray(span.slow), jnp.asarray(span.window_end))
        program = self.window_program(span.length)
        logdensity, kernel, target = self.given
        adapted_to = state.inverse_mass_matrix  # the metric this window's step size was adapted to
        kernels = with_parameters(kernel, jnp.exp(state.dual.log_step), adapted_to)
        chunk = noise_window(span.length)(noise, jnp.asarray(offset))
        state, acceptance, batch, prev = program(logdensity, kernels, target, state, chunk, flags)
        stats = (batch.solution.num_iterations, batch.solution.status, batch.solution.sequential_steps)
        times = np.arange(offset, offset + span.length)
        if span.window_end and self.adapt_step:  # restart the step size for the new mass matrix
            log_step, imm = state.dual.log_step, state.inverse_mass_matrix
            state = state._replace(dual=self.search(track, log_step, imm, adapted_to, prev, times))
        if index >= len(self.schedule) - _final_windows(self.schedule):
            track.tail.append((np.asarray(prev), times))
        return state, acceptance, stats

    def sweep(self, state, track: _Track, shadow, display, total: int) -> _Sweep:
        """Every window in turn; after each, the shadow's (its start moved by one ulp) until every
        chain's parameters moved more than `SHADOW_STOP` from the warmup's."""
        num_chains = state.positions.shape[0]
        dtype = state.positions.dtype
        nudge = 1.0 + float(jnp.finfo(dtype).eps)
        shadow_track = _Track.empty(num_chains)
        shadow_time, measured, sensitivity = 0.0, 0, None
        iterations, tally = np.zeros(num_chains, np.int64), Tally()
        acceptance = jnp.full((num_chains,), jnp.nan, dtype)
        offset = 0
        with display.phase("warmup", total) as bar:
            for index, span in enumerate(self.schedule):
                state, acceptance, stats = self.advance(state, index, span, offset, track)
                iterations += np.asarray(stats[0])
                tally.add(*stats)
                if shadow is not None:
                    jax.block_until_ready(state)  # the shadow's time is its own, not the window's
                    shadow_start = time.perf_counter()
                    nudged = shadow._replace(positions=shadow.positions * nudge)
                    shadow = self.advance(nudged, index, span, offset, shadow_track)[0]
                    measured = index + 1
                    distance = _distance(state.dual.log_step, state, shadow.dual.log_step, shadow)
                    if np.all(distance > SHADOW_STOP):  # every chain diverged: the verdict is settled
                        sensitivity, shadow = distance, None
                    shadow_time += time.perf_counter() - shadow_start
                offset += span.length
                bar.advance(
                    span.length,
                    step_size=f"{float(jnp.mean(jnp.exp(state.dual.log_step))):.3g}",
                    accept=f"{float(jnp.mean(acceptance)):.2f}",
                )
        return _Sweep(
            state,
            shadow,
            shadow_track,
            sensitivity,
            measured,
            shadow_time,
            acceptance,
            iterations,
            tally,
        )

    def final_log_step(self, state, track: _Track):
        """The dual average, refined by a search over the final buffer (after the last
        mass-matrix update): on n_search of its states, evenly spread."""
        log_step = state.dual.log_step_avg if self.schedule else state.dual.log_step
        if self.adapt_step and track.tail:
            prev = np.concatenate([p for p, _ in track.tail], axis=1)
            times = np.concatenate([t for _, t in track.tail])
            pick = np.round(np.linspace(0, len(times) - 1, self.n_search)).astype(int)
            prev = jnp.asarray(prev[:, pick], state.positions.dtype)
            imm = state.inverse_mass_matrix
            log_step = self.search(track, log_step, imm, imm, prev, times[pick]).log_step
        return log_step


def _rescaled_log_step(log_step, imm, adapted_to):
    """Where to start searching for the step size of the metric `imm`, given `log_step` adapted to
    the metric `adapted_to`: the step size scales with the smallest posterior scale in the metric's
    units, min_i sigma_i / sqrt(m_i). With sigma_i^2 ~ imm_i (the new estimate), the old step size
    is ~ min_i sqrt(imm_i / adapted_to_i) times the new one. Dense metrics: their diagonals."""
    diagonal = (lambda m: jnp.diagonal(m, axis1=-2, axis2=-1)) if imm.ndim == 3 else (lambda m: m)
    shrink = jnp.min(jnp.log(diagonal(imm)) - jnp.log(diagonal(adapted_to)), axis=-1)
    guess = log_step - 0.5 * shrink
    return jnp.where(jnp.isfinite(guess), guess, log_step)


def _search_program(logdensity, kernel, target, log_step, imm, adapted_to, prev, noise, times):
    """The step size whose mean acceptance over the steps `times` (from `prev`) is the target with
    the metric `imm`, per chain, as a fresh dual-averaging state, and the kernel transitions the
    search took; it starts from `log_step`, adapted to the metric `adapted_to`, rescaled to `imm`
    (`_rescaled_log_step`)."""
    noise = jax.tree.map(lambda a: jnp.take(a, times, axis=1), noise)
    start = _rescaled_log_step(log_step, imm, adapted_to)
    kernels = with_parameters(kernel, jnp.exp(start), imm)
    found, search = jax.vmap(lambda k, p, xi, ls: _search(k, logdensity, p, xi, ls, target))(
        kernels, prev, noise, start
    )
    return _da_init(found), search.evaluations * prev.shape[1]


def window_program(solver, build_runner, adapt_step: bool, length: int):
    """The kept program of one warmup window of `length` steps solved by `solver`:
    `(logdensity, kernels, target, state, noise, flags) -> (state, acceptance, ChainBatch, prev)`.

    Sequential sampling runs the same program with the adaptation's outputs ignored
    (`sample_in_windows`), so that a sequential run compiles the kernel once for both phases."""
    key = ("warmup window", solver, build_runner, adapt_step, length)
    build = functools.partial(_window_program, solver, build_runner, adapt_step)
    return programs.program(key, lambda: build, what="a warmup window")


def noise_window(length: int):
    """The kept program `(noise, start) -> noise[:, start:start + length]` (every leaf)."""

    def build():
        def window(noise, start):
            return jax.tree.map(lambda a: jax.lax.dynamic_slice_in_dim(a, start, length, axis=1), noise)

        return window

    return programs.program(("noise window", length), build, what="a window of the noise")


def _window_program(solver, build_runner, adapt_step, logdensity, kernels, target, state, noise, flags):
    """One warmup window: solve with fixed parameters (those of `kernels`, made from `state`), then
    adapt (step size, moments, and the mass matrix at the end of a slow window)."""
    runner = build_runner(logdensity, solver, progress.newton)
    positions, da, moments, imm = state
    slow, window_end = flags
    batch = runner(kernels, positions, noise)
    solution, info = batch
    traj = solution.trajectory
    rates = jnp.where(jnp.isnan(info.acceptance_rate), 0.0, info.acceptance_rate)
    acceptance = jnp.mean(rates, axis=1)
    if adapt_step:
        da = _da_update(da, acceptance, target, dual_averaging_gamma(kernels))
    moments = jax.tree.map(lambda new, old: jnp.where(slow, new, old), _merge(moments, traj), moments)
    empty = jax.tree.map(jnp.zeros_like, moments)
    imm = jnp.where(window_end, _regularised_variance(moments), imm)
    moments = jax.tree.map(lambda e, m: jnp.where(window_end, e, m), empty, moments)
    prev = jnp.concatenate([positions[:, None, :], traj[:, :-1]], axis=1)
    return _Adaptation(traj[:, -1], da, moments, imm), acceptance, batch, prev


MAX_SAMPLING_WINDOWS = 256
"""Sequential sampling reuses the warmup's window program for at most this many windows; a longer
run compiles a program of its own length (its compilation is then small beside its run time)."""


def sampling_window(num_warmup: int, windows: int, n_steps: int) -> int | None:
    """The window length sequential sampling runs in (that of the warmup's windows), or None when
    the run should be one program: no warmup window, fewer steps than a window, or more than
    `MAX_SAMPLING_WINDOWS` windows."""
    schedule = window_schedule(num_warmup, windows)
    if not schedule:
        return None
    length = schedule[0].length
    if n_steps < length or -(-n_steps // length) > MAX_SAMPLING_WINDOWS:
        return None
    return length


def sample_in_windows(logdensity, kernels, positions, noise, length: int, adapt_step: bool, bar=None):
    """Sequential sampling as consecutive windows of `length` steps: `ChainBatch` of all of them.

    Each window runs the warmup's compiled window program (`window_program` with the sequential
    warmup solver) with the adapted `kernels`; its adaptation outputs are discarded. A last partial
    window is run as the final `length` steps, restarted from the state before them, which repeats
    already computed steps exactly (same states, same noise) and keeps only the new ones."""
    dtype = positions.dtype
    n_steps = int(jax.tree.leaves(noise)[0].shape[1])
    program = window_program(warmup_solver(Sequential(), dtype), chain_runner, adapt_step, length)
    slicer = noise_window(length)
    imm = kernel_parameters(kernels)[1]
    zeros = jnp.zeros_like(positions)
    moments = _Moments(zeros[:, 0], zeros, jnp.zeros_like(imm))
    da = _da_init(jnp.zeros(positions.shape[:1], dtype))
    target, flags = jnp.asarray(0.5, dtype), (jnp.asarray(False), jnp.asarray(False))
    starts = list(range(0, n_steps - length + 1, length))
    if n_steps % length:
        starts.append(n_steps - length)
    parts, infos, done, x = [], [], 0, positions
    for start in starts:
        if start < done:  # the last, partial window: restart from the state before its first step
            x = parts[-1][:, start - 1 - (done - parts[-1].shape[1])]
        state = _Adaptation(x, da, moments, imm)
        after, _, batch, _ = program(
            logdensity, kernels, target, state, slicer(noise, jnp.asarray(start)), flags
        )
        new = start + length - done  # the steps not computed before
        trajectory, info = batch.solution.trajectory, batch.info
        if new < length:
            trajectory, info = jax.tree.map(lambda a, new=new: a[:, length - new :], (trajectory, info))
        parts.append(trajectory)
        infos.append(info)
        x, done = after.positions, done + new
        if bar is not None:
            bar.advance(new)
    # Joined and summarised on the host: eager device operations would each compile a program.
    trajectory = np.concatenate([np.asarray(a) for a in parts], axis=1)
    info = jax.tree.map(lambda *a: jnp.asarray(np.concatenate([np.asarray(b) for b in a], axis=1)), *infos)
    finite = np.all(np.isfinite(trajectory), axis=(1, 2))
    num_chains = trajectory.shape[0]
    solution = Solution(
        trajectory=jnp.asarray(trajectory),
        status=jnp.asarray(np.where(finite, Status.CONVERGED, Status.NONFINITE).astype(np.int32)),
        num_iterations=jnp.asarray(np.zeros(num_chains, np.int32)),
        residual=jnp.asarray(np.where(finite, 0.0, np.nan).astype(trajectory.dtype)),
        sequential_steps=jnp.asarray(np.full(num_chains, n_steps, np.int32)),
        front_limited=jnp.asarray(np.zeros(num_chains, bool)),
        scale=jnp.asarray(np.zeros_like(trajectory[:, 0])),
    )
    return ChainBatch(solution, info)


def _check_target(owner, target):
    if target is None:
        return
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target < 1:
        raise ValueError(
            f"{owner}: target_acceptance must be a number strictly between 0 and 1 (or None for the "
            f"kernel's own), got {target!r}."
        )


def _target(warmup, kernel) -> float:
    """The acceptance rate `warmup` adapts `kernel`'s step size to."""
    return kernel.target_acceptance if warmup.target_acceptance is None else float(warmup.target_acceptance)


@dataclasses.dataclass(frozen=True)
class BlackJAXWindowAdaptation:
    """BlackJAX's `window_adaptation` (Stan's warmup, one sequential step at a time), per chain.

    The BlackJAX algorithm is the kernel's equivalent: `blackjax.hmc` with one leapfrog step for
    MALA (whose step size is then $h = \\varepsilon^2 / 2$), `blackjax.hmc` with the same number of
    leapfrog steps for HMC (without a step-size jitter, which BlackJAX's HMC does not have: the
    adapted step size is then the unjittered kernel's), `blackjax.nuts` for NUTS. It adapts both
    the step size and the mass matrix, diagonal or (`dense_mass=True`) dense.

    **Fields:**

    - `target_acceptance`: the acceptance rate the step size is adapted to; `None` is the kernel's
      `target_acceptance`.
    """

    target_acceptance: float | None = None
    name = "blackjax"

    def __post_init__(self):
        _check_target(type(self).__name__, self.target_acceptance)

    def run(self, problem: WarmupProblem, num_warmup: int, key) -> WarmupResult:
        import blackjax

        kernel = problem.kernel
        if problem.step_size is not None or problem.inverse_mass_matrix is not None:
            raise ValueError(
                "warmup='blackjax' adapts both the step size and the mass matrix; to fix either one "
                "use warmup='parallel' (or num_warmup=0 to fix both)."
            )
        num_chains, dim = problem.positions.shape
        dtype = problem.positions.dtype
        equivalent = kernel.blackjax_equivalent()
        if equivalent is None:
            raise ValueError(
                f"warmup='blackjax' adapts kernels that BlackJAX has (MALA, HMC, NUTS), not {kernel!r}; "
                "use warmup='parallel'."
            )
        algorithm, extra = equivalent.algorithm, dict(equivalent.kwargs)
        step0 = equivalent.to_blackjax(float(kernel_parameters(kernel)[0]))
        target, diagonal = float(_target(self, kernel)), not problem.dense_mass
        tail = max(1, num_warmup // 20)

        def build():
            def one(logdensity, chain_key, position):
                adaptation = blackjax.window_adaptation(
                    algorithm,
                    logdensity,
                    initial_step_size=step0,
                    target_acceptance_rate=target,
                    is_mass_matrix_diagonal=diagonal,
                    **extra,
                )
                (state, parameters), info = adaptation.run(chain_key, position, num_warmup)
                rate = info.info.acceptance_rate[-tail:]
                return state.position, parameters["step_size"], parameters["inverse_mass_matrix"], rate.mean()

            return jax.vmap(one, (None, 0, 0))

        settings = (algorithm, equivalent.kwargs, step0, target, diagonal, num_warmup)
        run = programs.program(("blackjax warmup", *settings), build, what="the BlackJAX warmup")
        start, compiled_before = time.perf_counter(), programs.compile_seconds()
        with problem.display.phase("warmup (blackjax)", num_warmup) as bar:
            if num_warmup > 0:
                keys = jax.random.split(key, num_chains)
                positions, step_size, imm, acceptance = jax.block_until_ready(
                    run(problem.logdensity, keys, problem.positions)
                )
            else:
                positions, step_size = problem.positions, jnp.full((num_chains,), step0, dtype)
                imm, acceptance = (
                    problem.initial_inverse_mass_matrix(),
                    jnp.full((num_chains,), jnp.nan, dtype),
                )
            bar.advance(num_warmup)
        compile_time = programs.compile_seconds() - compiled_before
        elapsed = time.perf_counter() - start - compile_time
        step_size = equivalent.from_blackjax(jnp.asarray(step_size, dtype))
        return WarmupResult(
            positions=jnp.asarray(positions, dtype),
            step_size=step_size,
            inverse_mass_matrix=jnp.asarray(imm, dtype),
            acceptance_rate=jnp.asarray(acceptance, dtype),
            num_iterations=jnp.zeros((num_chains,), jnp.int32),
            num_windows=0,
            method=self.name,
            target_acceptance=_target(self, kernel),
            time=elapsed,
            compile_time=compile_time,
        )


def __getattr__(name):
    if name == "Segment":  # the earlier name of a warmup window
        warnings.warn(
            "pnmcmc.sampling.warmup.Segment is deprecated; use Window.", DeprecationWarning, stacklevel=2
        )
        return Window
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
