"""The small rule language the key rules are written in: a :class:`Rule` is one key's check, ``value -> None``
(fine) or the one-line error ``<key> must be <what>, got <value>: <fix>``.

Before training, every value is read against its rule so that a wrong type or range is reported with its fix in
seconds, not as a traceback from deep inside a trained stage. :func:`integer`, :func:`number`, :func:`one_of`,
:func:`boolean` and :func:`text` build the usual rules; :class:`RemovedRule` reports a key that no longer exists
with what replaced it. The rules of each key are in :mod:`recbole_crs.settings.key_rules`.
"""

import math


class Rule:
    """A check of one key's value: ``what`` it must be, an ``example`` for the fix, optional ``fix`` text."""

    def __init__(self, test, what, example=None, fix=None, none_ok=False):
        self.test, self.what, self.example, self.fix, self.none_ok = test, what, example, fix, none_ok

    def error(self, key, value):
        if value is None and self.none_ok:
            return None
        try:
            ok = value is not None and self.test(value)
        except (TypeError, ValueError):
            ok = False
        if ok:
            return None
        fix = self.fix or f"fix it, e.g. {key}: {self.example}"
        return f"{key} must be {self.what}, got {value!r}: {fix}"


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def integer(minimum, example, none_ok=False, none_text=None):
    what = f"an integer >= {minimum}" + (f" {none_text}" if none_text else " (or ~)" if none_ok else "")
    return Rule(lambda v: is_int(v) and v >= minimum, what, example, none_ok=none_ok)


def number(low=None, high=None, low_open=True, high_open=True, example=None, none_ok=False, fix=None):
    if low is not None and high is not None:
        what = f"a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    elif low is not None:
        what = f"a number {'>' if low_open else '>='} {low}"
    else:
        what = "a number"
    if none_ok:
        what += " (or ~)"

    def test(v):
        if not is_number(v):
            return False
        if low is not None and (v <= low if low_open else v < low):
            return False
        return not (high is not None and (v >= high if high_open else v > high))

    return Rule(test, what, example, fix=fix, none_ok=none_ok)


def one_of(options, none_ok=False):
    return Rule(lambda v: v in options, f"one of {', '.join(map(str, options))}", options[0], none_ok=none_ok)


def boolean(none_ok=False):
    return Rule(lambda v: isinstance(v, bool), "True or False", "True", none_ok=none_ok)


def text(none_ok=False, example="attributes"):
    return Rule(lambda v: isinstance(v, str) and v != "", "a non-empty string" + (" (or ~)" if none_ok else ""),
                example, none_ok=none_ok)


class RemovedRule(Rule):
    """A key that was removed: any value but ``~`` is an error that says what replaced it."""

    def __init__(self, message):
        super().__init__(lambda v: False, "", none_ok=True)
        self.message = message

    def error(self, key, value):
        return None if value is None else f"{key} (got {value!r}) {self.message}"
