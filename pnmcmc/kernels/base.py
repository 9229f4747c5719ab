r"""What every pnmcmc kernel is: a deterministic map of the position once its randomness is fixed.

An MCMC transition $x_t \sim K(x_{t-1}, \cdot)$ is written as $x_t = f(x_{t-1}, \xi_t)$ with all of
its randomness in $\xi_t$, drawn up front for every step. A kernel object provides

- `noise(key, n_steps, dim, dtype)`: the pytree $\xi_{1:T}$ (every leaf has leading axis T);
- `step(logdensity_fn, x, xi)`: the deterministic transition $f$ on the flat position (D,), which
  `pnmcmc.solve` takes as `functools.partial(kernel.step, logdensity_fn)`;
- `info(logdensity_fn, x_prev, xi)`: the per-step statistics ([`StepInfo`][pnmcmc.kernels.StepInfo])
  recomputed from a solved trajectory, in one vmapped pass after the solve:
  `jax.vmap(kernel.info, (None, 0, 0))(logdensity_fn, prev_states, noise)` with
  `prev_states = [x_0, x_1, ..., x_{T-1}]`; `transition` gives both at once (a sequential chain);
- its tunable parameters: `parameters()` is `(step_size, inverse_mass_matrix)`,
  `with_parameters(step_size, inverse_mass_matrix)` and `with_step_size(step_size)` the same
  kernel with new ones (what the warmup adapts), and `blackjax_equivalent()` the BlackJAX
  algorithm it equals, if any (for `warmup="blackjax"`).

Kernels are frozen dataclasses registered as JAX pytrees: numeric parameters (step size,
inverse mass matrix) are data leaves, so a kernel can cross `jit`/`vmap` boundaries and be rebuilt
with new parameters (step-size adaptation) without recompiling; structural choices (number of
integration steps, the accept/reject Jacobian) are static metadata. Parameters are cast to the
position's dtype inside `step`, so a float32 chain stays float32.

The chain state is the flat position only. A sequential sampler such as BlackJAX carries the log
density and its gradient at the current point in its state; here `step` recomputes them from $x$,
one extra gradient per step (MALA: 2 instead of 1; HMC with L leapfrog steps: L + 1 instead of L).
That is the price of a state the parallel solvers can linearise.

**Mass matrices.** The inverse mass matrix $M^{-1}$ is either a diagonal, an array (D,) of positive
entries, or dense, a symmetric positive definite (D, D) matrix; a kernel tells them apart by
`ndim` (under `vmap`, one chain's parameters). A dense one is used through its lower Cholesky
factor $L L^\top = M^{-1}$ and $L^{-1}$ ([`dense_metric`][pnmcmc.kernels.base.dense_metric]),
computed inside the step from $M^{-1}$ with plain array operations on the CPU (jaxlib's batched
LAPACK calls can deadlock there, see `pnmcmc.models._small_linalg`) and LAPACK elsewhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.linalg import solve_triangular

from ..models._small_linalg import cholesky, forward_substitution

__all__ = [
    "DIVERGENCE_THRESHOLD",
    "DenseMetric",
    "Kernel",
    "StepInfo",
    "check_inverse_mass_matrix",
    "check_positive",
    "default_float",
    "dense_metric",
    "static_field",
]


class StepInfo(NamedTuple):
    """Per-step statistics of a transition (arrays; leading axis T after the vmapped pass).

    **Fields:**

    - `accepted`: whether the chain moved to the proposal (for NUTS: whether the position changed).
    - `acceptance_rate`: the Metropolis-Hastings acceptance probability `min(1, alpha)`; for NUTS
      the mean acceptance statistic over the trajectory (what step-size adaptation targets).
    - `logdensity`: the log density at the new state.
    - `energy`: the Hamiltonian at the accepted state (`-logdensity` for MALA).
    - `diverging`: a divergence: the energy error exceeded 1000 or the proposal was not finite.
    - `num_integration_steps`: gradient-based integration steps taken (1 for MALA, L for HMC, the
      number of leapfrog steps for NUTS).
    - `tree_depth`: the number of trajectory doublings for NUTS, 0 for other kernels.
    """

    accepted: jax.Array
    acceptance_rate: jax.Array
    logdensity: jax.Array
    energy: jax.Array
    diverging: jax.Array
    num_integration_steps: jax.Array
    tree_depth: jax.Array


DIVERGENCE_THRESHOLD = 1000.0
"""Energy error above which a transition is flagged as divergent (BlackJAX's and Stan's value)."""


class BlackJAXEquivalent(NamedTuple):
    """The BlackJAX algorithm a kernel equals (`Kernel.blackjax_equivalent`): `algorithm` and the
    extra keyword arguments of `blackjax.window_adaptation` for it, and the maps of the step size
    to BlackJAX's parameterisation and back (MALA's h is BlackJAX HMC's epsilon^2 / 2)."""

    algorithm: Any
    kwargs: tuple  # ((name, value), ...)
    to_blackjax: Callable
    from_blackjax: Callable


