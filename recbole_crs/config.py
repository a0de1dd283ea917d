"""Config: RecBole's Config plus the plugin's yaml layers.

Merge order, later wins: RecBole's internal yamls (overall, model, dataset, quick-start defaults for the
model type) -> ``properties/overall.yaml`` -> the model's shared layers (:data:`MODEL_LAYERS`) ->
``properties/model/<model>.yaml`` -> ``properties/dataset/<dataset>.yaml`` -> the user's ``config_file_list``
-> ``config_dict`` -> command line.

Values are data, never code: RecBole 1.2.1 ``eval``s every string of ``config_dict`` and every ``--key=value``
of the command line; here they are parsed as YAML scalars or flow collections (``0.1``, ``1e-4``, ``true``,
``~``, ``[pretrain, finetune]``, ``{n_layers: 1}``) or Python literals (``None``, ``(1, 2)``), and anything
else stays the string it was. Config files are read with a safe YAML loader. Checking the values is
:func:`recbole_crs.validation.validate`'s job.
"""

import ast
import importlib.util
import os
import re
import sys
from logging import getLogger

import torch
import torch.distributed as dist
import yaml
from recbole.config import Config as RecBoleConfig
from recbole.utils import ModelType
from recbole.utils import get_model as get_recbole_model

from recbole_crs.artifacts.checkpoints import from_plain
from recbole_crs.data.ml100k import builtin_base
from recbole_crs.errors import CRSConfigError
from recbole_crs.launcher import join_process_group
from recbole_crs.settings.launch import check_distributed, gpu_errors

# RecBole's float resolver: YAML 1.1 reads 1e-4 (no dot) as a string, RecBole's loader as a float.
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class SafeConfigLoader(yaml.SafeLoader):
    """Config files: YAML's safe loader (no Python objects) with RecBole's float syntax."""


SafeConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


class _ValueLoader(SafeConfigLoader):
    """One command-line or ``config_dict`` value: like a config file, but only true/false are booleans (as
    RecBole read them): ``yes``, ``no``, ``on`` and ``off`` stay strings."""


_ValueLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in SafeConfigLoader.yaml_implicit_resolvers.items()
}
_ValueLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)

_VALUE_TYPES = (str, int, float, bool, list, tuple, dict, type(None))
_UNPARSED = object()


def parse_value(text):
    """A command-line or ``config_dict`` string as the value it spells; never evaluated as code.

    YAML first (``0.1``, ``1e-4``, ``true``, ``~``, ``[pretrain]`` -> ``['pretrain']``, ``{a: 1}``), then a
    Python literal (``None``, ``'x'``, ``(1, 2)``, ``0,1``); a list or dict only when the text is bracketed
    (``a: b`` stays a string). Anything else, e.g. ``__import__('os')``, is returned unchanged as a string.
    Non-strings are returned as they are.
    """
    if not isinstance(text, str):
        return text
    stripped = text.strip()
    if not stripped:
        return text
    try:
        value = yaml.load(stripped, Loader=_ValueLoader)
    except yaml.YAMLError:
        value = _UNPARSED
    if isinstance(value, (list, dict)) and not stripped.startswith(("[", "{")):
        value = _UNPARSED
    if value is not _UNPARSED and not isinstance(value, str) and isinstance(value, _VALUE_TYPES):
        return value
    try:
        literal = ast.literal_eval(stripped)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        literal = _UNPARSED
    if literal is not _UNPARSED and isinstance(literal, _VALUE_TYPES) and not isinstance(literal, (set, complex)):
        return literal
    return value if isinstance(value, str) else text

def get_model(model_name):
    """The model class called ``model_name``: ``recbole_crs.model.<name lowercased>`` first, then RecBole's models.

    The module name is the whole registry (as RecBole's lookup, and RecBole-GNN's): a plugin model is found by its
    name, so this module imports no model.
    """
    module_name = f"recbole_crs.model.{model_name.lower()}"
    if importlib.util.find_spec(module_name) is not None:
        return getattr(importlib.import_module(module_name), model_name)
    try:
        return get_recbole_model(model_name)
    except (ValueError, ModuleNotFoundError):
        # RecBole's lookup imports its optional exlib models (lightgbm, xgboost) before giving up.
        raise ValueError(
            f"Model '{model_name}' is neither a recbole-crs model (recbole_crs/model/) nor a RecBole model. "
            "Check the spelling and case of --model (e.g. CRSPretrain, SASRec)."
        ) from None


