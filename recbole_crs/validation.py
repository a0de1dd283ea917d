"""Every check of a run's configuration, done before anything is trained or written.

:func:`validate` is the one owner: ``quick_start`` calls it before the logger, the dataset, the dataset cache or
any checkpoint is created, so a wrong value costs seconds, not a trained stage. It checks

* unknown keys given by the user (command line, ``config_dict``, config files), with a "did you mean";
* the type and range of every plugin key and of the RecBole keys every run uses (:data:`GENERAL_RULES`,
  :data:`PLUGIN_MODEL_RULES`), and the combinations (``crs_stages`` with ``pretrained_path`` / a generator,
  ``valid_metric`` among the computed metrics, ``hidden_size`` a multiple of ``n_heads``);
* the multi-process options (:func:`check_launch`, :func:`check_distributed`): ``nproc``, ``world_size``,
  ``ip``, ``port``, ``group_offset`` of the launcher (``run_recbole_crs.py --nproc``, ``quick_start.run``), the
  keys it hands each process, and one GPU per process when they run on CUDA;
* the file system: ``data_path`` readable, ``checkpoint_dir`` writable (created if missing), the checkpoint
  files named by ``generator_path`` / ``pretrained_path`` present.

Each problem is one line naming the key, the problem and the fix; all of them are raised together as one
:class:`~recbole_crs.errors.CRSConfigError`. Models and trainers reuse :func:`check_keys` for their own keys, so
a rule exists once.
"""

import difflib
import functools
import glob
import math
import os
import tempfile

import yaml

from recbole_crs.errors import CRSConfigError

# --------------------------------------------------------------------------------------------------------------
# Rules: value -> None (fine) or the text after "<key> must be ..."
# --------------------------------------------------------------------------------------------------------------


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


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def integer(minimum, example, none_ok=False, none_text=None):
    what = f"an integer >= {minimum}" + (f" {none_text}" if none_text else " (or ~)" if none_ok else "")
    return Rule(lambda v: _is_int(v) and v >= minimum, what, example, none_ok=none_ok)


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
        if not _is_number(v):
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


class _RemovedRule(Rule):
    def __init__(self, message):
        super().__init__(lambda v: False, "", none_ok=True)
        self.message = message

    def error(self, key, value):
        return None if value is None else f"{key} (got {value!r}) {self.message}"


# Keys every run reads (RecBole's training loop and the plugin's evaluation): checked for every model.
GENERAL_RULES = {
    "epochs": integer(1, 20),
    "learning_rate": number(0, example=0.001),
    "train_batch_size": integer(1, 256),
    "eval_batch_size": integer(1, 4096),
    "stopping_step": integer(0, 3),
    "MAX_ITEM_LIST_LENGTH": integer(1, 20),
    "weight_decay": number(0, low_open=False, example=0.0),
    "seed": Rule(_is_int, "an integer", 2020),
    "use_gpu": boolean(),
    "show_progress": boolean(),
    "reproducibility": boolean(),
    "crs_sequential_protocol": boolean(none_ok=True),
    "ATTRIBUTE_FIELD": text(),
    "CONFIRMED_FIELD": text(example="confirmed_attributes"),
    "REJECTED_FIELD": text(none_ok=True, example="rejected_items"),
    "CANDIDATE_FIELD": text(none_ok=True, example="candidate_items"),
    "SPLIT_FIELD": text(none_ok=True, example="split"),
    "CONFIRMED_TURN_FIELD": text(none_ok=True, example="confirmed_turns"),
    "REJECTED_TURN_FIELD": text(none_ok=True, example="rejected_turns"),
    "crs_test_modes": Rule(lambda v: isinstance(v, (list, tuple)), "a list of candidate modes (or ~)",
                           "[all, first, confirmed]", none_ok=True),
}

_PROBABILITY = dict(low=0, high=1, low_open=False, high_open=True, example=0.2)

