"""The CRSPretrain pipeline: negative generator -> MIP/SAD pre-training -> conversational fine-tuning.

``python run_recbole_crs.py --model CRSPretrain`` lands in :func:`run_crs_pretrain_pipeline` (through
``recbole_crs.quick_start.PIPELINES``). Stages (``crs_stages``, in this order, any subset):

1. ``generator``: train RecBole's SASRec on the training split (``generator_epochs``, best validation
   checkpoint kept) -- or load ``generator_path`` if it is set;
2. ``pretrain``: train :class:`~recbole_crs.model.crspretrain.CRSPretrain` on the training split's sequences
   with negatives from the generator (``pretrain_epochs``);
3. ``finetune``: train :class:`~recbole_crs.model.crsfinetune.CRSFinetune` initialised from the pre-trained
   encoders (from stage 2, or ``pretrained_path``; from scratch if neither) with early stopping on the
   validation set.

Which stages run and whether pre-training needs a generator are the run plan's decisions
(:mod:`recbole_crs.run_plan`): when ``crs_stages`` is left at its default and no pre-training epoch draws generator
negatives (``negative_sampler: uniform``, or ``uniform_warmup_epochs >= pretrain_epochs``), the generator stage is
skipped with one log line; listed explicitly in ``crs_stages``, it runs. Weights travel from stage to stage
as checkpoints (:func:`stage_checkpoint`). The trainer of the last stage run is returned; quick_start evaluates it
on the test set in every ``crs_test_modes`` mode (for ``finetune`` that is the best fine-tuned checkpoint).
"""

from logging import getLogger
from time import process_time, time

import numpy as np
from recbole.data.dataloader import TrainDataLoader
from recbole.utils import init_seed, set_color

from recbole_crs.artifacts import load_checkpoint
from recbole_crs.data.finetune import check_finetune_rows
from recbole_crs.model.crsfinetune import CRSFinetune
from recbole_crs.model.crspretrain import CRSPretrain
from recbole_crs.model.generator_sasrec import GeneratorSASRec, generator_config, stage_config
from recbole_crs.model.negative_generator import NegativeGenerator
from recbole_crs.run_plan import check_stage_inputs, run_plan
from recbole_crs.runtime import torch_threads
from recbole_crs.trainer.stages import CRSFinetuneTrainer, CRSGeneratorTrainer, CRSPretrainTrainer

def pretrain_rows(dataset, stride):
    """Indices of the training rows whose ``item_id_list + [target]`` forms the pre-training sequences.

    Per user, rows are taken every ``stride`` targets counting back from the user's last training row. With
    ``stride = MAX_ITEM_LIST_LENGTH + 1`` the sequences are the user's training history cut into
    non-overlapping windows; ``stride = 1`` keeps every (augmented) training row.
    """
    users = dataset.inter_feat[dataset.uid_field].numpy()
    order = np.argsort(users, kind="stable")  # rows of a user keep their (time) order
    sorted_users = users[order]
    starts = np.r_[0, np.flatnonzero(sorted_users[1:] != sorted_users[:-1]) + 1]
    ends = np.r_[starts[1:], len(order)]
    rank = np.arange(len(order)) - np.repeat(starts, ends - starts)  # position among the user's rows
    from_last = np.repeat(ends - starts, ends - starts) - 1 - rank
    return np.sort(order[from_last % stride == 0])


def pretrain_dataloader(config, train_data):
    """A shuffled dataloader over the pre-training sequences of the training split.

    ``pretrain_stride`` picks the rows (:func:`pretrain_rows`), ``pretrain_batch_size`` the batch size: one such
    sequence holds up to ``MAX_ITEM_LIST_LENGTH + 1`` items, an augmented training row one target.
    """
    dataset = train_data._dataset
    stride = config["pretrain_stride"] or config["MAX_ITEM_LIST_LENGTH"] + 1
    rows = pretrain_rows(dataset, stride)
    subset = dataset.copy(dataset.inter_feat[rows])
    batch_config = stage_config(config, train_batch_size=config["pretrain_batch_size"] or config["train_batch_size"])
    return TrainDataLoader(batch_config, subset, train_data._sampler, shuffle=True)


def _log(verbose, message):
    if verbose:
        getLogger().info(set_color(message, "green"))


