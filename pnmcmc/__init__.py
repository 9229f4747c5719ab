"""pnmcmc: whole MCMC chains at once, by parallel Newton iterations over time.

A chain with its randomness fixed up front, x_t = f(x_{t-1}, xi_t), is the unique root of
T*D equations; pnmcmc solves them in parallel and certifies the answer against the sequential
chain. This module is the public API; the package is organised in three parts and two zoos:

- `pnmcmc.engine`: solving any recurrence, one chain at a time (scans, Jacobians, solvers, the
  iteration loop, segments, solutions, memory and interrupts). Add a solver in `engine/solvers.py`.
- `pnmcmc.analysis`: what a chain's dynamics say (the Lyapunov exponent, the iteration predictor,
  the choice of solver, "auto").
- `pnmcmc.sampling`: NumPyro models to posterior draws (model flattening, chains, warmup,
  results, convergence checks, twins, comparison, ArviZ output, progress). Add a diagnostic in
  `sampling/convergence.py`.
- `pnmcmc.kernels` (add a kernel there) and `pnmcmc.models` / `pnmcmc.targets` (models and targets).
"""

import importlib as _importlib
import sys as _sys

from . import kernels as kernels
from . import models as models
from . import targets as targets
from .analysis.auto import AutoChoice as AutoChoice
from .analysis.auto import AutoSolver as AutoSolver
from .analysis.auto import choose_solver as choose_solver
from .analysis.auto import solve_auto as solve_auto
from .analysis.lyapunov import ExpandingDynamicsWarning as ExpandingDynamicsWarning
from .analysis.lyapunov import LyapunovEstimate as LyapunovEstimate
from .analysis.lyapunov import check_contracting as check_contracting
from .analysis.lyapunov import lyapunov_exponent as lyapunov_exponent
from .analysis.prediction import predict_iterations as predict_iterations
from .engine import jacobians as jacobians
from .engine import scans as scans
from .engine.memory import InsufficientMemoryError as InsufficientMemoryError
from .engine.reporting import FrontLimitedWarning as FrontLimitedWarning
from .engine.reporting import NonFiniteChainWarning as NonFiniteChainWarning
from .engine.reporting import NotConvergedWarning as NotConvergedWarning
from .engine.reporting import PnmcmcWarning as PnmcmcWarning
from .engine.solution import Solution as Solution
from .engine.solution import Status as Status
from .engine.solution import default_tolerances as default_tolerances
from .engine.solve import certificate as certificate
from .engine.solve import solve as solve
from .engine.solvers import DEER as DEER
from .engine.solvers import ELK as ELK
from .engine.solvers import Jacobi as Jacobi
from .engine.solvers import ParallelSolver as ParallelSolver
from .engine.solvers import Picard as Picard
from .engine.solvers import QuasiDEER as QuasiDEER
from .engine.solvers import QuasiELK as QuasiELK
from .engine.solvers import Sequential as Sequential
from .kernels import HMC as HMC
from .kernels import MALA as MALA
from .kernels import NUTS as NUTS
from .kernels import BlackJAX as BlackJAX
from .kernels import ExactJacobian as ExactJacobian
from .kernels import SigmoidJacobian as SigmoidJacobian
from .sampling.compare import compare as compare
from .sampling.convergence import ConvergenceWarning as ConvergenceWarning
from .sampling.results import SampleResult as SampleResult
from .sampling.sample import LowAcceptanceWarning as LowAcceptanceWarning
from .sampling.sample import parallel_sample as parallel_sample
from .sampling.sample import resolve_solver as resolve_solver
from .sampling.sample import sequential_sample as sequential_sample
from .sampling.twins import TwinWarning as TwinWarning

__version__ = "0.1.0"

# The modules' flat paths of earlier releases (`pnmcmc.sample`, `pnmcmc.auto`, ...) remain valid
# names for the modules in the layout above, so documented calls such as
# `pnmcmc.sample.AutoSolver` keep working.
_MOVED = {
    **{m: f"engine.{m}" for m in ("scans", "jacobians", "solvers", "solution", "iterate", "segments")},
    **{m: f"engine.{m}" for m in ("solve", "memory", "interrupts")},
    "diagnostics": "engine.reporting",
    **{m: f"analysis.{m}" for m in ("lyapunov", "prediction", "auto")},
    **{
        m: f"sampling.{m}"
        for m in (
            "modeling",
            "chains",
            "warmup",
            "sample",
            "results",
            "convergence",
            "compare",
            "arviz_io",
            "progress",
        )
    },
}
for _old, _new in _MOVED.items():
    _module = _sys.modules.setdefault(f"{__name__}.{_old}", _importlib.import_module(f"{__name__}.{_new}"))
    if _old not in globals():  # `pnmcmc.solve` and `pnmcmc.compare` stay the functions
        globals()[_old] = _module
