"""Test configuration: float64 on (the library itself never changes JAX's configuration)."""

import jax
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture
def key():
    """A fresh PRNG key per test, so that tests are independent and reproducible."""
    return jax.random.key(0)
