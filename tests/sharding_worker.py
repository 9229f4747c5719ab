"""Checks of `pnmcmc.engine.sharding` run in a subprocess of tests/test_sharding.py, where XLA is
given several host devices before JAX starts (`XLA_FLAGS=--xla_force_host_platform_device_count`).

`python tests/sharding_worker.py CHECK[,CHECK...] [PROCESS_ID PORT]` runs the checks and prints one
JSON line, `RESULT {check: result, ..., "device_count": n}`.
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)  # the test's choice; the library never does this

import pnmcmc as pn  # noqa: E402
from pnmcmc.engine import scans, sharding  # noqa: E402

D = 3
PRECISION = np.array([1.0, 2.0, 4.0])  # numpy: no JAX backend before distributed.initialize


def mala_problem(n, dtype=jnp.float64):
    """A MALA chain on a Gaussian target: `(step, x0, noise)`; noise columns z (D) and log u."""
    h = 0.3

    def logp(x):
        return -0.5 * jnp.sum(jnp.asarray(PRECISION, x.dtype) * x * x)

    grad = jax.grad(logp)

    def step(x, xi):
        z, log_u = xi[:D], xi[D]
        y = x + h * grad(x) + jnp.sqrt(2 * h) * z

        def log_q(a, b):
            return -jnp.sum((a - b - h * grad(b)) ** 2) / (4 * h)

        log_alpha = logp(y) - logp(x) + log_q(x, y) - log_q(y, x)
        return jnp.where(log_u < log_alpha, y, x)

    kz, ku = jax.random.split(jax.random.key(1))
    noise = jnp.concatenate([jax.random.normal(kz, (n, D)), jnp.log(jax.random.uniform(ku, (n, 1)))], 1)
    return step, jnp.array([3.0, -2.0, 1.0], dtype), noise.astype(dtype)


def check_scans():
    """Sharded scans against the one-device scans on random maps, T divisible by the device count
    or not (and T = 1, fewer steps than devices)."""
    mesh = sharding.as_mesh(jax.devices())

    @jax.jit
    def errors(a, b, x0):
        def error(x, y):
            return jnp.max(jnp.abs(x - y))

        return jnp.stack(
            [
                error(sharding.affine_dense_sharded(a, b, x0, mesh=mesh), scans.affine_dense(a, b, x0)),
                error(
                    sharding.affine_diagonal_sharded(a[:, 0], b, x0, mesh=mesh),
                    scans.affine_diagonal(a[:, 0], b, x0),
                ),
                error(
                    sharding.affine_diagonal_sharded(a[:, 0], b, mesh=mesh), scans.affine_diagonal(a[:, 0], b)
                ),
                jnp.max(jnp.abs(scans.affine_dense(a, b, x0))),
            ]
        )

    out = {}
    for n in (1, 64, 203):
        ka, kb, kx = jax.random.split(jax.random.key(n), 3)
        a = 0.9 * jax.random.normal(ka, (n, D, D)) / jnp.sqrt(D)
        out[n] = [float(e) for e in errors(a, jax.random.normal(kb, (n, D)), jax.random.normal(kx, (D,)))]
    return out


def check_solve():
    """`solve(..., devices=)` against the one-device solve: trajectory and iteration count."""
    step, x0, noise = mala_problem(200)
    out = {}
    solvers = {
        "DEER": pn.DEER(),
        "QuasiDEER": pn.QuasiDEER(),
        "DEER(segment=4)": pn.DEER(segment=4),
        "QuasiDEER(window=64)": pn.QuasiDEER(window=64),
    }
    for name, solver in solvers.items():
        one = pn.solve(step, x0, noise, solver)
        split = pn.solve(step, x0, noise, solver, devices=jax.devices())
        out[name] = {
            "difference": float(jnp.max(jnp.abs(one.trajectory - split.trajectory))),
            "iterations": [int(one.num_iterations), int(split.num_iterations)],
            "status": [int(one.status), int(split.status)],
        }
    # The memory guard counts per device: a budget between the split figure and the one-device
    # figure refuses the one-device solve and runs the split one.
    from pnmcmc.engine import memory
    from pnmcmc.engine.solve import _solve

    solver = pn.DEER()
    init = jnp.broadcast_to(x0, (noise.shape[0], D))
    split = sharding.TimeSplit(sharding.as_mesh(jax.devices()))
    whole = memory.program_bytes(_solve.lower(step, solver, None, x0, noise, init).compile())
    part = memory.program_bytes(
        _solve.lower(step, solver, None, *split.put((x0, noise, init)), split=split).compile()
    )
    budget = (whole + part) // 2
    try:
        pn.solve(step, x0, noise, solver, memory_budget=budget)
        refused = False
    except memory.InsufficientMemoryError:
        refused = True
    fits = pn.solve(step, x0, noise, solver, memory_budget=budget, devices=jax.devices())
    out["guard"] = {"whole": whole, "part": part, "refused": refused, "split_ran": int(fits.status) == 0}
    # float32 works too (same iterations; round-off of float32)
    step, x0, noise = mala_problem(200, jnp.float32)
    one = pn.solve(step, x0, noise, pn.QuasiDEER())
    split = pn.solve(step, x0, noise, pn.QuasiDEER(), devices=jax.devices())
    out["float32"] = {
        "difference": float(jnp.max(jnp.abs(one.trajectory - split.trajectory))),
        "dtype": str(split.trajectory.dtype),
    }
    return out


def check_sample():
    """`parallel_sample(..., devices=)`: chains split (8 chains) and time split (2 chains)."""
    from pnmcmc.models import eight_schools

    schools = eight_schools()
    options = dict(
        model_kwargs=schools.model_kwargs,
        kernel="mala",
        solver="quasideer",
        num_warmup=0,  # fixed parameters: the sampling solves are what is split
        step_size=0.05,
        rng_key=3,
        progress_bar=False,
    )
    out = {}
    for chains in (8, 2):
        one = pn.parallel_sample(schools.model, 60, num_chains=chains, **options)
        many = pn.parallel_sample(schools.model, 60, num_chains=chains, devices=jax.devices(), **options)
        out[chains] = {
            "difference": float(np.max(np.abs(np.asarray(one.positions) - np.asarray(many.positions)))),
            "devices": len(many.positions.sharding.device_set),
            "accept": float(
                np.max(
                    np.abs(
                        np.asarray(one.sample_stats["acceptance_rate"])
                        - np.asarray(many.sample_stats["acceptance_rate"])
                    )
                )
            ),
            "iterations": [
                np.asarray(one.sample_stats["num_iterations"]).tolist(),
                np.asarray(many.sample_stats["num_iterations"]).tolist(),
            ],
        }
    return out


def check_two_processes(process_id, port):
    """One of two processes: each owns half of the time axis of one solve over both devices."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{port}", 2, process_id)
    step, x0, noise = mala_problem(200)
    split = pn.solve(step, x0, noise, pn.QuasiDEER(), devices=jax.devices())
    whole = np.asarray(split.trajectory)  # every process receives the whole solution
    local = pn.solve(step, x0, noise, pn.QuasiDEER(), devices=jax.local_devices()[:1])
    return {
        "devices": len(jax.devices()),
        "difference": float(np.max(np.abs(whole - np.asarray(local.trajectory)))),
        "iterations": [int(split.num_iterations), int(local.num_iterations)],
    }


if __name__ == "__main__":
    checks = sys.argv[1].split(",")
    if checks == ["two_processes"]:
        result = {"two_processes": check_two_processes(int(sys.argv[2]), int(sys.argv[3]))}
    else:
        known = {"scans": check_scans, "solve": check_solve, "sample": check_sample}
        result = {check: known[check]() for check in checks}
    result["device_count"] = len(jax.devices())
    print("RESULT " + json.dumps(result), flush=True)
    if checks == ["two_processes"]:
        jax.distributed.shutdown()  # waits for the other process: the coordinator must outlive it
