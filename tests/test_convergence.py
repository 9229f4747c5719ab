"""Convergence checks (pnmcmc.sampling.convergence): each check fails alone on synthetic draws made to break
it, all pass on independent draws, with both ArviZ APIs; and end to end, `parallel_sample` warns
(once, at the caller's line) on runs that have not converged and stays silent on one that has."""

import dataclasses
import importlib.util
import warnings

import blackjax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import pnmcmc
from pnmcmc.sampling.convergence import (
    ConvergenceWarning,
    check_convergence,
    diagnose,
    find_stack_level,
    max_tree_depth,
)

HAS_ARVIZ1 = (
    importlib.util.find_spec("arviz_base") is not None and importlib.util.find_spec("arviz_stats") is not None
)
APIS = [
    "0",
    pytest.param("1", marks=pytest.mark.skipif(not HAS_ARVIZ1, reason="arviz-base/arviz-stats missing")),
]
C, T = 4, 1000


def iid(seed=0, shape=(C, T, 3)):
    return np.random.default_rng(seed).normal(size=shape)


def stats(seed=1, max_depth=10):
    """Statistics of a healthy run: no divergence, independent energies, trees below the maximum."""
    rng = np.random.default_rng(seed)
    return dict(
        diverging=np.zeros((C, T), bool),
        energy=rng.normal(size=(C, T)),
        tree_depth=rng.integers(1, max_depth, size=(C, T)),
        max_tree_depth=max_depth,
    )


def failed(diagnostics):
    return {c.name for c in diagnostics.failed}


@pytest.mark.parametrize("api", APIS)
def test_independent_draws_pass_every_check(api):
    d = check_convergence({"a": iid(), "b": iid(1, (C, T))}, **stats(), api=api)
    assert d.passed and failed(d) == set() and d.advice == ()
    names = ["r_hat", "ess_bulk", "ess_tail", "divergences", "e_bfmi", "tree_depth"]
    assert [c.name for c in d.checks] == names
    assert d["r_hat"].labels == ("a[0]", "a[1]", "a[2]", "b")  # ArviZ's names, latent order
    assert np.all(d["r_hat"].values < 1.01) and np.all(d["ess_bulk"].values > 0.8 * C * T)
    assert d["ess_bulk"].threshold == 100 * C
    np.testing.assert_allclose(d["e_bfmi"].values, 2.0, rtol=0.1)  # independent energies: E-BFMI ~ 2
    assert "all checks passed" in d.describe()


@pytest.mark.parametrize("api", APIS)
def test_rhat_alone_fails(api):
    # Chain 0 of a[1] has the same median and 5%/95% quantiles but more mass near them: bulk and
    # tail ESS cannot see it, the folded (rank-normalised) split R-hat does.
    x = iid()
    z = x[0, :, 1]
    x[0, :, 1] = np.where(np.abs(z) < 1.645, np.sign(z) * 1.645 * np.sqrt(np.abs(z) / 1.645), z)
    d = check_convergence({"a": x}, **stats(), api=api)
    assert failed(d) == {"r_hat"}
    assert d["r_hat"].worst == ("a[1]",) and d["r_hat"].failing[0][1] > 1.02
    assert "split R-hat > 1.010 in 1 of 3 parameters: a[1] 1.0" in d.message()
    assert "dense_mass=True" in d.message() and "more draws" in d.message()


@pytest.mark.parametrize("api", APIS)
def test_ess_alone_fails(api):
    # 64 chains of 60 independent draws: R-hat is fine, but 60 draws per chain cannot give 100.
    d = check_convergence({"a": iid(2, (64, 60))}, api=api)
    assert failed(d) == {"ess_bulk", "ess_tail"}
    assert d["ess_bulk"].threshold == 6400 and np.all(d["ess_bulk"].values < 6400)
    assert "bulk ESS < 6400 (100 per chain) in 1 of 1 parameters: a " in d.message()
    # Only the run's length is known to be wrong: the advice is more draws, and only that.
    assert len(d.advice) == 1 and "60 per chain cannot give an ESS of 100 per chain" in d.advice[0]


@pytest.mark.parametrize("api", APIS)
def test_divergences_alone_fail(api):
    s = stats()
    s["diverging"][2, [17, 40]] = True
    d = check_convergence({"a": iid()}, **s, api=api)
    assert failed(d) == {"divergences"}
    np.testing.assert_array_equal(d["divergences"].values, [0, 0, 2, 0])
    assert d["divergences"].worst == ("chain 2",)
    assert "divergent transitions: 2 of 4000 (chain 2: 2)" in d.message()
    assert "target_acceptance=0.95" in d.message() and "non-centring" in d.message()


