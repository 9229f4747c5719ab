r"""Twins: when `parallel_sample` and `sequential_sample` of the same seed agree digit by digit.

Both functions draw the same noise from the same key, and every parallel solve satisfies each step
$x_t = f(x_{t-1}, \xi_t)$ to its tolerance, so the two results differ only by differences of the
size of round-off, introduced wherever the parallel and the sequential computations round
differently. Whether those stay that small (**digit twins**: the same draws to many digits) or
grow until the two runs agree only in distribution (**statistical twins**: two exact chains of
the same kernel, equally valid) depends on how much the run amplifies them. Three amplifiers are
checked, per chain, and recorded on the result as a [`TwinRecord`][pnmcmc.sampling.twins.TwinRecord]
(`SampleResult.twins`):

1. **float32.** Round-off is $\sim 10^{-7}$ relative, and an adaptive warmup amplifies it (each
   window's draws set the next window's parameters): NumPyro's horseshoe regression, float32,
   adapted step sizes 0.519 / 0.376 in parallel against 0.528 / 0.399 sequentially. A float32 run
   whose warmup adapted anything in parallel windows is a statistical twin only.
2. **The warmup.** With every window's start moved by one ulp (relative $2^{-52}$), a *shadow*
   of the warmup (`WindowAdaptation(twin_check=True)`, the default) carries its own adaptation
   through every window. Its distance from the warmup itself,

   $$S = \max\Big(|\Delta \log h|,\ \max_{ij} \frac{|\Delta m_{ij}|}{\sqrt{m_{ii} m_{jj}}},\
   \max_i \frac{|\Delta x_i|}{\sqrt{m_{ii}}}\Big)$$

   (step size $h$, inverse mass matrix $m$, final position $x$), is the **warmup sensitivity**:
   what one ulp per window does to this warmup. It is measured, not modelled, because the
   amplification is a property of the adaptation's feedback loop (a window's draws set its mean
   acceptance, which sets the next step size through dual averaging, which moves the next
   window's draws) and of the discrete decisions inside the kernel; it ranges from $10^{-14}$ to
   $10^{-1}$ on the same posterior depending on the kernel (posteriordb, float64:
   `benchmarks/results/warmup-twin-cpu.md`; NUTS's dual averaging uses a smaller gain than
   Stan's because with Stan's the loop itself was unstable, see `pnmcmc.sampling.warmup`). The parallel
   warmup differs from the sequential one by up to `WARMUP_ULPS` ulps per window, so their
   adapted parameters are expected to differ by about that multiple of $S$, and the draws by 10
   to 100 times more. A chain with
   $S >$ `SENSITIVITY_LIMIT` = $10^{-10}$ is a statistical twin only. The shadow reuses the
   warmup's compiled programs and never changes its result; it costs up to one more pass over the
   warmup and stops once every chain has moved by more than `pnmcmc.sampling.warmup.SHADOW_STOP`
   ($10^{-3}$; $S$ is then a lower bound). It is skipped where its answer is known: nothing
   adapted ($S = 0$), float32 (rule 1), and `warmup="blackjax"`, which runs the same sequential
   program in both functions (no warmup difference at all).
3. **The sampling chain.** With its largest Lyapunov exponent $\lambda$ (standard error $s$,
   `sample_stats["lle"]`) clearly positive, $\lambda - 2s > 0$, any difference grows along the
   chain: a statistical twin only.

A chain that passes all three is a digit twin: in float64 its draws agree with its twin's to
within about 100 times the larger of $S$ and the solver's tolerance (typically $\le 10^{-8}$).
[`pnmcmc.compare`][pnmcmc.compare] reads both records: when it is given two runs of the
same randomness and configuration it explains, per chain, how far their draws and adapted
parameters are apart and why, and warns ([`TwinWarning`][pnmcmc.sampling.twins.TwinWarning]) when some
chains were not expected to be digit twins, or were expected to be and differ.
"""

from __future__ import annotations

import dataclasses
import enum

import numpy as np

from ..engine.reporting import PnmcmcWarning

__all__ = ["SENSITIVITY_LIMIT", "TwinExpectation", "TwinRecord", "TwinWarning", "explain", "twin_record"]

SENSITIVITY_LIMIT = 1e-10
"""Warmup sensitivity (one ulp per window) above which a float64 chain is a statistical twin only."""
DIGIT_TWIN_TOLERANCE = 1e-6
"""Largest |difference| of the flat draws that `compare` accepts from chains expected to be digit
twins before it warns that they are not (the expected agreement is far tighter, ~1e-8)."""


