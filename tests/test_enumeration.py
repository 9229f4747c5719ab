"""Discrete latent sites marked for enumeration: summed out by NumPyro (funsor), drawn afterwards.

Synthetic versions of NumPyro's Gaussian mixture and HMM examples. Compilation of the enumerated
potential's derivatives dominates the time, so each model is sampled once per module.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import numpyro.ops.provenance
import pytest
from numpyro.contrib.control_flow import scan
from numpyro.diagnostics import effective_sample_size
from numpyro.distributions.transforms import OrderedTransform
from numpyro.infer import MCMC, NUTS, init_to_uniform

import pnmcmc
from pnmcmc.sampling.modeling import flatten_model

pytestmark = [
    pytest.mark.slow,  # still run in CI; deselect locally with -m "not slow"
    # 300 MALA draws of a label-identified mixture: R-hat of the gap is ~1.04, truly flagged. The
    # tests judge the draws against NumPyro and the truth with their own Monte Carlo errors.
    pytest.mark.filterwarnings("ignore::pnmcmc.ConvergenceWarning"),
]

TRUE_LOC = np.array([-2.0, 2.0])
TRUE_WEIGHT = 0.3  # of the second component
NOISE = 0.5


def ordered_locs():
    # Ordered component locations: the labels are identified, so means can be compared.
    return dist.TransformedDistribution(dist.Normal(0.0, 3.0).expand([2]).to_event(1), OrderedTransform())


def mixture(y):
    weights = numpyro.sample("weights", dist.Dirichlet(jnp.ones(2)))
    loc = numpyro.sample("loc", ordered_locs())
    scale = numpyro.sample("scale", dist.HalfNormal(1.0))
    numpyro.deterministic("gap", loc[1] - loc[0])  # of the continuous sites only
    with numpyro.plate("data", y.shape[0]):
        z = numpyro.sample("z", dist.Categorical(weights), infer={"enumerate": "parallel"})
        numpyro.deterministic("centre", loc[z])  # of the summed-out z
        numpyro.sample("y", dist.Normal(loc[z], scale), obs=y)


def mixture_data():
    k1, k2 = jax.random.split(jax.random.key(0))
    z = np.asarray(jax.random.bernoulli(k1, TRUE_WEIGHT, (40,)), dtype=int)
    y = TRUE_LOC[z] + NOISE * np.asarray(jax.random.normal(k2, (40,)))
    # Points between the components, whose assignment stays uncertain: without them every z would be
    # almost certain, and a test of its conditional posterior would have no power.
    return np.concatenate([y, [-0.3, 0.0, 0.2, 0.4]]), z


Y, Z = mixture_data()
SAMPLE = dict(
    model_kwargs={"y": Y},
    kernel="mala",  # its parallel warmup is the sequential warmup's twin to ~1e-11
    num_chains=2,
    num_warmup=400,  # 200 leaves a chain of this seed badly adapted (acceptance 0.2, expanding)
    rng_key=3,
    progress_bar=False,
)


@pytest.fixture(scope="module")
def parallel():
    return pnmcmc.parallel_sample(mixture, 300, solver=pnmcmc.DEER(segment=16), **SAMPLE)


@pytest.fixture(scope="module")
def sequential():
    return pnmcmc.sequential_sample(mixture, 300, **SAMPLE)


def mean_and_mcse(draws):
    """Posterior mean and its Monte Carlo standard error from (chain, draw) draws."""
    draws = np.asarray(draws)
    ess = effective_sample_size(draws)
    return draws.mean(), draws.std() / np.sqrt(ess)


def scalar_sites(samples):
    """(C, T) draws of every scalar of the continuous sites, named e.g. loc[1]."""
    out = {"scale": samples["scale"], "weights[1]": samples["weights"][..., 1]}
    out.update({f"loc[{k}]": samples["loc"][..., k] for k in range(2)})
    return out


def test_mixture_matches_numpyro_nuts_and_the_truth(parallel):
    mcmc = MCMC(NUTS(mixture), num_warmup=300, num_samples=1000, num_chains=1, progress_bar=False)
    mcmc.run(jax.random.key(1), y=Y)
    reference = scalar_sites(mcmc.get_samples(group_by_chain=True))
    ours = scalar_sites(parallel.get_samples(group_by_chain=True))
    assert set(parallel.samples) == {"weights", "loc", "scale", "gap"}  # z (and centre) summed out
    for name, draws in ours.items():
        mean, mcse = mean_and_mcse(draws)
        ref_mean, ref_mcse = mean_and_mcse(reference[name])
        assert abs(mean - ref_mean) < 4 * np.hypot(mcse, ref_mcse), (name, mean, ref_mean, mcse, ref_mcse)
    for k in range(2):
        draws = np.asarray(ours[f"loc[{k}]"])
        assert abs(draws.mean() - TRUE_LOC[k]) < 4 * draws.std(), (k, draws.mean())


def test_parallel_equals_sequential(parallel, sequential):
    assert isinstance(parallel.solver, pnmcmc.DEER) and isinstance(sequential.solver, pnmcmc.Sequential)
    # Digit-for-digit twins are promised for contracting chains (on expanding ones round-off grows).
    assert np.all(np.asarray(parallel.sample_stats["lle"]) < 0)  # the sequential run skips the LLE
    assert np.all(np.isnan(np.asarray(sequential.sample_stats["lle"])))
    np.testing.assert_allclose(parallel.warmup.step_size, sequential.warmup.step_size, rtol=1e-8)
    assert np.max(np.abs(np.asarray(parallel.positions) - np.asarray(sequential.positions))) <= 1e-8
    assert np.array_equal(parallel.sample_stats["accepted"], sequential.sample_stats["accepted"])


def component_probabilities(samples):
    """P(z_i = 1 | weights, loc, scale, y_i) for every draw (rows) and data point (columns)."""
    w, loc, scale = (np.asarray(samples[k]) for k in ("weights", "loc", "scale"))
    log_p = np.log(w)[:, None, :] - 0.5 * ((Y[None, :, None] - loc[:, None, :]) / scale[:, None, None]) ** 2
    return 1.0 / (1.0 + np.exp(log_p[..., 0] - log_p[..., 1]))


def test_infer_discrete_draws_the_conditional_posterior(parallel):
    samples = parallel.get_samples()
    prob = component_probabilities(samples)
    draws = parallel.infer_discrete(rng_key=0)
    z = np.asarray(draws["z"])
    assert z.shape == prob.shape and set(np.unique(z)) <= {0, 1}
    # Each z_i draw is Bernoulli(prob) given its continuous draw: the average over draws agrees
    # with the average probability within Monte Carlo error (independent draws given the chains).
    se = np.sqrt((prob * (1 - prob)).mean(axis=0) / prob.shape[0]) + 1e-3
    assert np.all(np.abs(z.mean(axis=0) - prob.mean(axis=0)) < 5 * se)
    # The deterministic site is recomputed with the drawn z, and the data's labels are recovered.
    np.testing.assert_array_equal(draws["centre"], np.take_along_axis(np.asarray(samples["loc"]), z, axis=1))
    assert np.mean(np.round(z.mean(axis=0))[: Z.size] == Z) >= 0.95
    # Temperature 0: the most probable value given each continuous draw.
    best = parallel.infer_discrete(rng_key=0, temperature=0)
    np.testing.assert_array_equal(best["z"], (prob > 0.5).astype(int))
    # Keys: the same key, the same draws; chains keep their axis on request.
    by_chain = parallel.infer_discrete(rng_key=0, group_by_chain=True)
    np.testing.assert_array_equal(np.asarray(by_chain["z"]).reshape(z.shape), z)
    assert by_chain["z"].shape == (2, 300, Y.size)
    assert not np.array_equal(parallel.infer_discrete(rng_key=1)["z"], z)


def test_deterministic_sites_of_the_discrete_sites_come_only_from_infer_discrete(parallel, sequential):
    # NumPyro's postprocess_fn computes centre = loc[z] with a prior draw of z: left out, never wrong.
    assert parallel.discrete.deterministic == ("gap", "centre")
    assert parallel.discrete.dependent == ("centre",)
    for res in (parallel, sequential):
        assert "centre" not in res.samples
        assert "centre" not in res.get_samples() and "centre" not in res.get_samples(group_by_chain=True)
        assert not [row for row in res.summary().index if row.startswith("centre")]
        assert "deterministic sites ['centre'] that depend on them left out" in res.describe()
    # The independent site stays, computed from each draw as the model does.
    samples = parallel.get_samples()
    loc = np.asarray(samples["loc"])
    np.testing.assert_allclose(samples["gap"], loc[:, 1] - loc[:, 0], rtol=1e-13, atol=0)
    draws = parallel.infer_discrete(rng_key=0)
    assert set(draws) == {"z", "gap", "centre"}
    np.testing.assert_allclose(draws["gap"], samples["gap"], rtol=1e-13, atol=0)
    np.testing.assert_array_equal(draws["centre"], np.take_along_axis(loc, np.asarray(draws["z"]), axis=1))


def three_components(y):
    weights = numpyro.sample("weights", dist.Dirichlet(jnp.ones(3)))
    loc = numpyro.sample("loc", dist.Normal(0.0, 3.0).expand([3]).to_event(1))
    scale = numpyro.sample("scale", dist.HalfNormal(1.0))
    with numpyro.plate("data", y.shape[0]):
        z = numpyro.sample("z", dist.Categorical(weights), infer={"enumerate": "parallel"})
        centre = numpyro.deterministic("centre", loc[z])
        numpyro.deterministic("residual", y - centre)  # through another deterministic site
        # Equal at z = 0 and z = 2: comparing the outputs at the ends of the support would miss it.
        numpyro.deterministic("middle", z == 1)
        numpyro.deterministic("scales", jnp.zeros_like(z) + scale)  # z's shape, not its value
        numpyro.sample("y", dist.Normal(centre, scale), obs=y)


def test_dependence_on_the_enumerated_sites_follows_the_data_flow():
    flat = flatten_model(
        three_components,
        (),
        {"y": Y[:6]},
        rng_key=jax.random.key(0),
        num_chains=1,
        init_strategy=init_to_uniform,
    )
    assert flat.discrete.dependent == ("centre", "residual", "middle")
    values = flat.postprocess(flat.init_positions[0])
    assert set(values) == {"weights", "loc", "scale", "scales"}
    np.testing.assert_array_equal(values["scales"], np.full(6, values["scale"]))


def test_untraceable_dependence_leaves_every_deterministic_site_out(monkeypatch):
    def untraceable(fn, **inputs):
        raise NotImplementedError("a primitive the provenance tracing does not know")

    monkeypatch.setattr(numpyro.ops.provenance, "eval_provenance", untraceable)
    flat = flatten_model(
        three_components,
        (),
        {"y": Y[:6]},
        rng_key=jax.random.key(0),
        num_chains=1,
        init_strategy=init_to_uniform,
    )
    assert flat.discrete.dependent == flat.discrete.deterministic
    assert set(flat.postprocess(flat.init_positions[0])) == {"weights", "loc", "scale"}


def test_infer_discrete_needs_enumerated_sites(parallel):
    with pytest.raises(ValueError, match="no discrete sites marked for enumeration"):
        dataclasses.replace(parallel, discrete=None).infer_discrete()
    with pytest.raises(ValueError, match="temperature must be 1"):
        parallel.infer_discrete(temperature=0.5)


def hmm(y):
    trans = numpyro.sample("trans", dist.Dirichlet(jnp.array([[4.0, 1.0], [1.0, 4.0]])).to_event(1))
    loc = numpyro.sample("loc", ordered_locs())

    def step(state, y_t):
        state = numpyro.sample("state", dist.Categorical(trans[state]), infer={"enumerate": "parallel"})
        numpyro.deterministic("mean", loc[state])
        numpyro.sample("y", dist.Normal(loc[state], NOISE), obs=y_t)
        return state, None

    scan(step, 0, y)
    numpyro.deterministic("stay", jnp.diagonal(trans))


def test_hidden_markov_model_with_scan():
    states = (np.arange(40) // 8) % 2  # blocks of 8 steps in each state
    y = TRUE_LOC[states] + NOISE * np.asarray(jax.random.normal(jax.random.key(1), (40,)))
    res = pnmcmc.parallel_sample(
        hmm,
        200,
        model_kwargs={"y": y},
        kernel="mala",
        solver=pnmcmc.DEER(segment=16),
        num_chains=2,
        num_warmup=150,
        progress_bar=False,
    )
    loc = np.asarray(res.samples["loc"]).reshape(-1, 2)
    assert np.all(np.abs(loc.mean(axis=0) - TRUE_LOC) < 4 * loc.std(axis=0)), loc.mean(axis=0)
    assert np.asarray(res.samples["trans"]).reshape(-1, 2, 2)[:, [0, 1], [0, 1]].mean() > 0.6
    # The per-step means depend on the states, which cannot be drawn here: left out, and said so.
    assert res.discrete.dependent == ("mean",) and set(res.samples) == {"trans", "loc", "stay"}
    np.testing.assert_array_equal(res.samples["stay"], np.diagonal(res.samples["trans"], axis1=-2, axis2=-1))
    assert "inside scan, which infer_discrete() does not support" in res.describe()
    with pytest.raises(
        ValueError, match=r"(?s)\['state'\] are inside numpyro.contrib.control_flow.scan.*sites \['mean'\]"
    ):
        res.infer_discrete()
