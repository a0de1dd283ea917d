"""Plugin trainers. ``recbole_crs.utils.get_trainer`` finds ``<Model>Trainer`` here first."""

from recbole_crs.trainer.evaluation import CRSEvaluationMixin, CRSTrainer, with_crs_evaluation

__all__ = ["CRSEvaluationMixin", "CRSTrainer", "with_crs_evaluation"]

from recbole_crs.trainer.pretrain import CRSFinetuneTrainer, CRSGeneratorTrainer, CRSPretrainTrainer  # noqa: E402

__all__ += ["CRSPretrainTrainer", "CRSFinetuneTrainer", "CRSGeneratorTrainer"]
