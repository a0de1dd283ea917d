"""Files this plugin writes and reads back: checkpoints, caches, converted datasets.

* **Atomic writes.** :func:`atomic_torch_save` / :func:`atomic_write_bytes` write ``<path>.tmp-<pid>-<random>``
  in the same folder, flush and fsync it, then ``os.replace`` it onto ``path``: a kill or a full disk during a
  save leaves the previous file intact and never a truncated file under the final name. Leftover temporaries
  of processes that died are removed by :func:`clean_stale_temporaries` (trainers call it on their
  ``checkpoint_dir``).
* **Unique names.** :func:`run_id` (local time + pid + random) makes every run's checkpoint name its own, so two
  runs started in the same folder in the same second never share (or test) one file.
* **Plain-data checkpoints.** :func:`plain_config` turns RecBole's ``Config`` into builtins (enums and devices
  tagged), so our checkpoints load with ``torch.load(weights_only=True)``; :func:`config_from_checkpoint`
  rebuilds a ``Config`` from either form.
* **Fingerprints.** :func:`dataset_fingerprint` = dataset name, a hash of the item tokens in id order (what an
  item id means) and a hash of the atomic files (what the model was trained on). Every checkpoint we write
  stores it under ``crs_fingerprint``; :func:`check_item_fingerprint` and :func:`check_data_fingerprint` refuse a
  checkpoint whose ids or data differ, before any model is built.
* **No pickles from disk by default.** :func:`install_safe_caches` replaces RecBole's dataset/dataloader cache
  loading: a cache is read only from ``dataset_save_path`` / ``dataloaders_save_path`` (a file the user named;
  it is a pickle, so name only files you trust); a cache at RecBole's default path is ignored with one log
  line; caches are saved under names keyed by the data and the config that shaped them.
"""

import enum
import hashlib
import json
import os
import pickle
from logging import getLogger

import torch

from recbole_crs.runtime import (  # noqa: F401  (re-exported: callers import them from here)
    TMP_MARK,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    clean_stale_temporaries,
    run_id,
    temporary_path,
)

FINGERPRINT_KEY = "crs_fingerprint"
MANIFEST_SUFFIX = ".manifest.json"
# Files of a RecBole atomic dataset (plus config['additional_feat_suffix']).
ATOMIC_SUFFIXES = ("inter", "item", "user", "kg", "link", "net")


def atomic_torch_save(obj, path, pickle_protocol=2):
    """``torch.save(obj, path)``, atomically (see :func:`atomic_write`).

    Protocol 2 (torch's default): ``torch.load(weights_only=True)`` does not read protocol 4's frames. Tensor
    data lives outside the pickle, so protocol 4's large-object support is not needed.
    """
    return atomic_write(path, lambda handle: torch.save(obj, handle, pickle_protocol=pickle_protocol))


def atomic_pickle_dump(obj, path):
    return atomic_write(path, lambda handle: pickle.dump(obj, handle))


# ---------------------------------------------------------------------------------------------- plain config
def _plain_enums():
    from recbole.utils.enum_type import EvaluatorType, FeatureSource, FeatureType, InputType, ModelType

    return {cls.__name__: cls for cls in (ModelType, InputType, EvaluatorType, FeatureType, FeatureSource)}


def to_plain(value):
    """``value`` as builtins and tensors only (loadable with ``weights_only=True``).

    Enums of RecBole and ``torch.device`` become tagged dicts (:func:`from_plain` restores them); NumPy values
    become Python numbers or tensors; anything else becomes its ``repr`` (configs hold nothing else we read).
    """
    if value is None or isinstance(value, (bool, int, float, str, bytes, torch.Tensor)):
        return value
    if isinstance(value, enum.Enum):
        return {"__enum__": type(value).__name__, "name": value.name}
    if isinstance(value, torch.device):
        return {"__device__": str(value)}
    if isinstance(value, dict):
        return {to_plain(key) if not isinstance(key, str) else key: to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain(item) for item in value)
    if isinstance(value, (set, frozenset)):
        return [to_plain(item) for item in sorted(value, key=repr)]
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return torch.from_numpy(value.copy())
    except ImportError:  # pragma: no cover
        pass
    return repr(value)


