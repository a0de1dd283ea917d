"""Plugin trainers, and the trainer lookup (:func:`get_trainer`): ``<Model>Trainer`` here first, else RecBole's
trainer for the model with conversation-aware evaluation.

* :mod:`~recbole_crs.trainer.crs_evaluation`: the mixin that gives any RecBole trainer conversation-aware
  evaluation (:func:`with_crs_evaluation`, :data:`TrainerWithCRSEvaluation`);
* :mod:`~recbole_crs.trainer.resumable`: unique checkpoint names and exact resumption for the stage trainers;
* :mod:`~recbole_crs.trainer.stages`: the CRSPretrain pipeline's stage trainers (generator, pre-training,
  fine-tuning);
* :mod:`~recbole_crs.trainer.distributed`: the multi-process pieces they share.
"""

from recbole.utils import get_trainer as get_recbole_trainer

from recbole_crs.trainer.crs_evaluation import CRSEvaluationMixin, TrainerWithCRSEvaluation, with_crs_evaluation
from recbole_crs.trainer.resumable import CRSCheckpointMixin
from recbole_crs.trainer.stages import CRSFinetuneTrainer, CRSGeneratorTrainer, CRSPretrainTrainer

__all__ = [
    "CRSCheckpointMixin",
    "CRSEvaluationMixin",
    "TrainerWithCRSEvaluation",
    "with_crs_evaluation",
    "CRSGeneratorTrainer",
    "CRSPretrainTrainer",
    "CRSFinetuneTrainer",
    "get_trainer",
]


def get_trainer(model_type, model_name):
    """The trainer for ``model_name``, always with conversation-aware evaluation.

    ``<Name>Trainer`` of this package if the plugin has one, else RecBole's choice for the model, wrapped so that
    evaluation honours ``crs_candidates`` for every model alike.
    """
    own = globals().get(f"{model_name}Trainer")
    if own is not None:
        return own
    return with_crs_evaluation(get_recbole_trainer(model_type, model_name))