# Keys of the plugin's models: checked when the model's own yaml (properties/model/<model>.yaml) has the key,
# so a RecBole model's key of the same name (its meaning may differ) is left to RecBole.
PLUGIN_MODEL_RULES = {
    # encoders
    "hidden_size": integer(1, 32),
    "inner_size": integer(1, 64),
    "n_layers": integer(1, 1),
    "attribute_n_layers": integer(1, 1),
    "n_heads": integer(1, 2),
    "hidden_dropout_prob": number(**_PROBABILITY),
    "attn_dropout_prob": number(**_PROBABILITY),
    "hidden_act": one_of(("gelu", "relu", "swish", "tanh", "sigmoid")),
    "layer_norm_eps": number(0, example=1e-12),
    "initializer_range": number(0, example=0.02),
    "max_attribute_length": integer(1, 10),
    # pipeline
    "generator_path": text(none_ok=True, example="saved/SASRec-ml-100k-crs.pth"),
    "pretrained_path": text(none_ok=True, example="saved/CRSPretrain-ml-100k-crs.pth"),
    "torch_threads": integer(1, 1, none_ok=True, none_text="(or ~ to keep torch's setting)"),
    # negative generator
    "generator_temperature": number(0, example=2.0),
    "generator_epochs": integer(1, 10),
    "generator_learning_rate": number(0, example=0.002),
    "generator_config": Rule(lambda v: isinstance(v, dict), "a mapping of SASRec keys (or ~)", "{n_layers: 1}",
                             none_ok=True),
    # pre-training
    "pretrain_epochs": integer(1, 50),
    "pretrain_learning_rate": number(0, example=0.002),
    "pretrain_stride": integer(1, 1, none_ok=True, none_text="(or ~ for MAX_ITEM_LIST_LENGTH + 1)"),
    "pretrain_batch_size": integer(1, 256, none_ok=True, none_text="(or ~ for train_batch_size)"),
    "uniform_warmup_epochs": integer(0, 0, none_ok=True),
    "negatives_exclude_positives": boolean(none_ok=True),
    "mask_ratio": number(0, 1, low_open=False, high_open=False, example=0.2),
    "n_negatives": integer(1, 16),
    "sad_substitute_rate": Rule(
        lambda v: _is_number(v) and 0 < v < 1, "a number strictly between 0 and 1",
        fix="set it to the fraction of attribute slots SAD substitutes, e.g. sad_substitute_rate: 0.3 "
        "(sad_weight: 0 turns SAD off)",
    ),
    "substitute_k": _RemovedRule(
        "was replaced by sad_substitute_rate: remove substitute_k and set sad_substitute_rate, the fraction of "
        "attribute slots SAD substitutes (e.g. 0.3)."
    ),
    "mip_weight": number(0, low_open=False, example=1.0),
    "sad_weight": number(0, low_open=False, example=0.1),
    # fine-tuning
    "loss_type": one_of(("CE", "BPR")),
    "bpr_negatives": integer(1, 1),
    "rejected_weight": number(0, low_open=False, example=0.0, none_ok=True),
    # AttrFM
    "embedding_size": integer(1, 64),
    "n_uniform_negatives": integer(0, 1),
    "n_hard_negatives": integer(0, 1),
    "use_rejected_negatives": boolean(),
    "attribute_loss_weight": number(0, low_open=False, example=1.0),
    "reg_weight": number(0, low_open=False, example=1e-4),
}

REMOVED_KEYS = ("substitute_k",)


def _rule(key):
    return GENERAL_RULES.get(key) or PLUGIN_MODEL_RULES.get(key)


def check_keys(config, keys):
    """Raise :class:`CRSConfigError` for the first of ``keys`` whose value in ``config`` breaks its rule.

    For models and trainers built without :func:`validate` (tests, notebooks): the same rules, one place.
    """
    for key in keys:
        message = _rule(key).error(key, config[key])
        if message:
            raise CRSConfigError(message)


def value_error(config, key, value):
    """The one-line error for ``key: value`` in ``config``'s run (None if fine or if no rule applies)."""
    if key in GENERAL_RULES:
        return GENERAL_RULES[key].error(key, value)
    if key in PLUGIN_MODEL_RULES and (key in _plugin_model_keys(config["model"]) or key in REMOVED_KEYS):
        return PLUGIN_MODEL_RULES[key].error(key, value)
    if key == "loss_type":
        allowed = _recbole_loss_types(config)
        if allowed and value not in allowed:
            return f"loss_type must be one of {', '.join(allowed)} for {config['model']}, got {value!r}: fix it, " \
                f"e.g. loss_type: {allowed[0]}"
    return None


