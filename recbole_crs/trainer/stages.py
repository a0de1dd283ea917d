"""The stage trainers of the CRSPretrain pipeline (:mod:`recbole_crs.pipeline`), one per stage.

* :class:`CRSGeneratorTrainer` (stage ``generator``): RecBole's training loop for the SASRec negative generator.
* :class:`CRSPretrainTrainer` (stage ``pretrain``): per batch, the negative sampler draws negatives (the SASRec
  generator in eval mode under ``no_grad``, or uniform during ``uniform_warmup_epochs``), the discriminator takes
  one step on ``L_MIP + sad_weight * L_SAD``; in ``generator_mode: joint`` the generator then takes one step on
  its own loss with its own optimizer. With ``generator_phase_learning_rate`` the discriminator's learning rate
  switches to that value at the first epoch with generator negatives (the paper's two-stage schedule). Losses
  are logged per part (mip, sad[, generator]), with the epoch's realised SAD substitution: the fraction of real
  attribute slots substituted and of masked items whose whole subset was.
* :class:`CRSFinetuneTrainer` (stage ``finetune``, and ``--model CRSFinetune``): RecBole's trainer with
  conversation-aware evaluation; it trains on the conversational training rows, one sample per turn
  (``finetune_rows``, ``finetune_samples``).

Every stage trainer is ``CRSCheckpointMixin`` (:mod:`recbole_crs.trainer.resumable`:
unique names, exact resumption) + ``CRSEvaluationMixin`` (:mod:`recbole_crs.trainer.crs_evaluation`) + RecBole's
``Trainer``.

Under DDP (``single_spec: False``, :mod:`recbole_crs.trainer.distributed`) the generator and fine-tuning trainers
use RecBole's ``_train_epoch`` (sampler epochs, DDP gradient sync); pre-training sets the sampler's epoch and
averages the gradients of every discriminator parameter (and of the generator in joint mode) across ranks before
each step. Every rank draws its own negatives, masks and substitutions (``seed + rank`` from the start of ``fit``)
on a model initialised identically everywhere (DDP broadcasts rank 0's discriminator, :meth:`CRSPretrainTrainer`
rank 0's generator). Rank 0 names and writes the checkpoints; the others wait for them.
"""

from time import time

from recbole.trainer import Trainer
from recbole.utils import set_color
from torch.nn.utils.clip_grad import clip_grad_norm_
from tqdm import tqdm

from recbole_crs.data.finetune import describe_counts, finetune_dataloader
from recbole_crs.errors import CheckpointError
from recbole_crs.model.generator_sasrec import generator_config
from recbole_crs.model.negatives import NegativeSchedule
from recbole_crs.run_plan import run_plan
from recbole_crs.trainer.crs_evaluation import CRSEvaluationMixin
from recbole_crs.trainer.distributed import average_gradients, broadcast_parameters, is_distributed, reduce_epoch_stats
from recbole_crs.trainer.resumable import CRSCheckpointMixin

GENERATOR_MODES = ("frozen", "joint")


