"""Plots of a `benchmarks/run.py` result: speedup, iterations and memory against T.

    python benchmarks/plots.py benchmarks/results/cpu.json     # writes cpu-speedup.png etc.

One panel per target (single-chain cells), one line per solver. Speedup is the ratio to the
Sequential chain measured in the same run (log scale, 1 = as fast as `lax.scan`); memory is
XLA's estimate of the compiled program (arguments + outputs + temporaries), which unlike the
measured peak does not depend on what ran before in the process. Cells that hit the iteration cap
or the time budget (status MAX_ITERATIONS) are left out of the speedup and iteration panels: their
numbers are those of a truncated solve (the tables have them).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

PANELS = {
    "speedup": ("ratio", "time of Sequential / time of solver", True),
    "iterations": ("iterations", "parallel iterations", True),
    "memory": ("xla_mb", "XLA memory estimate (MB)", True),
}


def make_plots(stem) -> list[Path]:
    """Write `<stem>-speedup.png`, `-iterations.png`, `-memory.png` from `<stem>.json`."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plots")
        return []
    stem = Path(stem).with_suffix("")
    data = json.loads(stem.with_suffix(".json").read_text())
    rows = [r for r in data["rows"] if "seconds" in r and r["chains"] == 1]
    by_target = {}
    for r in rows:
        by_target.setdefault(r["target"], []).append(r)
    targets = [t for t, rs in by_target.items() if len({r["steps"] for r in rs}) >= 1]
    written = []
    for panel, (field, ylabel, log) in PANELS.items():
        cols = min(3, len(targets)) or 1
        nrows = math.ceil(len(targets) / cols) or 1
        fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False)
        for ax, target in zip(axes.flat, targets, strict=False):
            solvers = dict.fromkeys(r["solver"] for r in by_target[target])
            for solver in solvers:
                if panel == "iterations" and solver == "Sequential":
                    continue
                pts = sorted(
                    (r["steps"], r[field])
                    for r in by_target[target]
                    if r["solver"] == solver
                    and r.get(field) is not None
                    and r[field] > 0
                    and (panel == "memory" or "MAX_ITERATIONS" not in r["status"])
                )
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker="o", label=solver)
            ax.set_xscale("log")
            if log:
                ax.set_yscale("log")
            if panel == "speedup":
                ax.axhline(1.0, color="grey", lw=0.8, ls="--")
            ax.set_title(target)
            ax.set_xlabel("T (steps)")
            ax.set_ylabel(ylabel)
            ax.legend(fontsize=6)
        for ax in list(axes.flat)[len(targets) :]:
            ax.axis("off")
        fig.suptitle(f"{data['meta']['device']} ({data['meta']['dtype']}): {panel} vs T, 1 chain")
        fig.tight_layout()
        path = Path(f"{stem}-{panel}.png")
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    return written


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(*make_plots(arg))
