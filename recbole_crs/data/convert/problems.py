"""Malformed source records: each one an :class:`~recbole_crs.errors.InvalidRecord` raised by a reader, collected
by :class:`Problems`, which either fails the conversion with the first problem and the count per reason (a
:class:`~recbole_crs.errors.ConversionError`, by default) or leaves them counted as skipped (``--skip-invalid``).
"""

from collections import Counter

from recbole_crs.errors import ConversionError

# How many example ids an error message quotes; counts are always given in full.
EXAMPLES = 3
# Reason under which records using an attribute-less item are counted.
WITHOUT_ATTRIBUTES = "item without attributes"


class Problems:
    """Collects malformed records; at the end either raises (default) or leaves them counted as skipped.

    A record that uses an item without attributes is not a problem when ``drop_without_attributes`` was
    asked for: it is dropped and counted under that reason.
    """

    def __init__(self, report, skip_invalid, what, drop_without_attributes=False):
        self.report = report
        self.skip_invalid = skip_invalid
        self.what = what
        self.drop_without_attributes = drop_without_attributes
        self.first = None
        self.reasons = Counter()

    def add(self, invalid):
        self.report.skipped[invalid.reason] += 1
        if self.drop_without_attributes and invalid.reason == WITHOUT_ATTRIBUTES:
            return
        self.reasons[invalid.reason] += 1
        if self.first is None:
            self.first = invalid.message

    def finish(self, total):
        """Raise unless skipping was asked for; called once all records were checked, so counts are full."""
        count = sum(self.reasons.values())
        if count and not self.skip_invalid:
            reasons = ", ".join(f"{r}: {c}" for r, c in sorted(self.reasons.items()))
            raise ConversionError(
                f"{count} of {total} {self.what} are malformed ({reasons}). First: {self.first}. "
                "Fix the input, or pass --skip-invalid to drop them (the report counts them per reason)."
            )
