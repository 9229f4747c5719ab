"""Progress display for `parallel_sample`: warmup windows, the sampling phase and Newton iterations.

One `tqdm.auto` bar per phase, so it renders in a terminal and as a widget in a notebook. The
display only *reads* what the computation reports. Newton iterations arrive through the engine's
`callback(iteration, certified_steps, residual)` (a `jax.debug.callback` from inside the compiled
loop, called once per chain under `vmap`); that callback is part of the compiled program whether or
not a bar is shown, so turning the display off cannot change a single bit of the results.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np

__all__ = ["ProgressDisplay"]

_REFRESH = 0.1  # seconds between redraws driven by Newton iterations


class _Bar:
    def __init__(self, total: int, description: str):
        from tqdm.auto import tqdm

        self._tqdm = tqdm(total=total, desc=description, unit="step", dynamic_ncols=True, leave=True)
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


class _Silent:
    def advance(self, units: int, **info) -> None:
        pass


class ProgressDisplay:
    """The progress of one `parallel_sample` call (`progress_bar=` turns the bars on or off).

    `phase(description, total)` opens a bar for a phase; `newton` is the engine's per-iteration
    callback, always compiled in, forwarding to the open bar (if any).
    """

    def __init__(self, enabled: bool):
        self.enabled = bool(enabled)
        self._bar = None
        self._iteration = -1
        self._residual = 0.0

    @contextlib.contextmanager
    def phase(self, description: str, total: int):
        """`with display.phase("warmup", n) as bar:` then `bar.advance(steps, key=value)`."""
        if not self.enabled or total <= 0:
            yield _Silent()
            return
        self._bar = _Bar(total, description)
        self._iteration = -1
        try:
            yield self._bar
        finally:
            self._bar.close()
            self._bar = None

    def newton(self, iteration, certified_steps, residual) -> None:
        """`callback(iteration, certified_steps, residual)` for `pnmcmc.solve` (one chain's values).

        Shows the iteration count and the largest residual reported for it by any chain.
        """
        bar = self._bar
        if bar is None:
            return
        iteration = int(np.asarray(iteration))
        residual = float(np.asarray(residual))
        if iteration != self._iteration:
            self._iteration, self._residual = iteration, residual
        else:
            self._residual = max(self._residual, residual)
        bar.newton(iteration, self._residual)
