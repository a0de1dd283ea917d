"""Benchmark suite: every model variant x dataset x seed, evaluated the same way, with tables, JSON and a plot.

    python -m recbole_crs.benchmark --datasets ml-100k-crs,lastfm-precrs --models all --seeds 3 \\
        --precrs-source /work/shared/data/precrs-lastfm --out benchmarks/results/suite

The suite file (default ``benchmarks/suite.yaml``) defines:

* ``common``: config for every run (hidden size, layers, max length, epochs, batch sizes, early stopping);
* ``datasets``: per dataset, config overrides (``config``), overrides for one model on it
  (``models: {<Model>: {...}}``, e.g. a pre-training budget), and optionally a ``convert`` recipe that builds
  the atomic files from a source folder (``--precrs-source``) when they are missing;
* ``variants``: named variants = a ``model`` plus config overrides. A variant with a ``pretrain`` section runs
  two stages the way RecBole's pre-training models (S3Rec) expect: ``train_stage: pretrain`` with those
  overrides, which writes ``<checkpoint_dir>/<model>-<dataset>-<pretrain_epochs>.pth``, then
  ``train_stage: finetune`` with ``pre_model_path`` set to that file; wall time counts both stages.

Config layers, later wins: the plugin's defaults (``Config``) -> ``common`` -> the dataset's ``config`` -> the
dataset's ``models.<model>`` -> the variant's ``config`` -> ``--epochs`` / ``--set KEY=VALUE`` -> what the
runner sets itself (``seed``, ``data_path``, ``checkpoint_dir``, ``crs_test_modes``, ``show_progress: False``).

Every run is evaluated in every mode of the suite's ``modes`` (any mix of all/first/confirmed/authors;
``authors`` is added automatically on a dataset whose ``.inter`` has the ``CANDIDATE_FIELD`` column and skipped on
one without it). Each test conversation is scored at each of its turns; a run records per mode the mean over
every evaluated state (``m``), over first turns (``turn1/m``) and last turns (``last/m``), the chance level of each
(``chance/...``) and the curve by turn (``test_results_by_turn``). Runs are isolated: each one works in its own
folder ``<out>/runs/<dataset>/<variant>/seed<seed>/`` (its cwd, ``checkpoint_dir``, ``run.log``), and its
checkpoints are deleted when it ends unless ``--keep-checkpoints``. With ``--jobs N`` (N > 1) every run is a
separate, fresh Python process (nothing is shared: cwd, argv, logging, torch threads are the process's own), N
at a time; the parent alone writes ``results.json``.

A failing run does not stop the suite (unless ``--fail-fast``): it is recorded with ``status: failed`` and the
error in the JSON, the table counts it (``ok/total`` runs, and ``failed`` where no seed succeeded), and the
command exits with status 1 once every run has been tried. ``results.json`` is rewritten (atomically) after every
finished run, so an interrupted suite keeps what it finished; ``--resume`` reuses finished runs whose effective
config (every yaml layer, model defaults included) is unchanged and keeps the runs of other variants/datasets
already in the file, so a suite can be built up in parts.

Outputs in ``--out``: ``results.json`` (every run: overrides, seed, validation and test metrics per mode and per
turn, wall time, error), ``results.md`` (per dataset: a chance row, every variant, the best baseline chosen on
validation and CRSPretrain's gain over it, for ``table_metrics`` x ``table_scopes`` in every mode; mean +- sample
std over seeds), ``ndcg10.png`` (the suite's ``plot_metric`` per variant and mode) and ``ndcg10_by_turn.png``
(the ``plot_metric`` by turn per variant in ``plot_mode``, chance dashed).
"""

import argparse
import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import math
import os
import platform
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
DEFAULT_SUITE = os.path.join(REPO_ROOT, "benchmarks", "suite.yaml")
DEFAULT_OUT = os.path.join(REPO_ROOT, "benchmarks", "results", "suite")
DEFAULT_DATA_PATH = os.path.join(REPO_ROOT, "dataset")
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
DEFAULT_MODES = ("all", "first", "confirmed")
AUTHORS_MODE = "authors"
# With one target per evaluated row Recall@K equals Hit@K; the authors' protocol reports Hit@K only.
METRIC_FALLBACK = {"recall": "hit"}
# Table scopes: name -> (key prefix in a mode's flat result dict, column label).
SCOPES = {"turn1": ("turn1/", "turn 1"), "last": ("last/", "last turn"), "all": ("", "all turns")}
DEFAULT_SCOPES = ("turn1", "last", "all")
CHANCE_PREFIX = "chance/"
DEFAULT_PLOT_MODE = "confirmed"
# Models of ours: their variants (the full pipeline and its ablations) are never baselines.
OUR_MODELS = ("CRSPretrain", "CRSFinetune")
# The variant whose gain over the best baseline the tables report.
OUR_VARIANT = "CRSPretrain"
# Config keys copied from each run's final config into the JSON (what the run actually used).
RESOLVED_KEYS = (
    "model", "dataset", "seed", "hidden_size", "embedding_size", "inner_size", "n_layers", "num_layers",
    "n_heads", "MAX_ITEM_LIST_LENGTH", "epochs", "train_batch_size", "eval_batch_size", "learning_rate",
    "stopping_step", "eval_step", "crs_candidates", "crs_test_modes", "valid_metric", "train_stage",
    "pretrain_epochs", "loss_type", "valid_metric_bigger",
)


# Keys that differ between runs of one variant by design (not by a change of the model's defaults).
VOLATILE_KEYS = ("seed", "data_path", "checkpoint_dir", "device", "pre_model_path")


class SuiteError(ValueError):
    """A problem with the suite file or the command line (nothing has run)."""


# ----------------------------------------------------------------------------------------------------------
# Suite file
# ----------------------------------------------------------------------------------------------------------
@dataclass
class Variant:
    name: str
    model: str
    config: dict = field(default_factory=dict)
    pretrain: dict = None  # overrides of the pre-training stage; None = one stage
    description: str = ""


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
    base_seed: int = 2020
    table_metrics: tuple = ("ndcg@10",)
    table_scopes: tuple = DEFAULT_SCOPES
    plot_metric: str = "ndcg@10"
    plot_mode: str = DEFAULT_PLOT_MODE
    threads: int = None
    curves: dict = None  # benchmark_curves.parse_curves(...) of the suite's `curves` section
    raw: dict = field(default_factory=dict)


def _mapping(value, where):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SuiteError(f"{where} must be a mapping, got {type(value).__name__}")
    return dict(value)


