r"""`parallel_sample(model, n_steps)`: posterior draws from a NumPyro model, every chain solved whole.

The pipeline, all of it data in and data out (no sampler object to run and then query):

1. **Check** the arguments and the model (`pnmcmc.sampling.modeling`), before anything is compiled.
2. **Flatten** the model: NumPyro's `initialize_model` gives the potential energy on the
   unconstrained space and the initial points; `ravel_pytree` makes them flat vectors (D,).
3. **Warm up** (`pnmcmc.sampling.warmup`): windows with fixed kernel parameters, each solved in parallel,
   adapting the step size and a diagonal (or, `dense_mass=True`, dense) mass matrix between
   windows; or BlackJAX's sequential window adaptation.
4. **Sample**: with the adapted parameters fixed, each chain $x_t = f(x_{t-1}, \xi_t)$,
   $t = 1..n$, is one `pnmcmc.solve`; `num_chains` of them run in one compiled program
   (`pnmcmc.sampling.chains`). Then the per-step statistics, the largest Lyapunov exponent of each chain,
   and NumPyro's `postprocess_fn` (constrained and deterministic sites), all vmapped.
5. **Report** at the Python edge: one warning per kind of problem, with counts.
6. **Check convergence** (`pnmcmc.sampling.convergence`): split R-hat, ESS, divergences, E-BFMI and NUTS
   tree depth, with ArviZ; stored as `SampleResult.convergence`, one `ConvergenceWarning` if any fails.

`sequential_sample` is the same pipeline with the `Sequential` solver (`lax.scan`) everywhere,
warmup included. Both draw the same noise from the same key, and every parallel solve satisfies
each step to its tolerance (~1e-11 relative in float64), so they differ only by differences of the
size of round-off. Whether those stay that small (the same draws to many digits) or are amplified
until the two agree only statistically (two exact chains of the same kernel) is decided per chain
by the warmup's measured sensitivity to one ulp per window, the dtype and the sampling chain's
largest Lyapunov exponent, and recorded as `SampleResult.twins` (`pnmcmc.sampling.twins`, whose rules
`pnmcmc.compare` applies). Fixed `step_size` and `inverse_mass_matrix`, or `warmup="blackjax"` in
both, give twins without adaptation differences.
"""

from __future__ import annotations

import inspect
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import init_to_uniform

from ..analysis import auto
from ..analysis.auto import AutoSolver
from ..analysis.lyapunov import lyapunov_exponent
from ..engine.reporting import PnmcmcWarning, Tally, find_stack_level, solver_name
from ..engine.sharding import spread_chains
from ..engine.solvers import Sequential
from . import programs
from .chains import chain_program, with_parameters
from .chains import noise_program as noise_program_for
from .convergence import with_convergence
from .modeling import INIT_CANDIDATES, ModelDensity, flatten_model
from .options import (
    HMC_INTEGRATION_STEPS,
    check_inverse_mass_matrix,
    check_options,
    resolve_solver,
)
from .progress import ProgressDisplay
from .results import SampleResult
from .twins import twin_record
from .warmup import INITIAL_SEARCH, WarmupProblem, WindowAdaptation, sample_in_windows, sampling_window

__all__ = [
    "HMC_INTEGRATION_STEPS",
    "AutoSolver",
    "LowAcceptanceWarning",
    "auto_solver",
    "parallel_sample",
    "resolve_solver",
    "sequential_sample",
]

_LLE_DENSE_MAX = 2**24  # T * D^2 above which the LLE uses Benettin's O(D)-memory recursion


def auto_solver(dim: int, kernel=None, n_steps=None):
    """Deprecated: `pnmcmc.AutoSolver().window_solver(dim, jax.default_backend())`."""
    warnings.warn(
        "pnmcmc.sampling.sample.auto_solver is deprecated; use "
        "pnmcmc.AutoSolver().window_solver(dim, backend).",
        DeprecationWarning,
        stacklevel=2,
    )
    return AutoSolver().window_solver(dim, jax.default_backend())