def from_plain(value):
    if isinstance(value, dict):
        if set(value) == {"__enum__", "name"}:
            cls = _plain_enums().get(value["__enum__"])
            if cls is not None:
                return cls[value["name"]]
        if set(value) == {"__device__"}:
            device = value["__device__"]
            return torch.device(device if device == "cpu" or torch.cuda.is_available() else "cpu")
        return {key: from_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(from_plain(item) for item in value)
    return value


def plain_config(config):
    """The final config dict of a RecBole ``Config`` (or a dict) as plain data."""
    values = getattr(config, "final_config_dict", config)
    return to_plain(dict(values))


def config_from_checkpoint(checkpoint):
    """A ``recbole_crs.config.Config`` from a checkpoint's ``config`` (a Config object or our plain dict)."""
    from recbole_crs.config import Config
    from recbole_crs.utils import get_model

    saved = checkpoint["config"]
    if not isinstance(saved, dict):
        return saved  # RecBole's own format: a pickled Config
    values = from_plain(saved)
    config = Config.__new__(Config)
    config.final_config_dict = values
    config.model, config.dataset = values["model"], values["dataset"]
    config.model_class = get_model(values["model"])
    config.parameters = {key: list(names) for key, names in (checkpoint.get("config_parameters") or {}).items()}
    config.internal_config_dict, config.external_config_dict = {}, {}
    config.file_config_dict, config.variable_config_dict, config.cmd_config_dict = {}, {}, {}
    config.compatibility_settings()
    return config


# ---------------------------------------------------------------------------------------------- fingerprints
def _sha256_of_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dataset_files(config):
    """``[(file name, path)]`` of the atomic files of ``config['dataset']`` that exist."""
    folder = config["data_path"]
    token = config["dataset"]
    suffixes = list(ATOMIC_SUFFIXES) + list(config["additional_feat_suffix"] or [])
    files = []
    for suffix in suffixes:
        name = f"{token}.{suffix}"
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            files.append((name, path))
    return files


def file_digests(config):
    """``{file name: {"size": bytes, "sha256": hex}}`` of the dataset's atomic files."""
    return {name: {"size": os.path.getsize(path), "sha256": _sha256_of_file(path)} for name, path in dataset_files(config)}


def data_fingerprint_of(digests):
    text = json.dumps({name: digest["sha256"] for name, digest in sorted(digests.items())}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def item_fingerprint(dataset):
    """Hash of the item tokens in id order: two datasets agree on what every item id means iff it is equal."""
    tokens = dataset.field2id_token[dataset.iid_field]
    return hashlib.sha256("\n".join(map(str, tokens)).encode("utf-8")).hexdigest()[:32]


def dataset_fingerprint(dataset):
    """``{"dataset", "n_items", "items", "data"}`` of a loaded dataset (``data`` from the files it was read from).

    CRSDataset records its files' digests while loading (``_crs_file_digests``); other datasets are hashed
    from their files now.
    """
    digests = getattr(dataset, "_crs_file_digests", None)
    if digests is None:
        try:
            digests = file_digests(dataset.config)
        except OSError:
            digests = {}
    return {
        "dataset": dataset.dataset_name,
        "n_items": int(dataset.item_num),
        "items": item_fingerprint(dataset),
        "data": data_fingerprint_of(digests) if digests else None,
    }


def dataset_items(dataset):
    """``{"dataset", "n_items", "items"}``: what :func:`check_item_fingerprint` compares (cheap to keep)."""
    return {"dataset": dataset.dataset_name, "n_items": int(dataset.item_num), "items": item_fingerprint(dataset)}


class CheckpointMismatchError(ValueError):
    """A checkpoint that belongs to other data than the run's; the message says which and what to do."""


def check_item_fingerprint(checkpoint, dataset, source, what="checkpoint"):
    """Refuse ``checkpoint`` if its item ids mean other items in ``dataset`` (same name and count included).

    ``dataset``: a dataset or its :func:`dataset_items`. A checkpoint without a fingerprint (plain RecBole)
    cannot be checked: a warning says so.
    """
    saved = checkpoint.get(FINGERPRINT_KEY) if isinstance(checkpoint, dict) else None
    if not saved or not saved.get("items"):
        getLogger().warning(
            f"{what} '{source}' carries no item-id fingerprint (not written by recbole-crs): cannot verify that its "
            "item ids mean the same items as in this dataset."
        )
        return
    own = dataset if isinstance(dataset, dict) else dataset_items(dataset)
    if saved["items"] != own["items"]:
        raise CheckpointMismatchError(
            f"{what} '{source}' was trained on other item ids than dataset '{own['dataset']}' has now "
            f"(item-id fingerprint {saved['items'][:12]} != {own['items'][:12]}, {saved.get('n_items')} vs "
            f"{own['n_items']} ids): its item ids would mean different items. Retrain it on this data."
        )


def check_data_fingerprint(checkpoint, dataset, source):
    """Refuse ``checkpoint`` if the dataset's files differ from the ones it was trained on."""
    saved = checkpoint.get(FINGERPRINT_KEY) if isinstance(checkpoint, dict) else None
    if not saved or not saved.get("data"):
        getLogger().warning(f"checkpoint '{source}' carries no data fingerprint: cannot verify it matches this data.")
        return
    check_item_fingerprint(checkpoint, dataset, source)
    own = dataset_fingerprint(dataset)["data"]
    if own != saved["data"]:
        raise CheckpointMismatchError(
            f"checkpoint '{source}' was trained on other contents of dataset '{dataset.dataset_name}' than its files "
            f"in '{dataset.dataset_path}' hold now (data fingerprint {saved['data'][:12]} != {str(own)[:12]}): its "
            "test rows may have been training targets. Restore the data it was trained on, or retrain."
        )


# ---------------------------------------------------------------------------------------------- manifest
def manifest_path(folder, name):
    return os.path.join(folder, f"{name}{MANIFEST_SUFFIX}")


def manifest_problems(folder, name, digests=None):
    """Why the files of ``<folder>/<name>.*`` do not match ``<name>.manifest.json`` ([] if they do or no manifest).

    ``digests``: already computed :func:`file_digests`-style entries, to avoid hashing twice.
    """
    path = manifest_path(folder, name)
    if not os.path.exists(path):
        return []
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return [f"manifest '{path}' is unreadable ({error})"]
    problems = []
    for file_name, expected in sorted(files.items()):
        file_path = os.path.join(folder, file_name)
        if not os.path.isfile(file_path):
            problems.append(f"{file_name} is missing")
            continue
        actual = (digests or {}).get(file_name)
        if actual is None:
            actual = {"size": os.path.getsize(file_path), "sha256": _sha256_of_file(file_path)}
        if actual["size"] != expected.get("size") or actual["sha256"] != expected.get("sha256"):
            problems.append(f"{file_name} differs from it")
    return problems


# ---------------------------------------------------------------------------------------------- caches
def _cache_key(config, model=None):
    """Hash of the data files and the config values that shape a dataset/dataloader cache."""
    from recbole.utils.argument_list import dataset_arguments

    keys = list(dataset_arguments) + ["seed", "repeatable", "eval_args", "MODEL_TYPE"]
    values = {key: repr(to_plain(config[key])) for key in keys}
    try:
        digests = file_digests(config)
    except OSError:
        digests = {}
    text = json.dumps({"data": data_fingerprint_of(digests), "config": values, "model": model}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _trusted_pickle_load(path, what):
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle)
    except Exception as error:  # truncated, not a pickle, unreadable
        raise ValueError(
            f"cannot read {what} '{path}': {type(error).__name__}: {error}. Delete it (it will be rebuilt) or name "
            "another file."
        ) from error


def _ignore_default_cache(path, key):
    getLogger().warning(
        f"ignoring cache '{path}': caches are loaded only from a file named in {key} (a pickle: name only files "
        "you trust)."
    )


def _data_changed_since(dataset, config):
    saved = getattr(dataset, "_crs_file_digests", None)
    if saved is None:
        return False
    try:
        return data_fingerprint_of(saved) != data_fingerprint_of(file_digests(config))
    except OSError:
        return True


def safe_create_dataset(config):
    """RecBole's ``create_dataset`` that unpickles a dataset only from ``dataset_save_path`` (trusted)."""
    import importlib

    from recbole.data import utils as data_utils
    from recbole.utils import set_color

    dataset_module = importlib.import_module("recbole.data.dataset")
    if hasattr(dataset_module, config["model"] + "Dataset"):
        dataset_class = getattr(dataset_module, config["model"] + "Dataset")
    else:
        from recbole.utils import ModelType

        type2class = {
            ModelType.GENERAL: "Dataset",
            ModelType.SEQUENTIAL: "SequentialDataset",
            ModelType.CONTEXT: "Dataset",
            ModelType.KNOWLEDGE: "KnowledgeBasedDataset",
            ModelType.TRADITIONAL: "Dataset",
            ModelType.DECISIONTREE: "Dataset",
        }
        dataset_class = getattr(dataset_module, type2class[config["MODEL_TYPE"]])
    named = config["dataset_save_path"]
    if named:
        if os.path.exists(named):
            dataset = _trusted_pickle_load(named, "dataset_save_path")
            unchanged = all(
                config[arg] == dataset.config[arg] for arg in data_utils.dataset_arguments + ["seed", "repeatable"]
            )
            if unchanged and not _data_changed_since(dataset, config):
                getLogger().info(set_color("Load filtered dataset from", "pink") + f": [{named}]")
                return dataset
            getLogger().warning(f"dataset_save_path '{named}' was built from other data or config: rebuilding.")
    else:
        default_file = os.path.join(config["checkpoint_dir"], f'{config["dataset"]}-{dataset_class.__name__}.pth')
        if os.path.exists(default_file):
            _ignore_default_cache(default_file, "dataset_save_path")
    dataset = dataset_class(config)
    if config["save_dataset"]:
        dataset.save()
    return dataset


def safe_save_dataset(self):
    """``Dataset.save``, atomically, under a name keyed by the data files and dataset config."""
    from recbole.utils import ensure_dir, set_color

    save_dir = self.config["checkpoint_dir"]
    ensure_dir(save_dir)
    if getattr(self, "_crs_file_digests", None) is None:
        try:
            self._crs_file_digests = file_digests(self.config)
        except OSError:
            pass
    key = _cache_key(self.config)
    file = os.path.join(save_dir, f'{self.config["dataset"]}-{self.__class__.__name__}-{key}.pth')
    self.logger.info(set_color("Saving filtered dataset into ", "pink") + f"[{file}] (load it with dataset_save_path)")
    atomic_pickle_dump(self, file)


def safe_save_split_dataloaders(config, dataloaders):
    """RecBole's ``save_split_dataloaders``, atomically, keyed by data and config; the live loaders keep working."""
    from recbole.utils import ensure_dir, set_color

    ensure_dir(config["checkpoint_dir"])
    key = _cache_key(config, config["model"])
    file_path = os.path.join(config["checkpoint_dir"], f'{config["dataset"]}-for-{config["model"]}-dataloader-{key}.pth')
    getLogger().info(
        set_color("Saving split dataloaders into", "pink") + f": [{file_path}] (load it with dataloaders_save_path)"
    )
    missing = object()
    saved = [(loader, loader.generator, getattr(loader.sampler, "generator", missing)) for loader in dataloaders]
    try:
        serialized = []
        for dataloader, generator, _ in saved:
            serialized.append((dataloader, generator.get_state()))
            dataloader.generator = None
            dataloader.sampler.generator = None
        atomic_pickle_dump(serialized, file_path)
    finally:  # RecBole's version leaves the live loaders without generators
        for dataloader, generator, sampler_generator in saved:
            dataloader.generator = generator
            if sampler_generator is missing:
                del dataloader.sampler.generator
            else:
                dataloader.sampler.generator = sampler_generator
    return file_path


def safe_load_split_dataloaders(config):
    """RecBole's ``load_split_dataloaders``, reading only ``dataloaders_save_path`` (a trusted file the user named)."""
    from recbole.data import utils as data_utils
    from recbole.utils import set_color

    named = config["dataloaders_save_path"]
    if not named:
        default_file = os.path.join(config["checkpoint_dir"], f'{config["dataset"]}-for-{config["model"]}-dataloader.pth')
        if os.path.exists(default_file):
            _ignore_default_cache(default_file, "dataloaders_save_path")
        return None
    if not os.path.exists(named):
        return None
    dataloaders = []
    for data_loader, generator_state in _trusted_pickle_load(named, "dataloaders_save_path"):
        generator = torch.Generator()
        generator.set_state(generator_state)
        data_loader.generator = generator
        data_loader.sampler.generator = generator
        dataloaders.append(data_loader)
    train_data, valid_data, test_data = dataloaders
    for arg in data_utils.dataset_arguments + ["seed", "repeatable", "eval_args"]:
        if config[arg] != train_data.config[arg]:
            getLogger().warning(f"dataloaders_save_path '{named}' was built with another {arg}: rebuilding.")
            return None
    if _data_changed_since(train_data._dataset, config):
        getLogger().warning(f"dataloaders_save_path '{named}' was built from other data files: rebuilding.")
        return None
    for data in (train_data, valid_data, test_data):
        data.update_config(config)
    getLogger().info(set_color("Load split dataloaders from", "pink") + f": [{named}]")
    return train_data, valid_data, test_data


_installed = False


def install_safe_caches():
    """Route RecBole's dataset/dataloader cache functions through the safe versions above (idempotent)."""
    global _installed
    if _installed:
        return
    import recbole.data
    import recbole.data.utils as data_utils
    from recbole.data.dataset import Dataset

    data_utils.create_dataset = safe_create_dataset
    data_utils.load_split_dataloaders = safe_load_split_dataloaders
    data_utils.save_split_dataloaders = safe_save_split_dataloaders
    for name, function in (
        ("create_dataset", safe_create_dataset),
        ("load_split_dataloaders", safe_load_split_dataloaders),
        ("save_split_dataloaders", safe_save_split_dataloaders),
    ):
        if hasattr(recbole.data, name):
            setattr(recbole.data, name, function)
    Dataset.save = safe_save_dataset
    _installed = True
