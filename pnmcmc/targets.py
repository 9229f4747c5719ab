r"""Benchmark targets: plain-JAX log densities on a flat position $x \in \mathbb{R}^D$.

Used by the tests, the benchmarks and the examples. Each constructor returns a
[`Target`][pnmcmc.targets.Target]: a name, the dimension, the log density and, where known in
closed form, the mean and standard deviation of every coordinate.

Every log density follows the dtype of its argument (float32 in, float32 out): the constants are
kept in NumPy and cast at call time, so that nothing promotes a float32 chain to float64.

| constructor | D | density |
|---|---|---|
| `correlated_gaussian(dim, correlation)` | `dim` | $N(0, \Sigma)$, $\Sigma_{ij} = \rho^{|i-j|}$ |
| `banana(curvature)` | 2 | inference_gym Banana: $x_0 \sim N(0, 10^2)$, $x_1 \sim N(c (x_0^2 - 100), 1)$ |
| `gaussian_mixture()` | 2 | $\tfrac14 \sum_{\mu \in \{\pm 2\}^2} N(\mu, I)$ |
| `german_credit()` | 25 | Bayesian logistic regression on German credit, prior $N(0, I)$ |
| `eight_schools()` | 10 | non-centred eight schools on $(\mu, \log\tau, \tilde\theta_{1..8})$ |
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Target", "banana", "correlated_gaussian", "eight_schools", "gaussian_mixture", "german_credit"]


class Target(NamedTuple):
    """A log density on a flat vector, with its known moments.

    **Fields:**

    - `name`: a short identifier, e.g. `"banana"`.
    - `dim`: the dimension D of the position.
    - `logdensity`: `x (D,) -> scalar`, normalised unless the docstring says otherwise.
    - `mean`, `std`: the exact mean and standard deviation per coordinate (NumPy arrays of shape
      (D,)), or `None` where no closed form exists.
    """

    name: str
    dim: int
    logdensity: Callable[[jax.Array], jax.Array]
    mean: np.ndarray | None
    std: np.ndarray | None


def _const(a, x):
    return jnp.asarray(a, dtype=x.dtype)


def correlated_gaussian(dim: int = 10, correlation: float = 0.9) -> Target:
    r"""A zero-mean Gaussian with AR(1) covariance $\Sigma_{ij} = \rho^{|i-j|}$ (unit variances).

    Its precision matrix is tridiagonal: $P = (1-\rho^2)^{-1}\,\mathrm{tridiag}(-\rho, 1 + \rho^2, -\rho)$
    with corner entries 1, so the density costs O(D). The eigenvalues of $\Sigma$ lie in
    $((1-\rho)/(1+\rho), (1+\rho)/(1-\rho))$: with the default $\rho = 0.9$ the condition number is
    about 300 and the Hessian is far from diagonal, which is what separates dense from diagonal
    Newton methods.

    **Arguments:**

    - `dim`: the dimension D >= 1.
    - `correlation`: $\rho \in (-1, 1)$.

    **Returns:** a [`Target`][pnmcmc.targets.Target] with mean 0 and standard deviation 1.
    """
    if not (isinstance(dim, int) and dim >= 1):
        raise ValueError(f"correlated_gaussian: dim must be an int >= 1, got {dim!r}.")
    if not -1.0 < correlation < 1.0:
        raise ValueError(f"correlated_gaussian: correlation must lie in (-1, 1), got {correlation!r}.")
    rho = float(correlation)
    # log det Sigma = (D - 1) log(1 - rho^2) for the AR(1) covariance.
    log_norm = -0.5 * dim * np.log(2 * np.pi) - 0.5 * (dim - 1) * np.log1p(-(rho**2))
    diag = np.full(dim, 1.0 + rho**2)
    diag[[0, -1]] = 1.0
    if dim == 1:
        diag[:] = 1.0 - rho**2  # P = 1 for D = 1: (1 - rho^2)^{-1} * (1 - rho^2)

    def logdensity(x):
        quad = jnp.sum(_const(diag, x) * x**2) - 2.0 * rho * jnp.sum(x[1:] * x[:-1])
        return _const(log_norm, x) - 0.5 * quad / (1.0 - rho**2)

    return Target(f"gaussian{dim}", dim, logdensity, np.zeros(dim), np.ones(dim))


def banana(curvature: float = 0.03) -> Target:
    r"""The banana (twisted Gaussian) of inference_gym's `Banana` with `ndims=2`.

    $x_0 \sim N(0, 10^2)$ and $x_1 \mid x_0 \sim N(c\,(x_0^2 - 100), 1)$ (Haario et al. 1999), a
    volume-preserving shear of $N(0, \mathrm{diag}(100, 1))$. Mean 0; standard deviations 10 and
    $\sqrt{1 + 2 c^2 10^4}$ ($\sqrt{19}$ for the default $c = 0.03$). The published parallel-MCMC
    code calls it "Rosenbrock".
    """
    c = float(curvature)
    log_norm = -np.log(2 * np.pi) - np.log(10.0)

    def logdensity(x):
        shifted = x[1] - c * (x[0] ** 2 - 100.0)
        return _const(log_norm, x) - 0.5 * (x[0] / 10.0) ** 2 - 0.5 * shifted**2

    std = np.array([10.0, np.sqrt(1.0 + 2.0 * c**2 * 1e4)])
    return Target("banana", 2, logdensity, np.zeros(2), std)


_MIXTURE_MEANS = np.array([[2.0, 2.0], [2.0, -2.0], [-2.0, 2.0], [-2.0, -2.0]])


def gaussian_mixture() -> Target:
    r"""Equal-weight mixture of four unit-variance Gaussians in 2-D centred at $(\pm 2, \pm 2)$.

    $\log p(x) = \log \tfrac14 \sum_k N(x; \mu_k, I)$. Mean 0 and variance $1 + 4 = 5$ per
    coordinate. The modes are separated by 4 standard deviations, so a local sampler hops between
    them only occasionally: a multimodal chain whose accept decisions matter.
    """
    log_norm = -np.log(4.0) - np.log(2 * np.pi)

    def logdensity(x):
        sq = jnp.sum((x[None, :] - _const(_MIXTURE_MEANS, x)) ** 2, axis=-1)
        return _const(log_norm, x) + jax.nn.logsumexp(-0.5 * sq)

    return Target("mixture", 2, logdensity, np.zeros(2), np.full(2, np.sqrt(5.0)))


@functools.cache
def _german_credit_data() -> tuple[np.ndarray, np.ndarray]:
    text = importlib.resources.files("pnmcmc").joinpath("data/german_credit.csv").read_text()
    # In 41 rows of the shipped file a field boundary is a space instead of a comma ("2 126"):
    # split on both, and insist on 25 numbers per row.
    rows = [re.split(r"[,\s]+", line.strip()) for line in text.splitlines()[1:] if line.strip()]
    if {len(row) for row in rows} != {25}:
        raise ValueError("german_credit.csv: expected 25 numbers per row (24 attributes and the class).")
    table = np.array(rows, dtype=np.float64)
    features, label = table[:, :24], table[:, 24]
    # z-score with the population standard deviation (ddof=0), then an intercept column.
    standardised = (features - features.mean(axis=0)) / features.std(axis=0)
    design = np.concatenate([np.ones((len(table), 1)), standardised], axis=1)
    return design, (label == 2).astype(np.float64)


def german_credit() -> Target:
    r"""Bayesian logistic regression on the German credit data (numeric version), D = 25.

    Data: `pnmcmc/data/german_credit.csv` (UCI Statlog German Credit, 1000 applicants, 24 numeric
    attributes, class 1 = good, 2 = bad). Each attribute is standardised to zero mean and unit
    (population, ddof=0) standard deviation, and an intercept column of ones comes first, so
    $\beta_0$ is the intercept and $\beta_{1..24}$ the attribute weights.

    **Label coding:** $y_i = 1$ for *bad* credit (class 2, 300 applicants) and $y_i = 0$ for good
    credit (class 1, 700). inference_gym's loader uses the opposite sign (it flips the labels); the
    posterior then is the mirror image $\beta \mapsto -\beta$, with identical sampling difficulty.

    $$\log p(\beta \mid y) = \sum_i \big(y_i \eta_i - \log(1 + e^{\eta_i})\big)
      - \tfrac12 \|\beta\|^2 + \text{const}, \qquad \eta = X \beta,$$

    with prior $\beta \sim N(0, I_{25})$. The returned log density is *unnormalised* (the
    evidence is unknown) but includes the prior's $-\tfrac{25}{2}\log 2\pi$. No closed-form moments.
    """
    design, label = _german_credit_data()
    log_norm = -0.5 * design.shape[1] * np.log(2 * np.pi)

    def logdensity(beta):
        eta = _const(design, beta) @ beta
        loglik = jnp.sum(_const(label, beta) * eta - jax.nn.softplus(eta))
        return loglik - 0.5 * jnp.sum(beta**2) + _const(log_norm, beta)

    return Target("german_credit", design.shape[1], logdensity, None, None)


_SCHOOLS_Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
_SCHOOLS_SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def eight_schools() -> Target:
    r"""Non-centred eight schools (Rubin 1981) on unconstrained $x = (\mu, \log\tau, \tilde\theta_{1..8})$.

    $\mu \sim N(0, 5^2)$, $\tau \sim \mathrm{HalfCauchy}(5)$, $\tilde\theta_j \sim N(0, 1)$,
    $y_j \sim N(\mu + \tau\tilde\theta_j, \sigma_j^2)$ with the classic data, plus the log-Jacobian
    $\log\tau$ of $\tau = e^{x_1}$. It equals minus NumPyro's potential energy of
    `pnmcmc.models.eight_schools()` (sites `mu`, `tau`, `theta_tilde`), written in plain JAX so that
    kernels can be tested on a hierarchical posterior without the model-flattening layer. The
    evidence is unknown, so there are no closed-form moments.
    """
    log_2pi = float(np.log(2 * np.pi))  # Python floats are weakly typed: no promotion

    def logdensity(x):
        mu, log_tau, theta_tilde = x[0], x[1], x[2:]
        tau = jnp.exp(log_tau)
        lp_mu = -0.5 * (mu / 5.0) ** 2 - float(np.log(5.0)) - 0.5 * log_2pi
        # HalfCauchy(5): 2 / (pi * 5 * (1 + (tau/5)^2)), then the Jacobian tau of tau = exp(x_1).
        lp_tau = float(np.log(2.0 / (np.pi * 5.0))) - jnp.log1p((tau / 5.0) ** 2) + log_tau
        lp_tilde = -0.5 * jnp.sum(theta_tilde**2) - 4.0 * log_2pi
        sigma = _const(_SCHOOLS_SIGMA, x)
        resid = (_const(_SCHOOLS_Y, x) - mu - tau * theta_tilde) / sigma
        lp_y = jnp.sum(-0.5 * resid**2 - jnp.log(sigma)) - 4.0 * log_2pi
        return lp_mu + lp_tau + lp_tilde + lp_y

    return Target("eight_schools", 10, logdensity, None, None)
