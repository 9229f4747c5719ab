"""`Posterior`: a NumPyro model, its data, and (where known) a reference summary of its posterior.

A `Posterior` is what a sampler needs (`model`, `model_args`, `model_kwargs`, ready for
`numpyro.infer.MCMC.run` or `numpyro.infer.util.initialize_model`) plus what a test needs to judge
the draws: `reference`, the gold-standard mean and standard deviation of each scalar parameter
under Stan's names (`beta[1]`, ...; see `pnmcmc.models.names`), and the conversions between
NumPyro's site arrays and those names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers
from numpyro.infer.util import init_to_uniform

from .names import from_columns, to_columns

__all__ = ["Posterior"]


@dataclass(frozen=True, eq=False)
class Posterior:
    """A NumPyro model with its data and an optional reference posterior summary.

    **Fields:**

    - `name`: e.g. `"kidiq-kidscore_momhs"` (posteriordb's name) or `"eight_schools"`.
    - `model`: the NumPyro model, called as `model(*model_args, **model_kwargs)`.
    - `model_args`, `model_kwargs`: the data, as JAX arrays in JAX's default float dtype at the
      time the `Posterior` was made (float64 when `jax_enable_x64` is on).
    - `reference`: column name (`"beta[1]"`, `"sigma"`) -> `(mean, sd)` of the reference posterior
      draws, or `None` when there is no reference.
    """

    name: str
    model: Callable[..., None]
    model_args: tuple = ()
    model_kwargs: Mapping[str, jnp.ndarray] = field(default_factory=dict)
    reference: Mapping[str, tuple[float, float]] | None = None

    @cached_property
    def site_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of one draw of each latent and deterministic site, in the model's order.

        Found by tracing the model abstractly (`jax.eval_shape`, nothing is computed) with a
        random value for every latent site; observed sites and factors are left out.
        """
        names: list[str] = []  # jax.eval_shape would sort a dict's keys; keep the model's order

        def latent_values():
            seeded = handlers.substitute(handlers.seed(self.model, 0), substitute_fn=init_to_uniform)
            model_trace = handlers.trace(seeded).get_trace(*self.model_args, **self.model_kwargs)
            latent = [
                (name, site["value"])
                for name, site in model_trace.items()
                if (site["type"] == "sample" and not site["is_observed"]) or site["type"] == "deterministic"
            ]
            names.extend(name for name, _ in latent)
            return [value for _, value in latent]

        shapes = jax.eval_shape(latent_values)
        return {name: tuple(shape.shape) for name, shape in zip(names, shapes, strict=True)}

    def to_columns(self, samples: Mapping[str, object]) -> dict[str, np.ndarray]:
        """Stan-named scalar columns of NumPyro samples, comparable with `reference`.

        **Arguments:**

        - `samples`: site name -> array of shape `(draw, *site_shape)` or
          `(chain, draw, *site_shape)` (any subset of `site_shapes`; unknown sites raise
          `ValueError`), e.g. `MCMC.get_samples(group_by_chain=True)`.

        **Returns:** column name (`"beta[1]"`, ...) -> NumPy array of shape `(draw,)` or
        `(chain, draw)`.
        """
        return to_columns(samples, self.site_shapes)

    def from_columns(self, columns: Mapping[str, object]) -> dict[str, jnp.ndarray]:
        """Site arrays from Stan-named scalar columns (the inverse of `to_columns`).

        **Arguments:**

        - `columns`: column name -> scalar or array (one common leading shape).

        **Returns:** site name -> JAX array, for every site whose columns are all present.
        """
        return from_columns(columns, self.site_shapes)

    def reference_means(self) -> dict[str, jnp.ndarray]:
        """The reference posterior mean of every latent site, e.g. for `init_to_value(values=...)`.

        **Returns:** site name -> JAX array of the site's shape. Raises `ValueError` when the
        posterior has no reference.
        """
        if self.reference is None:
            raise ValueError(f"Posterior {self.name!r} has no reference summary.")
        return self.from_columns({column: mean for column, (mean, _) in self.reference.items()})
