r"""The NumPyro seam: a model becomes a log density on a flat unconstrained vector.

pnmcmc's chains live on $x \in \mathbb{R}^D$, the model's latent sites mapped to an unconstrained
space by NumPyro's own bijections and concatenated (`jax.flatten_util.ravel_pytree`). The target
is $\log \pi(x) = -U(\text{unravel}(x))$ with NumPyro's potential energy $U$ (which includes the
log-Jacobians of the transforms), and NumPyro's `postprocess_fn` maps a draw back to the
constrained sites plus the model's `deterministic` sites. Nothing here traces a model by hand:
`numpyro.infer.util.initialize_model` does the work; this module only checks the input first so
that mistakes are reported in the user's terms before anything is compiled.

Discrete latent sites marked `infer={"enumerate": "parallel"}` are summed out of the potential by
NumPyro itself (`initialize_model` builds the enumerated potential with funsor, as for NumPyro's
NUTS), so the chains see only the continuous sites; [`DiscreteSites`][pnmcmc.sampling.modeling.DiscreteSites]
then draws the discrete ones given each continuous draw with NumPyro's `infer_discrete`. NumPyro's
`postprocess_fn` computes the deterministic sites with a value of the discrete sites drawn from
their prior, so those that depend on a discrete site are left out of `postprocess` (and recomputed,
correctly, by `DiscreteSites.draw`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro import handlers
from numpyro.distributions import constraints
from numpyro.infer.util import initialize_model

__all__ = ["ENUM_INSTALL", "DiscreteSites", "FlatModel", "ModelDensity", "ModelError", "flatten_model"]

ENUM_INSTALL = 'pip install "pnmcmc[enum]"'
"""How to install what enumerated discrete sites need (funsor)."""


class ModelError(RuntimeError):
    """The model raised while pnmcmc ran it; the original exception is chained as `__cause__`."""


@dataclasses.dataclass(frozen=True)
class DiscreteSites:
    """The enumerated discrete sites of a model, and NumPyro's `infer_discrete` for them.

    The chains sample the continuous sites of the marginal model (the discrete sites summed out);
    `draw` samples the discrete sites from their conditional posterior given one continuous draw,
    so that a continuous draw and its discrete draw together are a draw from the joint posterior.

    **Fields:**

    - `names`: the enumerated sites, in model order.
    - `in_scan`: those inside `numpyro.contrib.control_flow.scan`, which NumPyro's
      `infer_discrete` does not support.
    - `deterministic`: the model's deterministic sites, all of them recomputed by `draw` with the
      discrete draws.
    - `dependent`: those of `deterministic` whose value depends on an enumerated site. NumPyro's
      `postprocess_fn` (and its MCMC) computes them with a value of the discrete sites drawn from
      their prior, which disagrees with the data, so `FlatModel.postprocess` leaves them out: they
      are not in `SampleResult.samples`, and only `draw` (`SampleResult.infer_discrete`) gives them.
      Found by NumPyro's provenance tracking, which follows the data flow from the enumerated
      values through one abstract run of the model: a site is dependent if any operation on the
      way may pass an enumerated value on (conservative: inside `scan`, `cond` or `while_loop`
      every output counts as depending on every input).
    - `draw`: `(keys (T,), {continuous site: (T, ...)}, temperature) -> {site: (T, ...)}` for the
      enumerated and deterministic sites, compiled; `temperature` 1 samples, 0 takes the most
      probable joint value (Viterbi-like).
    """

    names: tuple[str, ...]
    in_scan: tuple[str, ...]
    deterministic: tuple[str, ...]
    dependent: tuple[str, ...]
    draw: Callable

    def sample(self, samples: dict, latent_sites, rng_key, temperature: int = 1) -> dict:
        """`{site: (C, T, ...)}` for the `(C, T, ...)` draws `samples` of the continuous `latent_sites`."""
        if temperature not in (0, 1):
            raise ValueError(
                f"temperature must be 1 (sample) or 0 (most probable values), got {temperature!r}."
            )
        if self.in_scan:
            raise ValueError(
                f"The enumerated sites {list(self.in_scan)} are inside numpyro.contrib.control_flow.scan, "
                "which NumPyro's infer_discrete does not support, so their posterior cannot be drawn "
                "here. The continuous draws are still exact; draw the discrete states from them with a "
                "forward-filtering backward-sampling pass of your own"
                + (
                    f", and compute from those the deterministic sites {list(self.dependent)}, which "
                    "depend on them (they are left out of the samples)."
                    if self.dependent
                    else "."
                )
            )
        if isinstance(rng_key, (int, np.integer)) and not isinstance(rng_key, bool):
            rng_key = jax.random.key(int(rng_key))
        params = {site: samples[site] for site in latent_sites}
        num_chains, num_draws = jnp.shape(params[latent_sites[0]])[:2]
        keys = jax.random.split(rng_key, (num_chains, num_draws))
        # One chain at a time: each call enumerates the sites for T draws at once (memory T times
        # one enumeration), and every call reuses the same compiled program.
        per_chain = [
            self.draw(keys[c], {k: v[c] for k, v in params.items()}, temperature) for c in range(num_chains)
        ]
        return {name: jnp.stack([d[name] for d in per_chain]) for name in self.names + self.deterministic}


@dataclasses.dataclass(frozen=True)
class FlatModel:
    """A NumPyro model seen by pnmcmc.

    **Fields:**

    - `logdensity`: `x -> log pi(x)` on the flat unconstrained vector, shape (D,) -> (); a
      [`ModelDensity`][pnmcmc.sampling.modeling.ModelDensity], so programs take it (and with it
      the model's data) as an argument.
    - `postprocess`: `x -> {site: value}`, the constrained latent sites and the deterministic sites,
      except those that depend on enumerated discrete sites (`discrete.dependent`).
    - `unravel`: `x -> {site: unconstrained value}`.
    - `init_positions`: the initial flat positions, one per chain, shape (num_chains, D).
    - `latent_sites`: the names of the sampled (latent) sites, in the order of the flat vector
      (`ravel_pytree` orders a dict by key).
    - `discrete`: the enumerated discrete sites ([`DiscreteSites`][pnmcmc.sampling.modeling.DiscreteSites]),
      summed out of `logdensity`; None when the model has none.
    """

    logdensity: Callable
    postprocess: Callable
    unravel: Callable
    init_positions: jax.Array
    latent_sites: tuple[str, ...]
    discrete: DiscreteSites | None = None

    @property
    def dim(self) -> int:
        return int(self.init_positions.shape[-1])

    @property
    def dtype(self):
        return self.init_positions.dtype


INIT_CANDIDATES = 16  # draws of the init strategy per chain; the chain starts at the most probable


def flatten_model(
    model, model_args, model_kwargs, *, rng_key, num_chains, init_strategy, init_candidates=1
) -> FlatModel:
    """Check a NumPyro model and turn it into a [`FlatModel`][pnmcmc.sampling.modeling.FlatModel].

    **Arguments:**

    - `model`: a NumPyro model (a Python callable with `numpyro.sample` statements).
    - `model_args`, `model_kwargs`: what the model is called with.
    - `rng_key`: a JAX key for the initial positions.
    - `num_chains`: how many initial positions to draw.
    - `init_strategy`: a NumPyro init strategy such as `numpyro.infer.init_to_uniform`.
    - `init_candidates`: draws of `init_strategy` per chain; each chain starts at the draw with the
      highest log density (1: NumPyro's single draw). All candidates are drawn and evaluated in
      one batch, so the cost is that of initialising `num_chains * init_candidates` chains.

    **Returns:** a `FlatModel`. Raises `TypeError` for arguments the model does not accept,
    [`ModelError`][pnmcmc.sampling.modeling.ModelError] when the model raises, `ImportError` for
    enumerated discrete sites without funsor, and `ValueError` for an init value outside its
    site's support (or of the wrong shape), discrete latent sites not marked for enumeration, a
    model without continuous latent sites, or a non-finite log density (or gradient) at the
    initial point, each naming the sites concerned.
    """
    if not callable(model):
        raise TypeError(f"model must be a NumPyro model (a Python function), got {type(model).__name__}.")
    if not callable(init_strategy):
        raise TypeError(
            f"init_strategy must be a NumPyro init strategy such as numpyro.infer.init_to_median(), "
            f"got {init_strategy!r}."
        )
    model_args = tuple(model_args)
    model_kwargs = dict(model_kwargs or {})
    _check_signature(model, model_args, model_kwargs)
    key_trace, key_init = jax.random.split(rng_key)
    trace = _run(
        lambda: handlers.trace(
            handlers.substitute(handlers.seed(model, key_trace), substitute_fn=_checked(init_strategy))
        ).get_trace(*model_args, **model_kwargs),
        model,
    )
    latent = [
        name
        for name, site in trace.items()
        if site["type"] == "sample" and not site.get("is_observed", False)
    ]
    enumerated = _check_discrete(trace, latent)
    if not latent:
        raise ValueError(
            "The model has no latent sample sites (every numpyro.sample site is observed), so there "
            "is nothing to sample. Check that obs= is not given for the parameters."
        )
    if len(enumerated) == len(latent):
        raise ValueError(
            f"Every latent site of the model ({enumerated}) is discrete and enumerated, so there is no "
            "continuous parameter to sample: the posterior is exact by enumeration. Draw it with "
            "numpyro.infer.Predictive(model, posterior_samples={}, infer_discrete=True, batch_ndims=0)."
        )
    keys = jax.random.split(key_init, num_chains * init_candidates)
    try:
        info = _run(
            lambda: initialize_model(
                keys,
                model,
                init_strategy=init_strategy,
                dynamic_args=True,
                model_args=model_args,
                model_kwargs=model_kwargs,
            ),
            model,
        )
    except ModelError as error:
        if isinstance(error.__cause__, RuntimeError) and "valid initial" in str(error.__cause__):
            raise _nonfinite_error(model, model_args, model_kwargs, init_strategy, keys[0]) from None
        raise
    z = _most_probable(info.param_info, num_chains, init_candidates)
    _, unravel = ravel_pytree(jax.tree.map(lambda a: a[0], z))
    positions = jax.vmap(lambda tree: ravel_pytree(tree)[0])(z)
    discrete = _discrete_sites(model, model_args, model_kwargs, trace, enumerated) if enumerated else None
    layout = jax.tree.structure(z), tuple((a.shape[1:], str(a.dtype)) for a in jax.tree.leaves(z))
    density = _density(
        model, model_args, model_kwargs, info, unravel, layout, enumerated, discrete, positions[0]
    )

    def postprocess(x):
        return density.postprocess(x)

    return FlatModel(
        logdensity=density,
        postprocess=postprocess,
        unravel=unravel,
        init_positions=positions,
        latent_sites=tuple(path[0].key for path, _ in jax.tree_util.tree_flatten_with_path(z)[0]),
        discrete=discrete,
    )


def _most_probable(param_info, num_chains, init_candidates):
    """The candidate with the lowest potential energy (highest log density) for each chain.

    NumPyro redraws candidates whose log density is not finite, so every potential is finite;
    a NaN would still lose against any number. Chosen on the host: a handful of numbers, where
    device operations would each compile a program."""
    potential = np.asarray(param_info.potential_energy).reshape(num_chains, init_candidates)
    best = np.argmin(np.where(np.isnan(potential), np.inf, potential), axis=1)
    chosen = np.arange(num_chains) * init_candidates + best
    return jax.tree.map(lambda a: jnp.asarray(np.asarray(a)[chosen]), param_info.z)


# --- The log density as data ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class _ModelSpec:
    """Everything about a `ModelDensity` except its data arrays; compares by `key`.

    `key` identifies the density: the model (with fingerprints of the arrays it reads from its
    globals or closure), the structure and non-array values of its arguments, the layout of the
    flat vector and the sites left out of `postprocess`. The functions are NumPyro's, equal for
    equal keys.
    """

    key: tuple
    arguments: object  # the treedef of (model_args, model_kwargs)
    statics: tuple  # the argument leaves, None where a data array goes
    dynamic: tuple[int, ...]  # which leaves are data
    potential: Callable  # (model_args, model_kwargs, z) -> U(z)
    constrain: Callable  # (model_args, model_kwargs, z) -> {site: value}
    unravel: Callable
    hidden: frozenset

    def __eq__(self, other):
        return isinstance(other, _ModelSpec) and self.key == other.key

    def __hash__(self):
        return hash(self.key)

    def call_arguments(self, data):
        leaves = list(self.statics)
        for index, value in zip(self.dynamic, data, strict=True):
            leaves[index] = value
        return jax.tree.unflatten(self.arguments, leaves)


@jax.tree_util.register_pytree_node_class
class ModelDensity:
    r"""$\log\pi(x)$ of a NumPyro model on its data, as a pytree whose leaves are the data arrays.

    Calling it evaluates the log density at a flat unconstrained `x`; `postprocess(x)` gives the
    constrained latent and deterministic sites. Because the model's data are leaves, a compiled
    program that takes the density as an argument runs again on new data of the same shapes, and
    its tree structure (the model, its non-array arguments, the layout of `x`) tells programs for
    different models apart (`pnmcmc.sampling.programs`).
    """

    def __init__(self, spec: _ModelSpec, data: tuple):
        self.spec = spec
        self.data = tuple(data)

    def tree_flatten(self):
        return self.data, self.spec

    @classmethod
    def tree_unflatten(cls, spec, data):
        return cls(spec, data)

    def __call__(self, x):
        args, kwargs = self.spec.call_arguments(self.data)
        return -self.spec.potential(args, kwargs, self.spec.unravel(x))

    def postprocess(self, x) -> dict:
        # NumPyro computes the hidden sites with a prior draw of the discrete sites: better no value
        # than a wrong one, and infer_discrete recomputes them with posterior draws.
        args, kwargs = self.spec.call_arguments(self.data)
        values = self.spec.constrain(args, kwargs, self.spec.unravel(x))
        return {name: value for name, value in values.items() if name not in self.spec.hidden}


def _density(model, model_args, model_kwargs, info, unravel, layout, enumerated, discrete, x0):
    """The model's `ModelDensity`: its array arguments as data when the model traces with them
    abstract (as NumPyro's `jit_model_args`), otherwise as constants fingerprinted in its key."""
    potential_gen, postprocess_gen = info.potential_fn, info.postprocess_fn

    def potential(args, kwargs, z):
        return potential_gen(*args, **kwargs)(z)

    def constrain(args, kwargs, z):
        return postprocess_gen(*args, **kwargs)(z)

    if enumerated:  # funsor is slow to trace: jitted, the potential is traced once for every program
        potential = jax.jit(potential)
        # NumPyro's postprocess with model arguments as data replays the enumerating model, whose
        # deterministic sites then carry the enumeration's dimensions; replay the plain model, as
        # its postprocess without them does (the discrete sites drawn from their prior).
        from numpyro.contrib.funsor import config_enumerate
        from numpyro.infer.util import constrain_fn

        replay = handlers.seed(config_enumerate(model), 0)

        def constrain(args, kwargs, z):
            return constrain_fn(replay, args, kwargs, z, return_deterministic=True)

    leaves, treedef = jax.tree.flatten((model_args, dict(model_kwargs)))
    hidden = frozenset(discrete.dependent if discrete else ())
    common = (_model_identity(model), treedef, layout, hidden, bool(enumerated))

    def spec(dynamic):
        statics = tuple(None if i in dynamic else leaf for i, leaf in enumerate(leaves))
        fixed = tuple(_static_key(leaf) for i, leaf in enumerate(leaves) if i not in dynamic)
        key = (*common, dynamic, fixed, tuple(_array_key(leaves[i]) for i in dynamic))
        return _ModelSpec(key, treedef, statics, dynamic, potential, constrain, unravel, hidden)

    dynamic = tuple(i for i, leaf in enumerate(leaves) if isinstance(leaf, (np.ndarray, jax.Array)))
    density = ModelDensity(spec(dynamic), tuple(leaves[i] for i in dynamic))
    try:  # the model may use an array argument as a Python value (a shape, a loop bound)
        jax.eval_shape(lambda d, x: (d(x), d.postprocess(x)), density, x0)
    except jax.errors.JAXTypeError:
        density = ModelDensity(spec(()), ())
    return density


def _array_key(a):
    """An array's shape and dtype (its values are data)."""
    return (tuple(np.shape(a)), str(np.asarray(a).dtype) if not isinstance(a, jax.Array) else str(a.dtype))


def _fingerprint(a):
    """An array's shape, dtype and a digest of its values (for arrays baked into a program)."""
    a = np.asarray(a)
    digest = hashlib.blake2b(np.ascontiguousarray(a).tobytes(), digest_size=16).hexdigest()
    return (a.shape, str(a.dtype), digest)


def _static_key(value):
    """A non-data argument in a program key: by value where hashable, arrays by fingerprint."""
    if isinstance(value, (np.ndarray, jax.Array, np.generic)):
        return _fingerprint(value)
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return (type(value), value)


def _model_identity(model):
    """The model function and fingerprints of the arrays it reads from its globals or closure.

    Data the model reads from a global (rather than its arguments) is compiled into the program as
    a constant; the fingerprint makes a change of that data a different program, not a stale one.
    """
    reads = []
    code = getattr(model, "__code__", None)
    if code is not None:
        namespace = getattr(model, "__globals__", {})
        for name in code.co_names:
            value = namespace.get(name)
            if isinstance(value, (np.ndarray, jax.Array)):
                reads.append((name, _fingerprint(value)))
        for name, cell in zip(code.co_freevars, getattr(model, "__closure__", None) or (), strict=False):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if isinstance(value, (np.ndarray, jax.Array)):
                reads.append((name, _fingerprint(value)))
    try:
        hash(model)
    except TypeError:
        return ("id", id(model), tuple(reads))
    return (model, tuple(reads))


# --- Discrete sites -------------------------------------------------------------------------------


def _check_discrete(trace, latent):
    """The enumerated discrete sites; raises for discrete sites pnmcmc cannot handle."""
    discrete = [name for name in latent if trace[name]["fn"].support.is_discrete]
    marks = {name: (trace[name].get("infer") or {}).get("enumerate") for name in discrete}
    unmarked = [name for name in discrete if marks[name] != "parallel"]
    if unmarked:
        other = {name: marks[name] for name in unmarked if marks[name] is not None}
        raise ValueError(
            f"The model has discrete latent sites {unmarked} that are not marked for enumeration"
            + (f" (marked {other}; only 'parallel' is supported)" if other else "")
            + "; gradient-based kernels (MALA, HMC, NUTS) need continuous parameters. Mark them "
            "infer={'enumerate': 'parallel'} in numpyro.sample (with a plate for every batch "
            "dimension), as in NumPyro's Gaussian mixture and HMM examples, so that they are summed "
            f"out as NumPyro's NUTS does (needs {ENUM_INSTALL}); or marginalise them out in the model "
            "yourself (sum the likelihood over their values with logsumexp and add it with "
            "numpyro.factor)."
        )
    no_support = [name for name in discrete if not trace[name]["fn"].has_enumerate_support]
    if no_support:
        kinds = sorted({_distribution_name(trace[name]["fn"]) for name in no_support})
        raise ValueError(
            f"The discrete sites {no_support} are marked for enumeration, but their distributions "
            f"({', '.join(kinds)}) have no finite support to sum over. Enumerate only finite discrete "
            "distributions (Bernoulli, Categorical, DiscreteUniform, ...), or marginalise the others "
            "out in the model (e.g. truncate the sum and add it with numpyro.factor)."
        )
    if discrete:
        _require_funsor(discrete)
    return discrete


def _require_funsor(sites):
    try:
        import funsor  # noqa: F401
        import numpyro.contrib.funsor  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"The model's discrete sites {sites} are marked for enumeration, which needs funsor (the "
            f"library NumPyro sums discrete sites out with). Install it with {ENUM_INSTALL}."
        ) from error


def _discrete_sites(model, model_args, model_kwargs, trace, names):
    from numpyro.contrib.funsor import config_enumerate, infer_discrete

    in_scan = tuple(name for name in names if "_scan_current_index" in (trace[name].get("infer") or {}))
    deterministic = tuple(name for name, site in trace.items() if site["type"] == "deterministic")

    def one(key, params, temperature):
        conditioned = config_enumerate(handlers.substitute(model, data=params))
        # first_available_dim=None: infer_discrete finds the plates' dims itself, as in NumPyro's
        # Predictive(infer_discrete=True).
        fn = infer_discrete(conditioned, temperature=temperature, rng_key=key)
        sites = handlers.trace(fn).get_trace(*model_args, **model_kwargs)
        return {name: sites[name]["value"] for name in (*names, *deterministic)}

    def draw(keys, params, temperature):
        return jax.vmap(lambda key, p: one(key, p, temperature))(keys, params)

    return DiscreteSites(
        names=tuple(names),
        in_scan=in_scan,
        deterministic=deterministic,
        dependent=_dependent_sites(model, model_args, model_kwargs, trace, names, deterministic),
        draw=jax.jit(draw, static_argnames="temperature"),
    )


def _dependent_sites(model, model_args, model_kwargs, trace, names, deterministic):
    """The sites of `deterministic` whose value depends on the enumerated sites `names`.

    Tracks provenance (NumPyro's `eval_provenance`) through one run of the model, traced to a jaxpr
    and never compiled, with every latent site fixed to its value in `trace` and only the
    enumerated ones as tracked inputs.
    """
    from numpyro.ops.provenance import eval_provenance

    if not deterministic:
        return ()
    fixed = {
        name: site["value"]
        for name, site in trace.items()
        if site["type"] == "sample" and not site.get("is_observed", False) and name not in names
    }

    def run(**discrete):
        sites = handlers.trace(
            handlers.substitute(handlers.seed(model, 0), data={**fixed, **discrete})
        ).get_trace(*model_args, **model_kwargs)
        return {name: sites[name]["value"] for name in deterministic}

    try:
        sources = eval_provenance(run, **{name: trace[name]["value"] for name in names})
    except Exception:  # a model that cannot be traced abstractly: assume the worst, never a wrong value
        return tuple(deterministic)
    return tuple(name for name in deterministic if any(jax.tree.leaves(sources[name])))


# --- Checks of the input --------------------------------------------------------------------------


class _BadInitValue(Exception):
    """An init strategy gave a site a value it cannot take (raised while tracing the model)."""


def _checked(init_strategy):
    """`init_strategy` that raises `_BadInitValue` for a value outside its site's support or shape.

    Checked as each site is initialised, before later sites use the value (a negative scale would
    otherwise make the model itself raise, far from the cause).
    """

    def strategy(site):
        value = init_strategy(site)
        if value is not None and site["type"] == "sample" and not site["is_observed"]:
            _check_init_value(site, value)
        return value

    return strategy


def _check_init_value(site, value):
    name, fn = site["name"], site["fn"]
    shape = tuple(site["kwargs"].get("sample_shape") or ()) + tuple(fn.shape())
    if jnp.shape(value) != shape:
        raise _BadInitValue(
            f"Bad init value for site {name!r}: it has shape {jnp.shape(value)}, but the site has shape "
            f"{shape}. Give init_to_value an array of the site's shape (e.g. jnp.full({shape}, value))."
        )
    support = fn.support
    while isinstance(support, constraints.independent):  # check entries, not whole events
        support = support.base_constraint
    try:
        inside = np.asarray(support(value))
    except Exception:  # a support that cannot be checked alone (e.g. `dependent`): NumPyro decides
        return
    if not inside.all():
        array = np.asarray(value)
        if inside.size == 1:  # one value (a scalar, or one vector of an event-shaped support)
            what = f"{np.array2string(array, threshold=8, precision=4)} is"
        else:  # per entry, or per vector where the support constrains vectors (e.g. a simplex)
            what = f"{int((~inside).sum())} of its {inside.size} values are"
        raise _BadInitValue(
            f"Bad init value for site {name!r}: {what} outside the site's support {fn.support} "
            f"({_distribution_name(fn)} distribution). Give init_to_value a value inside the support, or "
            f"leave {name!r} out of its values so that it is initialised by init_to_uniform."
        )


def _distribution_name(fn):
    """`Poisson` rather than the `ExpandedDistribution` or `Independent` a plate or `to_event` wraps it in."""
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return type(fn).__name__


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
    except _BadInitValue as error:  # the user's init value, not the model, is at fault
        raise ValueError(str(error)) from None
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
