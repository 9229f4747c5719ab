r"""Any BlackJAX kernel as a deterministic map of the position, with one PRNG key per step as noise.

A BlackJAX kernel is `kernel(rng_key, state, logdensity_fn, **params) -> (state, info)`, and all of
its randomness comes from `rng_key`. With the keys fixed, the map

$$x \;\mapsto\; \texttt{init}(x)\; \mapsto\; \texttt{kernel}(\xi_t, \cdot, \log p, \ldots).\texttt{position}$$

is deterministic: the state is rebuilt from the position with the algorithm's own `init` (for the
gradient-based kernels that recomputes the log density and its gradient, which the solvers need to
differentiate anyway). Its Jacobian is whatever forward-mode autodiff gives through the kernel,
the almost-everywhere derivative: every random decision (accept/reject, NUTS's direction and
multinomial choices) is held fixed, and `lax.while_loop` supports forward mode, so NUTS works.

`BlackJAX(blackjax.nuts, step_size=0.1, inverse_mass_matrix=None)` adapts the top-level algorithm
objects (`blackjax.mala`, `blackjax.hmc`, `blackjax.nuts`, ...: anything with `.init(position,
logdensity_fn)` and `.build_kernel()`). [`NUTS`][pnmcmc.kernels.NUTS] is the shortcut for the
No-U-Turn sampler.

**float32:** BlackJAX 1.7.1 creates float64 constants inside its kernels when `jax_enable_x64` is
on, so with x64 on it cannot trace a float32 position (`TypeError: cond branches must have equal
output types`, e.g. in `blackjax/mcmc/trajectory.py` for NUTS). Run float32 chains of adapted
kernels with x64 off. pnmcmc's own `MALA` and `HMC` follow the position's dtype either way.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from .base import BlackJAXEquivalent, Kernel, StepInfo, _same, check_inverse_mass_matrix, check_positive

__all__ = ["NUTS", "BlackJAX"]

# The asymptotically optimal acceptance rates (RWM 0.234, MALA 0.574, HMC 0.651), and Stan's 0.8
# for NUTS, whose acceptance statistic is an average over the trajectory.
_TARGET_ACCEPTANCE = {"rmh": 0.234, "mala": 0.574, "hmc": 0.65, "nuts": 0.8}
_DEFAULT_TARGET_ACCEPTANCE = 0.8


class _Algorithm:
    """Hashable by identity: BlackJAX's API objects are mutable dataclasses (unhashable), but a
    kernel's algorithm must be static pytree metadata."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __eq__(self, other):
        return isinstance(other, _Algorithm) and other.obj is self.obj

    def __hash__(self):
        return id(self.obj)


def _algorithm_name(algorithm) -> str:
    module = getattr(getattr(algorithm, "differentiable", None), "__module__", "") or ""
    return module.rsplit(".", 1)[-1] or type(algorithm).__name__


# Parameters that are numeric even when given as a Python int (step_size=1).
_ALWAYS_DATA = frozenset({"step_size", "inverse_mass_matrix"})


def _is_static(name, value) -> bool:
    return isinstance(value, (bool, str)) or (isinstance(value, int) and name not in _ALWAYS_DATA)


