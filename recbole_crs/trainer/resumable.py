"""Checkpoints of the plugin's stage trainers: names that never collide, and exact resumption.

:class:`CRSCheckpointMixin` (mixed in by every trainer of :mod:`recbole_crs.trainer.stages`) adds two things to
the checkpoints :class:`~recbole_crs.trainer.crs_evaluation.CRSEvaluationMixin` writes for every trainer:

* a name per stage that never collides: ``<model>-<dataset>-<stage>-<local time>-<pid>-<random>.pth``
  (:func:`unique_checkpoint_file`; RecBole names the file by the second);
* the random state (global torch/numpy/python generators and the training dataloader's shuffling generator,
  :func:`random_state`), so that ``resume_checkpoint`` continues a run exactly (:func:`restore_random_state`).

Why a module of its own: the checkpoint *format* (plain data, atomic writes, the data's fingerprint) belongs to
every trainer, RecBole's included, and lives with the mixin that wraps them all; what only the stage trainers
need lives here, apart from what the stages train (:mod:`recbole_crs.trainer.stages`).

Under DDP (:mod:`recbole_crs.trainer.distributed`) rank 0 names the checkpoint for every rank, and each rank
seeds itself (``seed + rank``) at the start of ``fit`` instead of restoring a saved random state.
"""

import os
import random

import numpy as np
import torch

from recbole_crs.runtime import run_id
from recbole_crs.trainer.distributed import is_distributed, seed_rank, shared_value

_handed_out = set()  # checkpoint paths named by this process


def unique_checkpoint_file(checkpoint_dir, stem):
    """``checkpoint_dir/<stem>-<local time>-<pid>-<random>.pth`` (:func:`recbole_crs.runtime.run_id`),
    suffixed ``-2``, ``-3``... if that name is taken.

    A name counts as taken if the file exists or this process already handed it out; the pid and random part
    keep two processes started in the same second apart.
    """
    base = os.path.join(checkpoint_dir, f"{stem}-{run_id()}")
    path, n = f"{base}.pth", 1
    while path in _handed_out or os.path.exists(path):
        n += 1
        path = f"{base}-{n}.pth"
    _handed_out.add(path)
    return path


def random_state(train_data=None):
    """The random generators' states as plain data and tensors (a checkpoint loads with ``weights_only=True``)."""
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    numpy_state = {
        "name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
        "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian),
    }
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if train_data is not None and getattr(train_data, "generator", None) is not None:
        state["dataloader"] = train_data.generator.get_state()
    return state


def restore_random_state(state, train_data=None):
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    if isinstance(numpy_state, dict):
        numpy_state = (
            numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
            numpy_state["has_gauss"], numpy_state["cached_gaussian"],
        )
    np.random.set_state(numpy_state)
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "dataloader" in state and train_data is not None and getattr(train_data, "generator", None) is not None:
        train_data.generator.set_state(state["dataloader"])



class CRSCheckpointMixin:
    """Collision-free checkpoint names and exact resumption. Mix in before :class:`CRSEvaluationMixin`.

    Subclasses may add entries to the checkpoint with :meth:`_extra_checkpoint_state` and read them back in
    :meth:`_load_extra_checkpoint_state`.
    """

    checkpoint_stage = None  # appended to the file stem, e.g. "pretrain"

    def __init__(self, config, model):
        super().__init__(config, model)
        stem = f"{config['model']}-{config['dataset']}"
        if self.checkpoint_stage:
            stem += f"-{self.checkpoint_stage}"
        # Rank 0 picks the name for every rank (DDP): one file, never one per process.
        self.saved_model_file = shared_value(config, lambda: unique_checkpoint_file(self.checkpoint_dir, stem))
        self._train_data = None
        self._pending_random_state = None

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        self._train_data = train_data
        if is_distributed(self.config):
            # Each rank its own draws (negatives, masks, dropout); a resumed run moves on to fresh ones. The exact
            # continuation of a checkpoint's random state is a single-process guarantee.
            seed_rank(self.config, offset=self.start_epoch * self.config["world_size"])
            self._pending_random_state = None
        elif self._pending_random_state is not None:
            restore_random_state(self._pending_random_state, train_data)
            self._pending_random_state = None
        return super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)

    def _extra_checkpoint_state(self):
        return {}

    def _load_extra_checkpoint_state(self, checkpoint):
        pass

    def _checkpoint_state(self, epoch):
        state = super()._checkpoint_state(epoch)
        state["random_state"] = random_state(self._train_data)
        state.update(self._extra_checkpoint_state())
        return state

    def resume_checkpoint(self, resume_file):
        """Model, optimizer(s), counters and random state; training continues as if never interrupted."""
        checkpoint = super().resume_checkpoint(resume_file)
        self._load_extra_checkpoint_state(checkpoint)
        self._pending_random_state = checkpoint.get("random_state")
        return checkpoint

