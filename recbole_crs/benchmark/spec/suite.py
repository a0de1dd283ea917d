"""The suite file: parse and check it (sections: see :mod:`recbole_crs.benchmark`), and the names a command line
picks from it (``--datasets``, ``--models``, ``--set``).

The benchmark's defaults live here, once: the suite and results paths, the candidate modes and their order, the
table scopes, the table / plot metric and the first seed.
"""

import os
from dataclasses import dataclass, field

import yaml

from recbole_crs.errors import SuiteError
from recbole_crs.evaluation.candidates import CANDIDATE_MODES

# The checkout: this file is recbole_crs/benchmark/spec/suite.py.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))))
DEFAULT_SUITE = os.path.join(REPO_ROOT, "benchmarks", "suite.yaml")
DEFAULT_OUT = os.path.join(REPO_ROOT, "benchmarks", "results", "suite")
DEFAULT_DATA_PATH = os.path.join(REPO_ROOT, "dataset")
DEFAULT_MODES = ("all", "first", "confirmed")
AUTHORS_MODE = "authors"
MODE_ORDER = DEFAULT_MODES + (AUTHORS_MODE,)  # the order of modes in tables and plots
# Table scopes: name -> (key prefix in a mode's flat result dict, column label).
SCOPES = {"turn1": ("turn1/", "turn 1"), "last": ("last/", "last turn"), "all": ("", "all turns")}
DEFAULT_SCOPES = ("turn1", "last", "all")
DEFAULT_METRIC = "ndcg@10"  # the tables' metric and the plots' metric unless the suite names others
DEFAULT_PLOT_MODE = "confirmed"
DEFAULT_BASE_SEED = 2020
DEFAULT_SEEDS = 3  # seeds per run: base_seed, base_seed + 1, ...
CURVE_KEYS = ("label", "groups", "metric", "mode", "scope")
TOP_LEVEL_KEYS = {"common", "datasets", "variants", "modes", "base_seed", "table_metrics", "table_scopes",
                  "plot_metric", "plot_mode", "threads", "description", "curves", "epoch_ratios", "tuned"}


@dataclass
class Variant:
    name: str
    model: str
    config: dict = field(default_factory=dict)
    pretrain: dict = None  # overrides of the pre-training stage; None = one stage
    description: str = ""
    tuned_from: str = None  # the variant whose entry of the tuned file this one reads (None: its own)

    @property
    def tuned_name(self):
        return self.tuned_from or self.name


@dataclass
class DatasetSpec:
    name: str
    config: dict = field(default_factory=dict)
    convert: dict = None  # {source: <cli source name>, argv: [...]} to build the atomic files
    models: dict = field(default_factory=dict)  # model name -> overrides for that model on this dataset


@dataclass
class Suite:
    path: str
    common: dict
    datasets: dict
    variants: dict
    modes: tuple = DEFAULT_MODES
    base_seed: int = DEFAULT_BASE_SEED
    table_metrics: tuple = (DEFAULT_METRIC,)
    table_scopes: tuple = DEFAULT_SCOPES
    plot_metric: str = DEFAULT_METRIC
    plot_mode: str = DEFAULT_PLOT_MODE
    threads: int = None
    curves: dict = None  # curves.parse_curves(...) of the suite's `curves` section
    epoch_ratios: str = None  # variant whose training epoch is the unit of the epoch-time table; None = no table
    tuned: str = None  # absolute path of the tuned-values file (the suite's `tuned`, relative to it); None = none
    raw: dict = field(default_factory=dict)


def _mapping(value, where):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SuiteError(f"{where} must be a mapping, got {type(value).__name__}")
    return dict(value)


def _integer(raw, key, default, minimum, path):
    """``raw[key]`` (``default`` when absent or null), an integer >= ``minimum``."""
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SuiteError(f"{path}: {key} must be an integer >= {minimum}, got {value!r}")
    return value


