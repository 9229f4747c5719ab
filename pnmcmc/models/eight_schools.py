r"""Eight schools (Rubin 1981; Gelman et al., *Bayesian Data Analysis*, section 5.5).

Estimated coaching effects $y_j$ with known standard errors $\sigma_j$ in $J = 8$ schools:

$$
\mu \sim N(0, 5), \quad \tau \sim \mathrm{HalfCauchy}(5), \quad
\theta_j \sim N(\mu, \tau), \quad y_j \sim N(\theta_j, \sigma_j).
$$

The *non-centred* form samples $\tilde\theta_j \sim N(0, 1)$ and sets $\theta_j = \mu + \tau
\tilde\theta_j$ (a deterministic site); its geometry is easy. The *centred* form samples
$\theta_j$ directly and has a funnel between $\tau$ and $\theta$ that defeats fixed-step samplers,
a useful hard case. There is no reference summary here (`reference` is `None`).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from .posterior import Posterior

__all__ = ["EIGHT_SCHOOLS_SIGMA", "EIGHT_SCHOOLS_Y", "eight_schools", "eight_schools_centered"]

EIGHT_SCHOOLS_Y = (28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0)
"""Estimated treatment effects of the eight schools."""

EIGHT_SCHOOLS_SIGMA = (15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0)
"""Their standard errors."""


def noncentered_model(sigma, y):
    """Non-centred eight schools: sites `mu`, `tau`, `theta_tilde` (8) and deterministic `theta` (8)."""
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", sigma.shape[0]):
        theta_tilde = numpyro.sample("theta_tilde", dist.Normal(0.0, 1.0))
        theta = numpyro.deterministic("theta", mu + tau * theta_tilde)
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def centered_model(sigma, y):
    """Centred eight schools: sites `mu`, `tau`, `theta` (8)."""
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", sigma.shape[0]):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def _data() -> dict[str, jnp.ndarray]:
    dtype = jnp.result_type(float)
    return {
        "sigma": jnp.asarray(np.asarray(EIGHT_SCHOOLS_SIGMA, dtype=dtype)),
        "y": jnp.asarray(np.asarray(EIGHT_SCHOOLS_Y, dtype=dtype)),
    }


def eight_schools() -> Posterior:
    """The non-centred eight schools model with the classic data (`reference` is `None`).

    **Returns:** a `Posterior` named `"eight_schools"`; `model_kwargs` holds `sigma` and `y`.
    """
    return Posterior(name="eight_schools", model=noncentered_model, model_kwargs=_data())


def eight_schools_centered() -> Posterior:
    """The centred eight schools model (a funnel) with the classic data (`reference` is `None`).

    **Returns:** a `Posterior` named `"eight_schools_centered"`; `model_kwargs` holds `sigma`, `y`.
    """
    return Posterior(name="eight_schools_centered", model=centered_model, model_kwargs=_data())
