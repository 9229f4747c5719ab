"""Lyapunov exponents with known answers, the expanding-dynamics warning, the iteration predictor."""

import functools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pnmcmc as pn
from pnmcmc import lyapunov
from pnmcmc.analysis.lyapunov import (
    ExpandingDynamicsWarning,
    calibrate_iterations,
    check_contracting,
    lyapunov_exponent,
    lyapunov_exponent_from_jacobians,
    predict_iterations,
)

METHODS = ["parallel", "benettin"]


def chain(step, x0, n, noise=None):
    noise = jnp.zeros((n, 0), jnp.asarray(x0).dtype) if noise is None else noise
    return pn.solve(step, x0, noise, pn.Sequential()).trajectory, noise


def both(step, traj, noise, x0, **kw):
    """The parallel and Benettin estimates, which must agree within 0.02 (they agree to round-off)."""
    par = lyapunov_exponent(step, traj, noise, x0=x0, method="parallel", **kw)
    ben = lyapunov_exponent(step, traj, noise, x0=x0, method="benettin", **kw)
    assert abs(float(par.exponent) - float(ben.exponent)) < 0.02
    return par, ben


def henon(x, xi):
    return jnp.stack([1.0 - 1.4 * x[0] ** 2 + x[1], 0.3 * x[0]])


def mala_gaussian(step_size, n, d=3, seed=0):
    """MALA on N(0, I_d), written inline: noise = (proposal normals, accept uniform) per step."""

    def log_density(x):
        return -0.5 * jnp.sum(x**2)

    vg = jax.value_and_grad(log_density)

    def step(x, xi):
        z, u = xi[:-1], xi[-1]
        lx, gx = vg(x)
        y = x + step_size * gx + jnp.sqrt(2 * step_size) * z
        ly, gy = vg(y)
        fwd, bwd = jnp.sum((y - x - step_size * gx) ** 2), jnp.sum((x - y - step_size * gy) ** 2)
        return jnp.where(jnp.log(u) < ly - lx + (fwd - bwd) / (4 * step_size), y, x)

    k1, k2 = jax.random.split(jax.random.key(seed))
    noise = jnp.concatenate([jax.random.normal(k1, (n, d)), jax.random.uniform(k2, (n, 1))], axis=1)
    return step, jnp.ones(d), noise


# --- Known answers ---------------------------------------------------------------------------------


def test_diagonal_linear_map():
    a = jnp.array([0.5, -0.9, 0.8])
    traj, noise = chain(lambda x, xi: a * x, jnp.ones(3), 1000)
    for est in both(lambda x, xi: a * x, traj, noise, jnp.ones(3)):
        assert abs(float(est.exponent) - math.log(0.9)) < 0.01
    diag = lyapunov_exponent(lambda x, xi: a * x, traj, noise, x0=jnp.ones(3), method="diagonal")
    assert float(diag.exponent) == pytest.approx(math.log(0.9), abs=1e-12)


def test_normal_matrix_gives_log_spectral_radius():
    # A normal, non-diagonal matrix: a rotation scaled by 0.9 (|eigenvalues| 0.9) and a symmetric
    # block with eigenvalues 0.6 and 0.2.
    th = 0.7
    rot = 0.9 * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    sym = np.array([[0.4, 0.2], [0.2, 0.4]])
    a = jnp.asarray(np.block([[rot, np.zeros((2, 2))], [np.zeros((2, 2)), sym]]))
    x0 = jnp.ones(4)
    traj, noise = chain(lambda x, xi: a @ x, x0, 1000)
    for est in both(lambda x, xi: a @ x, traj, noise, x0):
        assert abs(float(est.exponent) - math.log(0.9)) < 0.01
    # The diagonal system's exponent is a different quantity: here log(0.9 |cos th|) < log 0.9.
    diag = lyapunov_exponent(lambda x, xi: a @ x, traj, noise, x0=x0, method="diagonal")
    assert float(diag.exponent) == pytest.approx(math.log(0.9 * math.cos(th)), abs=1e-12)


