"""Compile once: a repeat call runs the programs the first call compiled, on the data it is given.

And `solver="auto"` on a CPU: the cost model settles Sequential without a pilot.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import init_to_uniform

import pnmcmc
from pnmcmc.sampling import programs
from pnmcmc.sampling.modeling import ModelDensity, flatten_model

pytestmark = pytest.mark.filterwarnings("ignore::pnmcmc.ConvergenceWarning")  # 40 draws, by design

RUN = dict(kernel="mala", num_chains=2, num_warmup=40, rng_key=1, progress_bar=False)
Y = np.array([1.0, 2.0, 0.5, 1.5, 3.0])


def normal(y):
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5.0))
    numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def test_a_repeat_call_compiles_nothing_and_uses_its_own_data():
    """The second call (same model and shapes, new data) compiles nothing and reports no compile
    time; its draws are those a fresh compilation gives for that data, not the first call's."""
    first = pnmcmc.sequential_sample(normal, 40, model_args=(Y,), **RUN)
    count = programs.compilations()
    shifted = pnmcmc.sequential_sample(normal, 40, model_args=(Y + 5.0,), **RUN)
    assert programs.compilations() == count
    assert shifted.timings["compile"] == 0.0 and first.timings["compile"] > 0
    # New data, new posterior: the draws moved with the data ...
    assert float(np.mean(shifted.samples["mu"])) > float(np.mean(first.samples["mu"])) + 2.0
    # ... and are exactly those of a fresh compilation.
    programs.clear()
    fresh = pnmcmc.sequential_sample(normal, 40, model_args=(Y + 5.0,), **RUN)
    assert programs.compilations() > count
    np.testing.assert_array_equal(fresh.positions, shifted.positions)
    np.testing.assert_array_equal(fresh.warmup.step_size, shifted.warmup.step_size)


def test_parallel_repeat_call_compiles_nothing():
    solver = pnmcmc.DEER(segment=8)
    pnmcmc.parallel_sample(normal, 40, model_args=(Y,), solver=solver, **RUN)
    count = programs.compilations()
    again = pnmcmc.parallel_sample(normal, 40, model_args=(Y * 2,), solver=solver, **RUN)
    assert programs.compilations() == count and again.timings["compile"] == 0.0


DATA = np.array([0.0, 1.0])


def reads_a_global():
    numpyro.sample("x", dist.Normal(DATA.sum(), 1.0))


def test_data_read_from_a_global_is_part_of_the_program(monkeypatch):
    """A model that reads its data from a global (not its arguments) gets that data compiled in;
    changing the global must give a new program, not the stale one."""
    before = pnmcmc.sequential_sample(reads_a_global, 40, **RUN)
    monkeypatch.setattr(f"{__name__}.DATA", np.array([50.0, 50.0]))
    after = pnmcmc.sequential_sample(reads_a_global, 40, **RUN)
    assert float(np.mean(after.samples["x"])) > float(np.mean(before.samples["x"])) + 90


def sized(n, y):
    # `n` is a Python int used as a shape: it must stay static (part of the program's key).
    numpyro.sample("x", dist.Normal(0.0, 1.0).expand([n]).to_event(1))
    numpyro.sample("y", dist.Normal(jnp.sum(y), 1.0), obs=1.0)


def uses_an_array_as_a_shape(n):
    # `n` is an array used as a Python value: it cannot be data, so it is compiled in.
    numpyro.sample("x", dist.Normal(0.0, 1.0).expand([int(n)]).to_event(1))


def test_densities_keep_what_must_be_static_static():
    key = __import__("jax").random.key(0)
    init = numpyro.infer.init_to_uniform
    a = flatten_model(sized, (2, Y), {}, rng_key=key, num_chains=1, init_strategy=init).logdensity
    b = flatten_model(sized, (3, Y), {}, rng_key=key, num_chains=1, init_strategy=init).logdensity
    c = flatten_model(sized, (2, Y + 1), {}, rng_key=key, num_chains=1, init_strategy=init).logdensity
    assert isinstance(a, ModelDensity) and len(a.data) == 1  # y is data, n is not
    assert a.spec != b.spec and a.spec == c.spec  # another n: another program; other y: the same
    shape = flatten_model(
        uses_an_array_as_a_shape, (np.array(3),), {}, rng_key=key, num_chains=1, init_strategy=init
    )
    assert shape.dim == 3 and shape.logdensity.data == ()  # compiled in, fingerprinted in the key
    other = flatten_model(
        uses_an_array_as_a_shape, (np.array(4),), {}, rng_key=key, num_chains=1, init_strategy=init
    )
    assert other.logdensity.spec != shape.logdensity.spec


