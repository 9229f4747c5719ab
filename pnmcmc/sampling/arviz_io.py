"""The one place that knows which ArviZ is installed.

ArviZ 0.x builds an `InferenceData` with `arviz.from_dict(posterior=..., sample_stats=...)` and
summarises it with `arviz.summary`; ArviZ 1.x is split into `arviz_base` (`from_dict({"posterior":
...})` returning an xarray `DataTree`) and `arviz_stats` (`summary`). Everything else in pnmcmc
calls `from_dict`, `summary` and the convergence statistics (`rhat`, `ess`, `bfmi`, used by
`pnmcmc.sampling.convergence`) here and never imports ArviZ itself; `plot` draws trace and rank
plots with whichever API is installed (ArviZ 1.x plots through `arviz_plots`).

The API is chosen by `api=None` (automatic: ArviZ 1.x when the installed `arviz` is >= 1, or when
only `arviz_base`/`arviz_stats` are installed; else 0.x), or forced with `api="0"` / `api="1"`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import warnings

import numpy as np

__all__ = [
    "API_NAMES", "arviz_api", "bfmi", "ess", "from_dict", "import_arviz", "load", "plot", "rhat", "summary",
]  # fmt: skip

API_NAMES = ("0", "1")
_COLUMNS = ["mean", "sd", "mcse_mean", "ess_bulk", "ess_tail", "r_hat"]


def arviz_api() -> str:
    """`"1"` for the ArviZ 1.x API (arviz_base + arviz_stats), `"0"` for arviz 0.x."""
    if importlib.util.find_spec("arviz") is not None:
        from importlib.metadata import version

        if int(version("arviz").split(".")[0]) >= 1:
            return "1"
        return "0"
    if importlib.util.find_spec("arviz_base") is not None:
        return "1"
    raise ImportError(
        "ArviZ is not installed: pip install arviz (0.x), or arviz-base and arviz-stats (the 1.x API)."
    )


def import_arviz():
    """`import arviz` (0.x) without its once-a-day FutureWarning banner about the 1.x refactor.

    The banner is printed on the first import of each day on a machine, so whether a run shows it
    depends on the date and the cache directory; pnmcmc's output (and `filterwarnings = error`
    test runs) must not.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"\s*ArviZ is undergoing a major refactor", category=FutureWarning
        )
        import arviz

    return arviz


def load() -> None:
    """Import the installed ArviZ API's modules now (they take seconds to import), so that the
    first call's convergence checks do not wait for them."""
    if arviz_api() == "1":
        import arviz_base  # noqa: F401
        import arviz_stats  # noqa: F401
    else:
        import_arviz()


def _resolve(api):
    api = arviz_api() if api is None else str(api)
    if api not in API_NAMES:
        raise ValueError(f"api must be None, '0' (arviz 0.x) or '1' (arviz 1.x), got {api!r}.")
    if api == "1" and importlib.util.find_spec("arviz_base") is None:
        raise ImportError(
            "The ArviZ 1.x API needs arviz-base and arviz-stats: pip install 'arviz-stats>=0.8'."
        )
    return api


def from_dict(groups: dict, *, attrs: dict | None = None, api: str | None = None):
    """Build an ArviZ object from `{group: {variable: array (chain, draw, ...)}}`.

    **Arguments:**

    - `groups`: e.g. `{"posterior": {...}, "sample_stats": {...}}`; arrays have leading
      dimensions (chain, draw).
    - `attrs`: attributes attached to every group (numbers, strings, lists of them).
    - `api`: `None` (detect), `"0"` or `"1"`; see the module docstring.

    **Returns:** an `arviz.InferenceData` (0.x) or an `xarray.DataTree` (1.x).
    """
    api = _resolve(api)
    groups = {g: {k: np.asarray(v) for k, v in variables.items()} for g, variables in groups.items()}
    attrs = dict(attrs or {})
    with warnings.catch_warnings():
        # Both APIs guess that (chain, draw) were swapped when chains outnumber draws; here the
        # axes are always (chain, draw), and short runs of many chains are legitimate.
        for message in (r"More chains \(\d+\) than draws", "Found chain dimension to be longer than draw"):
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        if api == "1":
            import arviz_base

            return arviz_base.from_dict(groups, attrs={g: attrs for g in groups})
        return import_arviz().from_dict(**groups, **{f"{g}_attrs": dict(attrs) for g in groups})


