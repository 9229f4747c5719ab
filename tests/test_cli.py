"""`python -m pnmcmc`: bad option values are usage errors (exit status 2, the option named), never a
traceback from deep inside the sampler."""

import os
import subprocess
import sys

import pytest

import pnmcmc.sampling.sample
from pnmcmc.demo import main


@pytest.fixture
def no_sampling(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the demo started sampling with an invalid option")

    monkeypatch.setattr(pnmcmc.sampling.sample, "parallel_sample", fail)
    monkeypatch.setattr(pnmcmc.sampling.sample, "sequential_sample", fail)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--steps", "0"], "argument --steps: must be at least 1, got 0"),
        (["--steps", "ten"], "argument --steps: 'ten' is not an integer"),
        (["--chains", "-2"], "argument --chains: must be at least 1, got -2"),
        (["--warmup", "-1"], "argument --warmup: must be at least 0, got -1"),
        (["--segment", "0"], "argument --segment: must be at least 1, got 0"),
        (["--kernel", "gibbs"], "argument --kernel: invalid choice: 'gibbs'"),
        (["--solver", "newton"], "argument --solver: Unknown solver 'newton'"),
    ],
)
def test_bad_values_are_usage_errors(argv, message, no_sampling, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m pnmcmc") and message in err


def test_the_command_line_prints_usage_not_a_traceback():
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    run = subprocess.run(
        [sys.executable, "-m", "pnmcmc", "--steps", "0"], capture_output=True, text=True, env=env, timeout=300
    )
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and "error: argument --steps: must be at least 1" in run.stderr
