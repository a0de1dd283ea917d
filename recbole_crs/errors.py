"""Every error class of recbole-crs, in two families.

**The user's input** (:class:`CRSInputError` and its subclasses): the configuration, the data, a file the user
named, a suite or a conversion's source, or the place the run writes to cannot be used as given. The message is
one line that names the key (or file), the problem and the fix. Every entry point (``run_recbole_crs.py``,
``run_hyper.py``, ``python -m recbole_crs.benchmark``, ``python -m recbole_crs.data.convert``,
``python -m recbole_crs.conversation``) prints it as ``error: <message>`` and exits with status 2, without a
traceback (:func:`print_error`); a process of a multi-process run hands it to its launcher, which does the same.

**Not the user's input**: :class:`WorkerDiedError` (a process of a multi-process run was killed) and
:class:`InvalidRecord` (one malformed source record, counted by the converters, never shown as such).
"""

import sys


# ---------------------------------------------------------------------------------------------- the user's input
class CRSInputError(ValueError):
    """Base class: the configuration or the data given to recbole-crs cannot be used as given."""


class CRSConfigError(CRSInputError):
    """A configuration value (command line, ``config_dict``, config file) is unknown, of the wrong type or out
    of range. ``errors`` holds one line per problem found (``str()`` joins them with newlines)."""

    def __init__(self, errors):
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


class CRSDataError(CRSInputError):
    """Conversational data that cannot be used as given; the message says what to fix."""


class CheckpointError(CRSInputError):
    """A file named as a checkpoint (``generator_path``, ``pretrained_path``, a model file to reload) cannot be
    used: it is not a checkpoint, its pickle is refused unread, or it was trained for another model or other
    data. The subclasses say which."""


class MissingCheckpointError(CheckpointError, FileNotFoundError):
    """A checkpoint path that names no file."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint whose pickle references code no RecBole checkpoint needs; it was not unpickled."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint that belongs to other data than the run's; the message says which and what to do."""


class PretrainedCheckpointError(CheckpointError):
    """A pre-trained checkpoint that does not fit the fine-tuned model and dataset; the message says why."""


class OutputError(CRSInputError):
    """A file or folder the run writes cannot be written (a full disk, a file-size limit, no permission, a file
    where a folder must be). The file being replaced, if any, is left as it was."""


class ConversionError(CRSInputError):
    """Source data that ``python -m recbole_crs.data.convert`` cannot convert as given; the message names the
    problem and the fix."""


class SuiteError(CRSInputError):
    """A problem with a benchmark suite file, its tuned-values file or the benchmark's command line (nothing has
    run)."""


# ---------------------------------------------------------------------------------------------- not the user's input
class WorkerDiedError(RuntimeError):
    """A process of a multi-process run ended without a Python error: killed by a signal, or an exit status.

    ``exit_status`` is what the launching command exits with: 128 + the signal number for a killed process (what a
    shell reports for a killed command, so a 1-process and an N-process run killed by the out-of-memory killer end
    alike), else the process's own exit status.
    """

    def __init__(self, message, exit_status):
        super().__init__(message)
        self.exit_status = exit_status


class InvalidRecord(Exception):
    """One malformed record of a conversion's source: ``reason`` (short, used for counts) and ``message`` (names
    the record). The converters collect these (``data.convert.problems.Problems``) and end with one
    :class:`ConversionError`, or count them as skipped."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason
        self.message = message


def print_error(error, file=None):
    """Print ``error`` as the command's ``error: <line>`` lines on stderr (one per problem it holds)."""
    for line in str(error).splitlines() or [type(error).__name__]:
        print(f"error: {line}", file=file or sys.stderr)
