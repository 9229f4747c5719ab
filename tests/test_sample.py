"""`parallel_sample` end to end on small models: the sequential twin, outputs, progress, warnings."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import pnmcmc
from pnmcmc.engine.reporting import NotConvergedWarning
from pnmcmc.engine.solution import Status
from pnmcmc.kernels import HMC, MALA
from pnmcmc.models import eight_schools
from pnmcmc.sampling.compare import compare
from pnmcmc.sampling.sample import AutoSolver, parallel_sample, sequential_sample

# These runs check the engine (twins, outputs, progress, warnings), on chains far too short to
# converge (150 draws of MALA on eight schools): the convergence warning is due, and tested in
# test_convergence.py.
pytestmark = pytest.mark.filterwarnings("ignore::pnmcmc.ConvergenceWarning")

SCHOOLS = eight_schools()
# MALA (not the default NUTS) keeps these end-to-end tests fast; NUTS has its own tests below.
SMALL = dict(
    model_kwargs=SCHOOLS.model_kwargs,
    kernel="mala",
    num_chains=2,
    num_warmup=200,
    rng_key=3,
    progress_bar=False,
)


def assert_twins(par, seq, tol=1e-8):
    """Parallel and sequential results agree: adapted parameters (measured: ~1e-13 relative; the
    warmup windows are solved to 64 ulps) and every draw (each sampling solve is exact to ~1e-11;
    measured: ~3e-10)."""
    np.testing.assert_allclose(par.warmup.step_size, seq.warmup.step_size, rtol=1e-10)
    np.testing.assert_allclose(par.warmup.inverse_mass_matrix, seq.warmup.inverse_mass_matrix, rtol=1e-10)
    np.testing.assert_allclose(par.positions, seq.positions, rtol=tol, atol=tol)
    for site in par.samples:
        np.testing.assert_allclose(par.samples[site], seq.samples[site], rtol=tol, atol=tol)


@pytest.fixture(scope="module")
def twins():
    par = parallel_sample(SCHOOLS.model, 150, solver="quasideer", **SMALL)
    seq = sequential_sample(SCHOOLS.model, 150, **SMALL)
    return par, seq


def test_parallel_equals_sequential_including_warmup(twins):
    par, seq = twins
    assert_twins(par, seq)
    assert isinstance(par.solver, pnmcmc.QuasiDEER) and isinstance(seq.solver, pnmcmc.Sequential)
    assert np.all(np.asarray(par.sample_stats["status"]) == Status.CONVERGED)
    assert np.all(np.asarray(par.sample_stats["residual"]) <= 1.0)
    assert np.all(np.asarray(par.sample_stats["num_iterations"]) > 0)
    assert np.all(np.asarray(seq.sample_stats["num_iterations"]) == 0)
    # The per-step statistics: recomputed after the parallel solve, computed with each step in the
    # sequential chain (Kernel.transition); the same steps, the same numbers.
    np.testing.assert_array_equal(par.sample_stats["accepted"], seq.sample_stats["accepted"])
    for name in ("lp", "acceptance_rate", "energy"):
        np.testing.assert_allclose(par.sample_stats[name], seq.sample_stats[name], rtol=1e-8, atol=1e-10)


def test_samples_and_stats(twins):
    par, _ = twins
    grouped = par.get_samples(group_by_chain=True)
    flat = par.get_samples()
    # constrained latent sites and the deterministic site
    assert set(grouped) == {"mu", "tau", "theta_tilde", "theta"}
    assert grouped["theta"].shape == (2, 150, 8) and flat["theta"].shape == (300, 8)
    assert np.all(np.asarray(flat["tau"]) > 0)
    theta = grouped["mu"][..., None] + grouped["tau"][..., None] * grouped["theta_tilde"]
    np.testing.assert_allclose(grouped["theta"], theta, rtol=1e-12)
    stats = par.sample_stats
    for name in ("lp", "acceptance_rate", "diverging", "energy", "step_size", "n_steps", "tree_depth"):
        assert stats[name].shape == (2, 150), name
    for name in ("num_iterations", "residual", "status", "sequential_steps", "lle", "num_divergent"):
        assert stats[name].shape == (2,), name
    assert stats["inverse_mass_matrix"].shape == (2, 10)
    assert np.all(np.isfinite(np.asarray(stats["lle"])))
    assert par.latent_sites == ("mu", "tau", "theta_tilde")
    assert par.solver_reason == "given"
    assert par.convergence.num_draws == 150 and not par.convergence.passed  # 150 MALA draws: too few
    assert par.warmup_time >= 0 and par.sampling_time >= 0
    text = par.describe()
    assert "QuasiDEER" in text and "Lyapunov" in text and "warmup (parallel)" in text
    assert "2 chains x 150 draws" in repr(par)


def test_adapted_parameters_are_reasonable(twins):
    par, _ = twins
    acceptance = np.asarray(par.sample_stats["acceptance_rate"]).mean(axis=1)
    # MALA targets 0.574; a 200-step warmup (windows of 5 steps) leaves a chain anywhere in about
    # 0.3-0.8 (seed 3: 0.33 and 0.72), while a broken adaptation gives about 0 or 1.
    assert np.all((acceptance > 0.25) & (acceptance < 0.9)), acceptance
    imm = np.asarray(par.warmup.inverse_mass_matrix)
    assert np.all(imm > 0) and not np.allclose(imm, 1.0)


def test_compare_twins(twins):
    table = compare(*twins)
    assert ("mean", "QuasiDEER") in table.columns and ("r_hat", "Sequential") in table.columns
    assert len(table) == 2 + 8 + 8
    assert float(table[("max |diff|", "")].max()) < 1e-7
    np.testing.assert_allclose(table[("mean", "QuasiDEER")], table[("mean", "Sequential")], atol=1e-7)


def test_fixed_parameters_kernel_object_and_auto_solver():
    imm = jnp.linspace(0.5, 2.0, 10)
    kernel = HMC(step_size=0.1, num_integration_steps=3)
    options = dict(step_size=0.2, inverse_mass_matrix=imm, **{**SMALL, "kernel": kernel, "num_warmup": 40})
    # A small pilot keeps the test fast; the choice depends on timings, the draws must not. On a
    # CPU the cost model alone settles "auto" (test_programs.py); pilot="always" measures anyway.
    auto = AutoSolver(pilot_steps=8, candidates=(pnmcmc.DEER(),), repeats=1, pilot="always")
    res = parallel_sample(SCHOOLS.model, 30, solver=auto, **options)
    np.testing.assert_allclose(res.warmup.step_size, 0.2)
    np.testing.assert_allclose(res.sample_stats["inverse_mass_matrix"], np.broadcast_to(imm, (2, 10)))
    np.testing.assert_array_equal(res.sample_stats["n_steps"], 3)
    assert res.kernel.num_integration_steps == 3
    # The pilot's choice and its reasons are recorded everywhere a user looks.
    choice = res.solver_choice
    assert isinstance(choice, pnmcmc.AutoChoice) and choice.pilot_steps == 8
    assert isinstance(res.solver, type(choice.solver))
    if not isinstance(res.solver, pnmcmc.Sequential):  # capped so that a wrong guess costs ~1 sequential run
        assert res.solver.max_iterations is not None
    assert "pilot on chain 0" in res.solver_reason and "Warmup windows: auto: D = 10" in res.solver_reason
    assert choice.reasons in res.solver_reason
    predicted = choice.report(choice.solver).predicted_iterations
    np.testing.assert_array_equal(res.sample_stats["predicted_iterations"], [predicted] * 2)
    assert res.timings["solver_choice"] > 0
    assert "solver choice" in res.describe() and choice.describe() in res.describe()
    attrs = res.to_arviz(api="0").posterior.attrs
    assert attrs["solver_choice"] == choice.describe() and attrs["predicted_iterations"] == [predicted] * 2
    # ... and the pilot changed nothing: the same draws as the sequential twin.
    seq = sequential_sample(SCHOOLS.model, 30, **options)
    assert seq.solver_choice is None and "predicted_iterations" not in seq.sample_stats
    assert_twins(res, seq)


def test_progress_bar_does_not_change_results(twins, capsys):
    quiet, _ = twins
    capsys.readouterr()
    loud = parallel_sample(SCHOOLS.model, 150, solver="quasideer", **{**SMALL, "progress_bar": True})
    err = capsys.readouterr().err
    assert "warmup" in err and "sampling" in err and "newton" in err
    np.testing.assert_array_equal(quiet.positions, loud.positions)
    np.testing.assert_array_equal(quiet.warmup.step_size, loud.warmup.step_size)
    np.testing.assert_array_equal(quiet.warmup.inverse_mass_matrix, loud.warmup.inverse_mass_matrix)


def test_blackjax_warmup_with_a_kernel_object():
    kernel = MALA(step_size=0.01)
    options = {**SMALL, "kernel": kernel, "num_warmup": 150}
    res = sequential_sample(SCHOOLS.model, 40, warmup="blackjax", **options)
    assert res.warmup.method == "blackjax" and res.warmup.num_windows == 0
    assert isinstance(res.kernel, MALA) and res.kernel.step_size.shape == (2,)
    acceptance = np.asarray(res.sample_stats["acceptance_rate"]).mean(axis=1)
    assert np.all((acceptance > 0.2) & (acceptance < 0.95)), acceptance
    assert not np.allclose(np.asarray(res.warmup.inverse_mass_matrix), 1.0)


def test_nonfinite_log_density_is_a_counted_rejection():
    def walled(y=None):
        x = numpyro.sample("x", dist.Normal(0.0, 1.0))
        # log density NaN beyond x = 1: proposals there must be rejected, never accepted.
        numpyro.factor("wall", jnp.where(x > 1.0, jnp.nan, 0.0))

    res = sequential_sample(
        walled,
        300,
        kernel="mala",
        num_chains=2,
        num_warmup=0,
        step_size=2.0,
        rng_key=1,
        init_strategy=init_at_zero(),
        progress_bar=False,
    )
    x = np.asarray(res.samples["x"])
    assert np.all(np.isfinite(x)) and np.all(x <= 1.0)
    assert np.all(np.asarray(res.sample_stats["num_divergent"]) > 0)
    assert np.all(np.isfinite(np.asarray(res.sample_stats["lp"])))


def init_at_zero():
    from numpyro.infer import init_to_value

    return init_to_value(values={"x": 0.0})


def test_not_converged_warns_once_with_counts(twins):
    solver = pnmcmc.QuasiDEER(max_iterations=1)
    with pytest.warns(NotConvergedWarning) as record:
        res = parallel_sample(SCHOOLS.model, 150, solver=solver, **SMALL)
    messages = [str(w.message) for w in record if issubclass(w.category, NotConvergedWarning)]
    assert len(messages) == 2  # one for the warmup windows, one for sampling
    assert "of 80 parallel solves" in messages[0] and "sampling: 2 of 2" in messages[1]
    assert np.all(np.asarray(res.sample_stats["status"]) == Status.MAX_ITERATIONS)
    assert_twins(res, twins[1])  # still the exact chain: the rest was finished sequentially


def test_rng_key_forms_agree():
    from pnmcmc.sampling.options import as_key as _as_key

    keys = [_as_key(7), _as_key(np.int32(7)), _as_key(jax.random.key(7)), _as_key(jax.random.PRNGKey(7))]
    for key in keys:
        np.testing.assert_array_equal(jax.random.key_data(key), jax.random.key_data(jax.random.key(7)))


FLOAT32_SCRIPT = """
import jax, numpy as np, warnings
import pnmcmc
from pnmcmc.models import eight_schools
from pnmcmc.sampling.sample import AutoSolver, parallel_sample, sequential_sample
assert not jax.config.jax_enable_x64
s = eight_schools()
kw = dict(model_kwargs=s.model_kwargs, kernel="mala", num_chains=2, rng_key=0, progress_bar=False)
with warnings.catch_warnings():
    warnings.simplefilter("error")
    warnings.simplefilter("ignore", pnmcmc.ConvergenceWarning)  # 20-60 draws: too short, by design
    fixed = dict(num_warmup=0, step_size=0.02, **kw)
    par = parallel_sample(s.model, 60, solver="quasideer", **fixed)
    seq = sequential_sample(s.model, 60, **fixed)
    adapted = parallel_sample(s.model, 20, num_warmup=60, solver="quasideer", **kw)