def test_diagonal_exponent_is_not_a_bound():
    # Non-normal: spectral radius sqrt(0.19) but diagonal entries of modulus 0.9.
    jac = jnp.broadcast_to(jnp.array([[0.9, 5.0], [-0.2, -0.9]]), (1024, 2, 2))
    assert float(lyapunov_exponent_from_jacobians(jac).exponent) == pytest.approx(
        0.5 * math.log(0.19), abs=0.01
    )
    diag = lyapunov_exponent_from_jacobians(jac, method="diagonal")
    assert float(diag.exponent) == pytest.approx(math.log(0.9), abs=1e-12)


def test_logistic_map_at_r4_is_ln2():
    step = lambda x, xi: 4.0 * x * (1.0 - x)  # noqa: E731  (1-D map x -> r x (1 - x))
    traj, noise = chain(step, jnp.array([0.3]), 4000)
    for est in both(step, traj, noise, jnp.array([0.3])):
        assert abs(float(est.exponent) - math.log(2.0)) < 0.02


def test_henon_map():
    traj, noise = chain(henon, jnp.array([0.1, 0.1]), 8000)
    par, ben = both(henon, traj, noise, jnp.array([0.1, 0.1]))
    for est in (par, ben):
        assert abs(float(est.exponent) - 0.419) < 0.02
        assert float(est.stderr) < 0.02


def test_mala_on_gaussian_is_contracting():
    step, x0, noise = mala_gaussian(0.1, 1024)
    traj, _ = chain(step, x0, 1024, noise)
    par, ben = both(step, traj, noise, x0)
    # Accepted steps have Jacobian (1 - eps) I, rejected ones I: lambda = acceptance * log(1 - eps).
    accepted = float(jnp.mean(jnp.any(traj != jnp.concatenate([x0[None], traj[:-1]]), axis=1)))
    assert float(par.exponent) == pytest.approx(accepted * math.log(0.9), abs=0.01)
    assert float(par.exponent) + 2 * float(par.stderr) < 0
    assert check_contracting(par)  # and no warning (filterwarnings = error)


def test_zero_map_gives_the_floor_not_minus_infinity():
    """Every step maps tangents to zero: the dtype's smallest log-growth, finite, without spread."""
    floor = math.log(np.finfo(np.float64).tiny)
    traj, noise = chain(lambda x, xi: 0.0 * x, jnp.ones(2), 64)
    for method in METHODS + ["diagonal"]:
        est = lyapunov_exponent(lambda x, xi: 0.0 * x, traj, noise, x0=jnp.ones(2), method=method)
        assert float(est.exponent) == pytest.approx(floor) and float(est.stderr) < 1e-9, method


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_degenerate_steps_keep_a_finite_chain_finite(dtype):
    """A contracting chain with occasional resets to a constant (zero Jacobian) and a term that is
    not differentiable at the chain's state (NaN Jacobian): the estimate stays finite and the
    sequential and parallel methods agree; without the degenerate steps nothing changes."""

    def step(x, xi, degenerate=True):
        smooth = 0.5 * jnp.tanh(x) + xi[1:]
        if not degenerate:
            return smooth
        kink = jnp.where(xi[0] < -2.0, 0.0 * jnp.sqrt(x - x), 0.0)  # value 0, derivative NaN
        return jnp.where(xi[0] > 2.0, jnp.ones_like(x), smooth) + kink

    noise = jax.random.normal(jax.random.key(3), (2048, 3), dtype)
    traj, _ = chain(step, jnp.zeros(2, dtype), 2048, noise)
    assert bool(jnp.all(jnp.isfinite(traj)))
    estimates = [lyapunov_exponent(step, traj, noise, x0=jnp.zeros(2, dtype), method=m) for m in METHODS]
    for est in estimates + [lyapunov_exponent(step, traj, noise, x0=jnp.zeros(2, dtype), method="diagonal")]:
        assert np.isfinite(float(est.exponent)) and np.isfinite(float(est.stderr)), est.method
    assert float(estimates[0].exponent) == pytest.approx(float(estimates[1].exponent), rel=0.05)
    smooth = lyapunov_exponent(functools.partial(step, degenerate=False), traj, noise, x0=jnp.zeros(2, dtype))
    assert float(estimates[0].exponent) < float(smooth.exponent) < 0  # resets only add contraction


