r"""Solvers for the chain $x_t = f(x_{t-1}, \xi_t)$, $t = 1..T$: small frozen, hashable objects.

A parallel solver is two choices:

- a **Jacobian approximation** $\tilde A_t$ (see `pnmcmc.engine.jacobians`): zero (Jacobi), identity
  (Picard), exact or stochastic diagonal (quasi-Newton), full (Newton);
- an **update rule**: the undamped step $\delta_t = \tilde A_t \delta_{t-1} - r_t$ (an affine scan),
  or a Levenberg-Marquardt step (ELK) that minimises
  $\tfrac12\sum_t \|r_t + \delta_t - \tilde A_t \delta_{t-1}\|^2 + \tfrac{\lambda}{2}\sum_t\|\delta_t\|^2$
  with a parallel Kalman smoother (`pnmcmc.engine.scans`).

The damping $\lambda$ of the trust-region solvers adapts every iteration from the ratio
$\rho = (L(x) - L(x + \delta)) / (L(x) - L_{model}(\delta))$ of actual to predicted decrease of the
merit $L = \tfrac12 \sum_t \|r_t\|^2$ over the free steps, one trial per iteration. The ratio is
taken over every prefix of the window, and the step is taken on the longest prefix where
$\rho > 10^{-4}$, the old iterate kept after it (any such splice is a valid iterate): on a long
chain the merit of the unconverged far end says nothing about the progress near the converged
front, and rejecting a whole step for it stalls the solve. Then
$\lambda$ is cut by 3 if the whole step was taken with $\rho > 3/4$; if none of it was, the
iterate is kept and $\lambda \leftarrow \max(\nu\lambda, 10^{-3})$, $\nu \leftarrow 2\nu$ (Nielsen's
growth). $\lambda$ starts at 0, so on a chain where Newton works the trust region never engages.
Because the residual Jacobian of the chain is unit lower block-bidiagonal and hence always
invertible, every stationary point of $L$ is the chain itself; and the iteration loop's exactness
front (`pnmcmc.engine.iterate`) advances every iteration, so no solver can stall.

All iterations run through one driver (`pnmcmc.engine.iterate`), which owns the loop, the stopping rule
on the scaled residual, the certified prefix, the sliding window and the sequential fallback.

Every solver satisfies the *exactness front*: after $k$ iterations at least the first $k$ steps
are exact, so none needs more than $T$ iterations, which is the default cap.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax.numpy as jnp
from jax import lax

from . import jacobians, scans
from .jacobians import shift

__all__ = ["DEER", "ELK", "Jacobi", "Picard", "QuasiDEER", "QuasiELK", "Sequential"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Tolerances:
    rtol: float | None = None
    atol: float | None = None

    def __post_init__(self):
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value >= 0):
                raise ValueError(f"{type(self).__name__}: {name} must be a number >= 0, got {value!r}.")
        if self.rtol == 0 and self.atol == 0:
            raise ValueError(f"{type(self).__name__}: rtol and atol cannot both be 0.")

    @property
    def name(self) -> str:
        """The class and the fields that differ from their defaults, e.g. `DEER(segment=16)`."""
        changed = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
            if f.init and getattr(self, f.name) != f.default
        ]
        return f"{type(self).__name__}({', '.join(changed)})"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sequential(_Tolerances):
    """Evaluate the chain step by step with `lax.scan`: the reference and the fallback.

    Its certificate is 0 by construction (each state *is* the step of the previous one), or NaN
    when the chain contains inf/NaN.
    """

    convergence: ClassVar[str] = "sequential"
    damped: ClassVar[bool] = False

    def memory_bytes(self, n: int, d: int, itemsize: int) -> int:
        """About the bytes a solve of T = n steps in dimension d allocates: the trajectory and
        its copy (`pnmcmc.engine.memory`)."""
        return int(2 * n * d * itemsize)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ParallelSolver(_Tolerances):
    """Fields shared by every parallel solver.

    **Fields:**

    - `rtol`, `atol`: stop when `|x_t - f(x_{t-1})| <= atol + rtol |x_t|` for every t and
      coordinate. `None` picks [`default_tolerances`][pnmcmc.default_tolerances] for the dtype.
    - `max_iterations`: cap on parallel iterations (window sweeps with `window`); `None` means T,
      where undamped methods are exact. When reached, the rest is computed sequentially.
    - `window`: solve W steps at a time and slide the window past the converged prefix, so that
      Jacobian memory is O(W D) (O(W D^2) dense) instead of O(T ...). `None`: the whole chain.
    - `segment`: m >= 1 steps per parallel element (multiple shooting, `pnmcmc.engine.segments`): the
      solver works on the chain of every m-th state, each element m steps evaluated in sequence,
      and the states between are computed from the segment starts. On contracting chains this cuts
      iterations several-fold (each iteration is m steps deeper; Jacobian memory is T/m). With
      segments, `max_iterations` counts iterations over segments and `window` is still in steps.
    """

    max_iterations: int | None = None
    window: int | None = None
    segment: int = 1

    convergence: ClassVar[str | None] = None
    """How the iteration count behaves (`pnmcmc.analysis.prediction`): "jacobi" (linear, at the chain's own
    rate), "quasi-newton", "newton" (quadratic near the solution), or None (no model: Picard)."""
    damped: ClassVar[bool] = False
    """Whether the update is a trust-region (Levenberg-Marquardt) step: on a chain where its undamped
    twin converges, the damping only adds work."""
    linearises: ClassVar[bool] = False
    """Whether an iteration evaluates derivatives of the step (Newton and quasi-Newton solvers)."""

    def __post_init__(self):
        super().__post_init__()
        if self.max_iterations is not None and not (
            isinstance(self.max_iterations, int) and self.max_iterations >= 0
        ):
            raise ValueError(
                f"{type(self).__name__}: max_iterations must be an int >= 0 or None, "
                f"got {self.max_iterations!r}."
            )
        if self.window is not None and not (isinstance(self.window, int) and self.window >= 1):
            raise ValueError(
                f"{type(self).__name__}: window must be an int >= 1 or None, got {self.window!r}."
            )
        if not (isinstance(self.segment, int) and not isinstance(self.segment, bool) and self.segment >= 1):
            raise ValueError(
                f"{type(self).__name__}: segment must be an int >= 1 (steps per parallel element; "
                f"1 = no segments), got {self.segment!r}."
            )

    @property
    def jacobian(self):
        raise NotImplementedError

    def elements(self, n: int) -> int:
        """How many elements one iteration solves for on a chain of n steps: the steps of the chain
        or of its window, divided by the segment length."""
        steps = n if self.window is None else min(n, self.window)
        return -(-steps // self.segment)

    def element_numbers(self, d: int) -> float:
        """Numbers one element (step, or segment) of the iterate holds during an iteration: the
        iterate, residuals and Jacobian information with their temporaries. Fitted to XLA's
        `memory_analysis` of whole solves (`benchmarks/memory.py`); every solver defines it."""
        raise NotImplementedError

    def memory_bytes(self, n: int, d: int, itemsize: int) -> int:
        """About the bytes a solve of T = n steps in dimension d allocates (outputs and temporaries,
        a cheap step function's intermediates included, a model's not): `element_numbers(d)` for
        each of the `elements(n)` elements, and with segments (the states inside them, expanded)
        or a window the whole trajectory besides. Checked against XLA's figures in
        tests/test_memory.py."""
        whole = 5 if self.segment > 1 else (2 if self.window is not None else 0)
        return int(itemsize * (self.elements(n) * self.element_numbers(d) + whole * n * d))

    @property
    def step_evaluations(self) -> int:
        """A lower bound on the work of one iteration per element, in evaluations of the step
        function: the primal pass, and for solvers that linearise at least one pass of tangents
        (their D or K tangents vectorise, so more cannot be promised), and for the trust region the
        trial step's residual. Used by `solver="auto"` to drop candidates that cannot win."""
        return 1 + self.linearises + self.damped

    def init_state(self, dtype):
        """Solver state carried across iterations (the trust-region radius for ELK)."""
        return ()

    def update(self, traj, r, jac, state, residual_fn, free, linear=scans):
        """One iteration on a window: returns `(new_traj, new_state)`.

        `r` is the residual of `traj`, `jac` the Jacobian information, `residual_fn` evaluates the
        residual of a candidate, and `free` marks the steps that may change (the others are
        certified and stay frozen). `linear` provides the scans: the `pnmcmc.engine.scans` module,
        or a [`TimeSplit`][pnmcmc.engine.sharding.TimeSplit] across devices.
        """
        # Frozen steps get a zero right-hand side; as they form a prefix, their delta is exactly 0.
        delta = self.jacobian.solve(jac, jnp.where(free, -r, 0.0), linear)
        return traj + delta, state


