"""ArviZ output with the installed arviz 0.x and, when arviz-base/arviz-stats are installed, the 1.x API."""

import importlib.util

import numpy as np
import pytest

from pnmcmc import arviz_io
from pnmcmc.models import eight_schools
from pnmcmc.sampling.compare import compare
from pnmcmc.sampling.sample import sequential_sample

# The eight schools result has 60 draws per chain: the output format is tested, not convergence.
pytestmark = pytest.mark.filterwarnings("ignore::pnmcmc.ConvergenceWarning")

HAS_ARVIZ0 = importlib.util.find_spec("arviz") is not None
HAS_ARVIZ1 = (
    importlib.util.find_spec("arviz_base") is not None and importlib.util.find_spec("arviz_stats") is not None
)
APIS = [
    pytest.param("0", marks=pytest.mark.skipif(not HAS_ARVIZ0, reason="arviz (0.x) is not installed")),
    pytest.param(
        "1",
        marks=pytest.mark.skipif(
            not HAS_ARVIZ1,
            reason="the ArviZ 1.x API needs arviz-base and arviz-stats>=0.8 (pip install 'pnmcmc[arviz1]')",
        ),
    ),
]


@pytest.fixture(scope="module")
def result():
    schools = eight_schools()
    return sequential_sample(
        schools.model,
        60,
        model_kwargs=schools.model_kwargs,
        kernel="mala",  # the suite's fast kernel; NUTS is the default
        num_chains=2,
        num_warmup=60,
        rng_key=1,
        progress_bar=False,
    )


def posterior_group(data, api):
    return data.posterior if api == "0" else data["posterior"]


@pytest.mark.parametrize("api", APIS)
def test_from_dict_and_summary(api):
    rng = np.random.default_rng(0)
    groups = {
        "posterior": {"a": rng.normal(size=(4, 200)), "b": rng.normal(size=(4, 200, 2))},
        "sample_stats": {"lp": rng.normal(size=(4, 200))},
    }
    data = arviz_io.from_dict(groups, attrs={"solver": "DEER", "iterations": [3, 4, 5, 6]}, api=api)
    post = posterior_group(data, api)
    assert post["b"].shape == (4, 200, 2)
    assert post.attrs["solver"] == "DEER"
    table = arviz_io.summary(data, api=api)
    assert list(table.index) == ["a", "b[0]", "b[1]"]
    assert list(table.columns) == ["mean", "sd", "mcse_mean", "ess_bulk", "ess_tail", "r_hat"]
    np.testing.assert_allclose(table.loc["a", "mean"], groups["posterior"]["a"].mean(), rtol=1e-12)
    assert table["ess_bulk"].min() > 200  # independent draws: ESS about the number of draws


@pytest.mark.parametrize("api", APIS)
def test_convergence_statistics(api):
    rng = np.random.default_rng(1)
    groups = {
        "posterior": {"a": rng.normal(size=(4, 300)), "b": rng.normal(size=(4, 300, 2))},
        "sample_stats": {"energy": rng.normal(size=(4, 300))},
    }
    data = arviz_io.from_dict(groups, api=api)
    rhat, bulk = arviz_io.rhat(data, api=api), arviz_io.ess(data, method="bulk", api=api)
    tail = arviz_io.ess(data, method="tail", api=api)
    assert set(rhat) == {"a", "b"} and rhat["b"].shape == (2,) and tail["b"].shape == (2,)
    table = arviz_io.summary(data, api=api)  # the same numbers as ArviZ's own summary
    np.testing.assert_allclose(table["r_hat"], np.r_[rhat["a"], rhat["b"]], rtol=1e-12)
    np.testing.assert_allclose(table["ess_bulk"], np.r_[bulk["a"], bulk["b"]], rtol=1e-12)
    np.testing.assert_allclose(table["ess_tail"], np.r_[tail["a"], tail["b"]], rtol=1e-12)
    bfmi = arviz_io.bfmi(data, api=api)
    assert bfmi.shape == (4,) and np.all(np.abs(bfmi - 2.0) < 0.3)  # independent energies: ~2


