"""The memory guard: XLA's figure is checked before a program runs, and the solvers' formulas
(used for advice and by solver="auto") follow XLA's figures."""

import jax
import jax.numpy as jnp
import pytest

import pnmcmc as pn
from pnmcmc import memory
from pnmcmc.engine.solve import _solve

SOLVERS = [
    pn.Jacobi(),
    pn.Picard(),
    pn.DEER(),
    pn.QuasiDEER(),
    pn.QuasiDEER(probes=4),
    pn.ELK(),
    pn.QuasiELK(),
    pn.DEER(segment=16),
    pn.QuasiDEER(segment=16),
    pn.DEER(window=256),
    pn.Sequential(),
]


def _tanh_step(d, dtype):
    w = jnp.zeros((d, d), dtype)
    return lambda x, xi: jnp.tanh(w @ x + xi)


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s.name)
@pytest.mark.parametrize("n, d", [(2048, 3), (1024, 24)])
def test_formula_follows_xla(solver, n, d):
    """Compile only: the formula is within a factor 2 of what XLA says the solve allocates."""
    dtype = jnp.float32
    shape = jax.ShapeDtypeStruct
    compiled = _solve.lower(
        _tanh_step(d, dtype), solver, None, shape((d,), dtype), shape((n, d), dtype), shape((n, d), dtype)
    ).compile()
    xla = memory.program_bytes(compiled)
    formula = solver.memory_bytes(n, d, 4)
    assert 0.5 <= formula / xla <= 2.0, (solver.name, n, d, formula, xla)


def test_a_solve_that_does_not_fit_raises_before_running():
    """With a budget below XLA's figure nothing runs (the callback never fires) and the error says
    how much was needed and which settings fit."""
    d, n = 8, 4096
    step = _tanh_step(d, jnp.float64)
    calls = []
    with pytest.raises(pn.InsufficientMemoryError, match=r"needs .* GiB.*nothing was run") as error:
        pn.solve(
            step, jnp.zeros(d), jnp.zeros((n, d)), pn.DEER(), callback=lambda *a: calls.append(a),
            memory_budget=10**5,
        )  # fmt: skip
    assert not calls
    assert "Sequential()" in str(error.value)
    fits = pn.solve(step, jnp.zeros(d), jnp.zeros((n, d)), pn.DEER(segment=16), memory_budget=10**8)
    assert int(fits.status) == pn.Status.CONVERGED


def test_the_issue_example_is_refused_on_this_machine():
    """T = 1e6, D = 100, float32 DEER needs ~132 GiB: refused with that figure (XLA's), before
    running, unless the device really has that much free."""
    d, n = 100, 10**6
    need = pn.DEER().memory_bytes(n, d, 4)
    have = memory.available_bytes()
    if have is None or have >= need:
        pytest.skip("this device may have the memory")
    step = _tanh_step(d, jnp.float32)
    noise = jnp.zeros((n, d), jnp.float32)
    with pytest.raises(pn.InsufficientMemoryError, match=r"needs 1[23]\d(\.\d+)? GiB") as error:
        pn.solve(step, jnp.zeros(d, jnp.float32), noise, pn.DEER())
    assert "segment=" in str(error.value)


def test_bad_budget():
    with pytest.raises(ValueError, match="memory_budget must be a number of bytes"):
        pn.solve(lambda x, xi: 0.5 * x, jnp.zeros(2), jnp.zeros((5, 0)), pn.DEER(), memory_budget=-1)
