"""`python -m pnmcmc`: the eight-schools demo (see `pnmcmc.demo`); `--help` lists its options."""

from .demo import main

if __name__ == "__main__":
    main()
