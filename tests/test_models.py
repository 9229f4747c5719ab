"""Tests of the model zoo `pnmcmc.models`: sites, data, log densities, Stan names, reference checks.

The log densities are checked against independent NumPy/SciPy transcriptions of the Stan programs,
read straight from the shipped data.json files; sampling quality is validated (minutes, not CI) by
benchmarks/validate_models.py.
"""

import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer import init_to_value
from numpyro.infer.util import initialize_model, log_density
from scipy import stats

import pnmcmc
from pnmcmc import models
from pnmcmc.models import _small_linalg

DATA = Path(pnmcmc.__file__).parent / "data" / "posteriordb"

# Documented latent (and deterministic) sites and their shapes, in model order.
SITES = {
    "kidiq-kidscore_momhs": {"beta": (2,), "sigma": ()},
    "earnings-logearn_height": {"beta": (2,), "sigma": ()},
    "mesquite-logmesquite": {"beta": (7,), "sigma": ()},
    "nes1976-nes": {"beta": (9,), "sigma": ()},
    "sblri-blr": {"beta": (5,), "sigma": ()},
    "arma-arma11": {"mu": (), "phi": (), "theta": (), "sigma": ()},
    "gp_pois_regr-gp_regr": {"rho": (), "alpha": (), "sigma": ()},
    "kidiq_with_mom_work-kidscore_interaction_c": {"beta": (4,), "sigma": ()},
    "eight_schools": {"mu": (), "tau": (), "theta_tilde": (8,), "theta": (8,)},
    "eight_schools_centered": {"mu": (), "tau": (), "theta": (8,)},
    "german_credit": {"beta": (25,)},
}

ZOO = {
    **{name: (lambda name=name: models.posteriordb(name)) for name in models.POSTERIORDB_NAMES},
    "eight_schools": models.eight_schools,
    "eight_schools_centered": models.eight_schools_centered,
    "german_credit": models.german_credit,
}

# LAPACK custom calls in a program lowered for the CPU (batched under vmap, they can deadlock).
LAPACK = re.compile(r"custom_call @(lapack_\w+)")


def _raw(name):
    return {
        k: np.asarray(v, dtype=np.float64)
        for k, v in json.loads((DATA / name / "data.json").read_text()).items()
    }


def _normal(y, mean, sd):
    return stats.norm.logpdf(y, mean, sd).sum()


def _expected_log_density(name, p):
    """The Stan program's log density (with all constants), written independently with SciPy."""
    d = _raw(name)
    b = p.get("beta")
    if name == "kidiq-kidscore_momhs":
        return _normal(d["kid_score"], b[0] + b[1] * d["mom_hs"], p["sigma"]) + stats.halfcauchy.logpdf(
            p["sigma"], scale=2.5
        )
    if name == "earnings-logearn_height":
        return _normal(np.log(d["earn"]), b[0] + b[1] * d["height"], p["sigma"])
    if name == "mesquite-logmesquite":
        logs = [np.log(d[k]) for k in ("diam1", "diam2", "canopy_height", "total_height", "density")]
        mean = b[0] + sum(bk * x for bk, x in zip(b[1:6], logs, strict=True)) + b[6] * d["group"]
        return _normal(np.log(d["weight"]), mean, p["sigma"])
    if name == "nes1976-nes":
        age = d["age_discrete"]
        x = [
            d["real_ideo"],
            d["race_adj"],
            age == 2,
            age == 3,
            age == 4,
            d["educ1"],
            d["gender"],
            d["income"],
        ]
        return _normal(
            d["partyid7"], b[0] + sum(bk * xk for bk, xk in zip(b[1:], x, strict=True)), p["sigma"]
        )
    if name == "sblri-blr":
        return (
            _normal(b, 0.0, 10.0)
            + stats.halfnorm.logpdf(p["sigma"], scale=10.0)
            + _normal(d["y"], d["X"] @ b, p["sigma"])
        )
    if name == "arma-arma11":
        y, err, total = d["y"], 0.0, 0.0
        for t in range(len(y)):
            nu = p["mu"] + p["phi"] * p["mu"] if t == 0 else p["mu"] + p["phi"] * y[t - 1] + p["theta"] * err
            err = y[t] - nu
            total += stats.norm.logpdf(err, 0.0, p["sigma"])
        priors = _normal(p["mu"], 0, 10) + _normal(p["phi"], 0, 2) + _normal(p["theta"], 0, 2)
        return total + priors + stats.halfcauchy.logpdf(p["sigma"], scale=2.5)
    if name == "gp_pois_regr-gp_regr":
        x = d["x"]
        cov = p["alpha"] ** 2 * np.exp(-((x[:, None] - x[None, :]) ** 2) / (2 * p["rho"] ** 2))
        cov = cov + p["sigma"] * np.eye(len(x))
        return (
            stats.multivariate_normal.logpdf(d["y"], np.zeros(len(x)), cov)
            + stats.gamma.logpdf(p["rho"], 25.0, scale=1 / 4.0)
            + stats.halfnorm.logpdf(p["alpha"], scale=2.0)
            + stats.halfnorm.logpdf(p["sigma"], scale=1.0)
        )
    if name == "kidiq_with_mom_work-kidscore_interaction_c":
        hs = d["mom_hs"] - d["mom_hs"].mean()
        iq = d["mom_iq"] - d["mom_iq"].mean()
        return _normal(d["kid_score"], b[0] + b[1] * hs + b[2] * iq + b[3] * hs * iq, p["sigma"])
    raise AssertionError(name)


