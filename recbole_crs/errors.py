"""Errors the user fixes by changing their input: the configuration, the data, the files they name, or the place
the run writes to.

Their message is one line that names the key (or file), the problem and the fix. ``run_recbole_crs.py``,
``run_hyper.py`` and ``python -m recbole_crs.benchmark`` print it as ``error: <message>`` and exit with status 2,
without a traceback (:func:`print_error`); a process of a multi-process run hands it to its launcher, which does
the same.
"""

import sys


class CRSInputError(ValueError):
    """Base class: the configuration or the data given to recbole-crs cannot be used as given."""


class CRSConfigError(CRSInputError):
    """A configuration value (command line, ``config_dict``, config file) is unknown, of the wrong type or out
    of range. ``errors`` holds one line per problem found (``str()`` joins them with newlines)."""

    def __init__(self, errors):
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


class CheckpointError(CRSInputError):
    """A file named as a checkpoint (``generator_path``, ``pretrained_path``, a model file to reload) cannot be
    used: it is not a checkpoint, its pickle is refused unread, or it was trained for another model or other
    data. Subclasses say which (``UnsafeCheckpointError``, ``CheckpointMismatchError``,
    ``PretrainedCheckpointError``)."""


class OutputError(CRSInputError):
    """A file or folder the run writes cannot be written (a full disk, a file-size limit, no permission, a file
    where a folder must be). The file being replaced, if any, is left as it was."""


def print_error(error, file=None):
    """Print ``error`` as the command's ``error: <line>`` lines on stderr (one per problem it holds)."""
    for line in str(error).splitlines() or [type(error).__name__]:
        print(f"error: {line}", file=file or sys.stderr)
