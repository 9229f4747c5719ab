r"""The largest Lyapunov exponent (LLE) of a chain and the expanding-dynamics warning.

**What is estimated.** For the chain $x_t = f(x_{t-1}, \xi_t)$ with step Jacobians
$J_t = \partial f(x_{t-1}, \xi_t) / \partial x_{t-1}$ evaluated along the trajectory, the LLE is the
growth rate of a generic tangent vector,

$$\lambda = \lim_{T\to\infty} \tfrac1T \log \| J_T J_{T-1} \cdots J_1 v \|.$$

$\lambda < 0$ means the chain forgets perturbations at rate $\rho = e^\lambda$ per step (two copies
with the same randomness coalesce); $\lambda > 0$ means it amplifies them (chaos). The parallel
solvers inherit exactly this: the inverse of the residual Jacobian of the chain is made of the
products $J_t \cdots J_{s+1}$, so a contracting chain is a well-conditioned root-finding problem
whose difficulty does not grow with $T$, and an expanding one is exponentially ill-conditioned.

**Three estimators, one quantity** (for the first two). All return a
[`LyapunovEstimate`][pnmcmc.LyapunovEstimate].

- `"benettin"` (the reference): propagate `num_vectors` random unit vectors step by step,
  $w = J_t v$, $\ell_t = \log\|w\|$, $v \leftarrow w / \|w\|$, with a sequential `lax.scan`
  (Jacobian-vector products only, $O(D)$ memory, $O(T)$ depth). $\sum_t \ell_t$ telescopes to
  $\log\|J_T\cdots J_1 v\|$.
- `"parallel"`: the same telescoped quantity in $O(\log T)$ depth from materialised Jacobians
  ($O(T D^2)$ memory, as DEER). Split the (trimmed) chain into $B$ blocks of $L$ steps; reduce
  each block's product $J_{bL}\cdots J_{(b-1)L+1}$ by a balanced tree of matrix products, then
  take all prefix products over blocks with an associative scan. Every element is a pair
  (matrix $M$ with $\max_{ij}|M_{ij}| = 1$, log-scale $s$) representing $e^s M$, and two elements
  combine as $(M_2 M_1 / n,\; s_1 + s_2 + \log n)$ with $n = \max_{ij} |(M_2 M_1)_{ij}|$, so nothing
  overflows or underflows whatever $T$ and $\lambda$ (norms and matrix products only, no
  factorisations). The log-growth of $v$ up to the end of block $b$ is
  $g_b = S_b + \log\|P_b v\|$ for the prefix $(P_b, S_b)$, and block $b$'s rate is
  $(g_b - g_{b-1}) / L$: exactly Benettin's sum of $\ell_t$ over the block, up to round-off. The
  two methods therefore agree to round-off on the same Jacobians and vectors (tests check 0.02).
- `"diagonal"`: the exponent of the *diagonal system* $y_t = \mathrm{diag}(J_t)\, y_{t-1}$, which is
  exact and cheap: $\max_d \frac1T \sum_t \log |(J_t)_{dd}|$ (a reduction; from the $(T, D)$
  diagonals that QuasiDEER/Hutchinson compute). This is **not** the chain's LLE. It equals the LLE
  when every $J_t$ is diagonal (elementwise maps, MALA on an isotropic Gaussian) or, more generally,
  triangular in a common basis; otherwise it can lie on either side, so it is not a bound: for a
  rotation scaled by $0.9$ it gives $\log(0.9|\cos\theta|) < \log 0.9$ (below the LLE), for the
  non-normal $J = \begin{pmatrix} 0.9 & 5 \\ -0.2 & -0.9 \end{pmatrix}$ (spectral radius
  $\sqrt{0.19} \approx 0.44$) it gives $\log 0.9$ (above). What it does measure exactly is the
  stability of QuasiDEER's own linear scan: if it is $\ge 0$, quasi-Newton corrections are
  amplified along the chain; and when it is far from the LLE, the diagonal is a poor model of the
  Jacobian and QuasiDEER converges slowly (the tables in `benchmarks/results/lyapunov-cpu.md`).

**Uncertainty.** Block (batch) means: with block rates $r_1..r_B$ (each the growth of the tangent
vectors over $L$ consecutive steps) the estimate is $\bar r$ and its standard error
$\mathrm{sd}(r)/\sqrt{B}$. The first $T \bmod B$ steps are dropped (a transient) so that blocks have
equal length. With fewer than two blocks the standard error is `inf`.

**Degenerate steps.** The estimate of a finite chain is always finite. A step whose Jacobian maps
the tangent vectors to exactly zero (a reset to a constant, a float32 underflow) contributes the
dtype's smallest log-growth, $\log(\text{tiny})$ (about $-87$ in float32, $-708$ in float64), and
the vectors restart from fresh directions; a step whose Jacobian is not finite (a derivative that
does not exist at the chain's state, e.g. $\sqrt{\cdot}$ at 0) says nothing about the growth and is
left out of its block's average. Only if no step of the chain has a finite Jacobian is the estimate
NaN.

**Warning.** [`check_contracting`][pnmcmc.check_contracting] is called at the Python edge
(never inside `jit`) and raises an [`ExpandingDynamicsWarning`][pnmcmc.ExpandingDynamicsWarning]
unless the chain is clearly contracting: $\hat\lambda + 2\,\mathrm{se} < -\text{margin}$
(default margin 0: the estimate is at least two standard errors below zero).

**Predicting iterations** from the exponent lives in `pnmcmc.analysis.prediction`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..engine import jacobians
from ..engine.reporting import PnmcmcWarning

__all__ = [
    "ExpandingDynamicsWarning",
    "LyapunovEstimate",
    "check_contracting",
    "lyapunov_exponent",
    "lyapunov_exponent_from_jacobians",
    "calibrate_iterations",
    "predict_iterations",
]

_METHODS = ("parallel", "benettin", "diagonal")


class ExpandingDynamicsWarning(PnmcmcWarning):
    """The chain is not clearly contracting (its largest Lyapunov exponent is not clearly negative).

    Parallel Newton-type solvers then need up to T iterations; the result is still exact (the
    solvers finish sequentially), but sequential evaluation is likely faster.
    """


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LyapunovEstimate:
    """An estimate of the largest Lyapunov exponent. Array fields are batched under `vmap`.

    **Fields:**

    - `exponent`: the estimate $\\hat\\lambda$ (per step; natural log). Negative: contracting.
    - `stderr`: its standard error from block means (`inf` with fewer than two blocks).
    - `blocks`: the growth rate over each block of steps, shape (B,); their mean is `exponent`.
    - `method`: `"parallel"`, `"benettin"` or `"diagonal"` (see the module docstring; the last
      is the exponent of the diagonal system, not the chain's LLE).
    """

    exponent: jax.Array
    stderr: jax.Array
    blocks: jax.Array
    method: str = dataclasses.field(metadata=dict(static=True))

    @property
    def rate(self) -> jax.Array:
        """`exp(exponent)`: the average factor by which perturbations shrink (< 1) per step."""
        return jnp.exp(self.exponent)

    def describe(self) -> str:
        """A one-line human summary (for an unbatched, concrete estimate)."""
        lam, se = float(self.exponent), float(self.stderr)
        kind = "exponent of the diagonal system" if self.method == "diagonal" else "largest Lyapunov exponent"
        verdict = "contracting" if lam + 2 * se < 0 else "not clearly contracting"
        return f"{kind} {lam:.4g} +- {se:.2g} ({self.method}, {verdict}; rate {math.exp(lam):.4g} per step)"


# --- Estimators ---------------------------------------------------------------------------------


def lyapunov_exponent(
    step,
    trajectory,
    noise,
    *,
    x0=None,
    method: str = "parallel",
    num_vectors: int = 4,
    num_blocks: int = 16,
    seed: int = 0,
) -> LyapunovEstimate:
    """Estimate the largest Lyapunov exponent of the chain `x_t = step(x_{t-1}, noise_t)`.

    **Arguments:**

    - `step`, `noise`: as for [`pnmcmc.solve`][pnmcmc.solve] (noise leaves have leading axis T).
    - `trajectory`: the chain `x_1..x_T`, shape (T, D), e.g. `solve(...).trajectory`.
    - `x0`: the initial state. With it the Jacobians are evaluated at `x_0..x_{T-1}`; without it at
      `x_1..x_{T-1}` (the first step is skipped).
    - `method`: `"parallel"` (O(log T) depth, materialises the T (D, D) Jacobians),
      `"benettin"` (sequential tangent propagation by JVPs, O(D) memory), or `"diagonal"` (the
      exponent of the diagonal system, a different quantity; see the module docstring).
    - `num_vectors`: random tangent vectors averaged (the parallel and Benettin methods).
    - `num_blocks`: blocks for the standard error (and the parallel method's block products).
    - `seed`: seed of the random tangent vectors.

    **Returns:** a [`LyapunovEstimate`][pnmcmc.LyapunovEstimate].

    Works under `jax.jit` and `jax.vmap`, in float32 and float64 (the trajectory's dtype).
    """
    _check_method(method)
    _check_counts(num_vectors, num_blocks)
    trajectory = jnp.asarray(trajectory)
    if trajectory.ndim != 2:
        raise ValueError(f"trajectory must have shape (T, D), got {trajectory.shape}.")
    if x0 is None:
        prev, noise = trajectory[:-1], jax.tree.map(lambda a: a[1:], noise)
    else:
        x0 = jnp.asarray(x0, trajectory.dtype)
        prev = jnp.concatenate([x0[None, :], trajectory[:-1]])
    if prev.shape[0] < 1:
        raise ValueError("the trajectory is too short: the estimate needs at least one step's Jacobian.")
    return _from_step(step, prev, noise, method, num_vectors, num_blocks, seed)


def lyapunov_exponent_from_jacobians(
    jac, *, method: str | None = None, num_vectors: int = 4, num_blocks: int = 16, seed: int = 0
) -> LyapunovEstimate:
    """Estimate the LLE from Jacobian information a solver already computed.

    **Arguments:**

    - `jac`: dense Jacobians, shape (T, D, D) (as `pnmcmc.engine.jacobians.Full().evaluate` returns), or
      diagonals, shape (T, D) (as `Diagonal` / `Hutchinson` return). `jac[t]` is the Jacobian of
      step t + 1; the product runs in time order.
    - `method`: for dense Jacobians `"parallel"` (default), `"benettin"` or `"diagonal"`; for
      diagonals only `"diagonal"` (the default), the exponent of the diagonal system.
    - `num_vectors`, `num_blocks`, `seed`: as for [`lyapunov_exponent`][pnmcmc.lyapunov_exponent].

    **Returns:** a [`LyapunovEstimate`][pnmcmc.LyapunovEstimate].
    """
    jac = jnp.asarray(jac)
    _check_counts(num_vectors, num_blocks)
    if jac.ndim == 2:
        method = "diagonal" if method is None else method
        if method != "diagonal":
            raise ValueError(
                f"diagonal Jacobians (shape (T, D) = {jac.shape}) only determine the exponent of the "
                f"diagonal system: use method='diagonal' (got {method!r}), or pass dense (T, D, D) "
                "Jacobians for the chain's LLE."
            )
        return _from_jacobians(jac, "diagonal", num_vectors, num_blocks, seed)
    if jac.ndim != 3 or jac.shape[-1] != jac.shape[-2]:
        raise ValueError(f"jac must have shape (T, D, D) (dense) or (T, D) (diagonal), got {jac.shape}.")
    method = "parallel" if method is None else method
    _check_method(method)
    return _from_jacobians(jac, method, num_vectors, num_blocks, seed)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _from_jacobians(jac, method, num_vectors, num_blocks, seed):
    if jac.ndim == 2:
        return _diagonal(jac, num_blocks)
    if method == "diagonal":
        return _diagonal(jnp.diagonal(jac, axis1=-2, axis2=-1), num_blocks)
    if method == "benettin":
        return _benettin(lambda v, j: j @ v, jac, jac, num_vectors, num_blocks, seed)
    return _parallel(jac, num_vectors, num_blocks, seed)


def _check_method(method):
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}.")


def _check_counts(num_vectors, num_blocks):
    for name, value in (("num_vectors", num_vectors), ("num_blocks", num_blocks)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}.")


@functools.partial(jax.jit, static_argnums=(0, 3, 4, 5, 6))
def _from_step(step, prev, noise, method, num_vectors, num_blocks, seed):
    if method == "benettin":

        def tangent(v, xi_x):
            xi, x = xi_x
            return jax.vmap(lambda u: jax.jvp(lambda z: step(z, xi), (x,), (u,))[1], 1, 1)(v)

        return _benettin(tangent, (noise, prev), prev, num_vectors, num_blocks, seed)
    if method == "diagonal":
        _, diag = jacobians.Diagonal().evaluate(step, prev, noise, 0)
        return _diagonal(diag, num_blocks)
    _, jac = jacobians.Full().evaluate(step, prev, noise, 0)
    return _parallel(jac, num_vectors, num_blocks, seed)


def _layout(n, num_blocks):
    """(first kept step, blocks, block length): drop the first n mod B steps so blocks are equal."""
    b = min(num_blocks, n)
    length = n // b
    return n - b * length, b, length


def _summary(blocks, method):
    """Mean and standard error of the block rates; blocks without a finite step (NaN) left out."""
    valid = jnp.isfinite(blocks)
    count = jnp.sum(valid)
    exponent = jnp.sum(jnp.where(valid, blocks, 0.0)) / count  # NaN when no block is valid
    spread = jnp.sum(jnp.where(valid, (blocks - exponent) ** 2, 0.0)) / jnp.maximum(count - 1, 1)
    stderr = jnp.where(count >= 2, jnp.sqrt(spread / count), jnp.inf).astype(blocks.dtype)
    return LyapunovEstimate(exponent=exponent, stderr=stderr, blocks=blocks, method=method)


def _log_floor(dtype):
    """The log-growth of a step that maps every tangent vector to zero: log of the smallest normal."""
    return float(np.log(jnp.finfo(dtype).tiny))


def _vectors(seed, d, k, dtype):
    v = jax.random.normal(jax.random.key(seed), (d, k), dtype)
    return v / jnp.linalg.norm(v, axis=0, keepdims=True)


def _safe_norm(w, axis):
    """(||w||_2, w / ||w||_2) without overflow; a zero vector stays zero with norm 0, a vector with
    a NaN has norm NaN."""
    scale = jnp.max(jnp.abs(w), axis=axis, keepdims=True)
    safe = jnp.where(scale > 0, scale, 1.0)
    norm = safe * jnp.sqrt(jnp.sum((w / safe) ** 2, axis=axis, keepdims=True))
    norm = jnp.where(scale == 0, 0.0, norm)
    return jnp.squeeze(norm, axis), w / jnp.where(norm > 0, norm, 1.0)


def _benettin(tangent, xs, like, num_vectors, num_blocks, seed):
    """Sequential renormalised tangent propagation; `tangent(v, x_t) -> J_t v` for v (D, K)."""
    n, d = like.shape[0], like.shape[1]
    first, b, length = _layout(n, num_blocks)
    xs = jax.tree.map(lambda a: a[first:], xs)
    v0 = _vectors(seed, d, num_vectors, like.dtype)

    floor = _log_floor(like.dtype)

    def body(v, x_t):
        norm, u = _safe_norm(tangent(v, x_t), axis=0)  # (K,)
        finite = jnp.isfinite(norm)
        growth = jnp.where(norm > 0, jnp.log(jnp.where(norm > 0, norm, 1.0)), floor)
        keep = finite & (norm > 0)  # a collapsed or non-finite vector restarts from its start
        return jnp.where(keep[None, :], u, v0), (jnp.where(finite, growth, 0.0), finite)

    _, (logs, finite) = lax.scan(body, v0, xs)  # (T', K) each
    logs = jnp.sum(logs.reshape(b, length, -1), axis=1)
    counts = jnp.sum(finite.reshape(b, length, -1), axis=1)
    rates = jnp.where(counts > 0, logs / jnp.maximum(counts, 1), jnp.nan)  # (B, K)
    return _summary(_nanmean(rates, axis=1), "benettin")


def _nanmean(a, axis):
    valid = jnp.isfinite(a)
    count = jnp.sum(valid, axis=axis)
    return jnp.where(count > 0, jnp.sum(jnp.where(valid, a, 0.0), axis=axis) / jnp.maximum(count, 1), jnp.nan)


def _normalise(m):
    """Split a batch of matrices into (m / n, log n) with n the largest |entry|. A zero matrix
    becomes (I, log tiny): all growth lost, directions restarted (see "Degenerate steps")."""
    n = jnp.max(jnp.abs(m), axis=(-2, -1))
    zero = n == 0
    eye = jnp.broadcast_to(jnp.eye(m.shape[-1], dtype=m.dtype), m.shape)
    m = jnp.where(zero[..., None, None], eye, m / jnp.where(zero, 1.0, n)[..., None, None])
    return m, jnp.where(zero, _log_floor(m.dtype), jnp.log(jnp.where(zero, 1.0, n)))


def _combine(earlier, later):
    m1, s1 = earlier
    m2, s2 = later
    m, log_n = _normalise(m2 @ m1)
    return m, s1 + s2 + log_n


def _tree_product(m, s):
    """Ordered product of each row of (B, L, D, D) scaled matrices by a balanced tree (depth log L)."""
    while m.shape[1] > 1:
        if m.shape[1] % 2:  # pad with the identity element (I, 0)
            eye = jnp.broadcast_to(jnp.eye(m.shape[-1], dtype=m.dtype), (m.shape[0], 1) + m.shape[2:])
            m = jnp.concatenate([m, eye], axis=1)
            s = jnp.concatenate([s, jnp.zeros((s.shape[0], 1), s.dtype)], axis=1)
        m, s = _combine((m[:, 0::2], s[:, 0::2]), (m[:, 1::2], s[:, 1::2]))
    return m[:, 0], s[:, 0]


def _parallel(jac, num_vectors, num_blocks, seed):
    n, d = jac.shape[0], jac.shape[-1]
    first, b, length = _layout(n, num_blocks)
    jac = jac[first:]
    # A non-finite Jacobian says nothing about the growth: the identity stands in, uncounted.
    finite = jnp.all(jnp.isfinite(jac), axis=(-2, -1))
    jac = jnp.where(finite[:, None, None], jac, jnp.eye(d, dtype=jac.dtype))
    m, s = _normalise(jac)
    m, s = _tree_product(m.reshape(b, length, d, d), s.reshape(b, length))
    prefix, scale = lax.associative_scan(_combine, (m, s))
    v0 = _vectors(seed, d, num_vectors, jac.dtype)
    norms, _ = _safe_norm(prefix @ v0, axis=1)  # (B, K)
    # A vector orthogonal to the rows of a (normalised, rank-deficient) product: the floor, as for
    # a zero step.
    logs = jnp.where(norms > 0, jnp.log(jnp.where(norms > 0, norms, 1.0)), _log_floor(jac.dtype))
    growth = scale[:, None] + logs  # log ||J_{bL} ... J_1 v_k||, v_k unit vectors
    growth = jnp.concatenate([jnp.zeros((1, num_vectors), growth.dtype), growth])
    increments = jnp.mean(jnp.diff(growth, axis=0), axis=1)
    counts = jnp.sum(finite.reshape(b, length), axis=1)
    return _summary(jnp.where(counts > 0, increments / jnp.maximum(counts, 1), jnp.nan), "parallel")


def _diagonal(diag, num_blocks):
    n = diag.shape[0]
    first, b, length = _layout(n, num_blocks)
    magnitude = jnp.abs(diag[first:])
    logs = jnp.where(magnitude > 0, jnp.log(jnp.where(magnitude > 0, magnitude, 1.0)), _log_floor(diag.dtype))
    logs = jnp.where(jnp.isfinite(magnitude), logs, jnp.nan).reshape(b, length, -1)
    rates = _nanmean(logs, axis=1)  # (B, D)
    worst = jnp.argmax(jnp.where(jnp.isnan(_nanmean(rates, axis=0)), -jnp.inf, _nanmean(rates, axis=0)))
    return _summary(rates[:, worst], "diagonal")


# --- The warning ------------------------------------------------------------------------------


def check_contracting(estimate: LyapunovEstimate, *, margin: float = 0.0, stacklevel: int = 2) -> bool:
    """Warn unless the chain is clearly contracting; call at the Python edge, never inside `jit`.

    Clearly contracting means `exponent + 2 * stderr < -margin`: the estimate is at least two
    standard errors below `-margin` (default 0). A larger margin demands faster forgetting, e.g.
    `margin = 10 / T` asks perturbations to shrink by at least e^10 over the chain.

    **Arguments:**

    - `estimate`: a [`LyapunovEstimate`][pnmcmc.LyapunovEstimate] (possibly batched over
      chains: then every chain must be clearly contracting).
    - `margin`: see above (>= 0).
    - `stacklevel`: passed to `warnings.warn` (2: the caller's line).

    **Returns:** True if every chain is clearly contracting; otherwise False, after raising an
    [`ExpandingDynamicsWarning`][pnmcmc.ExpandingDynamicsWarning].
    """
    if isinstance(estimate.exponent, jax.core.Tracer):
        raise TypeError(
            "check_contracting needs concrete values: call it outside jax.jit / jax.vmap, on the "
            "estimate that the jitted function returned."
        )
    if not margin >= 0:
        raise ValueError(f"margin must be a number >= 0, got {margin!r}.")
    lam = np.atleast_1d(np.asarray(estimate.exponent, dtype=float))
    se = np.atleast_1d(np.asarray(estimate.stderr, dtype=float))
    upper = lam + 2.0 * se
    bad = ~(upper < -margin)  # NaN counts as not contracting
    if not bad.any():
        return True
    worst = (
        int(np.nanargmax(np.where(bad, upper, -np.inf)))
        if np.isfinite(upper[bad]).any()
        else int(np.argmax(bad))
    )
    where = "" if lam.size == 1 else f" in {int(bad.sum())} of {lam.size} chains (worst shown)"
    what = (
        "the diagonal system's exponent" if estimate.method == "diagonal" else "the largest Lyapunov exponent"
    )
    warnings.warn(
        f"Expanding or neutral dynamics{where}: {what} is {lam[worst]:.3g} +- {se[worst]:.2g} per step, "
        f"not clearly below {-margin:.3g}. Perturbations of the chain do not die out, so parallel "
        "Newton-type solvers will need a number of iterations approaching the chain length T "
        "(the result stays exact, but sequential evaluation is likely faster). Try a smaller step "
        "size, a reparameterisation that makes the target better conditioned, or the Sequential "
        "solver.",
        ExpandingDynamicsWarning,
        stacklevel=stacklevel,
    )
    return False


# The iteration predictor built on the exponent (`pnmcmc.analysis.prediction`), importable from here too.
from .prediction import calibrate_iterations, predict_iterations  # noqa: E402