def test_renormalisation_never_overflows_in_float32():
    # |J_T ... J_1| = 1e3^T overflows any float; the scaled products do not.
    a = jnp.array([[1e3, 1.0], [0.0, 1e-3]], jnp.float32)
    jac = jnp.broadcast_to(a, (2000, 2, 2))
    for method in METHODS:
        est = lyapunov_exponent_from_jacobians(jac, method=method)
        assert est.exponent.dtype == jnp.float32
        assert float(est.exponent) == pytest.approx(math.log(1e3), abs=1e-3)


# --- Reusing the solver's Jacobians ----------------------------------------------------------------


def test_from_jacobians_reuses_full_and_diagonal_information():
    w = 0.6 * jax.random.normal(jax.random.key(1), (4, 4)) / 2.0
    step = lambda x, xi: jnp.tanh(w @ x + xi)  # noqa: E731
    noise = 0.5 * jax.random.normal(jax.random.key(2), (512, 4))
    x0 = jnp.zeros(4)
    traj, _ = chain(step, x0, 512, noise)
    prev = jnp.concatenate([x0[None], traj[:-1]])
    _, jac = pn.engine.jacobians.Full().evaluate(step, prev, noise, 0)
    _, diag = pn.engine.jacobians.Diagonal().evaluate(step, prev, noise, 0)
    direct = lyapunov_exponent(step, traj, noise, x0=x0)
    reused = lyapunov_exponent_from_jacobians(jac)
    assert float(reused.exponent) == pytest.approx(float(direct.exponent), abs=1e-12)
    assert reused.method == "parallel" and float(reused.exponent) < 0
    from_diag = lyapunov_exponent_from_jacobians(diag)
    assert from_diag.method == "diagonal"
    assert float(from_diag.exponent) == pytest.approx(
        float(lyapunov_exponent_from_jacobians(jac, method="diagonal").exponent), abs=1e-12
    )
    with pytest.raises(ValueError, match="diagonal system"):
        lyapunov_exponent_from_jacobians(diag, method="parallel")
    with pytest.raises(ValueError, match="shape"):
        lyapunov_exponent_from_jacobians(jnp.ones((3, 2, 4)))
    with pytest.raises(ValueError, match="method"):
        lyapunov_exponent(step, traj, noise, method="qr")


def test_float32_jit_and_vmap():
    a = jnp.array([0.5, 0.8], jnp.float32)
    step = lambda x, xi: a * x + xi  # noqa: E731
    noise = jax.random.normal(jax.random.key(0), (3, 512, 2), jnp.float32)
    x0 = jnp.ones(2, jnp.float32)
    trajs = jax.vmap(lambda e: pn.solve(step, x0, e, pn.Sequential()).trajectory)(noise)
    for method in METHODS + ["diagonal"]:
        fn = jax.jit(jax.vmap(lambda tr, e, m=method: lyapunov_exponent(step, tr, e, x0=x0, method=m)))
        est = fn(trajs, noise)
        assert est.exponent.shape == (3,) and est.exponent.dtype == jnp.float32
        assert est.blocks.shape == (3, 16)
        np.testing.assert_allclose(est.exponent, math.log(0.8), atol=0.01)


def test_describe_and_rate():
    est = lyapunov_exponent_from_jacobians(jnp.full((100, 1, 1), 0.5))
    assert float(est.rate) == pytest.approx(0.5)
    assert "contracting" in est.describe() and "parallel" in est.describe()


