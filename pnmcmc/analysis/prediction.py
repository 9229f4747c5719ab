r"""Predicting the parallel iterations of a solver from the chain's largest Lyapunov exponent.

Let $\delta_0$ be the initial error of the guess (the largest $|x^{(0)}_t - x_t|$), $\epsilon$ the
absolute tolerance, $n = \log(\delta_0/\epsilon)$ the number of e-folds the error must shrink by,
and $\rho = e^\lambda$.

- *Jacobi* ($x^{k+1}_t = f(x^k_{t-1})$): linearising, the error obeys $e^{k+1}_t = J_t e^k_{t-1}$,
  so $e^k_t = J_t \cdots J_{t-k+1}\, e^0_{t-k}$: after $k$ sweeps every error has been carried
  through $k$ steps of the chain and has shrunk like $\rho^k$ (and the first $k$ steps are exact:
  the exactness front). The stopping rule needs the *worst* window of $k$ steps to have shrunk by
  $n$ e-folds; with per-step log-growth of mean $\lambda$ and spread $\sigma$ the worst of the
  $\approx T$ windows exceeds the mean by $\approx \sigma\sqrt{2 k \log T}$, hence
  $k_J = $ the smallest $k$ with $k|\lambda| - \sigma\sqrt{2k\log T} \ge n$, capped at $T$.
- *Newton* (DEER, ELK): the error after a Newton step is quadratic in the previous error, carried
  through the same contracting products: $\|e^{k+1}\| \lesssim \frac{H}{1-\rho}\|e^k\|^2$. Squaring the
  relative error each iteration is the same as *doubling* the number of effective Jacobi sweeps:
  if one iteration gains one sweep's contraction $\rho$, iteration $k$ gains $\rho^{2^{k-1}}$. So
  $k_N \approx 1 + \log_2 k_J$: logarithmic in the initial error and in $1/|\lambda|$.
- *Quasi-Newton* (QuasiDEER, QuasiELK): the error obeys
  $e^{k+1}_t = D_t e^{k+1}_{t-1} + (J_t - D_t) e^k_{t-1}$ with $D_t = \mathrm{diag}(J_t)$: Newton
  when the Jacobians are diagonal, a linear rate set by the off-diagonal part otherwise; from the
  LLE alone the prediction is Newton's: the right model for elementwise chains, optimistic
  otherwise (with strongly non-diagonal Jacobians QuasiDEER can be front-limited, ~T iterations).
- $\lambda \ge 0$: no contraction, so nothing but the exactness front guarantees progress: the
  prediction is $T$ (and sequential evaluation is the better choice).

This LLE-only model is accurate for Jacobi; for Newton-type methods it misses a constant: it treats
the step as nonlinear on the scale of $\delta_0$, while a nearly linear step (MALA on a Gaussian,
where only accept decisions are nonlinear; a linear map, which takes one Newton iteration whatever
its exponent) converges much faster. [`calibrate_iterations`][pnmcmc.analysis.prediction.calibrate_iterations]
therefore scales a count *measured* on a short pilot prefix: Newton-type counts grow like
$\log T$ (a $T$-independent linear rate from an initial residual that grows with $T$: the
$O(\log T)$ iterations of the theory), Jacobi counts like the model. MCMC chains break the
$\log T$ law: an accept/reject decision that flips between iterations is a discontinuity the
linearisation cannot see, and such flips occur at a rate per step, so the counts of MALA and HMC
chains grow like a power of $T$ (up to linearly). With a second, longer pilot the growth is
measured (a power law through both counts), which is what `choose_solver` does.

The counts follow `Solution.num_iterations` (updates performed; the final certifying evaluation is
not counted). `benchmarks/results/lyapunov-cpu.md` compares predicted and measured counts on the
benchmark suite (MALA and HMC on the `pnmcmc.targets`, a contracting and an expanding map).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["calibrate_iterations", "predict_iterations"]


_KINDS = ("jacobi", "quasi-newton", "newton", "sequential")


def _segment(solver) -> int:
    """Steps per parallel element of a solver object (1 for kind names and unsegmented solvers)."""
    return 1 if isinstance(solver, str) else int(getattr(solver, "segment", 1))


def _kind(solver) -> str:
    """The convergence class of a solver object (its `convergence`) or of a kind name."""
    kind = solver if isinstance(solver, str) else getattr(solver, "convergence", None)
    if kind not in _KINDS:
        raise ValueError(
            f"no iteration model for {solver!r}: solver_kind must be one of {_KINDS} or a solver whose "
            "`convergence` is one of them (Jacobi, QuasiDEER, QuasiELK, DEER, ELK, Sequential)."
        )
    return kind


def _jacobi(lam, n_steps, efolds, spread):
    rate = -lam
    s = spread * math.sqrt(2.0 * math.log(max(n_steps, 2)))
    root = (s + math.sqrt(s * s + 4.0 * rate * efolds)) / (2.0 * rate)
    return root * root


def predict_iterations(
    exponent, n_steps: int, *, tol: float, initial_error: float, solver_kind: str, spread: float = 0.0
) -> int:
    """Predict the parallel iterations a solver needs on a chain with LLE `exponent`.

    The model (derived in the module docstring), with `n = log(initial_error / tol)` e-folds:
    Jacobi needs the smallest `k` with `k |lambda| - spread sqrt(2 k log T) >= n`; Newton (DEER,
    ELK) `1 + log2` of that; quasi-Newton gets Newton's count (exact for elementwise chains, a lower
    bound otherwise); `lambda >= 0` gives `T`. Capped at `T` (the exactness front).
    [`calibrate_iterations`][pnmcmc.analysis.prediction.calibrate_iterations] corrects it with a pilot solve.

    **Arguments:**

    - `exponent`: the LLE per step (a float; `-inf` allowed).
    - `n_steps`: the chain length T.
    - `tol`: the absolute tolerance on the state (e.g. `atol + rtol * typical |x|`).
    - `initial_error`: the largest error of the initial guess, e.g. `max |x_t - x_0|` for the
      default guess (`x_0` repeated).
    - `solver_kind`: `"jacobi"`, `"quasi-newton"`, `"newton"` or `"sequential"` (0), or a solver
      object (`Jacobi()`; `QuasiDEER()`, `QuasiELK()`; `DEER()`, `ELK()`; `Sequential()`). A
      solver with `segment=m` is predicted on its chain of segment maps: `T/m` elements with
      exponent `m lambda` and spread `sqrt(m)` times larger (`pnmcmc.engine.segments`).
    - `spread`: the standard deviation of the per-step log-growth (0: a stationary rate); it makes
      the worst window of the chain, which decides convergence, slower than the average.

    **Returns:** the predicted `Solution.num_iterations`, an int in `[0, T]` (`[0, T/m]` with
    segments).
    """
    m = _segment(solver_kind)
    solver_kind = _kind(solver_kind)
    if solver_kind == "sequential":
        return 0
    if not (isinstance(n_steps, (int, np.integer)) and n_steps >= 1):
        raise ValueError(f"n_steps must be an int >= 1, got {n_steps!r}.")
    if not (tol > 0 and initial_error >= 0):
        raise ValueError(f"need tol > 0 and initial_error >= 0, got {tol!r} and {initial_error!r}.")
    lam = float(exponent)
    spread = float(spread) if np.isfinite(spread) else 0.0
    if m > 1:  # the chain of segment maps: T/m elements of exponent m lambda
        lam, spread, n_steps = m * lam, spread * math.sqrt(m), math.ceil(n_steps / m)
    efolds = math.log(initial_error / tol) if initial_error > 0 else -math.inf
    if efolds <= 0:
        return 0  # the initial guess already meets the tolerance
    if not lam < 0:  # >= 0 or NaN: only the exactness front
        return int(n_steps)
    jacobi = 1.0 if lam == -math.inf else max(1.0, _jacobi(lam, n_steps, efolds, spread))
    k = jacobi if solver_kind == "jacobi" else 1.0 + math.log2(jacobi)
    return int(min(n_steps, math.ceil(k)))


def calibrate_iterations(
    pilot_iterations: int,
    pilot_steps: int,
    n_steps: int,
    *,
    exponent,
    tol: float,
    initial_error: float,
    solver_kind,
    spread: float = 0.0,
    converged: bool = True,
    longer_pilot: tuple[int, int] | None = None,
) -> int:
    """Scale the iterations measured on a pilot prefix of the chain to the whole chain.

    The LLE model of [`predict_iterations`][pnmcmc.analysis.prediction.predict_iterations] is accurate for
    Jacobi but only an upper-bound-like guess for Newton-type methods, whose count depends on how
    nonlinear the step is (a linear chain takes one Newton iteration whatever its exponent). A
    short pilot solve measures that constant; this function extrapolates it to T steps:

    - the pilot did not converge (it diverged): T;
    - the pilot was *front-limited* (it needed at least half as many iterations as it has steps, so
      it converged no faster than the exactness front): Jacobi gets the model's count for T (at
      least the pilot's), Newton-type solvers the pilot's count scaled by T / P (at least the
      model's);
    - otherwise Jacobi gets the pilot's count times the model's growth from P to T; Newton-type
      solvers, whose count theory says grows like log T (a T-independent linear rate applied to an
      initial residual that grows with T), get `1 + (k_P - 1) log T / log P`: the first iteration
      is always needed, the rest scales with log T.

    With a second, longer pilot, `longer_pilot = (k_L, L)` (the converged count on the first L > P
    steps), the growth is measured instead of modelled: the counts of MCMC chains grow faster than
    log T when accept/reject decisions flip between iterations (each flip is a discontinuity that
    Newton's linearisation cannot see), so the prediction is the power law through both pilots,
    `k_L (T / L)^a` with `a = log(k_L / k_P) / log(L / P)` clipped to [0, 1] (1: front-limited,
    0: independent of T), and `k_L` itself when `L >= T`.

    **Arguments:** `pilot_iterations` (k_P) measured on the first `pilot_steps` (P) steps, whether
    that pilot `converged`; `n_steps` = T; `longer_pilot` as above (None: only the short pilot);
    the other arguments as for `predict_iterations` (the pilot's estimates).

    **Returns:** the predicted iterations for the whole chain, an int in `[0, T]` (`[0, T/m]` for a
    solver with `segment=m`, whose lengths are all counted in segments).
    """
    seg = _segment(solver_kind)
    kind = _kind(solver_kind)
    if kind == "sequential":
        return 0
    # With segments every length is counted in segments (the units of the iteration and its front).
    k, p, n = int(pilot_iterations), math.ceil(pilot_steps / seg), math.ceil(n_steps / seg)
    if not converged:
        return int(n)
    if seg > 1:
        exponent, spread = seg * float(exponent), float(spread) * math.sqrt(seg)
        if longer_pilot is not None:
            longer = math.ceil(longer_pilot[1] / seg)
            longer_pilot = (longer_pilot[0], longer) if longer > p else None  # no longer in segments
    kw = dict(exponent=exponent, tol=tol, initial_error=initial_error, solver_kind=kind, spread=spread)
    full = predict_iterations(n_steps=n, **kw)
    if k == 0:
        return 0
    if longer_pilot is not None:
        k_long, m = (int(v) for v in longer_pilot)
        if m <= p:
            raise ValueError(f"longer_pilot must be longer than the pilot: {m} <= {p} steps.")
        if m >= n:
            return int(min(n, k_long))
        a = math.log(max(k_long, 1) / max(k, 1)) / math.log(m / p)
        predicted = max(k_long, 1) * (n / m) ** min(max(a, 0.0), 1.0)
        return int(min(n, math.ceil(round(predicted, 9))))  # round: 40 * 8^(2/3) is 160, not 161
    if 2 * k >= p:  # front-limited
        predicted = max(k, full) if kind == "jacobi" else max(full, math.ceil(k * n / p))
    elif kind == "jacobi":
        predicted = max(k, math.ceil(k * full / max(predict_iterations(n_steps=p, **kw), 1)))
    else:
        predicted = math.ceil(1 + (k - 1) * math.log(max(n, 2)) / math.log(max(p, 2)))
    return int(min(n, predicted))
