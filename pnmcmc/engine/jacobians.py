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
The scans themselves come from `linear`: the `pnmcmc.engine.scans` module on one device, or a
[`TimeSplit`][pnmcmc.engine.sharding.TimeSplit] whose scans split the time axis over devices.

**Non-expansive bound.** With `max_norm=c`, every $\tilde A_t$ whose spectral norm exceeds $c$ is
scaled down to norm $c$ (a diagonal one is clipped entrywise to $[-c, c]$, which is the same for a
diagonal matrix coordinate by coordinate). With $c = 1$ the recurrence is non-expansive:
$\|\delta_t\| \le \sum_{s \le t} \|r_s\|$, so a linearisation that is wrong at one step (an
accept decision that the current iterate gets wrong, a leapfrog trajectory through a region of high
curvature) cannot be amplified exponentially along the rest of the chain, which is what stalls plain
Newton on Metropolis chains far from the solution: their a.e. Jacobians have norm above 1 about half
the time even when the chain contracts on average (banana HMC: Lyapunov exponent about -0.1).
Where every $\|J_t\| \le c$ nothing changes, so Newton keeps its quadratic convergence on smooth
contracting chains. The bound changes only the search direction, never the
residual, so the solution and its certificate are unchanged. The dense norm is estimated by
power iteration on $J^\top J$ (from below; an estimate slightly low only leaves a matrix slightly
expansive).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from . import scans

__all__ = ["Diagonal", "Full", "Hutchinson", "Identity", "Zero"]


def _values(step, prev, noise):
    return jax.vmap(step)(prev, noise)


def _bound_dense(jac, max_norm, iterations=20):
    """Scale each (D, D) matrix of `jac` (..., D, D) down to spectral norm `max_norm` if above it."""
    if max_norm is None:
        return jac
    # Power iteration on (J/s)^T (J/s), s = max |J_ij| so that nothing overflows; the start vector
    # has distinct entries so that it is not orthogonal to a symmetric pattern's top singular vector.
    scale = jnp.max(jnp.abs(jac), axis=(-2, -1))
    unit = jac / jnp.where(scale > 0, scale, 1.0)[..., None, None]
    d = jac.shape[-1]
    v0 = jnp.broadcast_to(1.0 + jnp.arange(d, dtype=jac.dtype) / d, jac.shape[:-1])

    def body(_, v):
        w = jnp.einsum("...ji,...j->...i", unit, jnp.einsum("...ij,...j->...i", unit, v))
        return w / jnp.maximum(jnp.linalg.norm(w, axis=-1, keepdims=True), jnp.finfo(jac.dtype).tiny)

    v = jax.lax.fori_loop(0, iterations, body, v0 / jnp.linalg.norm(v0, axis=-1, keepdims=True))
    norm = scale * jnp.linalg.norm(jnp.einsum("...ij,...j->...i", unit, v), axis=-1)
    factor = jnp.where(norm > max_norm, max_norm / jnp.where(norm > max_norm, norm, 1.0), 1.0)
    return jac * factor[..., None, None]


def _bound_diagonal(diag, max_norm):
    return diag if max_norm is None else jnp.clip(diag, -max_norm, max_norm)


def check_max_norm(owner, max_norm):
    if max_norm is not None and not (isinstance(max_norm, (int, float)) and max_norm > 0):
        raise ValueError(f"{owner}: max_norm must be a number > 0 or None, got {max_norm!r}.")


def shift(delta):
    """`delta_{t-1}` for every t, with `delta_0 = 0`."""
    return jnp.concatenate([jnp.zeros_like(delta[:1]), delta[:-1]])


@dataclasses.dataclass(frozen=True)
class Zero:
    """`A_t = 0` (Jacobi): the new guess is `f` of the old one. No Jacobian, no scan."""

    def evaluate(self, step, prev, noise, iteration):
        return _values(step, prev, noise), None

    def solve(self, jac, rhs, linear=scans):
        return rhs

    def apply(self, jac, v):
        return jnp.zeros_like(v)