@dataclasses.dataclass(frozen=True, kw_only=True)
class Jacobi(ParallelSolver):
    """`x_t <- f(x_{t-1})` for all t at once (Jacobian approximated by 0). Converges at the chain's
    own contraction rate; the cheapest iteration (one vmapped step, no scan)."""

    convergence: ClassVar[str] = "jacobi"

    def element_numbers(self, d: int) -> float:
        return 5.3 * d

    @property
    def jacobian(self):
        return jacobians.Zero()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Picard(ParallelSolver):
    """Jacobian approximated by I: a cumulative sum of residuals. Useful only for steps close to
    the identity (tiny step sizes)."""

    def element_numbers(self, d: int) -> float:
        return 6.1 * d

    @property
    def jacobian(self):
        return jacobians.Identity()


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Linearised(ParallelSolver):
    """A solver that linearises `f`: `max_norm` bounds the norm of the Jacobians it uses.

    **Field:** `max_norm` (default 1): each Jacobian whose spectral norm exceeds it is scaled down
    to it (diagonal ones are clipped entrywise), which makes the linear recurrence non-expansive;
    see `pnmcmc.engine.jacobians`. Where the chain's Jacobians have norm at most 1 (smooth contracting
    chains) this changes nothing; on Metropolis chains it keeps one wrong linearisation from being
    amplified along the chain (banana HMC, T = 1e5: DEER converges in 113 iterations, plain Newton
    certifies 6646 steps in 1000). `None`: the exact (quasi-)Newton step.
    """

    max_norm: float | None = 1.0

    linearises: ClassVar[bool] = True

    def __post_init__(self):
        super().__post_init__()
        jacobians.check_max_norm(type(self).__name__, self.max_norm)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DEER(_Linearised):
    """Newton's method with the full Jacobian (DEER): quadratic convergence near the solution,
    O(T D^2) memory and O(T D^3) scan work per iteration.

    `max_norm` (default 1): Jacobians of larger spectral norm are scaled down to it, so the linear
    recurrence is non-expansive and a wrong linearisation far from the solution is not amplified
    along the chain; no change where every norm is at most 1. `None`: plain Newton. See
    `pnmcmc.engine.jacobians` and the theory page."""

    convergence: ClassVar[str] = "newton"

    def element_numbers(self, d: int) -> float:
        return 3.5 * d * d + 4.2 * d

    @property
    def jacobian(self):
        return jacobians.Full(max_norm=self.max_norm)


