"""Segments (multiple shooting): every parallel solver with `segment=m` is still the sequential chain.

Random nonlinear chains (tanh RNNs) of lengths that m does and does not divide, float64 and
float32, plus the engine's guarantees carried over to segments: the certificate, the exactness
front (m steps per iteration), the sequential fallback, windows, vmap and the progress callback
(a non-finite chain on segments is a case of test_solve.py's NaN test). The kernels (MALA, HMC,
NUTS) with segments are in test_kernels_solvers.py.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_solve import _name, sequential, tanh_rnn

import pnmcmc as pn
from pnmcmc import targets
from pnmcmc.kernels import HMC

SOLVERS = [
    pn.Jacobi(segment=4),
    pn.DEER(segment=4),
    pn.QuasiDEER(segment=5),
    pn.QuasiDEER(probes=2, segment=8),
    pn.ELK(segment=4),
    pn.QuasiELK(segment=6),
]


@pytest.mark.parametrize("solver", SOLVERS, ids=_name)
@pytest.mark.parametrize("n, d", [(1, 2), (3, 1), (97, 3), (256, 2)])
def test_matches_lax_scan_float64(solver, n, d):
    step, x0, noise = tanh_rnn(d, n)
    sol = pn.solve(step, x0, noise, solver)
    assert sol.trajectory.shape == (n, d)
    assert int(sol.status) == pn.Status.CONVERGED, sol.describe()
    assert int(sol.sequential_steps) == 0
    assert 0 <= float(sol.residual) <= 1
    assert int(sol.num_iterations) <= -(-n // solver.segment)  # the front: m steps per iteration
    np.testing.assert_allclose(sol.trajectory, sequential(step, x0, noise), rtol=0, atol=1e-10)


@pytest.mark.parametrize("solver", [pn.DEER(segment=8), pn.QuasiDEER(probes=1, segment=5)], ids=_name)
def test_matches_lax_scan_float32(solver):
    step, x0, noise = tanh_rnn(4, 203, dtype=jnp.float32)
    sol = pn.solve(step, x0, noise, solver)
    assert sol.trajectory.dtype == jnp.float32
    assert int(sol.status) == pn.Status.CONVERGED, sol.describe()
    assert 0 <= float(sol.residual) <= 1
    np.testing.assert_allclose(sol.trajectory, sequential(step, x0, noise), rtol=1e-5, atol=1e-5)


def test_certificate_is_the_per_step_residual():
    """Inside a segment the residual is 0; at its end it is what the solver certified."""
    step, x0, noise = tanh_rnn(3, 50, gain=0.9)
    solver = pn.DEER(segment=7, rtol=1e-6)  # loose, so that residuals are visible
    sol = pn.solve(step, x0, noise, solver)
    prev = jnp.concatenate([x0[None], sol.trajectory[:-1]])
    r = sol.trajectory - jax.vmap(step)(prev, noise)
    per_step = np.asarray(pn.engine.solution.scaled_residual(r, sol.trajectory, sol.scale, 1e-6, 0.0))
    ends = np.minimum(np.arange(1, 9) * 7, 50) - 1
    inside = np.setdiff1d(np.arange(50), ends)
    assert np.all(per_step[inside] == 0)
    assert float(sol.residual) <= 1
    np.testing.assert_allclose(per_step.max(), float(sol.residual), rtol=1e-6)
    assert float(pn.certificate(step, x0, noise, sol, solver)) == per_step.max()


def test_iteration_cap_counts_segments_and_finishes_sequentially():
    step, x0, noise = tanh_rnn(3, 200, gain=3.0)  # strongly nonlinear: no solver converges at once
    for k in (1, 3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pn.NotConvergedWarning)
            sol = pn.solve(step, x0, noise, pn.QuasiDEER(segment=16, max_iterations=k))
        assert int(sol.num_iterations) <= k
        assert int(sol.sequential_steps) <= 200 - 16 * k  # the front moved m steps per iteration
        np.testing.assert_allclose(sol.trajectory, sequential(step, x0, noise), atol=1e-10)
    with pytest.warns(pn.NotConvergedWarning):
        sol = pn.solve(step, x0, noise, pn.DEER(segment=16, max_iterations=1))
    assert int(sol.status) == pn.Status.MAX_ITERATIONS and int(sol.sequential_steps) > 0


def test_padding_never_reaches_past_the_chain():
    """T = 33 with m = 8: the padded steps of the last segment are masked, not evaluated on
    repeated noise; a step that would be NaN on that noise leaves the chain and status alone."""
    n = 33

    def step(x, xi):
        return jnp.where(xi[0] > 100, jnp.nan, 0.5 * jnp.tanh(x) + xi)

    noise = jnp.concatenate([0.3 * jax.random.normal(jax.random.key(1), (n - 1, 2)), jnp.full((1, 2), 0.1)])
    sol = pn.solve(step, jnp.zeros(2), noise, pn.DEER(segment=8))
    assert int(sol.status) == pn.Status.CONVERGED
    np.testing.assert_allclose(sol.trajectory, sequential(step, jnp.zeros(2), noise), atol=1e-12)


def test_window_segment_vmap_and_callback():
    step, x0, noise = tanh_rnn(3, 300, gain=0.9)
    want = sequential(step, x0, noise)
    windowed = pn.solve(step, x0, noise, pn.DEER(segment=5, window=64))  # window in steps
    np.testing.assert_allclose(windowed.trajectory, want, atol=1e-10)
    seen = []
    sol = pn.solve(step, x0, noise, pn.DEER(segment=6), callback=lambda k, c, r: seen.append(int(c)))
    np.testing.assert_allclose(sol.trajectory, want, atol=1e-10)
    assert seen[-1] == 300 and all(a <= b for a, b in zip(seen, seen[1:], strict=False))
    x0s = jax.random.normal(jax.random.key(5), (3, 3))
    noises = jnp.stack([noise, -noise, noise[::-1]])
    batch = jax.jit(jax.vmap(lambda x, e: pn.solve(step, x, e, pn.QuasiDEER(segment=6))))(x0s, noises)
    for i in range(3):
        np.testing.assert_allclose(batch.trajectory[i], sequential(step, x0s[i], noises[i]), atol=1e-10)


def test_segments_cut_iterations_on_a_metropolis_chain():
    """Banana HMC (the published configuration, T = 2000): the segment maps contract, so Newton
    needs several times fewer iterations, and the chain is the same."""
    target, kernel = targets.banana(), HMC(0.5, 8)
    x0 = jnp.array([3.0, 1.0])
    noise = kernel.noise(jax.random.key(0), 2000, 2, jnp.float64)

    def step(x, xi):
        return kernel.step(target.logdensity, x, xi)

    want = sequential(step, x0, noise)
    plain = pn.solve(step, x0, noise, pn.DEER())
    segmented = pn.solve(step, x0, noise, pn.DEER(segment=16))
    np.testing.assert_allclose(segmented.trajectory, want, atol=1e-8)
    assert 3 * int(segmented.num_iterations) < int(plain.num_iterations)


@pytest.mark.parametrize("segment", [0, -2, 1.5, True, None])
def test_bad_segment(segment):
    with pytest.raises(ValueError, match="segment must be an int >= 1"):
        pn.DEER(segment=segment)
