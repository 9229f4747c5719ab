"""Every solver against lax.scan on random nonlinear chains, plus the engine's guarantees."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pnmcmc as pn

UNDAMPED = [pn.Jacobi(), pn.Picard(), pn.DEER(), pn.QuasiDEER(), pn.QuasiDEER(probes=2)]
DAMPED = [pn.ELK(), pn.QuasiELK(), pn.QuasiELK(probes=1)]
SOLVERS = UNDAMPED + DAMPED
# Picard's identity Jacobian is a model of near-identity steps only: on the tanh RNN it is paced by
# the exactness front (and says so); tests/test_progress.py solves a random walk with it.
RNN_SOLVERS = [s for s in SOLVERS if not isinstance(s, pn.Picard)]


def _name(solver):
    return repr(solver).replace(" ", "")


def tanh_rnn(d, n, gain=0.5, dtype=jnp.float64, seed=0):
    """x_t = tanh(W x_{t-1} + xi_t) with random W of spectral scale `gain` (contracting for < 1)."""
    kw, kx, kn = jax.random.split(jax.random.key(seed), 3)
    w = (gain * jax.random.normal(kw, (d, d)) / np.sqrt(d)).astype(dtype)

    def step(x, xi):
        return jnp.tanh(w @ x + xi)

    x0 = jax.random.normal(kx, (d,), dtype)
    noise = jax.random.normal(kn, (n, d), dtype)
    return step, x0, noise


def sequential(step, x0, noise):
    return pn.solve(step, x0, noise, pn.Sequential()).trajectory


# Every T and every D of the grid occurs for every solver, with the expensive pairs kept few.
SHAPES = [(1, 3), (2, 1), (7, 16), (257, 3), (4096, 1)]


@pytest.mark.parametrize("solver", RNN_SOLVERS, ids=_name)
@pytest.mark.parametrize("n, d", SHAPES)
def test_matches_lax_scan_float64(solver, n, d):
    step, x0, noise = tanh_rnn(d, n)
    sol = pn.solve(step, x0, noise, solver)
    assert int(sol.status) == pn.Status.CONVERGED, sol.describe()
    assert int(sol.sequential_steps) == 0
    assert 0 <= float(sol.residual) <= 1
    assert int(sol.num_iterations) <= n  # the exactness front
    np.testing.assert_allclose(sol.trajectory, sequential(step, x0, noise), rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    "solver", [pn.Jacobi(), pn.DEER(), pn.QuasiDEER(probes=1), pn.ELK(), pn.QuasiELK()], ids=_name
)
@pytest.mark.parametrize("n, d", [(7, 3), (257, 16)])
def test_matches_lax_scan_float32(solver, n, d):
    step, x0, noise = tanh_rnn(d, n, dtype=jnp.float32)
    sol = pn.solve(step, x0, noise, solver)
    assert sol.trajectory.dtype == jnp.float32
    assert int(sol.status) == pn.Status.CONVERGED, sol.describe()
    assert 0 <= float(sol.residual) <= 1
    want = sequential(step, x0, noise)
    np.testing.assert_allclose(sol.trajectory, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("solver", SOLVERS, ids=_name)
def test_exactness_front(solver):
    """After k iterations at least the first k steps are certified, for every solver."""
    step, x0, noise = tanh_rnn(3, 64, gain=3.0)  # strongly nonlinear: no solver converges at once
    for k in (1, 5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pn.NotConvergedWarning)
            sol = pn.solve(step, x0, noise, type(solver)(**{**solver.__dict__, "max_iterations": k}))
        assert int(sol.num_iterations) <= k
        assert int(sol.sequential_steps) <= 64 - k
        # The sequentially finished suffix makes the result exact whatever the status.
        np.testing.assert_allclose(sol.trajectory, sequential(step, x0, noise), atol=1e-10)


def test_iteration_cap_finishes_sequentially_and_warns():
    step, x0, noise = tanh_rnn(3, 200, gain=3.0)
    with pytest.warns(pn.NotConvergedWarning, match="max_iterations"):
        sol = pn.solve(step, x0, noise, pn.QuasiDEER(max_iterations=2))
    assert int(sol.status) == pn.Status.MAX_ITERATIONS
    assert int(sol.sequential_steps) > 0
    assert float(sol.residual) <= 1
    np.testing.assert_allclose(sol.trajectory, sequential(step, x0, noise), atol=1e-12)


@pytest.mark.parametrize(
    "solver",
    [pn.Sequential(), pn.Jacobi(), pn.DEER(), pn.ELK(), pn.QuasiELK(), pn.DEER(segment=8)],
    ids=_name,
)
def test_nan_midway_is_nonfinite_not_converged(solver):
    """A map that returns NaN at step 40 gives status NONFINITE, never a converged answer."""
    n, d = 100, 2

    def step(x, xi):
        value, poison = xi
        return jnp.where(poison, jnp.nan, 0.5 * jnp.tanh(x) + value)

    noise = (jax.random.normal(jax.random.key(0), (n, d)), jnp.arange(n) == 40)
    with pytest.warns(pn.NonFiniteChainWarning):
        sol = pn.solve(step, jnp.zeros(d), noise, solver)
    with pytest.warns(pn.NonFiniteChainWarning):
        want = sequential(step, jnp.zeros(d), noise)
    assert int(sol.status) == pn.Status.NONFINITE
    assert np.isnan(float(sol.residual))
    assert not bool(sol.converged) and not bool(sol.exact)
    np.testing.assert_allclose(sol.trajectory[:40], want[:40], atol=1e-12)
    assert np.all(np.isnan(sol.trajectory[40:]))


def test_overflow_beyond_the_front_restarts_instead_of_failing():
    """Undamped Newton overshoots on an expanding map; the chain is finite, so is the answer."""
    step, x0, noise = tanh_rnn(4, 300, gain=2.5)
    sol = pn.solve(step, x0, noise, pn.DEER())
    assert int(sol.status) == pn.Status.CONVERGED
    np.testing.assert_allclose(sol.trajectory, sequential(step, x0, noise), atol=1e-9)


@pytest.mark.parametrize(
    "solver", [pn.DEER(window=32), pn.QuasiDEER(window=50), pn.ELK(window=64)], ids=_name
)
def test_sliding_window_equals_whole_solve(solver):
    step, x0, noise = tanh_rnn(3, 300, gain=0.9)
    whole = pn.solve(step, x0, noise, type(solver)())
    windowed = pn.solve(step, x0, noise, solver)
    assert int(windowed.status) == pn.Status.CONVERGED
    np.testing.assert_allclose(windowed.trajectory, whole.trajectory, atol=1e-10)
    np.testing.assert_allclose(windowed.trajectory, sequential(step, x0, noise), atol=1e-10)


@pytest.mark.parametrize("solver", [pn.Sequential(), pn.DEER(), pn.QuasiELK(probes=1)], ids=_name)
def test_vmap_over_chains_equals_separate_solves(solver):
    step, _, noise = tanh_rnn(3, 50)
    x0s = jax.random.normal(jax.random.key(5), (4, 3))
    noises = jnp.stack([noise, -noise, 2 * noise, noise[::-1]])
    batch = jax.jit(jax.vmap(lambda x, e: pn.solve(step, x, e, solver)))(x0s, noises)
    assert batch.trajectory.shape == (4, 50, 3)
    for i in range(4):
        one = pn.solve(step, x0s[i], noises[i], solver)
        np.testing.assert_allclose(batch.trajectory[i], one.trajectory, atol=1e-12)
        assert int(batch.num_iterations[i]) == int(one.num_iterations)


def test_elk_converges_where_undamped_deer_struggles():
    """A sharp, saturating map: Newton's linearisation at a wrong iterate is steep and
    overshoots; the adaptive trust region keeps the steps where they help."""
    n = 400

    def step(x, xi):
        return xi + 0.6 * jnp.tanh(8.0 * x)

    noise = 0.3 * jax.random.normal(jax.random.key(3), (n, 1))
    x0 = jnp.full((1,), 0.3)
    deer = pn.solve(step, x0, noise, pn.DEER())
    elk = pn.solve(step, x0, noise, pn.ELK())
    want = sequential(step, x0, noise)
    np.testing.assert_allclose(elk.trajectory, want, atol=1e-10)
    assert int(elk.status) == pn.Status.CONVERGED
    assert int(elk.num_iterations) < n
    assert int(deer.num_iterations) < n


def test_fixed_damping_is_accepted_and_exact():
    step, x0, noise = tanh_rnn(2, 100)
    sol = pn.solve(step, x0, noise, pn.QuasiELK(damping=0.1))
    np.testing.assert_allclose(sol.trajectory, sequential(step, x0, noise), atol=1e-10)


def test_callback_reports_progress_without_changing_the_result():
    step, x0, noise = tanh_rnn(3, 100)
    seen = []
    with_cb = pn.solve(
        step, x0, noise, pn.QuasiDEER(), callback=lambda k, c, r: seen.append((int(k), int(c)))
    )
    without = pn.solve(step, x0, noise, pn.QuasiDEER())
    np.testing.assert_array_equal(with_cb.trajectory, without.trajectory)
    assert [k for k, _ in seen] == list(range(int(without.num_iterations) + 1))
    assert seen[-1][1] == 100 and all(a[1] <= b[1] for a, b in zip(seen, seen[1:], strict=False))


def test_pytree_noise_and_recurrence_without_noise():
    def step(x, xi):
        return 0.5 * x + xi["a"] * xi["b"]

    noise = {"a": jnp.ones((10, 2)), "b": jnp.arange(10.0)[:, None] * jnp.ones((10, 2))}
    sol = pn.solve(step, jnp.zeros(2), noise)
    np.testing.assert_allclose(sol.trajectory, sequential(step, jnp.zeros(2), noise), atol=1e-12)
    sol = pn.solve(lambda x, xi: 0.9 * x, jnp.ones(1), jnp.zeros((20, 0)))
    np.testing.assert_allclose(sol.trajectory[:, 0], 0.9 ** jnp.arange(1, 21), rtol=1e-12)


def test_linear_chain_known_answer():
    """x_t = a x_{t-1} + 1 has the closed form x_t = a^t x_0 + (1 - a^t) / (1 - a)."""
    a, n = 0.8, 50
    sol = pn.solve(lambda x, xi: a * x + xi, jnp.array([2.0]), jnp.ones((n, 1)), pn.DEER())
    t = jnp.arange(1, n + 1)
    np.testing.assert_allclose(sol.trajectory[:, 0], a**t * 2.0 + (1 - a**t) / (1 - a), rtol=1e-12)
    assert int(sol.num_iterations) == 1  # Newton is exact on an affine chain


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(step=1), "step must be a function"),
        (dict(x0=jnp.zeros((2, 2))), "flat vector"),
        (dict(x0=jnp.zeros(2, jnp.int32)), "floating-point"),
        (dict(noise=jnp.zeros((0, 2))), "T = 0"),
        (dict(noise={"a": jnp.zeros((3, 2)), "b": jnp.zeros((4, 2))}), "same leading axis"),
        (dict(step=lambda x, xi: x[:1]), "must return an array like x0"),
        (dict(solver="deer"), "solver must be a pnmcmc solver object"),
        (dict(init=jnp.zeros((3, 2))), "init must have shape"),
    ],
)
def test_bad_input_errors_say_what_to_do(bad, match):
    args = dict(step=lambda x, xi: 0.5 * x + xi, x0=jnp.zeros(2), noise=jnp.zeros((5, 2)), solver=pn.DEER())
    args.update(bad)
    init = args.pop("init", None)
    with pytest.raises((TypeError, ValueError), match=match):
        pn.solve(args["step"], args["x0"], args["noise"], args["solver"], init=init)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: pn.DEER(rtol=-1.0), "rtol must be a number >= 0"),
        (lambda: pn.DEER(rtol=0.0, atol=0.0), "cannot both be 0"),
        (lambda: pn.DEER(max_iterations=1.5), "max_iterations"),
        (lambda: pn.DEER(window=0), "window"),
        (lambda: pn.ELK(damping=-1.0), "damping"),
        (lambda: pn.QuasiDEER(probes=0), "probes"),
        (lambda: pn.DEER(max_norm=0.0), "max_norm must be a number > 0 or None"),
        (lambda: pn.QuasiELK(max_norm=-1.0), "max_norm"),
    ],
)
def test_bad_solver_settings(make, match):
    with pytest.raises(ValueError, match=match):
        make().jacobian  # noqa: B018 - building the Jacobian object validates `probes`


def test_undamped_elk_is_deer_and_solver_overflow_is_not_a_nonfinite_chain():
    """Regression: far from the converged front the undamped Kalman covariances (bare products of
    Jacobians) overflowed on a Metropolis chain, and the NaN iterate was taken for a non-finite
    chain. ELK(damping=0) must be DEER, and every trust-region variant must converge exactly."""
    from functools import partial

    from pnmcmc.kernels import MALA
    from pnmcmc.targets import gaussian_mixture

    target, kernel = gaussian_mixture(), MALA(0.5)
    noise = kernel.noise(jax.random.key(1), 300, 2, jnp.float64)
    x0 = jax.random.normal(jax.random.key(0), (2,), jnp.float64)
    step = partial(kernel.step, target.logdensity)
    reference = pn.solve(step, x0, noise, pn.Sequential()).trajectory
    deer = pn.solve(step, x0, noise, pn.DEER())
    for solver in (pn.ELK(damping=0.0), pn.ELK(), pn.QuasiELK()):
        sol = pn.solve(step, x0, noise, solver)
        assert int(sol.status) == pn.Status.CONVERGED, solver
        np.testing.assert_allclose(sol.trajectory, reference, atol=1e-8)
    undamped = pn.solve(step, x0, noise, pn.ELK(damping=0.0))
    assert int(undamped.num_iterations) == int(deer.num_iterations)


def test_jacobian_bound_known_answers():
    """Spectral norms above the bound are scaled down to it, the rest untouched; a diagonal is
    clipped entrywise. The symmetric pattern checks that power iteration does not start
    orthogonal to the top singular vector."""
    from pnmcmc.engine.jacobians import _bound_dense, _bound_diagonal

    rotation = jnp.array([[0.0, -3.0], [3.0, 0.0]])  # norm 3
    pattern = jnp.array([[1.0, -1.0], [-1.0, 1.0]])  # norm 2, top singular vector (1, -1)
    small = jnp.array([[0.5, 0.2], [0.0, 0.3]])
    huge = jnp.array([[1e200, 0.0], [0.0, 1.0]])
    jac = jnp.stack([rotation, pattern, small, jnp.zeros((2, 2)), huge])
    out = _bound_dense(jac, 1.0)
    norms = np.linalg.norm(np.asarray(out), ord=2, axis=(1, 2))
    np.testing.assert_allclose(norms[np.array([0, 1, 4])], 1.0, rtol=1e-6)
    np.testing.assert_allclose(out[0], rotation / 3.0, rtol=1e-6)
    np.testing.assert_array_equal(out[2], small)
    np.testing.assert_array_equal(out[3], 0.0)
    assert _bound_dense(jac, None) is jac
    clipped = np.asarray(_bound_diagonal(jnp.array([-2.0, 0.5, jnp.nan, 3.0]), 1.0))
    np.testing.assert_array_equal(clipped[np.array([0, 1, 3])], [-1.0, 0.5, 1.0])
    assert np.isnan(_bound_diagonal(jnp.array([jnp.nan]), 1.0)[0])  # NaN is never repaired


def test_non_expansive_bound_cuts_iterations_on_a_metropolis_chain():
    """Banana HMC from the published start (10 N(0, I)): exact Newton is amplified along the chain
    by Jacobians of norm > 1; the default bound (max_norm=1) needs far fewer iterations, and both
    are the sequential chain. On a contracting smooth chain the bound changes nothing."""
    from functools import partial

    from pnmcmc.kernels import HMC
    from pnmcmc.targets import banana

    target, kernel = banana(), HMC(0.5, 8)
    n = 600
    noise = kernel.noise(jax.random.key(1), n, 2, jnp.float64)
    x0 = 10.0 * jax.random.normal(jax.random.key(0), (2,), jnp.float64)
    step = partial(kernel.step, target.logdensity)
    reference = pn.solve(step, x0, noise, pn.Sequential()).trajectory
    bounded = pn.solve(step, x0, noise, pn.DEER())
    exact = pn.solve(step, x0, noise, pn.DEER(max_norm=None))
    for sol in (bounded, exact):
        assert int(sol.status) == pn.Status.CONVERGED
        np.testing.assert_allclose(sol.trajectory, reference, atol=1e-8)
    assert 2 * int(bounded.num_iterations) < int(exact.num_iterations)

    step, x0, noise = tanh_rnn(4, 500)
    a = pn.solve(step, x0, noise, pn.DEER())
    b = pn.solve(step, x0, noise, pn.DEER(max_norm=None))
    assert int(a.num_iterations) == int(b.num_iterations)
    np.testing.assert_array_equal(a.trajectory, b.trajectory)
