"""Parallel HMC on the banana (D = 2): the published configuration.

Every chain x_t = HMC(x_{t-1}, xi_t) is solved whole by a parallel Newton-type solver and
compared with the same chain evaluated step by step (`lax.scan`): the iterations, the wall times
(compilation excluded) and the largest difference between the two trajectories.

    python examples/banana_hmc.py                    # small: T = 2000, 1 chain (seconds)
    python examples/banana_hmc.py --full             # published: T = 100000
    python examples/banana_hmc.py --solver elk --chains 4
    python examples/banana_hmc.py --full --segment 1     # step by step: 113 DEER iterations, not 18

Published configuration (parallel-MCMC paper): HMC step size 0.5 with 8 leapfrog steps,
T = 1e5, started from 10 N(0, I). The banana ("Rosenbrock" in the published code) is
x0 ~ N(0, 10^2), x1 | x0 ~ N(0.03 (x0^2 - 100), 1).
"""

from __future__ import annotations

from _published import pn, run


def main(argv=None):
    return run(
        __doc__,
        title="Banana, HMC step 0.5 x 8 leapfrog steps",
        make_target=pn.targets.banana,
        make_kernel=lambda: pn.HMC(step_size=0.5, num_integration_steps=8),
        init_scale=10.0,
        small=(2000, 1),
        full=(100_000, 1),
        show_moments=True,
        argv=argv,
    )


if __name__ == "__main__":
    main()