@jax.tree_util.register_pytree_node_class
class BlackJAX(Kernel):
    """Adapter: any BlackJAX sampling algorithm as a pnmcmc kernel.

    **Arguments:**

    - `algorithm`: a BlackJAX top-level algorithm object, e.g. `blackjax.nuts`, `blackjax.hmc`,
      `blackjax.mala` (it must have `.init(position, logdensity_fn)` and `.build_kernel()`).
    - `build_kwargs`: keyword arguments for `algorithm.build_kernel(...)` (e.g. `integrator`,
      `divergence_threshold`); static.
    - `**params`: the kernel's parameters, passed as `kernel(key, state, logdensity_fn, **params)`.
      Python `int`/`bool`/`str` values (e.g. `num_integration_steps`, `max_num_doublings`) are
      static metadata; everything else (floats, arrays, `None`) is a data leaf, cast to the
      position's dtype when floating. `inverse_mass_matrix=None` means the identity.

    The noise is one PRNG key per step (`jax.random.split(key, n_steps)`); with the same keys the
    chain is exactly the one BlackJAX's own loop produces.
    """

    def __init__(self, algorithm, /, *, build_kwargs: dict | None = None, **params):
        if not (hasattr(algorithm, "init") and hasattr(algorithm, "build_kernel")):
            raise TypeError(
                "BlackJAX: expected a BlackJAX algorithm object with .init and .build_kernel, such as "
                f"blackjax.nuts or blackjax.mala, got {algorithm!r}."
            )
        if "step_size" in params:
            check_positive(f"BlackJAX({_algorithm_name(algorithm)})", "step_size", params["step_size"])
        static = {k: v for k, v in params.items() if _is_static(k, v)}
        data = {k: (float(v) if isinstance(v, int) else v) for k, v in params.items() if k not in static}
        build = tuple(sorted((build_kwargs or {}).items()))
        self._set(_Algorithm(algorithm), data, tuple(sorted(static.items())), build)

    def _set(self, algorithm, data, static, build):
        object.__setattr__(self, "_algorithm", algorithm)
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_static", static)
        object.__setattr__(self, "_build", build)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable; build a new one.")

    # Pytree protocol: the floating parameters are leaves, everything else is static.
    def tree_flatten(self):
        return (self._data,), (self._algorithm, self._static, self._build)

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        BlackJAX._set(obj, aux[0], children[0], aux[1], aux[2])
        return obj

    def __repr__(self):
        params = {**self._data, **dict(self._static)}
        args = ", ".join(f"{k}={v!r}" for k, v in params.items())
        return f"{type(self).__name__}(blackjax.{self.name}, {args})"

    @property
    def algorithm(self):
        """The BlackJAX algorithm object."""
        return self._algorithm.obj

    @property
    def params(self) -> dict[str, Any]:
        """All kernel parameters (data and static)."""
        return {**self._data, **dict(self._static)}

    @property
    def name(self) -> str:
        return _algorithm_name(self.algorithm)

    @property
    def target_acceptance(self) -> float:
        """0.574 for MALA, 0.65 for HMC, 0.8 for NUTS, 0.234 for random-walk Metropolis; 0.8 else."""
        return _TARGET_ACCEPTANCE.get(self.name, _DEFAULT_TARGET_ACCEPTANCE)

    def parameters(self) -> tuple:
        """`(step_size, inverse_mass_matrix)` from the kernel's parameters (None where it has none)."""
        return self._data.get("step_size"), self._data.get("inverse_mass_matrix")

    def with_parameters(self, step_size, inverse_mass_matrix) -> BlackJAX:
        """The same kernel with new data leaves `step_size` and `inverse_mass_matrix` (BlackJAX
        factors a dense matrix itself)."""
        data = {**self._data, "step_size": step_size, "inverse_mass_matrix": inverse_mass_matrix}
        return type(self).tree_unflatten((self._algorithm, self._static, self._build), (data,))

    def with_step_size(self, step_size) -> BlackJAX:
        return self.with_parameters(step_size, self._data.get("inverse_mass_matrix"))

    def blackjax_equivalent(self) -> BlackJAXEquivalent | None:
        """Itself, for `blackjax.hmc` and `blackjax.nuts`; `blackjax.mala` as MALA's equivalent."""
        if self.name == "mala":
            from .mala import mala_equivalent

            return mala_equivalent()
        if self.name in ("hmc", "nuts"):
            static = tuple((k, v) for k, v in self._static if k == "num_integration_steps")
            return BlackJAXEquivalent(self.algorithm, static, _same, _same)
        return None

    def noise(self, key, n_steps: int, dim: int = 0, dtype=None):
        """One PRNG key per step: `jax.random.split(key, n_steps)` (`dim` and `dtype` are unused)."""
        return jax.random.split(key, n_steps)

    def _kernel_params(self, x):
        def cast(v):
            v = jnp.asarray(v)
            return v.astype(x.dtype) if jnp.issubdtype(v.dtype, jnp.floating) else v

        params = {k: (None if v is None else cast(v)) for k, v in self._data.items()}
        if "inverse_mass_matrix" in params and params["inverse_mass_matrix"] is None:
            params["inverse_mass_matrix"] = jnp.ones_like(x)
        return {**params, **dict(self._static)}

    def _run(self, logdensity_fn, x, key):
        kernel = self.algorithm.build_kernel(**dict(self._build))
        state = self.algorithm.init(x, logdensity_fn)
        params = self._kernel_params(x)
        new_state, info = kernel(key, state, logdensity_fn, **params)
        return state, new_state, info, params

    def step(self, logdensity_fn, x, xi):
        """One transition of the flat position `x` (D,) driven by the PRNG key `xi`."""
        new_state = self._run(logdensity_fn, x, xi)[1]
        return jnp.asarray(new_state.position).astype(x.dtype)

    def info(self, logdensity_fn, x_prev, xi) -> StepInfo:
        """Statistics of the step from `x_prev`, mapped from BlackJAX's info object.

        `accepted` is BlackJAX's `is_accepted` where it has one, else "the position changed"
        (NUTS); `energy` is the Hamiltonian of the accepted state (for HMC-type infos that report
        the proposal's energy, the initial energy on rejection), or `-logdensity` without momentum.
        """
        return self.transition(logdensity_fn, x_prev, xi)[1]

    def transition(self, logdensity_fn, x, xi) -> tuple[jax.Array, StepInfo]:
        """The step from `x` and its statistics (as `info`), computed once."""
        x_prev = x
        state, new_state, info, params = self._run(logdensity_fn, x_prev, xi)
        position = jnp.asarray(new_state.position).astype(x.dtype)
        moved = jnp.any(jnp.asarray(new_state.position) != x_prev)
        accepted = jnp.asarray(getattr(info, "is_accepted", moved))
        logdensity = jnp.asarray(new_state.logdensity)
        energy = getattr(info, "energy", None)
        if energy is None:
            energy = -logdensity
        elif hasattr(info, "is_accepted") and hasattr(info, "momentum") and "inverse_mass_matrix" in params:
            from blackjax.mcmc.metrics import default_metric

            kinetic = default_metric(params["inverse_mass_matrix"]).kinetic_energy(info.momentum)
            energy = jnp.where(accepted, energy, -state.logdensity + kinetic)
        p_accept = getattr(info, "acceptance_rate", accepted)
        return position, StepInfo(
            accepted=accepted,
            acceptance_rate=jnp.asarray(p_accept).astype(x_prev.dtype),
            logdensity=logdensity,
            energy=jnp.asarray(energy),
            diverging=jnp.asarray(getattr(info, "is_divergent", False)),
            num_integration_steps=jnp.asarray(getattr(info, "num_integration_steps", 1), jnp.int32),
            tree_depth=jnp.asarray(getattr(info, "num_trajectory_expansions", 0), jnp.int32),
        )


