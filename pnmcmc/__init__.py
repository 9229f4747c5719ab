"""pnmcmc: whole MCMC chains at once, by parallel Newton iterations over time.

A chain with its randomness fixed up front, x_t = f(x_{t-1}, xi_t), is the unique root of
T*D equations; pnmcmc solves them in parallel and certifies the answer against the sequential
chain. The public API is re-exported here.
"""

from . import jacobians as jacobians
from . import scans as scans
from .diagnostics import NonFiniteChainWarning as NonFiniteChainWarning
from .diagnostics import NotConvergedWarning as NotConvergedWarning
from .diagnostics import PnmcmcWarning as PnmcmcWarning
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

__version__ = "0.1.0"
