"""Token order: one deterministic order for the ids (tokens) of users, items and attributes.

The simulator's item and attribute indices and every converter's row order sort tokens with :func:`natural_key`,
so nothing depends on dict or set iteration and the converted files are byte-identical across runs.
"""

import numpy as np


def natural_key(token):
    """Sort key that orders integer-like tokens numerically and puts them before other tokens.

    Used wherever an order must not depend on dict/set iteration: item and attribute indices (hence every
    tie-break), and the row order of the converters' files. ``"01"`` and ``"1"`` stay distinct.
    """
    if isinstance(token, (int, np.integer)) and not isinstance(token, bool):
        return (0, int(token), str(token))
    text = str(token)
    if text.isascii() and text.isdigit():
        return (0, int(text), text)
    return (1, 0, text)