def test_auto_on_a_cpu_is_sequential_without_a_pilot():
    res = pnmcmc.parallel_sample(normal, 40, model_args=(Y,), **RUN)
    assert isinstance(res.solver, pnmcmc.Sequential) and res.solver_choice is None
    assert "without a pilot" in res.solver_reason and res.timings["solver_choice"] == 0.0
    assert res.warmup.num_iterations.tolist() == [0, 0]  # the windows too: Sequential
    # A sequential run skips what predicts nothing: the LLE (NaN) and the warmup's one-ulp shadow.
    assert np.all(np.isnan(np.asarray(res.sample_stats["lle"])))
    assert res.warmup.sequential and res.warmup.sensitivity is None and res.warmup.sensitivity_time == 0
    with pytest.raises(ValueError, match="pilot must be one of"):
        pnmcmc.AutoSolver(pilot="never")


def test_kept_programs_are_bounded():
    """At most CACHE_SIZE programs are kept (each maps its machine code); the oldest goes first."""
    programs.clear()
    kept = [programs.program(("bound", i), lambda: lambda x: x) for i in range(programs.CACHE_SIZE + 3)]
    assert len(programs._PROGRAMS) == programs.CACHE_SIZE
    assert programs.program(("bound", 0), lambda: lambda x: x) is not kept[0]  # forgotten: rebuilt
    assert programs.program(("bound", programs.CACHE_SIZE + 2), lambda: None) is kept[-1]  # kept
    programs.clear()


def test_engine_warnings_point_at_the_callers_line():
    """A warning raised deep in the engine is attributed to the user's line, not to pnmcmc."""
    import warnings

    import jax

    def step(x, e):
        return 4.0 * x * (1.0 - x) + 0.0 * e  # the logistic map at r = 4: expanding

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pnmcmc.solve(step, jnp.asarray([0.3]), jnp.zeros((256, 1)), pnmcmc.Jacobi())
    ours = [w for w in caught if issubclass(w.category, pnmcmc.PnmcmcWarning)]
    assert ours and all(w.filename == __file__ for w in ours), [(w.category, w.filename) for w in ours]
    del jax


def test_solver_names_mean_the_recommended_configuration():
    assert pnmcmc.resolve_solver("deer") == pnmcmc.DEER(segment=16)
    assert pnmcmc.resolve_solver("Quasi-DEER") == pnmcmc.QuasiDEER(segment=16)
    assert pnmcmc.resolve_solver("elk") == pnmcmc.ELK(segment=16)
    assert pnmcmc.resolve_solver("picard") == pnmcmc.Picard()  # identity Jacobian: step by step
    assert pnmcmc.resolve_solver("sequential") == pnmcmc.Sequential()
    assert isinstance(pnmcmc.resolve_solver("auto"), pnmcmc.AutoSolver)


def test_a_sequential_run_compiles_its_kernel_once():
    """Sequential sampling runs the warmup's window program (no program of its own): the kernel
    is compiled for the windows and the step-size search, not a third time for the draws."""
    programs.clear()
    pnmcmc.sequential_sample(normal, 40, model_args=(Y,), **RUN)
    names = programs.kept()
    assert "a warmup window" in names and "the chains' solve" not in names, names
    assert len([n for n in names if n in ("a warmup window", "the step-size search")]) == 2