def parallel_sample(
    model,
    n_steps: int,
    *,
    model_args=(),
    model_kwargs=None,
    rng_key=0,
    kernel="nuts",
    solver="auto",
    num_chains: int = 4,
    num_warmup: int = 1000,
    step_size=None,
    inverse_mass_matrix=None,
    dense_mass: bool = False,
    init_strategy=init_to_uniform,
    init_candidates: int = INIT_CANDIDATES,
    warmup="parallel",
    progress_bar: bool = True,
    devices=None,
) -> SampleResult:
    """Sample the posterior of a NumPyro model, solving each chain in parallel over time.

    **Arguments:**

    - `model`: a NumPyro model: continuous latent sites, and discrete ones marked
      `infer={"enumerate": "parallel"}`, which are summed out (draw them afterwards with
      `SampleResult.infer_discrete`; needs `pip install "pnmcmc[enum]"`).
    - `n_steps`: draws per chain after warmup (each chain is one parallel solve of this length).
    - `model_args`, `model_kwargs`: what the model is called with.
    - `rng_key`: an int seed or a JAX key. The same key gives the same draws, for every solver.
    - `kernel`: `"nuts"` (the default: BlackJAX's NUTS, solved on segments like any other
      kernel), `"mala"`, `"hmc"` (`HMC_INTEGRATION_STEPS` = 10 leapfrog steps, step size
      jittered by +-`HMC_STEP_SIZE_JITTER` = 20% per transition), or a kernel object from
      `pnmcmc.kernels` (its step size and mass matrix are then starting values).
    - `solver`: `"auto"` (the sampling solver chosen by a measured pilot on chain 0, the warmup
      windows' by the dimension; see [`AutoSolver`][pnmcmc.sampling.sample.AutoSolver], which also takes
      the pilot's options), a name (`"deer"`, `"quasideer"`, `"elk"`, `"quasielk"`, `"jacobi"`,
      `"picard"`, `"sequential"`), or a solver object such as `pnmcmc.QuasiDEER(probes=4)`, which
      then serves the warmup windows too.
    - `num_chains`: independent chains, run together in one compiled program.
    - `num_warmup`: warmup steps per chain (0: no adaptation).
    - `step_size`: `None` adapts it; a number (or one per chain) fixes it.
    - `inverse_mass_matrix`: `None` adapts one; an array (D,) (a diagonal) or a symmetric
      positive definite (D, D) matrix (flat unconstrained order, see `SampleResult.latent_sites`)
      fixes it.
    - `dense_mass`: adapt a dense (D, D) inverse mass matrix (Stan's regularised windowed
      covariance) instead of a diagonal one, as NumPyro's `dense_mass=True`: for posteriors with
      strongly correlated parameters, at O(D^2) memory and O(D^3) work per step for the factors.
    - `init_strategy`: a NumPyro init strategy (`init_to_uniform`, `init_to_median`,
      `init_to_value(values=...)`, ...).
    - `init_candidates`: each chain starts at the most probable of this many draws of
      `init_strategy` (`INIT_CANDIDATES` = 16; 1 is NumPyro's single draw). A single draw can land
      where the log density or its gradient is astronomically large (an ARMA model with
      |theta| > 1: log density -1e37), and there the adapted step size collapses and the chain
      never moves; the most probable of 16 draws almost never is such a point, and the starts
      stay as spread out as the strategy's draws.
    - `warmup`: `"parallel"` (windows solved in parallel, `pnmcmc.sampling.warmup.WindowAdaptation()`) or
      `"blackjax"` (`blackjax.window_adaptation`, sequential), or such an object.
    - `progress_bar`: show progress (warmup windows, Newton iterations); never changes results.
    - `devices`: `None` (the default device), or a list of devices or a 1-D
      `jax.sharding.Mesh` (e.g. `jax.devices()`) for the sampling solves: the chains are split
      across them, or with fewer chains than devices the time axis of every chain
      ([`spread_chains`][pnmcmc.engine.sharding.spread_chains]). The draws equal the one-device
      draws up to round-off. The warmup runs on the default device.

    **Returns:** a [`SampleResult`][pnmcmc.sampling.results.SampleResult]: `get_samples()`,
    `sample_stats`, `to_arviz()`, `print_summary()`, warmup and sampling times.

    Errors in the input (bad counts, unknown names, discrete latent sites not marked for
    enumeration, an init value outside its site's support, arguments the model does not accept, a
    model that raises, a non-finite log density at the initial point) are raised before anything
    is compiled. A proposal whose log density is NaN or inf is rejected (as
    in BlackJAX) and counted among the divergences (`sample_stats["num_divergent"]`).
    """
    return _sample(
        model,
        n_steps,
        model_args=model_args,
        model_kwargs=model_kwargs,
        rng_key=rng_key,
        kernel=kernel,
        solver=solver,
        num_chains=num_chains,
        num_warmup=num_warmup,
        step_size=step_size,
        inverse_mass_matrix=inverse_mass_matrix,
        dense_mass=dense_mass,
        init_strategy=init_strategy,
        init_candidates=init_candidates,
        warmup=warmup,
        progress_bar=progress_bar,
        devices=devices,
    )


