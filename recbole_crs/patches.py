"""Every change recbole-crs makes to how RecBole 1.2.1 (and the libraries it runs on) behaves, in one list.

:func:`install_recbole_patches` installs them all, once. Importing ``recbole_crs`` calls it (``recbole_crs/__init__``),
the package's only import side effect, because a patch that waited for an entry point would miss the Python callers
that never pass one: RecBole switches autograd's anomaly mode on as a side effect of importing its own models, which
any ``import`` of a RecBole model repeats; ``data_preparation`` unpickles cache files for anyone who calls it; and
RecBole's ``Config`` reads the NumPy aliases as it is built. Each patch names what RecBole 1.2.1 does and why we
change it:

* :func:`restore_numpy_aliases`: ``Config.compatibility_settings`` reads ``np.float_``, ``np.complex_``,
  ``np.unicode_``, gone in NumPy 2 (``setup.py`` pins numpy<2; this lets the plugin run where NumPy 2 is all there
  is).
* :func:`quiet_known_recbole_warnings`: RecBole's own FutureWarnings on pandas 2 / torch 2 drown the training log.
* :func:`disable_recbole_anomaly_detection`: importing ``recbole.model.sequential_recommender.sine`` runs
  ``torch.autograd.set_detect_anomaly(True)`` for the whole process, about doubling every training step's cost.
* :func:`install_safe_caches`: ``data_preparation`` / ``create_dataset`` unpickle the dataset and dataloader caches
  found at their default paths; ours read caches only from ``dataset_save_path`` / ``dataloaders_save_path`` and
  save them atomically under keyed names (:mod:`recbole_crs.artifacts.caches`).
* :func:`install_cpu_ddp`: the trainers wrap the model in ``DistributedDataParallel(device_ids=[local_rank])``,
  which torch refuses for a CPU model (gloo runs).
* :func:`install_rank0_tensorboard`: every process of a multi-process run opens its own tensorboard event file.

Two changes are scoped to a ``with`` block instead, and undone after it:
:func:`recbole_crs.artifacts.checkpoints.trusted_torch_load` (``torch.load`` around RecBole code that loads a file
the user named) and :func:`recbole_crs.data.atomic.recbole_reads_text` (the pandas reader of RecBole's atomic-file
loader).
"""

import warnings

import numpy as np
import recbole.data
import recbole.data.utils as data_utils
import recbole.trainer.trainer as recbole_trainer
import torch
import torch.distributed as dist
from recbole.data.dataset import Dataset
from torch.nn.parallel import DistributedDataParallel

from recbole_crs.artifacts.caches import (
    safe_create_dataset, safe_load_split_dataloaders, safe_save_dataset, safe_save_split_dataloaders,
)

_installed = set()


def install_recbole_patches():
    """Install every patch of this module (idempotent: each is installed once per process)."""
    for patch in (restore_numpy_aliases, quiet_known_recbole_warnings, disable_recbole_anomaly_detection,
                  install_safe_caches, install_cpu_ddp, install_rank0_tensorboard):
        if patch.__name__ not in _installed:
            patch()
            _installed.add(patch.__name__)


def restore_numpy_aliases():
    """Give NumPy >= 2 back the aliases recbole 1.2.1 reads (``np.float_``, ``np.complex_``, ``np.unicode_``).

    ``Config.compatibility_settings`` runs ``np.float = np.float_`` etc. on every Config, which raises
    AttributeError on NumPy 2. On NumPy 1 this does nothing.
    """
    for old, new in (("float_", "float64"), ("complex_", "complex128"), ("unicode_", "str_")):
        if old not in vars(np):
            setattr(np, old, getattr(np, new))


def quiet_known_recbole_warnings():
    """Silence FutureWarnings that recbole 1.2.1 itself triggers on pandas 2.x / torch 2.x.

    They come from RecBole's own modules (chained ``fillna(inplace=True)``, ``Series.agg(len)``,
    ``torch.cuda.amp.GradScaler``), say nothing actionable to our users, and drown the training log.
    Warnings raised from any other module are untouched.
    """
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")


def disable_recbole_anomaly_detection():
    """Undo ``torch.autograd.set_detect_anomaly(True)``, which recbole 1.2.1 runs when SINE is imported.

    ``recbole/model/sequential_recommender/sine.py`` switches anomaly detection on for the whole process at
    import time, and any model lookup imports it. Anomaly mode checks every backward output for NaN, which about
    doubles the cost of a training step of every model (SASRec included). The module is imported once, here, and
    the mode switched back off; a later import does not re-run it.
    """
    # imported here, next to its undo: the import runs sine.py's set_detect_anomaly(True)
    import recbole.model.sequential_recommender  # noqa: F401

    torch.autograd.set_detect_anomaly(False)


def install_safe_caches():
    """Route RecBole's dataset/dataloader cache functions through :mod:`recbole_crs.artifacts.caches`.

    RecBole 1.2.1 unpickles ``<checkpoint_dir>/<dataset>-for-<model>-dataloader.pth`` on every run if it exists, and
    the dataset cache likewise: caches are read only from files the user named (``dataset_save_path`` /
    ``dataloaders_save_path``) and written atomically under names keyed by the data and config.
    """
    for name, function in (
        ("create_dataset", safe_create_dataset),
        ("load_split_dataloaders", safe_load_split_dataloaders),
        ("save_split_dataloaders", safe_save_split_dataloaders),
    ):
        setattr(data_utils, name, function)
        if hasattr(recbole.data, name):
            setattr(recbole.data, name, function)
    Dataset.save = safe_save_dataset


def install_cpu_ddp():
    """Make RecBole's trainers wrap a CPU model in DDP without ``device_ids`` (torch refuses them on CPU).

    RecBole 1.2.1's ``AbstractTrainer.__init__`` calls ``DistributedDataParallel(model, device_ids=[local_rank])``;
    on a CPU model that raises. The replacement passes ``device_ids=None`` for a model whose parameters are all on
    the CPU and leaves GPU models (NCCL) exactly as RecBole wraps them.
    """
    recbole_trainer.DistributedDataParallel = cpu_aware_ddp


def cpu_aware_ddp(module, device_ids=None, **kwargs):
    devices = {parameter.device.type for parameter in module.parameters()}
    if devices == {"cpu"}:
        device_ids = None
        kwargs.pop("output_device", None)
    return DistributedDataParallel(module, device_ids=device_ids, **kwargs)


class _SilentWriter:
    """What the trainers of ranks other than 0 get instead of a ``SummaryWriter``: every call does nothing."""

    def __getattr__(self, name):
        if name.startswith("__"):  # copy, pickle and friends look these up: not a writer method
            raise AttributeError(name)
        return lambda *args, **kwargs: None


def install_rank0_tensorboard():
    """Make RecBole's trainers open a tensorboard writer on rank 0 only (and in a single-process run).

    RecBole 1.2.1's ``Trainer.__init__`` calls ``get_tensorboard``, which creates ``./log_tensorboard/<log name>/``
    and an event file in every process; the ranks log the same evaluation figures, so their files would be copies
    (or per-shard losses nobody asked for).
    """
    open_writer = recbole_trainer.get_tensorboard

    def rank0_tensorboard(logger):
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        return open_writer(logger) if rank == 0 else _SilentWriter()

    recbole_trainer.get_tensorboard = rank0_tensorboard
