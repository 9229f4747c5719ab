"""The arguments of `parallel_sample`, checked and resolved before anything runs.

Names become objects (`"nuts"` a kernel, `"deer"` a solver's recommended configuration, `"auto"`
an [`AutoSolver`][pnmcmc.analysis.auto.AutoSolver], `"parallel"` a warmup), and every value that
can be wrong is reported in the user's terms: what was given, what is valid, what to pass instead.
The inverse mass matrix is checked after the model is flattened (its shape is the model's D).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..analysis.auto import AutoSolver
from ..engine import solvers
from ..engine.solvers import ParallelSolver, Sequential
from ..kernels.base import dense_problem
from .chains import kernel_parameters
from .warmup import BlackJAXWindowAdaptation, WindowAdaptation

__all__ = [
    "HMC_INTEGRATION_STEPS",
    "HMC_STEP_SIZE_JITTER",
    "KERNEL_NAMES",
    "Options",
    "SOLVER_NAMES",
    "WARMUP_NAMES",
    "as_key",
    "check_inverse_mass_matrix",
    "check_options",
    "resolve_solver",
]

KERNEL_NAMES = ("mala", "hmc", "nuts")
SOLVER_NAMES = solvers.NAMES
WARMUP_NAMES = {"parallel": WindowAdaptation, "blackjax": BlackJAXWindowAdaptation}
HMC_INTEGRATION_STEPS = 10
"""Leapfrog steps of `kernel="hmc"` (pass `pnmcmc.kernels.HMC(step_size, L)` for another L)."""
HMC_STEP_SIZE_JITTER = 0.2
"""Step-size jitter of `kernel="hmc"`: a fixed trajectory length resonates with posterior periods
(posteriordb, `benchmarks/results/hmc-jitter-cpu.md`: min ESS higher on 6 of 8 posteriors, e.g.
58 -> 472 and 180 -> 1449, about 10% lower on 2); `HMC(...)` itself defaults to 0, `blackjax.hmc`."""


class Options(NamedTuple):
    """The resolved options of one call: `key` (a JAX key), `kernel`, `solver` (an object, or an
    `AutoSolver`), `warmup` (a warmup object) and `step_size` (fixed, one per chain, or None)."""

    key: jax.Array
    kernel: object
    solver: object
    warmup: object
    step_size: jax.Array | None


def check_options(
    n_steps, model_args, model_kwargs, rng_key, kernel, solver, num_chains, num_warmup,
    step_size, inverse_mass_matrix, dense_mass, init_candidates, warmup,
) -> Options:  # fmt: skip
    """Every check that needs no model run, in the order of `parallel_sample`'s arguments."""
    _check_count("n_steps", n_steps, 1)
    _check_count("num_chains", num_chains, 1)
    _check_count("num_warmup", num_warmup, 0)
    _check_count("init_candidates", init_candidates, 1)
    if model_kwargs is not None and not isinstance(model_kwargs, dict):
        raise TypeError(f"model_kwargs must be a dict (or None), got {type(model_kwargs).__name__}.")
    if not isinstance(model_args, (tuple, list)):
        raise TypeError(
            f"model_args must be a tuple of positional arguments, got {type(model_args).__name__}."
        )
    key = as_key(rng_key)
    kernel = _resolve_kernel(kernel)
    solver = resolve_solver(solver)
    warmup = _resolve_warmup(warmup)
    fixed_step = _check_step_size(step_size, num_chains)
    _check_dense_mass(dense_mass, kernel)
    if isinstance(warmup, BlackJAXWindowAdaptation) and (
        step_size is not None or inverse_mass_matrix is not None
    ):
        raise ValueError(
            "warmup='blackjax' adapts both the step size and the mass matrix; to fix either one use "
            "warmup='parallel' (or num_warmup=0 to fix both)."
        )
    return Options(key, kernel, solver, warmup, fixed_step)


def _check_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")


def as_key(rng_key):
    """A JAX key from an int seed or a key (new-style, or legacy uint32 (2,))."""
    if isinstance(rng_key, (int, np.integer)) and not isinstance(rng_key, bool):
        return jax.random.key(int(rng_key))
    if isinstance(rng_key, jax.Array):
        if jnp.issubdtype(rng_key.dtype, jax.dtypes.prng_key) and rng_key.shape == ():
            return rng_key
        if rng_key.dtype == jnp.uint32 and rng_key.shape == (2,):
            return jax.random.wrap_key_data(rng_key)
    raise TypeError(f"rng_key must be an int seed or a single JAX key (jax.random.key(0)), got {rng_key!r}.")