def sequential_sample(model, n_steps: int, **options) -> SampleResult:
    """The sequential twin of [`parallel_sample`][pnmcmc.sampling.sample.parallel_sample]: the same
    arguments except `solver`, and the same code path with every chain and every warmup window
    evaluated step by step with `lax.scan` (the `Sequential` solver). With the same `rng_key` it
    returns the same draws and adapted parameters as `parallel_sample` to many digits on the chains
    whose `SampleResult.twins` verdict says so (the others agree statistically;
    `pnmcmc.sampling.twins` says why), and [`pnmcmc.compare`][pnmcmc.compare] puts the two side by
    side.
    """
    unknown = sorted(set(options) - set(_SEQUENTIAL_OPTIONS))
    if "solver" in options:
        raise TypeError(
            "sequential_sample evaluates every chain step by step and takes no solver; "
            "use parallel_sample(..., solver=...) to choose one."
        )
    if unknown:
        raise TypeError(
            f"sequential_sample got unexpected arguments {unknown}; it takes the arguments of "
            f"parallel_sample except solver: {list(_SEQUENTIAL_OPTIONS)}."
        )
    return parallel_sample(model, n_steps, solver=Sequential(), **options)


_SEQUENTIAL_OPTIONS = tuple(
    name
    for name, p in inspect.signature(parallel_sample).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "solver"
)


