r"""Many chains, one compiled program: a kernel with fixed parameters, solved by `pnmcmc.solve`.

With the parameters of the kernel fixed (the step size and mass matrix of one warmup window, or
the adapted ones for sampling), each chain $x_t = \text{kernel.step}(\log\pi, x_{t-1}, \xi_t)$ is
a recurrence that `pnmcmc.solve` evaluates whole; `jax.vmap` puts `num_chains` of them (each with
its own parameters, start and noise) into one program. After a parallel solve, one more pass over
the steps, `kernel.info(log_pi, x_{t-1}, xi_t)`, gives the per-step statistics (acceptance rate, log
density, divergences, ...): it is embarrassingly parallel, since every $x_{t-1}$ is known, and runs
vmapped in chunks of `INFO_BATCH` steps so that its memory does not grow with T. A sequential
chain computes them with each step instead (`kernel.transition`): one copy of the kernel in the
program, which halves its compilation.

Noise is drawn by its own compiled function, shared by every solver, so that the parallel and the
sequential runs consume bit-identical randomness.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..engine.iterate import sequential_transitions
from ..engine.solution import Solution
from ..engine.solve import solve
from ..engine.solvers import Sequential
from . import progress
from .programs import Compiled, program

__all__ = [
    "ChainBatch",
    "Compiled",
    "chain_noise",
    "chain_program",
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
    """`(step_size, inverse_mass_matrix)` of a kernel (`Kernel.parameters`)."""
    return kernel.parameters()


def with_parameters(kernel, step_size, inverse_mass_matrix):
    """The same kernel with a new step size and inverse mass matrix (`Kernel.with_parameters`)."""
    return kernel.with_parameters(step_size, inverse_mass_matrix)


def with_step_size(kernel, step_size):
    """The same kernel with a new step size (`Kernel.with_step_size`)."""
    return kernel.with_step_size(step_size)


def chain_runner(logdensity, solver, callback=None, time_devices=None):
    """A function `(kernels, x0s, noise) -> ChainBatch` solving one chain per leading index.

    `kernels` is a kernel object whose array fields (step size, inverse mass matrix) carry a
    leading chain axis; `x0s` is (C, D); `noise` a pytree with leaves (C, T, ...). `callback`
    (the progress display's Newton hook) is passed to `pnmcmc.solve`. `time_devices` (a 1-D mesh)
    splits every chain's time axis across devices (`pnmcmc.solve`'s `devices`; a sequential chain
    is not split).
    """
    extra = {} if callback is None else {"callback": callback}
    if time_devices is not None:  # devices= of parallel_sample, see pnmcmc.engine.sharding
        extra["devices"] = time_devices

    def one(kernel, x0, noise):
        if isinstance(solver, Sequential):  # the statistics come with each step
            return ChainBatch(*sequential_transitions(partial(kernel.transition, logdensity), x0, noise))

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


def chain_program(solver, time_devices=None, devices=None) -> Compiled:
    """The kept program `(logdensity, kernels, x0s, noise) -> ChainBatch` of `chain_runner` for
    `solver`, the Newton callback forwarding to the open progress display.

    `logdensity` is an argument (a [`ModelDensity`][pnmcmc.sampling.modeling.ModelDensity]: the
    model's data are its leaves), so a later call on the same model, or the same model with new
    data of the same shapes, runs the program compiled before (`pnmcmc.sampling.programs`).
    `time_devices` splits each chain's time axis (`chain_runner`); `devices` are those the
    program is spread over (its memory is checked per device).
    """

    def build():
        def run(logdensity, kernels, x0s, noise):
            return chain_runner(logdensity, solver, progress.newton, time_devices)(kernels, x0s, noise)

        return run

    key = ("chains", solver, chain_runner, time_devices, None if devices is None else tuple(devices))
    return program(key, build, what="the chains' solve", devices=devices)


def chain_noise(kernel, n_steps: int, dim: int, dtype):
    """A function `keys (C,) -> noise` drawing each chain's randomness for `n_steps` steps."""

    def draw(keys):
        return jax.vmap(lambda key: kernel.noise(key, n_steps, dim, dtype))(keys)

    return draw


def noise_program(kernel, n_warmup: int, n_steps: int, dim: int, dtype) -> Compiled:
    """The compiled program `(warmup_keys, sampling_keys) -> (warmup_noise, sampling_noise)`.

    Kept across calls by the kernel's structure and the shapes (the noise depends on nothing
    else), so that a sequential twin or a second run of the same size does not compile it again.
    """
    key = ("noise", jax.tree.structure(kernel), n_warmup, n_steps, dim, jnp.dtype(dtype).name)
    return program(
        key,
        lambda: (
            lambda kw, ks: (
                chain_noise(kernel, n_warmup, dim, dtype)(kw),
                chain_noise(kernel, n_steps, dim, dtype)(ks),
            )
        ),
        what="the chains' randomness",
    )
