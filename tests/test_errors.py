"""Bad input to `parallel_sample` gets a clear error, raised before anything is compiled."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import init_to_uniform, init_to_value

import pnmcmc.sampling.chains
from pnmcmc.sampling.modeling import ModelError, flatten_model
from pnmcmc.sampling.sample import parallel_sample, sequential_sample

Y = jnp.array([0.3, -1.2, 0.8, 1.9])


def normal_model(y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 3.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
    numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


@pytest.fixture(autouse=True)
def nothing_compiled(monkeypatch):
    """Every error here must come before the first compiled program runs."""

    def fail(self, *args):
        raise AssertionError("a program was compiled before the input was rejected")

    monkeypatch.setattr(pnmcmc.sampling.chains.Compiled, "__call__", fail)


def run(model=normal_model, n_steps=10, **kwargs):
    kwargs.setdefault("model_kwargs", {"y": Y})
    kwargs.setdefault("progress_bar", False)
    return parallel_sample(model, n_steps, **kwargs)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_steps": 0}, ValueError, "n_steps must be >= 1"),
        ({"n_steps": -5}, ValueError, "n_steps must be >= 1"),
        ({"n_steps": 10.0}, TypeError, "n_steps must be an int"),
        ({"n_steps": True}, TypeError, "n_steps must be an int"),
        ({"num_chains": 0}, ValueError, "num_chains must be >= 1"),
        ({"num_warmup": -1}, ValueError, "num_warmup must be >= 0"),
        ({"init_candidates": 0}, ValueError, "init_candidates must be >= 1"),
        ({"init_candidates": 2.0}, TypeError, "init_candidates must be an int"),
        ({"rng_key": "seed"}, TypeError, "rng_key must be an int seed or a single JAX key"),
        (
            {"kernel": "langevin"},
            ValueError,
            r"Unknown kernel 'langevin'; valid names are \['mala', 'hmc', 'nuts'\]",
        ),
        ({"kernel": 3}, TypeError, "kernel must be one of"),
        (
            {"solver": "newton"},
            ValueError,
            r"Unknown solver 'newton'; valid names are \['auto', 'sequential'",
        ),
        ({"solver": 1e-3}, TypeError, "solver must be 'auto'"),
        (
            {"warmup": "stan"},
            ValueError,
            r"Unknown warmup 'stan'; valid names are \['parallel', 'blackjax'\]",
        ),
        ({"step_size": -0.1}, ValueError, "step_size must be finite and > 0"),
        ({"step_size": [0.1, 0.2, 0.3]}, ValueError, "one per chain"),
        ({"inverse_mass_matrix": jnp.ones(3)}, ValueError, r"shape \(D,\) = \(2,\).*\['mu', 'sigma'\]"),
        ({"inverse_mass_matrix": jnp.array([1.0, -1.0])}, ValueError, "finite entries > 0"),
        ({"model_kwargs": [Y]}, TypeError, "model_kwargs must be a dict"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        run(**kwargs)


def test_sequential_twin_checks_the_same():
    with pytest.raises(ValueError, match="num_chains must be >= 1"):
        sequential_sample(normal_model, 10, model_kwargs={"y": Y}, num_chains=0, progress_bar=False)


def test_unknown_model_keyword():
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'x'.*normal_model\(y=None\)"):
        run(model_kwargs={"y": Y, "x": 1.0})


def test_too_many_positional_arguments():
    with pytest.raises(TypeError, match="The model cannot be called with model_args"):
        run(model_args=(Y, Y), model_kwargs=None)


def test_discrete_latent_sites_are_named():
    def mixture(y=None):
        z = numpyro.sample("z", dist.Bernoulli(0.5))
        k = numpyro.sample("k", dist.Categorical(jnp.ones(3) / 3))
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(mu + z + k, 1.0), obs=y)

    with pytest.raises(
        ValueError,
        match=r"discrete latent sites \['z', 'k'\] that are not marked for enumeration.*"
        r"infer=\{'enumerate': 'parallel'\}.*pip install \"pnmcmc\[enum\]\".*[Mm]arginalise",
    ):
        run(mixture)


def enumerated(mark="parallel", distribution=None):
    def mixture(y=None):
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        with numpyro.plate("data", y.shape[0]):
            z = numpyro.sample("z", distribution or dist.Bernoulli(0.5), infer={"enumerate": mark})
            numpyro.sample("y", dist.Normal(mu[jnp.clip(z, 0, 1).astype(int)], 1.0), obs=y)

    return mixture


def test_only_unmarked_discrete_sites_are_named():
    def partly_marked(y=None):
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        with numpyro.plate("data", y.shape[0]):
            z = numpyro.sample("z", dist.Bernoulli(0.5), infer={"enumerate": "parallel"})
            k = numpyro.sample("k", dist.Bernoulli(0.5))
            numpyro.sample("y", dist.Normal(mu + z + k, 1.0), obs=y)

    with pytest.raises(ValueError, match=r"discrete latent sites \['k'\] that are not marked"):
        run(partly_marked)


def test_sequential_enumeration_is_refused():
    with pytest.raises(
        ValueError, match=r"\['z'\] that are not marked.*marked \{'z': 'sequential'\}.*only 'parallel'"
    ):
        run(enumerated(mark="sequential"))


def test_enumerating_an_infinite_support_is_refused():
    with pytest.raises(
        ValueError, match=r"sites \['z'\] are marked for enumeration.*\(Poisson\) have no finite"
    ):
        run(enumerated(distribution=dist.Poisson(1.0)))


def test_enumeration_without_funsor_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "funsor", None)  # `import funsor` now raises ImportError
    with pytest.raises(
        ImportError, match=r"\['z'\] are marked for enumeration.*pip install \"pnmcmc\[enum\]\""
    ):
        run(enumerated())


def test_enumerated_model_is_accepted():
    # The error tests above have power only if a well-formed enumerated model passes the checks:
    # the chains then see only the continuous site, and the discrete one is kept for infer_discrete.
    flat = flatten_model(
        enumerated(), (), {"y": Y}, rng_key=jax.random.key(0), num_chains=2, init_strategy=init_to_uniform
    )
    assert flat.latent_sites == ("mu",) and flat.dim == 2
    assert flat.discrete.names == ("z",) and flat.discrete.in_scan == ()
    assert np.isfinite(flat.logdensity(flat.init_positions[0]))


def test_only_enumerated_sites_leave_nothing_to_sample():
    def all_discrete(y=None):
        with numpyro.plate("data", y.shape[0]):
            z = numpyro.sample("z", dist.Bernoulli(0.5), infer={"enumerate": "parallel"})
            numpyro.sample("y", dist.Normal(z, 1.0), obs=y)

    with pytest.raises(
        ValueError, match=r"Every latent site of the model \(\['z'\]\) is discrete and enumerated"
    ):
        run(all_discrete)


def test_model_without_latent_sites():
    def observed_only(y=None):
        numpyro.sample("y", dist.Normal(0.0, 1.0), obs=y)

    with pytest.raises(ValueError, match="no latent sample sites"):
        run(observed_only)


def test_a_model_that_raises_is_chained():
    def broken(y=None):
        numpyro.sample("mu", dist.Normal(0.0, 1.0))
        raise KeyError("no such column")

    with pytest.raises(ModelError, match="'broken' raised KeyError") as info:
        run(broken)
    assert isinstance(info.value.__cause__, KeyError)


def test_nonfinite_data_names_the_site():
    # NumPyro warns about the out-of-support value itself; the error names the site.
    with pytest.warns(UserWarning, match="Out-of-support"):
        with pytest.raises(ValueError, match=r"not finite at the initial point.*sites \['y'\]"):
            run(model_kwargs={"y": Y.at[1].set(jnp.nan)})


def test_nonfinite_factor_names_the_site():
    def impossible():
        numpyro.sample("mu", dist.Normal(0.0, 1.0))
        numpyro.factor("constraint", -jnp.inf)

    with pytest.raises(ValueError, match=r"sites \['constraint'\]"):
        run(impossible, model_kwargs=None)


def test_init_value_outside_the_support_is_a_bad_init_value():
    # Not "the model raised": the value, the site and its support are named, with what to do.
    with pytest.raises(ValueError) as info:
        run(init_strategy=init_to_value(values={"sigma": -1.0}))
    assert not isinstance(info.value, ModelError)
    message = str(info.value)
    for part in ("Bad init value for site 'sigma'", "-1.", "Positive", "HalfNormal", "inside the support"):
        assert part in message, (part, message)


def vector_model(y=None):
    scales = numpyro.sample("scales", dist.HalfNormal(1.0).expand([3]).to_event(1))
    numpyro.sample("y", dist.Normal(0.0, scales.sum()), obs=y)


@pytest.mark.parametrize(
    "value, match",
    [
        (jnp.array([1.0, -2.0, -3.0]), r"site 'scales': 2 of its 3 values are outside the site's support"),
        (jnp.ones(2), r"site 'scales': it has shape \(2,\), but the site has shape \(3,\)"),
        (1.0, r"site 'scales': it has shape \(\), but the site has shape \(3,\)"),
    ],
)
def test_bad_init_values_of_a_vector_site(value, match):
    with pytest.raises(ValueError, match=match):
        run(vector_model, init_strategy=init_to_value(values={"scales": value}))


def test_init_value_inside_the_support_is_used():
    flat = flatten_model(
        normal_model,
        (),
        {"y": Y},
        rng_key=jax.random.key(0),
        num_chains=2,
        init_strategy=init_to_value(values={"mu": 0.5, "sigma": 2.0}),
    )
    # Flat order (mu, sigma), sigma unconstrained by log.
    np.testing.assert_allclose(flat.init_positions, [[0.5, np.log(2.0)]] * 2)


def test_invalid_parameters_from_the_model_are_still_a_model_error():
    # The same NumPyro ValueError as for a negative init sigma, but caused by the model's own input.
    def bad_scale(scale, y=None):
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(mu, scale), obs=y)

    with pytest.raises(ModelError, match="'bad_scale' raised ValueError.*invalid scale") as info:
        run(bad_scale, model_args=(-1.0,))
    assert isinstance(info.value.__cause__, ValueError)


def test_init_strategy_must_be_callable():
    with pytest.raises(TypeError, match="init_strategy must be a NumPyro init strategy"):
        run(init_strategy={"sigma": 1.0})


def test_kernel_object_without_interface():
    class NotAKernel:
        step_size = 0.1

    with pytest.raises(TypeError, match=r"missing \['noise', 'step', 'info', 'target_acceptance'\]"):
        run(kernel=NotAKernel())


def test_blackjax_warmup_cannot_fix_parameters():
    with pytest.raises(ValueError, match="warmup='blackjax' adapts both"):
        run(warmup="blackjax", step_size=0.1, num_warmup=10)


def test_errors_do_not_depend_on_numpy_ints():
    result = np.int64(0)
    with pytest.raises(ValueError, match="n_steps must be >= 1"):
        run(n_steps=result)
