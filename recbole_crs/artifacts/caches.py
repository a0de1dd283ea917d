"""No pickles from disk by default: RecBole's dataset / dataloader caches, made explicit and keyed.

:func:`recbole_crs.patches.install_safe_caches` routes RecBole's cache functions through this module's: a cache is read only from ``dataset_save_path`` /
``dataloaders_save_path`` (a file the user named; it is a pickle, so name only files you trust); a cache at
RecBole's default path is ignored with one log line; caches are saved under names keyed by the data and the
config that shaped them.

Several processes (``run_recbole_crs.py --nproc``): rank 0 alone writes a cache, and a dataloader cache holds
loaders of one process (every row); each process that loads it rebuilds them for its own share of the rows
(:func:`loaders_for`). A dataloader's sampler is fixed when it is built, so the loaders of rank r of a 2-process
run would yield rank r's half of the rows wherever they were loaded.
"""

import copy
import hashlib
import importlib
import json
import os
import pickle
from logging import getLogger

import torch
import torch.distributed as dist
from recbole.data import utils as data_utils
from recbole.data.dataloader import AbstractDataLoader
from recbole.utils import ModelType, ensure_dir, set_color
from recbole.utils.argument_list import dataset_arguments
from torch.utils.data.distributed import DistributedSampler

from recbole_crs.artifacts.checkpoints import checked_atomic_write, to_plain
from recbole_crs.artifacts.fingerprints import data_fingerprint_of, file_digests
from recbole_crs.errors import CRSInputError


def atomic_pickle_dump(obj, path):
    return checked_atomic_write(path, lambda handle: pickle.dump(obj, handle), what="cache")


def _several_processes(config):
    return config["single_spec"] is False


def _other_rank(config):
    """A process of a multi-process run other than rank 0 (which writes the caches for all)."""
    return _several_processes(config) and dist.is_initialized() and dist.get_rank() != 0


def loaders_for(config, dataloaders):
    """``dataloaders`` built anew for ``config``'s processes: the same datasets, samplers and shuffling, with
    RecBole's ``DistributedSampler`` (this rank's share of the rows) in a multi-process run and every row in one
    process. RecBole's dataloaders take ``(config, dataset, sampler, shuffle)``."""
    return [type(loader)(config, loader._dataset, loader._sampler, shuffle=loader.shuffle) for loader in dataloaders]


def _one_process_config(config):
    single = copy.copy(config)
    single.final_config_dict = {**config.final_config_dict, "single_spec": True}
    return single


def _cache_key(config, model=None):
    """Hash of the data files and the config values that shape a dataset/dataloader cache."""
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
        reason = " ".join(str(error).split())  # one line: pickle's messages may span several
        raise CRSInputError(
            f"cannot read {what} '{path}': {type(error).__name__}: {reason}. Delete it (it will be rebuilt) or name "
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
    dataset_module = importlib.import_module("recbole.data.dataset")
    if hasattr(dataset_module, config["model"] + "Dataset"):
        dataset_class = getattr(dataset_module, config["model"] + "Dataset")
    else:
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
    if _other_rank(self.config):  # every rank built the same dataset: rank 0 writes it
        return
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
    """RecBole's ``save_split_dataloaders``, atomically, keyed by data and config; the live loaders keep working.

    In a multi-process run rank 0 writes loaders of one process (every row); the other ranks write nothing.
    Returns the file's path (None on the other ranks)."""
    if _several_processes(config):
        if _other_rank(config):
            return None
        dataloaders = loaders_for(_one_process_config(config), dataloaders)
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
    named = config["dataloaders_save_path"]
    if not named:
        default_file = os.path.join(config["checkpoint_dir"], f'{config["dataset"]}-for-{config["model"]}-dataloader.pth')
        if os.path.exists(default_file):
            _ignore_default_cache(default_file, "dataloaders_save_path")
        return None
    if not os.path.exists(named):
        return None
    dataloaders = _saved_dataloaders(named)
    train_data, valid_data, test_data = dataloaders
    for arg in data_utils.dataset_arguments + ["seed", "repeatable", "eval_args"]:
        if config[arg] != train_data.config[arg]:
            getLogger().warning(f"dataloaders_save_path '{named}' was built with another {arg}: rebuilding.")
            return None
    if _data_changed_since(train_data._dataset, config):
        getLogger().warning(f"dataloaders_save_path '{named}' was built from other data files: rebuilding.")
        return None
    # This process's rows: its share in a multi-process run; every row in one process, also from a file that an
    # earlier version wrote from one rank of a multi-process run.
    if _several_processes(config) or any(isinstance(data.sampler, DistributedSampler) for data in dataloaders):
        train_data, valid_data, test_data = loaders_for(config, dataloaders)
    for data in (train_data, valid_data, test_data):
        data.update_config(config)
    getLogger().info(set_color("Load split dataloaders from", "pink") + f": [{named}]")
    return train_data, valid_data, test_data


def _saved_dataloaders(path):
    """The (train, valid, test) dataloaders pickled in ``path`` by :func:`safe_save_split_dataloaders`, with their
    shuffling generators restored."""
    content = _trusted_pickle_load(path, "dataloaders_save_path")
    try:
        pairs = [(loader, state) for loader, state in content]
    except (TypeError, ValueError):
        pairs = []
    if len(pairs) != 3 or not all(isinstance(loader, AbstractDataLoader) for loader, _ in pairs):
        raise CRSInputError(
            f"dataloaders_save_path '{path}' does not hold the train, valid and test dataloaders that "
            "save_dataloaders writes: name a file written with save_dataloaders: True (its name ends in "
            "'-dataloader-<key>.pth'), or delete it to rebuild."
        )
    dataloaders = []
    for data_loader, generator_state in pairs:
        generator = torch.Generator()
        generator.set_state(generator_state)
        data_loader.generator = generator
        data_loader.sampler.generator = generator
        dataloaders.append(data_loader)
    return dataloaders