@jax.tree_util.register_pytree_node_class
class NUTS(BlackJAX):
    """The No-U-Turn sampler (BlackJAX's multinomial NUTS) as a pnmcmc kernel.

    `NUTS(step_size, inverse_mass_matrix=None, max_num_doublings=10)` is
    `BlackJAX(blackjax.nuts, step_size=..., inverse_mass_matrix=..., max_num_doublings=...)`; the
    inverse mass matrix is a diagonal (D,), a dense (D, D) matrix (BlackJAX's dense Euclidean
    metric) or `None` for the identity.
    `StepInfo.num_integration_steps` is the number of leapfrog steps and `tree_depth` the number
    of trajectory doublings. Target acceptance 0.8 (Stan's default for the mean acceptance
    statistic).
    """

    def __init__(self, step_size, inverse_mass_matrix=None, max_num_doublings: int = 10):
        import blackjax

        n = max_num_doublings
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"NUTS: max_num_doublings must be an int >= 1, got {max_num_doublings!r}.")
        check_inverse_mass_matrix("NUTS", inverse_mass_matrix)
        super().__init__(
            blackjax.nuts,
            step_size=step_size,
            inverse_mass_matrix=inverse_mass_matrix,
            max_num_doublings=max_num_doublings,
        )

    def __repr__(self):
        p = self.params
        return (
            f"NUTS(step_size={p['step_size']!r}, inverse_mass_matrix={p['inverse_mass_matrix']!r}, "
            f"max_num_doublings={p['max_num_doublings']!r})"
        )
