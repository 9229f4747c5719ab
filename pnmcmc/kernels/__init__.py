"""MCMC kernels as deterministic maps `x_t = step(logdensity_fn, x_{t-1}, xi_t)` for `pnmcmc.solve`.

See `pnmcmc.kernels.base` for the interface, `accept` for the accept/reject Jacobian, `mala`,
`hmc` for pnmcmc's own kernels and `blackjax_adapter` for any BlackJAX kernel (NUTS included).
"""

from .accept import ExactJacobian as ExactJacobian
from .accept import SigmoidJacobian as SigmoidJacobian
from .base import Kernel as Kernel
from .base import StepInfo as StepInfo
from .blackjax_adapter import NUTS as NUTS
from .blackjax_adapter import BlackJAX as BlackJAX
from .hmc import HMC as HMC
from .hmc import HMCNoise as HMCNoise
from .mala import MALA as MALA
from .mala import MALANoise as MALANoise