for res in (par, adapted):
    assert res.positions.dtype == np.float32 and res.samples["theta"].dtype == np.float32
    assert res.warmup.step_size.dtype == np.float32 and res.sample_stats["lp"].dtype == np.float32
    assert res.warmup.inverse_mass_matrix.dtype == np.float32
from pnmcmc.sampling.twins import TwinExpectation
# float32 twins: a run adapted in parallel windows is a statistical twin only (round-off amplified
# through the warmup); with both parameters fixed nothing is adapted, and the sampling chain decides.
assert adapted.twins.expectation == (TwinExpectation.STATISTICAL,) * 2, adapted.twins.describe()
assert all(r.startswith("float32") for r in adapted.twins.reasons), adapted.twins.describe()
assert adapted.warmup.sensitivity is None  # no shadow where the verdict is known
assert not any("warmup" in r for r in par.twins.reasons), par.twins.describe()
print("DIFF", float(np.max(np.abs(np.asarray(par.positions) - np.asarray(seq.positions)))))
"""


def test_float32_follows_the_model_dtype():
    """Without x64 (a fresh process: the test session has it on) everything stays float32."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "JAX_ENABLE_X64": "0"}
    out = subprocess.run(
        [sys.executable, "-c", FLOAT32_SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    diff = float(out.stdout.split("DIFF")[1])
    # With fixed parameters the float32 chains agree to the solver tolerance (2e-6 relative, a
    # little amplified along the chain). With adaptation they agree only statistically: a float32
    # round-off can flip a bisection or accept decision of the warmup.
    assert diff < 1e-3


def test_demo_prints_the_comparison(twins, monkeypatch, capsys):
    """`python -m pnmcmc` (pnmcmc.demo.main); the sampling itself is replaced by the twins above."""
    import pnmcmc.sampling.sample
    from pnmcmc.demo import main

    monkeypatch.setattr(pnmcmc.sampling.sample, "parallel_sample", lambda *a, **k: twins[0])
    monkeypatch.setattr(pnmcmc.sampling.sample, "sequential_sample", lambda *a, **k: twins[1])
    main(["--steps", "150", "--chains", "2"])
    out = capsys.readouterr().out
    assert "largest |parallel - sequential|" in out and "Newton iterations per chain" in out
    assert "Lyapunov" in out and "sequential (lax.scan)" in out and "theta[7]" in out
    assert "convergence: CHECKS FAILED (2 chains x 150 draws)" in out  # printed once, not warned


def test_nuts_is_the_default_kernel_and_dense_mass_is_off():
    import inspect

    parameters = inspect.signature(parallel_sample).parameters
    assert parameters["kernel"].default == "nuts" and parameters["dense_mass"].default is False
    # sequential_sample is parallel_sample with solver=Sequential(): the same options and defaults
    from pnmcmc.sampling.sample import _SEQUENTIAL_OPTIONS

    assert set(_SEQUENTIAL_OPTIONS) == set(parameters) - {"model", "n_steps", "solver"}
    with pytest.raises(TypeError, match="takes no solver"):
        sequential_sample(SCHOOLS.model, 10, solver="deer")


@pytest.fixture
def nothing_compiled(monkeypatch):
    def fail(self, *args):
        raise AssertionError("a program was compiled before the input was rejected")

    monkeypatch.setattr(pnmcmc.sampling.chains.Compiled, "__call__", fail)


NOT_DEFINITE = np.eye(10) - 2 * np.eye(10)[0:1].T @ np.eye(10)[0:1]  # eigenvalue -1
SKEWED = np.eye(10) + np.triu(np.full((10, 10), 0.1), 1)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"inverse_mass_matrix": np.ones(11)}, ValueError, r"shape \(D,\) = \(10,\) or a dense matrix"),
        ({"inverse_mass_matrix": np.ones((10, 9))}, ValueError, r"\(D, D\) = \(10, 10\)"),
        (
            {"inverse_mass_matrix": NOT_DEFINITE},
            ValueError,
            r"positive definite \(its smallest eigenvalue is -1",
        ),
        ({"inverse_mass_matrix": SKEWED}, ValueError, "must be symmetric"),
        ({"inverse_mass_matrix": -np.ones(10)}, ValueError, "entries > 0"),
        ({"inverse_mass_matrix": np.ones(10), "dense_mass": True}, ValueError, "shape of a diagonal"),
        ({"dense_mass": "yes"}, TypeError, "dense_mass must be True or False"),
        ({"kernel": MALA(0.1, np.eye(10) + 0.5)}, ValueError, "dense .D, D. but dense_mass=False"),
    ],
    ids=[
        "length",
        "not-square",
        "not-definite",
        "not-symmetric",
        "negative",
        "diag-but-dense",
        "flag",
        "kernel",
    ],
)
def test_mass_matrix_errors_come_before_compiling(nothing_compiled, kwargs, error, match):
    with pytest.raises(error, match=match):
        parallel_sample(SCHOOLS.model, 10, **{**SMALL, **kwargs})


