"""Execute the notebooks in `notebooks/` with nbclient, and optionally store their outputs.

    python scripts/run_notebooks.py                 # execute each (outputs not saved); report times
    python scripts/run_notebooks.py --write         # execute and save the outputs in place (to commit)
    python scripts/run_notebooks.py 04_solvers      # only the notebooks whose names contain this
    PNMCMC_FULL=1 python scripts/run_notebooks.py   # the notebooks' full sizes (minutes to hours)

The committed notebooks carry outputs from the small settings (executed with `--write`), so that
their plots show on GitHub and in the documentation site, which renders them without executing.
`tests/test_notebooks.py` executes them in CI through `execute`.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def execute(path: Path, *, timeout: int = 600, write: bool = False):
    """Run every cell of the notebook at `path` in a fresh kernel; returns the executed notebook.

    Raises `nbclient.exceptions.CellExecutionError` (with the cell and traceback) on the first
    failing cell. The kernel runs with the notebook's directory as its working directory and with
    `XLA_FLAGS=--xla_cpu_multi_thread_eigen=false` (see docs/troubleshooting.md).
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    os.environ["XLA_FLAGS"] = " ".join(
        filter(None, [os.environ.get("XLA_FLAGS"), "--xla_cpu_multi_thread_eigen=false"])
    )
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    if write:
        nbformat.write(nb, path)
    return nb


def _children_cpu() -> float:
    """CPU seconds (user + system) of finished child processes, such as a shut-down kernel: on a
    shared machine this measures a notebook's cost better than wall time."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="run only notebooks whose file names contain these")
    parser.add_argument("--write", action="store_true", help="save the executed outputs in place")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    args = parser.parse_args(argv)
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    if args.names:
        paths = [p for p in paths if any(n in p.name for n in args.names)]
    failed = False
    for path in paths:
        start, cpu = time.perf_counter(), _children_cpu()
        try:
            nb = execute(path, timeout=args.timeout, write=args.write)
        except Exception as error:  # report every notebook, then fail
            failed = True
            print(f"{path.name}: FAILED after {time.perf_counter() - start:.1f} s\n{error}", flush=True)
            continue
        size = path.stat().st_size if args.write else len(str(nb))
        wall, cpu = time.perf_counter() - start, _children_cpu() - cpu
        print(f"{path.name}: {wall:.1f} s wall, {cpu:.1f} s kernel CPU, {size / 1024:.0f} KiB", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