def _sample(
    model,
    n_steps,
    *,
    model_args,
    model_kwargs,
    rng_key,
    kernel,
    solver,
    num_chains,
    num_warmup,
    step_size,
    inverse_mass_matrix,
    dense_mass,
    init_strategy,
    init_candidates,
    warmup,
    progress_bar,
    devices=None,
):
    # 1. Everything that can be checked without running the model.
    options = check_options(
        n_steps, model_args, model_kwargs, rng_key, kernel, solver, num_chains, num_warmup,
        step_size, inverse_mass_matrix, dense_mass, init_candidates, warmup,
    )  # fmt: skip
    key, kernel, solver, warmup, fixed_step = options
    display = ProgressDisplay(progress_bar)

    # 2. The model, checked and flattened.
    key_init, key_warmup, key_sample = jax.random.split(key, 3)
    flat = flatten_model(
        model, model_args, model_kwargs, rng_key=key_init, num_chains=num_chains,
        init_strategy=init_strategy, init_candidates=init_candidates,
    )  # fmt: skip
    dim, dtype = flat.dim, flat.dtype
    fixed_imm = check_inverse_mass_matrix(inverse_mass_matrix, flat, num_chains, dense_mass)
    if fixed_step is not None:
        fixed_step = fixed_step.astype(dtype)
    reason, backend = "given", jax.default_backend()
    chooser = solver if isinstance(solver, AutoSolver) else None
    if chooser is not None:
        solver, warmup_reason = chooser.window_solver(dim, backend)
        settled = chooser.settle(backend)
        if settled is not None:  # the cost model chose (Sequential): no pilot
            chooser, reason = None, f"{settled}."

    # 3. Warmup. All randomness is drawn by one program, shared by every solver.
    compile_start = programs.compile_seconds()
    compiled_before = programs.compile_seconds()
    noise_program = noise_program_for(kernel, max(num_warmup, INITIAL_SEARCH), n_steps, dim, dtype)
    noise_start = time.perf_counter()
    warmup_noise, noise = jax.block_until_ready(
        noise_program(jax.random.split(key_warmup, num_chains), jax.random.split(key_sample, num_chains))
    )
    noise_time = time.perf_counter() - noise_start - (programs.compile_seconds() - compiled_before)
    problem = WarmupProblem(
        logdensity=flat.logdensity,
        kernel=kernel,
        solver=solver,
        positions=flat.init_positions,
        step_size=fixed_step,
        inverse_mass_matrix=fixed_imm,
        display=display,
        noise=warmup_noise,
        dense_mass=dense_mass or (fixed_imm is not None and fixed_imm.ndim == 3),
    )
    adapted = warmup.run(problem, num_warmup, key_warmup)

    # 4. Sampling with the adapted parameters (and the solver a pilot on chain 0 chose, if "auto").
    kernels = with_parameters(kernel, adapted.step_size, adapted.inverse_mass_matrix)
    choice = None
    if chooser is not None:
        solver, reason, choice = _choose_solver(
            chooser, flat.logdensity, kernels, adapted.positions, noise, display, warmup_reason
        )
    # Several devices: chains split across them, or every chain's time axis (pnmcmc.engine.sharding).
    spread = None if devices is None else spread_chains(devices, num_chains)
    time_split = None if spread is None or spread.time is None else spread.time.mesh
    # A sequential run on one device reuses the window program its warmup compiled.
    reuse = isinstance(solver, Sequential) and isinstance(warmup, WindowAdaptation)
    length = sampling_window(num_warmup, warmup.windows, n_steps) if reuse else None
    start, compiled_before = time.perf_counter(), programs.compile_seconds()
    with display.phase("sampling", n_steps) as bar:
        if length is not None and spread is None:
            solution, info = sample_in_windows(
                flat.logdensity, kernels, adapted.positions, noise, length, fixed_step is None, bar
            )
        else:
            runner = chain_program(solver, time_split, None if spread is None else spread.devices)
            inputs = (kernels, adapted.positions, noise)
            inputs = inputs if spread is None else spread.put(inputs, num_chains)
            solution, info = runner(flat.logdensity, *inputs)
            bar.advance(n_steps, newton=int(np.max(solution.num_iterations)))
        jax.block_until_ready(solution.trajectory)
    sampling_time = time.perf_counter() - start - (programs.compile_seconds() - compiled_before) + noise_time

    # 5. Diagnostics and constrained draws.
    start, compiled_before = time.perf_counter(), programs.compile_seconds()
    if isinstance(solver, Sequential):  # nothing to predict, and the LLE costs several chains' work
        lle = lle_stderr = jnp.full((num_chains,), jnp.nan, dtype)
    else:
        lle, lle_stderr = _lyapunov(flat.logdensity, kernels, adapted.positions, solution, noise)
    samples = _postprocess_program()(flat.logdensity, solution.trajectory)
    diagnostics_compile = programs.compile_seconds() - compiled_before
    diagnostics_time = time.perf_counter() - start - diagnostics_compile

    troubles = Tally()
    troubles.add(solution.num_iterations, solution.status, solution.sequential_steps)
    troubles.report("sampling")
    _warn_expanding(lle, lle_stderr, solution.front_limited, solver)
    _warn_stuck(info.acceptance_rate, adapted.step_size)

    stats = _sample_stats(info, solution, adapted, lle, lle_stderr)
    # Twins share the randomness and the configuration (the kernel's structure compares by value).
    seed = tuple(np.asarray(jax.random.key_data(key)).ravel().tolist())
    setup = (jax.tree.structure(kernel), n_steps, num_warmup, num_chains, dim, str(dtype))
    fingerprint = (seed, *setup, np.ndim(adapted.inverse_mass_matrix))
    twins = twin_record(adapted, lle, lle_stderr, dtype, fingerprint=fingerprint)
    if choice is not None:
        predicted = choice.report(choice.solver).predicted_iterations
        stats["predicted_iterations"] = jnp.full((num_chains,), predicted, jnp.int32)
    result = SampleResult(
        samples=samples,
        positions=solution.trajectory,
        sample_stats=stats,
        kernel=kernels,
        solver=solver,
        solver_reason=reason,
        solver_choice=choice,
        warmup=adapted,
        timings={
            "warmup": adapted.time,
            "sampling": sampling_time,
            "compile": programs.compile_seconds() - compile_start,
            "diagnostics": diagnostics_time,
            "solver_choice": 0.0 if choice is None else choice.pilot_seconds,
        },
        latent_sites=flat.latent_sites,
        discrete=flat.discrete,
        twins=twins,
    )
    return with_convergence(result)  # 6. Convergence checks (R-hat, ESS, ...): one warning if any fails.