def _same(step_size):
    return step_size


class Kernel:
    """Base class of the kernels (documentation and the shared helpers; no state).

    The parameter methods serve the dataclass kernels (fields `step_size` and
    `inverse_mass_matrix`); the BlackJAX adapter overrides them.
    """

    name: ClassVar[str]
    target_acceptance: ClassVar[float]

    def noise(self, key, n_steps: int, dim: int, dtype=None):
        raise NotImplementedError

    def step(self, logdensity_fn, x, xi):
        raise NotImplementedError

    def info(self, logdensity_fn, x_prev, xi) -> StepInfo:
        raise NotImplementedError

    def parameters(self) -> tuple:
        """`(step_size, inverse_mass_matrix)`; a pre-factored dense metric is returned as its matrix."""
        imm = self.inverse_mass_matrix
        return self.step_size, imm.matrix if isinstance(imm, DenseMetric) else imm

    def with_parameters(self, step_size, inverse_mass_matrix) -> Kernel:
        """The same kernel with a new step size and inverse mass matrix (arrays, possibly batched
        over chains). A dense matrix batched over chains, (C, D, D), is factored here, once per
        chain, rather than in every step ([`DenseMetric`][pnmcmc.kernels.base.DenseMetric])."""
        imm = inverse_mass_matrix
        if imm is not None and not isinstance(imm, DenseMetric) and jnp.ndim(imm) == 3:
            imm = jax.vmap(lambda m: dense_metric(m, m.dtype))(jnp.asarray(imm))
        return dataclasses.replace(self, step_size=step_size, inverse_mass_matrix=imm)

    def with_step_size(self, step_size) -> Kernel:
        """The same kernel with a new step size and its inverse mass matrix (a pre-factored dense
        metric included) as it is."""
        return dataclasses.replace(self, step_size=step_size)

    def blackjax_equivalent(self) -> BlackJAXEquivalent | None:
        """The BlackJAX algorithm this kernel equals, or None (then `warmup="blackjax"` cannot
        adapt it)."""
        return None

    def transition(self, logdensity_fn, x, xi) -> tuple[jax.Array, StepInfo]:
        """`(step(...), info(...))` of one transition from `x`, computed once (a sequential chain
        needs both; the parallel solves need the step alone)."""
        return self.step(logdensity_fn, x, xi), self.info(logdensity_fn, x, xi)


def default_float():
    """JAX's default floating dtype (float64 when x64 is enabled, else float32)."""
    return jnp.asarray(0.0).dtype


def check_positive(owner: str, name: str, value, *, allow_none: bool = False) -> None:
    """Validate a parameter that must be > 0 when its value is concrete.

    Pytree unflattening rebuilds kernels with tracers or placeholders as leaves; those are not
    checked (the check is for the user's constructor call).
    """
    if value is None:
        if allow_none:
            return
        raise ValueError(f"{owner}: {name} is required (a number > 0).")
    if isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be a number > 0, got {value!r}.")
    if isinstance(value, (int, float)):
        if not value > 0:
            raise ValueError(f"{owner}: {name} must be > 0, got {value!r}.")
        return
    if isinstance(value, (np.ndarray, jax.Array)) and not isinstance(value, jax.core.Tracer):
        try:
            ok = bool(jnp.all(value > 0))
        except TypeError:  # e.g. key arrays: not ours to judge
            return
        if not ok:
            raise ValueError(f"{owner}: every entry of {name} must be > 0, got {value!r}.")


