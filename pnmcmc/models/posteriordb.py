r"""Eight posteriordb posteriors as NumPyro models, with their data and reference summaries.

posteriordb (github.com/stan-dev/posteriordb) pairs Stan models with data and gold-standard
reference draws (10 chains of 1000). The models below are written from the Stan programs'
semantics, with Stan's parameter names: a vector site `beta` holds `beta[1]`, `beta[2]`, ...
"Flat" means an improper uniform prior on the parameter's support (`dist.ImproperUniform`), as in
Stan; a positive parameter is sampled on the log scale (NumPyro's transform, with its Jacobian),
as Stan does. Transformed data (logs, centring, dummies) is computed inside the models from the
fields of posteriordb's `data.json`.

- `kidiq-kidscore_momhs`: $\mathrm{kid\_score}_n \sim N(\beta_1 + \beta_2\,\mathrm{mom\_hs}_n,
  \sigma)$; $\beta$ flat; $\sigma \sim \mathrm{HalfCauchy}(2.5)$.
- `earnings-logearn_height`: $\log \mathrm{earn}_n \sim N(\beta_1 + \beta_2\,\mathrm{height}_n,
  \sigma)$; flat priors.
- `mesquite-logmesquite`: $\log \mathrm{weight} \sim N(\beta_1 + \beta_2 \log \mathrm{diam1} +
  \beta_3 \log \mathrm{diam2} + \beta_4 \log \mathrm{canopy\_height} + \beta_5 \log
  \mathrm{total\_height} + \beta_6 \log \mathrm{density} + \beta_7\,\mathrm{group}, \sigma)$; flat.
- `nes1976-nes`: $\mathrm{partyid7} \sim N(\beta_1 + \beta_2\,\mathrm{real\_ideo} + \beta_3\,
  \mathrm{race\_adj} + \beta_4 [a = 2] + \beta_5 [a = 3] + \beta_6 [a = 4] + \beta_7\,\mathrm{educ1}
  + \beta_8\,\mathrm{gender} + \beta_9\,\mathrm{income}, \sigma)$ with $a$ = `age_discrete`; flat.
- `sblri-blr`: $y \sim N(X\beta, \sigma)$, $X \in \mathbb{R}^{100 \times 5}$; $\beta_d \sim
  N(0, 10)$; $\sigma \sim \mathrm{HalfNormal}(10)$.
- `arma-arma11`: $y_t \sim N(\nu_t, \sigma)$ with $\nu_1 = \mu + \phi\mu$ and $\nu_t = \mu +
  \phi y_{t-1} + \theta (y_{t-1} - \nu_{t-1})$; $\mu \sim N(0, 10)$, $\phi, \theta \sim N(0, 2)$,
  $\sigma \sim \mathrm{HalfCauchy}(2.5)$.
- `gp_pois_regr-gp_regr`: $y \sim \mathrm{MVN}(0, K + \sigma I)$ with $K_{ij} = \alpha^2
  \exp(-(x_i - x_j)^2 / 2\rho^2)$ ($\sigma$ is a variance, not squared); $\rho \sim
  \mathrm{Gamma}(25, \mathrm{rate}\ 4)$, $\alpha \sim \mathrm{HalfNormal}(2)$, $\sigma \sim
  \mathrm{HalfNormal}(1)$.
- `kidiq_with_mom_work-kidscore_interaction_c`: $\mathrm{kid\_score} \sim N(\beta_1 + \beta_2 c_h
  + \beta_3 c_q + \beta_4 c_h c_q, \sigma)$ with $c_h$, $c_q$ the centred `mom_hs`, `mom_iq`; flat.

The ARMA model runs a `lax.scan` over its 200 observations inside the log density (a start with
`|theta| > 1` freezes a chain; see `arma11`); the GP model factorises an 11 x 11 covariance with
the LAPACK-free Cholesky of `pnmcmc.models._small_linalg` (batched LAPACK calls can deadlock on
CPU; see there).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from . import _resources
from ._small_linalg import mvn_zero_mean_logpdf
from .posterior import Posterior

__all__ = [
    "POSTERIORDB_NAMES",
    "arma11",
    "blr",
    "gp_regr",
    "kidscore_interaction_c",
    "kidscore_momhs",
    "logearn_height",
    "logmesquite",
    "nes",
    "posteriordb",
]


def _flat(size: int | None = None) -> dist.Distribution:
    """Improper uniform prior on the real line, scalar or a vector of `size`."""
    return dist.ImproperUniform(constraints.real, (), () if size is None else (size,))


def _flat_positive() -> dist.Distribution:
    """Improper uniform prior on (0, inf), sampled on the log scale like Stan's `<lower=0>`."""
    return dist.ImproperUniform(constraints.positive, (), ())


