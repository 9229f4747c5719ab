"""Validate the model zoo (`pnmcmc.models`) with NumPyro's own NUTS against posteriordb's references.

For each posteriordb posterior: 4 chains of NUTS (float64), then per parameter the mean error in
combined Monte Carlo standard errors and the relative sd error (formula in
`pnmcmc.models.reference`); a model passes when every |z| <= 4 and every |sd error| <= 10 %.
The eight schools and German credit models have no reference; their NUTS runs are summarised
(R-hat, ESS, divergences) to show that they sample. Takes a few minutes on 2 CPU cores:

    XLA_FLAGS=--xla_cpu_multi_thread_eigen=false python benchmarks/validate_models.py \
        --output benchmarks/results/models-reference.md
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
import zipfile
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
from numpyro import handlers  # noqa: E402
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin  # noqa: E402
from numpyro.infer import MCMC, NUTS, init_to_median, init_to_uniform  # noqa: E402
from scipy.special import gammaln  # noqa: E402

from pnmcmc import models  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "posteriordb"


INITS = {"median": init_to_median, "uniform": init_to_uniform}


def run_nuts(posterior, *, seed, num_warmup, num_samples, num_chains, init):
    """NUTS draws grouped by chain, the number of divergences and the wall time (compile included)."""
    mcmc = MCMC(
        NUTS(posterior.model, init_strategy=INITS[init]),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method="sequential",
        progress_bar=False,
    )
    start = time.perf_counter()
    key = jax.random.key(seed)
    mcmc.run(key, *posterior.model_args, extra_fields=("diverging",), **posterior.model_kwargs)
    samples = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
    seconds = time.perf_counter() - start
    divergences = int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum())
    return samples, divergences, seconds


def reference_min_ess(name):
    """Smallest ESS over the parameters of the full reference draws, when they are at hand."""
    path = SHARED / name / "reference_draws.json.zip"
    if not path.exists():
        return None
    with zipfile.ZipFile(path) as archive:
        chains = json.load(io.BytesIO(archive.read(archive.namelist()[0])))
    return min(
        float(effective_sample_size(np.asarray([chain[column] for chain in chains]))) for column in chains[0]
    )


# Linear regressions y ~ N(X beta, sigma) with flat priors on beta and on sigma > 0.
FLAT_REGRESSIONS = (
    "earnings-logearn_height",
    "mesquite-logmesquite",
    "nes1976-nes",
    "kidiq_with_mom_work-kidscore_interaction_c",
)


def exact_flat_regression(posterior):
    """Exact posterior (mean, sd) of every column of a flat-prior linear regression.

    With p(beta, sigma) = const, beta | y is multivariate t with nu = N - p - 1 degrees of freedom,
    mean the least-squares estimate b and covariance S / (nu - 2) (X^T X)^-1 (S the residual sum of
    squares), and sigma^2 | y is inverse gamma with shape a = nu / 2 and scale S / 2, so that
    E sigma = sqrt(S / 2) Gamma(a - 1/2) / Gamma(a) and E sigma^2 = S / (nu - 2). The design matrix is
    read off the model itself: the mean of its observed Normal site at beta = 0 and at unit vectors.
    """
    size = posterior.site_shapes["beta"][0]

    def observed_mean(beta):
        model = handlers.substitute(posterior.model, data={"beta": beta, "sigma": jnp.ones(())})
        model_trace = handlers.trace(model).get_trace(*posterior.model_args, **posterior.model_kwargs)
        (site,) = [site for site in model_trace.values() if site["type"] == "sample" and site["is_observed"]]
        return np.asarray(site["fn"].loc), np.asarray(site["value"])

    intercept, y = observed_mean(jnp.zeros(size))
    design = np.stack([observed_mean(jnp.eye(size)[j])[0] - intercept for j in range(size)], axis=1)
    b, *_ = np.linalg.lstsq(design, y - intercept, rcond=None)
    residual = float(np.sum((y - intercept - design @ b) ** 2))
    nu = y.shape[0] - size - 1
    sd = np.sqrt(residual / (nu - 2) * np.diag(np.linalg.inv(design.T @ design)))
    exact = {f"beta[{j + 1}]": (float(b[j]), float(sd[j])) for j in range(size)}
    a = nu / 2
    mean_sigma = np.sqrt(residual / 2) * np.exp(gammaln(a - 0.5) - gammaln(a))
    exact["sigma"] = (float(mean_sigma), float(np.sqrt(residual / (nu - 2) - mean_sigma**2)))
    return exact


def exact_row(posterior, samples, check, reference_ess):
    """How far our draws and the reference are from the exact posterior, in their own MCSEs."""
    exact = exact_flat_regression(posterior)
    ours, ref, sd_ours, sd_ref = [], [], [], []
    for column, (mean, sd) in exact.items():
        c = check.columns[column]
        ours.append(abs(c.mean - mean) / (c.sd / np.sqrt(c.ess)))
        ref.append(abs(c.reference_mean - mean) / (c.reference_sd / np.sqrt(reference_ess)))
        sd_ours.append(abs(c.sd / sd - 1))
        sd_ref.append(abs(c.reference_sd / sd - 1))
    return f"| {posterior.name} | {max(ours):.2f} | {max(sd_ours):.1%} | {max(ref):.2f} | {max(sd_ref):.1%} |"


def arviz_worst_z(posterior, samples, reference_ess):
    """Worst |z| with ArviZ's MCSE of the mean (split chains) in place of NumPyro's ESS, as a cross-check."""
    import arviz as az

    worst = 0.0
    for column, draws in posterior.to_columns(samples).items():
        if column not in posterior.reference:
            continue
        mean, sd = posterior.reference[column]
        mcse = float(az.mcse(np.asarray(draws), method="mean"))
        z = (float(np.mean(draws)) - mean) / np.sqrt(mcse**2 + sd**2 / reference_ess)
        worst = max(worst, abs(z))
    return worst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-warmup", type=int, default=1000)
    parser.add_argument("--num-samples", type=int, default=2000)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference-ess", type=float, default=5000.0)
    parser.add_argument(
        "--init",
        choices=sorted(INITS),
        default="median",
        help="NUTS initialisation: prior medians (uniform for flat priors) or NumPyro's default uniform",
    )
    parser.add_argument("--names", nargs="*", default=None, help="posteriordb names (default: all)")
    parser.add_argument("--output", type=Path, default=None, help="write the Markdown report here")
    args = parser.parse_args(argv)
    names = models.POSTERIORDB_NAMES if args.names is None else args.names
    settings = dict(
        seed=args.seed,
        num_warmup=args.num_warmup,
        num_samples=args.num_samples,
        num_chains=args.num_chains,
        init=args.init,
    )

    load_start = os.getloadavg()[0]
    rows, details, failures, exact_rows = [], [], [], []
    for name in names:
        posterior = models.posteriordb(name)
        samples, divergences, seconds = run_nuts(posterior, **settings)
        check = models.check_reference(posterior, samples, reference_ess=args.reference_ess)
        ref_ess = reference_min_ess(name)
        verdict = "pass" if check.passes() else "FAIL"
        if not check.passes():
            failures.append(name)
        rows.append(
            f"| {name} | {len(check.columns)} | {check.worst_z:.2f} | "
            f"{arviz_worst_z(posterior, samples, args.reference_ess):.2f} | {check.worst_sd_error:.1%} | "
            f"{check.min_ess:.0f} | {'n/a' if ref_ess is None else f'{ref_ess:.0f}'} | {divergences} | "
            f"{seconds:.1f} | {verdict} |"
        )
        details.append(f"### {name}\n\n{check.describe()}\n")
        print(rows[-1], flush=True)
        if name in FLAT_REGRESSIONS:
            exact_rows.append(exact_row(posterior, samples, check, 10_000))
            print(exact_rows[-1], flush=True)

    others = []
    for posterior in (models.eight_schools(), models.eight_schools_centered(), models.german_credit()):
        samples, divergences, seconds = run_nuts(posterior, **settings)
        columns = posterior.to_columns(samples)
        rhat = max(float(split_gelman_rubin(np.asarray(c))) for c in columns.values())
        ess = min(float(effective_sample_size(np.asarray(c))) for c in columns.values())
        head = ", ".join(
            f"{c} {np.mean(columns[c]):.3g} ({np.std(columns[c], ddof=1):.3g})" for c in list(columns)[:2]
        )
        others.append(
            f"| {posterior.name} | {len(columns)} | {rhat:.3f} | {ess:.0f} | {divergences} | {seconds:.1f} | "
            f"{head} |"
        )
        print(others[-1], flush=True)

    command = (
        "XLA_FLAGS=--xla_cpu_multi_thread_eigen=false python benchmarks/validate_models.py "
        + " ".join(sys.argv[1:])
    ).strip()
    report = "\n".join(
        [
            "# pnmcmc.models against posteriordb references (NumPyro NUTS)",
            "",
            f"Command: `{command}`",
            "",
            f"Machine: {platform.machine()} CPU, {os.cpu_count()} cores; jax {jax.__version__}, "
            f"numpyro {numpyro.__version__}; float64. NUTS: {args.num_chains} chains (sequential), "
            f"{args.num_warmup} warmup + {args.num_samples} draws each, seed {args.seed}, "
            f"init_to_{args.init}. Load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} "
            "at the end (other jobs share the machine, so the times are upper bounds).",
            "",
            "z = (mean - reference mean) / sqrt(sd^2 / ESS + reference sd^2 / ESS_ref), ESS = NumPyro's "
            f"effective_sample_size over the chains, ESS_ref = {args.reference_ess:.0f} credited to the "
            "10 000 reference draws; 'ArviZ z' uses arviz.mcse(method='mean') (split chains) for the "
            "first term. sd error = sd / reference sd - 1. Pass: every |z| <= 4 and every "
            "|sd error| <= 10 %. 'ref ESS' is the smallest ESS of the full reference draws "
            "(shared/data), which checks that ESS_ref is conservative. Time includes compilation.",
            "",
            "| posterior | params | worst abs z | ArviZ z | worst abs sd error | min ESS | ref ESS | "
            "divergences | time (s) | verdict |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
            *rows,
            "",
            "Exact check: the flat-prior linear regressions have a closed-form posterior (beta multivariate "
            "t around the least-squares fit, sigma^2 inverse gamma; see exact_flat_regression). Worst "
            "|mean - exact mean| in units of sd / sqrt(ESS), for our draws (our ESS) and for the reference "
            "(ESS 10 000), and worst relative sd error against the exact sd:",
            "",
            "| posterior | ours: worst z | ours: worst sd error | reference: worst z | "
            "reference: worst sd error |",
            "|---|---:|---:|---:|---:|",
            *exact_rows,
            "",
            "Models without a reference (same NUTS settings): worst split R-hat and smallest ESS over all "
            "columns (deterministic sites included), and the first two columns as mean (sd).",
            "",
            "| model | columns | max R-hat | min ESS | divergences | time (s) | first columns |",
            "|---|---:|---:|---:|---:|---:|---|",
            *others,
            "",
            "Notes:",
            "",
            "- arma-arma11 needs a start with |theta| < 1: for |theta| > 1 its error recursion explodes "
            "(log density about -1e21) and a chain started there can freeze. With `--init uniform` "
            "(NumPyro's default, theta drawn in (-2, 2)) and seed 0, 1 of 4 chains stayed at theta = "
            "-1.16, phi = -1.07 and the check failed (worst sd error 4750 %); the other three chains "
            "matched the reference. Hence init_to_median (prior medians: theta = 0) here.",
            "- gp_pois_regr-gp_regr factorises its 11 x 11 covariance with pnmcmc.models._small_linalg "
            "(a lax.fori_loop Cholesky and forward substitution) instead of batched LAPACK, which can "
            "deadlock on CPU when two batched calls run in one jitted program.",
            "- eight_schools_centered is the funnel: its divergences are expected (the non-centred form "
            "has almost none).",
            "",
            "## Per parameter",
            "",
            *details,
        ]
    )
    if args.output is not None:
        args.output.write_text(report + "\n")
    print("failures:", failures or "none")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