def test_posteriordb_names_match_shipped_data():
    assert sorted(models.POSTERIORDB_NAMES) == sorted(p.name for p in DATA.iterdir() if p.is_dir())


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="Unknown posteriordb posterior 'kidiq'.*arma-arma11"):
        models.posteriordb("kidiq")


@pytest.mark.parametrize("name", list(ZOO))
def test_model_traces_with_documented_sites(name):
    posterior = ZOO[name]()
    assert posterior.name == name
    assert list(posterior.site_shapes.items()) == list(SITES[name].items())
    for value in posterior.model_kwargs.values():
        assert isinstance(value, jax.Array)
        assert value.dtype in (jnp.result_type(float), jnp.int32)
    if name in models.POSTERIORDB_NAMES:
        # Stan's names of our sites are exactly the reference's parameters.
        columns = [
            c for site, shape in posterior.site_shapes.items() for c in models.column_names(site, shape)
        ]
        assert sorted(columns) == sorted(posterior.reference)
    else:
        assert posterior.reference is None


@pytest.mark.parametrize("name", models.POSTERIORDB_NAMES)
def test_log_density_matches_stan_program(name):
    posterior = models.posteriordb(name)
    params = {site: np.asarray(v) for site, v in posterior.reference_means().items()}
    # A second point away from the mean, so that every coefficient matters.
    shifted = {site: v * 1.1 + 0.01 for site, v in params.items()}
    for point in (params, shifted):
        value, _ = log_density(posterior.model, (), posterior.model_kwargs, point)
        np.testing.assert_allclose(float(value), _expected_log_density(name, point), rtol=1e-10)