# --- The warning -------------------------------------------------------------------------------


def test_warning_fires_on_expanding_and_neutral_maps():
    step = lambda x, xi: 4.0 * x * (1.0 - x)  # noqa: E731
    traj, noise = chain(step, jnp.array([0.3]), 512)
    est = lyapunov_exponent(step, traj, noise, x0=jnp.array([0.3]))
    with pytest.warns(ExpandingDynamicsWarning, match="Sequential solver"):
        assert not check_contracting(est)
    assert issubclass(ExpandingDynamicsWarning, pn.PnmcmcWarning)
    neutral = lyapunov_exponent_from_jacobians(jnp.ones((64, 2, 2)) * jnp.eye(2))  # J = I: lambda = 0
    with pytest.warns(ExpandingDynamicsWarning, match="iterations approaching"):
        check_contracting(neutral)
    # Batched: one expanding chain in three is enough.
    rates = jnp.array([0.5, 0.6, 1.5])[:, None, None, None]
    batch = jax.vmap(lyapunov_exponent_from_jacobians)(rates * jnp.ones((3, 64, 1, 1)))
    with pytest.warns(ExpandingDynamicsWarning, match="1 of 3 chains"):
        check_contracting(batch)


def test_no_warning_on_contracting_map_and_margin():
    est = lyapunov_exponent_from_jacobians(jnp.full((256, 2, 2), 0.3) * jnp.eye(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_contracting(est)
    with pytest.warns(ExpandingDynamicsWarning):
        check_contracting(est, margin=2.0)  # demands a rate below e^-2 per step
    with pytest.raises(TypeError, match="outside jax.jit"):
        jax.jit(lambda j: check_contracting(lyapunov_exponent_from_jacobians(j)))(jnp.ones((8, 1, 1)))


# --- The predictor ---------------------------------------------------------------------------------


def test_predictor_model():
    kw = dict(tol=1e-10, initial_error=1.0)
    jacobi = predict_iterations(-0.5, 10_000, solver_kind="jacobi", **kw)
    assert jacobi == math.ceil(math.log(1e10) / 0.5)  # n e-folds at rate |lambda|
    newton = predict_iterations(-0.5, 10_000, solver_kind=pn.DEER(), **kw)
    assert newton == math.ceil(1 + math.log2(jacobi))
    assert predict_iterations(-0.5, 10_000, solver_kind=pn.QuasiDEER(), **kw) == newton
    assert predict_iterations(-0.5, 10_000, solver_kind="jacobi", spread=1.0, **kw) > jacobi
    assert predict_iterations(0.1, 300, solver_kind="newton", **kw) == 300  # expanding: T
    assert predict_iterations(-0.001, 300, solver_kind="jacobi", **kw) == 300  # capped at T
    assert predict_iterations(-0.5, 300, solver_kind="jacobi", tol=1.0, initial_error=0.5) == 0
    assert predict_iterations(-math.inf, 300, solver_kind="jacobi", **kw) == 1
    assert predict_iterations(-0.5, 300, solver_kind=pn.Sequential(), **kw) == 0
    with pytest.raises(ValueError, match="no iteration model"):
        predict_iterations(-0.5, 300, solver_kind=pn.Picard(), **kw)
    # Calibration: Newton-type counts beyond the first iteration grow like log T ...
    newton = calibrate_iterations(3, 128, 4096, exponent=-0.5, solver_kind="newton", **kw)
    assert newton == math.ceil(1 + 2 * math.log(4096) / math.log(128))
    assert calibrate_iterations(1, 128, 4096, exponent=-0.5, solver_kind="newton", **kw) == 1  # linear
    # ... Jacobi counts like the model; a front-limited pilot scales with T; a failed one gives T.
    assert calibrate_iterations(40, 128, 4096, exponent=-0.1, solver_kind="jacobi", spread=0.3, **kw) > 40
    assert calibrate_iterations(100, 128, 4096, exponent=-0.5, solver_kind="quasi-newton", **kw) == 3200
    assert (
        calibrate_iterations(5, 128, 4096, exponent=-0.5, solver_kind="newton", converged=False, **kw) == 4096
    )
    # A longer pilot measures the growth: the power law through both counts, exponent in [0, 1].
    both = dict(exponent=-0.5, solver_kind="newton", **kw)
    assert calibrate_iterations(10, 128, 8192, longer_pilot=(40, 1024), **both) == 160  # 40 * 8^(2/3)
    assert calibrate_iterations(10, 128, 8192, longer_pilot=(1000, 1024), **both) == 8000  # linear
    assert calibrate_iterations(10, 128, 8192, longer_pilot=(6, 1024), **both) == 6  # no growth
    assert calibrate_iterations(10, 128, 1024, longer_pilot=(37, 1024), **both) == 37  # the chain
    with pytest.raises(ValueError, match="longer than the pilot"):
        calibrate_iterations(10, 128, 8192, longer_pilot=(40, 128), **both)
    # Segments of m steps: the chain of segment maps, T/m elements of exponent m lambda.
    segmented = predict_iterations(-0.05, 10_000, solver_kind=pn.Jacobi(segment=8), spread=0.5, **kw)
    assert segmented == predict_iterations(-0.4, 1250, solver_kind="jacobi", spread=0.5 * math.sqrt(8), **kw)
    assert calibrate_iterations(
        3, 128, 4096, exponent=-0.5, solver_kind=pn.DEER(segment=8), **kw
    ) == math.ceil(1 + 2 * math.log(512) / math.log(16))


def tanh_rnn(gain, n, d=6):
    w = gain * jax.random.normal(jax.random.key(3), (d, d)) / math.sqrt(d)
    noise = 0.5 * jax.random.normal(jax.random.key(4), (n, d))
    return (lambda x, xi: jnp.tanh(w @ x + xi)), jnp.zeros(d), noise


def linear_chain(n):
    return (lambda x, xi: 0.7 * x + xi), 5.0 * jnp.ones(2), jax.random.normal(jax.random.key(5), (n, 2))


@pytest.mark.parametrize(
    "problem",
    [
        lambda n: tanh_rnn(1.0, n),
        lambda n: mala_gaussian(0.5, n),
        linear_chain,
    ],
    ids=["rnn-1.0", "mala-0.5", "linear-0.7"],
)
def test_predictor_within_factor_two(problem):
    n, pilot = 1024, 128
    step, x0, noise = problem(n)
    head = noise[:pilot]
    traj, _ = chain(step, x0, pilot, head)
    est = lyapunov_exponent(step, traj, head, x0=x0)
    rtol, atol = pn.default_tolerances(jnp.float64)
    kw = dict(
        exponent=float(est.exponent),
        tol=atol + rtol * float(jnp.mean(jnp.abs(traj))),
        initial_error=float(jnp.max(jnp.abs(traj - x0))),
        spread=float(np.std(np.asarray(est.blocks))) * math.sqrt(pilot // 16),
    )
    for solver in (pn.Jacobi(), pn.DEER(), pn.Jacobi(segment=8)):
        with warnings.catch_warnings():  # on 128 steps Jacobi can be front-limited: information here
            warnings.simplefilter("ignore", pn.FrontLimitedWarning)
            pilot_sol = pn.solve(step, x0, head, solver)
        predicted = calibrate_iterations(int(pilot_sol.num_iterations), pilot, n, solver_kind=solver, **kw)
        actual = int(pn.solve(step, x0, noise, solver).num_iterations)
        assert 0.5 <= max(predicted, 1) / max(actual, 1) <= 2.0, (solver, predicted, actual)


def test_public_names():
    for name in lyapunov.__all__:
        assert hasattr(lyapunov, name)