@pytest.mark.parametrize("n_steps", [20, 22])  # whole windows of 5, and a partial last window
def test_sampling_in_windows_is_the_chain_evaluated_whole(n_steps):
    """The windows joined (a partial last window restarted from the state before it) are exactly
    the chain the one-program sequential solve gives: the same states and statistics."""
    from pnmcmc.engine.solvers import Sequential
    from pnmcmc.sampling.chains import chain_program, noise_program, with_parameters
    from pnmcmc.sampling.warmup import sample_in_windows

    flat = flatten_model(
        normal, (Y,), {}, rng_key=jax.random.key(0), num_chains=2, init_strategy=init_to_uniform
    )
    kernel = pnmcmc.kernels.MALA(step_size=0.3)
    kernels = with_parameters(kernel, jnp.array([0.1, 0.15]), jnp.ones((2, flat.dim)))
    x0 = jnp.array([[1.6, 0.0], [1.4, 0.3]])  # near the mode (mu, log sigma): the chains move
    keys = jax.random.split(jax.random.key(1), 2)
    _, noise = noise_program(kernel, 5, n_steps, flat.dim, flat.dtype)(keys, keys)
    windows = sample_in_windows(flat.logdensity, kernels, x0, noise, 5, True)
    whole = chain_program(Sequential())(flat.logdensity, kernels, x0, noise)
    accepted = np.asarray(whole.info.accepted)
    # small steps, accepted nearly always: a wrong restart state is not washed out by rejections
    assert accepted.mean() > 0.7
    np.testing.assert_array_equal(windows.solution.trajectory, whole.solution.trajectory)
    for name in ("acceptance_rate", "logdensity", "accepted"):
        np.testing.assert_array_equal(getattr(windows.info, name), getattr(whole.info, name))
    assert np.all(np.asarray(windows.solution.status) == 0)
    assert np.all(np.asarray(windows.solution.sequential_steps) == n_steps)


def test_after_a_blackjax_warmup_sequential_sampling_is_one_program():
    """With `warmup="blackjax"` no window program was compiled, so sampling in windows would only
    add one program call per window: the run compiles its own sampling program instead."""
    programs.clear()
    pnmcmc.sequential_sample(normal, 40, model_args=(Y,), **{**RUN, "warmup": "blackjax"})
    names = programs.kept()
    assert "the chains' solve" in names and "a warmup window" not in names, names


def test_arviz_is_imported_with_pnmcmc():
    """Every call's convergence checks use ArviZ: imported with pnmcmc, not inside the first call."""
    import subprocess
    import sys

    code = (
        "import sys, pnmcmc; from pnmcmc.sampling import arviz_io; "
        "names = ('arviz_base', 'arviz_stats') if arviz_io.arviz_api() == '1' else ('arviz',); "
        "print(all(n in sys.modules for n in names))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "True", done.stderr[-2000:]


def test_sampling_in_windows_reports_a_nonfinite_chain():
    """A chain with inf/NaN states is NONFINITE, as the one-program solve says, never converged."""
    from pnmcmc.engine.solvers import Sequential
    from pnmcmc.sampling.chains import chain_program, noise_program, with_parameters
    from pnmcmc.sampling.warmup import sample_in_windows

    flat = flatten_model(
        normal, (Y,), {}, rng_key=jax.random.key(0), num_chains=2, init_strategy=init_to_uniform
    )
    kernel = pnmcmc.kernels.MALA(step_size=0.1)
    kernels = with_parameters(kernel, jnp.array([0.1, 0.1]), jnp.ones((2, flat.dim)))
    x0 = jnp.array([[1.6, 0.0], [jnp.nan, 0.0]])
    keys = jax.random.split(jax.random.key(1), 2)
    _, noise = noise_program(kernel, 5, 12, flat.dim, flat.dtype)(keys, keys)
    windows = sample_in_windows(flat.logdensity, kernels, x0, noise, 5, True)
    whole = chain_program(Sequential())(flat.logdensity, kernels, x0, noise)
    expected = [int(pnmcmc.Status.CONVERGED), int(pnmcmc.Status.NONFINITE)]
    assert np.asarray(whole.solution.status).tolist() == expected
    assert np.asarray(windows.solution.status).tolist() == expected
    assert np.isfinite(np.asarray(windows.solution.residual)).tolist() == [True, False]
