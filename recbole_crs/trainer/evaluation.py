"""Conversation-aware evaluation for every trainer, RecBole's and ours.

:class:`CRSEvaluationMixin` sits in front of any RecBole trainer class: it masks the full-sort score
matrix to the ``crs_candidates`` of each evaluated conversation, and loads checkpoints through
:mod:`recbole_crs.compat` (RecBole's own loading fails under torch >= 2.6).
"""

import numpy as np
import torch
from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.trainer import Trainer

from recbole_crs.compat import load_checkpoint
from recbole_crs.evaluation.candidates import CandidateFilter, authors_protocol_metrics, check_mode, strict_ranks


class CRSEvaluationMixin:
    """Mix in before a RecBole trainer class: ``class T(CRSEvaluationMixin, Trainer)``."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.crs_candidates = check_mode(config["crs_candidates"] or "all")
        self._candidate_filter = None

    def _load_model_file(self, model_file):
        checkpoint = load_checkpoint(model_file, map_location=self.device)
        trained_on = checkpoint["config"]["dataset"]
        if trained_on != self.config["dataset"]:
            raise ValueError(
                f"Checkpoint '{model_file}' was trained on dataset '{trained_on}', not "
                f"'{self.config['dataset']}': its item and attribute ids mean different things here. Use a "
                f"checkpoint trained on '{self.config['dataset']}', or run with --dataset {trained_on}."
            )
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.logger.info(f"Loading model structure and parameters from {model_file}")
        return checkpoint

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False, crs_candidates=None):
        """RecBole's evaluate, restricted to the conversation's candidates (``crs_candidates`` or config)."""
        if not eval_data:
            return None
        if load_best_model:
            self._load_model_file(model_file or self.saved_model_file)
        mode = check_mode(crs_candidates or self.crs_candidates)
        if mode != "all":
            if not isinstance(eval_data, FullSortEvalDataLoader):
                raise ValueError(
                    f"crs_candidates '{mode}' needs full ranking: set eval_args: {{mode: full}} "
                    "(candidate sampling like uni100 cannot be restricted to a conversation's candidates)."
                )
            self._candidate_filter = CandidateFilter(eval_data._dataset, mode, self.device)
        try:
            if mode == "authors":
                return self._evaluate_authors_protocol(eval_data)
            return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        finally:
            self._candidate_filter = None

    @torch.no_grad()
    def _evaluate_authors_protocol(self, eval_data):
        """Strict-rank metrics of the paper's code (ties count for the target), not RecBole's top-k."""
        self.model.eval()
        self.tot_item_num = eval_data._dataset.item_num
        if self.item_tensor is None:
            self.item_tensor = eval_data._dataset.get_item_feature().to(self.device)
        ranks = []
        for batched_data in eval_data:
            _, scores, _, positive_i = self._full_sort_batch_eval(batched_data)
            ranks.append(strict_ranks(scores, positive_i.to(scores.device)))
        return authors_protocol_metrics(torch.cat(ranks))

    def evaluate_modes(self, eval_data, modes, load_best_model=True, model_file=None, show_progress=False):
        """``{mode: result}`` for each candidate mode, loading the best model once."""
        if load_best_model:
            self._load_model_file(model_file or self.saved_model_file)
        return {
            mode: self.evaluate(eval_data, load_best_model=False, show_progress=show_progress, crs_candidates=mode)
            for mode in modes
        }

    def _full_sort_batch_eval(self, batched_data):
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        if self._candidate_filter is not None:
            allowed = self._candidate_filter(interaction.to(self.device))
            scores = scores.masked_fill(~allowed, -np.inf)
        return interaction, scores, positive_u, positive_i

    def resume_checkpoint(self, resume_file):
        """RecBole's resume_checkpoint, reading the file through the compat loader."""
        resume_file = str(resume_file)
        self.saved_model_file = resume_file
        checkpoint = self._load_model_file(resume_file)
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        if checkpoint["config"]["model"].lower() != self.config["model"].lower():
            raise ValueError(
                f"Checkpoint '{resume_file}' was written by model {checkpoint['config']['model']}, not "
                f"{self.config['model']}: resume it with --model {checkpoint['config']['model']}."
            )
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")
        return checkpoint


_wrapped_classes = {}


def with_crs_evaluation(trainer_class):
    """``trainer_class`` with :class:`CRSEvaluationMixin` in front (cached, so isinstance works)."""
    if issubclass(trainer_class, CRSEvaluationMixin):
        return trainer_class
    if trainer_class not in _wrapped_classes:
        _wrapped_classes[trainer_class] = type(
            f"CRS{trainer_class.__name__}", (CRSEvaluationMixin, trainer_class), {}
        )
    return _wrapped_classes[trainer_class]


CRSTrainer = with_crs_evaluation(Trainer)
