r"""Many chains, one compiled program: a kernel with fixed parameters, solved by `pnmcmc.solve`.

With the parameters of the kernel fixed (the step size and mass matrix of one warmup window, or
the adapted ones for sampling), each chain $x_t = \text{kernel.step}(\log\pi, x_{t-1}, \xi_t)$ is
a recurrence that `pnmcmc.solve` evaluates whole; `jax.vmap` puts `num_chains` of them (each with
its own parameters, start and noise) into one program. After the solve, one more pass over the
steps, `kernel.info(log_pi, x_{t-1}, xi_t)`, gives the per-step statistics (acceptance rate, log
density, divergences, ...): it is embarrassingly parallel, since every $x_{t-1}$ is known, and runs
vmapped in chunks of `INFO_BATCH` steps so that its memory does not grow with T.

Noise is drawn by its own compiled function, shared by every solver, so that the parallel and the
sequential runs consume bit-identical randomness.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..engine import interrupts, memory
from ..engine.solution import Solution
from ..engine.solve import solve
from ..kernels.base import DenseMetric, dense_metric

__all__ = [
    "ChainBatch",
    "Compiled",
    "chain_noise",
    "chain_runner",
    "kernel_parameters",
    "noise_program",
    "with_parameters",
    "with_step_size",
]


class ChainBatch(NamedTuple):
    """The result of solving a batch of chains (leading axis: chains).

    - `solution`: the batched [`Solution`][pnmcmc.Solution] (trajectory (C, T, D)).
    - `info`: the kernel's per-step statistics, each field (C, T).
    """

    solution: Solution
    info: object


INFO_BATCH = 1024
"""Steps whose statistics are evaluated at once (vmapped) after a solve."""


def kernel_parameters(kernel):
    """`(step_size, inverse_mass_matrix)` of a kernel (dataclass kernels and BlackJAX adapters); a
    dense metric kernels carry pre-factored ([`DenseMetric`][pnmcmc.kernels.base.DenseMetric]) is
    returned as its matrix."""
    params = getattr(kernel, "params", None)
    if isinstance(params, dict):
        return params.get("step_size"), params.get("inverse_mass_matrix")
    imm = getattr(kernel, "inverse_mass_matrix", None)
    return kernel.step_size, imm.matrix if isinstance(imm, DenseMetric) else imm


def with_parameters(kernel, step_size, inverse_mass_matrix):
    """The same kernel with a new step size and inverse mass matrix (arrays, possibly batched).

    Dataclass kernels (`MALA`, `HMC`) are rebuilt with `dataclasses.replace`, and a dense matrix
    batched over chains, (C, D, D), is factored here, once per chain, rather than in every step
    ([`DenseMetric`][pnmcmc.kernels.base.DenseMetric]); BlackJAX adapters (`NUTS`) are rebuilt
    through their pytree protocol, replacing the two data leaves (BlackJAX factors the matrix).
    """
    if dataclasses.is_dataclass(kernel):
        imm = inverse_mass_matrix
        if imm is not None and not isinstance(imm, DenseMetric) and jnp.ndim(imm) == 3:
            imm = jax.vmap(lambda m: dense_metric(m, m.dtype))(jnp.asarray(imm))
        return dataclasses.replace(kernel, step_size=step_size, inverse_mass_matrix=imm)
    (data,), aux = kernel.tree_flatten()
    data = {**data, "step_size": step_size, "inverse_mass_matrix": inverse_mass_matrix}
    return type(kernel).tree_unflatten(aux, (data,))


def with_step_size(kernel, step_size):
    """The same kernel with a new step size and its inverse mass matrix (a pre-factored dense
    metric included) as it is."""
    if dataclasses.is_dataclass(kernel):
        return dataclasses.replace(kernel, step_size=step_size)
    return with_parameters(kernel, step_size, kernel_parameters(kernel)[1])


def _accepts_callback() -> bool:
    return "callback" in inspect.signature(solve).parameters


def chain_runner(logdensity, solver, callback=None, time_devices=None):
    """A function `(kernels, x0s, noise) -> ChainBatch` solving one chain per leading index.

    `kernels` is a kernel object whose array fields (step size, inverse mass matrix) carry a
    leading chain axis; `x0s` is (C, D); `noise` a pytree with leaves (C, T, ...). `callback`
    (the progress display's Newton hook) is passed to `pnmcmc.solve` when the engine supports it.
    `time_devices` (a 1-D mesh) splits every chain's time axis across devices (`pnmcmc.solve`'s
    `devices`).
    """
    extra = {"callback": callback} if callback is not None and _accepts_callback() else {}
    if time_devices is not None:  # issue 18: devices= of parallel_sample, see pnmcmc.engine.sharding
        extra["devices"] = time_devices

    def one(kernel, x0, noise):
        def step(x, xi):
            return kernel.step(logdensity, x, xi)

        solution = solve(step, x0, noise, solver, **extra)
        prev = jnp.concatenate([x0[None, :], solution.trajectory[:-1]], axis=0)
        # In chunks of INFO_BATCH steps: the statistics need no solve, but evaluating the log
        # density at all T states at once would hold T copies of the model's intermediates.
        batch = min(INFO_BATCH, prev.shape[0])
        info = jax.lax.map(lambda args: kernel.info(logdensity, *args), (prev, noise), batch_size=batch)
        return ChainBatch(solution, info)

    return jax.vmap(one)


def chain_noise(kernel, n_steps: int, dim: int, dtype):
    """A function `keys (C,) -> noise` drawing each chain's randomness for `n_steps` steps."""

    def draw(keys):
        return jax.vmap(lambda key: kernel.noise(key, n_steps, dim, dtype))(keys)

    return draw