def stage_checkpoint(trainer, saved):
    """What a stage hands to the next (the generator to pre-training, the pre-trained encoders to fine-tuning):
    the trainer's checkpoint as a dict, read back from the file it wrote (its best validation epoch) when
    ``saved``, or the same content from memory (its last epoch) when nothing is written. The one way weights
    travel between stages; the receiving model checks the checkpoint as it would a user's file."""
    if saved:
        return load_checkpoint(trainer.saved_model_file)
    return trainer._checkpoint_state(trainer.start_epoch)


def generator_stage(config, dataset, train_data):
    """``(trainer, data)`` of the generator stage: RecBole's SASRec (:class:`GeneratorSASRec`) on the training rows,
    trained and early-stopped as a SASRec baseline is, seeded. The one place the stage is built (the pipeline and
    the benchmarks' step timings)."""
    sasrec_config = generator_config(config)
    init_seed(config["seed"], config["reproducibility"])
    # RecBole's trainers do not move the model: on a GPU machine the batches go to config["device"].
    sasrec = GeneratorSASRec(sasrec_config, dataset).to(config["device"])
    return CRSGeneratorTrainer(sasrec_config, sasrec), train_data


def pretrain_stage(config, dataset, train_data, generator):
    """``(trainer, data)`` of MIP/SAD pre-training with negatives from ``generator`` (or uniform), seeded."""
    pretrain_config = stage_config(config, model="CRSPretrain")
    init_seed(config["seed"], config["reproducibility"])
    model = CRSPretrain(pretrain_config, dataset).to(config["device"])
    trainer = CRSPretrainTrainer(pretrain_config, model, generator=generator)
    return trainer, pretrain_dataloader(pretrain_config, train_data)


def finetune_stage(config, dataset, pretrained=None, history_prior=None):
    """The fine-tuning trainer: CRSFinetune initialised from ``pretrained`` (``pretrained_path`` or
    :func:`stage_checkpoint`; None = from scratch), with the generator's SASRec ``history_prior`` when it reads one,
    seeded. Its ``fit`` picks the fine-tuning samples."""
    finetune_config = stage_config(config, model="CRSFinetune", pretrained_path=None, generator_path=None)
    init_seed(config["seed"], config["reproducibility"])
    model = CRSFinetune(finetune_config, dataset)
    if pretrained is not None:
        model.load_pretrained(pretrained)
    if model.history_prior_weight > 0:
        model.set_history_prior(history_prior)
    return CRSFinetuneTrainer(finetune_config, model.to(config["device"]))


def train_generator(config, dataset, train_data, valid_data, saved=True, verbose=True):
    """Train RecBole's SASRec as the negative generator; returns (trainer, NegativeGenerator, score, result).

    It learns from the training rows as RecBole's SASRec does (:mod:`recbole_crs.model.generator_sasrec`).
    """
    trainer, data = generator_stage(config, dataset, train_data)
    _log(verbose, f"training the SASRec generator on the {len(data._dataset)} rows of the training split")
    show_progress = bool(config["show_progress"] and verbose)
    score, result = trainer.fit(data, valid_data, verbose=verbose, saved=saved, show_progress=show_progress)
    # the trained SASRec, as a fresh generator (pre-training freezes it unless generator_mode is joint)
    generator = NegativeGenerator.from_checkpoint(stage_checkpoint(trainer, saved), config, dataset)
    return trainer, generator.to(config["device"]), score, result


def pretrain(config, dataset, train_data, generator, saved=True, verbose=True):
    """MIP/SAD pre-training; returns the trainer (its model is the pre-trained CRSPretrain)."""
    trainer, data = pretrain_stage(config, dataset, train_data, generator)
    if verbose:
        getLogger().info(trainer.model)
    _log(verbose, f"pre-training on {len(data._dataset)} sequences of the training split")
    show_progress = bool(config["show_progress"] and verbose)
    trainer.fit(data, None, verbose=verbose, saved=saved, show_progress=show_progress)
    return trainer


def finetune(config, dataset, train_data, valid_data, pretrained=None, history_prior=None, saved=True, verbose=True):
    """Fine-tune CRSFinetune from ``pretrained`` (``pretrained_path`` or :func:`stage_checkpoint`; None = from
    scratch), on top of the generator's SASRec ``history_prior`` when ``history_prior_weight`` > 0."""
    trainer = finetune_stage(config, dataset, pretrained, history_prior)
    if pretrained is not None:
        _log(verbose, "fine-tuning from the pre-trained encoders")
    else:
        _log(verbose, "no pre-trained model: fine-tuning from scratch")
    if verbose:
        getLogger().info(trainer.model)
    show_progress = bool(config["show_progress"] and verbose)
    score, result = trainer.fit(train_data, valid_data, verbose=verbose, saved=saved, show_progress=show_progress)
    return trainer, score, result


