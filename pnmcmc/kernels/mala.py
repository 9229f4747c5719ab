r"""The Metropolis-adjusted Langevin algorithm (MALA) as a deterministic map.

With step size $h$, inverse mass matrix $m$ (the preconditioner; $m = I$ by default) and the fixed
noise $\xi_t = (z_t, u_t)$, $z_t \sim N(0, I_D)$, $u_t \sim U[0, 1)$:

$$y = x + h\, m \nabla \log p(x) + \sqrt{2h}\, L z,\qquad L L^\top = m,$$
$$E(a \to b) = -\log p(b) + \frac{1}{4h} \big\| a - b - h\, m \nabla\log p(b) \big\|^2_{m^{-1}},
\qquad \log\alpha = E(y \to x) - E(x \to y),$$

and $x_t = y$ if $u_t < \min(1, e^{\log\alpha})$, else $x_t = x$ (see `pnmcmc.kernels.accept`).
For a diagonal $m$ (an array (D,)) $L = \sqrt m$ and $\|v\|^2_{m^{-1}} = \sum_i v_i^2 / m_i$,
elementwise; for a dense one (D, D), $L$ is its Cholesky factor and
$\|v\|^2_{m^{-1}} = \|L^{-1} v\|^2$ (`pnmcmc.kernels.base.dense_metric`). For $m = 1$ these are
BlackJAX's formulas operation for operation, and `MALA.noise_from_keys` draws $z, u$ from
per-step keys exactly as `blackjax.mala` does, so that the two chains agree to round-off (tested
to 1e-12 in float64).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from .accept import ExactJacobian, SigmoidJacobian, metropolis
from .base import (
    DIVERGENCE_THRESHOLD,
    BlackJAXEquivalent,
    DenseMetric,
    Kernel,
    StepInfo,
    check_inverse_mass_matrix,
    check_positive,
    default_float,
    dense_metric,
    static_field,
)

__all__ = ["MALA", "MALANoise"]


class MALANoise(NamedTuple):
    """The randomness of MALA steps: proposal noise `z` (..., D) ~ N(0, I), uniforms `u` (...,)."""

    z: jax.Array
    u: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class MALA(Kernel):
    """MALA with a fixed step size and an optional preconditioner (diagonal or dense).

    **Fields:**

    - `step_size`: $h > 0$ (data leaf).
    - `inverse_mass_matrix`: a (D,) array of positive entries (diagonal), a symmetric positive
      definite (D, D) matrix (dense; or its [`DenseMetric`][pnmcmc.kernels.base.DenseMetric],
      factored once), or `None` for the identity (data).
    - `accept_jacobian`: [`ExactJacobian()`][pnmcmc.kernels.ExactJacobian] (default) or
      [`SigmoidJacobian(temperature)`][pnmcmc.kernels.SigmoidJacobian] (static).

    Each step evaluates the gradient twice (at $x$ and at the proposal). Target acceptance 0.574,
    the asymptotically optimal rate of Roberts and Rosenthal (1998).
    """

    step_size: float | jax.Array
    inverse_mass_matrix: jax.Array | None = None
    accept_jacobian: ExactJacobian | SigmoidJacobian = static_field(default=ExactJacobian())

    name: ClassVar[str] = "mala"
    target_acceptance: ClassVar[float] = 0.574

    def __post_init__(self):
        check_positive("MALA", "step_size", self.step_size)
        check_inverse_mass_matrix("MALA", self.inverse_mass_matrix)
        if not isinstance(self.accept_jacobian, (ExactJacobian, SigmoidJacobian)):
            raise TypeError(
                "MALA: accept_jacobian must be ExactJacobian() or SigmoidJacobian(...), "
                f"got {self.accept_jacobian!r}."
            )

    @staticmethod
    def noise_from_keys(keys, dim: int, dtype=None) -> MALANoise:
        """The noise `blackjax.mala` draws from per-step keys `keys` (shape (T,)).

        BlackJAX splits each key into `(key_integrator, key_rmh)`, draws the proposal noise
        `normal(key_integrator, (D,))` and accepts iff `uniform(key_rmh, ()) < p_accept`.
        """
        dtype = default_float() if dtype is None else dtype

        def one(key):
            key_integrator, key_rmh = jax.random.split(key)
            return MALANoise(
                jax.random.normal(key_integrator, (dim,), dtype), jax.random.uniform(key_rmh, (), dtype)
            )

        return jax.vmap(one)(keys)

    def blackjax_equivalent(self) -> BlackJAXEquivalent:
        """BlackJAX HMC with one leapfrog step: the same chain with step size sqrt(2 h)."""
        return mala_equivalent()

    def noise(self, key, n_steps: int, dim: int, dtype=None) -> MALANoise:
        """All randomness of `n_steps` steps: `noise_from_keys(jax.random.split(key, n_steps))`,
        so the chain equals `blackjax.mala` driven by those per-step keys."""
        return self.noise_from_keys(jax.random.split(key, n_steps), dim, dtype)

    def _transition(self, logdensity_fn, x, xi):
        h = jnp.asarray(self.step_size, x.dtype)
        value_and_grad = jax.value_and_grad(logdensity_fn)
        lp_x, g_x = value_and_grad(x)
        dense = self._dense(x.dtype)
        if self.inverse_mass_matrix is None:
            y = x + h * g_x + jnp.sqrt(2 * h) * xi.z
        elif dense is None:
            m = jnp.asarray(self.inverse_mass_matrix, x.dtype)
            y = x + h * (m * g_x) + jnp.sqrt(2 * h) * (jnp.sqrt(m) * xi.z)
        else:
            y = x + h * dense.apply(g_x) + jnp.sqrt(2 * h) * _matvec(dense.factor, xi.z)
        lp_y, g_y = value_and_grad(y)
        log_alpha = self._energy(h, y, x, lp_x, g_x, dense) - self._energy(h, x, y, lp_y, g_y, dense)
        accepted, p_accept, log_alpha = metropolis(log_alpha, xi.u)
        new = self.accept_jacobian.select(accepted, log_alpha, xi.u, y, x)
        return new, accepted, p_accept, log_alpha, jnp.where(accepted, lp_y, lp_x)

    def _dense(self, dtype):
        """The dense metric when the inverse mass matrix is (D, D) (factored here) or a
        `DenseMetric` (factored already), else None."""
        imm = self.inverse_mass_matrix
        if isinstance(imm, DenseMetric):
            return imm
        return None if imm is None or jnp.ndim(imm) < 2 else dense_metric(imm, dtype)

    def _energy(self, h, a, b, lp_b, g_b, dense):
        """Energy of the move a -> b: -log p(b) + |a - b - h m grad(b)|^2_{1/m} / (4h)."""
        if self.inverse_mass_matrix is None:
            theta = a - b - h * g_b
            return -lp_b + 0.25 * (1.0 / h) * jnp.sum(theta * theta)
        if dense is not None:
            w = _matvec(dense.inverse_factor, a - b - h * dense.apply(g_b))
            return -lp_b + 0.25 * (1.0 / h) * jnp.sum(w * w)
        m = jnp.asarray(self.inverse_mass_matrix, a.dtype)
        theta = a - b - h * (m * g_b)
        return -lp_b + 0.25 * (1.0 / h) * jnp.sum(theta * theta / m)

    def step(self, logdensity_fn, x, xi: MALANoise):
        """One MALA transition of the flat position `x` (D,) with the noise `xi` of one step."""
        return self._transition(logdensity_fn, x, xi)[0]

    def info(self, logdensity_fn, x_prev, xi: MALANoise) -> StepInfo:
        """Statistics of the step from `x_prev` (recomputed; see [`StepInfo`][pnmcmc.kernels.StepInfo])."""
        return self.transition(logdensity_fn, x_prev, xi)[1]

    def transition(self, logdensity_fn, x, xi: MALANoise) -> tuple[jax.Array, StepInfo]:
        """The step from `x` and its statistics, computed once."""
        new, accepted, p_accept, log_alpha, lp = self._transition(logdensity_fn, x, xi)
        return new, StepInfo(
            accepted=accepted,
            acceptance_rate=p_accept,
            logdensity=lp,
            energy=-lp,
            diverging=-log_alpha > DIVERGENCE_THRESHOLD,
            num_integration_steps=jnp.asarray(1, jnp.int32),
            tree_depth=jnp.asarray(0, jnp.int32),
        )


def _matvec(a, v):
    return jnp.matmul(a, v, precision=jax.lax.Precision.HIGHEST)


def _to_leapfrog(h):
    return math.sqrt(2.0 * float(h))


def _from_leapfrog(epsilon):
    return 0.5 * epsilon**2


def mala_equivalent() -> BlackJAXEquivalent:
    """MALA as BlackJAX HMC with one leapfrog step (step size sqrt(2 h))."""
    import blackjax

    return BlackJAXEquivalent(blackjax.hmc, (("num_integration_steps", 1),), _to_leapfrog, _from_leapfrog)
