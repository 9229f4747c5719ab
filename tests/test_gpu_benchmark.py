"""The GPU run's dry run (`benchmarks/gpu.py --dry-run`, tiny T on the CPU): structure only, no timings.

Every kind of cell gives well-formed rows, written while the script still runs (a time-out on the
device must still return data); the global budget, a cell's budget and SIGTERM each leave well-formed
tables whose unmeasured rows say why.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu.py"
MODEL = "kidiq-kidscore_momhs"


def _start(tmp_path, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, str(SCRIPT), "--dry-run", "--results-dir", str(tmp_path), "--name", "dry"]
    with open(tmp_path / "log.txt", "w") as log:  # a file, not a pipe: nothing blocks on a full buffer
        return subprocess.Popen([*command, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _finish(proc, tmp_path, timeout=900):
    proc.wait(timeout=timeout)
    return (tmp_path / "log.txt").read_text()


def _rows(tmp_path):
    return json.loads((tmp_path / "dry.json").read_text())["rows"]


def _wait_for_measured_row(proc, tmp_path):
    """True once the results hold a measured row while the script is still running."""
    while proc.poll() is None:
        try:
            if any(r.get("measured") for r in _rows(tmp_path)):
                return proc.poll() is None
        except (OSError, ValueError):  # not written yet
            pass
        time.sleep(0.2)
    return False


def _check_chain_row(r):
    assert r["status"].split("/")[0] in ("CONVERGED", "MAX_ITERATIONS"), r
    assert r["device"] and r["computed_dtype"] == r["dtype"]
    assert r["compile_s"] >= 0 and r["seconds"] > 0 and r["runs"] >= 1 and r["iterations"] >= 0
    assert math.isfinite(r["max_abs_diff"]) and r["ratio"] > 0 and r["best_ratio"] > 0
    assert 0 <= r["certified"] <= r["steps"]


def _check_posterior_row(r):
    assert r["status"] == "ok", r
    assert r["device"] and r["computed_dtype"] == r["dtype"] and r["sampler"]
    assert r["first_call_s"] >= r["seconds"] > 0 and r["min_ess"] > 0
    assert r["ess_per_s"] > 0 and r["ess_per_s_first_call"] > 0


@pytest.mark.slow
def test_dry_run_writes_every_row_as_it_goes(tmp_path):
    # Every kind of cell, float32 and one posterior (about a minute on 2 cores): the float64 worker
    # is the same code with JAX's x64 switch on; `bash benchmarks/gpu.sh --dry-run` runs everything.
    proc = _start(tmp_path, "--dtypes", "float32", "--models", MODEL, "--copy-to", str(tmp_path / "out"))
    early = _wait_for_measured_row(proc, tmp_path)
    log = _finish(proc, tmp_path)
    assert proc.returncode == 0, log
    assert early, "no row was written before the script ended"
    rows = _rows(tmp_path)
    chains = [(c, m) for c in ("banana", "german", "nuts") for m in
              ("Sequential", "Sequential (CPU)", "DEER(segment=16)", "DEER(segment=64)")]  # fmt: skip
    assert [(r["cell"], r["method"]) for r in rows] == [
        *chains,
        (MODEL, "parallel_sample"),
        (MODEL, "NumPyro NUTS"),
    ]
    for r in rows:
        assert r["measured"] and r["dtype"] == "float32", r
        (_check_chain_row if r["kind"] == "chain" else _check_posterior_row)(r)
    md = (tmp_path / "dry.md").read_text()
    assert md.startswith("# GPU run (issue 17)") and "python benchmarks/gpu.py --dry-run" in md
    assert (
        sum(line.startswith(("| banana", "| german", "| nuts", f"| {MODEL}")) for line in md.splitlines())
        == 14
    )
    for name in ("dry.md", "dry.json"):  # the copies the device returns
        assert (tmp_path / "out" / name).read_text() == (tmp_path / name).read_text()


def test_budgets_and_sigterm_leave_well_formed_tables(tmp_path):
    proc = _start(tmp_path, "--budget", "0")
    _finish(proc, tmp_path)
    rows = _rows(tmp_path)
    assert len(rows) == 3 * 2 * 4 + 8 * 2 * 2 and all(r["status"] == "not reached" for r in rows)

    proc = _start(tmp_path, "--cells", "banana", "--dtypes", "float32", "--cell-budget", "2")
    _finish(proc, tmp_path)
    assert all(r["status"].startswith("timeout: cell budget") for r in _rows(tmp_path))

    proc = _start(tmp_path, "--cells", "nuts", "--dtypes", "float64")
    assert _wait_for_measured_row(proc, tmp_path)
    proc.send_signal(signal.SIGTERM)
    _finish(proc, tmp_path)
    rows = _rows(tmp_path)
    assert rows[0]["measured"]
    assert all(r.get("measured") or r["status"] == "stopped: signal 15" for r in rows), rows
