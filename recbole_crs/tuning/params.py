"""The params file: what a search varies, read and checked before anything runs.

Same syntax as RecBole's params files, plus ``#`` comment lines and trailing comments::

    # name        type        values
    learning_rate loguniform  -9.2,-6.2        # natural-log bounds: exp(-9.2)..exp(-6.2)
    mask_ratio    uniform     0.1,0.4
    hidden_size   choice      [32,64]
    n_layers      quniform    1,4,1            # integers when the bounds and step are integers

The backends turn the parsed :class:`SearchParam` list into their own space
(:func:`recbole_crs.tuning.hyperopt_backend.hyperopt_space`, :func:`recbole_crs.tuning.ray_backend.ray_space`).
"""

import ast
import math
from dataclasses import dataclass

from recbole_crs.errors import CRSConfigError

ALGOS = ("exhaustive", "random", "bayes")
PARAM_TYPES = ("choice", "uniform", "quniform", "loguniform")


@dataclass(frozen=True)
class SearchParam:
    """One searched parameter: ``values`` is the list for ``choice``, ``(low, high[, q])`` otherwise."""

    name: str
    kind: str
    values: tuple

    @property
    def is_integer_grid(self):
        return self.kind == "quniform" and all(float(v).is_integer() for v in self.values)


def _numbers(text, count, where):
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != count:
        raise CRSConfigError(f"{where}: expected {count} comma-separated numbers, got '{text}'")
    try:
        numbers = tuple(float(p) for p in parts)
    except ValueError:
        raise CRSConfigError(f"{where}: '{text}' is not {count} comma-separated numbers") from None
    if numbers[0] >= numbers[1]:
        raise CRSConfigError(f"{where}: the lower bound {numbers[0]} must be below the upper bound {numbers[1]}")
    if count == 3 and numbers[2] <= 0:
        raise CRSConfigError(f"{where}: the step q must be positive, got {numbers[2]}")
    return numbers


def _choices(value, where):
    try:
        values = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise CRSConfigError(f"{where}: choice values must be a Python list literal, got '{value}'") from None
    if not isinstance(values, (list, tuple)) or not values:
        raise CRSConfigError(f"{where}: choice values must be a non-empty list, got '{value}'")
    return tuple(values)


def _without_comment(value):
    """``value`` without a trailing `` # comment`` (values never contain ' #')."""
    starts = [i for i in (value.find(" #"), value.find("\t#")) if i >= 0]
    return value[: min(starts)].strip() if starts else value


def parse_params_file(path):
    """The searched parameters of a params file, in file order.

    Lines: ``name type values``; blank lines and lines starting with ``#`` are skipped; a trailing
    `` # comment`` after the values is allowed. Types: ``choice [v1, v2, ...]`` (Python literals),
    ``uniform lo,hi``, ``quniform lo,hi,q``, ``loguniform lo,hi`` (natural-log bounds, as in RecBole).
    Choices are read with ``ast.literal_eval`` (data only, never code); a string choice reaches the trial's
    Config, which parses it as a value and never evaluates it (:func:`recbole_crs.config.parse_value`).
    """
    try:
        with open(path, "r", encoding="utf-8") as f:
            lines = f.readlines()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise CRSConfigError(f"params file '{path}' cannot be read ({reason}): check --params_file.") from None
    params = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}, line {number}"
        parts = line.split(None, 2)
        if len(parts) < 3:
            raise CRSConfigError(f"{where}: expected 'name type values', got '{line}'")
        name, kind, value = parts[0], parts[1], _without_comment(parts[2])
        if kind not in PARAM_TYPES:
            raise CRSConfigError(f"{where}: unknown type '{kind}' (use one of {', '.join(PARAM_TYPES)})")
        if name in params:
            raise CRSConfigError(f"{where}: '{name}' is already defined")
        if kind == "choice":
            values = _choices(value, where)
        else:
            values = _numbers(value, 3 if kind == "quniform" else 2, where)
        params[name] = SearchParam(name, kind, values)
    if not params:
        raise CRSConfigError(f"{path} defines no parameter to search")
    return list(params.values())


def is_discrete(params):
    return all(p.kind == "choice" for p in params)


def grid_size(params):
    return math.prod(len(p.values) for p in params if p.kind == "choice")


def resolve_algo(algo, params):
    """``algo`` checked against the space; ``None`` means exhaustive for all-choice spaces, else random."""
    if algo is None:
        return "exhaustive" if is_discrete(params) else "random"
    if algo not in ALGOS:
        raise CRSConfigError(f"--algo must be one of {', '.join(ALGOS)}, got '{algo}'")
    if algo == "exhaustive" and not is_discrete(params):
        continuous = [p.name for p in params if p.kind != "choice"]
        raise CRSConfigError(
            f"--algo exhaustive needs 'choice' parameters only; {', '.join(continuous)} are continuous. "
            "Use --algo random or --algo bayes, or turn them into choices."
        )
    return algo


def sample_value(param):
    """One value of ``param``'s range (its first choice, its lower bound): a trial-like value to check."""
    if param.kind == "choice":
        return param.values[0]
    low = param.values[0]
    if param.kind == "loguniform":
        return math.exp(low)
    return int(low) if param.is_integer_grid else low


def edge_values(param):
    """The values of ``param`` a check must accept: every choice, both bounds of a range (as trial values)."""
    if param.kind == "choice":
        return list(param.values)
    if param.kind == "loguniform":
        return [math.exp(v) for v in param.values[:2]]
    return list(param.values[:2])