# --------------------------------------------------------------------------------------------------------------
# Known keys
# --------------------------------------------------------------------------------------------------------------
def _yaml_keys(path):
    with open(path, "r", encoding="utf-8") as f:
        content = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return set(content) if isinstance(content, dict) else set()


@functools.lru_cache(maxsize=1)
def recbole_keys():
    """Keys of RecBole's own yamls (overall, dataset defaults, quick-start layers, every model) and argument
    lists, and the keys RecBole's Config and its multi-process launcher set themselves."""
    import recbole
    from recbole.utils import argument_list

    root = os.path.join(os.path.dirname(recbole.__file__), "properties")
    files = [os.path.join(root, "overall.yaml"), os.path.join(root, "dataset", "sample.yaml"),
             os.path.join(root, "dataset", "ml-100k.yaml")]
    files += glob.glob(os.path.join(root, "quick_start_config", "*.yaml"))
    files += glob.glob(os.path.join(root, "model", "*.yaml"))
    keys = set()
    for path in files:
        keys |= _yaml_keys(path)
    for name in ("general_arguments", "training_arguments", "evaluation_arguments", "dataset_arguments"):
        keys |= set(getattr(argument_list, name))
    keys |= {
        "model", "dataset", "config_files", "data_path", "MODEL_TYPE", "MODEL_INPUT_TYPE", "eval_type",
        "valid_metric_bigger", "device", "single_spec", "local_rank", "gpu_id", "train_neg_sample_args",
        "valid_neg_sample_args", "test_neg_sample_args", "nproc", "world_size", "offset", "ip", "port",
    }
    return frozenset(keys)


def _plugin_yamls(pattern):
    from recbole_crs.config import PROPERTIES_DIR

    return glob.glob(os.path.join(PROPERTIES_DIR, pattern))


def _plugin_model_keys(model):
    """The keys of the model's plugin yamls (its shared layers and its own file)."""
    from recbole_crs.config import model_yaml_files

    return set().union(*(_yaml_keys(path) for path in model_yaml_files(model) if os.path.isfile(path)))


def known_keys(config):
    """Every key a run may set: RecBole's, the plugin's (all its yamls) and this run's internal layers."""
    keys = set(recbole_keys()) | set(config.internal_config_dict)
    for pattern in ("overall.yaml", os.path.join("model", "*.yaml"), os.path.join("dataset", "*.yaml")):
        for path in _plugin_yamls(pattern):
            keys |= _yaml_keys(path)
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


# --------------------------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------------------------
LAUNCHER_OPTIONS = ("nproc", "world_size", "ip", "port", "group_offset")
# The config keys the launcher sets in every process it starts (RecBole's names: group_offset -> offset).
LAUNCHED_KEYS = ("nproc", "world_size", "ip", "port", "offset")


def _port_ok(value):
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return _is_int(value) and 1 <= value <= 65535


_DISTRIBUTED_RULES = {
    "nproc": Rule(lambda v: _is_int(v) and v >= 1, "an integer >= 1", fix="fix it, e.g. --nproc=2"),
    "world_size": Rule(lambda v: _is_int(v) and (v == -1 or v >= 1), "an integer >= 1 (or -1 for nproc)",
                       fix="set it to the number of processes of all machines together, e.g. --world_size=4"),
    "ip": Rule(lambda v: isinstance(v, str) and v.strip() != "", "a host name or address",
               fix="give the address of the machine of rank 0, e.g. --ip=192.168.1.10"),
    "port": Rule(_port_ok, "a port number in [1, 65535]", fix="give a free port, e.g. --port=5678"),
    "group_offset": Rule(lambda v: _is_int(v) and v >= 0, "an integer >= 0",
                         fix="set it to the number of processes on the machines before this one, e.g. "
                         "--group_offset=2"),
    "offset": Rule(lambda v: _is_int(v) and v >= 0, "an integer >= 0", fix="fix it, e.g. --group_offset=2"),
    "local_rank": Rule(lambda v: _is_int(v) and v >= 0, "an integer >= 0",
                       fix="leave local_rank to the launcher (run_recbole_crs.py --nproc=N)"),
}


