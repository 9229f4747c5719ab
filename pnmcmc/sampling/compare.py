"""`compare(a, b)`: two sets of draws side by side, e.g. `parallel_sample` against `sequential_sample`.

For every scalar parameter (each element of each site, named as ArviZ names them: `theta[0]`) it
lists ArviZ's mean, sd, bulk and tail ESS and R-hat of both results, and the largest absolute
difference between the draws. Independent runs should agree within Monte Carlo error.

Runs of the same randomness and configuration (`parallel_sample` and `sequential_sample` with the
same seed) are *twins*: each result's [`TwinRecord`][pnmcmc.sampling.twins.TwinRecord] says, per chain,
whether they should agree digit by digit or only statistically, and why (`pnmcmc.sampling.twins`). For
such a pair the table's `attrs["twins"]` shows, per chain, how far the draws and the adapted
parameters are apart with the expectation and its reason (the text of
[`explain`][pnmcmc.sampling.twins.explain], which returns it as a DataFrame), and
a [`TwinWarning`][pnmcmc.sampling.twins.TwinWarning] says which chains are statistical twins only (or,
never expected, which digit twins differ).

The table prints whole: `print(table)` and the notebook display show every row and column whatever
pandas' display options (`display.max_rows`, `display.max_columns`, `display.width`) would elide;
`display.precision` still sets the digits.
"""

from __future__ import annotations

import functools

import numpy as np

from .twins import explain, warn_if_not_digit_twins

__all__ = ["compare"]

_STATS = ("mean", "sd", "ess_bulk", "ess_tail", "r_hat")
DIFF = "max |diff|"


def compare(a, b, *, labels: tuple[str, str] | None = None, api: str | None = None):
    """Summaries of two [`SampleResult`][pnmcmc.sampling.results.SampleResult]s side by side.

    **Arguments:**

    - `a`, `b`: the results (e.g. from `parallel_sample` and `sequential_sample`).
    - `labels`: column labels of the two; the solver names by default (`"DEER"`, `"Sequential"`).
    - `api`: the ArviZ API (`None`: installed one; see `pnmcmc.sampling.arviz_io`).

    **Returns:** a `ComparisonTable` (a pandas DataFrame that prints whole) with one row per scalar
    parameter and columns `(statistic, label)` for `mean`, `sd`, `ess_bulk`, `ess_tail`, `r_hat`,
    then `max |diff|` (NaN where the two results' draws have different shapes). For twins (the same randomness
    and configuration), `attrs["twins"]` is the text of the per-chain
    [`explain`][pnmcmc.sampling.twins.explain] table, and a [`TwinWarning`][pnmcmc.sampling.twins.TwinWarning]
    names the chains that are not digit twins and why.
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
    table = _table_type()(columns)
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    chains = explain(a, b)
    if chains is not None:
        table.attrs["twins"] = chains.to_string()  # text: a DataFrame in attrs breaks pd.concat
        warn_if_not_digit_twins(chains, labels, stacklevel=2)
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


@functools.cache
def _table_type():
    """`ComparisonTable`, defined on first use so that `import pnmcmc` does not import pandas."""
    import pandas as pd

    class ComparisonTable(pd.DataFrame):
        """The DataFrame `compare` returns: its text and HTML forms show every row and column.

        A comparison is read whole (a parameter elided as `...` could be the one that differs), and
        its eleven columns and one row per scalar parameter exceed pandas' default display limits
        in a terminal. Tables derived from it (selections, arithmetic) are plain DataFrames.
        """

        @property
        def _constructor(self):
            return pd.DataFrame

        def __repr__(self) -> str:
            return self.to_string()

        def _repr_html_(self) -> str:
            return self.to_html()

    ComparisonTable.__module__ = __name__
    ComparisonTable.__qualname__ = "ComparisonTable"
    return ComparisonTable


def __getattr__(name):
    # `pnmcmc.sampling.compare.ComparisonTable` (isinstance checks, pickling) without importing
    # pandas at import time.
    if name == "ComparisonTable":
        return _table_type()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