def load_suite(path):
    """Parse and check a suite file; see the module docstring for its sections."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            raw = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise SuiteError(f"suite file '{path}' does not exist") from None
    except yaml.YAMLError as error:
        raise SuiteError(f"suite file '{path}' is not valid yaml: {error}") from None
    unknown = set(raw) - {"common", "datasets", "variants", "modes", "base_seed", "table_metrics", "table_scopes",
                          "plot_metric", "plot_mode", "threads", "description", "curves"}
    if unknown:
        raise SuiteError(f"{path}: unknown top-level keys {sorted(unknown)}")
    datasets = {}
    for name, spec in _mapping(raw.get("datasets"), f"{path}: datasets").items():
        spec = _mapping(spec, f"{path}: datasets.{name}")
        bad = set(spec) - {"config", "models", "convert", "description"}
        if bad:
            raise SuiteError(f"{path}: datasets.{name} has unknown keys {sorted(bad)} (use config/models/convert)")
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
    variants = {}
    for name, spec in _mapping(raw.get("variants"), f"{path}: variants").items():
        spec = _mapping(spec, f"{path}: variants.{name}")
        bad = set(spec) - {"model", "config", "pretrain", "description"}
        if bad:
            raise SuiteError(f"{path}: variants.{name} has unknown keys {sorted(bad)} (use model/config/pretrain)")
        if not spec.get("model"):
            raise SuiteError(f"{path}: variants.{name} needs a 'model'")
        pretrain = spec.get("pretrain")
        if pretrain is not None:
            pretrain = _mapping(pretrain, f"{path}: variants.{name}.pretrain")
        variants[str(name)] = Variant(
            str(name), str(spec["model"]), _mapping(spec.get("config"), f"variants.{name}.config"), pretrain,
            str(spec.get("description", "")),
        )
    if not variants:
        raise SuiteError(f"{path}: no variants defined")
    modes = tuple(raw.get("modes") or DEFAULT_MODES)
    from recbole_crs.evaluation.candidates import CANDIDATE_MODES

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
    scopes = tuple(str(s).lower() for s in (raw.get("table_scopes") or DEFAULT_SCOPES))
    bad_scopes = [s for s in scopes if s not in SCOPES]
    if bad_scopes:
        raise SuiteError(f"{path}: table_scopes lists {bad_scopes}; use any of {', '.join(SCOPES)}")
    plot_mode = str(raw.get("plot_mode", DEFAULT_PLOT_MODE))
    if plot_mode not in CANDIDATE_MODES:
        raise SuiteError(f"{path}: plot_mode '{plot_mode}' is not a mode; use one of {', '.join(CANDIDATE_MODES)}")
    from recbole_crs.benchmark_curves import CurveError, parse_curves

    try:
        curves = parse_curves(raw.get("curves"), datasets, SCOPES)
    except CurveError as error:
        raise SuiteError(f"{path}: {error}") from None
    return Suite(
        path=os.path.abspath(path),
        common=_mapping(raw.get("common"), f"{path}: common"),
        datasets=datasets,
        variants=variants,
        modes=modes,
        base_seed=int(raw.get("base_seed", 2020)),
        table_metrics=tuple(m.lower() for m in (raw.get("table_metrics") or ("ndcg@10",))),
        table_scopes=scopes,
        plot_metric=str(raw.get("plot_metric", "ndcg@10")).lower(),
        plot_mode=plot_mode,
        threads=int(raw["threads"]) if raw.get("threads") else None,
        curves=curves,
        raw=raw,
    )


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


# ----------------------------------------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------------------------------------
def _inter_path(data_path, name):
    return os.path.join(data_path, name, f"{name}.inter")


def inter_header(data_path, name):
    """Field names of ``<data_path>/<name>/<name>.inter`` (``name:type`` headers), or None if missing."""
    path = _inter_path(data_path, name)
    if not os.path.isfile(path):
        return None
    with open(path, "r", encoding="utf-8") as f:
        return [column.split(":")[0] for column in f.readline().rstrip("\n").split("\t")]


def convert_command(spec, sources, data_path):
    """The converter argv that builds ``spec`` from its source folder (``{source}`` filled in)."""
    source = sources.get(spec.convert["source"])
    argv = [str(a).replace("{source}", source or "<" + spec.convert["source"] + ">") for a in spec.convert["argv"]]
    return argv + ["--out", os.path.join(data_path, spec.name)]


def prepare_datasets(suite, names, data_path, sources, log=print):
    """Make sure every dataset exists; run its ``convert`` recipe where the files are missing.

    The built-in datasets (ml-100k-crs, ml-100k-crs-targets, ml-100k-crs-targets-<X>: see
    :mod:`recbole_crs.data.ml100k`) are built by the plugin itself on first use. A dataset that is missing and
    cannot be built stops the suite before anything runs, with the exact command that would build it.
    """
    from recbole_crs.data.ml100k import ensure_builtin, is_builtin

    for name in names:
        spec = suite.datasets[name]
        if is_builtin(name):
            ensure_builtin(name, data_path)
            continue
        if inter_header(data_path, name) is not None:
            continue
        if spec.convert is None:
            raise SuiteError(f"dataset '{name}' has no atomic files in {os.path.join(data_path, name)}")
        argv = convert_command(spec, sources, data_path)
        if not sources.get(spec.convert["source"]):
            option = "--" + spec.convert["source"]
            raise SuiteError(
                f"dataset '{name}' is not in {os.path.join(data_path, name)}. Give its source folder with "
                f"{option} DIR, or build it with:\n  python -m recbole_crs.data.convert " + " ".join(argv)
            )
        from recbole_crs.data import convert

        log(f"preparing {name}: python -m recbole_crs.data.convert " + " ".join(argv))
        report = convert.run(convert.build_parser().parse_args(argv))
        log(str(report))


def dataset_modes(suite, data_path, dataset_name, candidate_field="candidate_items"):
    """The suite's modes on this dataset: ``authors`` only where the dataset has a fixed candidate list per
    evaluated row (added at the end when the suite does not list it, dropped where the dataset has none)."""
    header = inter_header(data_path, dataset_name) or []
    has_candidates = candidate_field in header
    modes = [m for m in suite.modes if m != AUTHORS_MODE or has_candidates]
    if has_candidates and AUTHORS_MODE not in modes:
        modes.append(AUTHORS_MODE)
    return modes


def check_variants(suite, variants, datasets, data_path):
    """Every variant's model exists, and every key that a variant (or a dataset's ``models.<model>``) overrides
    is a config key of that model.

    RecBole accepts any key and ignores the ones nothing reads, so a misspelt ablation key (or one the model
    does not have) would silently run the unablated model under the ablation's name. Checked before any run.
    """
    from recbole_crs.config import Config

    problems = []
    for name in variants:
        variant = suite.variants[name]
        try:
            with _no_argv():
                config = Config(model=variant.model, dataset=datasets[0], config_dict={"data_path": data_path})
        except (ValueError, KeyError, ImportError) as error:
            problems.append(f"variant '{name}': {error}")
            continue
        known = set(config.final_config_dict)
        sources = [(f"variant '{name}'", variant.config), (f"variant '{name}' (pretrain)", variant.pretrain or {})]
        sources += [(f"datasets.{d}.models.{variant.model}", suite.datasets[d].models.get(variant.model, {}))
                    for d in datasets]
        for where, overrides in sources:
            unknown = sorted(set(overrides) - known)
            if unknown:
                problems.append(
                    f"{where} sets {unknown}, which {variant.model} has no default for (not in its yaml files): "
                    "RecBole would ignore them silently. Check the spelling against the model's yaml, or pass "
                    "--no-key-check if the model reads the key without a default."
                )
    if problems:
        raise SuiteError("\n".join(dict.fromkeys(problems)))


@contextlib.contextmanager
def _no_argv():
    saved = sys.argv
    sys.argv = saved[:1] if saved else ["benchmark"]
    try:
        yield
    finally:
        sys.argv = saved


# ----------------------------------------------------------------------------------------------------------
# Runs
# ----------------------------------------------------------------------------------------------------------
@dataclass
class RunSpec:
    dataset: str
    variant: str
    seed: int
    config: dict  # everything passed as config_dict (the single-stage or the fine-tuning stage)
    pretrain_config: dict = None
    config_sha: str = None  # of the effective config (model yaml defaults included), see resolve_config_shas
    pretrain_config_sha: str = None

    @property
    def key(self):
        return (self.dataset, self.variant, self.seed)

    @property
    def fingerprint(self):
        """What defines the run's result: the effective config of each stage (not where it writes)."""
        if self.config_sha is not None:
            if self.pretrain_config is None:
                return self.config_sha
            return f"{self.config_sha}-{self.pretrain_config_sha}"
        payload = {k: v for k, v in self.config.items() if k not in VOLATILE_KEYS}
        pre = {k: v for k, v in (self.pretrain_config or {}).items() if k not in VOLATILE_KEYS}
        text = json.dumps([payload, pre], sort_keys=True, default=str)
        return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def config_sha(final_config_dict):
    """Hash of a final RecBole config without the keys that differ between seeds or run folders."""
    final = {k: _to_builtin(v) for k, v in final_config_dict.items() if k not in VOLATILE_KEYS}
    return hashlib.sha1(json.dumps(final, sort_keys=True).encode("utf-8")).hexdigest()[:12]


def resolve_config_shas(specs):
    """Fill in each spec's effective-config hash: its config_dict over every yaml layer, as the run will see
    it. ``--resume`` compares these, so an edited model yaml (not only an edited suite) reruns a run."""
    from recbole_crs.config import Config

    for spec in specs:
        with _no_argv():
            spec.config_sha = config_sha(
                Config(spec.config["model"], spec.dataset, config_dict=spec.config).final_config_dict
            )
            if spec.pretrain_config is not None:
                spec.pretrain_config_sha = config_sha(
                    Config(spec.config["model"], spec.dataset, config_dict=spec.pretrain_config).final_config_dict
                )
    return specs


