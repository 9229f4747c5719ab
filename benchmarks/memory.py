"""What a solve allocates: XLA's figure for each solver against the solver's own formula.

Compiles (never runs) `pnmcmc.solve`'s program for a cheap step function (a tanh RNN) over a grid
of T, D and solvers, and records `compiled.memory_analysis()` (outputs and temporaries) next to
`solver.memory_bytes(T, D, itemsize)`, the formula `pnmcmc.engine.memory` uses for advice and
`solver="auto"` for screening. Writes `benchmarks/results/memory-cpu.{md,json}`.

    python benchmarks/memory.py
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import _tables  # noqa: E402

import pnmcmc as pn  # noqa: E402
from pnmcmc import memory  # noqa: E402
from pnmcmc.engine.solve import _solve  # noqa: E402

SOLVERS = [
    pn.Jacobi(),
    pn.Picard(),
    pn.DEER(),
    pn.QuasiDEER(),
    pn.QuasiDEER(probes=4),
    pn.ELK(),
    pn.QuasiELK(),
    pn.QuasiELK(probes=4),
    pn.DEER(segment=16),
    pn.QuasiDEER(segment=16),
    pn.ELK(segment=16),
    pn.DEER(window=1024),
    pn.Sequential(),
]
SHAPES = [(4096, 4), (4096, 16), (16384, 16), (4096, 64), (100_000, 100)]


def measure(solver, n, d, dtype):
    w = jnp.zeros((d, d), dtype)

    def step(x, xi):
        return jnp.tanh(w @ x + xi)

    spec = jax.ShapeDtypeStruct
    compiled = _solve.lower(
        step, solver, None, spec((d,), dtype), spec((n, d), dtype), spec((n, d), dtype)
    ).compile()
    return memory.program_bytes(compiled)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/results/memory-cpu")
    p.add_argument("--float64", action="store_true", help="float64 instead of float32")
    args = p.parse_args(argv)
    dtype = jnp.float64 if args.float64 else jnp.float32
    if args.float64:
        jax.config.update("jax_enable_x64", True)  # a benchmark script's own choice, not the library's
    itemsize = jnp.dtype(dtype).itemsize
    rows = []
    for solver in SOLVERS:
        for n, d in SHAPES:
            xla = measure(solver, n, d, dtype)
            formula = solver.memory_bytes(n, d, itemsize)
            rows.append(dict(solver=solver.name, T=n, D=d, xla=xla, formula=formula, ratio=formula / xla))
            size = f"T={n:7d} D={d:4d} XLA {xla / 2**20:10.1f} MiB"
            print(f"{solver.name:26s} {size}, formula/XLA {formula / xla:.2f}", flush=True)
    _tables.save(
        pathlib.Path(args.out),
        rows,
        [_tables.invocation("memory.py", argv)],
        title="Memory of a solve: XLA's figure and the solvers' formulas",
        describe=lambda meta: (
            f"{meta['machine']}, {meta['date']}. {jnp.dtype(dtype).name}; a tanh RNN step (cheap "
            "intermediates). Programs are compiled, not run; XLA's figure is its outputs plus "
            "temporaries (`compiled.memory_analysis()`). The formula is `solver.memory_bytes(T, D, "
            "itemsize)`."
        ),
        header="| solver | T | D | XLA (MiB) | formula (MiB) | formula / XLA |\n|---|---|---|---|---|---|",
        md_row=lambda r: (
            f"| `{r['solver']}` | {r['T']} | {r['D']} | {r['xla'] / 2**20:.1f} | "
            f"{r['formula'] / 2**20:.1f} | {r['ratio']:.2f} |"
        ),
    )


if __name__ == "__main__":
    main()
