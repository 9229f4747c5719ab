r"""The Metropolis-Hastings accept/reject step and the Jacobian the solvers see through it.

With the uniform $u$ fixed, the transition is $x' = y$ if $u < \min(1, \alpha)$ and $x' = x$
otherwise, where $y$ is the proposal and $\log\alpha$ the log acceptance ratio, both functions of
$x$. The decision is exactly BlackJAX's (`static_binomial_sampling`): a NaN $\log\alpha$ counts as
$-\infty$ (reject), $p = \min(1, e^{\log\alpha})$, accept iff $u < p$; so a non-finite proposal is
a rejection and never a NaN state.

The map is piecewise smooth, with jumps where the decision flips. Newton-type solvers need its
Jacobian; two choices, both leaving the *value* of the map (hence the solution) unchanged:

- [`ExactJacobian`][pnmcmc.kernels.ExactJacobian] (default): the almost-everywhere derivative,
  what autodiff of `where(accept, y, x)` gives: $\partial y / \partial x$ on acceptance, $I$ on
  rejection.
- [`SigmoidJacobian`][pnmcmc.kernels.SigmoidJacobian]: the straight-through surrogate of the
  published parallel-MCMC code. With $a = \log\alpha - \log u$ and the gate
  $g = \sigma(\beta a) - \mathrm{sg}(\sigma(\beta a)) + \mathrm{sg}(\mathbb 1[\text{accept}])$
  (forward value: exactly the hard decision; derivative: $\beta\sigma'(\beta a)\,\partial a$),
  $x' = g\,y + (1 - g)\,x$ has Jacobian
  $J = \mathbb 1[\text{acc}]\,\partial y/\partial x + \mathbb 1[\text{rej}]\,I
  + (y - x)\,\beta\sigma'(\beta a)\,(\nabla_x a)^\top$:
  the exact one plus a rank-one term that anticipates a flip of the decision when $a \approx 0$.

Which is better for the solvers is an empirical question; `benchmarks/kernels.py --jacobians`
measures it (`benchmarks/results/kernels-accept-jacobian-cpu.md`). On the benchmark targets the exact
derivative needed as many or fewer iterations in nearly every case, so it is the default.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["ExactJacobian", "SigmoidJacobian", "metropolis"]


def metropolis(log_alpha, u):
    """The accept decision of BlackJAX's static binomial sampling, with a fixed uniform `u`.

    **Arguments:**

    - `log_alpha`: the log acceptance ratio (scalar); NaN is treated as `-inf`.
    - `u`: a Uniform[0, 1) draw of the same dtype.

    **Returns:** `(accepted, acceptance_probability, log_alpha)` with NaN replaced by `-inf` in
    the last.
    """
    log_alpha = jnp.where(jnp.isnan(log_alpha), -jnp.inf, log_alpha)
    p_accept = jnp.minimum(jnp.exp(log_alpha), 1.0)
    return u < p_accept, p_accept, log_alpha


@dataclasses.dataclass(frozen=True)
class ExactJacobian:
    """The almost-everywhere derivative of accept/reject: the proposal's Jacobian on acceptance,
    the identity on rejection (what autodiff of `jnp.where(accept, y, x)` gives)."""

    def select(self, accepted, log_alpha, u, proposal, current):
        """`proposal` where `accepted`, else `current`, with the exact a.e. derivative."""
        return jnp.where(accepted, proposal, current)


@dataclasses.dataclass(frozen=True)
class SigmoidJacobian:
    """Straight-through sigmoid surrogate: the same forward value as
    [`ExactJacobian`][pnmcmc.kernels.ExactJacobian], derivative of `sigmoid(temperature * a)`
    with `a = log_alpha - log u` for the gate (see the module docstring).

    **Fields:**

    - `temperature`: $\\beta > 0$; larger means a sharper gate (the rank-one term concentrates
      on decisions near the threshold).
    """

    temperature: float = 1.0

    def __post_init__(self):
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0:
            raise ValueError(f"SigmoidJacobian: temperature must be a number > 0, got {t!r}.")

    def select(self, accepted, log_alpha, u, proposal, current):
        """`proposal` where `accepted`, else `current`; derivative with the sigmoid gate."""
        hard = jnp.where(accepted, proposal, current)
        a = log_alpha - jnp.log(u)
        # A non-finite a (rejected NaN/zero-density proposal) has no useful gradient: zero it
        # through `where`, whose tangent selects rather than multiplies (no 0 * NaN).
        finite = jnp.isfinite(a)
        a = jnp.where(finite, a, lax.stop_gradient(jnp.zeros_like(a)))
        s = jax.nn.sigmoid(self.temperature * a)
        gate = s - lax.stop_gradient(s)  # value exactly 0, derivative beta * sigma'(beta a) da
        jump = lax.stop_gradient(proposal - current)
        jump = jnp.where(finite & jnp.isfinite(jump), jump, jnp.zeros_like(jump))
        return hard + gate * jump
