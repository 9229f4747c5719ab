"""Tests with power for the solvers: known answers that a broken solver cannot meet.

The exactness front makes every solver converge within T iterations whatever its update does, so
"converged and equal to lax.scan" alone cannot tell a solver from none. Here every parallel solver
must meet a known-answer iteration bound, with nothing finished sequentially and the solve not
front-limited; `test_a_no_op_update_fails_the_known_answer_checks` breaks every solver's update on
purpose and requires those checks to fail, so the suite itself shows that they have power.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_solve import sequential, tanh_rnn

import pnmcmc as pn
from pnmcmc import targets
from pnmcmc.kernels import MALA


def assert_solved_by_its_iterations(sol, bound):
    """The solve converged within `bound` iterations by its own updates: nothing was finished
    sequentially and the exactness front was not what certified the chain."""
    assert int(sol.status) == pn.Status.CONVERGED, sol.describe()
    assert int(sol.sequential_steps) == 0, sol.describe()
    assert not bool(sol.front_limited), sol.describe()
    assert int(sol.num_iterations) <= bound, f"{sol.describe()}; bound {bound}"


@functools.cache
def linear(kind):
    """x_t = A x_{t-1} + xi_t with ||A|| < 1: dense A, diagonal A, or A = I (a random walk)."""
    d, n = 4, 512
    if kind == "dense":
        a = jax.random.normal(jax.random.key(3), (d, d))
        a = 0.8 * a / jnp.linalg.norm(a, 2)
    elif kind == "diagonal":
        a = jnp.diag(jnp.array([0.9, -0.5, 0.3, 0.99]))
    elif kind == "half":
        a = 0.5 * jnp.eye(d)
    else:
        a = jnp.eye(d)
    noise = jax.random.normal(jax.random.key(4), (n, d))
    return (lambda x, xi: a @ x + xi), jnp.zeros(d), noise


@functools.cache
def rnn():
    return tanh_rnn(3, 2048)


# (solver, problem, iteration bound). Newton on an affine chain, quasi-Newton on a diagonal one and
# Picard on a random walk are exact in one update; Jacobi on x_t = x_{t-1} / 2 + xi_t needs about
# log2 of the initial error over the tolerance (~37 sweeps; ~5 on 8-step segments); on the
# contracting tanh RNN the bounds are the measured counts with some room (DEER 5, QuasiDEER 20,
# QuasiDEER(probes=2) 26, QuasiELK(probes=1) 41, Jacobi 26, on 16-step segments 2).
KNOWN_ANSWERS = [
    (pn.DEER(), "dense", 1),
    (pn.ELK(), "dense", 1),
    (pn.DEER(segment=8), "dense", 1),
    (pn.ELK(segment=8), "dense", 1),
    (pn.DEER(window=128), "dense", 8),
    (pn.QuasiDEER(), "diagonal", 1),
    (pn.QuasiDEER(probes=1), "diagonal", 1),
    (pn.QuasiELK(), "diagonal", 1),
    (pn.QuasiELK(probes=3), "diagonal", 1),
    (pn.QuasiDEER(segment=8), "diagonal", 1),
    (pn.Picard(), "identity", 1),
    (pn.Picard(segment=4), "identity", 1),
    (pn.Jacobi(), "half", 45),
    (pn.Jacobi(segment=8), "half", 8),
    (pn.DEER(), "rnn", 6),
    (pn.ELK(), "rnn", 6),
    (pn.QuasiDEER(), "rnn", 25),
    (pn.QuasiDEER(probes=2), "rnn", 32),
    (pn.QuasiELK(), "rnn", 25),
    (pn.QuasiELK(probes=1), "rnn", 50),
    (pn.Jacobi(), "rnn", 32),
    (pn.DEER(segment=16), "rnn", 3),
    (pn.QuasiDEER(segment=16), "rnn", 3),
    (pn.Jacobi(segment=16), "rnn", 3),
    (pn.ELK(segment=8), "rnn", 4),
]


def _problem(name):
    return rnn() if name == "rnn" else linear(name)


@pytest.mark.parametrize("solver, problem, bound", KNOWN_ANSWERS, ids=lambda v: getattr(v, "name", str(v)))
def test_known_answer_iteration_bounds(solver, problem, bound):
    step, x0, noise = _problem(problem)
    sol = pn.solve(step, x0, noise, solver)
    assert_solved_by_its_iterations(sol, bound)
    np.testing.assert_allclose(sol.trajectory, sequential(step, x0, noise), rtol=0, atol=1e-10)
    assert float(pn.certificate(step, x0, noise, sol, solver)) <= 1.0


def no_op(solver):
    """The same solver with an update that returns the iterate unchanged: only the exactness front
    moves the solve forward."""

    def update(self, traj, r, jac, state, residual_fn, free, linear=None):
        return traj, state

    broken = type(f"NoOp{type(solver).__name__}", (type(solver),), {"update": update})
    return broken(**{f.name: getattr(solver, f.name) for f in dataclasses.fields(solver) if f.init})


# One case per solver class and per structural option (segments, windows); linear problems, whose
# T = 512 front-paced iterations are cheap.
MUTATED = [case for case in KNOWN_ANSWERS if case[1] != "rnn"]


@pytest.mark.parametrize("solver, problem, bound", MUTATED, ids=lambda v: getattr(v, "name", str(v)))
def test_a_no_op_update_fails_the_known_answer_checks(solver, problem, bound):
    """Mutation check: with its update replaced by a no-op, every solver still 'converges' (the
    front certifies one element per iteration) to the exact chain, and the checks above catch it:
    the solve is front-limited, warns, and exceeds the known-answer bound."""
    step, x0, noise = _problem(problem)
    # The random walk (Picard's problem) does not contract, so there the warning says "expanding".
    with pytest.warns((pn.FrontLimitedWarning, pn.ExpandingDynamicsWarning), match="exactness front"):
        sol = pn.solve(step, x0, noise, no_op(solver))
    assert bool(sol.front_limited)
    np.testing.assert_allclose(sol.trajectory, sequential(step, x0, noise), rtol=0, atol=1e-10)
    with pytest.raises(AssertionError):
        assert_solved_by_its_iterations(sol, bound)


def test_jacobi_on_segments_on_a_mala_chain_is_front_limited_and_says_so():
    """MALA on the correlated 10-D Gaussian: Jacobi on 16-step segments advances only by the front
    (T/16 iterations, sequential work at parallel cost); it must not pass for a parallel success."""
    target, kernel = targets.correlated_gaussian(), MALA(0.05)
    n = 16 * 64
    noise = kernel.noise(jax.random.key(2), n, target.dim, jnp.float64)
    x0 = jnp.zeros(target.dim)
    step = functools.partial(kernel.step, target.logdensity)
    with pytest.warns(pn.FrontLimitedWarning, match="contracts"):
        sol = pn.solve(step, x0, noise, pn.Jacobi(segment=16))
    assert bool(sol.front_limited) and int(sol.status) == pn.Status.CONVERGED
    assert int(sol.num_iterations) >= n // 16 // 2
    np.testing.assert_allclose(sol.trajectory, sequential(step, x0, noise), atol=1e-10)
    quick = pn.solve(step, x0, noise, pn.DEER(segment=16))  # Newton makes progress of its own
    assert not bool(quick.front_limited)


@pytest.mark.parametrize("solver", [pn.DEER(), pn.DEER(segment=16), pn.Jacobi()], ids=lambda s: s.name)
def test_an_expanding_chain_warns_from_solve(solver):
    """The logistic map x -> 4x(1-x) (Lyapunov exponent ln 2): every parallel solver is paced by
    the front, and `solve` itself says the chain is expanding; the answer is still the chain."""

    def step(x, xi):
        return 4.0 * x * (1.0 - x)

    x0, noise = jnp.array([0.3]), jnp.zeros((512, 0))
    with pytest.warns(pn.ExpandingDynamicsWarning, match="not contracting"):
        sol = pn.solve(step, x0, noise, solver)
    assert bool(sol.front_limited) and int(sol.status) == pn.Status.CONVERGED
    np.testing.assert_array_equal(sol.trajectory, sequential(step, x0, noise))


@pytest.mark.parametrize(
    "solver",
    [pn.DEER(), pn.DEER(segment=8), pn.Jacobi(segment=8), pn.QuasiELK(segment=8)],
    ids=lambda s: s.name,
)
def test_a_nan_inside_a_segment_is_nonfinite_even_when_the_step_recovers(solver):
    """A step that maps NaN back to a number: the segment map is finite, a state inside is not.
    The status is decided on every state, so this is NONFINITE, never CONVERGED."""
    n, d = 100, 2

    def step(x, xi):
        value, poison = xi
        fresh = jnp.where(jnp.isnan(x), 0.0, 0.5 * jnp.tanh(x) + value)
        return jnp.where(poison, jnp.nan, fresh)

    noise = (jax.random.normal(jax.random.key(0), (n, d)), jnp.arange(n) == 42)
    with pytest.warns(pn.NonFiniteChainWarning):
        sol = pn.solve(step, jnp.zeros(d), noise, solver)
    assert int(sol.status) == pn.Status.NONFINITE, sol.describe()
    assert np.isnan(float(sol.residual)) and not bool(sol.exact)
    with pytest.warns(pn.NonFiniteChainWarning):
        want = sequential(step, jnp.zeros(d), noise)
    np.testing.assert_allclose(sol.trajectory[:42], want[:42], atol=1e-12)
    assert np.all(np.isnan(sol.trajectory[42]))