@pytest.mark.parametrize("api", APIS)
def test_short_runs_and_constant_draws_are_quiet(api):
    # More chains than draws is a legitimate short run, and constant draws give NaN: neither warns
    # (the test session turns every warning into an error).
    data = arviz_io.from_dict({"posterior": {"x": np.random.default_rng(0).normal(size=(8, 5))}}, api=api)
    assert np.isfinite(arviz_io.rhat(data, api=api)["x"])
    constant = arviz_io.from_dict({"posterior": {"x": np.ones((2, 50))}}, api=api)
    assert np.isnan(arviz_io.rhat(constant, api=api)["x"])


@pytest.mark.parametrize("api", APIS)
def test_to_arviz(result, api):
    data = result.to_arviz(api=api)
    post = posterior_group(data, api)
    assert set(post.data_vars) == {"mu", "tau", "theta_tilde", "theta"}
    assert post["theta"].shape == (2, 60, 8)
    stats = data.sample_stats if api == "0" else data["sample_stats"]
    for name in ("lp", "acceptance_rate", "diverging", "energy", "step_size"):
        assert stats[name].shape == (2, 60), name
    assert post.attrs["solver"] == "Sequential" and len(post.attrs["newton_iterations"]) == 2
    table = result.summary(api=api)
    assert "theta[7]" in table.index and table.loc["mu", "mean"] == pytest.approx(
        float(np.mean(result.samples["mu"])), rel=1e-12
    )


def test_installed_api_is_detected():
    assert arviz_io.arviz_api() in ("0", "1")
    if HAS_ARVIZ0:
        arviz = arviz_io.import_arviz()

        data = arviz_io.from_dict({"posterior": {"x": np.zeros((1, 5))}})
        expected = arviz.InferenceData if int(arviz.__version__.split(".")[0]) < 1 else object
        assert isinstance(data, expected)


def test_unknown_api():
    with pytest.raises(ValueError, match="api must be None, '0'"):
        arviz_io.from_dict({"posterior": {"x": np.zeros((1, 5))}}, api="2")


def test_print_summary_and_compare(result, capsys):
    result.print_summary()
    out = capsys.readouterr().out
    assert "ess_bulk" in out and "theta[0]" in out and "Newton iterations" in out
    assert "convergence: CHECKS FAILED (2 chains x 60 draws)" in out and "FAIL bulk ESS < 200" in out
    table = compare(result, result)
    assert float(table[("max |diff|", "")].max()) == 0.0
    assert ("ess_tail", "Sequential (a)") in table.columns


PLOT_APIS = [
    pytest.param("0", marks=pytest.mark.skipif(not HAS_ARVIZ0, reason="arviz (0.x) is not installed")),
    pytest.param(
        "1",
        marks=pytest.mark.skipif(
            not HAS_ARVIZ1 or importlib.util.find_spec("arviz_plots") is None,
            reason="plots with the ArviZ 1.x API need arviz-plots",
        ),
    ),
]


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib is not installed")
@pytest.mark.parametrize("api", PLOT_APIS)
@pytest.mark.parametrize("kind, axes", [("trace", 4), ("rank", 3)])
def test_plot_with_either_api(api, kind, axes):
    """Trace: a density and a trace per variable (a, b); rank: one panel per scalar (a, b[0], b[1])."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    groups = {"posterior": {"a": rng.normal(size=(2, 100)), "b": rng.normal(size=(2, 100, 3))}}
    data = arviz_io.from_dict(groups, api=api)
    plt.close("all")
    try:
        arviz_io.plot(kind, data, var_names=["a", "b"], coords={"b_dim_0": [0, 1]}, figsize=(6, 3), api=api)
        figure = plt.gcf()
        assert len(figure.axes) == axes and tuple(figure.get_size_inches()) == (6, 3)
    finally:
        plt.close("all")


def test_plot_kinds():
    with pytest.raises(ValueError, match="kind must be one of"):
        arviz_io.plot("pair", None)
