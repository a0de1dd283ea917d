"""``python -m recbole_crs.data.convert``: the command line of :mod:`recbole_crs.data.convert.cli`."""

import sys

from recbole_crs.data.convert.cli import main

if __name__ == "__main__":
    sys.exit(main())
