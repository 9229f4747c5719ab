"""`SampleResult`: what `parallel_sample` returns. Plain data with a few views, no sampler state."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from ..engine.solution import Status
from . import arviz_io

__all__ = ["SampleResult"]

_PER_DRAW = ("lp", "acceptance_rate", "accepted", "diverging", "energy", "n_steps", "tree_depth", "step_size")


@dataclasses.dataclass(frozen=True)
class SampleResult:
    """Posterior draws and how they were obtained. Leading axes are (chain, draw).

    **Fields:**

    - `samples`: `{site: (C, T, ...)}`, the constrained latent sites and the model's deterministic
      sites (NumPyro's `postprocess_fn`), except those that depend on enumerated discrete sites
      (`discrete.dependent`; `infer_discrete` returns them).
    - `positions`: the flat unconstrained draws the chains were solved for, (C, T, D).
    - `sample_stats`: per draw (C, T): `lp` (log density), `acceptance_rate`, `accepted`,
      `diverging` (including rejected non-finite proposals), `energy`, `n_steps` (gradient
      steps), `tree_depth` (NUTS), `step_size`; per chain (C,): `num_iterations` (parallel Newton
      iterations of the sampling solve), `residual` (its certificate), `status` (a
      `pnmcmc.Status` code), `sequential_steps`, `front_limited` (the solve did no better than
      its exactness front: sequential work at parallel cost), `lle` and `lle_stderr` (largest Lyapunov
      exponent of the chain; NaN where the sampling chains were solved sequentially, for which it
      predicts nothing and costs several passes over the chain:
      `pnmcmc.analysis.lyapunov.lyapunov_exponent` measures it), `num_divergent`,
      `warmup_iterations`, and under `solver="auto"` `predicted_iterations` (the pilot's
      prediction for the chosen solver); and
      `inverse_mass_matrix` (C, D).
    - `kernel`: the adapted kernel (its parameters carry a leading chain axis).
    - `solver`: the solver of the sampling solve (and of the warmup windows unless it was chosen
      by `solver="auto"`); `solver_reason`: why it was chosen.
    - `warmup`: the [`WarmupResult`][pnmcmc.sampling.warmup.WarmupResult] (adapted parameters, time).
    - `timings`: seconds for `"warmup"`, `"sampling"`, `"diagnostics"` (LLE, postprocessing),
      each without compilation, `"compile"` (all compilation together) and `"solver_choice"` (the
      `solver="auto"` pilot, its compilations included; 0 otherwise).
    - `latent_sites`: the sampled sites, in the order of the flat vector.
    - `solver_choice`: under `solver="auto"`, the pilot's [`AutoChoice`][pnmcmc.analysis.auto.AutoChoice]
      (candidates, predictions, reasons); otherwise None.
    - `discrete`: the model's enumerated discrete sites, summed out of the sampled density
      ([`DiscreteSites`][pnmcmc.sampling.modeling.DiscreteSites]; draw them with `infer_discrete`), or None.
      `discrete.dependent` names the deterministic sites that depend on them, left out of `samples`.
    - `convergence`: the convergence checks of the draws (split R-hat, bulk and tail ESS,
      divergences, E-BFMI, NUTS tree depth), a
      [`ConvergenceDiagnostics`][pnmcmc.sampling.convergence.ConvergenceDiagnostics]: `.passed`,
      `.failed`, `["r_hat"].worst`, ...; a failed check also raised a
      [`ConvergenceWarning`][pnmcmc.ConvergenceWarning]. None on a result built by hand.
    - `twins`: the [`TwinRecord`][pnmcmc.sampling.twins.TwinRecord]: per chain, whether the run of the
      same seed with another solver (`parallel_sample` / `sequential_sample`) is expected to give
      the same draws digit by digit or only statistically, and why (`pnmcmc.sampling.twins`).
    """

    samples: dict
    positions: jax.Array
    sample_stats: dict
    kernel: object
    solver: object
    solver_reason: str
    warmup: object
    timings: dict
    latent_sites: tuple
    solver_choice: object = None
    discrete: object = None
    convergence: object = None
    twins: object = None

    @property
    def num_chains(self) -> int:
        return int(self.positions.shape[0])

    @property
    def num_draws(self) -> int:
        return int(self.positions.shape[1])

    @property
    def warmup_time(self) -> float:
        """Wall time of the warmup in seconds, compilation excluded."""
        return float(self.timings["warmup"])

    @property
    def sampling_time(self) -> float:
        """Wall time of the sampling solve in seconds, compilation excluded."""
        return float(self.timings["sampling"])

    def get_samples(self, group_by_chain: bool = False) -> dict:
        """The draws of every latent and deterministic site, like NumPyro's `MCMC.get_samples`.

        Enumerated discrete sites are summed out, and the deterministic sites that depend on them
        (`discrete.dependent`) are left out: NumPyro would compute them with a prior draw of the
        discrete sites. `infer_discrete()` returns both, drawn from the posterior.

        **Arguments:**

        - `group_by_chain`: keep the chain axis, (C, T, ...); otherwise chains are concatenated,
          (C * T, ...).
        """
        if group_by_chain:
            return dict(self.samples)
        return {k: v.reshape((-1,) + v.shape[2:]) for k, v in self.samples.items()}

    def infer_discrete(self, rng_key=0, *, temperature: int = 1, group_by_chain: bool = False) -> dict:
        """Draws of the enumerated discrete sites, one for each continuous draw (NumPyro's
        `infer_discrete`): with `samples`, draws from the joint posterior.

        The chains sample the continuous sites with the discrete sites summed out; this draws each
        discrete site from its posterior given the continuous draw (forward filtering, backward
        sampling), and recomputes every deterministic site with those values, including those that
        depend on the discrete sites (`discrete.dependent`), which are not in `samples`.

        **Arguments:**

        - `rng_key`: an int seed or a JAX key.
        - `temperature`: 1 samples; 0 gives the most probable joint value (Viterbi-like MAP).
        - `group_by_chain`: keep the chain axis, (C, T, ...), as in `get_samples`.

        Raises `ValueError` when the model has no enumerated sites, or when they are inside
        `numpyro.contrib.control_flow.scan` (NumPyro's `infer_discrete` does not support it).
        """
        if self.discrete is None:
            raise ValueError(
                "The model has no discrete sites marked for enumeration "
                "(infer={'enumerate': 'parallel'}), so there is nothing to infer_discrete."
            )
        draws = self.discrete.sample(self.samples, self.latent_sites, rng_key, temperature)
        if group_by_chain:
            return draws
        return {k: v.reshape((-1,) + v.shape[2:]) for k, v in draws.items()}

    def to_arviz(self, *, api: str | None = None):
        """An ArviZ object: `InferenceData` with arviz 0.x, `xarray.DataTree` with arviz >= 1.

        Groups `posterior` (every site of `get_samples`) and `sample_stats` (the per-draw
        statistics); the per-chain solver statistics are attributes. `api` forces `"0"` or `"1"`
        (see `pnmcmc.sampling.arviz_io`).
        """
        stats = {k: self.sample_stats[k] for k in _PER_DRAW if k in self.sample_stats}
        return arviz_io.from_dict(
            {"posterior": self.samples, "sample_stats": stats}, attrs=self._attrs(), api=api
        )

    def summary(self, *, api: str | None = None):
        """ArviZ's summary of the posterior: mean, sd, mcse_mean, ess_bulk, ess_tail, r_hat."""
        return arviz_io.summary(self.to_arviz(api=api), api=api)

    def print_summary(self, *, api: str | None = None) -> None:
        """Print the ArviZ summary, the convergence checks, and how the draws were computed (solver,
        iterations, LLE, times)."""
        import pandas as pd

        with pd.option_context("display.max_rows", 200, "display.width", 120, "display.precision", 3):
            print(self.summary(api=api))
        print(self.describe())

    def describe(self) -> str:
        """A few lines on the convergence checks and on how the draws were obtained."""
        st = {k: np.asarray(v) for k, v in self.sample_stats.items()}
        statuses = ", ".join(
            f"{Status(int(code)).name.lower()} x{int(n)}"
            for code, n in zip(*np.unique(st["status"], return_counts=True), strict=True)
        )
        lines = [
            f"{self.num_chains} chains x {self.num_draws} draws, kernel {_kernel_name(self.kernel)}, "
            f"solver {_solver_name(self.solver)} ({self.solver_reason})",
            f"Newton iterations per chain {st['num_iterations'].tolist()} (warmup "
            f"{st['warmup_iterations'].tolist()}), certificate <= {np.nanmax(st['residual']):.2g}, "
            f"{statuses}",
            f"largest Lyapunov exponent per chain {np.array2string(st['lle'], precision=4)}",
            f"step size {np.array2string(np.asarray(self.warmup.step_size), precision=4)}, acceptance "
            f"{np.array2string(st['acceptance_rate'].mean(axis=1), precision=3)}, divergent "
            f"{st['num_divergent'].tolist()}",
            f"time: warmup ({self.warmup.method}) {self.warmup_time:.3g} s, sampling "
            f"{self.sampling_time:.3g} s, compilation {self.timings['compile']:.3g} s"
            + (f", solver choice {self.timings['solver_choice']:.3g} s" if self.solver_choice else ""),
        ]
        if self.discrete is not None:
            d = self.discrete
            left_out = (
                f", deterministic sites {list(d.dependent)} that depend on them left out"
                if d.dependent
                else ""
            )
            how = (
                "inside scan, which infer_discrete() does not support"
                if d.in_scan
                else "infer_discrete() draws them"
            )
            lines.append(f"enumerated discrete sites {list(d.names)} summed out{left_out}; {how}")
        if self.convergence is not None:
            lines.append(self.convergence.describe())
        if self.solver_choice is not None:
            predicted = st["predicted_iterations"].tolist()
            lines.append(
                f"solver choice (predicted iterations {predicted}):\n{self.solver_choice.describe()}"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        sites = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in self.samples.items())
        return (
            f"SampleResult({self.num_chains} chains x {self.num_draws} draws; {sites}; "
            f"solver {_solver_name(self.solver)})"
        )

    def _attrs(self) -> dict:
        st = self.sample_stats
        return {
            "inference_library": "pnmcmc",
            "kernel": _kernel_name(self.kernel),
            "solver": _solver_name(self.solver),
            "solver_reason": self.solver_reason,
            "warmup_method": self.warmup.method,
            "warmup_time": self.warmup_time,
            "sampling_time": self.sampling_time,
            "newton_iterations": np.asarray(st["num_iterations"]).tolist(),
            "certificate": np.asarray(st["residual"], float).tolist(),
            "status": [Status(int(s)).name for s in np.asarray(st["status"])],
            "sequential_steps": np.asarray(st["sequential_steps"]).tolist(),
            "front_limited": np.asarray(st["front_limited"]).astype(int).tolist(),
            "lle": np.asarray(st["lle"], float).tolist(),
            **(
                {}
                if self.solver_choice is None
                else {
                    "solver_choice": self.solver_choice.describe(),
                    "predicted_iterations": np.asarray(st["predicted_iterations"]).tolist(),
                    "solver_choice_time": float(self.timings["solver_choice"]),
                }
            ),
        }


def _solver_name(solver) -> str:
    segment = getattr(solver, "segment", 1)
    return type(solver).__name__ + (f"(segment={segment})" if segment > 1 else "")


def _kernel_name(kernel) -> str:
    return str(getattr(kernel, "name", type(kernel).__name__))
