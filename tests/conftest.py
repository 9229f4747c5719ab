"""Test configuration: float64 on (the library itself never changes JAX's configuration).

XLA's multi-threaded Eigen pool can wedge on this project's 2-core CI machines with jaxlib 0.10
(an upstream bug; see docs/troubleshooting.md), so the tests run it single-threaded.
"""

import os

os.environ["XLA_FLAGS"] = " ".join(
    filter(None, [os.environ.get("XLA_FLAGS"), "--xla_cpu_multi_thread_eigen=false"])
)

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)


@pytest.fixture
def key():
    """A fresh PRNG key per test, so that tests are independent and reproducible."""
    return jax.random.key(0)


@pytest.fixture(autouse=True, scope="module")
def _forget_compiled_programs():
    """Each test module starts without the compiled programs of the modules before it: a worker
    that kept every module's executables would accumulate memory maps (XLA maps each program's
    machine code) and, near the kernel's limit, crash inside the compiler."""
    yield
    import gc

    from pnmcmc.sampling import programs

    programs.clear()
    jax.clear_caches()
    gc.collect()
