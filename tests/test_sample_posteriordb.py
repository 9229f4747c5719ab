"""The eight posteriordb posteriors: accuracy against the reference, and parallel == sequential.

Accuracy runs use `sequential_sample`, which computes exactly the draws `parallel_sample` does
(`test_parallel_equals_sequential` checks that, with shorter chains) at a fraction of the CPU time;
the long runs, with the parallel-vs-sequential difference on every posterior and kernel, are in
`benchmarks/posteriordb.py`.
"""

import warnings

import numpy as np
import pytest
from numpyro.infer import init_to_median

import pnmcmc
from pnmcmc.analysis.lyapunov import ExpandingDynamicsWarning
from pnmcmc.models import POSTERIORDB_NAMES, check_reference, posteriordb
from pnmcmc.sampling.sample import parallel_sample, sequential_sample
from pnmcmc.sampling.twins import TwinExpectation, explain

# (num_warmup, n_steps) for 4 chains. sblri with MALA needs 2000 warmup steps: after 1000, one chain
# of four (seed 0) is still drifting out of its start region during the last slow window, adapts a
# mass matrix 10x too wide and accepts 3% of its proposals (LowAcceptanceWarning says so). MALA with
# a diagonal preconditioner mixes slowly on the most strongly correlated regressions: earnings
# (intercept-slope correlation about -0.999) is not resolved even by 10^5 steps and nes1976 needs
# 6 x 10^4 (40 s); both are left to the benchmark.
#
# The convergence checks (pnmcmc.sampling.convergence) flag most of these runs, truly, although each matches
# its reference within 4 MCSE: HMC (10 leapfrog steps, step size jittered by +-20%) diverges on 7 of
# the 8 posteriors (3 to 242 of 4000 transitions; the jittered step crosses the leapfrog stability
# limit); earnings HMC also has bulk ESS 56 and R-hat 1.06, sblri HMC R-hat 1.012; MALA keeps R-hat
# above 1.01 on kidiq (1.02), sblri (1.010) and kidiq_interaction (1.03, bulk ESS 202). Those rows
# test the agreement with the reference only (FLAGGED); the others must also pass every check.
FLAGGED = pytest.mark.filterwarnings("ignore::pnmcmc.ConvergenceWarning")
ACCURACY = [
    *[pytest.param(name, "hmc", 1000, 1000, marks=FLAGGED) for name in POSTERIORDB_NAMES],
    pytest.param("kidiq-kidscore_momhs", "mala", 2000, 5000, marks=FLAGGED),
    # R-hat 1.011 on two coefficients (bulk ESS 343 of 400): flagged, truly, though within 4 MCSE
    pytest.param("mesquite-logmesquite", "mala", 3000, 40_000, marks=FLAGGED),
    # 1000 warmup steps left one chain (seed 0) at acceptance 0.03
    pytest.param("sblri-blr", "mala", 2000, 5000, marks=FLAGGED),
    ("arma-arma11", "mala", 2000, 5000),
    ("gp_pois_regr-gp_regr", "mala", 1000, 5000),
    pytest.param("kidiq_with_mom_work-kidscore_interaction_c", "mala", 2000, 20_000, marks=FLAGGED),
    ("kidiq_with_mom_work-kidscore_interaction_c", "nuts", 500, 500),
]