def _diagonal(probes, seed, max_norm):
    if probes is None:
        return jacobians.Diagonal(max_norm=max_norm)
    return jacobians.Hutchinson(probes=probes, seed=seed, max_norm=max_norm)


@dataclasses.dataclass(frozen=True, kw_only=True)
class QuasiDEER(_Linearised):
    """Quasi-Newton with a diagonal Jacobian: exact (`probes=None`, D JVPs per step) or a
    Hutchinson estimate from `probes` Rademacher probes (K JVPs, O(T D) memory), drawn afresh
    every iteration from `seed`. `max_norm` (default 1) clips the diagonal entries to
    `[-max_norm, max_norm]` (see `DEER`); `None`: no clipping."""

    probes: int | None = None
    seed: int = 0

    convergence: ClassVar[str] = "quasi-newton"

    def element_numbers(self, d: int) -> float:
        if self.probes is not None:
            return (5.1 + 6.0 * self.probes) * d
        # The exact diagonal comes from the full Jacobian: fused away step by step, materialised
        # when it is the Jacobian of a segment map.
        return 10.1 * d + (3.2 * d * d if self.segment > 1 else 0.0)

    @property
    def jacobian(self):
        return _diagonal(self.probes, self.seed, self.max_norm)


# Trust region (Levenberg-Marquardt) --------------------------------------------------------------

_ACCEPT = 1e-4  # minimum ratio of actual to predicted decrease for a step to be taken
_GOOD = 0.75  # above this ratio the linear model is trusted: damping is cut by 3
_RESTART = 1e-3  # damping after the first rejection: small against the unit dynamics weight