def run_dir_for(out_dir, dataset, variant, seed):
    return os.path.join(out_dir, "runs", dataset, variant, f"seed{seed}")


def plan_runs(suite, datasets, variants, seeds, data_path, out_dir, overrides=None, candidate_field=None):
    """One RunSpec per dataset x variant x seed, in that nesting order (datasets outermost)."""
    overrides = dict(overrides or {})
    runs = []
    for dataset in datasets:
        field_name = candidate_field or {**suite.common, **suite.datasets[dataset].config}.get(
            "CANDIDATE_FIELD", "candidate_items"
        )
        modes = dataset_modes(suite, data_path, dataset, field_name)
        for name in variants:
            variant = suite.variants[name]
            for seed in seeds:
                run_dir = run_dir_for(out_dir, dataset, name, seed)
                dataset_spec = suite.datasets[dataset]
                config = {**suite.common, **dataset_spec.config, **dataset_spec.models.get(variant.model, {}),
                          **variant.config, **overrides}
                config.update(
                    model=variant.model,
                    dataset=dataset,
                    seed=seed,
                    data_path=data_path,
                    checkpoint_dir=os.path.join(run_dir, "saved"),
                    crs_test_modes=list(modes),
                    show_progress=False,
                )
                pretrain = None
                if variant.pretrain is not None:
                    pretrain = {**config, **variant.pretrain, "train_stage": "pretrain"}
                    pretrain["save_step"] = pretrain.get("pretrain_epochs")  # write the last epoch only
                    config["train_stage"] = "finetune"
                runs.append(RunSpec(dataset, name, seed, config, pretrain))
    return runs


@contextlib.contextmanager
def isolated_run(run_dir):
    """cwd = ``run_dir`` (RecBole writes ./log_tensorboard), RecBole's log into ``run_dir/run.log``, no argv.

    RecBole's ``Config`` reads ``--key=value`` from ``sys.argv``: the benchmark's own options must not leak in.
    """
    os.makedirs(run_dir, exist_ok=True)
    saved_cwd, saved_argv = os.getcwd(), sys.argv
    root = logging.getLogger()
    saved_level = root.level
    handler = logging.FileHandler(os.path.join(run_dir, "run.log"), encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s  %(message)s"))
    from recbole.utils.logger import RemoveColorFilter

    handler.addFilter(RemoveColorFilter())
    handler.setLevel(logging.INFO)
    # Console handlers (RecBole's init_logger, if something called it) are muted for the run.
    muted = [
        h for h in root.handlers if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]
    muted_levels = [h.level for h in muted]
    for h in muted:
        h.setLevel(logging.CRITICAL + 1)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    os.chdir(run_dir)
    sys.argv = saved_argv[:1] if saved_argv else ["benchmark"]
    try:
        yield
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        root.removeHandler(handler)
        handler.close()
        root.setLevel(saved_level)
        for h, level in zip(muted, muted_levels):
            h.setLevel(level)


def _to_builtin(value):
    """JSON-safe copy of config values and metric dicts (numpy/torch scalars, enums, tuples)."""
    if isinstance(value, dict):
        return {str(k): _to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_builtin(v) for v in value]
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):
        return _to_builtin(value.item())
    if hasattr(value, "name") and hasattr(value, "value"):  # enums such as ModelType
        return value.name
    return str(value)


def _close_trainer(trainer):
    writer = getattr(trainer, "tensorboard", None)
    if writer is not None:
        with contextlib.suppress(Exception):
            writer.close()


def _pretrain_stage(config_dict):
    """RecBole-style pre-training (``train_stage: pretrain``); returns (checkpoint path, epochs)."""
    from recbole.data import data_preparation
    from recbole.utils import init_seed

    from recbole_crs.config import Config
    from recbole_crs.quick_start import build_model, create_dataset
    from recbole_crs.utils import get_trainer

    config_dict = dict(config_dict)
    epochs = int(config_dict.get("pretrain_epochs") or 0)
    if epochs <= 0:
        raise SuiteError("a pretrain stage needs pretrain_epochs >= 1")
    config_dict["save_step"] = epochs  # only the last pre-training epoch is written
    config = Config(model=config_dict["model"], dataset=config_dict["dataset"], config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, _ = data_preparation(config, dataset)
    model = build_model(config, train_data)
    trainer = get_trainer(type(model).type, config["model"])(config, model)
    try:
        trainer.fit(train_data, valid_data, verbose=True, saved=True, show_progress=False)
    finally:
        _close_trainer(trainer)
    path = os.path.join(config["checkpoint_dir"], f"{config['model']}-{config['dataset']}-{epochs}.pth")
    if not os.path.isfile(path):
        raise RuntimeError(f"pre-training did not write {path}")
    return path, epochs


def _turn_keys_to_int(by_turn):
    """``{mode: {turn: metrics}}`` with int turns (JSON stores them as strings), turns in order."""
    return {
        mode: {int(turn): values for turn, values in sorted(turns.items(), key=lambda item: int(item[0]))}
        for mode, turns in (by_turn or {}).items()
    }


def _train_and_test_stage(config_dict):
    """The fine-tuning (or only) stage: ``quick_start.train_and_test`` (training, then the test set in every mode
    of ``crs_test_modes``); keeps its validation result, its test results per mode and per turn."""
    from recbole.utils import init_seed

    from recbole_crs.config import Config
    from recbole_crs import quick_start

    config = Config(model=config_dict["model"], dataset=config_dict["dataset"], config_dict=config_dict)
    # Taken before the dataset is built: the dataset writes into the config (e.g. alias_of_item_id).
    final_config = {k: _to_builtin(v) for k, v in sorted(config.final_config_dict.items())}
    final_sha = config_sha(config.final_config_dict)
    init_seed(config["seed"], config["reproducibility"])
    logging.getLogger().info(config)
    result, trainer = quick_start.train_and_test_with_trainer(config, saved=True, verbose=True)
    _close_trainer(trainer)
    losses = getattr(trainer, "train_loss_dict", None)
    record = {
        "resolved": {k: _to_builtin(config[k]) for k in RESOLVED_KEYS if k in config},
        # Every value the run used, model yaml defaults included: a model yaml edited between runs shows here.
        "final_config": final_config,
        "final_config_sha": final_sha,
        "best_valid_score": _to_builtin(result["best_valid_score"]),
        "valid_score_bigger": _to_builtin(result.get("valid_score_bigger", config["valid_metric_bigger"])),
        "best_valid_result": _to_builtin(result.get("best_valid_result")),
        "test_results": _to_builtin(result["test_results"]),
        "epochs_run": len(losses) if isinstance(losses, dict) else None,
    }
    if result.get("test_results_by_turn") is not None:
        record["test_results_by_turn"] = _to_builtin(result["test_results_by_turn"])
    return record


def execute_run(spec, run_dir, keep_checkpoints=False):
    """Run one spec in isolation; returns its JSON record (``status`` ok or failed, never raises Exception)."""
    record = {
        "dataset": spec.dataset,
        "variant": spec.variant,
        "model": spec.config["model"],
        "seed": spec.seed,
        "fingerprint": spec.fingerprint,
        "overrides": _to_builtin(spec.config),
        "pretrain_overrides": _to_builtin(spec.pretrain_config) if spec.pretrain_config else None,
        "run_dir": run_dir,
        "started_at": datetime.datetime.now().isoformat(timespec="seconds"),
        "pid": os.getpid(),  # the suite's own process with --jobs 1, the run's own process otherwise
        "stages": [],
    }
    if os.path.isdir(run_dir):
        shutil.rmtree(run_dir)  # a rerun starts clean
    started, cpu_started = time.perf_counter(), time.process_time()
    with isolated_run(run_dir):
        try:
            config = dict(spec.config)
            if spec.pretrain_config is not None:
                stage_started = time.perf_counter()
                path, epochs = _pretrain_stage(spec.pretrain_config)
                record["stages"].append(
                    {"stage": "pretrain", "epochs": epochs, "wall_s": round(time.perf_counter() - stage_started, 2)}
                )
                config["pre_model_path"] = path
                record["overrides"]["pre_model_path"] = path
            stage_started = time.perf_counter()
            record.update(_train_and_test_stage(config))
            if spec.config_sha is not None and record["final_config_sha"] != spec.config_sha:
                # A yaml file changed between planning and this run (e.g. a model's defaults were edited).
                record["config_changed_since_planned"] = True
            record["stages"].append(
                {"stage": "finetune" if spec.pretrain_config is not None else "train",
                 "wall_s": round(time.perf_counter() - stage_started, 2)}
            )
            record["status"] = "ok"
        except Exception as error:  # a failing run is recorded, the suite goes on
            record["status"] = "failed"
            record["error"] = {
                "type": type(error).__name__,
                "message": str(error),
                "traceback": traceback.format_exc(limit=-8),
            }
            logging.getLogger().error(traceback.format_exc())
    record["wall_s"] = round(time.perf_counter() - started, 2)
    # CPU seconds of this process: with one torch thread, about what the wall time would be on an idle machine.
    record["cpu_s"] = round(time.process_time() - cpu_started, 2)
    if not keep_checkpoints:
        shutil.rmtree(os.path.join(run_dir, "saved"), ignore_errors=True)
    return record


# ----------------------------------------------------------------------------------------------------------
# Results file
# ----------------------------------------------------------------------------------------------------------
def _git_state():
    """Commit of the repository and the files that differ from it (the code the runs used)."""
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True,
                                 timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit or None, "changed_files": [line[3:] for line in changed]}


