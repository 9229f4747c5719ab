"""Will a compiled program fit? XLA's own account of its memory, checked before it runs.

Every program pnmcmc compiles at the Python edge (`pnmcmc.solve`, and the programs of
`parallel_sample`) is compiled ahead of time; `compiled.memory_analysis()` then states the bytes its
outputs and temporaries need (the arguments are already on the device). If that exceeds the free
memory of the device (for a GPU what JAX's allocator may still use, for the CPU the memory the
operating system reports available) or a budget the user gave, pnmcmc raises
[`InsufficientMemoryError`][pnmcmc.InsufficientMemoryError] before anything runs, saying how much
was needed and which settings would fit.

Those suggestions use each solver's own formula, `solver.memory_bytes(T, D, itemsize)` (see
`pnmcmc.engine.solvers`): the bytes of its iterate and Jacobian information, fitted to XLA's figures for a
cheap step function (`benchmarks/memory.py`, `benchmarks/results/memory-cpu.md`). A step function
with large intermediates (a log density over many observations) adds its own share, which only
XLA's figure includes; the formula is therefore a lower bound and `solver="auto"` uses it only to
screen candidates.

A solve split across devices (`pnmcmc.solve(..., devices=...)`, `pnmcmc.engine.sharding`) is one
SPMD program per device; XLA's figure is then that program's, i.e. the bytes *per device*, and it is
compared with the free memory of each device (CPU devices of one process share the host's memory
equally), so a solve that does not fit one device but fits each of four runs there.
"""

from __future__ import annotations

import dataclasses
import os

import jax

__all__ = [
    "InsufficientMemoryError",
    "advice",
    "available_bytes",
    "check_fits",
    "per_device_available",
    "program_bytes",
]


class InsufficientMemoryError(MemoryError):
    """A program would need more memory than the device has free (or than the budget allows).

    Raised before the program runs; the message says how much it needs and which settings fit.
    """


def program_bytes(compiled) -> int | None:
    """Bytes a compiled program allocates when it runs: its outputs and temporaries (XLA's
    `memory_analysis`); None where the backend does not say."""
    try:
        stats = compiled.memory_analysis()
    except Exception:  # some backends do not implement it
        return None
    if stats is None:
        return None
    return int(stats.temp_size_in_bytes + stats.output_size_in_bytes - stats.alias_size_in_bytes)


def available_bytes(device=None) -> int | None:
    """Free memory of `device` (the default device if None): for accelerators what JAX's allocator
    may still hand out, for the CPU the operating system's available memory (within a cgroup
    limit if there is one); None if unknown."""
    device = jax.local_devices()[0] if device is None else device  # this process's (one process: the same)
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    if device.platform != "cpu":
        return None
    return _host_available()


def _host_available() -> int | None:
    free = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    try:  # a container's own limit (cgroup v2)
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        if limit != "max":
            free = min(free, int(limit) - used)
    except (OSError, ValueError):
        pass
    return free


def _gib(n) -> str:
    return f"{n / 2**30:.3g} GiB"


def per_device_available(devices) -> int | None:
    """The free memory each of `devices` can count on: the smallest of their free memories, where
    CPU devices of one process (`--xla_force_host_platform_device_count`) share the host's memory
    equally; None if unknown. Only this process's devices are asked (every process checks its own)."""
    local = [d for d in devices if d.process_index == jax.process_index()] or list(devices)
    cpus = sum(d.platform == "cpu" for d in local)
    frees = []
    for d in local:
        free = available_bytes(d)
        if free is None:
            return None
        frees.append(free // cpus if d.platform == "cpu" else free)
    return min(frees)


def check_fits(compiled, *, budget=None, what="this program", advice=None, devices=None) -> None:
    """Raise `InsufficientMemoryError` if `compiled` needs more than `budget` bytes (default: the
    device's free memory). `advice(need, have)` returns a sentence of settings that would fit.

    `devices`: the devices a program partitioned across several devices runs on (a split solve,
    `pnmcmc.engine.sharding`). XLA's figure for such a program is per device (the partitioned
    program each device runs), so it is compared with each device's free memory
    (`per_device_available`), and `budget` is then per device."""
    need = program_bytes(compiled)
    if need is None:
        return
    if budget is not None and not (isinstance(budget, (int, float)) and budget > 0):
        raise ValueError(f"memory_budget must be a number of bytes > 0 or None, got {budget!r}.")
    several = bool(devices) and len(devices) > 1
    if budget is not None:
        have = int(budget)
    else:
        have = per_device_available(devices) if devices else available_bytes()
    if have is None or need <= have:
        return
    device = f"each of the {len(devices)} devices" if several else "the device"
    where = (
        f"the memory budget of {_gib(have)}" if budget is not None else f"the {_gib(have)} free on {device}"
    )
    hint = "" if advice is None else " " + advice(need, have)
    raise InsufficientMemoryError(
        f"{what} needs {_gib(need)} of memory (XLA's figure for its outputs and temporaries), more than "
        f"{where}; nothing was run.{hint}"
    )


def advice(solver, n: int, d: int, dtype, have: int) -> str:
    """Settings that fit in `have` bytes for a solve of T = n, D = d: the same solver on segments or
    a window, a diagonal quasi-Newton solver, float32, Sequential; by each solver's formula."""
    from . import solvers

    itemsize = jax.numpy.dtype(dtype).itemsize
    options = []
    if isinstance(solver, solvers.ParallelSolver):
        for m in (16, 64, 256):
            if m > solver.segment and m < n:
                options.append(dataclasses.replace(solver, segment=m))
        options.append(dataclasses.replace(solver, window=max(1, min(n, 4096))))
        options.append(solvers.QuasiDEER(probes=4, segment=max(16, solver.segment)))
    fits = [s for s in options if s.memory_bytes(n, d, itemsize) <= have]
    lines = [f"{s.name} (about {_gib(s.memory_bytes(n, d, itemsize))})" for s in fits[:4]]
    if itemsize > 4 and solver.memory_bytes(n, d, 4) <= have:
        lines.append(f"float32 (about {_gib(solver.memory_bytes(n, d, 4))})")
    lines.append(f"Sequential() (about {_gib(solvers.Sequential().memory_bytes(n, d, itemsize))})")
    return (
        "Settings that should fit (estimates for a cheap step function; the model's own intermediates "
        "come on top): " + "; ".join(lines) + ". Or pass memory_budget= if more memory is free."
    )
