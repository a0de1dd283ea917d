"""Timed training steps of one stage, for the speed benchmarks (``benchmarks/scale.py``, ``benchmarks/throughput.py``).

A stage's trainer and dataloader come from the pipeline's own builders (:func:`recbole_crs.pipeline.generator_stage`,
:func:`~recbole_crs.pipeline.pretrain_stage`, :func:`~recbole_crs.pipeline.finetune_stage`), so a benchmark times
what a run trains; :class:`Batches` feeds a trainer's ``_train_epoch`` a fixed number of batches.
"""

import gc
import itertools

from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_crs.data.finetune import finetune_dataloader
from recbole_crs.model.negative_generator import NegativeGenerator
from recbole_crs.pipeline import finetune_stage, generator_stage, pretrain_stage
from recbole_crs.quick_start import build_model, create_dataset
from recbole_crs.trainer import get_trainer

STAGES = ("sasrec", "generator", "pretrain", "finetune")


class Batches:
    """The first ``n`` batches of ``loader`` (cycling through epochs when it has fewer), as a dataloader; ``rows``
    counts the rows handed out."""

    def __init__(self, loader, n):
        self.loader, self.n, self.rows = loader, n, 0

    def __iter__(self):
        for batch in itertools.islice(itertools.chain.from_iterable(itertools.repeat(self.loader)), self.n):
            self.rows += len(batch)
            yield batch

    def __len__(self):
        return self.n

    def __getattr__(self, name):
        return getattr(self.loader, name)


def stage_trainer(stage, config, dataset, train_data):
    """``(trainer, dataloader)`` of ``stage`` (one of :data:`STAGES`) on ``train_data``, built as a run builds it.

    ``config`` is SASRec's for ``sasrec`` and CRSPretrain's otherwise. Pre-training draws negatives from an untrained
    generator (the same cost per step as a trained one); fine-tuning starts from scratch.
    """
    if stage == "sasrec":
        model = build_model(config, train_data)
        return get_trainer(type(model).type, config["model"])(config, model), train_data
    if stage == "generator":
        return generator_stage(config, dataset, train_data)
    if stage == "pretrain":
        return pretrain_stage(config, dataset, train_data, NegativeGenerator(config, dataset).to(config["device"]))
    if stage == "finetune":
        trainer = finetune_stage(config, dataset)
        return trainer, finetune_dataloader(trainer.config, train_data)[0]
    raise ValueError(f"unknown stage {stage!r}: use one of {', '.join(STAGES)}")


def stage_trainers(stages, config_of):
    """Yield ``(stage, config, trainer, dataloader)`` for each stage of ``stages`` in :data:`STAGES` order.

    ``config_of(model)`` builds the config of ``"SASRec"`` (stage ``sasrec``) or ``"CRSPretrain"`` (the others); the
    dataset and its dataloaders are built once per model, each stage seeded as a run seeds it. A stage's trainer and
    the model's dataset are freed before the next is built, so memory peaks do not add up.
    """
    for model in ("SASRec", "CRSPretrain"):
        wanted = [stage for stage in STAGES if stage in stages and (stage == "sasrec") == (model == "SASRec")]
        if not wanted:
            continue
        config = config_of(model)
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        train_data, _, _ = data_preparation(config, dataset)
        for stage in wanted:
            init_seed(config["seed"], config["reproducibility"])
            trainer, loader = stage_trainer(stage, config, dataset, train_data)
            yield stage, config, trainer, loader
            del trainer, loader
            gc.collect()
        del dataset, train_data
        gc.collect()
