"""Plugin trainers. ``recbole_crs.utils.get_trainer`` finds ``<Model>Trainer`` here first.

* :mod:`~recbole_crs.trainer.crs_evaluation`: the mixin that gives any RecBole trainer conversation-aware
  evaluation (:func:`with_crs_evaluation`, :data:`TrainerWithCRSEvaluation`);
* :mod:`~recbole_crs.trainer.checkpoint`: unique checkpoint names and exact resumption for the stage trainers;
* :mod:`~recbole_crs.trainer.stages`: the CRSPretrain pipeline's stage trainers (generator, pre-training,
  fine-tuning);
* :mod:`~recbole_crs.trainer.distributed`: the multi-process pieces they share.
"""

from recbole_crs.trainer.checkpoint import CRSCheckpointMixin
from recbole_crs.trainer.crs_evaluation import CRSEvaluationMixin, TrainerWithCRSEvaluation, with_crs_evaluation
from recbole_crs.trainer.stages import CRSFinetuneTrainer, CRSGeneratorTrainer, CRSPretrainTrainer

__all__ = [
    "CRSCheckpointMixin",
    "CRSEvaluationMixin",
    "TrainerWithCRSEvaluation",
    "with_crs_evaluation",
    "CRSGeneratorTrainer",
    "CRSPretrainTrainer",
    "CRSFinetuneTrainer",
]
