r"""Bayesian logistic regression on the Statlog German Credit data (the parallel-MCMC benchmark).

1000 applicants, 24 numeric attributes. Each attribute is standardised to zero mean and unit
variance (population standard deviation), and a column of ones is appended as the intercept,
so $x_n \in \mathbb{R}^{25}$ (the intercept is the last coefficient, `beta[25]`). The label is
$y_n = 1$ for bad credit (class 2) and $0$ for good credit (class 1):

$$
\beta_d \sim N(0, 1), \qquad y_n \sim \mathrm{Bernoulli}(\mathrm{sigmoid}(x_n^\top \beta)).
$$

There is no reference summary (`reference` is `None`).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from . import _resources
from .posterior import Posterior

__all__ = ["german_credit", "logistic_regression"]


def logistic_regression(x, y):
    """Logistic regression with independent N(0, 1) priors: site `beta` of length `x.shape[1]`."""
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0).expand([x.shape[-1]]).to_event(1))
    numpyro.sample("y", dist.Bernoulli(logits=x @ beta), obs=y)


def german_credit() -> Posterior:
    """The German Credit logistic regression (D = 25: 24 standardised attributes + intercept).

    **Returns:** a `Posterior` named `"german_credit"`; `model_kwargs` holds `x` (1000, 25) and
    `y` (1000,) with 1 = bad credit.
    """
    header, rows = _resources.read_csv("german_credit.csv")
    # In 41 rows of the shipped file attributes A3 and A4 share one field ("2 126", a leftover of
    # the fixed-width original); splitting every field on whitespace restores the 25 columns.
    table = np.asarray(
        [[token for field in row for token in field.split()] for row in rows], dtype=np.float64
    )
    if table.shape != (1000, len(header)):
        raise ValueError(
            f"german_credit.csv should hold 1000 rows of {len(header)} numbers, got {table.shape}."
        )
    label = header.index("CLASSIFICACAO")
    features = np.delete(table, label, axis=1)
    features = (features - features.mean(axis=0)) / features.std(axis=0)
    x = np.concatenate([features, np.ones((features.shape[0], 1))], axis=1)
    y = (table[:, label] == 2).astype(np.float64)
    dtype = jnp.result_type(float)
    return Posterior(
        name="german_credit",
        model=logistic_regression,
        model_kwargs={"x": jnp.asarray(x.astype(dtype)), "y": jnp.asarray(y.astype(dtype))},
    )