def properties_dir():
    """The plugin's yaml defaults: ``recbole_crs/properties/`` in an installed wheel (setup.py ships the
    top-level folder there), else the repository's top-level ``properties/`` (a checkout or an editable
    install). The copy inside the package wins: next to site-packages, a ``properties`` folder may belong to
    another distribution. Returns the checkout path when neither exists (the caller reports it)."""
    package = os.path.dirname(os.path.realpath(__file__))
    installed = os.path.join(package, "properties")
    if os.path.isfile(os.path.join(installed, "overall.yaml")):
        return installed
    return os.path.join(os.path.dirname(package), "properties")


PROPERTIES_DIR = properties_dir()  # read at call time (tests point it at a temporary folder)


def dataset_yaml(dataset):
    """``properties/dataset/<dataset>.yaml``; a built-in variant without its own file (ml-100k-crs-targets,
    ml-100k-crs-targets-0.05, ...) uses its base's (ml-100k-crs.yaml): same fields and budget, one file."""
    own = os.path.join(PROPERTIES_DIR, "dataset", f"{dataset}.yaml")
    if os.path.isfile(own):
        return own
    base = builtin_base(dataset)
    return os.path.join(PROPERTIES_DIR, "dataset", f"{base}.yaml") if base else own


# Shared yaml layers a model reads below its own ``properties/model/<model>.yaml``, in merge order: both CRS
# models read the encoder settings (CRSEncoder.yaml), and the CRSPretrain pipeline, which ends with a
# CRSFinetune model, reads CRSFinetune.yaml's fine-tuning settings. Each setting lives in one file.
MODEL_LAYERS = {"CRSFinetune": ("CRSEncoder",), "CRSPretrain": ("CRSEncoder", "CRSFinetune")}


def model_yaml_files(model):
    """``properties/model/`` files of ``model`` in merge order: its shared layers, then its own (may not exist)."""
    return [os.path.join(PROPERTIES_DIR, "model", f"{name}.yaml") for name in MODEL_LAYERS.get(model, ()) + (model,)]


def plugin_yaml_files(model, dataset):
    """The plugin's own yaml layers for ``model`` on ``dataset``, in merge order (existing files only)."""
    if not os.path.isdir(PROPERTIES_DIR):
        raise FileNotFoundError(
            f"recbole-crs cannot find its properties folder '{PROPERTIES_DIR}'. Reinstall the plugin "
            "(`pip install .` ships it inside the package; a checkout reads the top-level properties/)."
        )
    candidates = [os.path.join(PROPERTIES_DIR, "overall.yaml"), *model_yaml_files(model), dataset_yaml(dataset)]
    return [path for path in candidates if os.path.isfile(path)]


def _normalize_gpu_id(final):
    """RecBole's ``gpu_id`` handling: a tuple becomes ``'0,1'``, and ``CUDA_VISIBLE_DEVICES`` is set from it."""
    gpu_id = final.get("gpu_id")
    gpu_id = ",".join(map(str, gpu_id)) if isinstance(gpu_id, (tuple, list)) else str(gpu_id)
    final["gpu_id"] = gpu_id
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu_id


def uses_cuda(final):
    """Whether a run with this final config dict runs on CUDA: ``use_gpu`` not False, a ``gpu_id`` and a GPU."""
    gpu_id = final.get("gpu_id")
    return final.get("use_gpu") is not False and bool(str(gpu_id or "").strip()) and torch.cuda.is_available()


def _process_group_ready(final):
    """Whether this process already joined the group ``final`` describes (same rank and size)."""
    if not (dist.is_available() and dist.is_initialized()):
        return False
    rank, size = final["local_rank"] + final["offset"], final["world_size"]
    if dist.get_rank() != rank or dist.get_world_size() != size:
        raise CRSConfigError(
            f"this process already belongs to a process group as rank {dist.get_rank()} of {dist.get_world_size()}, "
            f"not rank {rank} of {size}: build one Config per process."
        )
    return True


