"""The options of a conversation run: defaults from ``properties/conversation.yaml``, each value checked
before any work (a wrong one is a :class:`~recbole_crs.errors.CRSInputError`: one ``error:`` line, exit 2)."""

import os

import yaml

from recbole_crs import config as crs_config
from recbole_crs.conversation.policies import policy_name
from recbole_crs.conversation.score_guided import DEFAULTS as SCORE_GUIDED_DEFAULTS
from recbole_crs.errors import CRSInputError

CONVERSATION_YAML = "conversation.yaml"
SPLITS = ("valid", "test")
SCORE_GUIDED_KEYS = tuple(SCORE_GUIDED_DEFAULTS)


def conversation_defaults():
    """``properties/conversation.yaml`` as a dict."""
    path = os.path.join(crs_config.PROPERTIES_DIR, CONVERSATION_YAML)
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def _integer(value, name, minimum):
    try:
        number = int(value)
        if number != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise CRSInputError(f"--{name} must be a whole number >= {minimum}, got {value!r}.") from None
    if number < minimum:
        raise CRSInputError(f"--{name} must be >= {minimum}, got {number}: {_why(name)}")
    return number


def _why(name):
    return {
        "max_turns": "an episode needs its opening turn and at least one action (UNICORN: 15).",
        "topk": "a recommendation lists at least one item (UNICORN: 10).",
        "episodes": "play at least one episode, or 'all'.",
        "batch_size": "play at least one episode at a time.",
        "threads": "use at least one torch thread.",
        "seed": "the episodes' random draws take a seed >= 0, e.g. --seed 0.",
        "considered_items": "the gain of an attribute is read from at least the top-k candidates.",
    }.get(name, "")


def check_options(options):
    """``options`` (a dict with the keys of conversation.yaml) with every value checked and normalised."""
    checked = dict(options)
    checked["policy"] = policy_name(options["policy"])
    if options["split"] not in SPLITS:
        raise CRSInputError(f"--split must be one of {', '.join(SPLITS)}, got {options['split']!r}.")
    episodes = options["episodes"]
    checked["episodes"] = "all" if str(episodes).lower() == "all" else _integer(episodes, "episodes", 1)
    checked["max_turns"] = _integer(options["max_turns"], "max_turns", 2)
    checked["topk"] = _integer(options["topk"], "topk", 1)
    checked["seed"] = _integer(options["seed"], "seed", 0)
    checked["batch_size"] = _integer(options["batch_size"], "batch_size", 1)
    checked["threads"] = _integer(options["threads"], "threads", 1)
    return checked


def score_guided_parameters(defaults, dataset, ranker_name, topk, overrides=None):
    """ScoreGuided's parameters: ``overrides`` (not None values) over the values chosen on validation for
    (``dataset``, ``ranker_name``) over the default ones."""
    section = defaults.get("score_guided") or {}
    parameters = dict(SCORE_GUIDED_DEFAULTS)
    parameters.update(section.get("default") or {})
    parameters.update(((section.get("chosen") or {}).get(dataset) or {}).get(ranker_name) or {})
    parameters.update({key: value for key, value in (overrides or {}).items() if value is not None})
    unknown = sorted(set(parameters) - set(SCORE_GUIDED_KEYS))
    if unknown:
        raise CRSInputError(f"ScoreGuided has no parameter {unknown}: use {', '.join(SCORE_GUIDED_KEYS)}.")
    for key in ("temperature", "mass_threshold", "ask_margin"):
        try:
            parameters[key] = float(parameters[key])
        except (TypeError, ValueError):
            raise CRSInputError(f"--{key} must be a number, got {parameters[key]!r}.") from None
    if not parameters["temperature"] > 0:
        raise CRSInputError(f"--temperature must be > 0, got {parameters['temperature']}.")
    parameters["considered_items"] = _integer(parameters["considered_items"], "considered_items", topk)
    return parameters


def sweep_grid(defaults):
    """Every combination of ``score_guided.sweep`` as a list of parameter dicts (in grid order)."""
    grid = (defaults.get("score_guided") or {}).get("sweep") or {}
    combinations = [{}]
    for key, values in grid.items():
        combinations = [dict(c, **{key: value}) for c in combinations for value in values]
    return combinations
