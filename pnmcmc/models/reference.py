r"""Score a sampler's draws against a reference posterior summary.

For each scalar parameter with reference mean $m_r$ and sd $s_r$, and draws with mean $m$, sd
$s$ and effective sample size $\mathrm{ESS}$ (NumPyro's Geyer initial-monotone estimator over
the chains, `numpyro.diagnostics.effective_sample_size`):

$$
z = \frac{m - m_r}{\sqrt{s^2 / \mathrm{ESS} + s_r^2 / \mathrm{ESS}_r}}, \qquad
\text{sd error} = \frac{s}{s_r} - 1 .
$$

The first term under the root is the Monte Carlo standard error (MCSE) of our mean, the second
that of the reference mean; posteriordb's reference draws (10 x 1000, thinned to be nearly
independent) are credited with $\mathrm{ESS}_r = 5000$ by default, a conservative half of their
count. A correct sampler gives $|z| \lesssim 4$ for every parameter and sd errors of a few percent
(the relative Monte Carlo error of an sd is about $1/\sqrt{2\,\mathrm{ESS}}$).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpyro.diagnostics import effective_sample_size

from .posterior import Posterior

__all__ = ["ColumnCheck", "ReferenceCheck", "check_reference"]


@dataclass(frozen=True)
class ColumnCheck:
    """One parameter's draws against its reference: means, sds, our ESS, `z` and `sd_error`."""

    mean: float
    sd: float
    ess: float
    reference_mean: float
    reference_sd: float
    z: float
    sd_error: float


@dataclass(frozen=True, eq=False)
class ReferenceCheck:
    """Every reference parameter's `ColumnCheck`, keyed by Stan's column name."""

    columns: Mapping[str, ColumnCheck]

    @property
    def worst_z(self) -> float:
        """Largest |mean error| in combined Monte Carlo standard errors."""
        return max(abs(c.z) for c in self.columns.values())

    @property
    def worst_sd_error(self) -> float:
        """Largest |relative sd error|."""
        return max(abs(c.sd_error) for c in self.columns.values())

    @property
    def worst_mean_error_sd(self) -> float:
        """Largest |mean error| in reference standard deviations."""
        return max(abs(c.mean - c.reference_mean) / c.reference_sd for c in self.columns.values())

    def matches(self, *, max_mean_error_sd: float = 0.15, max_sd_error: float = 0.2) -> bool:
        """Whether every mean is within `max_mean_error_sd` reference sds and every sd within
        `max_sd_error` (relative): a criterion that does not shrink with the run's length."""
        return self.worst_mean_error_sd <= max_mean_error_sd and self.worst_sd_error <= max_sd_error

    @property
    def min_ess(self) -> float:
        """Smallest effective sample size over the parameters."""
        return min(c.ess for c in self.columns.values())

    def passes(self, *, max_z: float = 4.0, max_sd_error: float = 0.1) -> bool:
        """Whether every mean is within `max_z` MCSEs and every sd within `max_sd_error` (relative)."""
        return self.worst_z <= max_z and self.worst_sd_error <= max_sd_error

    def describe(self) -> str:
        """A Markdown table, one row per parameter."""
        lines = [
            "| parameter | mean | reference mean | z | sd | reference sd | sd error | ESS |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, c in self.columns.items():
            lines.append(
                f"| {name} | {c.mean:.6g} | {c.reference_mean:.6g} | {c.z:+.2f} | {c.sd:.4g} | "
                f"{c.reference_sd:.4g} | {c.sd_error:+.1%} | {c.ess:.0f} |"
            )
        return "\n".join(lines)


def check_reference(
    posterior: Posterior, samples: Mapping[str, object], *, reference_ess: float = 5000.0
) -> ReferenceCheck:
    """Compare draws of `posterior` with its reference summary, parameter by parameter.

    **Arguments:**

    - `posterior`: a `Posterior` with a `reference`.
    - `samples`: site name -> draws, shape `(chain, draw, *site_shape)` (several chains give a
      better ESS estimate) or `(draw, *site_shape)` (one chain), e.g.
      `MCMC.get_samples(group_by_chain=True)`. Constrained values, as NumPyro returns them.
    - `reference_ess`: effective sample size credited to each reference mean.

    **Returns:** a `ReferenceCheck`; `.passes()` applies the usual thresholds (4 MCSE, 10 %).
    Raises `ValueError` if the posterior has no reference or a reference parameter is missing.
    """
    if posterior.reference is None:
        raise ValueError(f"Posterior {posterior.name!r} has no reference summary to compare with.")
    columns = posterior.to_columns(samples)
    missing = [name for name in posterior.reference if name not in columns]
    if missing:
        raise ValueError(f"The samples lack the reference parameters {missing} of {posterior.name!r}.")
    checks = {}
    for name, (reference_mean, reference_sd) in posterior.reference.items():
        draws = np.asarray(columns[name], dtype=np.float64)
        draws = draws[None] if draws.ndim == 1 else draws
        mean, sd = float(draws.mean()), float(draws.std(ddof=1))
        ess = float(effective_sample_size(draws))
        mcse = math.sqrt(sd**2 / ess + reference_sd**2 / reference_ess)
        checks[name] = ColumnCheck(
            mean=mean,
            sd=sd,
            ess=ess,
            reference_mean=reference_mean,
            reference_sd=reference_sd,
            z=(mean - reference_mean) / mcse,
            sd_error=sd / reference_sd - 1.0,
        )
    return ReferenceCheck(columns=checks)