def _environment():
    import torch

    return {
        "git": _git_state(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "gpu": torch.cuda.is_available(),
    }


def _read_json(path):
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)


def load_results(path):
    """A results.json payload. Files of older versions (runs without ``test_results_by_turn``,
    ``best_valid_result`` or ``table_scopes``) load as they are: their missing cells show ``-`` and the table
    says which runs to rerun. A file that is no results.json stops with a SuiteError saying why."""
    try:
        payload = _read_json(path)
    except json.JSONDecodeError as error:
        raise SuiteError(f"{path} is not valid JSON ({error}); restore it or start over with --overwrite") from None
    runs = payload.get("runs") if isinstance(payload, dict) else None
    if not isinstance(runs, list):
        raise SuiteError(f"{path} has no list of 'runs': not a results.json of python -m recbole_crs.benchmark")
    for index, run in enumerate(runs):
        missing = [k for k in ("dataset", "variant", "seed") if not isinstance(run, dict) or k not in run]
        if missing:
            raise SuiteError(f"{path}: run {index} lacks {missing}: not a results.json of this benchmark")
    return payload


def write_json(path, payload):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------------------
# Tables and plot
# ----------------------------------------------------------------------------------------------------------
def mean_std(values):
    """Mean and sample standard deviation (ddof 1; None for a single value)."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def metric_value(results_by_mode, mode, metric, scope="all", chance=False):
    """``metric`` in ``mode`` over ``scope`` (``turn1``, ``last`` or ``all`` turns), or its chance level.

    Keys: ``m``, ``turn1/m``, ``last/m`` and ``chance/`` + each. Recall@K falls back to Hit@K (equal with one
    target per row; the old authors' mode reported Hit@K only). None where the run has no such key (a run of the
    older evaluation has no per-turn or chance keys).
    """
    result = (results_by_mode or {}).get(mode)
    if not result:
        return None
    prefix = (CHANCE_PREFIX if chance else "") + SCOPES[scope][0]
    if prefix + metric in result:
        return result[prefix + metric]
    name, _, k = metric.partition("@")
    fallback = METRIC_FALLBACK.get(name)
    if fallback and f"{prefix}{fallback}@{k}" in result:
        return result[f"{prefix}{fallback}@{k}"]
    return None


def is_legacy_run(record):
    """A finished run of the evaluation before per-turn results (no ``test_results_by_turn``)."""
    return record.get("status") == "ok" and "test_results_by_turn" not in record


def _fmt(mean, std, digits=4):
    if mean is None:
        return "-"
    if std is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _ordered(values, preferred):
    seen = [v for v in preferred if v in values]
    return seen + [v for v in values if v not in seen]


def summarize(runs, datasets_order=(), variants_order=()):
    """``{dataset: {variant: summary}}`` over the runs' seeds (failed runs counted, not averaged)."""
    groups = {}
    for run in runs:
        groups.setdefault(run["dataset"], {}).setdefault(run["variant"], []).append(run)
    summary = {}
    for dataset in _ordered(list(groups), datasets_order):
        summary[dataset] = {}
        for variant in _ordered(list(groups[dataset]), variants_order):
            group = groups[dataset][variant]
            ok = [r for r in group if r.get("status") == "ok"]
            modes = []
            for r in ok:
                modes += [m for m in r.get("test_results", {}) if m not in modes]
            resolved = [r.get("resolved") or {} for r in ok]
            summary[dataset][variant] = {
                "model": group[0].get("model"),
                "runs": len(group),
                "ok": len(ok),
                "failed": [{"seed": r["seed"], "error": (r.get("error") or {}).get("type")} for r in group
                           if r.get("status") != "ok"],
                "seeds": sorted(r["seed"] for r in ok),
                "modes": modes,
                "ok_runs": ok,
                "wall_s": mean_std([r.get("wall_s") for r in ok]),
                "epochs_run": mean_std([r.get("epochs_run") for r in ok]),
                # Model selection uses this (validation), never the test results.
                "valid": mean_std([r.get("best_valid_score") for r in ok
                                   if isinstance(r.get("best_valid_score"), (int, float))]),
                "valid_bigger": all(r.get("valid_score_bigger", True) is not False for r in ok),
                "valid_metric": sorted({f"{x.get('valid_metric')} ({x.get('crs_candidates')})" for x in resolved
                                        if x.get("valid_metric")}),
                "legacy": sum(is_legacy_run(r) for r in ok),
                # More than one: the model's defaults changed between this variant's runs (yaml edited mid-suite).
                "config_shas": sorted({r["final_config_sha"] for r in ok if r.get("final_config_sha")}),
            }
    return summary


def is_ours(summary_entry):
    """The variant's model is ours (the full pipeline or an ablation of it): never a baseline."""
    return summary_entry.get("model") in OUR_MODELS


def best_baseline(variants):
    """``(name, summary)`` of the baseline (a variant whose model is not ours) with the best mean validation
    score (``best_valid_score``; higher or lower as the runs' ``valid_score_bigger`` says), or None.

    Test results play no part. A tie goes to the variant listed first.
    """
    candidates = [(name, s) for name, s in variants.items() if not is_ours(s) and s["valid"][0] is not None]
    if not candidates:
        return None
    bigger = all(s["valid_bigger"] for _, s in candidates)
    best = candidates[0]
    for name, s in candidates[1:]:
        if (s["valid"][0] > best[1]["valid"][0]) if bigger else (s["valid"][0] < best[1]["valid"][0]):
            best = (name, s)
    return best


def _metric_label(metric):
    return metric.replace("ndcg", "NDCG").replace("recall", "Recall").replace("mrr", "MRR").replace("hit", "Hit")


def table_columns(modes, metrics, scopes):
    """``[(mode, metric, scope)]``: the metric columns of a table, mode outermost, scope innermost."""
    return [(mode, metric, scope) for mode in modes for metric in metrics for scope in scopes]


def chance_levels(variants, columns):
    """``({column: value}, (variant, seed) it came from, [columns where runs disagree])``.

    The chance level depends only on the candidate sets, so it is the same for every model (and seed) on a
    dataset and mode: it is taken from the first finished run that has it, and every other run is checked.
    """
    values, source, differ = {}, None, []
    runs = [(name, r) for name, s in variants.items() for r in s["ok_runs"]]
    for column in columns:
        mode, metric, scope = column
        found = [(name, r, metric_value(r.get("test_results"), mode, metric, scope, chance=True))
                 for name, r in runs]
        found = [f for f in found if f[2] is not None]
        if not found:
            continue
        values[column] = found[0][2]
        source = source or (found[0][0], found[0][1]["seed"])
        if max(f[2] for f in found) - min(f[2] for f in found) > 1e-9:
            differ.append(column)
    return values, source, differ


def _gain(ours, base):
    if ours is None or base is None or base == 0:
        return "-"
    return f"{100.0 * (ours - base) / base:+.1f}%"