def _entries(raw, section, path, keys):
    """``(name, spec)`` of each entry of ``raw[section]``; a spec may hold ``keys`` and a ``description``."""
    for name, spec in _mapping(raw.get(section), f"{path}: {section}").items():
        spec = _mapping(spec, f"{path}: {section}.{name}")
        bad = set(spec) - set(keys) - {"description"}
        if bad:
            raise SuiteError(f"{path}: {section}.{name} has unknown keys {sorted(bad)} (use {'/'.join(keys)})")
        yield name, spec


def _parse_datasets(raw, path):
    datasets = {}
    for name, spec in _entries(raw, "datasets", path, ("config", "models", "convert")):
        models = {
            str(model): _mapping(overrides, f"{path}: datasets.{name}.models.{model}")
            for model, overrides in _mapping(spec.get("models"), f"{path}: datasets.{name}.models").items()
        }
        convert = spec.get("convert")
        if convert is not None:
            convert = _mapping(convert, f"{path}: datasets.{name}.convert")
            if not isinstance(convert.get("argv"), list) or not convert.get("source"):
                raise SuiteError(f"{path}: datasets.{name}.convert needs 'source' and a list 'argv'")
        datasets[name] = DatasetSpec(
            str(name), _mapping(spec.get("config"), f"datasets.{name}.config"), convert, models
        )
    return datasets


def _parse_variants(raw, path):
    variants = {}
    for name, spec in _entries(raw, "variants", path, ("model", "config", "pretrain", "tuned_from")):
        if not spec.get("model"):
            raise SuiteError(f"{path}: variants.{name} needs a 'model'")
        pretrain = spec.get("pretrain")
        if pretrain is not None:
            pretrain = _mapping(pretrain, f"{path}: variants.{name}.pretrain")
        variants[str(name)] = Variant(
            str(name), str(spec["model"]), _mapping(spec.get("config"), f"variants.{name}.config"), pretrain,
            str(spec.get("description", "")), None if spec.get("tuned_from") is None else str(spec["tuned_from"]),
        )
    if not variants:
        raise SuiteError(f"{path}: no variants defined")
    for variant in variants.values():
        if variant.tuned_from is not None and variant.tuned_from not in variants:
            raise SuiteError(f"{path}: variants.{variant.name}.tuned_from names '{variant.tuned_from}', which is not "
                             "a variant of the suite")
    return variants


def _parse_modes(raw, path):
    modes = tuple(raw.get("modes") or DEFAULT_MODES)
    for mode in modes:
        if mode not in CANDIDATE_MODES:
            raise SuiteError(f"{path}: modes lists '{mode}'; use any of {', '.join(CANDIDATE_MODES)}")
    if len(set(modes)) != len(modes):
        raise SuiteError(f"{path}: modes lists a mode twice: {list(modes)}")
    if set(modes) == {AUTHORS_MODE}:
        raise SuiteError(
            f"{path}: modes lists only 'authors', which a dataset without a candidate list cannot be evaluated "
            "in; list at least one of all/first/confirmed ('authors' is added automatically on datasets with a "
            "candidate list)"
        )
    plot_mode = str(raw.get("plot_mode", DEFAULT_PLOT_MODE))
    if plot_mode not in CANDIDATE_MODES:
        raise SuiteError(f"{path}: plot_mode '{plot_mode}' is not a mode; use one of {', '.join(CANDIDATE_MODES)}")
    return modes, plot_mode


