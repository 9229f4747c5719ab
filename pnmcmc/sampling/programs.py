"""Compiled programs, compiled once per process and kept across calls.

Every program `parallel_sample` runs (the noise, the warmup windows and searches, the chains, the
Lyapunov exponents, the constrained draws) is a [`Compiled`][pnmcmc.sampling.programs.Compiled]:
`jax.jit(fn)` compiled ahead of time per argument signature, so that compilation is timed apart
from running. [`program`][pnmcmc.sampling.programs.program] keeps one `Compiled` per *program
key* for the life of the process, so that a second call with the same model, shapes, kernel and
solver runs the programs the first call compiled (NumPyro keeps its compiled sampler on the `MCMC`
object the same way).

**What a key must hold.** A program's function may close over Python values; everything it closes
over must be in its key, and everything else must be an argument. The model's data are arguments
(the leaves of a [`ModelDensity`][pnmcmc.sampling.modeling.ModelDensity], whose tree structure
carries the model function and its non-array arguments), kernels are arguments (their structure is
part of the signature), and solvers, lengths and flags are in the key. Functions the program was
built with (e.g. `chain_runner`) are in the key too, so that a patched builder gets its own program.

`compilations()` counts what this process compiled (a test asserts that a repeat call compiles
nothing); `compile_seconds()` the seconds spent compiling; `kept()` names the kept programs;
`clear()` forgets every kept program.

Programs are compiled one at a time, on the calling thread: XLA's CPU compiler (jaxlib 0.10)
aborts the process when two compilations run at once, and NumPyro's effect handlers, a global
stack, do not allow two threads to trace models at once either.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import jax
import jax.numpy as jnp

from ..engine import interrupts, memory

__all__ = ["Compiled", "clear", "compilations", "compile_seconds", "kept", "program"]

CACHE_SIZE = 16
"""Programs kept (about two models' worth); the least recently used one is forgotten first. Each
compiled program holds its machine code mapped in memory, so the bound also bounds the process's
memory maps."""

SIGNATURES = 4
"""Argument signatures (models, shapes) kept per program; the oldest is forgotten first."""

_PROGRAMS: OrderedDict = OrderedDict()


class _Clock:
    count = 0
    seconds = 0.0


def compilations() -> int:
    """How many programs this process has compiled (each argument signature counts once)."""
    return _Clock.count


def compile_seconds() -> float:
    """Seconds this process has spent compiling programs."""
    return _Clock.seconds


def _signature(args):
    """What a compiled program is specific to: the structure, shapes, dtypes and (for arrays placed
    on devices) shardings of its arguments."""
    leaves, treedef = jax.tree.flatten(args)
    return treedef, tuple(
        (tuple(jnp.shape(a)), getattr(a, "dtype", type(a)), getattr(a, "sharding", None)) for a in leaves
    )


def kept() -> list[str]:
    """What each kept program computes (its `what`), least recently used first."""
    return [found.what for found in _PROGRAMS.values()]


def clear() -> None:
    """Forget every kept program (the next call compiles again)."""
    _PROGRAMS.clear()


def program(key: tuple, build, what: str = "this computation", devices=None) -> Compiled:
    """The kept `Compiled` for `key`, made with `Compiled(build(), what)` the first time.

    `key` must be hashable and hold every value `build()`'s function closes over (see the module
    docstring); a key that holds an unhashable value is not kept.
    """
    try:
        found = _PROGRAMS.get(key)
    except TypeError:  # an unhashable key: compiled for this call only
        return Compiled(build(), what, devices)
    if found is None:
        if len(_PROGRAMS) >= CACHE_SIZE:
            _PROGRAMS.popitem(last=False)
        found = _PROGRAMS[key] = Compiled(build(), what, devices)
    else:
        _PROGRAMS.move_to_end(key)
    return found


class Compiled:
    """`jax.jit(fn)` compiled ahead of time per argument signature, with compilation timed apart.

    Calling it compiles on the first call with a new shape/structure (adding the seconds to
    `compile_time` and to the process's clock), checks that the program fits the device's free
    memory (`pnmcmc.engine.memory.check_fits`, before anything runs), and then runs it so that
    Ctrl-C stops its parallel solves within an iteration (`pnmcmc.engine.interrupts`); run times
    reported to users exclude compilation. `what` names the program in a memory error; `devices`
    are those of a program split across several devices (its memory is checked per device).
    """

    def __init__(self, fn, what: str = "this computation", devices=None):
        self._jitted = jax.jit(fn)
        self._cache = {}
        self.compile_time = 0.0
        self.what = what
        self.devices = devices

    def _compile(self, lowered):
        start = time.perf_counter()
        compiled = lowered.compile()
        seconds = time.perf_counter() - start
        memory.check_fits(compiled, what=self.what, advice=_sampling_advice, devices=self.devices)
        return compiled, seconds

    def _store(self, signature, entry):
        if signature not in self._cache and len(self._cache) >= SIGNATURES:
            self._cache.pop(next(iter(self._cache)))
        self._cache[signature] = entry

    def __call__(self, *args):
        signature = _signature(args)
        entry = self._cache.get(signature)
        if entry is None:
            start = time.perf_counter()
            compiled, seconds = self._compile(self._jitted.lower(*args))
            _Clock.seconds += time.perf_counter() - start
            _Clock.count += 1
            self.compile_time += seconds
            self._store(signature, compiled)
            entry = compiled
        with interrupts.listening():
            return jax.block_until_ready(entry(*args))


def _sampling_advice(need, have) -> str:
    return (
        "Fewer chains per call (num_chains), a solver on longer segments (e.g. pnmcmc.DEER(segment=64)) "
        "or a diagonal one (pnmcmc.QuasiDEER(probes=4, segment=16)), a sliding window (window=...), "
        "float32, or solver='sequential' need less."
    )
