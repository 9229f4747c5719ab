r"""Parallel (associative-scan) solvers for linear recurrences over time.

Every Newton-type step of pnmcmc reduces to one of two linear problems over t = 1..T.

**Affine recurrence.** $x_t = A_t x_{t-1} + b_t$ with $x_0$ given. Affine maps compose
associatively: applying $(A_1, b_1)$ and then $(A_2, b_2)$ is $x \mapsto A_2 A_1 x + A_2 b_1 + b_2$,
so the composition $(A_1, b_1) \bullet (A_2, b_2) = (A_2 A_1,\; A_2 b_1 + b_2)$ is associative and
`jax.lax.associative_scan` computes every prefix $(\bar A_t, \bar b_t)$ in $O(\log T)$ depth and
$O(T)$ work; then $x_t = \bar A_t x_0 + \bar b_t$. With `reverse=True` the same operator solves the
backward recurrence $x_t = A_t x_{t+1} + b_t$ with $x_{T+1}$ given.

**Kalman smoother.** The linear-Gaussian state-space model

$$x_t = A_t x_{t-1} + b_t + w_t,\quad w_t \sim N(0, I), \qquad
  y_t = x_t + v_t,\quad v_t \sim N(0, \lambda^{-1} I), \qquad x_0 \text{ known},$$

has posterior mode (= smoothed mean) equal to the minimiser of
$\tfrac12\sum_t \|x_t - A_t x_{t-1} - b_t\|^2 + \tfrac{\lambda}{2} \sum_t \|x_t - y_t\|^2$,
which is exactly a Levenberg-Marquardt step of the chain's residual (see `pnmcmc.engine.solvers`).
We compute it with the temporal parallelisation of Särkkä and García-Fernández (2021), with a
doubling scan (`doubling_scan`) because its fixed-shape loop compiles in a fraction of the time
of an unrolled `associative_scan` over these five-part elements: filtering
elements $(E, c, C, \eta, J)$ describe $p(x_t \mid x_{t-1}, y_t) = N(E x_{t-1} + c, C)$ and the
information $(\eta, J)$ that $y_t$ carries about $x_{t-1}$. With $\kappa = \lambda / (1 + \lambda)$ and
unit dynamics noise, the element at step $t$ is

$$E_t = (1-\kappa) A_t,\; c_t = (1-\kappa) b_t + \kappa y_t,\; C_t = (1-\kappa) I,\;
  \eta_t = \kappa A_t^\top (y_t - b_t),\; J_t = \kappa A_t^\top A_t,$$

with $x_0$ substituted at $t = 1$ ($E_1 = 0$, $\eta_1 = J_1 = 0$). Two elements combine as
($M = (I + C_i J_j)^{-1}$)

$$E = E_j M E_i,\; c = E_j M (c_i + C_i \eta_j) + c_j,\; C = E_j M C_i E_j^\top + C_j,$$
$$\eta = E_i^\top M^\top (\eta_j - J_j c_i) + \eta_i,\; J = E_i^\top M^\top J_j E_i + J_i.$$

The filtered means $m_t$ and covariances $P_t$ are the prefixes' $c$ and $C$. The smoothed means obey
the backward affine recurrence $s_t = G_t s_{t+1} + (m_t - G_t (A_{t+1} m_t + b_{t+1}))$ with
$G_t = P_t A_{t+1}^\top (A_{t+1} P_t A_{t+1}^\top + I)^{-1}$ and $s_T = m_T$: a reverse affine scan.
Diagonal $A_t$ make every matrix diagonal, so the diagonal variants are elementwise.

As $\lambda \to 0$ the smoother returns the undamped affine solution; as $\lambda \to \infty$ it
returns $y$. Nothing here knows about MCMC.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

__all__ = [
    "doubling_scan",
    "solve_small",
    "affine_dense",
    "affine_diagonal",
    "kalman_smoother_dense",
    "kalman_smoother_diagonal",
]


def _solve_gauss_jordan(a, b):
    # Gauss-Jordan elimination with partial pivoting on [a | b], batched over leading axes, in plain
    # XLA ops: D sequential column steps of O(D (D + K)) vectorised work each.
    d = a.shape[-1]
    aug = jnp.concatenate([a, b], axis=-1)  # (..., D, D + K)
    rows = jnp.arange(d)

    def eliminate(k, aug):
        column = jnp.take(aug, k, axis=-1)  # (..., D)
        pivot = jnp.argmax(jnp.where(rows >= k, jnp.abs(column), -1.0), axis=-1)  # (...,)
        at_k = (rows == k)[:, None]  # (D, 1)
        at_pivot = (rows == pivot[..., None])[..., None]  # (..., D, 1)
        row_k = jnp.sum(jnp.where(at_k, aug, 0.0), axis=-2, keepdims=True)  # (..., 1, D + K)
        row_p = jnp.sum(jnp.where(at_pivot, aug, 0.0), axis=-2, keepdims=True)
        aug = jnp.where(at_k, row_p, jnp.where(at_pivot, row_k, aug))  # swap rows k and pivot
        unit = row_p / jnp.take(row_p, k, axis=-1)[..., None]  # pivot row scaled to 1 at column k
        factor = jnp.where(at_k, 0.0, jnp.take(aug, k, axis=-1)[..., None])  # (..., D, 1)
        return jnp.where(at_k, unit, aug - factor * unit)

    return lax.fori_loop(0, d, eliminate, aug)[..., d:]


def solve_small(a: jax.Array, b: jax.Array) -> jax.Array:
    """Solve `a @ x = b` for a batch of small square systems: `a` (..., D, D), `b` (..., D, K).

    On CPU this is Gauss-Jordan elimination with partial pivoting written in plain XLA operations,
    because jaxlib 0.10's batched LAPACK calls can deadlock when two of them run concurrently on a
    small thread pool; elsewhere it is `jnp.linalg.solve`.
    """
    return lax.platform_dependent(a, b, cpu=_solve_gauss_jordan, default=lambda a, b: jnp.linalg.solve(a, b))


def _compose_diagonal(earlier, later):
    a1, b1 = earlier
    a2, b2 = later
    return a2 * a1, a2 * b1 + b2


def _compose_dense(earlier, later):
    a1, b1 = earlier
    a2, b2 = later
    return a2 @ a1, jnp.einsum("...ij,...j->...i", a2, b1) + b2


def affine_diagonal(a: jax.Array, b: jax.Array, x0: jax.Array | None = None, *, reverse: bool = False):
    """Solve `x_t = a_t * x_{t-1} + b_t` (elementwise), t = 1..T, in O(log T) depth.

    **Arguments:** `a`, `b` of shape (T, D); `x0` of shape (D,), zero if omitted. With
    `reverse=True`, solves `x_t = a_t * x_{t+1} + b_t` backwards from `x_{T+1} = x0`.

    **Returns:** the states `x_1..x_T`, shape (T, D).
    """
    prod, offset = lax.associative_scan(_compose_diagonal, (a, b), reverse=reverse)
    if x0 is None:
        return offset
    return prod * x0[None, :] + offset


def affine_dense(a: jax.Array, b: jax.Array, x0: jax.Array | None = None, *, reverse: bool = False):
    """Solve `x_t = A_t @ x_{t-1} + b_t`, t = 1..T, in O(log T) depth.

    **Arguments:** `a` of shape (T, D, D), `b` of shape (T, D); `x0` of shape (D,), zero if
    omitted. With `reverse=True`, solves `x_t = A_t @ x_{t+1} + b_t` backwards from `x_{T+1} = x0`.

    **Returns:** the states `x_1..x_T`, shape (T, D).
    """
    prod, offset = lax.associative_scan(_compose_dense, (a, b), reverse=reverse)
    if x0 is None:
        return offset
    return jnp.einsum("tij,j->ti", prod, x0) + offset


def doubling_scan(combine, elems, identity):
    """All prefixes `e_1, e_1 * e_2, ..., e_1 * ... * e_T` of an associative `combine(earlier, later)`.

    The doubling (Hillis-Steele) scan: at level k every element absorbs the one 2^k places
    before it, for ceil(log2 T) levels in a `fori_loop`. Depth O(log T) like
    `lax.associative_scan`, but O(T log T) work instead of O(T), in exchange for a loop body of
    fixed shapes: XLA compiles it once, where `associative_scan` unrolls a differently shaped
    copy of `combine` per level (for the Kalman elements of a long chain, a much longer
    compilation). `identity` is the neutral element (a pytree of single elements).
    """
    n = jax.tree.leaves(elems)[0].shape[0]

    def level(k, elems):
        shift = 2**k

        def earlier(x, neutral):
            padded = jnp.concatenate([jnp.broadcast_to(neutral, x.shape), x])
            return lax.dynamic_slice_in_dim(padded, n - shift, n)

        return combine(jax.tree.map(earlier, elems, identity), elems)

    return lax.fori_loop(0, max(1, (n - 1).bit_length()), level, elems)


def _gain(precision, dtype):
    """kappa = lambda / (1 + lambda), with lambda = inf (an exact observation) giving 1."""
    lam = jnp.asarray(precision, dtype)
    return jnp.where(jnp.isinf(lam), 1.0, lam / (1.0 + jnp.where(jnp.isinf(lam), 0.0, lam)))


def _append_zero(x):
    """Append one zero element along time (the last step has no successor)."""
    return jnp.concatenate([x, jnp.zeros((1,) + x.shape[1:], x.dtype)])


# --- Kalman smoother, diagonal (every matrix is a length-D vector) -------------------------


def _filter_combine_diagonal(earlier, later):
    e1, c1, cov1, eta1, j1 = earlier
    e2, c2, cov2, eta2, j2 = later
    m = 1.0 / (1.0 + cov1 * j2)
    return (
        e2 * m * e1,
        e2 * m * (c1 + cov1 * eta2) + c2,
        e2 * m * cov1 * e2 + cov2,
        e1 * m * (eta2 - j2 * c1) + eta1,
        e1 * m * j2 * e1 + j1,
    )


def kalman_smoother_diagonal(a, b, y, precision, x0=None):
    """Smoothed means of the diagonal model in the module docstring.

    **Arguments:** `a`, `b`, `y` of shape (T, D); `precision` (lambda >= 0, `inf` pins x_t to
    y_t), a scalar or broadcastable to (T, D); `x0` of shape (D,), zero if omitted.

    **Returns:** the posterior mode `x_1..x_T`, shape (T, D).
    """
    dtype = b.dtype
    if x0 is None:
        x0 = jnp.zeros(b.shape[1:], dtype)
    kappa = jnp.broadcast_to(_gain(precision, dtype), b.shape)
    # x_0 is known: fold it into step 1's offset.
    first = jnp.arange(b.shape[0])[:, None] == 0
    b_eff = jnp.where(first, a * x0[None, :] + b, b)
    a_eff = jnp.where(first, 0.0, a)
    elems = (
        (1.0 - kappa) * a_eff,
        (1.0 - kappa) * b_eff + kappa * y,
        jnp.broadcast_to(1.0 - kappa, b.shape),
        kappa * a_eff * (y - b_eff),
        kappa * a_eff * a_eff,
    )
    neutral = (jnp.ones(b.shape[1:], dtype),) + (jnp.zeros(b.shape[1:], dtype),) * 4
    _, mean, cov, _, _ = doubling_scan(_filter_combine_diagonal, elems, neutral)
    # Backward pass: s_t = g_t s_{t+1} + h_t, with g_T = 0 so that s_T = m_T.
    a_next, b_next = a[1:], b[1:]
    gain = cov[:-1] * a_next / (a_next * cov[:-1] * a_next + 1.0)
    gain = _append_zero(gain)
    pred = _append_zero(a_next * mean[:-1] + b_next)
    return affine_diagonal(gain, mean - gain * pred, reverse=True)


# --- Kalman smoother, dense -----------------------------------------------------------------


def _mv(m, v):
    return jnp.einsum("...ij,...j->...i", m, v)


def _filter_combine_dense(earlier, later):
    e1, c1, cov1, eta1, j1 = earlier
    e2, c2, cov2, eta2, j2 = later
    eye = jnp.eye(c1.shape[-1], dtype=c1.dtype)
    # M = (I + C1 J2)^{-1}; M^T = (I + J2 C1)^{-1} as C, J are symmetric.
    lhs = eye + cov1 @ j2
    e2m = jnp.swapaxes(solve_small(jnp.swapaxes(lhs, -1, -2), jnp.swapaxes(e2, -1, -2)), -1, -2)
    e1t_mt = jnp.swapaxes(solve_small(lhs, e1), -1, -2)  # E1^T M^T
    cov = e2m @ cov1 @ jnp.swapaxes(e2, -1, -2) + cov2
    info = e1t_mt @ j2 @ e1 + j1
    return (
        e2m @ e1,
        _mv(e2m, c1 + _mv(cov1, eta2)) + c2,
        0.5 * (cov + jnp.swapaxes(cov, -1, -2)),  # keep symmetric against round-off
        _mv(e1t_mt, eta2 - _mv(j2, c1)) + eta1,
        0.5 * (info + jnp.swapaxes(info, -1, -2)),
    )


def kalman_smoother_dense(a, b, y, precision, x0=None):
    """Smoothed means of the dense model in the module docstring.

    **Arguments:** `a` of shape (T, D, D); `b`, `y` of shape (T, D); `precision` (lambda >= 0,
    `inf` pins x_t to y_t), a scalar or shape (T,); `x0` of shape (D,), zero if omitted.

    **Returns:** the posterior mode `x_1..x_T`, shape (T, D).
    """
    dtype = b.dtype
    n, d = b.shape
    if x0 is None:
        x0 = jnp.zeros((d,), dtype)
    kappa = jnp.broadcast_to(_gain(precision, dtype), (n,))[:, None]
    eye = jnp.eye(d, dtype=dtype)
    first = (jnp.arange(n) == 0)[:, None]
    b_eff = jnp.where(first, _mv(a, x0) + b, b)
    a_eff = jnp.where(first[:, :, None], 0.0, a)
    a_eff_t = jnp.swapaxes(a_eff, -1, -2)
    elems = (
        (1.0 - kappa[:, :, None]) * a_eff,
        (1.0 - kappa) * b_eff + kappa * y,
        (1.0 - kappa[:, :, None]) * eye,
        kappa * _mv(a_eff_t, y - b_eff),
        kappa[:, :, None] * a_eff_t @ a_eff,
    )
    zero = jnp.zeros((d, d), dtype)
    neutral = (eye, jnp.zeros((d,), dtype), zero, jnp.zeros((d,), dtype), zero)
    _, mean, cov, _, _ = doubling_scan(_filter_combine_dense, elems, neutral)
    a_next, b_next = a[1:], b[1:]
    pa_t = cov[:-1] @ jnp.swapaxes(a_next, -1, -2)  # P_t A_{t+1}^T
    s = a_next @ pa_t + eye
    # G = P A^T S^{-1}  <=>  G^T = S^{-1} A P  (S, P symmetric)
    gain = jnp.swapaxes(solve_small(s, jnp.swapaxes(pa_t, -1, -2)), -1, -2)
    gain = _append_zero(gain)
    pred = _append_zero(_mv(a_next, mean[:-1]) + b_next)
    return affine_dense(gain, mean - _mv(gain, pred), reverse=True)