def correlated(y=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([3]))
    numpyro.sample(
        "y", dist.Normal(jnp.array([[1.0, 0.0, 0.0], [0.9, 0.4, 0.0], [0.2, -0.5, 0.8]]) @ z, 0.3), obs=y
    )


def test_fixed_dense_inverse_mass_matrix_twins():
    """A fixed (D, D) matrix is used as given (no dense_mass needed) and parallel equals sequential."""
    imm = np.array([[0.5, -0.2, 0.1], [-0.2, 0.4, 0.0], [0.1, 0.0, 0.3]])
    data = {"y": jnp.array([0.5, 1.0, -0.3])}
    options = dict(
        model_kwargs=data, kernel="mala", num_chains=2, num_warmup=30, rng_key=1, inverse_mass_matrix=imm,
        progress_bar=False,
    )  # fmt: skip
    with warnings.catch_warnings():  # 30 steps: one chain mildly expanding (LLE ~0.07), warned
        warnings.simplefilter("ignore", pnmcmc.ExpandingDynamicsWarning)
        par = parallel_sample(correlated, 30, solver=pnmcmc.DEER(segment=8), **options)
    seq = sequential_sample(correlated, 30, **options)
    np.testing.assert_array_equal(par.sample_stats["inverse_mass_matrix"], np.broadcast_to(imm, (2, 3, 3)))
    assert np.asarray(par.kernel.inverse_mass_matrix.factor).shape == (2, 3, 3)  # factored once
    assert 0.2 < float(np.mean(np.asarray(par.sample_stats["accepted"]))) < 1.0
    assert_twins(par, seq)


@pytest.mark.slow
def test_dense_mass_fits_the_earnings_posterior():
    """earnings-logearn_height (intercept-slope correlation -0.999; a diagonal metric misses its sd
    by 25%) with NUTS and dense_mass=True: every mean within 0.15 reference sd, every sd within 20%."""
    from pnmcmc.models import posteriordb
    from pnmcmc.models.reference import check_reference

    post = posteriordb("earnings-logearn_height")
    res = sequential_sample(
        post.model, 300, model_kwargs=post.model_kwargs, num_warmup=300, num_chains=2, dense_mass=True,
        rng_key=0, progress_bar=False,
    )  # fmt: skip
    imm = np.asarray(res.warmup.inverse_mass_matrix)
    assert imm.shape == (2, 3, 3)
    assert np.all(imm[:, 0, 1] / np.sqrt(imm[:, 0, 0] * imm[:, 1, 1]) < -0.5)  # the correlation, learnt
    check = check_reference(post, res.get_samples(group_by_chain=True))
    for name, column in check.columns.items():
        assert abs(column.mean - column.reference_mean) <= 0.15 * column.reference_sd, (
            name,
            check.describe(),
        )
        assert abs(column.sd_error) <= 0.2, (name, check.describe())
