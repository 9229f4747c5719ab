"""Splitting across devices (`pnmcmc.engine.sharding`): every check runs in a subprocess
(`tests/sharding_worker.py`) whose XLA has 3 or 4 host devices, or in two processes joined by
`jax.distributed.initialize` on the loopback address.

Power: the sharded scans are compared with the one-device scans to round-off on random maps (a
missing fix-up is off by O(1) on every block after the first), and the split solves must take
exactly the one-device iteration counts (measured: a solve whose scan skips the fix-up converges
anyway, by the exactness front, but in more iterations: 6 instead of 5 for DEER, 19 instead of 15
with a window).
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "tests" / "sharding_worker.py"


def _env(devices):
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices} --xla_cpu_multi_thread_eigen=false"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _result(stdout):
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, stdout
    return json.loads(lines[-1][len("RESULT ") :])


def _run(checks, devices, timeout=300):
    proc = subprocess.run(
        [sys.executable, str(WORKER), ",".join(checks)],
        env=_env(devices),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = _result(proc.stdout)
    assert result["device_count"] == devices
    return result


# One subprocess per device count (each pays JAX's start-up and its own compilations once).
_CHECKS = {3: ("scans", "solve"), 4: ("scans", "solve", "sample")}


@pytest.fixture(scope="module", params=[3, 4], ids=lambda n: f"{n}devices")
def split_run(request):
    return _run(_CHECKS[request.param], request.param)


def test_sharded_scans_equal_one_device_scans(split_run):
    result = split_run["scans"]
    assert len(result) == 3
    for n, (dense, diagonal, diagonal_zero, size) in result.items():
        assert size > 1  # the states are O(1), so these are relative errors of a few ulps
        assert dense < 1e-13 and diagonal < 1e-13 and diagonal_zero < 1e-13, (n, dense, diagonal)


def test_split_solve_equals_one_device_solve(split_run):
    result = split_run["solve"]
    for name in ("DEER", "QuasiDEER", "DEER(segment=4)", "QuasiDEER(window=64)"):
        row = result[name]
        assert row["status"] == [0, 0], (name, row)
        one, split = row["iterations"]
        assert one == split, (name, row)  # a scan without the fix-up needs more
        assert row["difference"] < 1e-12, (name, row)  # the solver's float64 tolerance is ~1e-11
    guard = result["guard"]
    assert guard["part"] < guard["whole"], guard
    assert guard["refused"] and guard["split_ran"], guard  # the guard counts per-device bytes
    assert result["float32"]["dtype"] == "float32"
    assert result["float32"]["difference"] < 1e-5


def test_parallel_sample_spreads_chains_and_time(split_run):
    if "sample" not in split_run:
        pytest.skip("parallel_sample is checked on 4 devices")
    chains, time = split_run["sample"]["8"], split_run["sample"]["2"]
    assert chains["devices"] == 4 and time["devices"] == 4
    for row in (chains, time):
        assert row["difference"] < 1e-10, row
        assert row["accept"] < 1e-10, row
        assert row["iterations"][0] == row["iterations"][1], row


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_split_one_solve_over_loopback():
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "two_processes", str(i), str(port)],
            env=_env(1),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=180))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    failed = [(p.returncode, err) for p, (_, err) in zip(procs, outputs, strict=True) if p.returncode != 0]
    if failed and any("gloo" in err.lower() and "not" in err.lower() for _, err in failed):
        pytest.skip(f"CPU collectives over gloo are unavailable: {failed[0][1][-500:]}")
    assert not failed, failed[0][1][-4000:]
    for out, _ in outputs:
        result = _result(out)["two_processes"]
        assert result["devices"] == 2
        assert result["iterations"][0] == result["iterations"][1], result
        assert result["difference"] < 1e-12, result
