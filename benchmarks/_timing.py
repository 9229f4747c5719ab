"""Wall times of a benchmark cell: compilation apart from the runs, each run waited for, and the
median that leaves out the first run."""

from __future__ import annotations

import statistics
import time

import jax


def compile(fn, args):
    """`fn` jitted and compiled ahead of time for `args`: `(compiled, seconds)`, so that no run's
    time includes tracing or compilation."""
    began = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - began


def timed(compiled, args):
    """One run, waited for (JAX dispatches asynchronously): `(output, seconds)`."""
    began = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    return out, time.perf_counter() - began


def median_after_first(times):
    """The median of the timed runs, leaving out the first when there are others: the first run
    also pays one-off costs (and, in `run.py`, the time-budget check)."""
    return statistics.median(times[1:] if len(times) > 1 else times)