def test_eight_schools_and_german_credit_log_densities():
    y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
    s = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
    mu, tau, eta = 1.5, 2.0, np.linspace(-1, 1, 8)
    prior = stats.norm.logpdf(mu, 0, 5) + stats.halfcauchy.logpdf(tau, scale=5)
    value, trace = log_density(
        models.eight_schools().model,
        (),
        models.eight_schools().model_kwargs,
        {"mu": mu, "tau": tau, "theta_tilde": eta},
    )
    theta = mu + tau * eta
    np.testing.assert_allclose(float(value), prior + _normal(eta, 0, 1) + _normal(y, theta, s), rtol=1e-12)
    np.testing.assert_allclose(trace["theta"]["value"], theta, rtol=1e-12)
    centered = models.eight_schools_centered()
    value, _ = log_density(centered.model, (), centered.model_kwargs, {"mu": mu, "tau": tau, "theta": theta})
    np.testing.assert_allclose(
        float(value), prior + _normal(theta, mu, tau) + _normal(y, theta, s), rtol=1e-12
    )

    credit = models.german_credit()
    x, label = np.asarray(credit.model_kwargs["x"]), np.asarray(credit.model_kwargs["y"])
    assert x.shape == (1000, 25) and label.shape == (1000,)
    np.testing.assert_allclose(x[:, :24].mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(x[:, :24].std(0), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(x[:, 24], 1.0)
    assert label.sum() == 300  # 300 bad credits (class 2) in the Statlog data
    beta = np.linspace(-0.5, 0.5, 25)
    value, _ = log_density(credit.model, (), credit.model_kwargs, {"beta": beta})
    expected = _normal(beta, 0, 1) + stats.bernoulli.logpmf(label, 1 / (1 + np.exp(-x @ beta))).sum()
    np.testing.assert_allclose(float(value), expected, rtol=1e-10)


# Points for the models without a reference (the others use their reference means).
POINTS = {
    "eight_schools": {"mu": 0.0, "tau": 1.0, "theta_tilde": np.zeros(8)},
    "eight_schools_centered": {"mu": 0.0, "tau": 1.0, "theta": np.zeros(8)},
    "german_credit": {"beta": np.zeros(25)},
}


@pytest.mark.parametrize("name", list(ZOO))
def test_potential_finite_at_reference_and_lapack_free(name):
    posterior = ZOO[name]()
    point = POINTS[name] if posterior.reference is None else posterior.reference_means()
    # validate_grad=False: the gradient is checked below, without compiling NumPyro's check (seconds).
    info = initialize_model(
        jax.random.key(0),
        posterior.model,
        model_kwargs=posterior.model_kwargs,
        init_strategy=init_to_value(values=point),
        validate_grad=False,
    )
    z = info.param_info.z
    # NumPyro's transforms take the point to z and back.
    back = info.postprocess_fn(z)
    for site, value in point.items():
        np.testing.assert_allclose(back[site], value, rtol=1e-12, atol=1e-12)
    # A sampler evaluates a batch of gradients at once: finite, and without batched LAPACK calls
    # (two of them in one jitted program can deadlock on CPU).
    batched = jax.vmap(jax.value_and_grad(info.potential_fn))
    batch = jax.tree.map(lambda v: jnp.stack([v, v]), z)
    lowered = jax.jit(batched).lower(batch)
    found = LAPACK.search(lowered.as_text())
    assert found is None, found
    energy, grad = lowered.compile()(batch)
    assert np.isfinite(np.asarray(energy)).all()
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grad))


def test_column_names():
    assert models.column_names("sigma", ()) == ["sigma"]
    assert models.column_names("beta", (3,)) == ["beta[1]", "beta[2]", "beta[3]"]
    assert models.column_names("a", (2, 2)) == ["a[1,1]", "a[1,2]", "a[2,1]", "a[2,2]"]


@pytest.mark.parametrize("lead", [(), (7,), (3, 5)])
def test_columns_round_trip(lead):
    posterior = models.eight_schools()
    rng = np.random.default_rng(0)
    samples = {site: rng.normal(size=(*lead, *shape)) for site, shape in posterior.site_shapes.items()}
    columns = posterior.to_columns(samples)
    assert list(columns)[:4] == ["mu", "tau", "theta_tilde[1]", "theta_tilde[2]"]
    assert len(columns) == 18 and all(c.shape == lead for c in columns.values())
    np.testing.assert_array_equal(columns["theta[8]"], samples["theta"][..., 7])
    back = posterior.from_columns(columns)
    assert list(back) == list(samples)
    for site in samples:
        np.testing.assert_array_equal(back[site], samples[site])


def test_columns_bad_input():
    posterior = models.posteriordb("kidiq-kidscore_momhs")
    with pytest.raises(ValueError, match=r"Unknown sites \['gamma'\]"):
        posterior.to_columns({"gamma": np.zeros(3)})
    with pytest.raises(ValueError, match=r"Site 'beta' has shape \(10, 3\).*\(2,\)"):
        posterior.to_columns({"beta": np.zeros((10, 3))})
    with pytest.raises(ValueError, match=r"Site 'beta' is incomplete.*beta\[2\]"):
        posterior.from_columns({"beta[1]": 0.0})
    with pytest.raises(ValueError, match=r"Unknown columns \['beta\[3\]'\]"):
        posterior.from_columns({"beta[3]": 0.0})
    with pytest.raises(ValueError, match="has no reference"):
        models.eight_schools().reference_means()