def read_yaml(path, what, missing=""):
    """The content of the yaml file ``path`` (``{}`` when empty); a SuiteError naming it as ``what`` when it is
    missing (``missing``: what to do then) or not yaml."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            return yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise SuiteError(f"{what} '{path}' does not exist{missing}") from None
    except yaml.YAMLError as error:
        raise SuiteError(f"{what} '{path}' is not valid yaml: {error}") from None


def load_suite(path):
    """Parse and check a suite file; see :mod:`recbole_crs.benchmark` for its sections."""
    raw = read_yaml(path, "suite file")
    unknown = set(raw) - TOP_LEVEL_KEYS
    if unknown:
        raise SuiteError(f"{path}: unknown top-level keys {sorted(unknown)}")
    datasets = _parse_datasets(raw, path)
    variants = _parse_variants(raw, path)
    modes, plot_mode = _parse_modes(raw, path)
    scopes = tuple(str(s).lower() for s in (raw.get("table_scopes") or DEFAULT_SCOPES))
    bad_scopes = [s for s in scopes if s not in SCOPES]
    if bad_scopes:
        raise SuiteError(f"{path}: table_scopes lists {bad_scopes}; use any of {', '.join(SCOPES)}")
    epoch_ratios = raw.get("epoch_ratios")
    if epoch_ratios is not None and str(epoch_ratios) not in variants:
        raise SuiteError(f"{path}: epoch_ratios names '{epoch_ratios}', which is not a variant of the suite")
    curves = parse_curves(raw.get("curves"), datasets, SCOPES, path)
    return Suite(
        path=os.path.abspath(path),
        common=_mapping(raw.get("common"), f"{path}: common"),
        datasets=datasets,
        variants=variants,
        modes=modes,
        base_seed=_integer(raw, "base_seed", DEFAULT_BASE_SEED, 0, path),
        table_metrics=tuple(m.lower() for m in (raw.get("table_metrics") or (DEFAULT_METRIC,))),
        table_scopes=scopes,
        plot_metric=str(raw.get("plot_metric", DEFAULT_METRIC)).lower(),
        plot_mode=plot_mode,
        threads=_integer(raw, "threads", None, 1, path),
        curves=curves,
        epoch_ratios=None if epoch_ratios is None else str(epoch_ratios),
        tuned=os.path.join(os.path.dirname(os.path.abspath(path)), str(raw["tuned"])) if raw.get("tuned") else None,
        raw=raw,
    )


def parse_curves(raw, datasets, scopes, path):
    """Checked ``curves`` section: ``{"label", "groups": {name: [(x, dataset)]}, "metric", "mode", "scope"}``."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("groups"), dict) or not raw["groups"]:
        raise SuiteError(f"{path}: curves needs a mapping 'groups': {{curve name: {{x value: dataset name}}}}")
    unknown = set(raw) - set(CURVE_KEYS)
    if unknown:
        raise SuiteError(f"{path}: curves has unknown keys {sorted(unknown)}; use {', '.join(CURVE_KEYS)}")
    groups = {}
    for name, points in raw["groups"].items():
        if not isinstance(points, dict) or not points:
            raise SuiteError(f"{path}: curves.groups.{name} must map x values to dataset names")
        parsed = []
        for x, dataset in points.items():
            try:
                x = float(x)
            except (TypeError, ValueError):
                raise SuiteError(f"{path}: curves.groups.{name}: x value {x!r} is not a number") from None
            if dataset not in datasets:
                raise SuiteError(f"{path}: curves.groups.{name}: dataset '{dataset}' is not in the suite's datasets")
            parsed.append((x, dataset))
        groups[str(name)] = sorted(parsed)
    scope = str(raw.get("scope", "all"))
    if scope not in scopes:
        raise SuiteError(f"{path}: curves.scope '{scope}' is not one of {', '.join(scopes)}")
    return {
        "label": str(raw.get("label", "x")),
        "groups": groups,
        "metric": str(raw["metric"]).lower() if raw.get("metric") else None,
        "mode": str(raw["mode"]) if raw.get("mode") else None,
        "scope": scope,
    }


def select(names, available, what):
    """``names`` (comma-separated string, list, ``all`` or None = all) checked against ``available``."""
    if names is None or names == "all" or names == ["all"]:
        return list(available)
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SuiteError(f"unknown {what} {unknown}; the suite defines: {', '.join(available)}")
    return list(dict.fromkeys(names))


def parse_set(items):
    """``--set KEY=VALUE`` strings -> ``{key: value}``, each value parsed as yaml (``3`` -> 3, ``[a, b]`` -> a
    list, ``null`` -> None, anything else stays a string); nothing is evaluated as Python."""
    overrides = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SuiteError(f"--set expects KEY=VALUE, got '{item}'")
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise SuiteError(f"--set {item}: the value is not valid yaml ({error})") from None
    return overrides
