"""`compare(a, b)`: two sets of draws side by side, e.g. `parallel_sample` against `sequential_sample`.

For every scalar parameter (each element of each site, named as ArviZ names them: `theta[0]`) it
lists ArviZ's mean, sd, bulk and tail ESS and R-hat of both results, and the largest absolute
difference between the draws. Runs with the same seed should agree to the solver's tolerance, so
the last column is the exactness check; independent runs should agree within Monte Carlo error.
"""

from __future__ import annotations

import numpy as np

__all__ = ["compare"]

_STATS = ("mean", "sd", "ess_bulk", "ess_tail", "r_hat")
DIFF = "max |diff|"


def compare(a, b, *, labels: tuple[str, str] | None = None, api: str | None = None):
    """Summaries of two [`SampleResult`][pnmcmc.sampling.results.SampleResult]s side by side.

    **Arguments:**

    - `a`, `b`: the results (e.g. from `parallel_sample` and `sequential_sample`).
    - `labels`: column labels of the two; the solver names by default (`"DEER"`, `"Sequential"`).
    - `api`: the ArviZ API (`None`: installed one; see `pnmcmc.sampling.arviz_io`).

    **Returns:** a pandas DataFrame with one row per scalar parameter and columns
    `(statistic, label)` for `mean`, `sd`, `ess_bulk`, `ess_tail`, `r_hat`, then `max |diff|`
    (NaN where the two results' draws have different shapes).
    """
    import pandas as pd

    if labels is None:
        labels = (type(a.solver).__name__, type(b.solver).__name__)
        if labels[0] == labels[1]:
            labels = (labels[0] + " (a)", labels[1] + " (b)")
    sa, sb = a.summary(api=api), b.summary(api=api)
    columns = {}
    for stat in _STATS:
        columns[(stat, labels[0])] = sa[stat]
        columns[(stat, labels[1])] = sb[stat].reindex(sa.index)
    columns[(DIFF, "")] = pd.Series(_max_differences(a.samples, b.samples)).reindex(sa.index)
    table = pd.DataFrame(columns)
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


def _max_differences(first: dict, second: dict) -> dict:
    """`{"site[i, j]": max over chains and draws of |first - second|}` for every scalar element."""
    out = {}
    for name, x in first.items():
        x = np.asarray(x)
        y = np.asarray(second[name]) if name in second else None
        shape = x.shape[2:]
        same = y is not None and y.shape == x.shape
        diff = np.abs(x - y).max(axis=(0, 1)) if same else np.full(shape, np.nan)
        if not shape:
            out[name] = float(diff)
            continue
        for index in np.ndindex(*shape):
            out[f"{name}[{', '.join(map(str, index))}]"] = float(diff[index])
    return out