@dataclasses.dataclass(frozen=True, kw_only=True)
class _TrustRegion(_Linearised):
    damping: float | None = None

    damped: ClassVar[bool] = True

    def __post_init__(self):
        super().__post_init__()
        if self.damping is not None and not (isinstance(self.damping, (int, float)) and self.damping >= 0):
            raise ValueError(
                f"{type(self).__name__}: damping must be a number >= 0 or None (adaptive), "
                f"got {self.damping!r}."
            )

    def init_state(self, dtype):
        # Adaptive damping starts undamped: the trust region only engages once a step fails.
        start = 0.0 if self.damping is None else self.damping
        return jnp.asarray(start, dtype), jnp.asarray(2.0, dtype)

    def update(self, traj, r, jac, state, residual_fn, free, linear=scans):
        damping, nu = state
        # Frozen steps are pinned (infinite precision), so the subproblem is over free steps only.
        precision = jnp.where(free[:, 0], damping, jnp.inf)
        rhs = jnp.where(free, -r, 0.0)
        # Undamped, the smoother's covariances are bare products of Jacobians and overflow on long
        # windows (inf - inf = NaN) although the mean is finite: take the Newton (DEER) step, which
        # is the same mean. The frozen prefix has zero right-hand side, so it stays put there too.
        delta = lax.cond(
            damping > 0,
            lambda: self.jacobian.damped_solve(jac, rhs, precision, linear),
            lambda: self.jacobian.solve(jac, rhs, linear),
        )
        candidate = traj + delta
        if self.damping is not None:  # fixed by the user: plain damped Newton, always taken
            return candidate, state

        def merit(res):  # per step
            return 0.5 * jnp.sum(jnp.where(free, res, 0.0) ** 2, axis=1)

        model = r + delta - self.jacobian.apply(jac, shift(delta))
        actual = jnp.cumsum(merit(r) - merit(residual_fn(candidate)))
        predicted = jnp.cumsum(merit(r) - merit(model))
        rho = actual / predicted  # over each prefix of the window; NaN compares False below
        # Take the step on the longest prefix where it decreased the merit as the model predicted
        # and keep the old iterate after it: the far, unconverged end must not veto the front.
        steps = jnp.arange(rho.shape[0])
        last = jnp.max(jnp.where(rho > _ACCEPT, steps, -1))
        whole, rejected = last == rho.shape[0] - 1, last < 0
        damping = jnp.where(
            whole & (rho[-1] > _GOOD),
            damping / 3.0,
            jnp.where(rejected, jnp.maximum(damping * nu, _RESTART), damping),
        )
        nu = jnp.where(rejected, 2.0 * nu, 2.0)
        return jnp.where((steps <= last)[:, None], candidate, traj), (damping, nu)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ELK(_TrustRegion):
    """Levenberg-Marquardt (trust-region) Newton with the full Jacobian, each step a parallel
    Kalman smoother. `damping=None` adapts lambda every iteration (no hand-tuned constant);
    a number fixes it (lambda = 1/sigma^2 in the ELK paper's terms). `max_norm`: as for `DEER`."""

    convergence: ClassVar[str] = "newton"

    def element_numbers(self, d: int) -> float:
        return 18.0 * d * d + 10.7 * d

    @property
    def jacobian(self):
        return jacobians.Full(max_norm=self.max_norm)


@dataclasses.dataclass(frozen=True, kw_only=True)
class QuasiELK(_TrustRegion):
    """Levenberg-Marquardt with a diagonal Jacobian (exact or `probes` Hutchinson probes): an
    elementwise parallel Kalman smoother, O(T D) memory."""

    probes: int | None = None
    seed: int = 0

    convergence: ClassVar[str] = "quasi-newton"

    def element_numbers(self, d: int) -> float:
        if self.probes is not None:
            return (5.2 + 6.0 * self.probes) * d
        return 22.3 * d + (3.2 * d * d if self.segment > 1 else 0.0)

    @property
    def jacobian(self):
        return _diagonal(self.probes, self.seed, self.max_norm)


SEGMENT = 16
"""Steps per parallel element of the recommended configurations (`pnmcmc.engine.segments`): the segment
maps of a contracting chain contract, cutting iterations several-fold at the same work."""

_BY_NAME = {
    "sequential": lambda: Sequential(),
    "jacobi": lambda: Jacobi(segment=SEGMENT),
    "picard": lambda: Picard(),
    "deer": lambda: DEER(segment=SEGMENT),
    "quasideer": lambda: QuasiDEER(segment=SEGMENT),
    "elk": lambda: ELK(segment=SEGMENT),
    "quasielk": lambda: QuasiELK(segment=SEGMENT),
}
NAMES = tuple(_BY_NAME)
"""The solver names `from_name` knows."""


def from_name(name: str):
    """The recommended configuration of a solver by name (case, `_` and `-` ignored): the
    parallel solvers on `SEGMENT`-step segments (Picard, whose identity Jacobian is a model of
    near-identity steps only, step by step), `"sequential"` the `Sequential` solver. Raises
    `ValueError` naming the valid names."""
    key = str(name).strip().lower().replace("_", "").replace("-", "")
    if key not in _BY_NAME:
        raise ValueError(f"Unknown solver {name!r}; valid names are {list(NAMES)}.")
    return _BY_NAME[key]()


def resolve_tolerances(solver, dtype):
    """The solver's `(rtol, atol)`, with dtype-aware defaults for the ones left as None."""
    from .solution import default_tolerances

    rtol, atol = default_tolerances(dtype)
    return (rtol if solver.rtol is None else solver.rtol, atol if solver.atol is None else solver.atol)