def summary(data, *, api: str | None = None):
    """Per-parameter mean, sd, mcse_mean, ess_bulk, ess_tail, r_hat (a pandas DataFrame).

    Rows are named `site` for scalars and `site[i, j]` for array elements (0-based), as ArviZ
    names them; values are not rounded.
    """
    api = _resolve(api)
    if api == "1":
        import arviz_stats

        table = arviz_stats.summary(data, kind="all", round_to="none")
    else:
        table = import_arviz().summary(data, kind="all", round_to="none")
    return table[_COLUMNS].astype(float)


# kind: (ArviZ 0.x function, arviz_plots function)
_PLOTS = {"trace": ("plot_trace", "plot_trace_dist"), "rank": ("plot_rank", "plot_rank")}


def plot(kind: str, data, *, var_names=None, coords=None, figsize=None, api: str | None = None):
    """Trace (`kind="trace"`) or rank (`kind="rank"`) plots of `data` (e.g. `result.to_arviz()`).

    ArviZ 0.x draws them with `arviz.plot_trace` / `arviz.plot_rank` (rank histograms) and returns
    matplotlib axes; ArviZ 1.x with `arviz_plots.plot_trace_dist` / `arviz_plots.plot_rank` (rank
    ECDFs; matplotlib backend; `pip install arviz-plots`) and returns a `PlotCollection`.
    `var_names` and `coords` select what is drawn, as in ArviZ; `figsize` is in inches.
    """
    if kind not in _PLOTS:
        raise ValueError(f"kind must be one of {list(_PLOTS)}, got {kind!r}.")
    api = _resolve(api)
    if api == "1" and importlib.util.find_spec("arviz_plots") is None:
        raise ImportError("Plots with the ArviZ 1.x API need arviz-plots: pip install 'arviz-plots>=0.8'.")
    with warnings.catch_warnings():
        # Both ArviZ APIs call matplotlib (3.11) in ways it deprecates, which is theirs to fix; and
        # arviz-plots <= 1.1 reaches `matplotlib.style.core` as an attribute, a deprecated submodule
        # that matplotlib >= 3.11 no longer imports (arviz-devs/arviz-plots#500): import it first.
        for category in (DeprecationWarning, PendingDeprecationWarning):
            warnings.simplefilter("ignore", category)
        if api == "0":
            draw = getattr(import_arviz(), _PLOTS[kind][0])
            return draw(data, var_names=var_names, coords=coords, figsize=figsize)
        importlib.import_module("matplotlib.style.core")
        import arviz_plots

        sizes = {"figure_kwargs": {"figsize": figsize}} if figsize is not None else {}
        draw = getattr(arviz_plots, _PLOTS[kind][1])
        return draw(data, var_names=var_names, coords=coords, backend="matplotlib", **sizes)


def rhat(data, *, api: str | None = None) -> dict[str, np.ndarray]:
    """ArviZ's rank-normalised split R-hat of every posterior variable: `{name: array of its shape}`.

    ArviZ needs at least 2 chains (it splits each in two) of at least 4 draws; with fewer it
    returns NaN. NaN also marks draws that are constant across all chains.
    """
    api = _resolve(api)
    with _quiet():
        if api == "1":
            import arviz_stats

            values = arviz_stats.rhat(data, method="rank")
        else:
            values = import_arviz().rhat(data, method="rank")
    return _per_variable(values)


def ess(data, *, method: str, api: str | None = None) -> dict[str, np.ndarray]:
    """ArviZ's effective sample size (`method="bulk"` or `"tail"`) of every posterior variable, the
    total over chains: `{name: array of its shape}`. NaN with fewer than 4 draws per chain."""
    api = _resolve(api)
    with _quiet():
        if api == "1":
            import arviz_stats

            values = arviz_stats.ess(data, method=method)
        else:
            values = import_arviz().ess(data, method=method)
    return _per_variable(values)


def bfmi(data, *, api: str | None = None) -> np.ndarray:
    """ArviZ's E-BFMI of each chain (C,), from the `energy` of the `sample_stats` group."""
    api = _resolve(api)
    with _quiet():
        if api == "1":
            import arviz_stats

            return np.asarray(arviz_stats.bfmi(data)["energy"].values, float)
        return np.asarray(import_arviz().bfmi(data), float)


def _per_variable(dataset) -> dict[str, np.ndarray]:
    # An xarray Dataset (0.x) or DataTree node (1.x): both index variables by name.
    return {str(name): np.asarray(dataset[name].values, float) for name in dataset.data_vars}


@contextlib.contextmanager
def _quiet():
    """ArviZ divides by a zero variance on constant draws (NumPy's RuntimeWarning) and returns NaN,
    which the caller reports; the warning itself says nothing more."""
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
