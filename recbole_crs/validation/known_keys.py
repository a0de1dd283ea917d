"""Which keys exist: every key a run may set (RecBole's yamls and argument lists, the plugin's yamls), where the
user gave each key, and the unknown ones with a "did you mean".

RecBole's ``Config`` accepts any key, so a misspelt key (``learning_rte``) would silently leave the default in
place and train with it; it is caught here, before training, naming where it was given (command line,
``config_dict``, config file) and the closest known key.
"""

import difflib
import functools
import glob
import os

import recbole
import yaml
from recbole.utils import argument_list

from recbole_crs import config as crs_config
from recbole_crs.settings.key_rules import REMOVED_KEYS


def yaml_keys(path):
    """The top-level keys of the yaml file ``path`` (none if it is not a mapping)."""
    with open(path, "r", encoding="utf-8") as f:
        content = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return set(content) if isinstance(content, dict) else set()


@functools.lru_cache(maxsize=1)
def recbole_keys():
    """Keys of RecBole's own yamls (overall, dataset defaults, quick-start layers, every model) and argument
    lists, and the keys RecBole's Config and its multi-process launcher set themselves."""

    root = os.path.join(os.path.dirname(recbole.__file__), "properties")
    files = [os.path.join(root, "overall.yaml"), os.path.join(root, "dataset", "sample.yaml"),
             os.path.join(root, "dataset", "ml-100k.yaml")]
    files += glob.glob(os.path.join(root, "quick_start_config", "*.yaml"))
    files += glob.glob(os.path.join(root, "model", "*.yaml"))
    keys = set()
    for path in files:
        keys |= yaml_keys(path)
    for name in ("general_arguments", "training_arguments", "evaluation_arguments", "dataset_arguments"):
        keys |= set(getattr(argument_list, name))
    keys |= {
        "model", "dataset", "config_files", "data_path", "MODEL_TYPE", "MODEL_INPUT_TYPE", "eval_type",
        "valid_metric_bigger", "device", "single_spec", "local_rank", "gpu_id", "train_neg_sample_args",
        "valid_neg_sample_args", "test_neg_sample_args", "nproc", "world_size", "offset", "ip", "port",
    }
    return frozenset(keys)


def _plugin_yamls(pattern):
    return glob.glob(os.path.join(crs_config.PROPERTIES_DIR, pattern))  # read at call time (tests move it)


def plugin_model_keys(model):
    """The keys of the model's plugin yamls (its shared layers and its own file)."""
    return set().union(*(yaml_keys(path) for path in crs_config.model_yaml_files(model) if os.path.isfile(path)))


def known_keys(config):
    """Every key a run may set: RecBole's, the plugin's (all its yamls) and this run's internal layers."""
    keys = set(recbole_keys()) | set(config.internal_config_dict)
    for pattern in ("overall.yaml", os.path.join("model", "*.yaml"), os.path.join("dataset", "*.yaml")):
        for path in _plugin_yamls(pattern):
            keys |= yaml_keys(path)
    return keys


def user_keys(config):
    """``{key: where the user gave it}``; the command line wins over config_dict, config_dict over files."""
    sources = {}
    for where, values in (
        ("in a config file", getattr(config, "file_config_dict", {})),
        ("in config_dict", getattr(config, "variable_config_dict", {})),
        ("on the command line", getattr(config, "cmd_config_dict", {})),
    ):
        for key in values or {}:
            sources[key] = where
    return sources


def _did_you_mean(key, known):
    by_lower = {k.lower(): k for k in known}
    if key.lower() in by_lower:
        return by_lower[key.lower()]
    close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def unknown_key_errors(config):
    """One line per key the user gave that no yaml of RecBole or of the plugin has, with a "did you mean"."""
    known = known_keys(config) | set(REMOVED_KEYS)
    errors = []
    for key, where in user_keys(config).items():
        if key in known:
            continue
        guess = _did_you_mean(key, known)
        hint = f"did you mean '{guess}'? Fix the name" if guess else "fix the name"
        errors.append(
            f"{key} ({where}) is not a setting of RecBole, recbole-crs or {config['model']}: {hint} or remove it."
        )
    return errors