@pytest.mark.parametrize("api", APIS)
def test_ebfmi_alone_fails(api):
    s = stats()
    # Chain 1's energy is a slow AR(1) (rho 0.95): momentum resampling barely moves it, E-BFMI ~ 0.1.
    rng = np.random.default_rng(3)
    e = np.zeros(T)
    for t in range(1, T):
        e[t] = 0.95 * e[t - 1] + np.sqrt(1 - 0.95**2) * rng.normal()
    s["energy"][1] = e
    d = check_convergence({"a": iid()}, **s, api=api)
    assert failed(d) == {"e_bfmi"}
    assert d["e_bfmi"].worst == ("chain 1",) and d["e_bfmi"].values[1] < 0.3
    assert "E-BFMI < 0.30 in 1 of 4 chains: chain 1 0.1" in d.message()


@pytest.mark.parametrize("api", APIS)
def test_tree_depth_alone_fails(api):
    s = stats(max_depth=8)
    s["tree_depth"][3, :5] = 8
    d = check_convergence({"a": iid()}, **s, api=api)
    assert failed(d) == {"tree_depth"}
    assert "transitions that hit NUTS's maximum tree depth (8): 5 of 4000 (chain 3: 5)" in d.message()
    assert "max_num_doublings" in d.message()


@pytest.mark.parametrize("api", APIS)
def test_single_chain_split_rhat(api):
    x = iid(4, (1, T, 2))
    assert check_convergence({"a": x}, api=api).passed  # halves of one stationary chain agree
    x[0, T // 2 :, 1] += 0.5  # the second half drifted
    d = check_convergence({"a": x}, api=api)
    assert "r_hat" in failed(d) and d["r_hat"].worst[0] == "a[1]"
    assert np.isfinite(d["r_hat"].values).all() and "one chain: its halves as two chains" in d.message()


@pytest.mark.parametrize("api", APIS)
def test_very_short_runs_say_so(api):
    d = check_convergence({"a": iid(5, (1, 3))}, diverging=np.zeros((1, 3), bool), api=api)
    assert failed(d) == {"r_hat", "ess_bulk", "ess_tail"}
    text = d.message()
    assert "split R-hat: not computable (needs 8 draws per chain, got 3)" in text
    assert "bulk ESS: not computable" in text and "3 per chain cannot give an ESS" in text
    assert "1 chain x 3 draws" in text


def test_constant_draws_fail():
    # Chains that never moved: ArviZ's R-hat is NaN, which never passes.
    d = check_convergence({"a": np.ones((4, 200))})
    assert "r_hat" in failed(d) and np.isnan(d["r_hat"].values).all()
    assert "split R-hat: not computable" not in d.message() and "a nan" in d.message()


def test_constant_elements_of_deterministic_sites_are_not_checked():
    # A deterministic Cholesky-like factor: its fixed zeros and ones are not random.
    factor = np.zeros((C, T, 2, 2))
    factor[..., 0, 0], factor[..., 1, 1] = 1.0, np.exp(iid(6, (C, T)))
    d = check_convergence({"a": iid(), "L": factor}, deterministic=("L",))
    assert d.passed and d["r_hat"].labels == ("a[0]", "a[1]", "a[2]", "L[1, 1]")
    assert not check_convergence({"a": iid(), "L": factor}).passed  # as a latent site: never moved


def test_checks_that_do_not_apply_are_named():
    d = check_convergence({"a": iid()})
    assert set(d.skipped) == {"divergences", "e_bfmi", "tree_depth"}
    with pytest.raises(KeyError, match="e_bfmi: not checked, no Hamiltonian energy"):
        d["e_bfmi"]
    assert "n/a  tree_depth" in d.describe()
    with pytest.raises(ValueError, match="same leading"):
        check_convergence({"a": iid(), "b": iid(0, (C, T - 1))})


def test_max_tree_depth():
    assert max_tree_depth(pnmcmc.NUTS(0.1)) == 10
    assert max_tree_depth(pnmcmc.NUTS(0.1, max_num_doublings=7)) == 7
    assert max_tree_depth(pnmcmc.kernels.BlackJAX(blackjax.nuts, step_size=0.1)) == 10  # BlackJAX's default
    assert max_tree_depth(pnmcmc.MALA(0.1)) is None and max_tree_depth(pnmcmc.HMC(0.1, 5)) is None


def test_find_stack_level_points_outside_pnmcmc():
    assert find_stack_level() == 1  # called from outside pnmcmc: the caller itself (stacklevel=1)


# --- End to end ---------------------------------------------------------------------------------------


def correlated_normal(rho):
    cov = jnp.array([[1.0, rho], [rho, 1.0]])

    def model():
        numpyro.sample("x", dist.MultivariateNormal(jnp.zeros(2), cov))

    return model


def test_warns_on_a_run_that_has_not_converged():
    # MALA with a diagonal metric on a correlation of 0.999 and 100 draws: far from converged.
    with pytest.warns(ConvergenceWarning) as record:
        result = pnmcmc.parallel_sample(
            correlated_normal(0.999), 100, kernel="mala", solver="deer", num_chains=2, num_warmup=100,
            rng_key=0, progress_bar=False,
        )  # fmt: skip
    warned = [w for w in record if issubclass(w.category, ConvergenceWarning)]
    assert len(warned) == 1 and warned[0].filename == __file__  # once, at the caller's line
    text = str(warned[0].message)
    assert "split R-hat > 1.010 in 2 of 2 parameters: x[" in text and "bulk ESS < 200" in text
    assert "kernel='nuts'" in text and "dense_mass=True" in text
    c = result.convergence
    assert not c.passed and {"r_hat", "ess_bulk"} <= {x.name for x in c.failed}
    assert set(c["r_hat"].worst) == {"x[0]", "x[1]"} and "e_bfmi" in c.skipped  # MALA: no momentum
    assert "CHECKS FAILED" in result.describe()


def test_warns_on_a_chain_stuck_by_a_tiny_step_size():
    with pytest.warns(ConvergenceWarning, match=r"split R-hat > 1\.010 in 2 of 2 parameters") as record:
        result = pnmcmc.sequential_sample(
            correlated_normal(0.5), 100, kernel="mala", num_chains=4, num_warmup=0, step_size=1e-4,
            rng_key=0, progress_bar=False,
        )  # fmt: skip
    assert [w.filename for w in record if w.category is ConvergenceWarning] == [__file__]
    assert result.convergence["r_hat"].failing[-1][1] > 1.5  # each chain sits where it started


@pytest.fixture(scope="module")
def converged():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        return pnmcmc.parallel_sample(
            correlated_normal(0.5), 1000, kernel="mala", solver="deer", num_chains=4, num_warmup=300,
            rng_key=0, progress_bar=False,
        )  # fmt: skip


@pytest.mark.parametrize("api", APIS)
def test_silent_on_a_run_that_has_converged(converged, api):
    c = converged.convergence  # the fixture itself turns a ConvergenceWarning into an error
    assert c.passed and c.failed == () and c.num_chains == 4 and c.num_draws == 1000
    assert [x.name for x in c.checks] == ["r_hat", "ess_bulk", "ess_tail", "divergences"]
    again = diagnose(converged, api=api)  # either ArviZ API gives the same verdict and R-hat
    assert again.passed
    np.testing.assert_allclose(again["r_hat"].values, c["r_hat"].values, rtol=1e-10)
    assert "convergence: all checks passed (4 chains x 1000 draws)" in converged.describe()


def test_print_summary_shows_the_checks(converged, capsys):
    converged.print_summary()
    out = capsys.readouterr().out
    assert "ess_bulk" in out and "split R-hat <= 1.010" in out and "n/a  e_bfmi" in out


def test_diagnose_reads_energy_and_tree_depth_from_the_result(converged):
    # The same draws as if a NUTS kernel with momentum had produced them: E-BFMI and tree depth apply.
    st = dict(converged.sample_stats)
    rng = np.random.default_rng(0)
    st["energy"] = -np.asarray(st["lp"]) + rng.exponential(size=st["lp"].shape)
    st["tree_depth"] = np.full(st["lp"].shape, 3)
    st["tree_depth"][1, 10] = 6
    fake = dataclasses.replace(converged, sample_stats=st, kernel=pnmcmc.NUTS(0.1, max_num_doublings=6))
    d = diagnose(fake)
    assert failed(d) == {"tree_depth"} and d["tree_depth"].worst == ("chain 1",)
    assert d["e_bfmi"].passed and d["e_bfmi"].threshold == 0.3
