"""Memory of a benchmark cell: the peak while it runs (`PeakMemory`), XLA's figure for its compiled
program (`xla_bytes`), and the study's rough estimate for skipping cells too big to run (`estimate_bytes`)."""

from __future__ import annotations

import os
import threading
import time

import jax

import pnmcmc as pn


class PeakMemory:
    """Peak memory while a block runs, in `.bytes` afterwards.

    On CPU the process's resident-memory increase, polled every 2 ms from /proc/self/statm (a lower
    bound: memory that earlier work freed and this block reuses is not counted). On GPU the device's
    peak bytes in use minus those in use before (a process-wide high-water mark: exact when the block
    is the largest so far); None where the device reports no statistics.
    """

    def __init__(self, device=None):
        self.device = device or jax.devices()[0]
        self.gpu = self.device.platform != "cpu"

    @staticmethod
    def _rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        if self.gpu:
            self.base = (self.device.memory_stats() or {}).get("bytes_in_use", 0)
            return self
        self.base = self.peak = self._rss()
        self.running = True

        def poll():
            while self.running:
                self.peak = max(self.peak, self._rss())
                time.sleep(0.002)

        self.thread = threading.Thread(target=poll, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.gpu:
            stats = self.device.memory_stats() or {}
            self.bytes = stats.get("peak_bytes_in_use", 0) - self.base if stats else None
            return
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self._rss())
        self.bytes = self.peak - self.base


def xla_bytes(compiled):
    """XLA's figure for a compiled program: arguments + outputs + temporaries (None where the backend
    gives no memory analysis). The same on every machine, unlike the measured peak; the arguments
    are counted, unlike `pnmcmc.engine.memory.program_bytes`, since a benchmark holds them too."""
    analysis = compiled.memory_analysis()
    if analysis is None:
        return None
    return analysis.argument_size_in_bytes + analysis.output_size_in_bytes + analysis.temp_size_in_bytes


def mb(nbytes):
    return None if nbytes is None else nbytes / 2**20


def estimate_bytes(solver, steps, dim, chains, itemsize):
    """The bytes a cell needs by the solver's own formula (`solver.memory_bytes`, the one
    `pnmcmc.engine.memory` and `solver="auto"` use), for all its chains; used to skip cells above
    `run.py --memory-limit`. `"auto"` is estimated as Sequential, its fallback."""
    solver = pn.Sequential() if solver == "auto" else solver
    return solver.memory_bytes(steps, dim, itemsize) * chains
