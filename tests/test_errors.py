"""Bad input to `parallel_sample` gets a clear error, raised before anything is compiled."""

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import init_to_value

import pnmcmc.chains
from pnmcmc.modeling import ModelError
from pnmcmc.sample import parallel_sample, sequential_sample

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

    monkeypatch.setattr(pnmcmc.chains.Compiled, "__call__", fail)


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

    with pytest.raises(ValueError, match=r"discrete latent sites \['z', 'k'\].*[Mm]arginalise"):
        run(mixture)


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


def test_invalid_initial_value_is_reported():
    # init_to_value outside the support: NumPyro's validation raises inside the model.
    with pytest.raises((ValueError, ModelError), match="sigma|scale"):
        run(init_strategy=init_to_value(values={"sigma": -1.0}))


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