def check_launch(nproc=1, world_size=-1, ip="localhost", port="5678", group_offset=0):
    """The launcher's options (``run_recbole_crs.py --nproc ...``, ``quick_start.run``); returns the world size
    (``-1``: ``nproc``). Raises :class:`CRSConfigError`, one line per problem."""
    values = {"nproc": nproc, "world_size": world_size, "ip": ip, "port": port, "group_offset": group_offset}
    errors = [message for key, value in values.items() for message in [_DISTRIBUTED_RULES[key].error(key, value)]
              if message]
    if errors:
        raise CRSConfigError(errors)
    if world_size == -1:
        if group_offset:
            raise CRSConfigError(
                f"group_offset={group_offset} places this machine's processes after others, so world_size must be "
                "the number of processes of all machines together: set --world_size (e.g. "
                f"--world_size={group_offset + nproc})."
            )
        world_size = nproc
    if group_offset + nproc > world_size:
        raise CRSConfigError(
            f"world_size={world_size} is smaller than group_offset + nproc = {group_offset} + {nproc}: world_size "
            "counts the processes of all machines together; raise --world_size or lower --nproc/--group_offset."
        )
    return world_size


def check_distributed(config_dict):
    """The multi-process keys of one process's config (``Config._init_device`` calls it before RecBole would
    start ``torch.distributed``).

    Without ``local_rank`` (a plain single-process run) ``nproc`` / ``world_size`` above 1 are refused: only the
    launcher starts processes, and a single-process entry point must not silently run one. With ``local_rank``
    (a process the launcher started, or one started by hand the RecBole way) every launched key must be there
    and consistent.
    """
    errors = [message for key in _DISTRIBUTED_RULES if key in config_dict
              for message in [_DISTRIBUTED_RULES[key].error(key, config_dict[key])] if message]
    if errors:
        raise CRSConfigError(errors)
    if "local_rank" not in config_dict:
        for key in ("nproc", "world_size"):
            value = config_dict.get(key)
            if value is not None and value > 1:
                raise CRSConfigError(
                    f"{key}={value!r} asks for several processes, which only the launcher starts: run "
                    f"`python run_recbole_crs.py --{key}={value} ...` or recbole_crs.quick_start.run(..., {key}={value}) "
                    f"and remove {key} from the config."
                )
        return
    missing = [key for key in LAUNCHED_KEYS if config_dict.get(key) is None]
    if missing:
        raise CRSConfigError(
            f"local_rank is set (one process of a multi-process run) but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not: start the run with `python run_recbole_crs.py --nproc=N` "
            "or recbole_crs.quick_start.run(..., nproc=N), which sets them all."
        )
    nproc, world, offset, local_rank = (config_dict[key] for key in ("nproc", "world_size", "offset", "local_rank"))
    if local_rank >= nproc:
        raise CRSConfigError(f"local_rank={local_rank} must be below nproc={nproc}: ranks count from 0 on each machine.")
    if world < 1 or offset + nproc > world:
        raise CRSConfigError(
            f"world_size={world} must be at least offset + nproc = {offset} + {nproc} (the processes of all machines "
            "together): raise --world_size."
        )


def gpu_errors(config_dict, nproc, uses_cuda):
    """On CUDA each process takes one GPU of ``gpu_id`` (RecBole asserts it): one line if there are too few."""
    if not uses_cuda:
        return []
    gpu_id = config_dict.get("gpu_id")
    gpu_id = ",".join(map(str, gpu_id)) if isinstance(gpu_id, (list, tuple)) else str(gpu_id if gpu_id is not None else "")
    gpus = [part for part in gpu_id.split(",") if part.strip()]
    if len(gpus) >= nproc:
        return []
    return [
        f"gpu_id {gpu_id!r} names {len(gpus)} GPU(s) for nproc={nproc} processes: each process takes one GPU, so "
        f"list {nproc}, e.g. gpu_id: '{','.join(map(str, range(nproc)))}' (or use_gpu: False to run the processes on "
        "the CPU with gloo)."
    ]


