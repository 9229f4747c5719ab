"""Twins: the per-chain verdict (digit or statistical twin), the warmup's one-ulp shadow, and
`compare` explaining and warning."""

import dataclasses
import warnings

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import pnmcmc
import pnmcmc.sampling.warmup
from pnmcmc.sampling.chains import chain_runner
from pnmcmc.sampling.compare import compare
from pnmcmc.sampling.sample import parallel_sample, sequential_sample
from pnmcmc.sampling.twins import SENSITIVITY_LIMIT, TwinExpectation, TwinWarning, explain, twin_record
from pnmcmc.sampling.warmup import WarmupResult, WindowAdaptation, _Adaptation, _distance

# Twins of 60 draws: the convergence checks rightly fail; these tests are about the twins.
pytestmark = pytest.mark.filterwarnings("ignore::pnmcmc.ConvergenceWarning")

Y = jnp.array([1.2, 0.4, 2.3, 1.9, 0.7, 1.5, 2.8, 1.1, 0.2, 1.6])


def model(y):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
    numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


MALA_RUN = dict(
    model_kwargs={"y": Y},
    kernel="mala",
    num_chains=2,
    num_warmup=100,
    rng_key=5,
    progress_bar=False,
)


def _warmup(sensitivity, *, method="parallel", num_windows=20, measured=None):
    zeros = jnp.zeros(2)
    return WarmupResult(
        positions=jnp.zeros((2, 3)),
        step_size=zeros + 0.1,
        inverse_mass_matrix=jnp.ones((2, 3)),
        acceptance_rate=zeros,
        num_iterations=zeros,
        num_windows=num_windows,
        method=method,
        target_acceptance=0.8,
        time=0.0,
        compile_time=0.0,
        sensitivity=None if sensitivity is None else np.asarray(sensitivity, float),
        sensitivity_windows=num_windows if measured is None else measured,
    )


CONTRACTING = (np.array([-0.2, -0.3]), np.array([0.01, 0.02]))


def test_verdict_rules():
    """Each rule of pnmcmc.sampling.twins on its own, and the boundary of the sensitivity limit."""
    limit = SENSITIVITY_LIMIT
    record = twin_record(_warmup([0.5 * limit, 2 * limit]), *CONTRACTING, jnp.float64, fingerprint=())
    assert record.expectation == (TwinExpectation.DIGITS, TwinExpectation.STATISTICAL)
    assert record.digit_twins.tolist() == [True, False]
    assert "warmup sensitivity 5.0e-11" in record.reasons[0] and "sampling LLE -0.200" in record.reasons[0]
    assert "sensitive warmup" in record.reasons[1] and "by 2.0e-10" in record.reasons[1]
    stopped = twin_record(_warmup([0.5, 0.2], measured=12), *CONTRACTING, jnp.float64, fingerprint=())
    assert "by at least 5.0e-01" in stopped.reasons[0]
    expanding = twin_record(
        _warmup([0.0, 0.0]), np.array([0.3, 0.01]), np.array([0.05, 0.02]), jnp.float64, fingerprint=()
    )
    assert expanding.expectation == (TwinExpectation.STATISTICAL, TwinExpectation.DIGITS)
    assert "expanding sampling chain: LLE 0.300" in expanding.reasons[0]
    float32 = twin_record(_warmup(None), *CONTRACTING, jnp.float32, fingerprint=())
    assert float32.expectation == (TwinExpectation.STATISTICAL,) * 2 and "float32" in float32.reasons[0]
    nan = twin_record(_warmup([np.nan, 0.0]), *CONTRACTING, jnp.float64, fingerprint=())
    assert nan.expectation[0] is TwinExpectation.STATISTICAL and "not finite" in nan.reasons[0]
    unmeasured = twin_record(_warmup(None), *CONTRACTING, jnp.float64, fingerprint=())
    assert unmeasured.expectation == (TwinExpectation.UNMEASURED,) * 2
    assert "twin_check=False" in unmeasured.reasons[0]
    # Nothing adapted, or BlackJAX's warmup (the same sequential program in both runs): no warmup
    # difference, in float32 too; the sampling chain alone decides.
    fixed = twin_record(_warmup([0.0, 0.0]), *CONTRACTING, jnp.float32, fingerprint=())
    assert fixed.expectation == (TwinExpectation.DIGITS,) * 2
    blackjax = twin_record(
        _warmup(None, method="blackjax", num_windows=0), *CONTRACTING, jnp.float32, fingerprint=()
    )
    assert blackjax.expectation == (TwinExpectation.DIGITS,) * 2
    assert "chain 1: digit twin expected (float32" in blackjax.describe()


def _one_ulp_runner(logdensity, solver, callback=None):
    run = chain_runner(logdensity, solver, callback)
    return lambda kernels, x0s, noise: run(kernels, x0s * (1 + 2.0**-52), noise)


