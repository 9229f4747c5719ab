"""Ctrl-C stops a long solve within about a second, and nothing half-done is returned.

Each case runs in a subprocess that starts a solve which would take far longer than the test
waits; the test sends SIGINT once the solve is under way and measures how long the process takes
to report the KeyboardInterrupt.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

SCRIPT = textwrap.dedent(
    """
    import signal, sys, time

    # A terminal's process: Python's own SIGINT handler, SIGINT not blocked, whatever the test
    # runner's worker process (whose disposition and mask a child inherits) had.
    inherited = signal.getsignal(signal.SIGINT), signal.pthread_sigmask(signal.SIG_BLOCK, [])
    print("inherited", inherited, file=sys.stderr, flush=True)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import jax, jax.numpy as jnp
    import pnmcmc as pn
    from pnmcmc.engine.solve import _solve

    def heavy(x, xi):  # a costly step, cheap vmapped: a whole pass over the chain takes < 1 s
        return jax.lax.fori_loop(0, 1000, lambda i, y: jnp.tanh(0.5 * y + xi), x)

    def logistic(x, xi):
        return 4.0 * x * (1.0 - x)

    case = sys.argv[1]
    if case == "parallel":  # expanding: DEER needs T iterations of T steps each
        step, x0, noise, solver = logistic, jnp.array([0.3]), jnp.zeros((40000, 0)), pn.DEER()
    elif case == "sequential":
        step, x0, noise, solver = heavy, jnp.zeros(4), jnp.ones((200_000, 4)), pn.Sequential()
    else:  # the sequential finish after an iteration cap
        step, x0, noise, solver = heavy, jnp.zeros(4), jnp.ones((200_000, 4)), pn.Jacobi(max_iterations=0)
    init = jnp.broadcast_to(x0, (noise.shape[0], x0.shape[0]))
    _solve.lower(step, solver, None, x0, noise, init).compile()  # what solve compiles (then cached)
    print("start", flush=True)
    began = time.perf_counter()
    try:
        pn.solve(step, x0, noise, solver)
        print("finished", time.perf_counter() - began, flush=True)
    except KeyboardInterrupt:
        print("interrupted", time.perf_counter() - began, flush=True)
    """
)


@pytest.mark.parametrize("case", ["parallel", "sequential", "sequential-finish"])
def test_ctrl_c_stops_a_long_solve_within_about_a_second(case):
    command = [sys.executable, "-W", "ignore", "-c", SCRIPT, case]
    env = {**os.environ, "JAX_ENABLE_X64": "0"}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            started = process.stdout.readline().strip()
            if started == "start":
                time.sleep(2.0)  # solving; the whole solve would take several times longer
                sent = time.perf_counter()
                process.send_signal(signal.SIGINT)
                line = process.stdout.readline().strip()
                reaction = time.perf_counter() - sent
        finally:
            process.kill()
            _, errors = process.communicate()
    assert started == "start", errors[-2000:]
    assert line.startswith("interrupted"), (line, errors[-2000:])
    assert reaction < 2.0, reaction