def _recbole_loss_types(config):
    """RecBole's sequential models accept loss_type CE or BPR (their yaml says which one they default to)."""
    from recbole.utils import ModelType

    default = config.internal_config_dict.get("loss_type")
    if config["MODEL_TYPE"] == ModelType.SEQUENTIAL and default in ("CE", "BPR"):
        return ("CE", "BPR")
    return ()


def _catch(errors, check, *args):
    try:
        return check(*args)
    except ValueError as error:  # the reused checks raise ValueError (CRSConfigError is one)
        errors.extend(getattr(error, "errors", None) or [" ".join(str(error).split("\n"))])
    except TypeError:  # a value of the wrong type, which its own rule reports
        pass
    return None


def value_errors(config):
    errors = []
    final = config.final_config_dict
    for key, value in final.items():
        message = value_error(config, key, value)
        if message:
            errors.append(message)
    errors += _evaluation_errors(config)
    errors += _model_errors(config)
    return errors


def _evaluation_errors(config):
    from recbole.utils import ModelType

    from recbole_crs.evaluation.candidates import check_mode
    from recbole_crs.evaluation.ranking import check_tie_rule, metric_keys

    errors = []
    _catch(errors, check_mode, config["crs_candidates"] or "all")
    modes = config["crs_test_modes"]
    if isinstance(modes, (list, tuple)):
        for mode in modes:
            try:
                check_mode(mode)
            except ValueError as error:
                errors.append(f"crs_test_modes: {error}")
    _catch(errors, check_tie_rule, config["crs_ties"] or "expected")
    metrics, topk = config["metrics"], config["topk"]
    if config["MODEL_TYPE"] == ModelType.SEQUENTIAL:  # conversation-aware evaluation computes the metrics
        _catch(errors, metric_keys, metrics, topk)
    valid_metric = config["valid_metric"]
    if isinstance(valid_metric, str) and isinstance(metrics, (list, tuple)):
        ks = topk if isinstance(topk, (list, tuple)) else [topk]
        computed = {str(m).lower() for m in metrics} | {f"{str(m).lower()}@{k}" for m in metrics for k in ks}
        if valid_metric.lower() not in computed:
            choices = sorted(c for c in computed if "@" in c) or sorted(computed)
            errors.append(
                f"valid_metric {valid_metric!r} is not computed by metrics {list(metrics)} and topk {list(ks)}: "
                f"use one of {', '.join(choices)}, or add its metric/k."
            )
    return errors


def _model_errors(config):
    errors = []
    model_keys = _plugin_model_keys(config["model"])
    hidden, heads = config["hidden_size"], config["n_heads"]
    if {"hidden_size", "n_heads"} <= model_keys and _is_int(hidden) and _is_int(heads) and heads >= 1:
        if hidden % heads:
            errors.append(
                f"hidden_size ({hidden}) must be a multiple of n_heads ({heads}): change one, e.g. "
                f"hidden_size: {heads * max(1, round(hidden / heads))}."
            )
    if "generator_config" in model_keys and isinstance(config["generator_config"], dict):
        from recbole_crs.model.negative_generator import check_generator_overrides

        _catch(errors, check_generator_overrides, config["generator_config"])
    if "negative_sampler" in model_keys or "generator_mode" in model_keys:
        from recbole_crs.model.negatives import NEGATIVE_SAMPLERS
        from recbole_crs.trainer.stages import GENERATOR_MODES, checked_learning_rate

        for key, options in (("negative_sampler", NEGATIVE_SAMPLERS), ("generator_mode", GENERATOR_MODES)):
            message = one_of(options).error(key, config[key])
            if message:
                errors.append(message)
        _catch(errors, checked_learning_rate, config["generator_phase_learning_rate"])
    if "finetune_rows" in model_keys:
        from recbole_crs.data.finetune import finetune_options

        _catch(errors, finetune_options, config)
    if "crs_stages" in model_keys:
        from recbole_crs.pipeline import check_stage_inputs, check_stages

        stages = _catch(errors, check_stages, config["crs_stages"])
        if stages is not None:
            _catch(errors, check_stage_inputs, config, stages)
    return errors


