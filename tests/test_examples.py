"""Every example script runs as `python examples/X.py` (small sizes) and reproduces the sequential chain.

Each script is run in a subprocess, as a user would run it, with sizes smaller than its defaults
where that keeps the file within its time budget; the check is the script's own last line: the
largest |parallel - sequential| difference.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # still run in CI; deselect locally with -m "not slow"

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# script, arguments, largest allowed |parallel - sequential| (float64).
CASES = [
    ("german_credit_mala.py", ["--steps", "64", "--chains", "2"], 1e-8),
    ("banana_hmc.py", ["--steps", "500"], 1e-8),
    ("mixture_mala.py", ["--steps", "500"], 1e-8),
    # NUTS through parallel_sample: warmup, sampling, LLE and postprocessing programs all compile,
    # so the sizes are the smallest that exercise every phase.
    ("eight_schools_nuts.py", ["--chains", "1", "--steps", "20", "--warmup", "20"], 1e-6),
]


@pytest.mark.parametrize(("script", "args", "tolerance"), CASES, ids=[c[0] for c in CASES])
def test_example(script, args, tolerance):
    env = dict(os.environ)
    env["XLA_FLAGS"] = " ".join(filter(None, [env.get("XLA_FLAGS"), "--xla_cpu_multi_thread_eigen=false"]))
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"{script} failed:\n{log[-4000:]}"
    match = re.search(r"max \|parallel - sequential\|[^=:]*[=:] ([0-9.e+-]+)", result.stdout)
    assert match, f"{script} did not print the difference:\n{result.stdout[-2000:]}"
    assert float(match.group(1)) <= tolerance, result.stdout[-2000:]
