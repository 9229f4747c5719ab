"""Kernels as deterministic maps: BlackJAX equivalence, the accept/reject Jacobian, pytrees, dtypes.

The solver grid (every parallel solver against the sequential chain) is in
`test_kernels_solvers.py`.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pnmcmc
from pnmcmc import targets
from pnmcmc.kernels import HMC, MALA, NUTS, BlackJAX, ExactJacobian, SigmoidJacobian, StepInfo


def _blackjax_chain(algorithm_kernel, init, logdensity_fn, x0, keys, **params):
    """BlackJAX's own loop: the state carries the log density and gradient between steps."""

    @jax.jit
    def run(x0, keys):
        def body(state, key):
            state, info = algorithm_kernel(key, state, logdensity_fn, **params)
            return state, (state.position, info)

        return jax.lax.scan(body, init(x0, logdensity_fn), keys)[1]

    return run(x0, keys)


def _chain(kernel, logdensity_fn, x0, noise):
    step = functools.partial(kernel.step, logdensity_fn)
    traj = pnmcmc.solve(step, x0, noise, pnmcmc.Sequential()).trajectory
    prev = jnp.concatenate([x0[None], traj[:-1]])
    info = jax.jit(jax.vmap(kernel.info, (None, 0, 0)), static_argnums=0)(logdensity_fn, prev, noise)
    return traj, info


# BlackJAX twins -----------------------------------------------------------------------------------


