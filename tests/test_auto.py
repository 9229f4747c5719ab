"""solver="auto": the choice between parallel solvers and Sequential, and its fallback."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pnmcmc as pn
from pnmcmc.analysis.auto import (
    SAFETY,
    AutoChoice,
    CandidateReport,
    choose_solver,
    decide,
    fallback_cap,
    solve_auto,
)
from pnmcmc.analysis.lyapunov import lyapunov_exponent_from_jacobians


def logistic(n):
    return (lambda x, xi: 4.0 * x * (1.0 - x)), jnp.array([0.3]), jnp.zeros((n, 0))


def hmc(n, d=4, n_leapfrog=8, seed=0):
    """HMC on N(0, I_d), written inline (leapfrog in a fori_loop; noise = momentum, uniform).

    On a Gaussian the leapfrog map is linear, so Newton-type solvers converge in a couple of
    iterations, while the sequential chain pays the whole inner loop at every step: parallel wins
    even on a CPU.
    """
    eps = 1.0 / n_leapfrog

    def log_density(x):
        return -0.5 * jnp.sum(x**2)

    grad = jax.grad(log_density)

    def step(x, xi):
        p0, u = xi[:-1], xi[-1]

        def leapfrog(i, state):
            q, p = state
            p = p + 0.5 * eps * grad(q)
            q = q + eps * p
            return q, p + 0.5 * eps * grad(q)

        q, p = jax.lax.fori_loop(0, n_leapfrog, leapfrog, (x, p0))
        log_accept = log_density(q) - 0.5 * jnp.sum(p**2) - log_density(x) + 0.5 * jnp.sum(p0**2)
        return jnp.where(jnp.log(u) < log_accept, q, x)

    k1, k2 = jax.random.split(jax.random.key(seed))
    noise = jnp.concatenate([jax.random.normal(k1, (n, d)), jax.random.uniform(k2, (n, 1))], axis=1)
    return step, 3.0 * jnp.ones(d), noise


def test_expanding_map_picks_sequential():
    step, x0, noise = logistic(1024)
    choice = choose_solver(step, x0, noise, pilot_steps=64)  # no warning: Sequential is the answer
    assert isinstance(choice.solver, pn.Sequential)
    assert "not clearly negative" in choice.reasons
    assert float(choice.estimate.exponent) == pytest.approx(np.log(2.0), abs=0.05)
    skipped = [c for c in choice.candidates if not isinstance(c.solver, pn.Sequential)]
    assert len(skipped) == 3 and all(c.note == "skipped: not contracting" for c in skipped)
    assert all(c.predicted_iterations == 1024 for c in skipped)
    assert "chosen: Sequential" in choice.describe()


def test_contracting_chain_solve_auto_is_exact_and_follows_its_predictions():
    step, x0, noise = hmc(2048)
    candidates = (pn.QuasiDEER(), pn.QuasiELK(), pn.Sequential())
    solution, choice = solve_auto(step, x0, noise, candidates=candidates, pilot_steps=128)
    assert float(choice.estimate.exponent) < 0
    quasi, why = choice.report(pn.QuasiDEER()), choice.describe()
    assert 1 <= quasi.predicted_iterations <= 8 and quasi.pilot_iterations >= 1, why
    assert quasi.predicted_seconds > 0 and quasi.seconds_per_iteration > 0, why
    assert "undamped twin converged" in choice.report(pn.QuasiELK()).note
    # Which side wins depends on the machine and its load (on a 2-core CPU the sequential chain of
    # this small model takes milliseconds): the test checks that the pick follows the measured
    # predictions and the safety factor, not the timings themselves.
    # A candidate whose short pilot already costs a large part of the sequential chain is screened
    # out before the comparison (its note says so), whatever its prediction.
    sequential = choice.candidates[0].predicted_seconds
    wins = SAFETY * quasi.predicted_seconds < sequential and not quasi.note.startswith("screened out")
    expected = pn.QuasiDEER if wins else pn.Sequential
    assert isinstance(choice.solver, expected), why
    # The result is the chain whatever the pick, and the predicted iterations are right within 2x.
    reference = pn.solve(step, x0, noise, pn.Sequential())
    np.testing.assert_allclose(solution.trajectory, reference.trajectory, rtol=1e-9, atol=1e-9)
    assert int(solution.status) == pn.Status.CONVERGED
    parallel = solution if expected is pn.QuasiDEER else pn.solve(step, x0, noise, pn.QuasiDEER())
    ratio = quasi.predicted_iterations / max(int(parallel.num_iterations), 1)
    assert 0.5 <= ratio <= 2.0, (why, parallel.describe())
    assert choice.pilot_seconds > 0 and choice.pilot_steps == 128


def test_memory_budget_excludes_dense_candidates():
    step, x0, noise = hmc(512)
    candidates = (pn.DEER(), pn.QuasiDEER(), pn.ELK(), pn.Sequential())
    choice = choose_solver(step, x0, noise, candidates=candidates, pilot_steps=32, memory_budget=1)
    assert isinstance(choice.solver, pn.Sequential)
    assert "No parallel candidate fits the memory budget" in choice.reasons
    assert all("budget" in c.note for c in choice.candidates[1:])
    assert choice.estimate.method == "benettin"  # the dense LLE did not fit either


def _choice(solver, iterations, per_iteration, seq_step=1e-6, n=10_000):
    seq = CandidateReport(pn.Sequential(), 0, None, seq_step, seq_step * n, "seconds per step")
    mine = CandidateReport(solver, iterations, 3, per_iteration, (iterations + 1) * per_iteration, "")
    estimate = lyapunov_exponent_from_jacobians(jnp.full((16, 1, 1), 0.5))
    return AutoChoice(solver, "test", estimate, (seq, mine), 256, 0.0)


def test_fallback_cap_bounds_the_loss_by_one_sequential_run():
    # Sequential takes 10 ms; an iteration 0.1 ms: the cap is the 100 iterations worth 10 ms.
    capped = fallback_cap(_choice(pn.DEER(), 4, 1e-4))
    assert capped == pn.DEER(max_iterations=100)
    # It is never below twice the prediction, and a smaller cap of the user's is kept.
    assert fallback_cap(_choice(pn.DEER(), 80, 1e-4)).max_iterations == 162
    assert fallback_cap(_choice(pn.DEER(max_iterations=7), 4, 1e-4)).max_iterations == 7
    assert fallback_cap(_choice(pn.Sequential(), 0, 1e-4)) == pn.Sequential()
    with pytest.raises(KeyError):
        _choice(pn.DEER(), 4, 1e-4).report(pn.ELK())


def test_errors():
    step, x0, noise = logistic(64)
    with pytest.raises(ValueError, match="pilot_steps"):
        choose_solver(step, x0, noise, pilot_steps=100)
    with pytest.raises(TypeError, match="solver objects"):
        choose_solver(step, x0, noise, candidates=("DEER",))
    with pytest.raises(ValueError, match="safety"):
        choose_solver(step, x0, noise, safety=0.5)
    with pytest.raises(TypeError, match="outside"):
        jax.jit(lambda x: choose_solver(step, x, noise).estimate.exponent)(x0)


def test_dataclasses_are_frozen():
    choice = _choice(pn.DEER(), 4, 1e-4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        choice.solver = pn.Sequential()


def _report(solver, seconds, iterations=3):
    return CandidateReport(solver, iterations, 2, seconds / (iterations + 1), seconds, "")


def test_decision_rule_without_timing_anything():
    """The pure decision: the fastest measured candidate, only if safety x its time beats Sequential."""
    reports = [_report(pn.DEER(segment=16), 1.0), _report(pn.QuasiDEER(segment=16), 0.4)]
    chosen, why = decide(reports, 1.0, safety=2.0)
    assert chosen == pn.QuasiDEER(segment=16) and "2.5x faster" in why
    chosen, why = decide(reports, 0.7, safety=2.0)  # 2 x 0.4 > 0.7: not by the safety factor
    assert chosen is None and "not faster by the safety factor 2" in why
    unmeasured = [CandidateReport(pn.DEER(), None, None, None, None, "skipped")]
    assert decide(unmeasured, 1.0)[0] is None


def test_cost_bound_settles_the_choice_before_any_candidate_compiles(monkeypatch):
    """When one vmapped pass costs as much as the sequential chain, no parallel solver can win by the
    safety factor: Sequential is chosen without the dynamics or any candidate's pilot."""
    import pnmcmc.analysis.auto as auto

    monkeypatch.setattr(auto, "_pass_ratio", lambda *args: 0.3)
    compiled = []
    monkeypatch.setattr(auto, "_measure", lambda *args: compiled.append(args) or ([], []))
    step, x0, noise = hmc(512)
    choice = choose_solver(step, x0, noise, pilot_steps=32)
    assert isinstance(choice.solver, pn.Sequential) and choice.estimate is None and not compiled
    assert "cannot win" in choice.candidates[1].note and "0.3 of the" in choice.reasons
    # Jacobi needs one evaluation per pass: 2 x 1 x 0.2 x safety 2 < 1, so it is still measured.
    monkeypatch.setattr(auto, "_pass_ratio", lambda *args: 0.2)
    choose_solver(step, x0, noise, candidates=(pn.Jacobi(), pn.DEER()), pilot_steps=32)
    assert compiled[-1][1] == [pn.Jacobi()]  # the candidates that reached stage 5
