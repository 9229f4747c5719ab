r"""The NumPyro seam: a model becomes a log density on a flat unconstrained vector.

pnmcmc's chains live on $x \in \mathbb{R}^D$, the model's latent sites mapped to an unconstrained
space by NumPyro's own bijections and concatenated (`jax.flatten_util.ravel_pytree`). The target
is $\log \pi(x) = -U(\text{unravel}(x))$ with NumPyro's potential energy $U$ (which includes the
log-Jacobians of the transforms), and NumPyro's `postprocess_fn` maps a draw back to the
constrained sites plus the model's `deterministic` sites. Nothing here traces a model by hand:
`numpyro.infer.util.initialize_model` does the work; this module only checks the input first so
that mistakes are reported in the user's terms before anything is compiled.
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from collections.abc import Callable

import jax
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro import handlers
from numpyro.infer.util import initialize_model

__all__ = ["FlatModel", "ModelError", "flatten_model"]


class ModelError(RuntimeError):
    """The model raised while pnmcmc ran it; the original exception is chained as `__cause__`."""


@dataclasses.dataclass(frozen=True)
class FlatModel:
    """A NumPyro model seen by pnmcmc.

    **Fields:**

    - `logdensity`: `x -> log pi(x)` on the flat unconstrained vector, shape (D,) -> ().
    - `postprocess`: `x -> {site: value}`, the constrained latent sites and the deterministic sites.
    - `unravel`: `x -> {site: unconstrained value}`.
    - `init_positions`: the initial flat positions, one per chain, shape (num_chains, D).
    - `latent_sites`: the names of the sampled (latent) sites, in the order of the flat vector
      (`ravel_pytree` orders a dict by key).
    """

    logdensity: Callable
    postprocess: Callable
    unravel: Callable
    init_positions: jax.Array
    latent_sites: tuple[str, ...]

    @property
    def dim(self) -> int:
        return int(self.init_positions.shape[-1])

    @property
    def dtype(self):
        return self.init_positions.dtype


def flatten_model(model, model_args, model_kwargs, *, rng_key, num_chains, init_strategy) -> FlatModel:
    """Check a NumPyro model and turn it into a [`FlatModel`][pnmcmc.modeling.FlatModel].

    **Arguments:**

    - `model`: a NumPyro model (a Python callable with `numpyro.sample` statements).
    - `model_args`, `model_kwargs`: what the model is called with.
    - `rng_key`: a JAX key for the initial positions.
    - `num_chains`: how many initial positions to draw.
    - `init_strategy`: a NumPyro init strategy such as `numpyro.infer.init_to_uniform`.

    **Returns:** a `FlatModel`. Raises `TypeError` for arguments the model does not accept,
    [`ModelError`][pnmcmc.modeling.ModelError] when the model raises, and `ValueError` for
    discrete latent sites, a model without latent sites, or a non-finite log density (or gradient)
    at the initial point, each naming the sites concerned.
    """
    if not callable(model):
        raise TypeError(f"model must be a NumPyro model (a Python function), got {type(model).__name__}.")
    model_args = tuple(model_args)
    model_kwargs = dict(model_kwargs or {})
    _check_signature(model, model_args, model_kwargs)
    key_trace, key_init = jax.random.split(rng_key)
    trace = _run(
        lambda: handlers.trace(
            handlers.substitute(handlers.seed(model, key_trace), substitute_fn=init_strategy)
        ).get_trace(*model_args, **model_kwargs),
        model,
    )
    latent = [
        name
        for name, site in trace.items()
        if site["type"] == "sample" and not site.get("is_observed", False)
    ]
    discrete = [name for name in latent if trace[name]["fn"].support.is_discrete]
    if discrete:
        raise ValueError(
            f"The model has discrete latent sites {discrete}; gradient-based kernels (MALA, HMC, NUTS) "
            "need continuous parameters. Marginalise them out in the model (sum the likelihood over "
            "their values with logsumexp and add it with numpyro.factor), or use NumPyro's own MCMC "
            "with enumeration (infer={'enumerate': 'parallel'}, needs funsor)."
        )
    if not latent:
        raise ValueError(
            "The model has no latent sample sites (every numpyro.sample site is observed), so there "
            "is nothing to sample. Check that obs= is not given for the parameters."
        )
    keys = jax.random.split(key_init, num_chains)
    try:
        info = _run(
            lambda: initialize_model(
                keys, model, init_strategy=init_strategy, model_args=model_args, model_kwargs=model_kwargs
            ),
            model,
        )
    except ModelError as error:
        if isinstance(error.__cause__, RuntimeError) and "valid initial" in str(error.__cause__):
            raise _nonfinite_error(model, model_args, model_kwargs, init_strategy, keys[0]) from None
        raise
    z = info.param_info.z
    _, unravel = ravel_pytree(jax.tree.map(lambda a: a[0], z))
    positions = jax.vmap(lambda tree: ravel_pytree(tree)[0])(z)
    potential_fn, postprocess_fn = info.potential_fn, info.postprocess_fn

    def logdensity(x):
        return -potential_fn(unravel(x))

    def postprocess(x):
        return postprocess_fn(unravel(x))

    return FlatModel(
        logdensity=logdensity,
        postprocess=postprocess,
        unravel=unravel,
        init_positions=positions,
        latent_sites=tuple(path[0].key for path, _ in jax.tree_util.tree_flatten_with_path(z)[0]),
    )


def _check_signature(model, args, kwargs):
    try:
        signature = inspect.signature(model)
    except (TypeError, ValueError):  # builtins or C callables: nothing to check up front
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as error:
        name = getattr(model, "__name__", "model")
        raise TypeError(
            f"The model cannot be called with model_args={_brief(args)} and model_kwargs keys "
            f"{sorted(kwargs)}: {error}. The model's signature is {name}{signature}; pass only "
            "the arguments it accepts."
        ) from None


def _brief(args):
    return "(" + ", ".join(type(a).__name__ for a in args) + ("," if len(args) == 1 else "") + ")"


def _run(thunk, model):
    """Run something that runs the model, and chain any exception it raises into a ModelError."""
    try:
        return thunk()
    except Exception as error:
        name = getattr(model, "__name__", "model")
        raise ModelError(
            f"The model {name!r} raised {type(error).__name__} while pnmcmc ran it with the given "
            f"model_args and model_kwargs: {error}. Check the model and its arguments (run the model "
            "once under numpyro.handlers.seed to debug it)."
        ) from error


def _nonfinite_error(model, args, kwargs, init_strategy, key):
    """Name the sites whose log probability (or value) is not finite at the initial point."""
    substituted = handlers.substitute(handlers.seed(model, key), substitute_fn=init_strategy)
    try:
        trace = handlers.trace(substituted).get_trace(*args, **kwargs)
    except Exception:  # the diagnosis is best effort: fall back to the generic message
        trace = {}
    bad = []
    for name, site in trace.items():
        if site["type"] != "sample":
            continue
        value = site["value"]
        with warnings.catch_warnings():  # the out-of-support warning is what we are diagnosing
            warnings.simplefilter("ignore")
            log_prob = site["fn"].log_prob(value)
        if not (np.all(np.isfinite(np.asarray(value))) and np.all(np.isfinite(np.asarray(log_prob)))):
            bad.append(name)
    where = (
        f"the log probability of sites {bad} is not finite (-inf or NaN)"
        if bad
        else "the log density or its gradient is not finite"
    )
    return ValueError(
        f"The log density is not finite at the initial point: {where}. pnmcmc needs a finite log "
        "density and gradient to start. Check the data for NaN/inf and values outside a "
        "distribution's support, the priors, and the init_strategy (e.g. init_to_median(), or "
        "init_to_value(values={...}) with values inside the support)."
    )
