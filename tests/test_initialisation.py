"""Where chains start: the most probable of `init_candidates` draws of the init strategy.

The ARMA(1, 1) posterior is the known-answer case: a draw with |theta| > 1 makes its error
recursion explode (log density below -1e30), and a chain started there never moves. With NumPyro's
single draw (`init_candidates=1`) seed 0 starts a chain there; with the default none does.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import init_to_uniform

import pnmcmc
from pnmcmc.models import check_reference, posteriordb
from pnmcmc.sampling.modeling import INIT_CANDIDATES, flatten_model


def _starting_log_densities(init_candidates, seed=0, num_chains=4):
    post = posteriordb("arma-arma11")
    flat = flatten_model(
        post.model, post.model_args, post.model_kwargs, rng_key=jax.random.key(seed),
        num_chains=num_chains, init_strategy=init_to_uniform, init_candidates=init_candidates,
    )  # fmt: skip
    return np.asarray(jax.vmap(flat.logdensity)(flat.init_positions))


def test_each_chain_starts_at_its_most_probable_candidate():
    single = _starting_log_densities(1)
    best = _starting_log_densities(INIT_CANDIDATES)
    assert single.min() < -1e30  # a chain NumPyro's init would freeze
    assert best.min() > -1e4, best
    # the most probable of 16 is at least as probable as each chain's first candidate would be,
    # and the chains still start at different points
    assert np.all(best > -1e4) and len(np.unique(best)) == best.size


def test_every_chain_start_is_one_of_the_strategy_draws():
    post = posteriordb("arma-arma11")
    key = jax.random.key(3)
    flat = flatten_model(
        post.model, post.model_args, post.model_kwargs, rng_key=key, num_chains=2,
        init_strategy=init_to_uniform, init_candidates=5,
    )  # fmt: skip
    # the candidates the strategy drew (flatten_model splits its key the same way)
    from numpyro.infer.util import initialize_model

    _, key_init = jax.random.split(key)
    info = initialize_model(
        jax.random.split(key_init, 10), post.model, init_strategy=init_to_uniform,
        model_args=post.model_args, model_kwargs=post.model_kwargs,
    )  # fmt: skip
    candidates = jax.vmap(lambda t: jax.flatten_util.ravel_pytree(t)[0])(info.param_info.z)
    potential = np.asarray(info.param_info.potential_energy).reshape(2, 5)
    expected = candidates[np.arange(2) * 5 + np.argmin(potential, axis=1)]
    np.testing.assert_array_equal(flat.init_positions, expected)


def test_arma_with_every_default_gets_the_posterior_and_nothing_warns():
    post = posteriordb("arma-arma11")
    with warnings.catch_warnings():
        warnings.simplefilter("error", pnmcmc.PnmcmcWarning)
        result = pnmcmc.parallel_sample(
            post.model, 500, model_args=post.model_args, model_kwargs=post.model_kwargs,
            num_warmup=500, rng_key=0, progress_bar=False,
        )  # fmt: skip
    check = check_reference(post, result.get_samples(group_by_chain=True))
    assert check.matches(), check.describe()
    assert jnp.all(jnp.std(result.positions, axis=1) > 0)
