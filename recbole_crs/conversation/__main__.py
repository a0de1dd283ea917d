"""``python -m recbole_crs.conversation``: see :mod:`recbole_crs.conversation.cli`."""

import sys

from recbole_crs.conversation.cli import main

if __name__ == "__main__":
    sys.exit(main())