def static_field(**kwargs):
    """A dataclass field that is pytree metadata (static under jit) rather than a data leaf."""
    return dataclasses.field(metadata={"static": True}, **kwargs)


def check_inverse_mass_matrix(owner: str, value) -> None:
    """Validate an inverse mass matrix given to a kernel's constructor, where it is concrete.

    A (D,) diagonal needs entries > 0; a dense one must be symmetric positive definite. A kernel
    rebuilt by `pnmcmc.sampling.chains.with_parameters` carries one matrix per chain, so a 2-D array may
    also be a batch of diagonals (C, D): one with entries <= 0 can only be dense and is checked
    as such, and a 3-D array is a batch of dense matrices. `parallel_sample` checks a fixed matrix
    fully, where D is known.
    """
    if value is None or isinstance(value, (jax.core.Tracer, DenseMetric)):
        return
    if not isinstance(value, (np.ndarray, jax.Array, list, tuple, int, float)):
        return  # a placeholder during pytree unflattening: not ours to judge
    if isinstance(value, bool):
        raise TypeError(f"{owner}: inverse_mass_matrix must be an array, got {value!r}.")
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{owner}: inverse_mass_matrix must be finite, got {value!r}.")
    if array.ndim <= 1 or (array.ndim == 2 and np.all(array > 0)):
        if not np.all(array > 0):
            raise ValueError(
                f"{owner}: every entry of a diagonal inverse_mass_matrix must be > 0, got {value!r}."
            )
        return
    problem = dense_problem(array)
    if problem:
        raise ValueError(f"{owner}: a dense inverse_mass_matrix must be {problem}.")


def dense_problem(array) -> str | None:
    """What is wrong with `array` (..., D, D) as dense inverse mass matrices, or None if nothing."""
    array = np.asarray(array, dtype=float)
    if array.ndim < 2 or array.shape[-1] != array.shape[-2]:
        return f"square (D, D), got shape {array.shape}"
    if not np.allclose(array, np.swapaxes(array, -1, -2), rtol=1e-12, atol=0.0):
        return "symmetric (it is not)"
    try:
        np.linalg.cholesky(array)
    except np.linalg.LinAlgError:
        smallest = float(np.min(np.linalg.eigvalsh(array)))
        return f"positive definite (its smallest eigenvalue is {smallest:.3g})"
    return None


class DenseMetric(NamedTuple):
    """A dense inverse mass matrix and its factors: `matrix` $M^{-1}$, `factor` $L$ (lower
    triangular, $L L^\top = M^{-1}$) and `inverse_factor` $L^{-1}$."""

    matrix: jax.Array
    factor: jax.Array
    inverse_factor: jax.Array

    def apply(self, v):
        """$M^{-1} v$."""
        return jnp.matmul(self.matrix, v, precision=lax.Precision.HIGHEST)


def dense_metric(inverse_mass_matrix, dtype) -> DenseMetric:
    """The [`DenseMetric`][pnmcmc.kernels.base.DenseMetric] of a (D, D) inverse mass matrix.

    On the CPU the factors come from plain array loops (`pnmcmc.models._small_linalg`), elsewhere
    from LAPACK (cuSOLVER); see the module docstring. A matrix that is not positive definite gives
    NaN factors (and the kernel's proposals are then rejected), as `jnp.linalg.cholesky` does.
    """
    matrix = jnp.asarray(inverse_mass_matrix, dtype)
    identity = jnp.eye(matrix.shape[-1], dtype=dtype)

    def cpu(a):
        factor = cholesky(a)
        columns = jax.vmap(forward_substitution, in_axes=(None, 1), out_axes=1)(factor, identity)
        return factor, columns

    def default(a):
        factor = jnp.linalg.cholesky(a)
        return factor, solve_triangular(factor, identity, lower=True)

    factor, inverse_factor = lax.platform_dependent(matrix, cpu=cpu, default=default)
    return DenseMetric(matrix, factor, inverse_factor)