def _choose_solver(chooser, logdensity, kernels, positions, noise, display, warmup_reason):
    """`(solver, reason, AutoChoice or None)` for the sampling solve under `solver="auto"`."""
    n = int(jax.tree.leaves(noise)[0].shape[1])
    if n < 2:
        return (
            Sequential(),
            f"auto: a single step is evaluated sequentially (warmup windows: {warmup_reason})",
            None,
        )
    with display.phase("choosing solver", 1) as bar:
        choice = chooser.choose(logdensity, kernels, positions, noise)
        bar.advance(1, solver=type(choice.solver).__name__)
    reason = (
        f"auto, from a {choice.pilot_steps}-step pilot on chain 0 ({choice.pilot_seconds:.2g} s): "
        f"{choice.reasons} Warmup windows: {warmup_reason}."
    )
    return auto.fallback_cap(choice), reason, choice


def _sample_stats(info, solution, adapted, lle, lle_stderr):
    num_chains, n_steps = info.acceptance_rate.shape
    per_draw = {
        "lp": info.logdensity,
        "acceptance_rate": info.acceptance_rate,
        "accepted": info.accepted,
        "diverging": info.diverging,
        "energy": info.energy,
        "n_steps": jnp.broadcast_to(info.num_integration_steps, (num_chains, n_steps)),
        "tree_depth": jnp.broadcast_to(info.tree_depth, (num_chains, n_steps)),
        "step_size": jnp.broadcast_to(adapted.step_size[:, None], (num_chains, n_steps)),
    }
    per_chain = {
        "num_iterations": solution.num_iterations,
        "residual": solution.residual,
        "status": solution.status,
        "sequential_steps": solution.sequential_steps,
        "front_limited": solution.front_limited,
        "lle": lle,
        "lle_stderr": lle_stderr,
        "num_divergent": jnp.sum(info.diverging, axis=1),
        "inverse_mass_matrix": adapted.inverse_mass_matrix,
        "warmup_iterations": adapted.num_iterations,
    }
    return {**per_draw, **per_chain}


def _lyapunov(logdensity, kernels, x0s, solution, noise):
    """Per-chain LLE and its standard error (NaN for a chain of fewer than two steps)."""
    num_chains, n, dim = solution.trajectory.shape
    if n < 2:
        nan = jnp.full((num_chains,), jnp.nan, solution.trajectory.dtype)
        return nan, nan
    est = _lyapunov_program(n, dim)(logdensity, kernels, x0s, solution.trajectory, noise)
    return est.exponent, est.stderr


