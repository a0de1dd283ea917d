"""The trainer mixin that gives every trainer, RecBole's and ours, conversation-aware evaluation.

:class:`CRSEvaluationMixin` sits in front of any RecBole trainer class (:func:`with_crs_evaluation`;
:data:`TrainerWithCRSEvaluation` is RecBole's ``Trainer`` so wrapped). On a conversational dataset it scores
every evaluated conversation state (one per turn, :mod:`recbole_crs.data.turns`) against the candidates of
``crs_candidates`` (:mod:`recbole_crs.evaluation.candidates`), ranks the target with the tie rule
``crs_ties`` (:mod:`recbole_crs.evaluation.ranking`) and reports all turns, turn 1, the last turn and the
chance level of each (:mod:`recbole_crs.evaluation.summary`). It also loads checkpoints through
:func:`recbole_crs.artifacts.load_checkpoint` (RecBole's own loading fails under torch >= 2.6).

Names: the package :mod:`recbole_crs.evaluation` is pure tensor -> metric code (candidate masks, tie counts,
summaries; no model, no dataloader, no trainer). This module is the trainer side that drives it: it runs the
model over the evaluation dataloader, gathers the rows across ranks and owns the checkpoints it evaluates, so it
lives in ``trainer/`` and is named after the mixin. The wrapped class is named after what it is, RecBole's
trainer with CRS evaluation (``TrainerWithCRSEvaluation``, ``S3RecTrainerWithCRSEvaluation``, ...), not "the
CRS trainer": the CRS models' own trainers are in :mod:`recbole_crs.trainer.stages`.

Checkpoints (:mod:`recbole_crs.artifacts`): every trainer, RecBole's included, names its checkpoint per run
(``<model>-<time>-<pid>-<random>.pth``: two runs started in the same second never share a file), writes it
atomically (a temporary file renamed into place: a kill mid-save keeps the previous checkpoint), as plain
data (loadable with ``weights_only=True``) with the fingerprint of the data it was trained on.

Multi-process runs (:mod:`recbole_crs.trainer.distributed`): rank 0 picks the checkpoint name and gives it to
every rank, saves alone, and every rank waits for the file at the end of ``fit`` before any of them reads it.
Evaluation on conversational data gathers every rank's per-row results (``greater``, ``equal``, ``n``, turn, last
turn, by dataset row) and computes the metrics once, so they equal the single-process figures exactly; RecBole's
own evaluation (data without conversations) keeps its per-rank reduction.
"""

import os

import torch
from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.trainer import Trainer
from recbole.utils import ModelType, set_color
from tqdm import tqdm

from recbole_crs.artifacts import (
    FINGERPRINT_KEY,
    atomic_torch_save,
    check_item_fingerprint,
    dataset_fingerprint,
    load_checkpoint,
    plain_config,
)
from recbole_crs.data.turns import LAST_TURN_FIELD, TURN_FIELD
from recbole_crs.errors import CheckpointError
from recbole_crs.evaluation import (
    CandidateFilter,
    RankMetrics,
    check_mode,
    summarize_by_turn,
    summarize_states,
    tie_counts,
)
from recbole_crs.run_plan import run_plan
from recbole_crs.runtime import clean_stale_temporaries, run_id
from recbole_crs.trainer.distributed import (
    gather_rows,
    is_distributed,
    is_main_process,
    sampler_rows,
    shared_value,
    single_process_values,
    wait_for_file,
)


