r"""Cholesky factor and Gaussian log density of a small matrix, without LAPACK on the CPU.

Under `jax.vmap`, `jnp.linalg.cholesky` and `jax.scipy.linalg.solve_triangular` become batched
LAPACK custom calls; on jax 0.10's CPU backend two of them running concurrently in one jitted
program can deadlock (jaxlib's ParallelBatchMap on a small thread pool). A parallel sampler
evaluates a log density and its derivatives over a whole chain at once, so the GP model factorises
its covariance here with plain array operations, one column per loop step (Cholesky-Banachiewicz
by columns):

$$
L_{jj} = \sqrt{A_{jj} - \textstyle\sum_{k<j} L_{jk}^2}, \qquad
L_{ij} = \Big(A_{ij} - \textstyle\sum_{k<j} L_{ik} L_{jk}\Big) / L_{jj} \quad (i > j),
$$

then forward substitution $z_i = (b_i - \sum_{k<i} L_{ik} z_k) / L_{ii}$ gives $z = L^{-1} b$.
Columns not yet computed are zero, so each sum is a full-length dot product and the loop body is
the same at every step: `lax.fori_loop` compiles it once (an unrolled Python loop compiled 2-4
times slower and ran slower too). The cost is $O(n^3)$ in $2n$ sequential steps, meant for $n$ up
to a few tens. A matrix that is not positive definite gives NaN (the square root of a negative
number), as `jnp.linalg.cholesky` does; nothing is repaired.

`mvn_zero_mean_logpdf` uses these loops when it runs on the CPU and LAPACK's (cuSOLVER's) batched
Cholesky and triangular solve on other platforms, where they are fast and safe
(`lax.platform_dependent`, resolved when the program is lowered).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax import lax
from jax.scipy.linalg import solve_triangular

__all__ = ["cholesky", "forward_substitution", "mvn_zero_mean_logpdf"]


def cholesky(a: jnp.ndarray) -> jnp.ndarray:
    """Lower Cholesky factor `L` of a symmetric positive definite `(n, n)` matrix, `L @ L.T == a`.

    **Arguments:**

    - `a`: a symmetric positive definite matrix (only its lower triangle is read).

    **Returns:** the lower-triangular `(n, n)` factor.
    """
    index = jnp.arange(a.shape[-1])

    def column(j, factor):
        row = factor[j]  # L[j, k] for k < j; zero from k = j on
        diagonal = jnp.sqrt(a[j, j] - jnp.dot(row, row))
        below = (a[:, j] - factor @ row) / diagonal
        new = jnp.where(index == j, diagonal, jnp.where(index > j, below, 0.0))
        return factor.at[:, j].set(new)

    return lax.fori_loop(0, a.shape[-1], column, jnp.zeros_like(a))


def forward_substitution(factor: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """Solve `factor @ z == b` for a lower-triangular `(n, n)` `factor` and a vector `b` of length `n`.

    **Arguments:**

    - `factor`: lower-triangular matrix with a non-zero diagonal.
    - `b`: right-hand side vector.

    **Returns:** the vector `z`.
    """

    def entry(i, z):
        return z.at[i].set((b[i] - jnp.dot(factor[i], z)) / factor[i, i])  # z[k] = 0 for k >= i

    return lax.fori_loop(0, b.shape[-1], entry, jnp.zeros_like(b))


def mvn_zero_mean_logpdf(y: jnp.ndarray, covariance: jnp.ndarray) -> jnp.ndarray:
    r"""Log density of `y` under a zero-mean multivariate normal with the given `(n, n)` covariance.

    The factorisation uses the loops above on the CPU, LAPACK/cuSOLVER elsewhere (module docstring).

    **Arguments:**

    - `y`: the point, a vector of length `n`.
    - `covariance`: symmetric positive definite covariance matrix.

    **Returns:** $-\tfrac12 z^\top z - \sum_i \log L_{ii} - \tfrac n2 \log 2\pi$ with $z = L^{-1} y$.
    """

    def cpu(y, covariance):
        factor = cholesky(covariance)
        return factor, forward_substitution(factor, y)

    def default(y, covariance):
        factor = jnp.linalg.cholesky(covariance)
        return factor, solve_triangular(factor, y, lower=True)

    factor, z = lax.platform_dependent(y, covariance, cpu=cpu, default=default)
    n = y.shape[-1]
    return -0.5 * jnp.dot(z, z) - jnp.sum(jnp.log(jnp.diagonal(factor))) - 0.5 * n * math.log(2 * math.pi)