class TwinWarning(PnmcmcWarning):
    """`compare` was given runs of the same randomness whose chains are not all digit twins: they
    were expected to agree only statistically (the message says which chains and why), or chains
    expected to agree digit by digit do not."""


class TwinExpectation(enum.Enum):
    """What a chain's twin (the same seed with another solver) is expected to give."""

    DIGITS = "digit twin expected"
    """The same draws to many digits (float64, insensitive warmup, contracting chain)."""
    STATISTICAL = "statistical twin only"
    """Draws that agree in distribution, not digit by digit; the reasons say why."""
    UNMEASURED = "not known"
    """The warmup's sensitivity was not measured (`WindowAdaptation(twin_check=False)`)."""


@dataclasses.dataclass(frozen=True)
class TwinRecord:
    """Per chain, whether a twin run is expected to agree digit by digit, and why.

    **Fields:**

    - `expectation`: one [`TwinExpectation`][pnmcmc.sampling.twins.TwinExpectation] per chain.
    - `reasons`: one sentence per chain: the amplifiers that make it a statistical twin, or the
      measured values that make it a digit twin.
    - `warmup_sensitivity`: the measured $S$ per chain (`WarmupResult.sensitivity`), or `None`.
    - `dtype`: the working dtype's name.
    - `fingerprint`: the randomness and configuration (key data, kernel, draws, warmup steps,
      chains, dtype): two results with equal fingerprints are twins of each other.
    """

    expectation: tuple
    reasons: tuple
    warmup_sensitivity: np.ndarray | None
    dtype: str
    fingerprint: tuple

    @property
    def digit_twins(self) -> np.ndarray:
        """(C,) booleans: the chains expected to be digit twins."""
        return np.array([e is TwinExpectation.DIGITS for e in self.expectation])

    def describe(self) -> str:
        """One line per chain: the expectation and its reason."""
        return "\n".join(
            f"chain {c}: {e.value} ({r})"
            for c, (e, r) in enumerate(zip(self.expectation, self.reasons, strict=True))
        )


def twin_record(warmup, lle, lle_stderr, dtype, *, fingerprint: tuple) -> TwinRecord:
    """The [`TwinRecord`][pnmcmc.sampling.twins.TwinRecord] of a run, by the rules of the module docstring.

    **Arguments:**

    - `warmup`: the run's [`WarmupResult`][pnmcmc.sampling.warmup.WarmupResult].
    - `lle`, `lle_stderr`: the sampling chains' largest Lyapunov exponents and standard errors (C,).
    - `dtype`: the working dtype.
    - `fingerprint`: what identifies the run's randomness and configuration (see `TwinRecord`).
    """
    lle, stderr = np.asarray(lle, float), np.asarray(lle_stderr, float)
    sensitivity = None if warmup.sensitivity is None else np.asarray(warmup.sensitivity, float)
    float64 = float(np.finfo(dtype).eps) <= 1e-15
    parallel_adaptation = (
        warmup.method == "parallel" and warmup.num_windows > 0 and not getattr(warmup, "sequential", False)
    )
    adapted = sensitivity is None or not bool(np.all(sensitivity == 0))  # 0 exactly: nothing adapted
    expectations, reasons = [], []
    for c in range(lle.shape[0]):
        statistical, notes = [], []
        unmeasured = False
        if parallel_adaptation and adapted and not float64:
            statistical.append(
                f"{np.dtype(dtype).name}: round-off is amplified through the warmup's adaptation"
            )
        elif parallel_adaptation and sensitivity is None:
            unmeasured = True
            notes.append("warmup sensitivity not measured (WindowAdaptation(twin_check=False))")
        elif parallel_adaptation and adapted:
            s = sensitivity[c]
            if not np.isfinite(s):  # never repaired into a verdict: non-finite is not insensitive
                statistical.append("warmup sensitivity not finite (the shadow reached inf/NaN)")
            elif s > SENSITIVITY_LIMIT:
                bound = "at least " if warmup.sensitivity_windows < warmup.num_windows else ""
                statistical.append(
                    f"sensitive warmup: one ulp per window moved its adapted parameters by {bound}{s:.1e} "
                    f"(> {SENSITIVITY_LIMIT:g})"
                )
            else:
                notes.append(f"warmup sensitivity {s:.1e}")
        if np.isfinite(lle[c]) and lle[c] - 2 * np.nan_to_num(stderr[c], nan=np.inf) > 0:
            statistical.append(f"expanding sampling chain: LLE {lle[c]:.3f} +- {stderr[c]:.3f} > 0")
        elif np.isfinite(lle[c]):
            notes.append(f"sampling LLE {lle[c]:.3f} +- {stderr[c]:.3f}")
        else:
            notes.append("sampling chain solved sequentially")
        if statistical:
            expectations.append(TwinExpectation.STATISTICAL)
            reasons.append("; ".join(statistical))
        else:
            expectations.append(TwinExpectation.UNMEASURED if unmeasured else TwinExpectation.DIGITS)
            reasons.append("; ".join([np.dtype(dtype).name, *notes]))
    return TwinRecord(
        expectation=tuple(expectations),
        reasons=tuple(reasons),
        warmup_sensitivity=sensitivity,
        dtype=np.dtype(dtype).name,
        fingerprint=fingerprint,
    )