@pytest.fixture(scope="module")
def twins():
    par = parallel_sample(model, 60, solver=pnmcmc.DEER(segment=16), **MALA_RUN)
    seq = sequential_sample(model, 60, **MALA_RUN)
    return par, seq


def test_the_shadow_is_the_one_ulp_rerun_and_changes_nothing(twins, monkeypatch):
    """The sensitivity a parallel warmup measures is the distance to the sequential warmup re-run
    with every window's start moved by one ulp (the yardstick of benchmarks/warmup_twin.py, which
    nudges inside the solve, so the two agree in magnitude, not bit for bit), and measuring it
    leaves the result bit for bit as without it. Sequential windows are sequential_sample's own
    program: nothing to measure, and digit twins by construction."""
    par, seq = twins
    solver = pnmcmc.DEER(segment=16)
    unchecked = parallel_sample(
        model, 60, solver=solver, **MALA_RUN, warmup=WindowAdaptation(twin_check=False)
    )
    np.testing.assert_array_equal(unchecked.positions, par.positions)
    np.testing.assert_array_equal(unchecked.warmup.step_size, par.warmup.step_size)
    assert (
        unchecked.warmup.sensitivity is None and unchecked.twins.expectation[0] is TwinExpectation.UNMEASURED
    )
    assert seq.warmup.sequential and seq.warmup.sensitivity is None and seq.warmup.sensitivity_time == 0
    assert seq.twins.expectation == (TwinExpectation.DIGITS,) * 2
    monkeypatch.setattr(pnmcmc.sampling.warmup, "chain_runner", _one_ulp_runner)
    nudged = sequential_sample(model, 60, **MALA_RUN)
    w, v = seq.warmup, nudged.warmup
    expected = _distance(
        jnp.log(w.step_size),
        _Adaptation(w.positions, None, None, w.inverse_mass_matrix),
        jnp.log(v.step_size),
        _Adaptation(v.positions, None, None, v.inverse_mass_matrix),
    )
    assert np.all(expected > 0)  # one ulp did move something
    ratio = np.asarray(par.warmup.sensitivity) / expected
    assert np.all((ratio > 0.03) & (ratio < 30)), (par.warmup.sensitivity, expected)
    assert par.warmup.sensitivity_windows == par.warmup.num_windows
    assert par.warmup.sensitivity_time > 0


def test_digit_twins_compare_silently(twins):
    par, seq = twins
    assert par.twins.fingerprint == seq.twins.fingerprint
    assert all(e is TwinExpectation.DIGITS for e in (*par.twins.expectation, *seq.twins.expectation))
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)
        table = compare(par, seq)
    chains = explain(par, seq)
    assert chains["expected"].tolist() == [TwinExpectation.DIGITS.value] * 2
    assert float(chains["max |diff| draws"].max()) < 1e-8
    assert table.attrs["twins"] == chains.to_string()


def test_compare_warns_and_explains_statistical_twins(twins):
    par, seq = twins
    record = seq.twins
    sensitive = dataclasses.replace(
        record,
        expectation=(TwinExpectation.DIGITS, TwinExpectation.STATISTICAL),
        reasons=(record.reasons[0], "sensitive warmup: one ulp per window moved ... by 3.0e-02"),
    )
    moved = dataclasses.replace(seq, twins=sensitive, positions=seq.positions.at[1].add(0.5))
    with pytest.warns(TwinWarning) as caught:
        compare(par, moved)
    message = str(caught[0].message)
    assert "chain 1: statistical twin only (sensitive warmup" in message and "differ by up to 0.5" in message
    assert "chain 0" not in message
    # chains expected to be digit twins that differ are reported as such
    broken = dataclasses.replace(seq, positions=seq.positions.at[0].add(1e-3))
    with pytest.warns(TwinWarning, match="chain 0: expected to be a digit twin .* differ by up to 0.001"):
        compare(par, broken)
    # independent runs (another seed) are not twins: no twin explanation, no warning
    other = sequential_sample(model, 60, **{**MALA_RUN, "rng_key": 6})
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)
        table = compare(par, other)
    assert "twins" not in table.attrs and explain(par, other) is None


@pytest.mark.slow
def test_default_nuts_twins_are_digit_twins_or_say_why():
    """With every default but the sizes (kernel NUTS, solver auto, float64), each chain of the
    parallel and sequential runs is a digit twin (draws within 1e-8) or is named with a reason."""
    options = dict(model_kwargs={"y": Y}, num_chains=2, num_warmup=100, rng_key=0, progress_bar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TwinWarning)
        par = parallel_sample(model, 30, solver="deer", **options)
        seq = sequential_sample(model, 30, **options)
        chains = explain(par, seq)
    assert par.kernel.name == "nuts" and np.all(np.asarray(par.sample_stats["tree_depth"]) >= 1)
    for c, row in chains.iterrows():
        if row["expected"] == TwinExpectation.DIGITS.value:
            assert row["max |diff| draws"] <= 1e-8, (c, row)
        else:
            assert row["why"], (c, row)