def _lyapunov_program(n: int, dim: int):
    """The kept program `(logdensity, kernels, x0s, trajectories, noise) -> LyapunovEstimate`."""
    # Benettin's tangent recursion (JVPs, O(D) memory) is a cheap sequential scan; the parallel
    # product scan pays off only on an accelerator, and only while T (D, D) Jacobians fit.
    parallel = jax.default_backend() != "cpu" and n * dim * dim <= _LLE_DENSE_MAX
    method = "parallel" if parallel else "benettin"
    blocks = max(2, min(16, n // 8))

    def build():
        def one(logdensity, kernel, x0, traj, xi):
            def step(x, e):
                return kernel.step(logdensity, x, e)

            return lyapunov_exponent(step, traj, xi, x0=x0, method=method, num_blocks=blocks)

        return jax.vmap(one, (None, 0, 0, 0, 0))

    return programs.program(("lyapunov", method, blocks), build, what="the Lyapunov exponents")


def _postprocess_program():
    """The kept program `(logdensity, trajectories (C, T, D)) -> {site: (C, T, ...)}`."""
    constrain = jax.vmap(jax.vmap(ModelDensity.postprocess, (None, 0)), (None, 0))
    return programs.program(("postprocess",), lambda: constrain, what="the constrained draws")


class LowAcceptanceWarning(PnmcmcWarning):
    """Some chains almost never accepted a proposal during sampling: they barely moved."""


_STUCK = 0.05  # mean acceptance below which a chain is reported as stuck


def _warn_stuck(acceptance_rate, step_size):
    rate = np.nanmean(np.where(np.isnan(acceptance_rate), 0.0, np.asarray(acceptance_rate)), axis=1)
    stuck = np.flatnonzero(rate < _STUCK)
    if stuck.size:
        warnings.warn(
            f"Chains {stuck.tolist()} accepted almost no proposals (mean acceptance "
            f"{np.array2string(rate[stuck], precision=3)} at step size "
            f"{np.array2string(np.asarray(step_size)[stuck], precision=3)}): their draws are nearly "
            "constant. This happens when a chain starts where the log density or its gradient is "
            "extreme (the adapted step size collapses). Try init_strategy=init_to_median() or "
            "init_to_value(...), more warmup, or a reparameterised model.",
            LowAcceptanceWarning,
            stacklevel=find_stack_level(),
        )


def _warn_expanding(lle, stderr, front_limited, solver):
    """Warn about chains whose parallel solve cannot be fast: clearly expanding (the largest
    Lyapunov exponent two standard errors above 0) or front-limited (`Solution.front_limited`:
    the iterations did no better than the exactness front). Judged on the measured exponent and
    the solve's own progress, in elements (steps or segments), for every parallel solver."""
    if isinstance(solver, Sequential):
        return
    from ..analysis.lyapunov import ExpandingDynamicsWarning
    from ..engine.reporting import FrontLimitedWarning

    lle, stderr = np.asarray(lle), np.asarray(stderr)
    front = np.asarray(front_limited, bool)
    expanding = np.isfinite(lle) & (lle - 2 * np.where(np.isfinite(stderr), stderr, np.inf) > 0)
    contracting = np.isfinite(lle) & (lle + 2 * np.where(np.isfinite(stderr), stderr, np.inf) < 0)
    if (expanding | (front & ~contracting)).any():
        which = np.flatnonzero(expanding | (front & ~contracting)).tolist()
        warnings.warn(
            f"Chains {which} of {lle.size} are not contracting (largest Lyapunov exponent per chain "
            f"{np.array2string(lle, precision=3)}), so parallel solvers cannot converge quickly on them"
            + (
                f"; chains {np.flatnonzero(front).tolist()} were solved at the exactness front's pace"
                if front.any()
                else ""
            )
            + ". The draws are still exact; solver='sequential' is faster here, and a smaller step size "
            "or a better-conditioned parameterisation makes the chain contract.",
            ExpandingDynamicsWarning,
            stacklevel=find_stack_level(),
        )
    elif front.any():
        warnings.warn(
            f"The parallel solve of chains {np.flatnonzero(front).tolist()} did no better than the exactness "
            f"front (sequential work at parallel cost) although they contract (largest Lyapunov exponent "
            f"{np.array2string(lle, precision=3)}): {solver_name(solver)} is the wrong solver for them. "
            "Try solver='deer' or 'quasideer', a longer segment, or solver='sequential'.",
            FrontLimitedWarning,
            stacklevel=find_stack_level(),
        )