def checked_learning_rate(value, key="generator_phase_learning_rate"):
    """``value`` as a float > 0, or None for ``~``; a one-line ValueError naming ``key`` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ValueError(f"{key} must be a number > 0 (or ~ to keep pretrain_learning_rate), got {value!r}.")
    return float(value)


class CRSGeneratorTrainer(CRSCheckpointMixin, CRSEvaluationMixin, Trainer):
    """Trains RecBole's SASRec as the negative generator (its checkpoint is a plain SASRec checkpoint).

    RecBole's training loop unchanged: the model is a
    :class:`~recbole_crs.model.negative_generator.GeneratorSASRec`, whose ``calculate_loss`` is SASRec's
    next-item cross-entropy at every position of each training sequence; evaluation is SASRec's own.
    """

    checkpoint_stage = "generator"


class CRSPretrainTrainer(CRSCheckpointMixin, CRSEvaluationMixin, Trainer):
    """Pre-training: generator negatives -> discriminator step (-> generator step in ``joint`` mode).

    Config: ``pretrain_epochs``, ``pretrain_learning_rate``, ``negative_sampler`` (generator | uniform),
    ``generator_mode`` (frozen | joint), ``uniform_warmup_epochs``, ``generator_phase_learning_rate``,
    ``generator_learning_rate``, ``clip_grad_norm``.

    The paper's schedule (stage 1: uniform negatives at lr 1e-3, stage 2: generator negatives at lr 1e-4) is
    ``uniform_warmup_epochs: N`` + ``generator_phase_learning_rate``: this trainer is the one owner of the
    discriminator's learning rate, set at the start of every epoch (:meth:`learning_rate_for_epoch`).

    Args:
        generator: a :class:`~recbole_crs.model.negative_generator.NegativeGenerator`; needed unless
            ``negative_sampler`` is ``uniform``.
    """

    checkpoint_stage = "pretrain"

    def __init__(self, config, model, generator=None):
        super().__init__(config, model)
        self.epochs = config["pretrain_epochs"]
        self.learning_rate = config["pretrain_learning_rate"]
        self.optimizer = self._build_optimizer(params=self.model.parameters(), learning_rate=self.learning_rate)
        self.negative_sampler = config["negative_sampler"]
        self.generator_mode = config["generator_mode"]
        self.uniform_warmup_epochs = config["uniform_warmup_epochs"] or 0
        self.generator_phase_learning_rate = checked_learning_rate(config["generator_phase_learning_rate"])
        self.generator = generator.to(self.device) if generator is not None else None
        # which sampler draws each epoch's negatives, and whether a generator is needed (model/negatives.py)
        self.negatives = NegativeSchedule(config, model.uniform_sampler, self.generator)
        if self.generator_mode not in GENERATOR_MODES:
            raise ValueError(f"generator_mode must be one of {GENERATOR_MODES}, got {self.generator_mode!r}.")
        self.uses_generator = self.negatives.uses_generator
        self.joint = self.uses_generator and self.generator_mode == "joint"
        self.generator_optimizer = None
        if self.generator is not None:
            self.generator.requires_grad_(self.joint)
            self.generator.eval()
            if is_distributed(config):  # every rank draws negatives from (and trains) the same generator
                broadcast_parameters(self.generator)
        if self.joint:
            self.generator_optimizer = self._build_optimizer(
                params=self.generator.parameters(), learning_rate=generator_config(config)["learning_rate"]
            )
        self.loss_names = ("mip", "sad") + (("generator",) if self.joint else ())
        if self.generator_phase_learning_rate is not None and not self.uses_generator:
            self.logger.warning(
                "generator_phase_learning_rate is set but no pre-training epoch uses generator negatives "
                f"(negative_sampler {self.negative_sampler!r}, uniform_warmup_epochs {self.uniform_warmup_epochs}, "
                f"pretrain_epochs {self.epochs}): the learning rate stays {self.learning_rate}."
            )
        self.sad_counts = None  # [4] summed CRSPretrain.sad_substitution_counts of the last epoch

    def sampler_for_epoch(self, epoch_idx):
        """Uniform during the warm-up epochs (and for ``negative_sampler: uniform``), the generator after."""
        return self.negatives.sampler_for_epoch(epoch_idx)

    def learning_rate_for_epoch(self, epoch_idx):
        """The discriminator's learning rate in epoch ``epoch_idx``: ``generator_phase_learning_rate`` from the
        first epoch with generator negatives on (when set), ``pretrain_learning_rate`` before and otherwise."""
        if self.generator_phase_learning_rate is not None and self.sampler_for_epoch(epoch_idx) is self.generator:
            return self.generator_phase_learning_rate
        return self.learning_rate

    def _set_learning_rate(self, epoch_idx):
        """Apply :meth:`learning_rate_for_epoch`, logging a change; untouched without
        ``generator_phase_learning_rate`` (so RecBole's optimizer settings are left alone)."""
        if self.generator_phase_learning_rate is None:
            return
        learning_rate = self.learning_rate_for_epoch(epoch_idx)
        previous = self.optimizer.param_groups[0]["lr"]
        if all(group["lr"] == learning_rate for group in self.optimizer.param_groups):
            return
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate
        self.logger.info(
            set_color("learning rate", "blue") + f": {previous:g} -> {learning_rate:g} from pre-training epoch "
            f"{epoch_idx} ({self.sampler_for_epoch(epoch_idx).name} negatives; generator_phase_learning_rate)"
        )

    def _clip(self, parameters):
        if self.clip_grad_norm:
            clip_grad_norm_(parameters, **self.clip_grad_norm)

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        """One epoch; returns the summed (mip, sad[, generator]) losses."""
        self.model.train()
        self._set_learning_rate(epoch_idx)
        sampler = self.sampler_for_epoch(epoch_idx)
        iter_data = (
            tqdm(train_data, total=len(train_data), ncols=100, desc=set_color(f"Pretrain {epoch_idx:>5}", "pink"))
            if show_progress
            else train_data
        )
        distributed = is_distributed(self.config)
        if distributed and train_data.shuffle:
            train_data.sampler.set_epoch(epoch_idx)  # a new shuffle each epoch, the same on every rank
        total = None
        self.sad_counts = None
        for interaction in iter_data:
            interaction = interaction.to(self.device)
            # 1) discriminator step; the sampler draws negatives without gradient (generator in eval mode)
            self.optimizer.zero_grad()
            losses = self.model.calculate_loss(interaction, negative_sampler=sampler)
            loss = sum(losses)
            self._check_nan(loss)
            loss.backward()
            if distributed:  # every parameter's gradient, averaged over the ranks' shards, before clipping
                average_gradients(self.model.parameters())
            self._clip(self.model.parameters())
            self.optimizer.step()
            parts = [part.item() for part in losses]
            counts = getattr(self.model, "sad_counts", None)
            if counts is not None:
                self.sad_counts = counts if self.sad_counts is None else self.sad_counts + counts
            # 2) joint mode: the generator keeps learning its own (SASRec CE) objective
            if self.joint:
                self.generator.train()
                self.generator_optimizer.zero_grad()
                generator_loss = self.generator.calculate_loss(interaction)
                self._check_nan(generator_loss)
                generator_loss.backward()
                if distributed:
                    average_gradients(self.generator.parameters())
                self._clip(self.generator.parameters())
                self.generator_optimizer.step()
                self.generator.eval()
                parts.append(generator_loss.item())
            total = parts if total is None else [a + b for a, b in zip(total, parts)]
        total = list(total) if total is not None else [0.0 for _ in self.loss_names]
        if distributed:  # the log reports every rank's batches: losses averaged, SAD counts summed
            total, self.sad_counts = reduce_epoch_stats(total, self.sad_counts)
        return tuple(total)

    def _generate_train_loss_output(self, epoch_idx, s_time, e_time, losses):
        des = self.config["loss_decimal_place"] or 4
        parts = ", ".join(
            set_color(f"{name} loss", "blue") + f": {value:.{des}f}" for name, value in zip(self.loss_names, losses)
        )
        sampler = self.sampler_for_epoch(epoch_idx)
        return (
            set_color(f"epoch {epoch_idx} pre-training", "green")
            + f" [{set_color('time', 'blue')}: {e_time - s_time:.2f}s, "
            + f"{set_color('negatives', 'blue')}: {sampler.name}, {parts}{self.sad_substitution_summary()}]"
        )

    def sad_substitution_stats(self):
        """The last epoch's realised SAD substitution: (fraction of real slots substituted, fraction of masked items
        whose attribute subset is entirely substituted, real slots, masked items with attributes), or None."""
        if self.sad_counts is None:
            return None
        slots, substituted, items, everything = self.sad_counts.tolist()
        return substituted / max(slots, 1), everything / max(items, 1), slots, items

    def sad_substitution_summary(self):
        stats = self.sad_substitution_stats()
        if stats is None:
            return ""
        slot_rate, all_rate, slots, items = stats
        return (
            f", {set_color('sad substituted', 'blue')}: {slot_rate:.1%} of {slots} slots (configured "
            f"{self.config['sad_substitute_rate']:.1%}), {all_rate:.1%} of {items} masked items entirely"
        )

    def _extra_checkpoint_state(self):
        if self.generator is None:
            return {}
        return {
            "generator_state_dict": self.generator.state_dict(),
            "generator_optimizer": self.generator_optimizer.state_dict() if self.generator_optimizer else None,
            "generator_mode": self.generator_mode,
        }

    def _load_extra_checkpoint_state(self, checkpoint):
        if self.generator is None:
            return
        if "generator_state_dict" not in checkpoint:
            raise CheckpointError(
                f"Checkpoint '{self.saved_model_file}' holds no generator state; it cannot resume pre-training "
                "with generator negatives."
            )
        self.generator.load_state_dict(checkpoint["generator_state_dict"])
        if self.generator_optimizer is not None and checkpoint.get("generator_optimizer") is not None:
            self.generator_optimizer.load_state_dict(checkpoint["generator_optimizer"])

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        """Pre-train for ``pretrain_epochs``; validation is skipped (MIP has no ranking metric to stop on)."""
        started = time()
        result = super().fit(train_data, None, verbose, saved, show_progress, callback_fn)
        if verbose:
            self.logger.info(set_color("pre-training done", "green") + f" in {time() - started:.1f}s")
        return result


class CRSFinetuneTrainer(CRSCheckpointMixin, CRSEvaluationMixin, Trainer):
    """RecBole's training loop for :class:`~recbole_crs.model.crsfinetune.CRSFinetune`.

    ``fit`` owns what fine-tuning trains on (``finetune_rows``, ``finetune_samples`` of the run plan;
    :mod:`recbole_crs.data.finetune`): it swaps the training dataloader for one over those samples before the
    first epoch, for the pipeline's fine-tuning stage and ``--model CRSFinetune`` alike. ``finetune_counts``
    holds the last fit's (training rows, conversational rows, samples).
    """

    checkpoint_stage = "finetune"

    def __init__(self, config, model):
        super().__init__(config, model)
        plan = run_plan(config)  # unknown values are refused here, before anything runs
        self.finetune_rows, self.finetune_samples = plan.finetune_rows, plan.finetune_samples
        self.finetune_counts = None

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        train_data, self.finetune_counts = finetune_dataloader(self.config, train_data)
        if verbose:
            self.logger.info(set_color(describe_counts(self.config, self.finetune_counts), "green"))
        return super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)
