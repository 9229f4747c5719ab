"""Why DEER bounds its Jacobians to norm 1: the alternatives, measured.

Every variant below is the same Newton iteration with a different Jacobian approximation in the
linear recurrence (`delta_t = A_t delta_{t-1} - r_t`); all converge to the same chain (the table
checks it), so the only question is how many iterations they need:

- `plain`: the exact Jacobian (`DEER(max_norm=None)`);
- `bound c`: `DEER(max_norm=c)`, each J_t of spectral norm above c scaled down to c (c = 1 is
  pnmcmc's default);
- `scaled 0.55`: every J_t multiplied by 0.55, the published damping for banana HMC;
- `svd clip`: singular values above 1 set to 1 (the projection onto the norm ball);
- `frobenius`: J_t scaled down to Frobenius norm 1 (a cheap upper bound of the spectral norm).

    python benchmarks/jacobian_bound.py                 # writes results/jacobian-bound-cpu.md

The variants other than `plain` and `bound c` exist only here, as custom solvers.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import platform
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")  # see docs/troubleshooting.md
sys.path.insert(0, str(Path(__file__).parent))  # the shared helpers, also when run as a module

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from _tables import RESULTS, invocation  # noqa: E402

import pnmcmc as pn  # noqa: E402
from pnmcmc import jacobians, scans, targets  # noqa: E402
from pnmcmc.kernels import HMC, MALA  # noqa: E402


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Transformed(pn.ParallelSolver):
    """Newton with `transform(J_t)` in place of J_t."""

    transform: object = None

    @property
    def jacobian(self):
        return jacobians.Full()

    def update(self, traj, r, jac, state, residual_fn, free):
        return traj + scans.affine_dense(self.transform(jac), jnp.where(free, -r, 0.0)), state


def _svd_clip(jac):
    u, s, vt = jnp.linalg.svd(jac)
    return jnp.einsum("tij,tj,tjk->tik", u, jnp.minimum(s, 1.0), vt)


def _frobenius(jac):
    norm = jnp.sqrt(jnp.sum(jac**2, axis=(-2, -1)))
    return jac * jnp.minimum(1.0, 1.0 / jnp.where(norm > 0, norm, 1.0))[:, None, None]


def variants(cap):
    return {
        "plain": pn.DEER(max_norm=None, max_iterations=cap),
        "bound 1 (default)": pn.DEER(max_iterations=cap),
        "bound 0.9": pn.DEER(max_norm=0.9, max_iterations=cap),
        "bound 2": pn.DEER(max_norm=2.0, max_iterations=cap),
        "scaled 0.55": _Transformed(transform=lambda j: 0.55 * j, max_iterations=cap),
        "svd clip": _Transformed(transform=_svd_clip, max_iterations=cap),
        "frobenius": _Transformed(transform=_frobenius, max_iterations=cap),
    }


def problems(steps):
    def kernel_chain(name, target, kernel, scale):
        kx, kn = jax.random.split(jax.random.key(0))
        x0 = scale * jax.random.normal(kx, (target.dim,), jnp.float64)
        noise = kernel.noise(kn, steps, target.dim, jnp.float64)
        return name, functools.partial(kernel.step, target.logdensity), x0, noise

    return [
        kernel_chain("banana, HMC 0.5 x 8, x0 ~ 10 N(0, I)", targets.banana(), HMC(0.5, 8), 10.0),
        kernel_chain("mixture, MALA 0.5", targets.gaussian_mixture(), MALA(0.5), 1.0),
        kernel_chain("Gaussian D=10 rho=0.9, MALA 0.05", targets.correlated_gaussian(10, 0.9), MALA(0.05),
                     1.0),
    ]  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=10_000, help="chain length T")
    parser.add_argument("--max-iterations", type=int, default=2000)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)  # the benchmark's choice; the library never does
    command = invocation("jacobian_bound.py", argv)
    lines = [
        f"# Jacobian approximations in Newton's recurrence (cpu, float64, T = {args.steps})",
        "",
        f"Command: `{command}` ({platform.platform()}, jax {jax.__version__}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}).",
        "",
        "Iterations to the sequential chain at the default float64 tolerance (capped at "
        f"{args.max_iterations}; a capped solve finishes sequentially), and max |parallel - sequential|.",
        "",
        "| chain | " + " | ".join(variants(0)) + " |",
        "|---|" + "---|" * len(variants(0)),
    ]
    for name, step, x0, noise in problems(args.steps):
        reference = pn.solve(step, x0, noise, pn.Sequential()).trajectory
        cells = []
        for label, solver in variants(args.max_iterations).items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", pn.PnmcmcWarning)
                sol = jax.jit(lambda x0, noise, s=solver, f=step: pn.solve(f, x0, noise, s))(x0, noise)
            diff = float(jnp.max(jnp.abs(sol.trajectory - reference)))
            capped = "" if int(sol.status) == pn.Status.CONVERGED else " (capped)"
            cells.append(f"{int(sol.num_iterations)}{capped}, {diff:.0e}")
            print(name, label, cells[-1], flush=True)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "jacobian-bound-cpu.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
