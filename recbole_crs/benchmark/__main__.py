"""``python -m recbole_crs.benchmark``: see :mod:`recbole_crs.benchmark.cli`."""

import sys

from recbole_crs.benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main())
