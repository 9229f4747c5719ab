"""The benchmark targets: known values, normalisation, moments, data loading and dtypes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pnmcmc import targets

ALL = [
    targets.correlated_gaussian,
    targets.banana,
    targets.gaussian_mixture,
    targets.german_credit,
    targets.eight_schools,
]


@pytest.mark.parametrize("make", ALL, ids=lambda f: f.__name__)
def test_dtype_follows_the_position(make):
    target = make()
    for dtype in (jnp.float32, jnp.float64):
        x = jnp.linspace(-1.0, 1.0, target.dim).astype(dtype)
        value, grad = jax.value_and_grad(target.logdensity)(x)
        assert value.dtype == dtype and grad.dtype == dtype and grad.shape == (target.dim,)
        assert np.isfinite(value) and np.all(np.isfinite(grad))


def _gaussian_logpdf(x, cov):
    sign, logdet = np.linalg.slogdet(2 * np.pi * cov)
    return -0.5 * x @ np.linalg.solve(cov, x) - 0.5 * logdet


@pytest.mark.parametrize("dim, rho", [(1, 0.5), (10, 0.9), (6, -0.4)])
def test_correlated_gaussian_is_the_ar1_gaussian(dim, rho):
    target = targets.correlated_gaussian(dim, rho)
    cov = rho ** np.abs(np.subtract.outer(np.arange(dim), np.arange(dim)))
    x = np.random.default_rng(0).standard_normal(dim)
    np.testing.assert_allclose(target.logdensity(jnp.asarray(x)), _gaussian_logpdf(x, cov), rtol=1e-12)
    assert target.dim == dim and np.all(target.std == 1.0) and np.all(target.mean == 0.0)


def test_banana_is_the_sheared_gaussian():
    target = targets.banana(0.03)
    x = np.array([4.0, -2.0])
    shifted = np.array([x[0], x[1] - 0.03 * (x[0] ** 2 - 100.0)])
    expected = _gaussian_logpdf(shifted, np.diag([100.0, 1.0]))  # unit Jacobian shear
    np.testing.assert_allclose(target.logdensity(jnp.asarray(x)), expected, rtol=1e-12)
    np.testing.assert_allclose(target.std, [10.0, np.sqrt(19.0)])


def _grid_moments(logdensity, half_width, n):
    axis = np.linspace(-half_width, half_width, n)
    xs = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    p = np.exp(np.asarray(jax.jit(jax.vmap(logdensity))(jnp.asarray(xs))))
    cell = (axis[1] - axis[0]) ** 2
    mass = p.sum() * cell
    mean = (xs * p[:, None]).sum(0) * cell
    var = (xs**2 * p[:, None]).sum(0) * cell - mean**2
    return mass, mean, np.sqrt(var)


def test_mixture_is_normalised_with_the_stated_moments():
    target = targets.gaussian_mixture()
    mass, mean, std = _grid_moments(target.logdensity, 10.0, 401)
    np.testing.assert_allclose(mass, 1.0, rtol=1e-6)
    np.testing.assert_allclose(mean, target.mean, atol=1e-8)
    np.testing.assert_allclose(std, target.std, rtol=1e-6)
    modes = jnp.array([[2.0, 2.0], [-2.0, 2.0], [2.0, -2.0], [-2.0, -2.0]])
    values = jax.vmap(target.logdensity)(modes)
    np.testing.assert_allclose(values, values[0], rtol=1e-14)


def test_banana_moments_on_a_grid():
    target = targets.banana()
    # The banana's x_1 is heavy along the curve; integrate in sheared coordinates instead.
    sheared = lambda z: target.logdensity(jnp.stack([z[0], z[1] + 0.03 * (z[0] ** 2 - 100.0)]))
    mass, mean, std = _grid_moments(sheared, 60.0, 601)
    np.testing.assert_allclose(mass, 1.0, rtol=1e-6)
    np.testing.assert_allclose(std[0], 10.0, rtol=1e-4)


def test_german_credit_data_and_density():
    design, label = targets._german_credit_data()
    assert design.shape == (1000, 25) and label.shape == (1000,)
    np.testing.assert_array_equal(design[:, 0], 1.0)
    np.testing.assert_allclose(design[:, 1:].mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(design[:, 1:].std(0), 1.0, rtol=1e-12)
    assert set(np.unique(label)) == {0.0, 1.0} and int(label.sum()) == 300  # y = 1: bad credit
    target = targets.german_credit()
    assert target.dim == 25 and target.mean is None
    # At beta = 0 every likelihood term is -log 2, the prior is -25/2 log(2 pi).
    expected = -1000 * np.log(2.0) - 12.5 * np.log(2 * np.pi)
    np.testing.assert_allclose(target.logdensity(jnp.zeros(25)), expected, rtol=1e-14)
    beta = np.random.default_rng(1).standard_normal(25) * 0.1
    eta = design @ beta
    direct = np.sum(label * eta - np.log1p(np.exp(eta))) - 0.5 * beta @ beta - 12.5 * np.log(2 * np.pi)
    np.testing.assert_allclose(target.logdensity(jnp.asarray(beta)), direct, rtol=1e-12)


def test_bad_arguments():
    with pytest.raises(ValueError, match="dim"):
        targets.correlated_gaussian(0)
    with pytest.raises(ValueError, match="correlation"):
        targets.correlated_gaussian(3, 1.0)


def test_eight_schools_is_numpyros_noncentred_potential():
    from numpyro.infer.util import potential_energy

    from pnmcmc.models import eight_schools

    schools = eight_schools()
    target = targets.eight_schools()
    x = np.random.default_rng(1).standard_normal(10)
    params = {"mu": x[0], "tau": x[1], "theta_tilde": x[2:]}  # unconstrained values
    expected = -potential_energy(schools.model, (), schools.model_kwargs, params)
    np.testing.assert_allclose(target.logdensity(jnp.asarray(x)), expected, rtol=1e-12)
    assert target.dim == 10 and target.mean is None
