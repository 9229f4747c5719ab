"""The chains the performance study (`run.py`) and the GPU run (`gpu.py`) measure, and the program a
cell times: one solve per chain, vmapped over the chains.

Every script that draws a cell's data through `chain_data` with the same seed measures the same
chains, so rows of different scripts and devices compare like with like.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

import pnmcmc as pn
from pnmcmc import targets
from pnmcmc.kernels import HMC, MALA, NUTS


@dataclasses.dataclass(frozen=True)
class Problem:
    """A chain to benchmark: log density on a flat vector, kernel, and initial positions."""

    name: str
    dim: int
    logdensity: object
    kernel: object
    init: object  # (key, chains, dtype) -> (chains, D)
    note: str

    @property
    def step(self):
        """`step(x, xi)`: one transition of the kernel on this density."""
        return functools.partial(self.kernel.step, self.logdensity)


def scaled_normal(dim, scale, loc=None):
    """Initial positions `loc + scale * N(0, I)` (scale and loc scalars or per coordinate)."""

    def init(key, chains, dtype):
        x = scale * jax.random.normal(key, (chains, dim))
        return (x if loc is None else x + jnp.asarray(loc)).astype(dtype)

    return init


def _gaussian(dim, step):
    t = targets.correlated_gaussian(dim)
    note = f"AR(1) Gaussian rho=0.9, MALA step {step}, x0 ~ N(0, I)"
    return lambda: Problem(f"gauss{dim}", dim, t.logdensity, MALA(step), scaled_normal(dim, 1.0), note)


def _gaussian_nuts():
    t = targets.correlated_gaussian(10)
    note = "AR(1) Gaussian rho=0.9 (D=10), BlackJAX NUTS step 0.2, x0 ~ N(0, I)"
    return Problem("gauss10_nuts", 10, t.logdensity, NUTS(0.2), scaled_normal(10, 1.0), note)


def _banana():
    t = targets.banana()
    note = "banana, HMC step 0.5, 8 leapfrog steps, x0 ~ 10 N(0, I) (the published configuration)"
    return Problem("banana", 2, t.logdensity, HMC(0.5, 8), scaled_normal(2, 10.0), note)


def _mixture():
    t = targets.gaussian_mixture()
    note = "4-component 2-D Gaussian mixture, MALA step 0.5, x0 ~ N(0, I)"
    return Problem("mixture", 2, t.logdensity, MALA(0.5), scaled_normal(2, 1.0), note)


def _german(kernel, label):
    def make():
        t = targets.german_credit()
        note = f"German credit logistic regression (D=25), {label}, x0 ~ 0.1 N(0, I)"
        return Problem(f"german_{kernel.name}", 25, t.logdensity, kernel, scaled_normal(25, 0.1), note)

    return make


def _eight_schools():
    from numpyro.infer import init_to_uniform

    from pnmcmc.sampling.modeling import flatten_model

    post = pn.models.eight_schools()
    flat = flatten_model(
        post.model, post.model_args, post.model_kwargs, rng_key=jax.random.key(0), num_chains=1,
        init_strategy=init_to_uniform,
    )  # fmt: skip
    note = "eight schools non-centred (D=10, unconstrained), NUTS step 0.4, x0 ~ uniform(-2, 2)"
    dim = flat.dim

    def init(key, chains, dtype):
        return jax.random.uniform(key, (chains, dim), minval=-2.0, maxval=2.0).astype(dtype)

    return Problem("eight_schools", dim, flat.logdensity, NUTS(0.4), init, note)


def _posteriordb(name="sblri-blr"):
    """A posteriordb regression; MALA preconditioned with the reference posterior variances."""
    from numpyro.infer import init_to_median

    from pnmcmc.sampling.modeling import flatten_model

    post = pn.models.posteriordb(name)
    flat = flatten_model(
        post.model, post.model_args, post.model_kwargs, rng_key=jax.random.key(0), num_chains=1,
        init_strategy=init_to_median,
    )  # fmt: skip
    # Reference mean and sd per unconstrained coordinate (sigma on the log scale: delta method).
    mean, sd = [], []
    for site in flat.latent_sites:
        cols = sorted((k for k in post.reference if k == site or k.startswith(site + "[")), key=_col_index)
        for col in cols:
            m, s = post.reference[col]
            positive = site.startswith("sigma")
            mean.append(math.log(m) if positive else m)
            sd.append(s / m if positive else s)
    if len(mean) != flat.dim:
        raise RuntimeError(f"{name}: could not match the reference to the {flat.dim} coordinates")
    var = np.asarray(sd) ** 2
    kernel = MALA(0.5, inverse_mass_matrix=var)
    note = (
        f"posteriordb {name} (D={flat.dim}), MALA step 0.5 with the reference variances as inverse "
        "mass matrix, x0 ~ reference mean + sd N(0, I)"
    )
    init = scaled_normal(flat.dim, np.asarray(sd), loc=np.asarray(mean))
    return Problem("blr", flat.dim, flat.logdensity, kernel, init, note)


def _col_index(col):
    return int(col[col.index("[") + 1 : -1]) if "[" in col else 0


# The study's targets (`run.py --targets`), in the order of its tables.
TARGETS = {
    "gauss10": _gaussian(10, 0.05),
    "gauss100": _gaussian(100, 0.02),
    "gauss1000": _gaussian(1000, 0.01),
    "banana": _banana,
    "mixture": _mixture,
    "german_mala": _german(MALA(0.0015), "MALA step 0.0015"),
    "german_hmc": _german(HMC(0.03, 8), "HMC step 0.03, 8 leapfrog steps"),
    "eight_schools": _eight_schools,
    "blr": _posteriordb,
}
# Chains only the GPU run measures.
OTHERS = {"gauss10_nuts": _gaussian_nuts}


def make(name):
    """The problem called `name`, from `TARGETS` or `OTHERS`."""
    return (TARGETS | OTHERS)[name]()


def chain_data(problem, steps, chains, dtype, seed):
    """A cell's `(x0s, noise)`: `chains` initial positions and T = `steps` steps of noise per chain,
    drawn from `seed` and waited for (drawing is not part of any timing)."""
    key_x0, key_noise = jax.random.split(jax.random.key(seed))
    x0s = problem.init(key_x0, chains, dtype)
    keys = jax.random.split(key_noise, chains)
    noise = jax.vmap(lambda k: problem.kernel.noise(k, steps, problem.dim, dtype))(keys)
    return jax.block_until_ready((x0s, noise))


def vmapped(step, solver, callback=None):
    """`(x0s, noise) -> Solution`: `pnmcmc.solve` on every chain at once (vmapped, as a user with
    several chains would run it), with the per-iteration `callback` of a parallel solve."""
    return lambda x0s, noise: jax.vmap(lambda x0, xi: pn.solve(step, x0, xi, solver, callback=callback))(
        x0s, noise
    )