def test_check_reference(key):
    posterior = models.posteriordb("kidiq_with_mom_work-kidscore_interaction_c")
    columns = list(posterior.reference)
    means = np.array([posterior.reference[c][0] for c in columns])
    sds = np.array([posterior.reference[c][1] for c in columns])
    draws = means + sds * np.asarray(jax.random.normal(key, (4, 1000, len(columns))))
    samples = posterior.from_columns({c: draws[..., i] for i, c in enumerate(columns)})
    check = models.check_reference(posterior, samples)
    assert check.passes() and check.worst_z < 4 and check.worst_sd_error < 0.1
    assert 3000 < check.min_ess < 5000  # independent draws: ESS near 4000
    assert "| beta[1] |" in check.describe()
    one_chain = models.check_reference(posterior, jax.tree.map(lambda v: v[0], samples))
    assert one_chain.columns["sigma"].mean == pytest.approx(float(draws[0, :, -1].mean()))
    biased = dict(samples, sigma=samples["sigma"] + 0.2 * sds[-1])
    check = models.check_reference(posterior, biased)
    assert not check.passes() and check.columns["sigma"].z > 4
    wide = dict(samples, sigma=samples["sigma"] + 0.3 * (samples["sigma"] - means[-1]))
    assert models.check_reference(posterior, wide).columns["sigma"].sd_error == pytest.approx(0.3, abs=0.05)
    with pytest.raises(ValueError, match=r"lack the reference parameters \['sigma'\]"):
        models.check_reference(posterior, {"beta": samples["beta"]})
    with pytest.raises(ValueError, match="no reference summary"):
        models.check_reference(models.eight_schools(), {})


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_small_linalg_matches_lapack(dtype, key):
    a = jax.random.normal(key, (11, 11), dtype=dtype)
    a = a @ a.T + 11 * jnp.eye(11, dtype=dtype)
    y = jnp.linspace(-1, 1, 11, dtype=dtype)
    factor = _small_linalg.cholesky(a)
    assert factor.dtype == dtype
    tol = 1e-5 if dtype == jnp.float32 else 1e-12
    np.testing.assert_allclose(factor, jnp.linalg.cholesky(a), rtol=tol, atol=tol)
    z = _small_linalg.forward_substitution(factor, y)
    np.testing.assert_allclose(factor @ z, y, rtol=tol, atol=tol)
    expected = stats.multivariate_normal.logpdf(
        np.asarray(y, np.float64), np.zeros(11), np.asarray(a, np.float64)
    )
    np.testing.assert_allclose(_small_linalg.mvn_zero_mean_logpdf(y, a), expected, rtol=tol)
    # On the CPU the batched log density is LAPACK-free (the regex does see LAPACK's Cholesky).
    batch = jnp.stack([a, 2 * a])
    assert LAPACK.search(jax.jit(jax.vmap(jnp.linalg.cholesky)).lower(batch).as_text())
    logpdf = jax.vmap(jax.grad(_small_linalg.mvn_zero_mean_logpdf, argnums=1), in_axes=(None, 0))
    assert LAPACK.search(jax.jit(logpdf).lower(y, batch).as_text()) is None
    # Not positive definite: NaN, as LAPACK's Cholesky gives, not a repaired value.
    assert np.isnan(_small_linalg.mvn_zero_mean_logpdf(y, -a))


@pytest.mark.parametrize("name", ["gp_pois_regr-gp_regr", "nes1976-nes"])
def test_float32(name):
    """With x64 off the data (and so the log density) is float32, and agrees with float64."""
    reference = models.posteriordb(name)
    expected, _ = log_density(reference.model, (), reference.model_kwargs, reference.reference_means())
    with jax.enable_x64(False):
        posterior = models.posteriordb(name)
        assert all(v.dtype in (jnp.float32, jnp.int32) for v in posterior.model_kwargs.values())
        params = jax.tree.map(lambda v: v.astype(jnp.float32), posterior.reference_means())
        value, _ = log_density(posterior.model, (), posterior.model_kwargs, params)
        assert value.dtype == jnp.float32
    np.testing.assert_allclose(float(value), float(expected), rtol=1e-4)
