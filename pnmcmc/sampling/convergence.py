"""Convergence checks after every run: did the chains sample the posterior, and if not, what to try.

An exact chain is not a converged one: pnmcmc certifies that the parallel chain equals the
sequential chain, and these checks ask whether that chain has explored the posterior. The
statistics are ArviZ's (through `pnmcmc.sampling.arviz_io`, so either ArviZ API works); the thresholds are
those of Vehtari et al. (2021, "Rank-normalization, folding, and localization") and Stan:

| check | fails when | computed from |
|---|---|---|
| `r_hat` | rank-normalised split R-hat > 1.01 | each parameter |
| `ess_bulk`, `ess_tail` | bulk or tail ESS < 100 per chain (total over chains) | each parameter |
| `divergences` | any divergent transition | `sample_stats["diverging"]` |
| `e_bfmi` | E-BFMI < 0.3 in a chain | `sample_stats["energy"]` (kernels with momentum) |
| `tree_depth` | a NUTS transition stopped at the maximum tree depth | `sample_stats["tree_depth"]` |

Parameters are the elements of every site in `SampleResult.samples`, latent (constrained) and
deterministic, the rows of `print_summary()`: a deterministic site can mix worse than any latent
one (eight schools' `theta`). Elements of a deterministic site that never change (the fixed zeros
of a Cholesky factor) are not random and are left out. With one chain, R-hat compares the
chain's two halves (ArviZ needs two chains, and splits each again). With fewer than 4 draws per
chain ArviZ cannot estimate R-hat or ESS: they are NaN, and NaN fails (as does the R-hat of
draws that never moved).

`check_convergence` takes plain arrays; `parallel_sample` and `sequential_sample` call
`with_convergence` on their result, which stores the record as `SampleResult.convergence` and
emits one `ConvergenceWarning` (at the caller's line) naming every failed check.
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings

import numpy as np

from ..engine.reporting import PnmcmcWarning, find_stack_level
from . import arviz_io

# Every call's checks use ArviZ, which takes seconds to import: imported with pnmcmc, not in a call.
arviz_io.load()

__all__ = [
    "EBFMI_MIN",
    "ESS_PER_CHAIN_MIN",
    "MIN_DRAWS",
    "RHAT_MAX",
    "Check",
    "ConvergenceDiagnostics",
    "ConvergenceWarning",
    "check_convergence",
    "diagnose",
    "find_stack_level",
    "max_tree_depth",
    "with_convergence",
]

RHAT_MAX = 1.01
"""Split R-hat above this fails (Vehtari et al. 2021)."""
ESS_PER_CHAIN_MIN = 100
"""Bulk and tail ESS below this many per chain (in total, times the number of chains) fail."""
EBFMI_MIN = 0.3
"""E-BFMI below this in any chain fails (Stan's threshold)."""
MIN_DRAWS = 4
"""ArviZ estimates R-hat and ESS from at least this many draws per chain (per half-chain for the
R-hat of a single chain)."""
_WORST = 3  # parameters or chains named per failed check


class ConvergenceWarning(PnmcmcWarning):
    """The chains may not have converged: a convergence check failed (split R-hat, bulk/tail ESS,
    divergences, E-BFMI, NUTS tree depth). The draws are exact draws of the chain, but they may
    not represent the posterior. The message gives the numbers, the worst parameters and what to
    try; `SampleResult.convergence` holds the same checks as data."""


@dataclasses.dataclass(frozen=True)
class Check:
    """One convergence check: a value per parameter (or per chain), and the threshold it must meet.

    **Fields:**

    - `name`: `"r_hat"`, `"ess_bulk"`, `"ess_tail"`, `"divergences"`, `"e_bfmi"` or `"tree_depth"`.
    - `title`: what is measured, in words.
    - `threshold`, `direction`: a value passes when `value <= threshold` (`"max"`) or
      `value >= threshold` (`"min"`); NaN never passes.
    - `labels`: the parameters (`"theta[0]"`, ArviZ's names) or chains (`"chain 0"`) measured.
    - `values`: one value per label (float array).
    - `note`: context for the numbers (totals, or why a value could not be computed).
    """

    name: str
    title: str
    threshold: float
    direction: str
    labels: tuple
    values: np.ndarray
    note: str = ""

    @property
    def ok(self) -> np.ndarray:
        """Whether each value passes (bool, one per label)."""
        with np.errstate(invalid="ignore"):
            if self.direction == "max":
                return self.values <= self.threshold
            return self.values >= self.threshold

    @property
    def passed(self) -> bool:
        return bool(np.all(self.ok))

    @property
    def failing(self) -> tuple:
        """`(label, value)` of every failing parameter or chain, worst first (NaN first)."""
        bad = np.flatnonzero(~self.ok)
        values = self.values[bad] if self.direction == "max" else -self.values[bad]
        badness = np.where(np.isnan(values), np.inf, values)
        order = bad[np.argsort(-badness, kind="stable")]
        return tuple((self.labels[i], float(self.values[i])) for i in order)

    @property
    def worst(self) -> tuple:
        """The labels of the (up to 3) worst failing parameters or chains."""
        return tuple(label for label, _ in self.failing[:_WORST])

    def describe(self) -> str:
        """One line: the outcome, the threshold, and the worst values."""
        if self.name in _COUNTS:  # counts of transitions per chain, which must all be 0
            failing = ", ".join(f"{label}: {v:.0f}" for label, v in self.failing)
            return f"{self.title}: {np.nansum(self.values):.0f} {self.note}" + (
                f" ({failing})" if failing else ""
            )
        if not self.labels:
            return f"{self.title}: nothing to check"
        if self.note and np.all(np.isnan(self.values)):
            return f"{self.title}: not computable ({self.note})"
        op = {"max": (">", "<="), "min": ("<", ">=")}[self.direction]
        unit = "chains" if self.name == "e_bfmi" else "parameters"
        note = f" ({self.note})" if self.note else ""
        if self.passed:
            i = int(np.argmax(self.values) if self.direction == "max" else np.argmin(self.values))
            return (
                f"{self.title} {op[1]} {_fmt(self.name, self.threshold)}{note} in all {len(self.labels)} "
                f"{unit}; {'highest' if self.direction == 'max' else 'lowest'} {self.labels[i]} "
                f"{_fmt(self.name, self.values[i])}"
            )
        failing = self.failing
        shown = ", ".join(f"{label} {_fmt(self.name, v)}" for label, v in failing[:_WORST])
        more = ", ..." if len(failing) > _WORST else ""
        return (
            f"{self.title} {op[0]} {_fmt(self.name, self.threshold)}{note} in {len(failing)} of "
            f"{len(self.labels)} {unit}: {shown}{more}"
        )


_COUNTS = ("divergences", "tree_depth")


def _count(n, noun) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _fmt(name, value) -> str:
    value = float(value)
    if np.isnan(value):
        return "nan"
    if name == "r_hat":
        return f"{value:.3f}"
    if name == "e_bfmi":
        return f"{value:.2f}"
    return f"{value:.0f}"


@dataclasses.dataclass(frozen=True)
class ConvergenceDiagnostics:
    """The convergence checks of a run, as data (`SampleResult.convergence`).

    **Fields:**

    - `num_chains`, `num_draws`: the draws checked (per chain).
    - `checks`: the [`Check`][pnmcmc.sampling.convergence.Check]s that apply, in a fixed order; index by
      name: `diagnostics["r_hat"].worst`.
    - `skipped`: `{name: reason}` for checks that do not apply (E-BFMI without momentum, tree depth
      without NUTS).
    - `advice`: what to try, one item per remedy, for the failed checks (empty when all passed).
    """

    num_chains: int
    num_draws: int
    checks: tuple
    skipped: dict
    advice: tuple

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> tuple:
        """The checks that failed."""
        return tuple(c for c in self.checks if not c.passed)

    def __getitem__(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        if name in self.skipped:
            raise KeyError(f"{name}: not checked, {self.skipped[name]}")
        raise KeyError(f"{name}: no such check; checks are {[c.name for c in self.checks]}")

    def describe(self) -> str:
        """A few lines: every check with its outcome, then what to try if any failed."""
        head = "convergence: all checks passed" if self.passed else "convergence: CHECKS FAILED"
        lines = [f"{head} ({_count(self.num_chains, 'chain')} x {_count(self.num_draws, 'draw')})"]
        lines += [f"  {'ok  ' if c.passed else 'FAIL'} {c.describe()}" for c in self.checks]
        lines += [f"  n/a  {name}: {reason}" for name, reason in self.skipped.items()]
        if self.advice:
            lines.append("  try: " + "; ".join(self.advice))
        return "\n".join(lines)

    def message(self) -> str:
        """The text of the `ConvergenceWarning`: the failed checks and what to try."""
        lines = [
            f"The chains may not have converged ({_count(self.num_chains, 'chain')} x "
            f"{_count(self.num_draws, 'draw')}): "
            f"{len(self.failed)} of {len(self.checks)} convergence checks failed."
        ]
        lines += [f"  - {c.describe()}" for c in self.failed]
        lines.append("Try: " + "; ".join(self.advice) + ".")
        lines.append("The same checks are in result.convergence and result.print_summary().")
        return "\n".join(lines)


def check_convergence(
    draws: dict,
    *,
    diverging=None,
    energy=None,
    tree_depth=None,
    max_tree_depth: int | None = None,
    deterministic=(),
    kernel: str | None = None,
    api: str | None = None,
) -> ConvergenceDiagnostics:
    """Run the convergence checks on plain arrays.

    **Arguments:**

    - `draws`: `{name: array (C, T, ...)}`, the parameters (every element is checked).
    - `diverging`: (C, T) bools, or None to skip the divergence check.
    - `energy`: (C, T) Hamiltonian energy of each draw, or None (a kernel without momentum, whose
      `energy` is just `-lp`: E-BFMI says nothing about it).
    - `tree_depth`, `max_tree_depth`: NUTS's (C, T) number of trajectory doublings and its
      maximum, or None (not NUTS).
    - `deterministic`: names in `draws` that are functions of the others; their elements that are
      constant over every draw are not checked. (A constant element of any other site is a chain
      that never moved: its R-hat is NaN, which fails.)
    - `kernel`: the kernel's name, for the advice (e.g. suggesting NUTS instead of MALA).
    - `api`: the ArviZ API, see `pnmcmc.sampling.arviz_io`.

    **Returns:** a [`ConvergenceDiagnostics`][pnmcmc.sampling.convergence.ConvergenceDiagnostics]; nothing
    is warned.
    """
    draws = {str(k): np.asarray(v, float) for k, v in draws.items()}
    if not draws:
        raise ValueError("check_convergence: draws is empty.")
    shapes = {k: v.shape for k, v in draws.items()}
    if any(v.ndim < 2 for v in draws.values()) or len({s[:2] for s in shapes.values()}) != 1:
        raise ValueError(f"check_convergence: arrays need the same leading (chain, draw) axes, got {shapes}.")
    num_chains, num_draws = next(iter(shapes.values()))[:2]

    labels = _labels(draws)
    keep = _random(draws, deterministic)
    checks = [_rhat(draws, labels, num_chains, num_draws, api)]
    checks += _ess(draws, labels, num_chains, num_draws, api)
    checks = [dataclasses.replace(c, labels=_select(c.labels, keep), values=c.values[keep]) for c in checks]
    chains = tuple(f"chain {c}" for c in range(num_chains))
    transitions = num_chains * num_draws
    skipped = {}
    if diverging is not None:
        counts = np.asarray(diverging, bool).reshape(num_chains, num_draws).sum(axis=1)
        checks.append(
            Check(
                "divergences",
                "divergent transitions",
                0,
                "max",
                chains,
                counts.astype(float),
                f"of {transitions}",
            )
        )
    else:
        skipped["divergences"] = "no divergence flags given"
    if energy is not None:
        checks.append(_ebfmi(np.asarray(energy, float).reshape(num_chains, num_draws), chains, api))
    else:
        skipped["e_bfmi"] = "no Hamiltonian energy (a kernel without momentum, such as MALA)"
    if tree_depth is not None and max_tree_depth is not None:
        hits = (np.asarray(tree_depth).reshape(num_chains, num_draws) >= max_tree_depth).sum(axis=1)
        checks.append(
            Check(
                "tree_depth",
                f"transitions that hit NUTS's maximum tree depth ({max_tree_depth})",
                0,
                "max",
                chains,
                hits.astype(float),
                f"of {transitions}",
            )
        )
    else:
        skipped["tree_depth"] = "no NUTS tree depth (not NUTS)"
    failed = {c.name for c in checks if not c.passed}
    return ConvergenceDiagnostics(
        num_chains=int(num_chains),
        num_draws=int(num_draws),
        checks=tuple(checks),
        skipped=skipped,
        advice=_advice(failed, num_draws, kernel),
    )


def _labels(draws):
    """ArviZ's row names: `site` for scalars, `site[i, j]` (0-based) for elements, in C order."""
    labels = {}
    for name, v in draws.items():
        shape = v.shape[2:]
        elements = (f"{name}[{', '.join(map(str, i))}]" for i in np.ndindex(shape))
        labels[name] = list(elements) if shape else [name]
    return labels


def _random(draws, deterministic) -> np.ndarray:
    """Which elements (flat, in label order) to check: all but constant elements of deterministic sites."""
    keep = []
    for name, v in draws.items():
        flat = v.reshape(v.shape[:2] + (int(np.prod(v.shape[2:])),))
        constant = np.all(flat == flat[:1, :1], axis=(0, 1)) if name in deterministic else False
        keep.append(np.broadcast_to(~np.asarray(constant), flat.shape[2:]))
    return np.concatenate(keep)


def _select(labels, keep):
    return tuple(label for label, k in zip(labels, keep, strict=True) if k)


def _flat(per_variable, labels):
    values = [np.asarray(per_variable[name], float).ravel() for name in labels]
    return tuple(label for names in labels.values() for label in names), np.concatenate(values)


def _nan_for(labels):
    return tuple(label for names in labels.values() for label in names), np.full(
        sum(len(v) for v in labels.values()), np.nan
    )


def _rhat(draws, labels, num_chains, num_draws, api):
    note = ""
    if num_chains == 1:
        # ArviZ needs two chains: compare the chain's two halves (ArviZ splits each once more).
        half = num_draws // 2
        draws = {k: v[0, : 2 * half].reshape((2, half) + v.shape[2:]) for k, v in draws.items()}
        per_chain = half
        note = "one chain: its halves as two chains"
    else:
        per_chain = num_draws
    if per_chain < MIN_DRAWS:
        names, values = _nan_for(labels)
        note = f"needs {MIN_DRAWS * (2 if num_chains == 1 else 1)} draws per chain, got {num_draws}"
    else:
        data = arviz_io.from_dict({"posterior": draws}, api=api)
        names, values = _flat(arviz_io.rhat(data, api=api), labels)
    return Check("r_hat", "split R-hat", RHAT_MAX, "max", names, values, note)


def _ess(draws, labels, num_chains, num_draws, api):
    threshold = ESS_PER_CHAIN_MIN * num_chains
    note = f"{ESS_PER_CHAIN_MIN} per chain"
    checks = []
    data = arviz_io.from_dict({"posterior": draws}, api=api) if num_draws >= MIN_DRAWS else None
    for method in ("bulk", "tail"):
        if data is None:
            names, values = _nan_for(labels)
            note = f"{ESS_PER_CHAIN_MIN} per chain; needs {MIN_DRAWS} draws per chain, got {num_draws}"
        else:
            names, values = _flat(arviz_io.ess(data, method=method, api=api), labels)
        checks.append(Check(f"ess_{method}", f"{method} ESS", threshold, "min", names, values, note))
    return checks


def _ebfmi(energy, chains, api):
    num_draws = energy.shape[1]
    if num_draws < MIN_DRAWS:
        values = np.full(len(chains), np.nan)
        note = f"needs {MIN_DRAWS} draws per chain, got {num_draws}"
    else:
        data = arviz_io.from_dict({"sample_stats": {"energy": energy}}, api=api)
        values, note = arviz_io.bfmi(data, api=api), ""
    return Check("e_bfmi", "E-BFMI", EBFMI_MIN, "min", chains, np.asarray(values, float), note)


def _advice(failed, num_draws, kernel) -> tuple:
    """What to try, most likely remedy first, each said once."""
    advice = []
    mixing = bool(failed & {"r_hat", "ess_bulk", "ess_tail"})
    if mixing:
        if num_draws < ESS_PER_CHAIN_MIN:
            advice.append(
                f"more draws (n_steps): {num_draws} per chain cannot give an ESS of "
                f"{ESS_PER_CHAIN_MIN} per chain, and autocorrelated chains need several times more"
            )
            if failed <= {"ess_bulk", "ess_tail"}:  # nothing but the run's length is known to be wrong
                return tuple(advice)
        else:
            advice.append("more draws (n_steps) and a longer warmup (num_warmup)")
        if kernel is not None and kernel not in ("nuts",):
            advice.append(f"kernel='nuts', which usually mixes much better than {kernel!r}")
    if mixing or "tree_depth" in failed or "e_bfmi" in failed:
        advice.append("dense_mass=True when parameters are strongly correlated")
    if "divergences" in failed:
        advice.append(
            "a higher target acceptance, hence a smaller step size "
            "(warmup=pnmcmc.sampling.warmup.WindowAdaptation(target_acceptance=0.95))"
        )
    if failed & {"r_hat", "ess_bulk", "ess_tail", "divergences", "e_bfmi"}:
        advice.append(
            "a reparameterisation: e.g. non-centring a hierarchical model "
            "(numpyro.infer.reparam.LocScaleReparam(0)), so that no scale parameter funnels the others"
        )
    if "tree_depth" in failed:
        advice.append("deeper NUTS trees: kernel=pnmcmc.NUTS(1.0, max_num_doublings=12)")
    return tuple(advice)


# --- On a SampleResult --------------------------------------------------------------------------------


def max_tree_depth(kernel) -> int | None:
    """NUTS's maximum number of trajectory doublings for a pnmcmc kernel, or None if not NUTS.

    `pnmcmc.NUTS` passes `max_num_doublings` to BlackJAX; a `BlackJAX(blackjax.nuts, ...)` kernel
    that does not set it gets BlackJAX's own default, read from its kernel's signature.
    """
    if getattr(kernel, "name", None) != "nuts":
        return None
    params = getattr(kernel, "params", {})
    if "max_num_doublings" in params:
        return int(params["max_num_doublings"])
    import blackjax

    return int(inspect.signature(blackjax.nuts.build_kernel()).parameters["max_num_doublings"].default)


def diagnose(result, *, api: str | None = None) -> ConvergenceDiagnostics:
    """The convergence checks of a `SampleResult` (every site of its samples, and its statistics)."""
    st = {k: np.asarray(v) for k, v in result.sample_stats.items()}
    draws = dict(result.samples)
    energy = st.get("energy")
    # Kernels without momentum (MALA) report energy = -lp exactly: no Hamiltonian, no E-BFMI.
    if energy is not None and "lp" in st and np.array_equal(energy, -st["lp"]):
        energy = None
    depth = max_tree_depth(result.kernel)
    return check_convergence(
        draws,
        diverging=st.get("diverging"),
        energy=energy,
        tree_depth=st.get("tree_depth") if depth is not None else None,
        max_tree_depth=depth,
        deterministic=tuple(site for site in draws if site not in result.latent_sites),
        kernel=getattr(result.kernel, "name", None),
        api=api,
    )


def with_convergence(result):
    """`result` with its `convergence` checks, after one `ConvergenceWarning` if any failed.

    Called once at the end of `parallel_sample` / `sequential_sample`.
    """
    diagnostics = diagnose(result)
    if not diagnostics.passed:
        warnings.warn(diagnostics.message(), ConvergenceWarning, stacklevel=find_stack_level())
    return dataclasses.replace(result, convergence=diagnostics)
