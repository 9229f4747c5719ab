"""The associative-scan primitives against sequential references on random inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from pnmcmc import scans


def _affine_reference(a, b, x0, reverse=False):
    dense = a.ndim == 3

    def body(x, ab):
        ai, bi = ab
        y = (ai @ x if dense else ai * x) + bi
        return y, y

    _, xs = lax.scan(body, x0, (a, b), reverse=reverse)
    return xs


def _lm_reference(a, b, y, precision, x0):
    """Minimise 1/2 sum |x_t - A_t x_{t-1} - b_t|^2 + lambda_t/2 |x_t - y_t|^2 by a dense solve."""
    n, d = b.shape
    dense_a = a if a.ndim == 3 else jax.vmap(jnp.diag)(a)
    # Residual r(x) = M x - c with M unit block lower-bidiagonal.
    m = jnp.eye(n * d)
    for t in range(1, n):
        m = m.at[t * d : (t + 1) * d, (t - 1) * d : t * d].set(-dense_a[t])
    c = b.at[0].add(dense_a[0] @ x0).reshape(-1)
    lam = jnp.repeat(jnp.broadcast_to(precision, (n,)), d)
    lhs = m.T @ m + jnp.diag(lam)
    rhs = m.T @ c + lam * y.reshape(-1)
    return jnp.linalg.solve(lhs, rhs).reshape(n, d)


@pytest.mark.parametrize("n, d", [(1, 1), (2, 3), (7, 2), (64, 4)])
@pytest.mark.parametrize("reverse", [False, True])
def test_affine_matches_scan(n, d, reverse):
    ka, kb, kx = jax.random.split(jax.random.key(n * 10 + d), 3)
    x0 = jax.random.normal(kx, (d,))
    b = jax.random.normal(kb, (n, d))
    a_dense = 0.6 * jax.random.normal(ka, (n, d, d)) / np.sqrt(d)
    a_diag = 0.9 * jax.random.normal(ka, (n, d))
    got = jax.jit(scans.affine_dense, static_argnames="reverse")(a_dense, b, x0, reverse=reverse)
    np.testing.assert_allclose(got, _affine_reference(a_dense, b, x0, reverse), rtol=1e-12, atol=1e-12)
    got = jax.jit(scans.affine_diagonal, static_argnames="reverse")(a_diag, b, x0, reverse=reverse)
    np.testing.assert_allclose(got, _affine_reference(a_diag, b, x0, reverse), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n, d", [(1, 2), (5, 1), (33, 3)])
@pytest.mark.parametrize("kind", ["dense", "diagonal"])
def test_kalman_smoother_is_the_levenberg_marquardt_step(n, d, kind):
    keys = jax.random.split(jax.random.key(n + d), 5)
    b, y = jax.random.normal(keys[0], (n, d)), jax.random.normal(keys[1], (n, d))
    x0 = jax.random.normal(keys[2], (d,))
    precision = jnp.exp(jax.random.normal(keys[3], (n,)))  # a different lambda_t per step
    if kind == "dense":
        a = 1.3 * jax.random.normal(keys[4], (n, d, d)) / np.sqrt(d)
        got = jax.jit(scans.kalman_smoother_dense)(a, b, y, precision, x0)
    else:
        a = 1.3 * jax.random.normal(keys[4], (n, d))
        got = jax.jit(scans.kalman_smoother_diagonal)(a, b, y, precision[:, None], x0)
    np.testing.assert_allclose(got, _lm_reference(a, b, y, precision, x0), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", ["dense", "diagonal"])
def test_kalman_smoother_limits(kind):
    """lambda = 0 gives the undamped affine solution; lambda = inf pins every step to y."""
    n, d = 9, 3
    keys = jax.random.split(jax.random.key(1), 4)
    b, y, x0 = (jax.random.normal(k, s) for k, s in zip(keys[:3], [(n, d), (n, d), (d,)], strict=True))
    if kind == "dense":
        a = jax.random.normal(keys[3], (n, d, d)) / np.sqrt(d)
        smooth, affine = jax.jit(scans.kalman_smoother_dense), jax.jit(scans.affine_dense)
        zero, inf = jnp.zeros(n), jnp.full(n, jnp.inf)
    else:
        a = jax.random.normal(keys[3], (n, d))
        smooth, affine = jax.jit(scans.kalman_smoother_diagonal), jax.jit(scans.affine_diagonal)
        zero, inf = jnp.zeros((n, 1)), jnp.full((n, 1), jnp.inf)
    np.testing.assert_allclose(smooth(a, b, y, zero, x0), affine(a, b, x0), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(smooth(a, b, y, inf, x0), y, rtol=0, atol=0)


@pytest.mark.parametrize("d, k", [(1, 1), (3, 2), (12, 5)])
def test_solve_small(d, k):
    ka, kb = jax.random.split(jax.random.key(d))
    a = jax.random.normal(ka, (20, d, d)) + 2.0 * jnp.eye(d)
    b = jax.random.normal(kb, (20, d, k))
    got = jax.jit(scans.solve_small)(a, b)
    np.testing.assert_allclose(a @ got, b, rtol=1e-10, atol=1e-10)
    # A permutation needs pivoting: a zero leading entry.
    swap = jnp.eye(d)[::-1]
    np.testing.assert_allclose(scans.solve_small(swap, jnp.eye(d)), swap, atol=0)


def test_float32_follows_input_dtype():
    a = jnp.full((5, 2), 0.5, jnp.float32)
    b = jnp.ones((5, 2), jnp.float32)
    assert scans.affine_diagonal(a, b).dtype == jnp.float32
    assert scans.kalman_smoother_diagonal(a, b, b, jnp.float32(1.0)).dtype == jnp.float32