def _load_generator(config, dataset, verbose):
    path = config["generator_path"]
    generator = NegativeGenerator.from_checkpoint(path, config, dataset).to(config["device"])
    _log(verbose, f"negative generator loaded from {path}")
    return generator


def run_crs_pretrain_pipeline(config, dataset, train_data, valid_data, saved=True, verbose=True):
    """Run the stages of ``crs_stages``; returns ``(trainer, best_valid_score, best_valid_result)`` of the last.

    With ``saved=False`` nothing is written: the stages hand their models over in memory. ``torch_threads``
    sets the torch thread count for the duration of the pipeline.
    """
    with torch_threads(config["torch_threads"]):
        return _run_stages(config, dataset, train_data, valid_data, saved, verbose)


def _run_stages(config, dataset, train_data, valid_data, saved, verbose):
    plan = run_plan(config)
    stages = list(plan.stages)
    if plan.generator_skipped:
        _log(verbose, (
            f"stage generator skipped: no pre-training epoch draws generator negatives (negative_sampler "
            f"{config['negative_sampler']!r}, uniform_warmup_epochs {config['uniform_warmup_epochs'] or 0}, "
            f"pretrain_epochs {config['pretrain_epochs']}); list it in crs_stages to train it anyway"
        ))
    check_stage_inputs(config, stages)  # validate() has checked these already; direct callers get them here
    if "finetune" in stages:  # fail before the generator and pre-training spend their time
        check_finetune_rows(config, train_data._dataset)
    started = time()
    stage_cpu_s = {}  # CPU seconds (time.process_time) of each stage run: the benchmark's per-stage cost
    generator = None
    trainer, best_score, best_result = None, None, None

    if "generator" in stages:
        stage_started, cpu_started = time(), process_time()
        if config["generator_path"]:
            generator = _load_generator(config, dataset, verbose)
            trainer = CRSGeneratorTrainer(generator_config(config), generator.sasrec)
            trainer.saved_model_file = config["generator_path"]
            best_result = trainer.evaluate(valid_data, load_best_model=False)
            best_score = best_result[config["valid_metric"].lower()] if best_result else None
        else:
            trainer, generator, best_score, best_result = train_generator(
                config, dataset, train_data, valid_data, saved=saved, verbose=verbose
            )
        stage_cpu_s["generator"] = process_time() - cpu_started
        _log(verbose, f"stage generator done in {time() - stage_started:.1f}s")

    pretrained = config["pretrained_path"]
    if "pretrain" in stages:
        stage_started, cpu_started = time(), process_time()
        if generator is None and plan.generator_needed:
            generator = _load_generator(config, dataset, verbose)  # generator_path: check_stage_inputs
        trainer = pretrain(config, dataset, train_data, generator, saved=saved, verbose=verbose)
        pretrained = stage_checkpoint(trainer, saved)
        best_result = trainer.evaluate(valid_data, load_best_model=False)  # before fine-tuning, for the log
        best_score = best_result[config["valid_metric"].lower()] if best_result else None
        stage_cpu_s["pretrain"] = process_time() - cpu_started
        _log(verbose, f"stage pretrain done in {time() - stage_started:.1f}s; valid before fine-tuning: {best_result}")

    if "finetune" in stages:
        stage_started, cpu_started = time(), process_time()
        if generator is None and plan.history_prior_needed:
            generator = _load_generator(config, dataset, verbose)  # generator_path: check_stage_inputs
        history_prior = generator.sasrec if plan.history_prior_needed else None
        trainer, best_score, best_result = finetune(
            config, dataset, train_data, valid_data, pretrained=pretrained, history_prior=history_prior, saved=saved,
            verbose=verbose,
        )
        stage_cpu_s["finetune"] = process_time() - cpu_started
        _log(verbose, f"stage finetune done in {time() - stage_started:.1f}s")

    _log(verbose, f"CRSPretrain pipeline ({', '.join(stages)}) done in {time() - started:.1f}s")
    trainer.stage_cpu_s = stage_cpu_s  # read by recbole_crs.benchmark.execution.run_one; changes no result
    return trainer, best_score, best_result
