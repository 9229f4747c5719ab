"""pnmcmc: whole MCMC chains at once, by parallel Newton iterations over time.

A chain with its randomness fixed up front, x_t = f(x_{t-1}, xi_t), is the unique root of
T*D equations; pnmcmc solves them in parallel and certifies the answer against the sequential
chain. The public API is re-exported here.
"""

from . import jacobians as jacobians
from . import kernels as kernels
from . import models as models
from . import scans as scans
from . import targets as targets
from .auto import AutoChoice as AutoChoice
from .auto import choose_solver as choose_solver
from .auto import solve_auto as solve_auto
from .compare import compare as compare
from .diagnostics import NonFiniteChainWarning as NonFiniteChainWarning
from .diagnostics import NotConvergedWarning as NotConvergedWarning
from .diagnostics import PnmcmcWarning as PnmcmcWarning
from .kernels import HMC as HMC
from .kernels import MALA as MALA
from .kernels import NUTS as NUTS
from .kernels import BlackJAX as BlackJAX
from .kernels import ExactJacobian as ExactJacobian
from .kernels import SigmoidJacobian as SigmoidJacobian
from .lyapunov import ExpandingDynamicsWarning as ExpandingDynamicsWarning
from .lyapunov import LyapunovEstimate as LyapunovEstimate
from .lyapunov import check_contracting as check_contracting
from .lyapunov import lyapunov_exponent as lyapunov_exponent
from .lyapunov import predict_iterations as predict_iterations
from .results import SampleResult as SampleResult
from .sample import AutoSolver as AutoSolver
from .sample import LowAcceptanceWarning as LowAcceptanceWarning
from .sample import parallel_sample as parallel_sample
from .sample import sequential_sample as sequential_sample
from .solution import Solution as Solution
from .solution import Status as Status
from .solution import default_tolerances as default_tolerances
from .solve import solve as solve
from .solvers import DEER as DEER
from .solvers import ELK as ELK
from .solvers import Jacobi as Jacobi
from .solvers import ParallelSolver as ParallelSolver
from .solvers import Picard as Picard
from .solvers import QuasiDEER as QuasiDEER
from .solvers import QuasiELK as QuasiELK
from .solvers import Sequential as Sequential
from .twins import TwinWarning as TwinWarning

__version__ = "0.1.0"