def _resolve_kernel(kernel):
    if isinstance(kernel, str):
        name = kernel.strip().lower()
        if name not in KERNEL_NAMES:
            raise ValueError(
                f"Unknown kernel {kernel!r}; valid names are {list(KERNEL_NAMES)}, or pass a kernel "
                "object from pnmcmc.kernels (e.g. pnmcmc.kernels.HMC(0.1, num_integration_steps=5))."
            )
        from ..kernels import HMC, MALA, NUTS

        if name == "mala":
            return MALA(step_size=1.0)
        if name == "hmc":
            return HMC(
                step_size=1.0,
                num_integration_steps=HMC_INTEGRATION_STEPS,
                step_size_jitter=HMC_STEP_SIZE_JITTER,
            )
        return NUTS(step_size=1.0)
    missing = [a for a in ("noise", "step", "info", "target_acceptance") if not hasattr(kernel, a)]
    if missing:
        raise TypeError(
            f"kernel must be one of {list(KERNEL_NAMES)} or a pnmcmc kernel object (with noise, step, "
            f"info and target_acceptance), got {kernel!r} (missing {missing})."
        )
    return kernel


def resolve_solver(solver):
    """The solver object `parallel_sample` uses for `solver`: a name (`"auto"`, `"deer"`, ...;
    case, `_` and `-` ignored) becomes its recommended configuration
    (`pnmcmc.engine.solvers.from_name`: the parallel solvers on
    16-step segments), an object is checked and returned as is. Raises `ValueError` /
    `TypeError` naming the valid choices."""
    if isinstance(solver, str):
        name = solver.strip().lower().replace("_", "").replace("-", "")
        if name == "auto":
            return AutoSolver()
        if name not in SOLVER_NAMES:
            raise ValueError(
                f"Unknown solver {solver!r}; valid names are {['auto', *SOLVER_NAMES]}, or pass a solver "
                "object such as pnmcmc.QuasiDEER()."
            )
        return solvers.from_name(name)
    if not isinstance(solver, (Sequential, ParallelSolver, AutoSolver)):
        raise TypeError(
            f"solver must be 'auto', one of {list(SOLVER_NAMES)}, a solver object such as "
            f"pnmcmc.DEER(), or pnmcmc.AutoSolver(...) (auto with pilot options); got {solver!r}."
        )
    return solver


def _resolve_warmup(warmup):
    if isinstance(warmup, str):
        name = warmup.strip().lower()
        if name not in WARMUP_NAMES:
            raise ValueError(
                f"Unknown warmup {warmup!r}; valid names are {list(WARMUP_NAMES)}, or pass "
                "pnmcmc.sampling.warmup.WindowAdaptation(...) / BlackJAXWindowAdaptation()."
            )
        return WARMUP_NAMES[name]()
    if not isinstance(warmup, (WindowAdaptation, BlackJAXWindowAdaptation)):
        raise TypeError(f"warmup must be one of {list(WARMUP_NAMES)} or a warmup object, got {warmup!r}.")
    return warmup


def _check_step_size(step_size, num_chains):
    if step_size is None:
        return None
    value = np.asarray(step_size, dtype=float)
    if value.ndim > 1 or (value.ndim == 1 and value.shape[0] not in (1, num_chains)):
        raise ValueError(
            f"step_size must be a number or one per chain (shape ({num_chains},)), got shape {value.shape}."
        )
    if not np.all(np.isfinite(value) & (value > 0)):
        raise ValueError(f"step_size must be finite and > 0, got {step_size!r}.")
    return jnp.broadcast_to(jnp.asarray(value), (num_chains,))


def _check_dense_mass(dense_mass, kernel):
    if not isinstance(dense_mass, bool):
        raise TypeError(f"dense_mass must be True or False, got {dense_mass!r}.")
    kernel_imm = kernel_parameters(kernel)[1]
    if not dense_mass and kernel_imm is not None and np.ndim(kernel_imm) == 2:
        raise ValueError(
            "The kernel's inverse_mass_matrix is dense (D, D) but dense_mass=False adapts a diagonal one: "
            "pass dense_mass=True (or inverse_mass_matrix=... to fix it)."
        )


def check_inverse_mass_matrix(imm, flat, num_chains, dense_mass):
    """A fixed inverse mass matrix, checked against the flattened model and broadcast per chain."""
    if imm is None:
        return None
    value = np.asarray(imm, dtype=float)
    dim, sites = flat.dim, list(flat.latent_sites)
    where = f"over the flat unconstrained parameters (sites {sites} in this order, each raveled)"
    if value.shape == (dim,) and dense_mass:
        raise ValueError(
            f"inverse_mass_matrix has the shape of a diagonal, (D,) = ({dim},), but dense_mass=True: pass "
            "a dense (D, D) matrix (np.diag(...) of this one) or dense_mass=False."
        )
    if value.shape not in ((dim,), (dim, dim)):
        raise ValueError(
            f"inverse_mass_matrix must be a diagonal of shape (D,) = ({dim},) or a dense matrix of shape "
            f"(D, D) = ({dim}, {dim}) {where}, got shape {value.shape}."
        )
    if value.ndim == 1 and not np.all(np.isfinite(value) & (value > 0)):
        raise ValueError("A diagonal inverse_mass_matrix must have finite entries > 0.")
    if not np.all(np.isfinite(value)):
        raise ValueError("A dense inverse_mass_matrix must have finite entries.")
    problem = dense_problem(value) if value.ndim == 2 else None
    if problem:
        raise ValueError(f"A dense inverse_mass_matrix must be {problem}.")
    return jnp.broadcast_to(jnp.asarray(value, flat.dtype), (num_chains, *value.shape))
