"""Parallel MALA on German credit logistic regression (D = 25): the published configuration.

Every chain x_t = MALA(x_{t-1}, xi_t) is solved whole by a parallel Newton-type solver and
compared with the same chain evaluated step by step (`lax.scan`): the iterations, the wall times
(compilation excluded) and the largest difference between the two trajectories.

    python examples/german_credit_mala.py            # small: T = 256, 2 chains (seconds)
    python examples/german_credit_mala.py --full     # published: T = 2048, 16 chains
    python examples/german_credit_mala.py --solver quasideer --chains 64 --steps 2048

Published configuration (parallel-MCMC paper): MALA step size 0.0015, T = 2048, chains started
from 0.1 N(0, I).
"""

from __future__ import annotations

from _published import pn, run


def main(argv=None):
    return run(
        __doc__,
        title="German credit, MALA step 0.0015",
        make_target=pn.targets.german_credit,
        make_kernel=lambda: pn.MALA(step_size=0.0015),
        init_scale=0.1,
        small=(256, 2),
        full=(2048, 16),
        show_moments=False,
        argv=argv,
    )


if __name__ == "__main__":
    main()
