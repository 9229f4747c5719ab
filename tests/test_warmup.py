"""The warmup's building blocks: the acceptance-curve search, the window solver's tolerance, the
target acceptance."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

from pnmcmc import DEER, QuasiDEER, Sequential
from pnmcmc.kernels import HMC, MALA, NUTS
from pnmcmc.kernels.base import DenseMetric
from pnmcmc.sampling.chains import kernel_parameters
from pnmcmc.sampling.sample import parallel_sample, sequential_sample
from pnmcmc.sampling.warmup import (
    _SEARCH_ACCEPTANCE,
    _SEARCH_WIDTH,
    WARMUP_ULPS,
    BlackJAXWindowAdaptation,
    WindowAdaptation,
    _mean_acceptance,
    _rescaled_log_step,
    _search,
    warmup_solver,
)

SCALES = jnp.array([1.0, 3.0, 0.2])


def logdensity(x):
    return -0.5 * jnp.sum((x / SCALES) ** 2)


@pytest.mark.parametrize("kernel", [MALA(0.1), HMC(0.1, 5)], ids=["mala", "hmc"])
def test_search_hits_the_target_and_is_continuous_in_the_states(kernel):
    """The interpolated root: the mean acceptance there is the target (to the search's tolerance),
    the search stopped for a reason (a narrow bracket or an acceptance within tolerance), the
    Illinois steps converge superlinearly on these smooth curves (bisection from a factor-2
    bracket would need 10 steps to 1e-3), and moving the states by a few ulps moves the step size
    by about as much (a bracket midpoint would jump by the bracket's width whenever such a change
    flips one comparison)."""
    n = 64
    prev = jax.random.normal(jax.random.key(0), (n, 3)) * SCALES
    noise = kernel.noise(jax.random.key(1), n, 3, jnp.float64)
    target = jnp.asarray(kernel.target_acceptance)
    search = jax.jit(lambda p: _search(kernel, logdensity, p, noise, jnp.log(jnp.asarray(0.01)), target))
    log_h, state = search(prev)
    assert bool(state.crossed)
    narrow = abs(float(state.b - state.a)) <= _SEARCH_WIDTH
    assert narrow or abs(float(state.fb - target)) <= _SEARCH_ACCEPTANCE
    assert int(state.refinements) <= 4, int(state.refinements)
    reached = _mean_acceptance(kernel, logdensity, prev, noise, log_h)
    assert abs(float(reached) - float(target)) < _SEARCH_ACCEPTANCE / 2
    for k in range(1, 40):
        nudged = prev * (1 + k * 2.0**-52)
        assert abs(float(search(nudged)[0] - log_h)) < 1e-9, k


def test_rescaled_log_step_follows_the_smallest_scale_of_the_new_metric():
    """Known answers: the metric shrinking by 1e-4 in one coordinate (and growing in another)
    lets the step size grow 100-fold; dense metrics by their diagonals; a metric that does not
    change leaves the step size alone."""
    log_step = jnp.log(jnp.array([1e-3, 0.5]))
    old = jnp.ones((2, 3))
    new = jnp.array([[1e-4, 4.0, 1.0], [1.0, 1.0, 1.0]])
    expected = jnp.log(jnp.array([0.1, 0.5]))
    np.testing.assert_allclose(_rescaled_log_step(log_step, new, old), expected, rtol=1e-12)
    dense_new = jax.vmap(jnp.diag)(new).at[:, 0, 1].set(0.3).at[:, 1, 0].set(0.3)
    dense_old = jax.vmap(jnp.diag)(old)
    np.testing.assert_allclose(_rescaled_log_step(log_step, dense_new, dense_old), expected, rtol=1e-12)
    np.testing.assert_array_equal(_rescaled_log_step(log_step, new, new), log_step)


@pytest.mark.filterwarnings("ignore::pnmcmc.ConvergenceWarning")  # the warmup's cost is tested; 20 draws
@pytest.mark.parametrize("kernel, bound", [("nuts", 115), ("mala", 165)])
def test_restart_searches_start_from_the_step_size_rescaled_to_the_new_metric(kernel, bound):
    """A starting metric 1e8 times too wide makes the initial step size tiny; after the first
    mass-matrix update the restart search starts from it rescaled to the new metric, so it
    brackets the root within a few evaluations (NUTS: 80 and 95 transitions, MALA: 135 and 135).
    Searching from the old step size instead costs NUTS 150 and 170 transitions, and MALA 195 and
    210 (each evaluation is 5 transitions here)."""

    def model():
        numpyro.sample("x", dist.Normal(jnp.zeros(3), jnp.array([1.0, 2.0, 0.5])))

    wide = jnp.full(3, 1e8)
    template = (
        NUTS(1e-4, inverse_mass_matrix=wide) if kernel == "nuts" else MALA(1e-8, inverse_mass_matrix=wide)
    )
    options = dict(num_chains=2, num_warmup=150, rng_key=0, progress_bar=False)
    result = sequential_sample(model, 20, kernel=template, **options)
    transitions = np.asarray(result.warmup.search_transitions)
    assert transitions.shape == (2,) and np.all(transitions > 0)
    assert np.all(transitions <= bound), transitions
    assert np.all(np.asarray(result.warmup.step_size) > 0.5)  # adapted to the posterior's own scales


def test_warmup_solver_tightens_default_tolerances_only():
    eps64 = float(np.finfo(np.float64).eps)
    tight = warmup_solver(DEER(), jnp.float64)
    assert isinstance(tight, DEER) and tight.rtol == WARMUP_ULPS * eps64
    assert tight.atol is None  # the default: relative to the chain's scale only
    assert tight.max_norm == DEER().max_norm
    chosen = QuasiDEER(rtol=1e-8)
    assert warmup_solver(chosen, jnp.float64) is chosen
    explicit = DEER(rtol=1e-9, atol=1e-9)
    assert warmup_solver(explicit, jnp.float64) is explicit
    # float32: the default (2e-6, about 16 ulps) is already tighter than 64 ulps
    assert warmup_solver(DEER(), jnp.float32).rtol == 2e-6
    assert isinstance(warmup_solver(Sequential(), jnp.float64), Sequential)


@pytest.mark.parametrize("target", [0.0, 1.0, 1.5, -0.2, True, "0.8"])
def test_bad_target_acceptance_is_named(target):
    for warmup in (WindowAdaptation, BlackJAXWindowAdaptation):
        with pytest.raises(ValueError, match="target_acceptance must be a number strictly between 0 and 1"):
            warmup(target_acceptance=target)


@pytest.mark.filterwarnings("ignore::pnmcmc.ConvergenceWarning")  # the step size is tested; 10 draws
def test_target_acceptance_is_reached_by_both_warmups():
    def model():
        numpyro.sample("x", dist.Normal(jnp.zeros(4), jnp.array([1.0, 2.0, 0.5, 1.0])))

    options = dict(num_chains=2, num_warmup=300, rng_key=0, progress_bar=False, kernel="mala")
    acceptance = {}
    for warmup in (WindowAdaptation(target_acceptance=0.8), BlackJAXWindowAdaptation(target_acceptance=0.8)):
        res = sequential_sample(model, 400, warmup=warmup, **options)
        assert res.warmup.target_acceptance == 0.8
        acceptance[warmup.name] = float(np.mean(np.asarray(res.sample_stats["acceptance_rate"])))
    assert abs(acceptance["parallel"] - 0.8) < 0.1, acceptance  # the default target is 0.574
    # Stan's dual averaging ends on its averaged (smaller) step size, so BlackJAX lands above.
    assert 0.75 < acceptance["blackjax"] < 0.98, acceptance
    default = sequential_sample(model, 10, **options)
    assert default.warmup.target_acceptance == MALA.target_acceptance


def test_window_moments_merge_to_the_sample_covariance():
    """Known answer: merging windows of draws gives np.cov of all of them (dense) and its diagonal
    (the diagonal path, unchanged); Stan's regularisation on top."""
    from pnmcmc.sampling.warmup import _merge, _Moments, _regularised_variance

    draws = np.asarray(jax.random.normal(jax.random.key(2), (2, 30, 3))) @ np.array(
        [[1.0, 0.0, 0.0], [0.9, 0.3, 0.0], [-0.5, 0.2, 2.0]]
    )
    zeros = jnp.zeros((2, 3))
    dense = _Moments(zeros[:, 0], zeros, jnp.zeros((2, 3, 3)))
    diagonal = _Moments(zeros[:, 0], zeros, zeros)
    for window in np.split(draws, [7, 19], axis=1):  # unequal windows
        dense, diagonal = _merge(dense, jnp.asarray(window)), _merge(diagonal, jnp.asarray(window))
    n = 30
    for c in range(2):
        cov = np.cov(draws[c], rowvar=False)
        np.testing.assert_allclose(dense.m2[c] / (n - 1), cov, rtol=1e-12)
        np.testing.assert_allclose(diagonal.m2[c] / (n - 1), np.diag(cov), rtol=1e-12)
        expected = n / (n + 5) * cov + 1e-3 * 5 / (n + 5) * np.eye(3)
        np.testing.assert_allclose(_regularised_variance(dense)[c], expected, rtol=1e-12)
        np.testing.assert_allclose(_regularised_variance(diagonal)[c], np.diag(expected), rtol=1e-12)
    assert np.all(np.linalg.eigvalsh(np.asarray(_regularised_variance(dense))) > 0)


@pytest.mark.filterwarnings("ignore::pnmcmc.ConvergenceWarning")  # the warmup is tested; 20 draws
def test_dense_warmup_learns_a_correlation_and_blackjax_gets_dense_too():
    """A strongly correlated Gaussian: the adapted dense inverse mass matrix carries the
    correlation (the diagonal one cannot); the BlackJAX warmup is asked for a dense matrix too."""
    scale = jnp.array([1.0, 3.0])
    chol = jnp.array([[1.0, 0.0], [0.95, np.sqrt(1 - 0.95**2)]]) * scale[:, None]

    def model():
        numpyro.sample("x", dist.MultivariateNormal(jnp.zeros(2), scale_tril=chol))

    options = dict(num_chains=2, num_warmup=300, rng_key=0, progress_bar=False, kernel="mala")
    res = sequential_sample(model, 20, dense_mass=True, **options)
    imm = np.asarray(res.warmup.inverse_mass_matrix)
    assert imm.shape == (2, 2, 2) and res.sample_stats["inverse_mass_matrix"].shape == (2, 2, 2)
    correlation = imm[:, 0, 1] / np.sqrt(imm[:, 0, 0] * imm[:, 1, 1])
    assert np.all(correlation > 0.8), correlation
    assert isinstance(res.kernel.inverse_mass_matrix, DenseMetric)  # factored once, not in every step
    assert np.asarray(kernel_parameters(res.kernel)[1]).shape == (2, 2, 2)
    diagonal = sequential_sample(model, 20, **options)
    assert np.asarray(diagonal.warmup.inverse_mass_matrix).shape == (2, 2)
    # the dense metric makes the correlated target easy: a larger step at the same acceptance
    assert np.all(np.asarray(res.warmup.step_size) > 2 * np.asarray(diagonal.warmup.step_size))
    blackjax = sequential_sample(model, 20, dense_mass=True, warmup="blackjax", **options)
    assert np.asarray(blackjax.warmup.inverse_mass_matrix).shape == (2, 2, 2)


def test_nuts_dual_averaging_settles_on_a_steep_acceptance_curve():
    """The per-window dual averaging on an acceptance curve as steep as NUTS's near the leapfrog
    stability limit (slope -2.2 per unit log step size at the target): with NUTS's gamma the log
    step size settles on the root; with Stan's (which MALA keeps) the loop is unstable and keeps
    swinging, the regime in which one ulp per window changed NUTS warmups' adapted step sizes."""
    from pnmcmc.kernels import NUTS
    from pnmcmc.sampling.warmup import _da_init, _da_update, dual_averaging_gamma

    target, slope = 0.8, 2.2
    rate = slope / (target * (1 - target))

    def acceptance(log_step):  # logistic, through (0, target) with the slope above
        return jax.nn.sigmoid(jnp.log(target / (1 - target)) - rate * log_step)

    def last_steps(gamma):
        state, steps = _da_init(jnp.asarray(0.5)), []
        for _ in range(40):
            state = _da_update(state, acceptance(state.log_step), target, gamma)
            steps.append(float(state.log_step))
        return np.array(steps[-6:])

    settled = last_steps(dual_averaging_gamma(NUTS(0.1)))
    assert np.ptp(settled) < 0.01 and abs(settled[-1]) < 0.01, settled
    swinging = last_steps(dual_averaging_gamma(MALA(0.1)))
    assert np.ptp(swinging) > 0.2, swinging


def test_the_warmup_says_window_not_segment():
    """A warmup window is a `Window` and their number `windows=`; the earlier names still work,
    with a DeprecationWarning (a segment is a solver's multiple-shooting length)."""
    import pnmcmc.sampling.warmup as warmup

    with pytest.warns(DeprecationWarning, match="windows="):
        old = WindowAdaptation(segments=10)
    assert old == WindowAdaptation(windows=10) and old.windows == 10
    with pytest.warns(DeprecationWarning, match="use Window"):
        assert warmup.Segment is warmup.Window
    with pytest.raises(ValueError, match="windows must be an int"):
        WindowAdaptation(windows=0)


@pytest.mark.filterwarnings("ignore::pnmcmc.ConvergenceWarning")  # the warmup's accounting is tested
def test_search_transitions_count_every_search_of_the_warmup_and_none_of_its_shadow(monkeypatch):
    """`WarmupResult.search_transitions` is n_search times the acceptance-curve evaluations of
    every search (initial, restarts, final), recounted here by a wrapped search program; the
    one-ulp shadow's searches (a parallel float64 warmup) are not the warmup's cost."""
    from pnmcmc.sampling import programs
    from pnmcmc.sampling import warmup as warmup_module

    def model():
        numpyro.sample("x", dist.Normal(jnp.zeros(2), jnp.array([1.0, 0.3])))

    recorded = []
    original = warmup_module._search_program

    def counting(logdensity, kernel, target, log_step, imm, adapted_to, prev, noise, times):
        found, transitions = original(
            logdensity, kernel, target, log_step, imm, adapted_to, prev, noise, times
        )
        jax.debug.callback(lambda n, t: recorded.append((int(n), np.asarray(t))), prev.shape[1], transitions)
        return found, transitions

    options = dict(num_chains=2, num_warmup=60, rng_key=0, progress_bar=False, kernel="mala")
    programs.clear()
    monkeypatch.setattr(warmup_module, "_search_program", counting)
    try:
        result = sequential_sample(model, 10, **options)
    finally:
        programs.clear()  # no later test may run the wrapped program
    assert len(recorded) >= 3  # initial, at least one restart, final
    assert all(np.all(t % n == 0) for n, t in recorded)
    np.testing.assert_array_equal(result.warmup.search_transitions, sum(t for _, t in recorded))
    monkeypatch.undo()
    checked = parallel_sample(model, 10, solver=DEER(), **options)
    unchecked = parallel_sample(
        model, 10, solver=DEER(), warmup=WindowAdaptation(twin_check=False), **options
    )
    assert checked.warmup.sensitivity is not None and checked.warmup.sensitivity_windows > 0
    np.testing.assert_array_equal(checked.warmup.search_transitions, unchecked.warmup.search_transitions)