def test_mala_equals_blackjax_mala():
    target = targets.german_credit()
    key, n = jax.random.key(3), 300
    x0 = jnp.full(target.dim, 0.1)
    traj, info = _chain(MALA(0.0015), target.logdensity, x0, MALA(0.0015).noise(key, n, target.dim))
    ref, ref_info = _blackjax_chain(
        blackjax.mala.build_kernel(), blackjax.mala.init, target.logdensity, x0, jax.random.split(key, n),
        step_size=0.0015,
    )  # fmt: skip
    np.testing.assert_allclose(traj, ref, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(info.accepted, ref_info.is_accepted)
    np.testing.assert_allclose(info.acceptance_rate, ref_info.acceptance_rate, rtol=1e-10, atol=1e-12)
    assert 0.3 < float(info.accepted.mean()) < 1.0  # both branches exercised


@pytest.mark.parametrize("mass", [False, True], ids=["unit-mass", "diagonal-mass"])
def test_hmc_equals_blackjax_hmc(mass):
    target = targets.correlated_gaussian(5, 0.5)
    key, n = jax.random.key(4), 200
    x0 = jnp.full(target.dim, 1.5)
    inverse_mass = jnp.linspace(0.5, 2.0, target.dim) if mass else None
    kernel = HMC(0.4, 6, inverse_mass)
    traj, info = _chain(kernel, target.logdensity, x0, kernel.noise(key, n, target.dim))
    ref, ref_info = _blackjax_chain(
        blackjax.hmc.build_kernel(), blackjax.hmc.init, target.logdensity, x0, jax.random.split(key, n),
        step_size=0.4, inverse_mass_matrix=jnp.ones(target.dim) if inverse_mass is None else inverse_mass,
        num_integration_steps=6,
    )  # fmt: skip
    np.testing.assert_allclose(traj, ref, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(info.accepted, ref_info.is_accepted)
    np.testing.assert_array_equal(info.diverging, ref_info.is_divergent)
    np.testing.assert_allclose(info.acceptance_rate, ref_info.acceptance_rate, rtol=1e-10, atol=1e-12)
    # BlackJAX reports the proposal's energy; ours is the accepted state's: equal where accepted.
    acc = np.asarray(info.accepted)
    np.testing.assert_allclose(np.asarray(info.energy)[acc], np.asarray(ref_info.energy)[acc], rtol=1e-12)
    assert 0.3 < acc.mean() < 1.0
    assert np.all(np.asarray(info.num_integration_steps) == 6)


# A dense inverse mass matrix with strong correlations (not a diagonal in disguise).
DENSE = jnp.array([[0.8, 0.5, 0.0], [0.5, 1.5, -0.2], [0.0, -0.2, 0.4]])


def _correlated_logdensity(x):
    covariance = jnp.array([[1.0, 0.9, 0.1], [0.9, 2.0, -0.3], [0.1, -0.3, 0.5]])
    return -0.5 * x @ jnp.linalg.solve(covariance, x)


def test_dense_hmc_and_nuts_equal_blackjax():
    """HMC and NUTS with a dense inverse mass matrix are BlackJAX's dense Euclidean metric (our
    HMC factors it without LAPACK on the CPU, hence round-off rather than bit equality)."""
    key, n, x0 = jax.random.key(6), 80, jnp.array([0.5, -1.0, 0.3])
    kernel = HMC(0.9, 4, DENSE)
    traj, info = _chain(kernel, _correlated_logdensity, x0, kernel.noise(key, n, 3))
    ref, ref_info = _blackjax_chain(
        blackjax.hmc.build_kernel(), blackjax.hmc.init, _correlated_logdensity, x0, jax.random.split(key, n),
        step_size=0.9, inverse_mass_matrix=DENSE, num_integration_steps=4,
    )  # fmt: skip
    np.testing.assert_allclose(traj, ref, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(info.accepted, ref_info.is_accepted)
    assert 0.3 < float(np.mean(info.accepted)) < 1.0
    nuts = NUTS(0.3, DENSE)
    traj, info = _chain(nuts, _correlated_logdensity, x0, nuts.noise(key, n, 3))
    ref, ref_info = _blackjax_chain(
        blackjax.nuts.build_kernel(), blackjax.nuts.init, _correlated_logdensity, x0,
        jax.random.split(key, n), step_size=0.3, inverse_mass_matrix=DENSE,
    )  # fmt: skip
    np.testing.assert_allclose(traj, ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(info.acceptance_rate, ref_info.acceptance_rate, rtol=1e-10)


@pytest.mark.parametrize("kernel_cls", [MALA, HMC], ids=["mala", "hmc"])
def test_dense_metric_is_the_identity_metric_on_whitened_coordinates(kernel_cls):
    """With L L^T = m, the dense-metric chain is L times the identity-metric chain of y = L^-1 x on
    the target p(L y) (MALA has no BlackJAX counterpart with a matrix); and a diagonal matrix
    given densely is the diagonal path."""
    make = (lambda m: MALA(0.6, m)) if kernel_cls is MALA else (lambda m: HMC(0.9, 4, m))
    key, n, x0 = jax.random.key(7), 80, jnp.array([0.5, -1.0, 0.3])
    noise = make(None).noise(key, n, 3)
    factor = jnp.linalg.cholesky(DENSE)
    traj, info = _chain(make(DENSE), _correlated_logdensity, x0, noise)
    white, white_info = _chain(
        make(None), lambda y: _correlated_logdensity(factor @ y), jnp.linalg.solve(factor, x0), noise
    )
    np.testing.assert_allclose(traj, white @ factor.T, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(info.accepted, white_info.accepted)
    assert 0.2 < float(np.mean(info.accepted)) < 1.0
    diagonal = jnp.array([0.5, 2.0, 1.5])
    np.testing.assert_allclose(
        _chain(make(jnp.diag(diagonal)), _correlated_logdensity, x0, noise)[0],
        _chain(make(diagonal), _correlated_logdensity, x0, noise)[0],
        rtol=1e-13,
        atol=1e-13,
    )


def test_dense_metric_factors_without_lapack_on_cpu():
    """The factors are L (lower, L L^T = m) and L^-1, computed by the CPU branch (plain loops)."""
    from pnmcmc.kernels.base import dense_metric

    metric = jax.jit(lambda m: dense_metric(m, jnp.float64))(DENSE)
    np.testing.assert_allclose(metric.factor @ metric.factor.T, DENSE, atol=1e-14)
    np.testing.assert_allclose(metric.inverse_factor @ metric.factor, np.eye(3), atol=1e-14)
    assert np.all(np.triu(np.asarray(metric.factor), 1) == 0)
    text = jax.jit(lambda m: dense_metric(m, jnp.float64)).lower(DENSE).as_text()
    assert "lapack" not in text.lower() and "cholesky" not in text.lower()


def test_adapter_equals_own_kernels_and_blackjax_nuts():
    target = targets.banana()
    key, n = jax.random.key(5), 60
    x0 = jnp.array([3.0, 1.0])
    ours, _ = _chain(MALA(0.5), target.logdensity, x0, MALA(0.5).noise(key, n, 2))
    adapted, _ = _chain(
        BlackJAX(blackjax.mala, step_size=0.5), target.logdensity, x0, jax.random.split(key, n)
    )
    np.testing.assert_allclose(adapted, ours, rtol=0, atol=1e-12)

    kernel = NUTS(0.5)
    traj, info = _chain(kernel, target.logdensity, x0, kernel.noise(key, n, 2))
    ref, ref_info = _blackjax_chain(
        blackjax.nuts.build_kernel(), blackjax.nuts.init, target.logdensity, x0, jax.random.split(key, n),
        step_size=0.5, inverse_mass_matrix=jnp.ones(2), max_num_doublings=10,
    )  # fmt: skip
    np.testing.assert_allclose(traj, ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(info.acceptance_rate, ref_info.acceptance_rate, rtol=1e-10)
    np.testing.assert_array_equal(info.num_integration_steps, ref_info.num_integration_steps)
    np.testing.assert_array_equal(info.tree_depth, ref_info.num_trajectory_expansions)
    np.testing.assert_allclose(info.energy, ref_info.energy, rtol=1e-12)
    assert np.all(np.asarray(info.tree_depth) >= 1) and np.any(np.asarray(info.tree_depth) >= 3)


def test_sequential_solver_is_the_python_loop():
    target = targets.gaussian_mixture()
    kernel = MALA(0.5)
    x0 = jnp.zeros(2)
    noise = kernel.noise(jax.random.key(6), 25, 2)
    step = jax.jit(functools.partial(kernel.step, target.logdensity))
    x, loop = x0, []
    for t in range(25):
        x = step(x, jax.tree.map(lambda a, t=t: a[t], noise))
        loop.append(x)
    traj = pnmcmc.solve(step, x0, noise, pnmcmc.Sequential()).trajectory
    np.testing.assert_allclose(traj, np.stack(loop), rtol=0, atol=1e-14)


@pytest.mark.xfail(
    strict=True,
    raises=TypeError,
    reason="BlackJAX 1.7.1 NUTS cannot trace a float32 position with x64 enabled (a float64 "
    "proposal weight meets a float32 one in lax.cond, blackjax/mcmc/trajectory.py:689)",
)
def test_blackjax_nuts_float32_under_x64():
    target = targets.banana()
    x = jnp.array([3.0, 1.0], jnp.float32)
    state = blackjax.nuts.init(x, target.logdensity)
    blackjax.nuts.build_kernel()(
        jax.random.key(0), state, target.logdensity, step_size=jnp.float32(0.5),
        inverse_mass_matrix=jnp.ones(2, jnp.float32),
    )  # fmt: skip


# Known answers --------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", [MALA(1e-6), HMC(1e-4, 3)], ids=["mala", "hmc"])
def test_tiny_steps_are_always_accepted(kernel):
    target = targets.banana()
    x0 = jnp.array([3.0, 1.0])
    _, info = _chain(kernel, target.logdensity, x0, kernel.noise(jax.random.key(8), 50, 2))
    assert np.all(np.asarray(info.accepted))
    assert float(jnp.min(info.acceptance_rate)) > 0.999
    assert not np.any(np.asarray(info.diverging))


def test_mala_energy_is_minus_logdensity():
    target = targets.correlated_gaussian(4)
    x0 = jnp.ones(4)
    traj, info = _chain(MALA(0.2), target.logdensity, x0, MALA(0.2).noise(jax.random.key(9), 30, 4))
    np.testing.assert_allclose(info.logdensity, jax.vmap(target.logdensity)(traj), rtol=1e-12)
    np.testing.assert_allclose(info.energy, -info.logdensity)
    assert np.all(np.asarray(info.num_integration_steps) == 1) and np.all(np.asarray(info.tree_depth) == 0)


def _wall(value):
    """Standard normal on x[0] < 1; `value` (NaN or -inf) beyond the wall."""

    def logdensity(x):
        return jnp.where(x[0] < 1.0, -0.5 * jnp.sum(x**2), value)

    return logdensity


@pytest.mark.parametrize(
    "kernel, value", [(MALA(0.8), jnp.nan), (HMC(0.5, 4), -jnp.inf)], ids=["mala-nan", "hmc-inf"]
)
def test_nonfinite_proposal_is_a_rejection(kernel, value):
    logdensity = _wall(value)
    x0 = jnp.zeros(2)
    noise = kernel.noise(jax.random.key(10), 80, 2)
    traj, info = _chain(kernel, logdensity, x0, noise)
    assert np.all(np.isfinite(traj)) and np.all(np.asarray(traj)[:, 0] < 1.0)
    walls = np.asarray(info.diverging)
    assert walls.any(), "the test should propose beyond the wall"
    assert not np.asarray(info.accepted)[walls].any()
    assert np.all(np.asarray(info.acceptance_rate)[walls] == 0.0)
    # The Jacobian through a rejected non-finite proposal is the identity, for both choices.
    prev = jnp.concatenate([x0[None], traj[:-1]])
    t = int(np.argmax(walls))
    xi = jax.tree.map(lambda a: a[t], noise)

    @jax.jit
    def jacobians(x):
        kernels = [
            dataclasses.replace(kernel, accept_jacobian=a) for a in (ExactJacobian(), SigmoidJacobian())
        ]
        return [jax.jacfwd(lambda z, k=k: k.step(logdensity, z, xi))(x) for k in kernels]

    for jac in jacobians(prev[t]):  # the identity, for both choices: no NaN leaks through
        np.testing.assert_array_equal(jac, np.eye(2))
    # A parallel solve of this chain is exact too.
    sol = pnmcmc.solve(functools.partial(kernel.step, logdensity), x0, noise, pnmcmc.DEER())
    assert int(sol.status) == pnmcmc.Status.CONVERGED
    np.testing.assert_allclose(sol.trajectory, traj, rtol=1e-10, atol=1e-10)


# The accept/reject Jacobian ---------------------------------------------------------------------


@pytest.mark.parametrize("kernel_cls", [MALA, HMC], ids=["mala", "hmc"])
def test_sigmoid_jacobian_is_exact_plus_rank_one(kernel_cls):
    target = targets.banana()
    beta = 2.0
    args = (0.5,) if kernel_cls is MALA else (0.5, 3)
    exact = kernel_cls(*args)
    sigmoid = kernel_cls(*args, accept_jacobian=SigmoidJacobian(beta))
    noise = exact.noise(jax.random.key(11), 40, 2)
    x0 = jnp.array([3.0, 1.0])
    traj_e, _ = _chain(exact, target.logdensity, x0, noise)
    traj_s, _ = _chain(sigmoid, target.logdensity, x0, noise)
    np.testing.assert_array_equal(traj_s, traj_e)  # forward values: bit for bit
    prev = jnp.concatenate([x0[None], traj_e[:-1]])

    @jax.jit
    def check(x, xi):
        j_exact = jax.jacfwd(lambda z: exact.step(target.logdensity, z, xi))(x)
        j_sigmoid = jax.jacfwd(lambda z: sigmoid.step(target.logdensity, z, xi))(x)
        # The proposal and log alpha of this step, from the kernel's own code path.
        y = _proposal(exact, target.logdensity, x, xi)
        la, grad_a = jax.value_and_grad(lambda z: _log_alpha(exact, target.logdensity, z, xi))(x)
        s = jax.nn.sigmoid(beta * (la - jnp.log(xi.u)))
        return j_sigmoid - j_exact, jnp.outer(y - x, beta * s * (1 - s) * grad_a), s

    diff, expected, s = jax.vmap(check)(prev, noise)
    np.testing.assert_allclose(diff, expected, rtol=1e-9, atol=1e-12)
    assert float(jnp.max(jnp.abs(diff))) > 1e-3  # the rank-one term is not negligible here


def _proposal(kernel, logdensity, x, xi):
    """The proposal y of a step: the new state with a forced acceptance (u = 0)."""
    return kernel.step(logdensity, x, xi._replace(u=jnp.zeros_like(xi.u)))


def _log_alpha(kernel, logdensity, x, xi):
    if isinstance(kernel, MALA):
        return kernel._transition(logdensity, x, xi)[3]
    # HMC: log(acceptance probability) is min(0, log alpha); recover log alpha from the energies.
    info = kernel.info(logdensity, x, xi._replace(u=jnp.zeros_like(xi.u)))  # accepted: H(y)
    reject = kernel.info(logdensity, x, xi._replace(u=jnp.ones_like(xi.u)))  # rejected: H(x)
    return reject.energy - info.energy


def test_accept_jacobian_objects():
    assert SigmoidJacobian() == SigmoidJacobian(1.0) and hash(SigmoidJacobian(2.0)) == hash(
        SigmoidJacobian(2.0)
    )
    for bad in (0.0, -1.0, True, "1"):
        with pytest.raises(ValueError, match="temperature"):
            SigmoidJacobian(bad)
    with pytest.raises(TypeError, match="accept_jacobian"):
        MALA(0.1, accept_jacobian=True)
    with pytest.raises(TypeError, match="accept_jacobian"):
        HMC(0.1, 2, accept_jacobian="sigmoid")


# Pytrees, jit, vmap, dtypes --------------------------------------------------------------------


def test_kernels_are_pytrees_with_static_structure():
    assert jax.tree.leaves(MALA(0.1)) == [0.1]
    assert len(jax.tree.leaves(MALA(0.1, jnp.ones(3)))) == 2
    hmc = HMC(0.1, 7, accept_jacobian=SigmoidJacobian(3.0))
    rebuilt = jax.tree.map(lambda a: 2 * a, hmc)
    assert rebuilt.step_size == 0.2 and rebuilt.num_integration_steps == 7
    assert rebuilt.accept_jacobian == SigmoidJacobian(3.0)
    nuts = jax.tree.map(lambda a: 2 * a, NUTS(0.25, max_num_doublings=4))
    assert isinstance(nuts, NUTS) and nuts.params["step_size"] == 0.5
    assert nuts.params["max_num_doublings"] == 4 and jax.tree.leaves(nuts) == [0.5]


def test_new_step_size_does_not_retrace():
    target = targets.banana()
    traces = []

    @jax.jit
    def one_step(kernel, x, xi):
        traces.append(1)
        return kernel.step(target.logdensity, x, xi)

    x = jnp.array([1.0, 0.0])
    for kernel in (MALA(0.1), MALA(0.2), MALA(jnp.asarray(0.3))):
        xi = kernel.noise(jax.random.key(0), 1, 2)
        one_step(kernel, x, jax.tree.map(lambda a: a[0], xi))
    assert len(traces) == 1
    key = jax.random.key(1)
    for kernel in (NUTS(0.1), NUTS(0.3)):
        one_step(kernel, x, key)
    assert len(traces) == 2


def test_vmap_over_step_sizes_and_chains():
    target = targets.gaussian_mixture()
    sizes = jnp.array([0.1, 0.5, 1.0])
    noise = MALA(0.1).noise(jax.random.key(2), 3, 2)

    def run(h, xi):
        kernel = MALA(h)
        return kernel.step(target.logdensity, jnp.ones(2), xi)

    batched = jax.vmap(run)(sizes, noise)
    for i in range(3):
        single = MALA(float(sizes[i])).step(
            target.logdensity, jnp.ones(2), jax.tree.map(lambda a, i=i: a[i], noise)
        )
        np.testing.assert_allclose(batched[i], single, rtol=1e-14)


@pytest.mark.parametrize(
    "kernel", [MALA(jnp.asarray(0.1)), HMC(jnp.asarray(0.1), 3, jnp.ones(2))], ids=["mala", "hmc"]
)
def test_float32_positions_stay_float32(kernel):
    """Even with x64 on and float64 parameters (BlackJAX kernels cannot do this, see below)."""
    _check_float32_step(kernel)


def test_adapter_float32_with_x64_off():
    """BlackJAX 1.7.1 builds float64 constants under x64, so its kernels (and the adapter) trace
    float32 positions only with x64 off, which is how float32 users run them."""
    with jax.enable_x64(False):
        _check_float32_step(BlackJAX(blackjax.mala, step_size=0.1))


def _check_float32_step(kernel):
    target = targets.banana()
    x = jnp.array([1.0, 0.5], jnp.float32)
    noise = kernel.noise(jax.random.key(3), 4, 2, jnp.float32)
    for leaf in jax.tree.leaves(noise):
        assert leaf.shape[0] == 4
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            assert leaf.dtype == jnp.float32
    xi = jax.tree.map(lambda a: a[0], noise)
    assert kernel.step(target.logdensity, x, xi).dtype == jnp.float32
    info = kernel.info(target.logdensity, x, xi)
    assert isinstance(info, StepInfo)
    assert info.logdensity.dtype == jnp.float32 and info.acceptance_rate.dtype == jnp.float32


def test_noise_is_blackjax_keys():
    key = jax.random.key(12)
    keys = jax.random.split(key, 5)
    for kernel in (MALA(0.1), HMC(0.1, 2)):
        a, b = kernel.noise(key, 5, 3, jnp.float64), kernel.noise_from_keys(keys, 3, jnp.float64)
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
        assert a.z.shape == (5, 3) and a.u.shape == (5,)
        assert np.all((np.asarray(a.u) >= 0) & (np.asarray(a.u) < 1))
    noise = NUTS(0.1).noise(key, 5, 3)
    assert jnp.issubdtype(noise.dtype, jax.dtypes.prng_key) and noise.shape == (5,)


def test_names_and_target_acceptance():
    assert (MALA.name, MALA.target_acceptance) == ("mala", 0.574)
    assert (HMC.name, HMC.target_acceptance) == ("hmc", 0.65)
    assert (NUTS(0.1).name, NUTS(0.1).target_acceptance) == ("nuts", 0.8)
    assert BlackJAX(blackjax.mala, step_size=0.1).target_acceptance == 0.574
    assert BlackJAX(blackjax.hmc, step_size=0.1, num_integration_steps=3).name == "hmc"


def test_constructor_errors():
    for bad in (0.0, -0.1):
        with pytest.raises(ValueError, match="step_size"):
            MALA(bad)
        with pytest.raises(ValueError, match="step_size"):
            HMC(bad, 3)
        with pytest.raises(ValueError, match="step_size"):
            NUTS(bad)
    with pytest.raises(ValueError, match="inverse_mass_matrix"):
        MALA(0.1, jnp.array([1.0, 0.0]))
    not_definite = jnp.array([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, -1.0]])
    for make in (lambda m: MALA(0.1, m), lambda m: HMC(0.1, 3, m), lambda m: NUTS(0.1, m)):
        with pytest.raises(ValueError, match=r"positive definite \(its smallest eigenvalue is -1\)"):
            make(not_definite)
        with pytest.raises(ValueError, match="symmetric"):
            make(jnp.array([[1.0, -0.5], [0.5, 1.0]]))
        make(DENSE)  # a valid dense matrix, with negative entries
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="num_integration_steps"):
            HMC(0.1, bad)
    with pytest.raises(ValueError, match="max_num_doublings"):
        NUTS(0.1, max_num_doublings=0)
    with pytest.raises(TypeError, match="blackjax.nuts"):
        BlackJAX(object(), step_size=0.1)
    with pytest.raises(AttributeError, match="immutable"):
        NUTS(0.1).step_size = 0.2


def test_hmc_step_size_jitter():
    """Known answers: v = 1/2 is no jitter, the extreme v values scale the step by 1 -/+ j; and
    with random v every parallel solver still gives the sequential chain."""
    target = targets.correlated_gaussian(4)
    x0 = jnp.linspace(-1.0, 1.0, 4)
    plain, jittered = HMC(0.3, 5), HMC(0.3, 5, step_size_jitter=0.4)
    noise = plain.noise(jax.random.key(5), 64, 4, jnp.float64)
    centred = noise._replace(v=jnp.full_like(noise.v, 0.5))
    np.testing.assert_array_equal(
        _chain(jittered, target.logdensity, x0, centred)[0], _chain(plain, target.logdensity, x0, centred)[0]
    )
    for v, scale in ((0.0, 0.6), (1.0, 1.4)):
        edge = noise._replace(v=jnp.full_like(noise.v, v))
        np.testing.assert_allclose(
            _chain(jittered, target.logdensity, x0, edge)[0],
            _chain(HMC(0.3 * scale, 5), target.logdensity, x0, edge)[0],
            rtol=1e-12,
            atol=1e-12,
        )
    seq, info = _chain(jittered, target.logdensity, x0, noise)
    assert not np.allclose(seq, _chain(plain, target.logdensity, x0, noise)[0])
    step = functools.partial(jittered.step, target.logdensity)
    for solver in (pnmcmc.DEER(), pnmcmc.QuasiDEER(), pnmcmc.ELK()):
        with warnings.catch_warnings():
            # Step by step, QuasiDEER's diagonal is front-limited on this chain: warned, and exact.
            warnings.simplefilter("ignore", pnmcmc.FrontLimitedWarning)
            par = pnmcmc.solve(step, x0, noise, solver)
        assert int(par.status) == pnmcmc.Status.CONVERGED
        np.testing.assert_allclose(par.trajectory, seq, rtol=1e-8, atol=1e-8)
    for bad in (-0.1, 1.0, True, "0.2"):
        with pytest.raises(ValueError, match="step_size_jitter"):
            HMC(0.1, 3, step_size_jitter=bad)
