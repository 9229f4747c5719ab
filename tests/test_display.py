"""The progress display: a few plain lines where output is not a terminal, chains never interleaved."""

import io

from pnmcmc.sampling.progress import ProgressDisplay


def test_a_log_gets_a_few_lines_per_phase_not_redraws():
    out = io.StringIO()
    display = ProgressDisplay(True, stream=out)
    with display.phase("warmup", 1000) as bar:
        for _ in range(100):
            bar.advance(10, step_size="0.1")
    with display.compiling("the sampling program"):
        pass
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0] == "warmup: 1000 steps" and lines[-2].startswith("warmup: done, 1000/1000")
    assert len(lines) == 6  # start, three quarters, end, and the compilation
    assert "left" in lines[1] and lines[-1].startswith("compiled the sampling program in ")


def test_chains_do_not_overwrite_each_other():
    """Under vmap every chain reports every iteration, converged ones their final count: the display
    follows the slowest chain and shows the largest residual at its iteration."""
    seen = []

    class Bar:
        def newton(self, iteration, residual):
            seen.append((iteration, residual))

    display = ProgressDisplay(True, stream=io.StringIO())
    display._bar = Bar()
    for k in range(1, 4):
        display.newton(k, 0, 1e-3 * k)  # chain 0 at k
        display.newton(k, 0, 1.0 * k)  # chain 1 at k, larger residual
        display.newton(1, 0, 1e-9)  # chain 2 converged at 1: ignored once the others are past it
    assert seen[-1] == (3, 3.0)
    assert [k for k, _ in seen] == sorted(k for k, _ in seen[: len(seen)])  # never goes back
    display.newton(0, 0, 0.5)  # iteration 0: the next solve (warmup window) starts
    assert seen[-1] == (0, 0.5)


def test_disabled_display_prints_nothing():
    out = io.StringIO()
    display = ProgressDisplay(False, stream=out)
    with display.phase("sampling", 10) as bar:
        bar.advance(10)
    with display.compiling("x"):
        pass
    assert out.getvalue() == ""