_NOISE_PROGRAMS: dict = {}
_NOISE_CACHE_SIZE = 32


def noise_program(kernel, n_warmup: int, n_steps: int, dim: int, dtype) -> Compiled:
    """The compiled program `(warmup_keys, sampling_keys) -> (warmup_noise, sampling_noise)`.

    Cached across calls by the kernel's structure and the shapes (the noise depends on nothing
    else), so that a sequential twin or a second run of the same size does not compile it again.
    """
    key = (jax.tree.structure(kernel), n_warmup, n_steps, dim, jnp.dtype(dtype).name)
    program = _NOISE_PROGRAMS.get(key)
    if program is None:
        if len(_NOISE_PROGRAMS) >= _NOISE_CACHE_SIZE:
            _NOISE_PROGRAMS.pop(next(iter(_NOISE_PROGRAMS)))
        program = _NOISE_PROGRAMS[key] = Compiled(
            lambda kw, ks: (
                chain_noise(kernel, n_warmup, dim, dtype)(kw),
                chain_noise(kernel, n_steps, dim, dtype)(ks),
            )
        )
    return program


class Compiled:
    """`jax.jit(fn)` compiled ahead of time per argument signature, with compilation timed apart.

    Calling it compiles on the first call with a new shape/structure (adding the seconds to
    `compile_time`), checks that the program fits the device's free memory
    (`pnmcmc.engine.memory.check_fits`, before anything runs), and then runs it so that Ctrl-C stops its
    parallel solves within an iteration (`pnmcmc.engine.interrupts`); run times reported to users exclude
    compilation. `what` names the program in a memory error; `devices` are those of a program
    split across several devices (its memory is checked per device).
    """

    def __init__(self, fn, what: str = "this computation", devices=None):
        self._jitted = jax.jit(fn)
        self._cache = {}
        self.compile_time = 0.0
        self.what = what
        self.devices = devices  # those of a program split across devices: memory is checked per device

    def __call__(self, *args):
        leaves, treedef = jax.tree.flatten(args)
        signature = (treedef, tuple((jnp.shape(a), getattr(a, "dtype", type(a))) for a in leaves))
        compiled = self._cache.get(signature)
        if compiled is None:
            start = time.perf_counter()
            compiled = self._jitted.lower(*args).compile()
            self.compile_time += time.perf_counter() - start
            memory.check_fits(compiled, what=self.what, advice=_sampling_advice, devices=self.devices)
            self._cache[signature] = compiled
        with interrupts.listening():
            return jax.block_until_ready(compiled(*args))


def _sampling_advice(need, have) -> str:
    return (
        "Fewer chains per call (num_chains), a solver on longer segments (e.g. pnmcmc.DEER(segment=64)) "
        "or a diagonal one (pnmcmc.QuasiDEER(probes=4, segment=16)), a sliding window (window=...), "
        "float32, or solver='sequential' need less."
    )
