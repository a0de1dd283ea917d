"""``python -m recbole_crs.tuning``: the same command line as ``run_hyper.py``."""

from recbole_crs.tuning.cli import main

if __name__ == "__main__":
    main()