def kidscore_momhs(mom_hs, kid_score):
    """`kidiq-kidscore_momhs`: kid's IQ score on mother's high-school completion."""
    beta = numpyro.sample("beta", _flat(2))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    numpyro.sample("kid_score", dist.Normal(beta[0] + beta[1] * mom_hs, sigma), obs=kid_score)


def logearn_height(height, earn):
    """`earnings-logearn_height`: log earnings on height."""
    beta = numpyro.sample("beta", _flat(2))
    sigma = numpyro.sample("sigma", _flat_positive())
    numpyro.sample("log_earn", dist.Normal(beta[0] + beta[1] * height, sigma), obs=jnp.log(earn))


def logmesquite(diam1, diam2, canopy_height, total_height, density, group, weight):
    """`mesquite-logmesquite`: log weight of mesquite bushes on log dimensions and group."""
    beta = numpyro.sample("beta", _flat(7))
    sigma = numpyro.sample("sigma", _flat_positive())
    mean = (
        beta[0]
        + beta[1] * jnp.log(diam1)
        + beta[2] * jnp.log(diam2)
        + beta[3] * jnp.log(canopy_height)
        + beta[4] * jnp.log(total_height)
        + beta[5] * jnp.log(density)
        + beta[6] * group
    )
    numpyro.sample("log_weight", dist.Normal(mean, sigma), obs=jnp.log(weight))


def nes(real_ideo, race_adj, age_discrete, educ1, gender, income, partyid7):
    """`nes1976-nes`: party identification on ideology, race, age group (dummies), education, ..."""
    beta = numpyro.sample("beta", _flat(9))
    sigma = numpyro.sample("sigma", _flat_positive())
    dtype = beta.dtype
    mean = (
        beta[0]
        + beta[1] * real_ideo
        + beta[2] * race_adj
        + beta[3] * (age_discrete == 2).astype(dtype)
        + beta[4] * (age_discrete == 3).astype(dtype)
        + beta[5] * (age_discrete == 4).astype(dtype)
        + beta[6] * educ1
        + beta[7] * gender
        + beta[8] * income
    )
    numpyro.sample("partyid7", dist.Normal(mean, sigma), obs=partyid7)


def blr(X, y):  # noqa: N803 (posteriordb's data name)
    """`sblri-blr`: Bayesian linear regression with Normal(0, 10) priors."""
    beta = numpyro.sample("beta", dist.Normal(0.0, 10.0).expand([X.shape[-1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(10.0))
    numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)


def arma11(y):
    """`arma-arma11`: ARMA(1, 1); the one-step predictions come from a `lax.scan` over time.

    The error recursion `err_t = y_t - nu_t` multiplies by `-theta` at every step, so for
    `|theta| > 1` it explodes over the 200 steps (log density -1e37 to -1e108): a chain started
    there freezes. NumPyro's `init_to_uniform` draws theta in (-2, 2), so about half its draws are
    such points (NumPyro's NUTS, seed 0, leaves chains stuck); pnmcmc starts each chain at the most
    probable of `init_candidates` = 16 draws, which is inside `|theta| < 1`.
    """
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    phi = numpyro.sample("phi", dist.Normal(0.0, 2.0))
    theta = numpyro.sample("theta", dist.Normal(0.0, 2.0))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))

    def predict(err_previous, y_pair):
        y_previous, y_now = y_pair
        nu = mu + phi * y_previous + theta * err_previous
        return y_now - nu, nu

    nu_first = mu + phi * mu
    _, nu_rest = jax.lax.scan(predict, y[0] - nu_first, (y[:-1], y[1:]))
    nu = jnp.concatenate([jnp.reshape(nu_first, (1,)), nu_rest])
    numpyro.sample("y", dist.Normal(nu, sigma), obs=y)


