"""Parallel MALA on a four-component Gaussian mixture (D = 2): the published configuration.

Every chain x_t = MALA(x_{t-1}, xi_t) is solved whole by a parallel Newton-type solver and
compared with the same chain evaluated step by step (`lax.scan`): the iterations, the wall times
(compilation excluded) and the largest difference between the two trajectories.

    python examples/mixture_mala.py                  # small: T = 2000, 1 chain (seconds)
    python examples/mixture_mala.py --full           # published: T = 100000
    python examples/mixture_mala.py --solver quasideer --chains 4

Published configuration (parallel-MCMC paper): MALA step size 0.5, T = 1e5, started from
N(0, I). The target is an equal mixture of N(mu, I) at mu = (+-2, +-2): the chain hops between
modes only occasionally, so its accept decisions matter.
"""

from __future__ import annotations

from _published import pn, run


def main(argv=None):
    return run(
        __doc__,
        title="Gaussian mixture, MALA step 0.5",
        make_target=pn.targets.gaussian_mixture,
        make_kernel=lambda: pn.MALA(step_size=0.5),
        init_scale=1.0,
        small=(2000, 1),
        full=(100_000, 1),
        show_moments=True,
        argv=argv,
    )


if __name__ == "__main__":
    main()