def options(name, kernel, num_warmup, num_chains=4, seed=0):
    post = posteriordb(name)
    return post, dict(
        model_args=post.model_args,
        model_kwargs=post.model_kwargs,
        kernel=kernel,
        num_warmup=num_warmup,
        num_chains=num_chains,
        rng_key=seed,
        progress_bar=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize("name, kernel, num_warmup, n_steps", ACCURACY, ids=lambda v: str(v))
def test_matches_reference(name, kernel, num_warmup, n_steps):
    post, kwargs = options(name, kernel, num_warmup)
    res = sequential_sample(post.model, n_steps, **kwargs)
    check = check_reference(post, res.get_samples(group_by_chain=True))
    assert check.passes(max_z=4.0, max_sd_error=0.1), check.describe()
    acceptance = np.asarray(res.sample_stats["acceptance_rate"]).mean()
    assert abs(acceptance - res.kernel.target_acceptance) < 0.15, acceptance


# Parallel == sequential on four posteriors, both kernels and both default solvers (dense and
# diagonal Newton), including the ARMA log density (a lax.scan inside) and the GP (a Cholesky).
# The solvers step by step (the classes' default), whose tolerances these bounds were set with.
EXACT = [
    ("kidiq-kidscore_momhs", "hmc", pnmcmc.DEER()),
    ("sblri-blr", "mala", pnmcmc.QuasiDEER()),
    ("arma-arma11", "mala", pnmcmc.DEER()),
    ("gp_pois_regr-gp_regr", "mala", pnmcmc.QuasiDEER()),
]


def parallel_sample_allowing_expansion(model, n_steps, **kwargs):
    """`parallel_sample`, allowing an ExpandingDynamicsWarning and a FrontLimitedWarning exactly
    where each is due.

    Short adapted chains can be mildly expanding (e.g. one sblri MALA chain: LLE 0.126 +- 0.056,
    24 iterations for 60 steps); the warning is then correct. It must be given if and only if a
    chain is clearly expanding (LLE two standard errors above 0), or its solve was front-limited
    (no better than one certified element per iteration) without clearly contracting. A
    front-limited solve of a contracting chain (step-by-step DEER on an HMC chain can be) gets a
    FrontLimitedWarning instead: the wrong solver, not the wrong chain.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExpandingDynamicsWarning)  # every other warning still errors
        warnings.simplefilter("always", pnmcmc.FrontLimitedWarning)
        res = parallel_sample(model, n_steps, **kwargs)
    stats = {k: np.asarray(res.sample_stats[k]) for k in ("lle", "lle_stderr", "front_limited")}
    contracting = stats["lle"] + 2 * stats["lle_stderr"] < 0
    expanding = (stats["lle"] - 2 * stats["lle_stderr"] > 0) | (stats["front_limited"] & ~contracting)
    wrong_solver = stats["front_limited"] & contracting
    for category, due in ((ExpandingDynamicsWarning, expanding), (pnmcmc.FrontLimitedWarning, wrong_solver)):
        warned = [w for w in caught if w.category is category]
        assert len(warned) == int(due.any()), (category.__name__, stats, [str(w.message) for w in warned])
    return res


@pytest.mark.filterwarnings("ignore::pnmcmc.ConvergenceWarning")  # 60 draws: twins, not the posterior
@pytest.mark.parametrize("name, kernel, solver", EXACT, ids=lambda v: getattr(v, "name", str(v)))
def test_parallel_equals_sequential(name, kernel, solver):
    post, kwargs = options(name, kernel, num_warmup=60, num_chains=2, seed=1)
    if name == "arma-arma11":  # from the prior medians both 60-step warmups are digit twins
        kwargs["init_strategy"] = init_to_median
    par = parallel_sample_allowing_expansion(post.model, 60, solver=solver, **kwargs)
    seq = sequential_sample(post.model, 60, **kwargs)
    # Chains the twin verdict calls digit twins: the warmup windows are solved to 64 ulps, so the
    # adapted parameters agree to ~1e-11 relative (measured <= 5e-11); the sampling solves (1e-11)
    # and mildly expanding chains leave the draws within ~1e-7 relative (measured <= 4e-8). The
    # others must name their reason (a warmup that amplifies one ulp, or an expanding chain).
    verdict = explain(par, seq)
    digits = np.array([e is TwinExpectation.DIGITS for e in par.twins.expectation])
    assert digits.any(), par.twins.describe()
    for c in np.flatnonzero(~digits):
        assert "sensitive warmup" in par.twins.reasons[c] or "expanding" in par.twins.reasons[c], verdict
    np.testing.assert_allclose(par.warmup.step_size[digits], seq.warmup.step_size[digits], rtol=1e-9)
    imm_par, imm_seq = np.asarray(par.warmup.inverse_mass_matrix), np.asarray(seq.warmup.inverse_mass_matrix)
    np.testing.assert_allclose(imm_par[digits], imm_seq[digits], rtol=1e-9)
    tol = 1e-6
    scale = np.abs(np.asarray(seq.positions)).max()
    positions_par, positions_seq = np.asarray(par.positions), np.asarray(seq.positions)
    np.testing.assert_allclose(positions_par[digits], positions_seq[digits], rtol=tol, atol=tol * scale)
    for site, draws in seq.samples.items():
        draws = np.asarray(draws)
        bound = tol * np.abs(draws).max()
        np.testing.assert_allclose(np.asarray(par.samples[site])[digits], draws[digits], rtol=tol, atol=bound)
    assert np.all(np.asarray(par.sample_stats["residual"]) <= 1.0)
