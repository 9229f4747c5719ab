"""Models from NumPyro's examples and tutorials, with synthetic data, for `benchmarks/defaults.py`.

Each factory returns an `Example` (model, model_args, model_kwargs) like `pnmcmc.models.Posterior`;
the data are drawn from the model's own generative story with a fixed seed (the examples download
their data, which these benchmarks must not). `agreement` compares two samplers' draws.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.diagnostics import effective_sample_size

import pnmcmc


class Example(NamedTuple):
    model: object
    model_args: tuple
    model_kwargs: dict


def horseshoe() -> Example:
    """Regularised horseshoe regression (NumPyro's sparse-regression examples): 100 observations,
    20 covariates of which 3 matter."""
    rng = np.random.default_rng(0)
    n, d = 100, 20
    x = rng.normal(size=(n, d))
    beta = np.zeros(d)
    beta[:3] = (2.0, -1.5, 1.0)
    y = x @ beta + 0.5 * rng.normal(size=n)

    def model(x, y=None):
        tau = numpyro.sample("tau", dist.HalfCauchy(1.0))
        lambdas = numpyro.sample("lambdas", dist.HalfCauchy(jnp.ones(x.shape[1])))
        c2 = numpyro.sample("c2", dist.InverseGamma(2.0, 2.0))
        shrunk = jnp.sqrt(c2 * lambdas**2 / (c2 + tau**2 * lambdas**2))
        coefficients = numpyro.sample("beta", dist.Normal(0.0, tau * shrunk))
        sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
        numpyro.sample("y", dist.Normal(x @ coefficients, sigma), obs=y)

    return Example(model, (jnp.asarray(x),), {"y": jnp.asarray(y)})


def ucbadmit() -> Example:
    """The UCBadmit generalised linear mixed model (NumPyro's example): admissions by department
    and gender, a varying intercept per department."""
    rng = np.random.default_rng(1)
    departments = 6
    applications = rng.integers(50, 800, size=(departments, 2))
    dept_effect = rng.normal(0.0, 1.2, size=departments)
    logits = dept_effect[:, None] + np.array([0.0, -0.1])[None, :]
    admitted = rng.binomial(applications, 1 / (1 + np.exp(-logits)))
    dept = np.repeat(np.arange(departments), 2)
    male = np.tile([1.0, 0.0], departments)

    def model(dept, male, applications, admit=None):
        mean = numpyro.sample("mean", dist.Normal(0.0, 4.0))
        scale = numpyro.sample("scale", dist.HalfNormal(1.0))
        intercept = numpyro.sample("intercept", dist.Normal(mean, scale).expand([departments]))
        slope = numpyro.sample("male_effect", dist.Normal(0.0, 1.0))
        numpyro.sample("admit", dist.Binomial(applications, logits=intercept[dept] + slope * male), obs=admit)

    kwargs = {"admit": jnp.asarray(admitted.ravel())}
    return Example(model, (jnp.asarray(dept), jnp.asarray(male), jnp.asarray(applications.ravel())), kwargs)


def funnel() -> Example:
    """Neal's funnel, centred (NumPyro's reparameterisation example): hard for every sampler."""

    def model(dim=9):
        y = numpyro.sample("y", dist.Normal(0.0, 3.0))
        numpyro.sample("x", dist.Normal(0.0, jnp.exp(y / 2)).expand([dim]))

    return Example(model, (), {})


def baseball() -> Example:
    """Partially pooled batting averages (NumPyro's baseball example): 18 players, 45 at-bats each."""
    rng = np.random.default_rng(2)
    players, at_bats = 18, 45
    ability = rng.normal(-1.0, 0.3, size=players)
    hits = rng.binomial(at_bats, 1 / (1 + np.exp(-ability)))

    def model(at_bats, hits=None):
        mu = numpyro.sample("mu", dist.Normal(-1.0, 1.0))
        sigma = numpyro.sample("sigma", dist.HalfCauchy(1.0))
        with numpyro.plate("players", at_bats.shape[0]):
            theta = numpyro.sample("theta", dist.Normal(mu, sigma))
            numpyro.sample("hits", dist.Binomial(at_bats, logits=theta), obs=hits)

    return Example(model, (jnp.full(players, at_bats),), {"hits": jnp.asarray(hits)})


def mixture() -> Example:
    """A two-component Gaussian mixture with the assignments enumerated (NumPyro's Gaussian
    mixture example): needs `pnmcmc[enum]`."""
    rng = np.random.default_rng(3)
    data = np.concatenate([rng.normal(-2.0, 1.0, 60), rng.normal(2.5, 1.0, 40)])

    def model(data):
        weights = numpyro.sample("weights", dist.Dirichlet(jnp.ones(2)))
        locs = numpyro.sample("locs", dist.TransformedDistribution(
            dist.Normal(0.0, 5.0).expand([2]), dist.transforms.OrderedTransform()))  # fmt: skip
        scale = numpyro.sample("scale", dist.HalfNormal(2.0))
        with numpyro.plate("data", data.shape[0]):
            z = numpyro.sample("z", dist.Categorical(weights), infer={"enumerate": "parallel"})
            numpyro.sample("obs", dist.Normal(locs[z], scale), obs=data)

    return Example(model, (jnp.asarray(data),), {})


def eight_schools_centered() -> Example:
    post = pnmcmc.models.eight_schools_centered()
    return Example(post.model, post.model_args, post.model_kwargs)


MODELS = {
    "horseshoe": horseshoe,
    "ucbadmit": ucbadmit,
    "funnel": funnel,
    "baseball": baseball,
    "mixture": mixture,
    "eight_schools_centered": eight_schools_centered,
}


def agreement(first: dict, second: dict) -> tuple[float, str]:
    """`(worst, parameter)`: the largest |difference of posterior means| between two samplers'
    draws (site -> (chains, draws, ...)) in combined Monte Carlo standard errors, over every scalar
    parameter of the sites both have (discrete sites left out)."""
    worst, where = 0.0, "-"
    for name, a in first.items():
        if name not in second:
            continue
        a, b = np.asarray(a, float), np.asarray(second[name], float)
        if a.shape[2:] != b.shape[2:]:
            continue
        for index in np.ndindex(*a.shape[2:]):
            x, y = a[(slice(None), slice(None), *index)], b[(slice(None), slice(None), *index)]
            mcse2 = sum(np.var(v) / max(float(effective_sample_size(v)), 1.0) for v in (x, y))
            if not mcse2 > 0:
                continue
            z = abs(x.mean() - y.mean()) / math.sqrt(mcse2)
            if z > worst:
                worst, where = float(z), name + (str(list(index)) if index else "")
    return worst, where


def _check():  # every model traces and has latent sites
    for name, make in MODELS.items():
        example = make()
        with numpyro.handlers.seed(rng_seed=0):
            trace = numpyro.handlers.trace(example.model).get_trace(
                *example.model_args, **example.model_kwargs
            )
        assert any(site["type"] == "sample" and not site["is_observed"] for site in trace.values()), name


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    _check()
    print("all example models trace")