def markdown_tables(runs, metrics=("ndcg@10",), mode_order=DEFAULT_MODES + (AUTHORS_MODE,), datasets_order=(),
                    variants_order=(), scopes=DEFAULT_SCOPES):
    """One markdown table per dataset: ``metrics`` x ``scopes`` (turn 1 / last turn / all turns) in every mode.

    Rows: ``chance`` (expected metric of a uniformly random ranking of the same candidates, from the runs'
    ``chance/`` keys), every variant (mean ± sample std over seeds), ``best baseline`` (the non-ours variant with
    the best mean validation score, named) and the relative gain of ``CRSPretrain`` over it in %.
    """
    summary = summarize(runs, datasets_order, variants_order)
    blocks = []
    for dataset, variants in summary.items():
        modes = []
        for s in variants.values():
            modes += [m for m in s["modes"] if m not in modes]
        modes = _ordered(modes, mode_order)
        columns = table_columns(modes, metrics, scopes)
        headers = ["model", "runs ok"]
        for mode, metric, scope in columns:
            label = _metric_label(metric)
            legacy_authors = mode == AUTHORS_MODE and not any(
                metric in (r.get("test_results") or {}).get(mode, {})
                for s in variants.values() for r in s["ok_runs"]
            )
            if legacy_authors and metric.startswith("recall"):
                label = label.replace("Recall", "Hit")  # older runs: the authors' mode had Hit@K only
            headers.append(f"{mode} {label} {SCOPES[scope][1]}")
        headers += ["epochs", "wall s / run"]
        baseline = best_baseline(variants)
        valid_metrics = sorted({m for s in variants.values() for m in s["valid_metric"]})
        chosen_on = f"mean validation {' / '.join(valid_metrics) or 'score'}"
        lines = [
            f"### {dataset} (best baseline chosen on {chosen_on}, never on test)",
            "",
            "| " + " | ".join(headers) + " |",
            "|" + "---|" * len(headers),
        ]
        means = {}  # variant -> {column: mean}
        chance, chance_source, chance_differ = chance_levels(variants, columns)
        lines.append("| chance | - | " + " | ".join(
            f"{chance[c]:.4f}" if c in chance else "-" for c in columns) + " | - | - |")
        for variant, s in variants.items():
            runs_cell = f"{s['ok']}/{s['runs']}"
            if s["failed"]:
                runs_cell += " (failed: " + ", ".join(f"seed {f['seed']} {f['error']}" for f in s["failed"]) + ")"
            if len(s["config_shas"]) > 1:
                runs_cell += " (final configs differ between seeds!)"
            cells = [variant, runs_cell]
            means[variant] = {}
            for column in columns:
                if not s["ok"]:
                    cells.append("failed")
                    continue
                mode, metric, scope = column
                mean, std = mean_std([metric_value(r.get("test_results"), mode, metric, scope) for r in s["ok_runs"]])
                means[variant][column] = mean
                cells.append(_fmt(mean, std))
            cells.append(_fmt(*s["epochs_run"], digits=1) if s["ok"] else "-")
            cells.append(_fmt(*s["wall_s"], digits=0) if s["ok"] else "-")
            lines.append("| " + " | ".join(cells) + " |")
        if baseline is None:
            lines.append("| best baseline: none finished | - | " + " | ".join("-" for _ in columns) + " | - | - |")
        else:
            name, s = baseline
            cells = [f"best baseline: {name}", f"valid {_fmt(*s['valid'])}"]
            cells += [_fmt(*mean_std([metric_value(r.get("test_results"), *c) for r in s["ok_runs"]]))
                      for c in columns]
            lines.append("| " + " | ".join(cells) + " | - | - |")
        if OUR_VARIANT in variants:
            ours = means.get(OUR_VARIANT, {})
            base = means.get(baseline[0], {}) if baseline else {}
            lines.append(f"| gain of {OUR_VARIANT} over best baseline | - | " + " | ".join(
                _gain(ours.get(c), base.get(c)) for c in columns) + " | - | - |")
        dataset_runs = [r for r in runs if r["dataset"] == dataset]
        wall = sum(r.get("wall_s") or 0 for r in dataset_runs)
        lines += ["", f"{len(dataset_runs)} runs, {_duration(wall)} wall time in all."]
        notes = []
        if chance_source:
            notes.append(
                "`chance`: the exact expected metric of a uniformly random ranking of the same candidate sets; it "
                "is the same for every model on a dataset and mode, so it is taken from one finished run "
                f"({chance_source[0]} seed {chance_source[1]})"
                + (" and checked against every other run." if not chance_differ else
                   f"; **runs disagree on it** in {', '.join(' '.join(c) for c in chance_differ)}!")
            )
        baselines = [name for name, s in variants.items() if not is_ours(s)]
        if baseline is not None:
            notes.append(
                f"`best baseline`: of the baselines ({', '.join(baselines)}; variants of "
                f"{'/'.join(OUR_MODELS)} are ours, not baselines), the one with the best {chosen_on} "
                f"(`best_valid_score`, shown in its `runs ok` cell); test results play no part in the choice."
            )
        if OUR_VARIANT in variants and baseline is not None:
            notes.append(f"`gain`: (mean of {OUR_VARIANT} - mean of {baseline[0]}) / mean of {baseline[0]}, per column.")
        legacy = sum(s["legacy"] for s in variants.values())
        if legacy:
            notes.append(f"**{legacy} run(s) predate per-turn evaluation** (no turn-1, last-turn or chance keys: "
                         "those cells are `-`); rerun them with `--resume --rerun all`.")
        if notes:
            lines += [""] + [f"* {note}" for note in notes]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _save_figure_atomically(fig, path):
    """Write the PNG under a temporary name, then rename it: a reader never sees half a file."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        fig.savefig(tmp, dpi=120, format="png")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def plot_metric(runs, path, metric="ndcg@10", mode_order=DEFAULT_MODES + (AUTHORS_MODE,), datasets_order=(),
                variants_order=()):
    """Grouped bars: one panel per dataset, one group per variant, one bar per mode (all turns), error bar = std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize(runs, datasets_order, variants_order)
    if not summary:
        return None
    fig, axes = plt.subplots(
        len(summary), 1, figsize=(max(6.0, 1.1 * max(len(v) for v in summary.values()) + 2), 3.6 * len(summary)),
        squeeze=False,
    )
    for ax, (dataset, variants) in zip(axes[:, 0], summary.items()):
        modes = []
        for s in variants.values():
            modes += [m for m in s["modes"] if m not in modes]
        modes = _ordered(modes, mode_order)
        names = list(variants)
        width = 0.8 / max(1, len(modes))
        for j, mode in enumerate(modes):
            means, stds = [], []
            for name in names:
                values = [metric_value(r.get("test_results"), mode, metric) for r in variants[name]["ok_runs"]]
                mean, std = mean_std(values)
                means.append(mean if mean is not None else 0.0)
                stds.append(std or 0.0)
            xs = [i + (j - (len(modes) - 1) / 2) * width for i in range(len(names))]
            ax.bar(xs, means, width, yerr=stds, capsize=2, label=mode)
        for i, name in enumerate(names):
            if not variants[name]["ok"]:
                ax.text(i, 0, "failed", ha="center", va="bottom", rotation=90, color="red")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right")
        ax.set_ylabel(_metric_label(metric))
        ax.set_title(f"{dataset}: test {_metric_label(metric)} over all turns per candidate mode "
                     "(mean ± std over seeds)")
        if modes:
            ax.legend(title="crs_candidates", fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    _save_figure_atomically(fig, path)
    plt.close(fig)
    return path


def by_turn_curves(runs, metric="ndcg@10", mode=DEFAULT_PLOT_MODE, datasets_order=(), variants_order=()):
    """``{dataset: {"mode": m, "variants": {variant: [(turn, mean, std)]}, "chance": [(turn, value)]}}`` from the
    runs' ``test_results_by_turn`` (mean ± std over seeds at each turn). A dataset without ``mode`` in its runs
    uses its first mode that has per-turn results; datasets without any are left out."""
    summary = summarize(runs, datasets_order, variants_order)
    curves = {}
    for dataset, variants in summary.items():
        by_run = [(name, _turn_keys_to_int(r.get("test_results_by_turn")))
                  for name, s in variants.items() for r in s["ok_runs"] if r.get("test_results_by_turn")]
        available = []
        for _, by_turn in by_run:
            available += [m for m in by_turn if m not in available]
        if not available:
            continue
        chosen = mode if mode in available else _ordered(available, DEFAULT_MODES + (AUTHORS_MODE,))[0]
        per_variant, chance = {}, {}
        for name, by_turn in by_run:
            for turn, values in (by_turn.get(chosen) or {}).items():
                if values.get(metric) is not None:
                    per_variant.setdefault(name, {}).setdefault(turn, []).append(values[metric])
                if values.get(CHANCE_PREFIX + metric) is not None:
                    chance.setdefault(turn, values[CHANCE_PREFIX + metric])
        curves[dataset] = {
            "mode": chosen,
            "variants": {name: [(turn, *mean_std(values)) for turn, values in sorted(turns.items())]
                         for name, turns in per_variant.items()},
            "chance": sorted(chance.items()),
        }
    return curves


def plot_by_turn(runs, path, metric="ndcg@10", mode=DEFAULT_PLOT_MODE, datasets_order=(), variants_order=()):
    """Test ``metric`` by turn, one line per variant (mean over seeds, band = std), chance dashed; one panel per
    dataset. None (nothing written) when no run has per-turn results."""
    curves = by_turn_curves(runs, metric, mode, datasets_order, variants_order)
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(curves), 1, figsize=(8.0, 3.8 * len(curves)), squeeze=False)
    for ax, (dataset, curve) in zip(axes[:, 0], curves.items()):
        max_turn = 1
        for name, points in curve["variants"].items():
            turns = [p[0] for p in points]
            means = [p[1] for p in points]
            stds = [p[2] or 0.0 for p in points]
            max_turn = max(max_turn, *turns)
            line, = ax.plot(turns, means, marker="o", markersize=3, label=name)
            if any(stds):
                ax.fill_between(turns, [m - d for m, d in zip(means, stds)], [m + d for m, d in zip(means, stds)],
                                color=line.get_color(), alpha=0.12, linewidth=0)
        if curve["chance"]:
            turns = [t for t, _ in curve["chance"]]
            max_turn = max(max_turn, *turns)
            ax.plot(turns, [v for _, v in curve["chance"]], linestyle="--", color="black", label="chance")
        ax.set_xlim(0.5, max_turn + 0.5)
        ax.set_xticks(range(1, max_turn + 1, max(1, max_turn // 15)))
        ax.set_xlabel("turn")
        ax.set_ylabel(_metric_label(metric))
        ax.set_title(f"{dataset}: test {_metric_label(metric)} by turn, {curve['mode']} mode (mean over seeds)")
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    _save_figure_atomically(fig, path)
    plt.close(fig)
    return path


def plot_file_name(metric, suffix=""):
    """``ndcg@10`` -> ``ndcg10.png`` (``ndcg10_by_turn.png`` with suffix ``_by_turn``)."""
    return metric.replace("@", "") + suffix + ".png"


def _write_text_atomically(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_reports(payload, out_dir, suite=None):
    """results.md and the PNGs from a results payload (an older results.json without per-turn results too);
    returns the paths written."""
    runs = payload.get("runs", [])
    metrics = tuple(payload.get("table_metrics") or (suite.table_metrics if suite else ("ndcg@10",)))
    scopes = tuple(payload.get("table_scopes") or (suite.table_scopes if suite else DEFAULT_SCOPES))
    plot = payload.get("plot_metric") or (suite.plot_metric if suite else "ndcg@10")
    plot_mode = payload.get("plot_mode") or (suite.plot_mode if suite else DEFAULT_PLOT_MODE)
    datasets_order = tuple(payload.get("datasets_order") or ())
    variants_order = tuple(payload.get("variants_order") or ())
    mode_order = _ordered(list(DEFAULT_MODES + (AUTHORS_MODE,)), list(suite.modes) if suite else [])
    tables = markdown_tables(runs, metrics, mode_order=tuple(mode_order), datasets_order=datasets_order,
                             variants_order=variants_order, scopes=scopes)
    failed = [r for r in runs if r.get("status") != "ok"]
    header = [
        "# Benchmark results",
        "",
        f"Suite: `{payload.get('suite')}`. Test metrics, mean ± sample std over seeds, each over the test "
        "conversations' first turns (`turn 1`: the initial attribute only), last turns (`last turn`: the whole "
        "conversation) and every turn (`all turns`). `runs ok` = finished/planned runs; wall time per run covers "
        "dataset loading, every training stage and the test evaluation. Baselines are ranked on validation only.",
        "",
    ]
    if failed:
        header += [f"**{len(failed)} run(s) failed** (see `{RESULTS_JSON}`, key `error`).", ""]
    md_path = os.path.join(out_dir, RESULTS_MD)
    _write_text_atomically(md_path, "\n".join(header) + "\n" + tables)
    paths = [md_path]
    png_path = plot_metric(
        runs, os.path.join(out_dir, plot_file_name(plot)), plot, mode_order=tuple(mode_order),
        datasets_order=datasets_order, variants_order=variants_order,
    )
    by_turn_path = plot_by_turn(
        runs, os.path.join(out_dir, plot_file_name(plot, "_by_turn")), plot, plot_mode,
        datasets_order=datasets_order, variants_order=variants_order,
    )
    curves_path = None
    curves = payload.get("curves") if "curves" in payload else (suite.curves if suite else None)
    if curves:
        curves_md, curves_path = _write_curves(runs, curves, plot, plot_mode, out_dir, datasets_order, variants_order)
        _write_text_atomically(md_path, "\n".join(header) + "\n" + tables + "\n" + curves_md)
    return paths + [p for p in (png_path, by_turn_path, curves_path) if p]


def _write_curves(runs, curves, plot_metric_name, plot_mode, out_dir, datasets_order, variants_order):
    """The suite's curves (benchmark_curves): markdown tables and a plot; returns (markdown, png path)."""
    from recbole_crs.benchmark_curves import curve_points, curve_tables, plot_curves

    curves = dict(curves, metric=curves.get("metric") or plot_metric_name, mode=curves.get("mode") or plot_mode)
    summary = summarize(runs, datasets_order, variants_order)

    def value_of(run, chance=False):
        return metric_value(run.get("test_results"), curves["mode"], curves["metric"], curves["scope"], chance)

    points = curve_points(summary, curves, value_of, lambda run: value_of(run, chance=True))
    label = _metric_label(curves["metric"])
    markdown = f"## Curves: test {label} by {curves['label']}\n\n" + curve_tables(points, curves, label)
    path = plot_curves(points, curves, label, os.path.join(out_dir, plot_file_name(curves["metric"], "_curves")),
                       _save_figure_atomically)
    return markdown, path


# ----------------------------------------------------------------------------------------------------------
# Suite runner
# ----------------------------------------------------------------------------------------------------------
def _duration(seconds):
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def estimate_remaining(pending, finished):
    """Seconds left. A pending run costs the mean wall time of finished runs of its dataset and variant; else
    the variant's mean on another dataset scaled by how the two datasets compare on variants finished on
    both; else the mean of its dataset, of its variant, of every finished run, in that order."""
    if not finished:
        return None
    walls = {}
    for r in finished:
        walls.setdefault((r["dataset"], r["variant"]), []).append(r["wall_s"])
    means = {key: sum(v) / len(v) for key, v in walls.items()}

    def ratio(dataset, other):
        shared = [v for (d, v) in means if d == dataset and (other, v) in means]
        below = sum(means[(other, v)] for v in shared)
        return sum(means[(dataset, v)] for v in shared) / below if shared and below > 0 else None

    def average(values):
        values = list(values)
        return sum(values) / len(values) if values else None

    total = 0.0
    for spec in pending:
        estimate = means.get((spec.dataset, spec.variant))
        if estimate is None:
            scaled = []
            for (other, variant), mean in means.items():
                factor = ratio(spec.dataset, other) if variant == spec.variant else None
                if factor is not None:
                    scaled.append(mean * factor)
            estimate = average(scaled)
        for fallback in (
            lambda: average(m for (d, _), m in means.items() if d == spec.dataset),
            lambda: average(m for (_, v), m in means.items() if v == spec.variant),
            lambda: average(means.values()),
        ):
            if estimate is None:
                estimate = fallback()
        total += estimate
    return total


def _main_metric(record, metric):
    """``valid=<best_valid_score> | <mode> <metric> turn1/last/all=...`` for the progress line."""
    results = record.get("test_results") or {}
    mode = (record.get("resolved") or {}).get("crs_candidates") or record["overrides"].get("crs_candidates")
    parts = []
    if isinstance(record.get("best_valid_score"), (int, float)):
        parts.append(f"valid={record['best_valid_score']:.4f}")
    values = [(scope, metric_value(results, mode, metric, scope)) for scope in ("turn1", "last", "all")]
    values = [(scope, v) for scope, v in values if v is not None]
    if values:
        parts.append(f"test {mode} {metric} " + " ".join(f"{scope}={v:.4f}" for scope, v in values))
    return ", ".join(parts)


def run_suite(suite, datasets, variants, seeds, out_dir, threads=None, jobs=1, **kwargs):
    """Run every dataset x variant x seed; write results.json after each run, then results.md and the plots.

    ``threads`` (default: the suite's ``threads``) sets torch's intra-op threads of each run (with ``jobs`` 1 the
    suite's own process, restored afterwards); on a shared 2-core machine one thread avoids oversubscription,
    which cost 4-5x the run time. ``jobs`` > 1 runs that many runs at a time, each in its own Python process
    (without ``threads``: cpu_count // jobs threads each). Returns the results payload (``payload['runs']``: one
    record per run). Keyword arguments: see :func:`_run_suite`.
    """
    import torch

    jobs = int(jobs or 1)
    if jobs < 1:
        raise SuiteError("--jobs must be at least 1")
    previous_threads = torch.get_num_threads()
    threads = threads or suite.threads
    if jobs > 1 and not threads:
        threads = max(1, (os.cpu_count() or 1) // jobs)
    if threads:
        torch.set_num_threads(threads)
    try:
        return _run_suite(suite, datasets, variants, seeds, out_dir, jobs=jobs, threads=threads, **kwargs)
    finally:
        torch.set_num_threads(previous_threads)


def _record_path(run_dir):
    """Where a run's process leaves its record for the parent (next to the run folder, which a run wipes)."""
    return os.path.normpath(run_dir) + ".record.json"


def _task_path(run_dir):
    return os.path.normpath(run_dir) + ".task.json"


def _worker_main(task_path):
    """Entry point of a run's own process (``--jobs`` > 1): run the task file's spec, leave its record."""
    task = _read_json(task_path)
    import torch

    if task["threads"]:
        torch.set_num_threads(task["threads"])
    record = execute_run(RunSpec(**task["spec"]), task["run_dir"], task["keep_checkpoints"])
    write_json(task["record_path"], record)


WORKER_COMMAND = "import sys; from recbole_crs.benchmark import _worker_main; _worker_main(sys.argv[1])"


def _lost_run_record(spec, run_dir, exitcode, wall_s):
    """The record of a run whose process died before it could write one (killed, out of memory, crash)."""
    return {
        "dataset": spec.dataset, "variant": spec.variant, "model": spec.config["model"], "seed": spec.seed,
        "fingerprint": spec.fingerprint, "overrides": _to_builtin(spec.config),
        "pretrain_overrides": _to_builtin(spec.pretrain_config) if spec.pretrain_config else None,
        "run_dir": run_dir, "stages": [], "status": "failed",
        "error": {"type": "ProcessDied", "traceback": None,
                  "message": f"the run's process exited with code {exitcode} before writing its record; "
                             f"see {os.path.join(run_dir, 'run.log')}"},
        "wall_s": round(wall_s, 2), "cpu_s": None,
    }


def _run_in_processes(todo, out_dir, keep_checkpoints, jobs, threads, on_start, on_finish, should_stop,
                      poll_s=0.2):
    """Run ``todo`` (index, spec) pairs ``jobs`` at a time, each in a fresh Python process.

    A run's process is ``python -c`` + a task file (the spec); it imports this checkout of recbole_crs
    (``PYTHONPATH``), nothing of the suite's process: not its ``__main__``, torch/OpenMP state, monkeypatches,
    cwd, argv or logging. ``on_start(index, spec, remaining)`` and ``on_finish(index, record, remaining)`` are
    called in this (the parent) process, so only the parent writes results.json; ``should_stop()`` stops
    starting new runs (the runs in flight finish).
    """
    import subprocess

    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in [env.get("PYTHONPATH")] if p])
    queue = list(todo)
    running = []  # (index, spec, process, run_dir, started)
    try:
        while queue or running:
            while queue and len(running) < jobs and not should_stop():
                index, spec = queue.pop(0)
                run_dir = run_dir_for(out_dir, *spec.key)
                os.makedirs(os.path.dirname(run_dir), exist_ok=True)
                for path in (_record_path(run_dir), _task_path(run_dir)):
                    if os.path.exists(path):
                        os.remove(path)
                write_json(_task_path(run_dir), {
                    "spec": _to_builtin(dataclasses.asdict(spec)), "run_dir": run_dir, "threads": threads,
                    "keep_checkpoints": keep_checkpoints, "record_path": _record_path(run_dir),
                })
                on_start(index, spec, [s for _, s in queue] + [entry[1] for entry in running] + [spec])
                process = subprocess.Popen([sys.executable, "-c", WORKER_COMMAND, _task_path(run_dir)], env=env)
                running.append((index, spec, process, run_dir, time.perf_counter()))
            if not running:
                break
            ended = [entry for entry in running if entry[2].poll() is not None]
            if not ended:
                time.sleep(poll_s)
                continue
            for entry in ended:
                running.remove(entry)
                index, spec, process, run_dir, started = entry
                try:
                    record = _read_json(_record_path(run_dir))
                    os.remove(_record_path(run_dir))
                except (OSError, ValueError):
                    record = _lost_run_record(spec, run_dir, process.returncode, time.perf_counter() - started)
                with contextlib.suppress(OSError):
                    os.remove(_task_path(run_dir))
                on_finish(index, record, [s for _, s in queue] + [e[1] for e in running])
    finally:
        for index, spec, process, run_dir, started in running:
            process.terminate()
            process.wait()


def _run_suite(suite, datasets, variants, seeds, out_dir, data_path=DEFAULT_DATA_PATH, overrides=None, sources=None,
               resume=False, rerun=(), fail_fast=False, keep_checkpoints=False, key_check=True, log=print,
               command=None, jobs=1, threads=None):
    out_dir = os.path.abspath(out_dir)
    data_path = os.path.abspath(data_path)
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, RESULTS_JSON)
    previous, invocations = [], []
    if os.path.exists(json_path):
        if not resume:
            raise SuiteError(
                f"{json_path} exists: pass --resume to reuse its finished runs and add to it, --overwrite to "
                "start over, or another --out"
            )
        old = load_results(json_path)
        previous, invocations = old.get("runs", []), list(old.get("invocations", []))
    prepare_datasets(suite, datasets, data_path, sources or {}, log=log)
    if key_check:
        check_variants(suite, variants, datasets, data_path)
    specs = resolve_config_shas(plan_runs(suite, datasets, variants, seeds, data_path, out_dir, overrides))

    planned_keys = {spec.key for spec in specs}
    reusable = {
        (r["dataset"], r["variant"], r["seed"]): r for r in previous if r.get("status") == "ok"
    }
    kept = [r for r in previous if (r["dataset"], r["variant"], r["seed"]) not in planned_keys]
    payload = {
        "suite": suite.path,
        "suite_config": _to_builtin(suite.raw),
        "command": command,
        "environment": _environment(),
        "started_at": datetime.datetime.now().isoformat(timespec="seconds"),
        "table_metrics": list(suite.table_metrics),
        "table_scopes": list(suite.table_scopes),
        "plot_metric": suite.plot_metric,
        "plot_mode": suite.plot_mode,
        "curves": suite.curves,
        "datasets_order": _ordered(list(dict.fromkeys(datasets)), list(suite.datasets)),
        "variants_order": list(suite.variants),
        "invocations": invocations,
        "runs": list(kept),
    }
    invocation = {"command": command, "started_at": payload["started_at"], "environment": payload["environment"],
                  "runs_planned": len(specs), "jobs": jobs}
    invocations.append(invocation)
    done = {}  # key -> record, reused or finished now; results.json lists them in plan order
    todo, finished = [], []
    legacy = 0
    for spec in specs:
        old = reusable.get(spec.key)
        if old is not None and old.get("fingerprint") == spec.fingerprint and spec.variant not in rerun:
            done[spec.key] = old
            legacy += is_legacy_run(old)
            log(f"reuse  {spec.dataset} {spec.variant} seed={spec.seed} (finished earlier, same config)")
        else:
            todo.append(spec)
    if legacy:
        log(f"WARNING: {legacy} reused run(s) have no per-turn results (an older evaluation); their turn-1, "
            "last-turn and chance cells stay empty: rerun them with --resume --rerun all")

    def sync():
        payload["runs"] = list(kept) + [done[spec.key] for spec in specs if spec.key in done]
        write_json(json_path, payload)

    sync()
    log(f"{len(todo)} run(s) to do ({len(specs) - len(todo)} reused) -> {out_dir}"
        + (f", {jobs} at a time in separate processes ({threads} torch thread(s) each)" if jobs > 1 else ""))
    suite_started = time.perf_counter()
    stop = []

    def eta_of(remaining):
        eta = estimate_remaining(remaining, finished)
        return eta / min(jobs, len(remaining)) if eta is not None and remaining else eta

    def on_start(index, spec, remaining):
        eta = eta_of(remaining)
        log(
            f"[{index}/{len(todo)}] start  {spec.dataset} {spec.variant} seed={spec.seed}"
            f" | elapsed {_duration(time.perf_counter() - suite_started)}"
            + (f", ETA {_duration(eta)}" if eta is not None else "")
        )

    def on_finish(index, record, remaining):
        finished.append(record)
        done[(record["dataset"], record["variant"], record["seed"])] = record
        sync()
        eta = eta_of(remaining)
        if record["status"] == "ok":
            outcome = f"ok in {_duration(record['wall_s'])}: {_main_metric(record, suite.plot_metric)}"
            if record.get("config_changed_since_planned"):
                outcome += " (WARNING: a yaml file changed since the suite was planned; see final_config)"
        else:
            outcome = f"FAILED after {_duration(record['wall_s'])}: {record['error']['type']}: " + (
                record["error"]["message"].splitlines() or [""]
            )[0][:200]
        log(
            f"[{index}/{len(todo)}] {outcome}"
            + (f" | {len(finished)}/{len(todo)} done" if jobs > 1 else "")
            + (f" | ETA {_duration(eta)}" if eta is not None and remaining else "")
        )
        if record["status"] != "ok" and fail_fast and not stop:
            stop.append(True)
            log("--fail-fast: stopping after the first failed run" + (" (runs in flight finish)" if jobs > 1 else ""))

    numbered = list(enumerate(todo, start=1))
    if jobs > 1:
        _run_in_processes(numbered, out_dir, keep_checkpoints, jobs, threads, on_start, on_finish, lambda: bool(stop))
    else:
        for index, spec in numbered:
            if stop:
                break
            on_start(index, spec, todo[index - 1:])
            record = execute_run(spec, run_dir_for(out_dir, *spec.key), keep_checkpoints)
            on_finish(index, record, todo[index:])
    payload["finished_at"] = datetime.datetime.now().isoformat(timespec="seconds")
    payload["suite_wall_s"] = round(time.perf_counter() - suite_started, 2)
    invocation.update(
        finished_at=payload["finished_at"], wall_s=payload["suite_wall_s"], runs_done=len(finished),
        runs_reused=len(specs) - len(todo),
    )
    sync()
    paths = write_reports(payload, out_dir, suite)
    log("\n".join(f"wrote {path}" for path in [json_path, *paths]))
    return payload


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------
def _parse_set(items):
    overrides = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SuiteError(f"--set expects KEY=VALUE, got '{item}'")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m recbole_crs.benchmark",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--suite", default=DEFAULT_SUITE, help="suite yaml (default: benchmarks/suite.yaml)")
    parser.add_argument("--datasets", default=None, help="comma-separated dataset names of the suite (default: all)")
    parser.add_argument("--models", default=None, help="comma-separated variant names of the suite, or 'all'")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds: base_seed, base_seed+1, ... (default 3)")
    parser.add_argument("--base-seed", type=int, default=None, help="first seed (default: the suite's base_seed)")
    parser.add_argument("--epochs", type=int, default=None, help="override 'epochs' for every run")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override for every run "
                        "(yaml value, repeatable), e.g. --set train_batch_size=1024")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per run (default: the suite's 'threads', else torch's default)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at a time, each in its own process (default 1: one run after the other, in this "
                        "process); without --threads each gets cpu_count // jobs torch threads")
    parser.add_argument("--data-path", default=DEFAULT_DATA_PATH, help="folder of the datasets (default: dataset/)")
    parser.add_argument("--precrs-source", default=None,
                        help="folder with the authors' Last.fm files; builds lastfm-precrs when missing")
    parser.add_argument("--out", default=DEFAULT_OUT, help="results folder (default: benchmarks/results/suite)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse finished runs in <out>/results.json whose config is unchanged, keep the others")
    parser.add_argument("--rerun", default=None, metavar="VARIANTS",
                        help="with --resume: rerun these variants (comma-separated, or 'all') even if unchanged, "
                        "e.g. after their model's code changed (the fingerprint covers configs, not code)")
    parser.add_argument("--overwrite", action="store_true", help="discard an existing <out>/results.json")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failed run")
    parser.add_argument("--no-key-check", action="store_true",
                        help="do not require a variant's config keys to be keys of its model's config")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep each run's checkpoints")
    parser.add_argument("--report-only", action="store_true", help="rewrite results.md and the plot from results.json")
    parser.add_argument("--dry-run", action="store_true", help="list the planned runs and their config, run nothing")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    log = lambda message: print(message, flush=True)  # noqa: E731
    try:
        out_dir = os.path.abspath(args.out)
        if args.report_only:
            json_path = os.path.join(out_dir, RESULTS_JSON)
            if not os.path.exists(json_path):
                raise SuiteError(f"--report-only: {json_path} does not exist")
            suite = load_suite(args.suite) if os.path.exists(args.suite) else None
            payload = load_results(json_path)
            for path in write_reports(payload, out_dir, suite):
                log(f"wrote {path}")
            return 0
        suite = load_suite(args.suite)
        datasets = select(args.datasets, list(suite.datasets), "datasets")
        variants = select(args.models, list(suite.variants), "models")
        if args.seeds < 1:
            raise SuiteError("--seeds must be at least 1")
        base = suite.base_seed if args.base_seed is None else args.base_seed
        seeds = list(range(base, base + args.seeds))
        overrides = _parse_set(args.set)
        if args.epochs is not None:
            overrides["epochs"] = args.epochs
        sources = {"precrs-source": os.path.abspath(args.precrs_source) if args.precrs_source else None}
        if args.dry_run:
            if not args.no_key_check:
                check_variants(suite, variants, datasets, os.path.abspath(args.data_path))
            for spec in plan_runs(suite, datasets, variants, seeds, os.path.abspath(args.data_path), out_dir,
                                  overrides):
                extra = f" (pretrain: {json.dumps(_to_builtin(spec.pretrain_config))})" if spec.pretrain_config else ""
                log(f"{spec.dataset} {spec.variant} seed={spec.seed}: {json.dumps(_to_builtin(spec.config))}{extra}")
            return 0
        if args.overwrite:
            json_path = os.path.join(out_dir, RESULTS_JSON)
            if os.path.exists(json_path):
                os.remove(json_path)
        rerun = select(args.rerun, list(suite.variants), "--rerun variants") if args.rerun else ()
        payload = run_suite(
            suite, datasets, variants, seeds, out_dir, data_path=args.data_path, overrides=overrides,
            sources=sources, resume=args.resume, rerun=rerun, fail_fast=args.fail_fast,
            keep_checkpoints=args.keep_checkpoints, threads=args.threads, jobs=args.jobs,
            key_check=not args.no_key_check, log=log,
            command=["python", "-m", "recbole_crs.benchmark"] + list(sys.argv[1:] if argv is None else argv),
        )
    except SuiteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failed = [r for r in payload["runs"] if r.get("status") != "ok"]
    if failed:
        names = ", ".join(f"{r['dataset']}/{r['variant']}/seed{r['seed']}" for r in failed)
        log(f"{len(failed)} run(s) failed: {names}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
