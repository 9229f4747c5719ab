"""One chain's time axis, and a batch of chains, split across devices against one device.

Runs `pnmcmc.solve`'s program (QuasiDEER, a MALA chain on a D = 25 Gaussian target) on one device
and split over all the devices XLA has, and records XLA's per-device figure for the program's
outputs and temporaries (`compiled.memory_analysis()`, what the memory guard checks) and the wall
time of one run (compilation excluded). Rows: one chain of T steps split along time; 8 chains
split across the devices. On a CPU, run with forced host devices (which share the machine's cores,
so the times say what the split costs, not what separate devices gain):

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python benchmarks/sharding.py

Writes `benchmarks/results/sharding-<device>.{md,json}`.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shlex
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import _tables  # noqa: E402

import pnmcmc as pn  # noqa: E402
from pnmcmc.engine import memory, sharding  # noqa: E402
from pnmcmc.engine.solve import _solve  # noqa: E402

D = 25


def problem(n, chains=None):
    """A MALA chain (h = 0.2) on N(0, diag(1..D)^-1): `(step, x0, noise)`, batched over chains."""
    precision = jnp.linspace(1.0, 4.0, D)
    h = 0.2

    def logp(x):
        return -0.5 * jnp.sum(precision * x * x)

    grad = jax.grad(logp)

    def step(x, xi):
        z, log_u = xi[:D], xi[D]
        y = x + h * grad(x) + jnp.sqrt(2 * h) * z

        def log_q(a, b):
            return -jnp.sum((a - b - h * grad(b)) ** 2) / (4 * h)

        return jnp.where(log_u < logp(y) - logp(x) + log_q(x, y) - log_q(y, x), y, x)

    shape = (n,) if chains is None else (chains, n)
    kz, ku = jax.random.split(jax.random.key(0))
    noise = jnp.concatenate(
        [jax.random.normal(kz, (*shape, D)), jnp.log(jax.random.uniform(ku, (*shape, 1)))], axis=-1
    )
    x0 = jnp.full((D,) if chains is None else (chains, D), 2.0)
    return step, x0, noise


def measure(fn, *args):
    compiled = jax.jit(fn).lower(*args).compile()
    need = memory.program_bytes(compiled)
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    return need, time.perf_counter() - start, out


def one_chain(n, solver, devices):
    step, x0, noise = problem(n)
    init = jnp.broadcast_to(x0, (n, D))
    split = None if devices is None else sharding.TimeSplit(sharding.as_mesh(devices))
    args = (x0, noise, init) if split is None else split.put((x0, noise, init))
    need, seconds, sol = measure(
        lambda x0, noise, init: _solve(step, solver, None, x0, noise, init, split=split), *args
    )
    return need, seconds, sol


def many_chains(n, chains, solver, devices):
    step, x0, noise = problem(n, chains)

    def solve_all(x0, noise):
        return jax.vmap(lambda x, e: _solve(step, solver, None, x, e, jnp.broadcast_to(x, (n, D))))(x0, noise)

    args = (x0, noise)
    if devices is not None:
        args = sharding.spread_chains(devices, chains).put(args, chains)
    return measure(solve_all, *args)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", default="10000,30000,100000", help="T of the one-chain rows")
    p.add_argument("--chain-steps", type=int, default=10000, help="T of the 8-chain rows")
    p.add_argument("--out", default=None, help="output stem (default benchmarks/results/sharding-<device>)")
    args = p.parse_args(argv)
    jax.config.update("jax_enable_x64", True)  # the benchmark's choice; the library never does this
    devices = jax.devices()
    solver = pn.QuasiDEER()
    rows = []

    def row(kind, n, chains, where, result, reference):
        need, seconds, sol = result
        diff = float(jnp.max(jnp.abs(sol.trajectory - reference.trajectory)))
        rows.append(
            dict(
                kind=kind, T=n, D=D, chains=chains, devices=where, solver=solver.name,
                per_device_mib=need / 2**20, seconds=seconds,
                iterations=int(jnp.max(sol.num_iterations)), max_difference=diff,
            )
        )  # fmt: skip
        print(rows[-1], flush=True)

    for n in [int(float(s)) for s in args.steps.split(",")]:
        one = one_chain(n, solver, None)
        row("one chain, time split", n, 1, 1, one, one[2])
        row("one chain, time split", n, 1, len(devices), one_chain(n, solver, devices), one[2])
    one = many_chains(args.chain_steps, 8, solver, None)
    row("8 chains, chains split", args.chain_steps, 8, 1, one, one[2])
    row(
        "8 chains, chains split",
        args.chain_steps,
        8,
        len(devices),
        many_chains(args.chain_steps, 8, solver, devices),
        one[2],
    )

    stem = (
        pathlib.Path(args.out)
        if args.out
        else _tables.RESULTS / f"sharding-{_tables.device_slug(devices[0])}"
    )
    flags = os.environ.get("XLA_FLAGS", "")
    command = (f"XLA_FLAGS={shlex.quote(flags)} " if flags else "") + _tables.invocation(
        "sharding.py", argv
    ).rstrip()

    def describe(meta):
        return (
            f"{meta['machine']}; {len(devices)} {devices[0].platform} devices. `per-device MiB`: XLA's "
            "figure "
            "for the outputs and temporaries of the program each device runs (what the memory guard "
            "checks); `seconds`: one run, compilation excluded. Forced host devices share the same cores, "
            "so on a CPU the split shows the memory each device holds, not a speed-up. `max |diff|`: "
            "largest difference of the trajectory from the one-device run (float64)."
        )

    _tables.save(
        stem,
        rows,
        [command],
        title="Splitting across devices (QuasiDEER, MALA, D = 25)",
        describe=describe,
        header="| rows | T | chains | devices | per-device MiB | seconds | iterations | max \\|diff\\| |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        md_row=lambda r: (
            f"| {r['kind']} | {r['T']} | {r['chains']} | {r['devices']} | {r['per_device_mib']:.1f} | "
            f"{r['seconds']:.2f} | {r['iterations']} | {r['max_difference']:.1e} |"
        ),
    )


if __name__ == "__main__":
    main()
