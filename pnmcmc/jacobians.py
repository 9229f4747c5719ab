r"""Approximations $\tilde A_t$ of the step Jacobian $J_t = \partial f(x_{t-1}, \xi_t) / \partial x_{t-1}$.

One parallel iteration linearises the chain around the current guess and solves, for the
correction $\delta = x^{new} - x$, the linear recurrence

$$\delta_t = \tilde A_t \delta_{t-1} - r_t, \qquad \delta_0 = 0, \qquad r_t = x_t - f(x_{t-1}, \xi_t).$$

The choice of $\tilde A_t$ is the whole difference between the classical methods:
$0$ gives Jacobi ($x^{new}_t = f(x_{t-1})$), $I$ gives Picard (a cumulative sum), $\mathrm{diag}(J_t)$
gives quasi-Newton (quasi-DEER), and $J_t$ gives Newton (DEER). Solving for the *correction*
rather than the new iterate keeps the round-off of the scan proportional to $|\delta|$, which
vanishes at convergence, instead of $|x|$.

Each approximation is a small frozen object that evaluates `f` and its Jacobian information at all
T shifted states in one vmapped pass and knows how to solve the (undamped or damped) recurrence.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from . import scans

__all__ = ["Diagonal", "Full", "Hutchinson", "Identity", "Zero"]


def _values(step, prev, noise):
    return jax.vmap(step)(prev, noise)


def shift(delta):
    """`delta_{t-1}` for every t, with `delta_0 = 0`."""
    return jnp.concatenate([jnp.zeros_like(delta[:1]), delta[:-1]])


@dataclasses.dataclass(frozen=True)
class Zero:
    """`A_t = 0` (Jacobi): the new guess is `f` of the old one. No Jacobian, no scan."""

    def evaluate(self, step, prev, noise, iteration):
        return _values(step, prev, noise), None

    def solve(self, jac, rhs):
        return rhs

    def apply(self, jac, v):
        return jnp.zeros_like(v)


@dataclasses.dataclass(frozen=True)
class Identity:
    """`A_t = I` (Picard): the correction is a cumulative sum. Good only for near-identity steps."""

    def evaluate(self, step, prev, noise, iteration):
        return _values(step, prev, noise), None

    def solve(self, jac, rhs):
        return jnp.cumsum(rhs, axis=0)

    def apply(self, jac, v):
        return v


@dataclasses.dataclass(frozen=True)
class Full:
    """`A_t = J_t` (Newton/DEER): D forward-mode JVPs per step, O(T D^2) memory, O(T D^3) scan."""

    def evaluate(self, step, prev, noise, iteration):
        def one(x, xi):
            jac, fx = jax.jacfwd(lambda z: (y := step(z, xi), y), has_aux=True)(x)
            return fx, jac

        return jax.vmap(one)(prev, noise)

    def solve(self, jac, rhs):
        return scans.affine_dense(jac, rhs)

    def damped_solve(self, jac, rhs, precision):
        return scans.kalman_smoother_dense(jac, rhs, jnp.zeros_like(rhs), precision)

    def apply(self, jac, v):
        return jnp.einsum("tij,tj->ti", jac, v)


class _DiagonalBase:
    def solve(self, jac, rhs):
        return scans.affine_diagonal(jac, rhs)

    def damped_solve(self, jac, rhs, precision):
        return scans.kalman_smoother_diagonal(jac, rhs, jnp.zeros_like(rhs), precision[:, None])

    def apply(self, jac, v):
        return jac * v


@dataclasses.dataclass(frozen=True)
class Diagonal(_DiagonalBase):
    """`A_t = diag(J_t)`, exact: D JVPs per step (quasi-DEER). The scan is O(T D).

    The D JVPs are batched, so the transient memory of one evaluation is O(T D^2) like DEER's;
    use [`Hutchinson`][pnmcmc.jacobians.Hutchinson] when that does not fit.
    """

    def evaluate(self, step, prev, noise, iteration):
        fx, jac = Full().evaluate(step, prev, noise, iteration)
        return fx, jnp.diagonal(jac, axis1=-2, axis2=-1)


@dataclasses.dataclass(frozen=True)
class Hutchinson(_DiagonalBase):
    """`A_t ~ diag(J_t)` from `probes` Rademacher probes z: `mean_k z_k * (J_t z_k)`.

    Unbiased; exact when J_t is diagonal. K JVPs per step and O(T D) memory. The probes are drawn
    afresh every iteration (from `seed` and the iteration number), so a poor draw is not repeated.
    """

    probes: int = 1
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.probes, int) or self.probes < 1:
            raise ValueError(f"Hutchinson needs probes >= 1 (an int), got {self.probes!r}.")

    def evaluate(self, step, prev, noise, iteration):
        n, d = prev.shape
        key = jax.random.fold_in(jax.random.key(self.seed), iteration)
        z = jax.random.rademacher(key, (self.probes, n, d), dtype=prev.dtype)

        def one(x, xi, zk):
            def jvp(v):
                return jax.jvp(lambda y: step(y, xi), (x,), (v,))

            fx, jz = jax.vmap(jvp, out_axes=(None, 0))(zk)
            return fx, jnp.mean(zk * jz, axis=0)

        return jax.vmap(one, in_axes=(0, 0, 1))(prev, noise, z)