class Config(RecBoleConfig):
    """RecBole Config that finds plugin models, adds the plugin's yaml defaults and never evaluates values.

    ``command_line``: the ``--key=value`` arguments to read (a list of strings); None reads ``sys.argv[1:]``, as
    RecBole does.
    """

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None, command_line=None):
        self._command_line = None if command_line is None else list(command_line)
        super().__init__(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)

    @classmethod
    def from_checkpoint(cls, checkpoint):
        """The Config a checkpoint was trained with, from its ``config``: our plain dict (rebuilt as it was, no yaml
        or command line read), or RecBole's own format, a pickled Config, returned as it is."""
        saved = checkpoint["config"]
        if not isinstance(saved, dict):
            return saved
        values = from_plain(saved)
        config = cls.__new__(cls)
        config.final_config_dict = values
        config.model, config.dataset = values["model"], values["dataset"]
        config.model_class = get_model(values["model"])
        config.parameters = {key: list(names) for key, names in (checkpoint.get("config_parameters") or {}).items()}
        config.internal_config_dict, config.external_config_dict = {}, {}
        config.file_config_dict, config.variable_config_dict, config.cmd_config_dict = {}, {}, {}
        config.compatibility_settings()
        return config

    def _build_yaml_loader(self):
        # RecBole uses yaml.FullLoader (and adds its float resolver to it, globally).
        return SafeConfigLoader

    def _load_config_files(self, file_list):
        """The user's config files, later files winning; an unreadable or malformed file is a one-line
        :class:`CRSConfigError` (an empty file is fine)."""
        file_config_dict = {}
        for path in file_list or []:
            try:
                with open(path, "r", encoding="utf-8") as f:
                    content = yaml.load(f.read(), Loader=self.yaml_loader)
            except OSError as error:
                raise CRSConfigError(
                    f"config file '{path}' cannot be read ({error.strerror or error}): check the path given to "
                    "--config_files."
                ) from None
            except yaml.YAMLError as error:
                mark = getattr(error, "problem_mark", None)
                where = f" at line {mark.line + 1}" if mark is not None else ""
                problem = getattr(error, "problem", None) or type(error).__name__
                raise CRSConfigError(
                    f"config file '{path}' is not valid YAML{where} ({problem}): write one 'key: value' a line."
                ) from None
            if content is None:
                continue
            if not isinstance(content, dict):
                raise CRSConfigError(
                    f"config file '{path}' holds a {type(content).__name__}, not 'key: value' lines: write one "
                    "'key: value' a line."
                )
            file_config_dict.update(content)
        return file_config_dict

    def _convert_config_dict(self, config_dict):
        """String values parsed by :func:`parse_value` (RecBole ``eval``s them)."""
        for key, value in config_dict.items():
            config_dict[key] = parse_value(value)
        return config_dict

    def _load_cmd_line(self):
        """``--key=value`` arguments of ``command_line`` (else ``sys.argv``), values parsed by :func:`parse_value`.

        As RecBole's, but the value may itself hold ``=`` (split on the first one only), and a key given twice
        with different values is a :class:`CRSConfigError`. Other arguments are left to the script's own parser.
        """
        cmd_config_dict, unrecognized = {}, []
        arguments = self._command_line
        if arguments is None:  # RecBole's way (not inside a notebook's kernel)
            arguments = sys.argv[1:] if "ipykernel_launcher" not in sys.argv[0] else []
        for arg in arguments:
            key, _, value = arg[2:].partition("=")
            if not arg.startswith("--") or not key or "=" not in arg:
                unrecognized.append(arg)
                continue
            if key in cmd_config_dict and cmd_config_dict[key] != value:
                raise CRSConfigError(
                    f"--{key} is given twice on the command line ({cmd_config_dict[key]!r} and {value!r}): keep one."
                )
            cmd_config_dict[key] = value
        if unrecognized:
            getLogger().warning(f"command line args [{' '.join(unrecognized)}] will not be used in RecBole")
        return self._convert_config_dict(cmd_config_dict)

    def _init_device(self):
        """RecBole's device choice and process group, with three changes.

        * ``use_gpu: False`` means the CPU (RecBole 1.2.1 ignores ``use_gpu`` and picks CUDA whenever it is
          available).
        * A process of a multi-process run (``local_rank`` set by the launcher, :func:`recbole_crs.quick_start.run`)
          that does not use CUDA joins a **gloo** process group on the CPU; RecBole hard-codes NCCL, which needs
          GPUs. With CUDA it is RecBole's NCCL group, one GPU per process.
        * The rendezvous waits at most ``rendezvous_timeout`` seconds for every rank, then ends with one line
          naming the ranks that did not join (:func:`recbole_crs.launcher.join_process_group`); RecBole's waits
          forever.

        The multi-process keys are checked first (:func:`recbole_crs.settings.launch.check_distributed`). Build
        the Config once per process: building it starts the process group (a second build in the same process
        reuses the group if it has the same rank and size).
        """
        final = self.final_config_dict
        check_distributed(final)
        if "local_rank" not in final:
            super()._init_device()
            if final.get("use_gpu") is False:
                final["device"] = torch.device("cpu")
            return
        _normalize_gpu_id(final)
        cuda = uses_cuda(final)
        errors = gpu_errors(final, final["nproc"], cuda)
        if errors:
            raise CRSConfigError(errors)
        if not _process_group_ready(final):
            join_process_group("nccl" if cuda else "gloo", final["local_rank"] + final["offset"],
                               final["world_size"], final["ip"], final["port"], final.get("rendezvous_timeout"))
        if cuda:
            self._init_cuda_rank()
        else:
            self._init_cpu_rank()

    def _init_cpu_rank(self):
        final = self.final_config_dict
        final["device"] = torch.device("cpu")
        final["single_spec"] = False
        self._quiet_other_ranks()

    def _init_cuda_rank(self):
        final = self.final_config_dict
        final["device"] = torch.device("cuda", final["local_rank"])
        final["single_spec"] = False
        torch.cuda.set_device(final["local_rank"])
        self._quiet_other_ranks()

    def _quiet_other_ranks(self):
        """As RecBole: only local rank 0 logs above errors and shows progress bars."""
        final = self.final_config_dict
        if final["local_rank"] != 0:
            final["state"] = "error"
            final["show_progress"] = False
            final["verbose"] = False

    def _given(self, key, value):
        """``value``, else ``key`` from the user's files, ``config_dict`` or command line; a KeyError if neither."""
        value = self.external_config_dict.get(key) if value is None else value
        if value is None:
            raise KeyError(
                f"{key} needs to be given in one of: the {key} argument, a config file, config_dict, "
                f"or --{key} on the command line."
            )
        return value

    def _get_model_and_dataset(self, model, dataset):
        model, dataset = self._given("model", model), self._given("dataset", dataset)
        if isinstance(model, str):
            return model, get_model(model), dataset
        return model.__name__, model, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        dataset_path = dataset_yaml(dataset)
        for path in plugin_yaml_files(model, dataset):
            config_dict = self._update_internal_config_dict(path)
            if path == dataset_path:
                self.parameters["Dataset"] += [k for k in config_dict if k not in self.parameters["Dataset"]]
        self._use_sequential_protocol(model_class)

    def _use_sequential_protocol(self, model_class):
        """Run general/traditional models (e.g. Pop) on the same leave-one-out rows as sequential ones.

        Conversations belong to single interactions, so a CRS dataset is evaluated per interaction; a general
        model only needs user and item ids, which those rows carry. Its trainer is still chosen by its own type.
        """
        key = "crs_sequential_protocol"
        enabled = self.external_config_dict.get(key, self.internal_config_dict.get(key, True))
        if enabled and model_class.type in (ModelType.GENERAL, ModelType.TRADITIONAL):
            self.internal_config_dict["MODEL_TYPE"] = ModelType.SEQUENTIAL
