"""The tolerance means the same thing at every scale and dtype (relative to the chain's own scale).

Rescaling a chain (x -> c x) must change no decision of the solver: the same iterations, the same
relative accuracy. float32 runs with x64 off, as float32 users run it, in a subprocess (the test
session has x64 on).
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_solve import tanh_rnn

import pnmcmc as pn

SCALES = (1e-7, 1.0, 1e7)

FLOAT32 = textwrap.dedent(
    """
    import json, jax, jax.numpy as jnp
    import pnmcmc as pn
    assert not jax.config.jax_enable_x64
    w = 0.5 * jax.random.normal(jax.random.key(0), (4, 4)) / 2
    noise = jax.random.normal(jax.random.key(1), (300, 4))
    out = []
    for c in SCALES:
        def step(x, xi, c=c):
            return c * jnp.tanh(w @ (x / c) + xi)
        x0 = jnp.zeros(4)
        want = pn.solve(step, x0, noise, pn.Sequential()).trajectory
        for solver in (pn.DEER(), pn.Jacobi(), pn.QuasiDEER(), pn.DEER(segment=8)):
            sol = pn.solve(step, x0, noise, solver)
            assert sol.trajectory.dtype == jnp.float32
            error = float(jnp.max(jnp.abs(sol.trajectory - want)) / c)
            out.append([c, solver.name, int(sol.status), int(sol.num_iterations), error])
    print(json.dumps(out))
    """
).replace("SCALES", repr(SCALES))


def test_float32_decisions_do_not_depend_on_the_scale():
    """x0 = 0 and states ~1e-7: an absolute tolerance would certify the all-zero initial guess
    after 0 iterations (100% error); relative to the chain's scale the solve is the same at 1e-7,
    1 and 1e7."""
    env = {**os.environ, "JAX_ENABLE_X64": "0"}
    command = [sys.executable, "-c", FLOAT32]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    by_solver = {}
    for c, name, status, iterations, error in rows:
        assert status == pn.Status.CONVERGED, (c, name)
        assert iterations >= 1, (c, name)  # the initial guess is never certified as it stands
        assert error <= 1e-5, (c, name, error)
        by_solver.setdefault(name, []).append(iterations)
    for name, counts in by_solver.items():
        assert max(counts) - min(counts) <= 1, (name, counts)


@pytest.mark.parametrize("solver", [pn.DEER(), pn.Jacobi(), pn.DEER(segment=8)], ids=lambda s: s.name)
def test_float64_at_tiny_scale_is_solved_not_assumed(solver):
    step1, x0, noise = tanh_rnn(3, 200)
    runs = []
    for c in (1e-12, 1.0):
        step = lambda x, xi, c=c: c * step1(x / c, xi)  # noqa: E731
        sol = pn.solve(step, jnp.zeros(3), noise, solver)
        want = pn.solve(step, jnp.zeros(3), noise, pn.Sequential()).trajectory
        assert int(sol.status) == pn.Status.CONVERGED and int(sol.num_iterations) >= 1
        np.testing.assert_allclose(sol.trajectory / c, want / c, rtol=0, atol=1e-9)
        runs.append(int(sol.num_iterations))
    assert abs(runs[0] - runs[1]) <= 1


def test_scale_and_certificate_are_reported_and_recomputable():
    """`Solution.scale` is the median one-step magnitude per coordinate, and `pnmcmc.certificate`
    recomputes the certificate from scratch; a coordinate of a different magnitude gets its own."""
    step1, x0, noise = tanh_rnn(2, 300)
    factors = jnp.array([1e-6, 1e4])

    def step(x, xi):
        return factors * step1(x / factors, xi)

    sol = pn.solve(step, x0 * factors, noise, pn.DEER(rtol=1e-6))
    first = jax.vmap(step)(jnp.broadcast_to(x0 * factors, (300, 2)), noise)
    np.testing.assert_allclose(sol.scale, np.median(np.abs(np.asarray(first)), axis=0), rtol=1e-12)
    assert float(pn.certificate(step, x0 * factors, noise, sol, pn.DEER(rtol=1e-6))) <= 1.0
    # Perturb one state by far more than its coordinate's tolerance: the recomputed certificate sees it.
    bad = type(sol)(**{**sol.__dict__, "trajectory": sol.trajectory.at[150, 0].add(1e-9)})
    assert float(pn.certificate(step, x0 * factors, noise, bad, pn.DEER(rtol=1e-6))) > 1.0


def test_default_tolerances_are_relative():
    assert pn.default_tolerances(jnp.float64) == (1e-11, 0.0)
    assert pn.default_tolerances(jnp.float32) == (2e-6, 0.0)