def explain(a, b):
    """Per chain, how far two twin results are apart and why: a pandas DataFrame with the largest
    |difference| of the flat draws, the relative step-size and inverse-mass-matrix differences,
    both expectations and their reasons. `None` unless both results carry a
    [`TwinRecord`][pnmcmc.sampling.twins.TwinRecord] with the same fingerprint (runs of the same
    randomness and configuration)."""
    import pandas as pd

    ta, tb = getattr(a, "twins", None), getattr(b, "twins", None)
    if ta is None or tb is None or ta.fingerprint != tb.fingerprint:
        return None
    draws = np.abs(np.asarray(a.positions) - np.asarray(b.positions))
    draws = draws.reshape(draws.shape[0], -1).max(axis=1)
    step = np.abs(np.asarray(a.warmup.step_size) / np.asarray(b.warmup.step_size) - 1.0)
    imm_a, imm_b = np.asarray(a.warmup.inverse_mass_matrix), np.asarray(b.warmup.inverse_mass_matrix)
    scale = np.maximum(np.abs(imm_b), np.finfo(float).tiny)
    mass = (np.abs(imm_a - imm_b) / scale).reshape(imm_a.shape[0], -1).max(axis=1)
    rows = []
    for c in range(draws.shape[0]):
        digits = ta.expectation[c] is TwinExpectation.DIGITS and tb.expectation[c] is TwinExpectation.DIGITS
        worse = ta if ta.expectation[c] is not TwinExpectation.DIGITS else tb
        rows.append(
            {
                "max |diff| draws": float(draws[c]),
                "step size rel. diff": float(step[c]),
                "inverse mass matrix rel. diff": float(mass[c]),
                "expected": TwinExpectation.DIGITS.value if digits else worse.expectation[c].value,
                "why": ta.reasons[c] if digits else worse.reasons[c],
            }
        )
    table = pd.DataFrame(rows)
    table.index.name = "chain"
    return table


def warn_if_not_digit_twins(table, labels, stacklevel: int = 3) -> None:
    """The `TwinWarning` of `compare` for an `explain` table (nothing if all chains agree as expected)."""
    import warnings

    expected = table["expected"] == TwinExpectation.DIGITS.value
    statistical = table.index[~expected].tolist()
    broken = table.index[expected & (table["max |diff| draws"] > DIGIT_TWIN_TOLERANCE)].tolist()
    if not statistical and not broken:
        return
    lines = []
    for c in statistical:
        row = table.loc[c]
        lines.append(
            f"chain {c}: {row['expected']} ({row['why']}); draws differ by up to "
            f"{row['max |diff| draws']:.2g}, step size by {row['step size rel. diff']:.2g} (relative)"
        )
    for c in broken:
        row = table.loc[c]
        lines.append(
            f"chain {c}: expected to be a digit twin ({row['why']}) but the draws differ by up to "
            f"{row['max |diff| draws']:.2g} (step size by {row['step size rel. diff']:.2g}): please report "
            "this"
        )
    head = (
        f"{labels[0]} and {labels[1]} have the same randomness, but not every chain is a digit twin; their "
        "draws agree in distribution (both are exact chains of the same kernel), not digit by digit:\n"
    )
    warnings.warn(head + "\n".join(lines), TwinWarning, stacklevel=stacklevel + 1)