def gp_regr(x, y):
    """`gp_pois_regr-gp_regr`: GP regression, squared-exponential kernel plus `sigma` on the diagonal."""
    rho = numpyro.sample("rho", dist.Gamma(25.0, 4.0))
    alpha = numpyro.sample("alpha", dist.HalfNormal(2.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    squared_distance = (x[:, None] - x[None, :]) ** 2
    covariance = alpha**2 * jnp.exp(-squared_distance / (2 * rho**2)) + sigma * jnp.eye(x.shape[0])
    # A factor, not a MultivariateNormal site: its log_prob would call batched LAPACK under vmap.
    numpyro.factor("y", mvn_zero_mean_logpdf(y, covariance))


def kidscore_interaction_c(mom_hs, mom_iq, kid_score):
    """`kidiq_with_mom_work-kidscore_interaction_c`: centred predictors with their interaction."""
    beta = numpyro.sample("beta", _flat(4))
    sigma = numpyro.sample("sigma", _flat_positive())
    c_hs = mom_hs - jnp.mean(mom_hs)
    c_iq = mom_iq - jnp.mean(mom_iq)
    mean = beta[0] + beta[1] * c_hs + beta[2] * c_iq + beta[3] * c_hs * c_iq
    numpyro.sample("kid_score", dist.Normal(mean, sigma), obs=kid_score)


class _Entry(NamedTuple):
    model: Callable[..., None]
    fields: tuple[str, ...]  # data.json fields passed as keyword arguments, as floats
    integer_fields: tuple[str, ...] = ()  # ... and those passed as integers (categories)


_REGISTRY: dict[str, _Entry] = {
    "kidiq-kidscore_momhs": _Entry(kidscore_momhs, ("mom_hs", "kid_score")),
    "earnings-logearn_height": _Entry(logearn_height, ("height", "earn")),
    "mesquite-logmesquite": _Entry(
        logmesquite, ("diam1", "diam2", "canopy_height", "total_height", "density", "group", "weight")
    ),
    "nes1976-nes": _Entry(
        nes, ("real_ideo", "race_adj", "educ1", "gender", "income", "partyid7"), ("age_discrete",)
    ),
    "sblri-blr": _Entry(blr, ("X", "y")),
    "arma-arma11": _Entry(arma11, ("y",)),
    "gp_pois_regr-gp_regr": _Entry(gp_regr, ("x", "y")),
    "kidiq_with_mom_work-kidscore_interaction_c": _Entry(
        kidscore_interaction_c, ("mom_hs", "mom_iq", "kid_score")
    ),
}

POSTERIORDB_NAMES: tuple[str, ...] = tuple(_REGISTRY)
"""The posteriordb posteriors available through `posteriordb(name)`."""


def posteriordb(name: str) -> Posterior:
    """One of the eight posteriordb posteriors, with its data and reference summary.

    **Arguments:**

    - `name`: posteriordb's name, one of `POSTERIORDB_NAMES` (e.g. `"arma-arma11"`).

    **Returns:** a `Posterior` whose `model_kwargs` hold the data (JAX arrays in JAX's default
    float dtype; integer categories as integers) and whose `reference` maps Stan's column names
    to the `(mean, sd)` of the 10 000 reference draws.
    """
    if name not in _REGISTRY:
        valid = ", ".join(POSTERIORDB_NAMES)
        raise ValueError(f"Unknown posteriordb posterior {name!r}; valid names: {valid}.")
    entry = _REGISTRY[name]
    data = _resources.read_json("posteriordb", name, "data.json")
    summary = _resources.read_json("posteriordb", name, "reference_summary.json")
    float_dtype = jnp.result_type(float)
    kwargs = {field: jnp.asarray(np.asarray(data[field], dtype=float_dtype)) for field in entry.fields}
    kwargs |= {field: jnp.asarray(np.asarray(data[field], dtype=np.int32)) for field in entry.integer_fields}
    reference = {column: (float(s["mean"]), float(s["sd"])) for column, s in summary["params"].items()}
    return Posterior(name=name, model=entry.model, model_kwargs=kwargs, reference=reference)