def _existing_ancestor(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def filesystem_errors(config, saved=True):
    """``data_path`` readable, ``checkpoint_dir`` writable (created here), checkpoint inputs present."""
    from recbole_crs.data.ml100k import is_builtin

    errors = []
    dataset, folder = config["dataset"], config["data_path"]
    if is_builtin(dataset):  # built on first use under data_path
        parent = _existing_ancestor(os.path.dirname(os.path.normpath(folder)))
        if not os.path.isdir(folder) and not (os.path.isdir(parent) and os.access(parent, os.W_OK)):
            errors.append(
                f"data_path: cannot build the built-in dataset '{dataset}' under '{os.path.dirname(folder)}' "
                f"('{parent}' is not a writable folder): set --data_path to a writable folder."
            )
    elif dataset != "ml-100k" and not _recbole_downloads(dataset):
        inter = os.path.join(folder, f"{dataset}.inter")
        parts = config["benchmark_filename"]
        if parts:
            inter = os.path.join(folder, f"{dataset}.{parts[0]}.inter")
        if not os.path.isfile(inter) or not os.access(inter, os.R_OK):
            errors.append(
                f"data_path: dataset '{dataset}' needs the readable file '{inter}', which "
                f"{'is not readable' if os.path.isfile(inter) else 'does not exist'}: set --data_path to the folder "
                f"that holds {dataset}/ (or convert the data first, see docs/data-format.md)."
            )
    for key in ("generator_path", "pretrained_path"):
        path = config[key] if key in _plugin_model_keys(config["model"]) else None
        if isinstance(path, str) and path and _path_is_read(config, key) and not os.path.isfile(path):
            errors.append(f"{key}: no file '{path}': give the path of an existing checkpoint, or remove {key}.")
    if saved:
        errors += _checkpoint_dir_errors(config["checkpoint_dir"])
    return errors


def _path_is_read(config, key):
    if config["model"] != "CRSPretrain":
        return True
    from recbole_crs.pipeline import check_stages

    stages = check_stages(config["crs_stages"])
    if key == "generator_path":
        return "generator" in stages or "pretrain" in stages
    return "finetune" in stages and "pretrain" not in stages


def _recbole_downloads(dataset):
    """Whether RecBole knows a download address for ``dataset`` (it fetches a missing folder itself)."""
    import recbole

    root = os.path.join(os.path.dirname(recbole.__file__), "properties", "dataset")
    return any(dataset in _yaml_keys(os.path.join(root, name)) for name in ("url.yaml", "kg_url.yaml")
               if os.path.isfile(os.path.join(root, name)))


def _checkpoint_dir_errors(checkpoint_dir):
    if not isinstance(checkpoint_dir, str) or not checkpoint_dir:
        return [f"checkpoint_dir must be a folder path, got {checkpoint_dir!r}: fix it, e.g. checkpoint_dir: saved"]
    try:
        os.makedirs(checkpoint_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=checkpoint_dir):
            pass
    except OSError as error:
        return [
            f"checkpoint_dir '{checkpoint_dir}' is not a writable folder ({error.strerror or error}): set "
            "--checkpoint_dir to a folder you can write to."
        ]
    return []


def validate(config, saved=True):
    """Check ``config`` (a built :class:`recbole_crs.config.Config`) before the run writes or trains anything.

    ``saved``: the run writes checkpoints (then ``checkpoint_dir`` must be writable; it is created).
    Raises :class:`CRSConfigError` with one line per problem.
    """
    errors = unknown_key_errors(config) + value_errors(config)
    if errors:  # nothing is created on disk for a config that is wrong anyway
        raise CRSConfigError(errors)
    errors = filesystem_errors(config, saved=saved)
    if errors:
        raise CRSConfigError(errors)
    return config