@dataclasses.dataclass(frozen=True)
class Identity:
    """`A_t = I` (Picard): the correction is a cumulative sum. Good only for near-identity steps."""

    def evaluate(self, step, prev, noise, iteration):
        return _values(step, prev, noise), None

    def solve(self, jac, rhs, linear=scans):
        return jnp.cumsum(rhs, axis=0)

    def apply(self, jac, v):
        return v


@dataclasses.dataclass(frozen=True)
class Full:
    """`A_t = J_t` (Newton/DEER): D forward-mode JVPs per step, O(T D^2) memory, O(T D^3) scan.

    `max_norm`: bound on the spectral norm of each `A_t` (see the module docstring); `None`: the
    exact Jacobian.
    """

    max_norm: float | None = None

    def __post_init__(self):
        check_max_norm("Full", self.max_norm)

    def evaluate(self, step, prev, noise, iteration):
        def one(x, xi):
            jac, fx = jax.jacfwd(lambda z: (y := step(z, xi), y), has_aux=True)(x)
            return fx, jac

        fx, jac = jax.vmap(one)(prev, noise)
        return fx, _bound_dense(jac, self.max_norm)

    def solve(self, jac, rhs, linear=scans):
        return linear.affine_dense(jac, rhs)

    def damped_solve(self, jac, rhs, precision, linear=scans):
        return linear.kalman_smoother_dense(jac, rhs, jnp.zeros_like(rhs), precision)

    def apply(self, jac, v):
        return jnp.einsum("tij,tj->ti", jac, v)


class _DiagonalBase:
    def solve(self, jac, rhs, linear=scans):
        return linear.affine_diagonal(jac, rhs)

    def damped_solve(self, jac, rhs, precision, linear=scans):
        return linear.kalman_smoother_diagonal(jac, rhs, jnp.zeros_like(rhs), precision[:, None])

    def apply(self, jac, v):
        return jac * v


@dataclasses.dataclass(frozen=True)
class Diagonal(_DiagonalBase):
    """`A_t = diag(J_t)`, exact: D JVPs per step (quasi-DEER). The scan is O(T D).

    The D JVPs are batched, so the transient memory of one evaluation is O(T D^2) like DEER's;
    use [`Hutchinson`][pnmcmc.engine.jacobians.Hutchinson] when that does not fit. `max_norm` clips the
    entries to `[-max_norm, max_norm]` (see the module docstring); `None`: no bound.
    """

    max_norm: float | None = None

    def __post_init__(self):
        check_max_norm("Diagonal", self.max_norm)

    def evaluate(self, step, prev, noise, iteration):
        fx, jac = Full().evaluate(step, prev, noise, iteration)
        return fx, _bound_diagonal(jnp.diagonal(jac, axis1=-2, axis2=-1), self.max_norm)


@dataclasses.dataclass(frozen=True)
class Hutchinson(_DiagonalBase):
    """`A_t ~ diag(J_t)` from `probes` Rademacher probes z: `mean_k z_k * (J_t z_k)`.

    Unbiased; exact when J_t is diagonal. K JVPs per step and O(T D) memory. The probes are drawn
    afresh every iteration (from `seed` and the iteration number), so a poor draw is not repeated.
    `max_norm` clips the estimate as for [`Diagonal`][pnmcmc.engine.jacobians.Diagonal].
    """

    probes: int = 1
    seed: int = 0
    max_norm: float | None = None

    def __post_init__(self):
        if not isinstance(self.probes, int) or self.probes < 1:
            raise ValueError(f"Hutchinson needs probes >= 1 (an int), got {self.probes!r}.")
        check_max_norm("Hutchinson", self.max_norm)

    def evaluate(self, step, prev, noise, iteration):
        n, d = prev.shape
        key = jax.random.fold_in(jax.random.key(self.seed), iteration)
        z = jax.random.rademacher(key, (self.probes, n, d), dtype=prev.dtype)

        def one(x, xi, zk):
            def jvp(v):
                return jax.jvp(lambda y: step(y, xi), (x,), (v,))

            fx, jz = jax.vmap(jvp, out_axes=(None, 0))(zk)
            return fx, _bound_diagonal(jnp.mean(zk * jz, axis=0), self.max_norm)

        return jax.vmap(one, in_axes=(0, 0, 1))(prev, noise, z)
