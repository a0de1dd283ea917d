"""Errors the user fixes by changing their input: the configuration or the data.

Their message is one line that names the key (or file), the problem and the fix. ``run_recbole_crs.py`` and
``run_hyper.py`` print it as ``error: <message>`` and exit with status 2, without a traceback.
"""


class CRSInputError(ValueError):
    """Base class: the configuration or the data given to recbole-crs cannot be used as given."""


class CRSConfigError(CRSInputError):
    """A configuration value (command line, ``config_dict``, config file) is unknown, of the wrong type or out
    of range. ``errors`` holds one line per problem found (``str()`` joins them with newlines)."""

    def __init__(self, errors):
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))
