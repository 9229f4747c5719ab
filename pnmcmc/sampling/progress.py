"""Progress display for `parallel_sample`: compilation, warmup windows, sampling, Newton iterations.

Where the output goes decides how progress is shown:

- a terminal or a notebook: one `tqdm.auto` bar per phase (a widget in a notebook) with its rate
  and ETA, and a "compiling ..." bar while XLA compiles a program (which otherwise looks like a
  hang of several seconds);
- anything else (a log file, CI, a captured stream): plain lines, a few per phase (its start, every
  quarter, its end with the time), never carriage-return redraws.

The display only *reads* what the computation reports. Newton iterations arrive through the engine's
`callback(iteration, certified_steps, residual)` (a `jax.debug.callback` from inside the compiled
loop, called once per chain under `vmap`, in no particular order once some chains have converged);
the display shows the iteration of the slowest chain and the largest residual among the chains at
that iteration, so chains never overwrite each other's numbers. The callback is the module's
`newton` function, which forwards to the display whose phase is open: it is part of every compiled
program whether or not anything is shown, so turning the display off cannot change a single bit of
the results, and a program compiled in one call shows the next call's progress.
"""

from __future__ import annotations

import contextlib
import sys
import time

import numpy as np

__all__ = ["ProgressDisplay", "newton"]

_REFRESH = 0.1  # seconds between redraws driven by Newton iterations

_OPEN: list = []  # the displays with an open phase, innermost last


def newton(iteration, certified_steps, residual) -> None:
    """The engine's Newton callback compiled into every program: forwards one chain's values to
    the display whose phase is open (none: nothing happens)."""
    if _OPEN:
        _OPEN[-1].newton(iteration, certified_steps, residual)


_QUARTERS = (0.25, 0.5, 0.75)


def _interactive(stream) -> bool:
    """A terminal, or a Jupyter kernel (where tqdm.auto draws a widget)."""
    if "ipykernel" in sys.modules:
        return True
    return bool(getattr(stream, "isatty", lambda: False)())


class _Bar:
    """A tqdm bar (terminal or notebook) with an ETA and short key/value information beside it."""

    def __init__(self, total: int, description: str, unit: str = "step"):
        from tqdm.auto import tqdm

        fmt = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
        self._tqdm = tqdm(
            total=total, desc=description, unit=unit, dynamic_ncols=True, leave=True, bar_format=fmt
        )
        self._info = {}
        self._drawn = 0.0

    def advance(self, units: int, **info) -> None:
        """Move the bar by `units` steps and show `info` (short key/value pairs) beside it."""
        self._info = {key: value for key, value in self._info.items() if key not in ("newton", "residual")}
        self._info.update(info)
        self._tqdm.set_postfix(self._info, refresh=False)
        self._tqdm.update(units)

    def newton(self, iteration: int, residual: float) -> None:
        self._info.update(newton=iteration, residual=f"{residual:.2g}")
        now = time.monotonic()
        if now - self._drawn > _REFRESH:
            self._drawn = now
            self._tqdm.set_postfix(self._info, refresh=True)

    def close(self) -> None:
        self._tqdm.close()


class _Lines:
    """Plain progress lines for non-interactive output: the start, each quarter, the end."""

    def __init__(self, total: int, description: str, stream):
        self._total, self._description, self._stream = total, description, stream
        self._done, self._began, self._info, self._newton = 0, time.monotonic(), {}, None
        self._quarters = list(_QUARTERS)
        self._print(f"{description}: {total} steps")

    def _print(self, text: str) -> None:
        print(text, file=self._stream, flush=True)

    def _details(self) -> str:
        info = dict(self._info)
        if self._newton is not None:
            info["newton"] = self._newton
        return "".join(f", {key} {value}" for key, value in info.items())

    def advance(self, units: int, **info) -> None:
        self._done += units
        self._info.update(info)
        fraction = self._done / max(self._total, 1)
        if self._quarters and fraction >= self._quarters[0] and fraction < 1:
            while self._quarters and fraction >= self._quarters[0]:
                self._quarters.pop(0)
            elapsed = time.monotonic() - self._began
            eta = elapsed * (1 - fraction) / max(fraction, 1e-9)
            self._print(
                f"{self._description}: {self._done}/{self._total} ({fraction:.0%}, {elapsed:.1f} s, "
                f"about {eta:.0f} s left{self._details()})"
            )

    def newton(self, iteration: int, residual: float) -> None:
        self._newton = iteration

    def close(self) -> None:
        elapsed = time.monotonic() - self._began
        self._print(
            f"{self._description}: done, {self._done}/{self._total} in {elapsed:.1f} s{self._details()}"
        )


class _Silent:
    def advance(self, units: int, **info) -> None:
        pass

    def newton(self, iteration: int, residual: float) -> None:
        pass

    def close(self) -> None:
        pass


class ProgressDisplay:
    """The progress of one `parallel_sample` call (`progress_bar=` turns it on or off).

    `phase(description, total)` opens a bar (or plain lines) for a phase; `compiling(what)` shows
    that XLA is compiling; `newton` is the engine's per-iteration callback, always compiled in,
    forwarding to the open phase (if any).
    """

    def __init__(self, enabled: bool, stream=None):
        self.enabled = bool(enabled)
        self._stream = sys.stderr if stream is None else stream
        self._bar = None
        self._iteration = -1
        self._residual = 0.0

    def _open(self, total: int, description: str, unit: str = "step"):
        if _interactive(self._stream):
            return _Bar(total, description, unit)
        return _Lines(total, description, self._stream)

    @contextlib.contextmanager
    def phase(self, description: str, total: int):
        """`with display.phase("warmup", n) as bar:` then `bar.advance(steps, key=value)`."""
        if not self.enabled or total <= 0:
            yield _Silent()
            return
        self._bar = self._open(total, description)
        self._iteration, self._residual = -1, 0.0
        _OPEN.append(self)
        try:
            yield self._bar
        finally:
            _OPEN.remove(self)
            self._bar.close()
            self._bar = None

    @contextlib.contextmanager
    def compiling(self, what: str):
        """Shown while XLA compiles `what` (a terminal bar without a total, or one line with the
        seconds it took). Re-entrant inside a phase: the phase's bar stays."""
        if not self.enabled:
            yield
            return
        began = time.monotonic()
        if _interactive(self._stream):
            from tqdm.auto import tqdm

            bar = tqdm(total=None, desc=f"compiling {what}", bar_format="{desc} [{elapsed}]", leave=False)
            try:
                yield
            finally:
                bar.close()
        else:
            yield
            print(f"compiled {what} in {time.monotonic() - began:.1f} s", file=self._stream, flush=True)

    def newton(self, iteration, certified_steps, residual) -> None:
        """`callback(iteration, certified_steps, residual)` for `pnmcmc.solve` (one chain's values).

        Shows the iteration of the slowest chain and the largest residual among the chains at that
        iteration: a chain that has converged keeps reporting its final iteration, which is ignored.
        Iteration 0 starts a new solve (the next warmup window).
        """
        bar = self._bar
        if bar is None:
            return
        iteration = int(np.asarray(iteration))
        residual = float(np.asarray(residual))
        if iteration > self._iteration or (iteration == 0 < self._iteration):
            self._iteration, self._residual = iteration, residual
        elif iteration == self._iteration:
            self._residual = max(self._residual, residual)
        else:
            return
        bar.newton(iteration, self._residual)
