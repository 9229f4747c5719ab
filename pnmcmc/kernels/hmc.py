r"""Hamiltonian Monte Carlo with a fixed number of leapfrog steps, as a deterministic map.

With step size $\varepsilon$, $L$ leapfrog steps, inverse mass matrix $m$ ($m = I$ by default) and
the fixed noise $\xi_t = (z_t, u_t)$, $z_t \sim N(0, I_D)$, $u_t \sim U[0, 1)$:

- momentum $p_0 = C^{-\top} z$ with $C C^\top = m$ (so $p_0 \sim N(0, M)$, $M = m^{-1}$): for a
  diagonal $m$ (an array (D,)) $p_0 = z / \sqrt m$ elementwise; for a dense one (D, D) $C$ is its
  lower Cholesky factor (`pnmcmc.kernels.base.dense_metric`);
- $L$ velocity-Verlet steps $p \leftarrow p + \tfrac{\varepsilon}{2}\nabla\log p(q)$,
  $q \leftarrow q + \varepsilon\, m p$, $p \leftarrow p + \tfrac{\varepsilon}{2}\nabla\log p(q)$
  from $(x, p_0)$ to $(y, p_L)$;
- $H(q, p) = -\log p(q) + \tfrac12 p^\top m p$, $\log\alpha = H(x, p_0) - H(y, p_L)$, and
  $x_t = y$ if $u_t < \min(1, e^{\log\alpha})$, else $x_t = x$.

The state is the position only (the momentum is redrawn every step), so the map's Jacobian is
$\partial y / \partial x$ through all $L$ leapfrog steps on acceptance, $I$ on rejection.
These are BlackJAX's `hmc` formulas operation for operation (velocity Verlet, the momentum flip
does not change $H$), and `HMC.noise_from_keys` draws $z, u$ from per-step keys exactly as
`blackjax.hmc` does, so the two chains agree to round-off (tested to 1e-12 in float64).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .accept import ExactJacobian, SigmoidJacobian, metropolis
from .base import (
    DIVERGENCE_THRESHOLD,
    BlackJAXEquivalent,
    DenseMetric,
    Kernel,
    StepInfo,
    _same,
    check_inverse_mass_matrix,
    check_positive,
    default_float,
    dense_metric,
    static_field,
)

__all__ = ["HMC", "HMCNoise"]


class HMCNoise(NamedTuple):
    """The randomness of HMC steps: standard-normal momentum draws `z` (..., D), uniforms `u` (...,)
    for the accept test, and uniforms `v` (...,) for the step-size jitter (unused without one)."""

    z: jax.Array
    u: jax.Array
    v: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class HMC(Kernel):
    """HMC with a fixed step size and number of leapfrog steps.

    **Fields:**

    - `step_size`: $\\varepsilon > 0$ (data leaf).
    - `num_integration_steps`: $L \\geq 1$ leapfrog steps per transition (static).
    - `inverse_mass_matrix`: a (D,) array of positive entries (diagonal), a symmetric positive
      definite (D, D) matrix (dense; or its [`DenseMetric`][pnmcmc.kernels.base.DenseMetric],
      factored once), or `None` for the identity (data).
    - `accept_jacobian`: [`ExactJacobian()`][pnmcmc.kernels.ExactJacobian] (default) or
      [`SigmoidJacobian(temperature)`][pnmcmc.kernels.SigmoidJacobian] (static).
    - `step_size_jitter`: $j \\in [0, 1)$ (static). Each transition uses the step size
      $\\varepsilon (1 + j (2 v_t - 1))$ with $v_t \\sim U[0, 1)$ from the step's noise, so the
      trajectory length $L \\varepsilon$ varies by $\\pm j$: with a fixed length, a posterior
      direction whose period is near $L \\varepsilon$ is barely moved by any transition (Neal 2011,
      "MCMC using Hamiltonian dynamics", section 5.4.2.2). 0 (the default) is `blackjax.hmc` exactly.

    Each step evaluates the gradient L + 1 times. Target acceptance 0.65: the optimal rate for
    HMC as the dimension grows is about 0.651 (Beskos et al. 2013), and in low dimension
    efficiency is flat between 0.6 and 0.8, so 0.65 is the usual choice.
    """

    step_size: float | jax.Array
    num_integration_steps: int = static_field()
    inverse_mass_matrix: jax.Array | None = None
    accept_jacobian: ExactJacobian | SigmoidJacobian = static_field(default=ExactJacobian())
    step_size_jitter: float = static_field(default=0.0)

    name: ClassVar[str] = "hmc"
    target_acceptance: ClassVar[float] = 0.65

    def __post_init__(self):
        check_positive("HMC", "step_size", self.step_size)
        check_inverse_mass_matrix("HMC", self.inverse_mass_matrix)
        n = self.num_integration_steps
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"HMC: num_integration_steps must be an int >= 1, got {n!r}.")
        j = self.step_size_jitter
        if isinstance(j, bool) or not isinstance(j, (int, float)) or not 0 <= j < 1:
            raise ValueError(f"HMC: step_size_jitter must be a number in [0, 1), got {j!r}.")
        if not isinstance(self.accept_jacobian, (ExactJacobian, SigmoidJacobian)):
            raise TypeError(
                "HMC: accept_jacobian must be ExactJacobian() or SigmoidJacobian(...), "
                f"got {self.accept_jacobian!r}."
            )

    def blackjax_equivalent(self) -> BlackJAXEquivalent:
        """`blackjax.hmc` with the same number of leapfrog steps (exactly so without jitter)."""
        import blackjax

        steps = (("num_integration_steps", self.num_integration_steps),)
        return BlackJAXEquivalent(blackjax.hmc, steps, _same, _same)

    @staticmethod
    def noise_from_keys(keys, dim: int, dtype=None) -> HMCNoise:
        """The noise `blackjax.hmc` draws from per-step keys `keys` (shape (T,)).

        BlackJAX splits each key into `(key_momentum, key_integrator)`, draws the momentum as
        `normal(key_momentum, (D,))` scaled by the mass matrix square root, and accepts iff
        `uniform(key_integrator, ()) < p_accept`. The jitter uniform `v` comes from
        `fold_in(key, 1)`, which leaves those two draws untouched.
        """
        dtype = default_float() if dtype is None else dtype

        def one(key):
            key_momentum, key_accept = jax.random.split(key)
            return HMCNoise(
                jax.random.normal(key_momentum, (dim,), dtype),
                jax.random.uniform(key_accept, (), dtype),
                jax.random.uniform(jax.random.fold_in(key, 1), (), dtype),
            )

        return jax.vmap(one)(keys)

    def noise(self, key, n_steps: int, dim: int, dtype=None) -> HMCNoise:
        """All randomness of `n_steps` steps: `noise_from_keys(jax.random.split(key, n_steps))`,
        so the chain equals `blackjax.hmc` driven by those per-step keys."""
        return self.noise_from_keys(jax.random.split(key, n_steps), dim, dtype)

    def _transition(self, logdensity_fn, x, xi):
        eps = jnp.asarray(self.step_size, x.dtype)
        if self.step_size_jitter:  # static: no jitter, no extra operations (blackjax.hmc's numbers)
            eps = eps * (1.0 + self.step_size_jitter * (2.0 * xi.v - 1.0))
        value_and_grad = jax.value_and_grad(logdensity_fn)
        if self.inverse_mass_matrix is None:
            momentum = xi.z
            velocity = lambda p: p
        elif not isinstance(self.inverse_mass_matrix, DenseMetric) and jnp.ndim(self.inverse_mass_matrix) < 2:
            m = jnp.asarray(self.inverse_mass_matrix, x.dtype)
            momentum = (1.0 / jnp.sqrt(m)) * xi.z
            velocity = lambda p: m * p
        else:
            dense = self.inverse_mass_matrix
            if not isinstance(dense, DenseMetric):
                dense = dense_metric(dense, x.dtype)
            momentum = jnp.matmul(dense.inverse_factor.T, xi.z, precision=lax.Precision.HIGHEST)
            velocity = dense.apply

        def hamiltonian(lp, p):
            return -lp + 0.5 * jnp.dot(velocity(p), p)

        def leapfrog(_, state):
            q, p, _, g = state
            p = p + (eps * 0.5) * g
            q = q + eps * velocity(p)
            lp, g = value_and_grad(q)
            return q, p + (eps * 0.5) * g, lp, g

        lp_x, g_x = value_and_grad(x)
        y, p_end, lp_y, _ = lax.fori_loop(0, self.num_integration_steps, leapfrog, (x, momentum, lp_x, g_x))
        energy_x, energy_y = hamiltonian(lp_x, momentum), hamiltonian(lp_y, p_end)
        accepted, p_accept, log_alpha = metropolis(energy_x - energy_y, xi.u)
        new = self.accept_jacobian.select(accepted, log_alpha, xi.u, y, x)
        stats = (
            accepted,
            p_accept,
            jnp.where(accepted, lp_y, lp_x),
            jnp.where(accepted, energy_y, energy_x),
            -log_alpha > DIVERGENCE_THRESHOLD,
        )
        return new, stats

    def step(self, logdensity_fn, x, xi: HMCNoise):
        """One HMC transition of the flat position `x` (D,) with the noise `xi` of one step."""
        return self._transition(logdensity_fn, x, xi)[0]

    def info(self, logdensity_fn, x_prev, xi: HMCNoise) -> StepInfo:
        """Statistics of the step from `x_prev` (recomputed; see [`StepInfo`][pnmcmc.kernels.StepInfo])."""
        return self.transition(logdensity_fn, x_prev, xi)[1]

    def transition(self, logdensity_fn, x, xi: HMCNoise) -> tuple[jax.Array, StepInfo]:
        """The step from `x` and its statistics, computed once."""
        new, (accepted, p_accept, lp, energy, diverging) = self._transition(logdensity_fn, x, xi)
        return new, StepInfo(
            accepted=accepted,
            acceptance_rate=p_accept,
            logdensity=lp,
            energy=energy,
            diverging=diverging,
            num_integration_steps=jnp.asarray(self.num_integration_steps, jnp.int32),
            tree_depth=jnp.asarray(0, jnp.int32),
        )