class CRSEvaluationMixin:
    """Mix in before a RecBole trainer class: ``class T(CRSEvaluationMixin, Trainer)``."""

    def __init__(self, config, model):
        if isinstance(config["checkpoint_dir"], str) and config["checkpoint_dir"]:
            # RecBole's ensure_dir checks, then creates: two ranks racing there fail with FileExistsError.
            os.makedirs(config["checkpoint_dir"], exist_ok=True)
        super().__init__(config, model)
        # The run plan's modes, checked here, before any training, so a typo never costs a trained model.
        plan = run_plan(config)
        self.crs_candidates, self.test_modes = plan.candidates, plan.test_modes
        self.rank_metrics = None
        if config["MODEL_TYPE"] == ModelType.SEQUENTIAL:  # conversational data (CRSDataset)
            self.rank_metrics = RankMetrics(config["metrics"], config["topk"], config["crs_ties"] or "expected")
        self.results_by_turn = {}  # mode -> summarize_by_turn(...) of the last evaluation in that mode
        self._fingerprint = None  # dataset_fingerprint of the data fit() trains on, stored in checkpoints
        checkpoint_dir = getattr(self, "checkpoint_dir", None)
        if checkpoint_dir and isinstance(self, Trainer):
            # RecBole names the file by the second only: two runs in one folder would share (and test) it.
            # Under DDP rank 0 names it for every rank: one file, never one per process.
            self.saved_model_file = shared_value(
                config, lambda: os.path.join(checkpoint_dir, f"{config['model']}-{run_id()}.pth")
            )
            if is_main_process(config):  # another rank's cleaning could race rank 0's writes
                clean_stale_temporaries(checkpoint_dir)

    # ------------------------------------------------------------------ checkpoints
    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        dataset = getattr(train_data, "_dataset", None)
        if dataset is not None and hasattr(dataset, "field2id_token"):
            self._fingerprint = dataset_fingerprint(dataset)
        result = super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)
        if saved:  # rank 0 saved alone: every rank waits for the file before anyone loads it
            wait_for_file(self.config, self.saved_model_file)
        return result

    def _checkpoint_state(self, epoch):
        """RecBole's checkpoint content, with the config as plain data and the data's fingerprint."""
        return {
            "config": plain_config(single_process_values(self.config)),
            "config_parameters": {key: list(names) for key, names in getattr(self.config, "parameters", {}).items()},
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score) if self.best_valid_score is not None else None,
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
            FINGERPRINT_KEY: self._fingerprint,
        }

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        """RecBole's ``_save_checkpoint`` (rank-0 guard, same content), written atomically as plain data."""
        if not isinstance(self, Trainer):  # e.g. DecisionTreeTrainer: its own format
            return super()._save_checkpoint(epoch, verbose=verbose, **kwargs)
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        atomic_torch_save(self._checkpoint_state(epoch), saved_model_file)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    def save_pretrained_model(self, epoch, saved_model_file):
        """RecBole's PretrainTrainer (S3Rec pre-training) file, written atomically as plain data (by rank 0 alone
        under DDP)."""
        self.saved_model_file = saved_model_file
        if not is_main_process(self.config):
            return
        state = {
            "config": plain_config(single_process_values(self.config)),
            "state_dict": self.model.state_dict(),
            FINGERPRINT_KEY: self._fingerprint,
        }
        atomic_torch_save(state, saved_model_file)

    def _load_model_file(self, model_file, dataset=None):
        checkpoint = load_checkpoint(model_file, map_location=self.device)
        trained_on = checkpoint["config"]["dataset"]
        if trained_on != self.config["dataset"]:
            raise CheckpointError(
                f"Checkpoint '{model_file}' was trained on dataset '{trained_on}', not "
                f"'{self.config['dataset']}': its item and attribute ids mean different things here. Use a "
                f"checkpoint trained on '{self.config['dataset']}', or run with --dataset {trained_on}."
            )
        if dataset is not None and checkpoint.get(FINGERPRINT_KEY):
            check_item_fingerprint(checkpoint, dataset, model_file)
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.logger.info(f"Loading model structure and parameters from {model_file}")
        return checkpoint

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False, crs_candidates=None):
        """Metrics of the conversation states in ``eval_data`` in one candidate mode (``crs_candidates`` or config)."""
        if not eval_data:
            return None
        if load_best_model:
            self._load_model_file(model_file or self.saved_model_file, getattr(eval_data, "_dataset", None))
        mode = check_mode(crs_candidates or self.crs_candidates)
        dataset = eval_data._dataset
        if self.rank_metrics is None or not hasattr(dataset, "confirmed_field"):
            if mode != "all":
                raise ValueError(
                    f"crs_candidates '{mode}' needs a conversational dataset (CRSDataset, used for sequential "
                    "models); this one has no conversations. Use crs_candidates: all."
                )
            return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        if not isinstance(eval_data, FullSortEvalDataLoader):
            raise ValueError(
                f"crs_candidates '{mode}' needs full ranking: set eval_args: {{mode: full}} "
                "(candidate sampling like uni100 cannot be restricted to a conversation's candidates)."
            )
        return self._evaluate_states(eval_data, mode, show_progress)

    @torch.no_grad()
    def _evaluate_states(self, eval_data, mode, show_progress=False):
        self.model.eval()
        candidate_filter = CandidateFilter(eval_data._dataset, mode, self.device)
        self.tot_item_num = eval_data._dataset.item_num
        if self.item_tensor is None:
            self.item_tensor = eval_data._dataset.get_item_feature().to(self.device)
        batches = eval_data
        if show_progress:
            batches = tqdm(eval_data, total=len(eval_data), ncols=100, desc=set_color(f"Evaluate {mode:<9}", "pink"))
        rows = []  # per batch: [B, 5] long (greater, equal, n, turn, last turn)
        for batched_data in batches:
            interaction, scores, _, targets = self._full_sort_batch_eval(batched_data)
            interaction = interaction.to(self.device)
            greater, equal, n = tie_counts(scores, targets.to(scores.device), candidate_filter(interaction))
            n_rows = len(targets)
            turn = interaction[TURN_FIELD] if TURN_FIELD in interaction else torch.ones(n_rows)
            last = interaction[LAST_TURN_FIELD] if LAST_TURN_FIELD in interaction else torch.ones(n_rows)
            rows.append(torch.stack([greater.cpu(), equal.cpu(), n.cpu(), turn.cpu().long(), last.cpu().long()], 1))
        rows = torch.cat(rows) if rows else torch.zeros(0, 5, dtype=torch.long)
        order = sampler_rows(eval_data)
        if order is not None and is_distributed(self.config):
            # Every rank scored its share; the metrics are computed once over every row, as in one process.
            rows = gather_rows(rows, order, len(eval_data._dataset))
        greater, equal, n, turn, last = rows.unbind(1)
        values, chance = self.rank_metrics.values(greater, equal, n)
        last = last.bool()
        decimals = self.config["metric_decimal_place"] + 2
        self.results_by_turn[mode] = summarize_by_turn(values, chance, turn, decimals)
        return summarize_states(values, chance, turn, last, decimals)

    def evaluate_modes(self, eval_data, modes, load_best_model=True, model_file=None, show_progress=False):
        """``{mode: result}`` for each candidate mode, loading the best model once."""
        if load_best_model:
            self._load_model_file(model_file or self.saved_model_file, getattr(eval_data, "_dataset", None))
        return {
            mode: self.evaluate(eval_data, load_best_model=False, show_progress=show_progress, crs_candidates=mode)
            for mode in modes
        }

    def resume_checkpoint(self, resume_file):
        """RecBole's resume_checkpoint, reading the file through the compat loader."""
        resume_file = str(resume_file)
        self.saved_model_file = resume_file
        checkpoint = self._load_model_file(resume_file)
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        if checkpoint["config"]["model"].lower() != self.config["model"].lower():
            raise CheckpointError(
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
            f"{trainer_class.__name__}WithCRSEvaluation", (CRSEvaluationMixin, trainer_class), {}
        )
    return _wrapped_classes[trainer_class]


TrainerWithCRSEvaluation = with_crs_evaluation(Trainer)  # RecBole's Trainer with conversation-aware evaluation
