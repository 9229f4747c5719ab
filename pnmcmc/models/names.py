"""Stan's flat parameter names for NumPyro sample sites, and back.

Stan (and posteriordb) name each scalar of a parameter: a vector site `beta` of length 3 becomes
the columns `beta[1]`, `beta[2]`, `beta[3]` (1-based), a matrix site `a` becomes `a[1,1]`,
`a[1,2]`, ..., and a scalar site `sigma` stays `sigma`. Which axes of an array are draws is never
guessed: the caller gives each site's shape for one draw (`site_shapes`), and every axis in front
of it is a leading "draw" axis ((draw,), (chain, draw), or none) that is kept as it is.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np

__all__ = ["column_names", "from_columns", "to_columns"]


def column_names(site: str, shape: tuple[int, ...]) -> list[str]:
    """Stan's names for the scalars of a site of the given shape, in row-major (C) order.

    **Arguments:**

    - `site`: the site name, e.g. `"beta"`.
    - `shape`: the shape of one draw of the site, e.g. `(3,)`; `()` for a scalar.

    **Returns:** e.g. `["beta[1]", "beta[2]", "beta[3]"]`, or `["sigma"]` for a scalar.
    """
    if shape == ():
        return [site]
    return [f"{site}[{','.join(str(i + 1) for i in index)}]" for index in np.ndindex(*shape)]


def _draw_shape(site: str, value, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The leading axes of `value` in front of the site shape; errors name the site and both shapes."""
    value_shape = tuple(np.shape(value))
    lead = len(value_shape) - len(shape)
    if lead < 0 or value_shape[lead:] != tuple(shape):
        raise ValueError(
            f"Site {site!r} has shape {value_shape}, which does not end in the site's shape {tuple(shape)}; "
            "give draws as (draw, *site_shape) or (chain, draw, *site_shape)."
        )
    return value_shape[:lead]


def to_columns(
    samples: Mapping[str, object], site_shapes: Mapping[str, tuple[int, ...]]
) -> dict[str, np.ndarray]:
    """Split NumPyro sample arrays into Stan-named scalar columns.

    **Arguments:**

    - `samples`: site name -> array of shape `(*lead, *site_shape)`, e.g. from
      `MCMC.get_samples()` (`lead = (draw,)`) or `get_samples(group_by_chain=True)`
      (`lead = (chain, draw)`). Sites absent from `site_shapes` raise `ValueError`.
    - `site_shapes`: site name -> shape of one draw.

    **Returns:** column name -> NumPy array of shape `lead`, in the order of `samples`.
    """
    unknown = [site for site in samples if site not in site_shapes]
    if unknown:
        raise ValueError(f"Unknown sites {unknown}; the model's sites are {list(site_shapes)}.")
    columns: dict[str, np.ndarray] = {}
    for site, value in samples.items():
        shape = tuple(site_shapes[site])
        lead = _draw_shape(site, value, shape)
        flat = np.asarray(value).reshape(*lead, -1)
        for k, name in enumerate(column_names(site, shape)):
            columns[name] = flat[..., k]
    return columns


def from_columns(
    columns: Mapping[str, object], site_shapes: Mapping[str, tuple[int, ...]]
) -> dict[str, jnp.ndarray]:
    """Assemble Stan-named scalar columns into site arrays (the inverse of `to_columns`).

    **Arguments:**

    - `columns`: column name -> scalar or array; all columns share one leading shape.
    - `site_shapes`: site name -> shape of one draw. A site is assembled when all of its columns
      are present; a site with only some of its columns, or a column that belongs to no site,
      raises `ValueError`.

    **Returns:** site name -> JAX array of shape `(*lead, *site_shape)`.
    """
    known = set(itertools.chain.from_iterable(column_names(s, tuple(sh)) for s, sh in site_shapes.items()))
    unknown = [name for name in columns if name not in known]
    if unknown:
        raise ValueError(f"Unknown columns {unknown}; the model's sites are {list(site_shapes)}.")
    samples: dict[str, jnp.ndarray] = {}
    for site, shape in site_shapes.items():
        names = column_names(site, tuple(shape))
        present = [name for name in names if name in columns]
        if not present:
            continue
        if len(present) != len(names):
            missing = [name for name in names if name not in columns]
            raise ValueError(f"Site {site!r} is incomplete: columns {missing} are missing.")
        stacked = jnp.stack([jnp.asarray(columns[name]) for name in names], axis=-1)
        samples[site] = stacked.reshape(*stacked.shape[:-1], *shape)
    return samples
