"""What CRSFinetune trains on: which training rows (``finetune_rows``) and how many samples each (``finetune_samples``).

The paper's regime is few conversations and much history. The generator and pre-training read every training
row (their sequences are the interaction history); fine-tuning learns conversational recommendation from every
training row by default (with one conversation per user, the conversations alone are too few: chosen on
validation, docs/method.md) and, as the authors do, makes one sample per dialogue turn:

* ``finetune_rows: all`` (default, ``properties/model/CRSFinetune.yaml``) keeps every training row: the history
  rows, whose conversation is empty, give one sample each with no attributes; ``conversations`` keeps only the
  training rows with a non-empty conversation (the authors' fine-tuning data);
* ``finetune_samples: per_turn`` (default) turns each kept row into its states at turns t = 1..T, the same
  states evaluation scores (:meth:`CRSDataset.conversation_states_of`, i.e.
  :func:`recbole_crs.data.turns.conversation_states`): attributes confirmed and items rejected at turns <= t. Rows of a dataset without turn columns stay one sample. ``conversation`` keeps one sample per
  row with the whole conversation.

:func:`finetune_dataloader` is called by :class:`~recbole_crs.trainer.stages.CRSFinetuneTrainer` at the start
of ``fit``, which covers both the pipeline's fine-tuning stage and ``--model CRSFinetune``; the pipeline calls
:func:`check_finetune_rows` before its first stage so that a dataset fine-tuning cannot use fails before the
generator and pre-training spend their time.
"""

from typing import NamedTuple

import torch
from recbole.data.dataloader import TrainDataLoader

from recbole_crs.data.windows import WindowedInteraction, decode
from recbole_crs.errors import CRSDataError
from recbole_crs.run_plan import run_plan


class FinetuneCounts(NamedTuple):
    """Training rows, those with a conversation, and the fine-tuning samples made from the kept rows."""

    rows: int
    conversational: int
    samples: int


def _confirms_any(confirmed):
    """[K] bool: which rows of a ``[K, C]`` confirmed-attribute tensor hold at least one attribute."""
    return (confirmed != 0).any(dim=1)


def conversational_rows(dataset):
    """[N] bool: the rows of ``dataset`` whose conversation confirms at least one attribute.

    When the column is dictionary-encoded (the compact loader, :mod:`recbole_crs.data.compact`) each distinct
    list is decided once and the answer mapped to the rows by their codes: ``inter_feat[field]`` would decode
    a ``[N, C]`` int64 tensor (hundreds of MB at 10M rows) for an answer that depends on ~172 lists.
    """
    inter, field = dataset.inter_feat, dataset.confirmed_field
    if isinstance(inter, WindowedInteraction) and field in inter.encoded:
        return decode(_confirms_any(inter.encoded[field]), inter.interaction[field])
    return _confirms_any(inter[field])


def check_finetune_rows(config, dataset):
    """Raise :class:`CRSDataError` if ``finetune_rows: conversations`` would leave no training row.

    Returns ``(finetune_rows, finetune_samples, [N] bool conversational rows)``.
    """
    plan = run_plan(config)
    rows, samples = plan.finetune_rows, plan.finetune_samples
    conversational = conversational_rows(dataset)
    if rows == "conversations" and not conversational.any():
        raise CRSDataError(
            f"Dataset '{dataset.dataset_name}' has no training row with a conversation (every "
            f"'{dataset.confirmed_field}' is empty), so fine-tuning with finetune_rows: conversations has nothing "
            "to learn from: convert the data with conversations on (some) training rows, or set "
            "finetune_rows: all to fine-tune on the plain interactions."
        )
    return rows, samples, conversational


def confirmed_size_distribution(dataset, max_rows=100_000):
    """[K + 1] float: the share of training conversation states (turns) that hold k confirmed attributes, k = 0..K
    (index 0 is 0), over the training rows of ``dataset`` with a conversation (at most ``max_rows`` of them, the
    first ones); None when no row has one. The states are the per-turn samples fine-tuning and evaluation use
    (:meth:`CRSDataset.conversation_states_of`), so the shares are what fine-tuning sees of real conversations.
    """
    rows = conversational_rows(dataset).nonzero(as_tuple=True)[0][:max_rows]
    if len(rows) == 0:
        return None
    states = dataset.conversation_states_of(dataset.inter_feat[rows])
    sizes = (states[dataset.confirmed_field] != 0).sum(dim=1)
    counts = torch.bincount(sizes).to(torch.float64)
    counts[0] = 0.0
    return (counts / counts.sum()).to(torch.float32)


def finetune_samples(config, dataset):
    """``(samples, counts)``: the fine-tuning samples of the training ``dataset``.

    ``samples`` is an ``Interaction``, or None when it would equal ``dataset.inter_feat`` row for row (every
    row kept, and one sample per row: ``conversation`` samples or no turn columns).
    """
    rows, samples_mode, conversational = check_finetune_rows(config, dataset)
    inter = dataset.inter_feat
    keep_all = rows == "all" or bool(conversational.all())
    per_turn = samples_mode == "per_turn" and dataset.has_turn_columns
    if keep_all and not per_turn:
        return None, FinetuneCounts(len(inter), int(conversational.sum()), len(inter))
    kept = inter if keep_all else inter[conversational]
    samples = dataset.conversation_states_of(kept) if per_turn else kept
    return samples, FinetuneCounts(len(inter), int(conversational.sum()), len(samples))


def finetune_dataloader(config, train_data):
    """``(dataloader, counts)``: ``train_data`` itself when nothing changes, else a loader over the samples.

    The new loader keeps ``train_data``'s sampler, shuffling and batch size (``train_batch_size`` samples).
    """
    dataset = train_data._dataset
    samples, counts = finetune_samples(config, dataset)
    if samples is None:
        return train_data, counts
    loader = TrainDataLoader(config, dataset.copy(samples), train_data._sampler, shuffle=train_data.shuffle)
    return loader, counts


def describe_counts(config, counts):
    """The log line: training rows, conversational rows, fine-tuning samples."""
    plan = run_plan(config)
    rows, samples = plan.finetune_rows, plan.finetune_samples
    kept = counts.rows if rows == "all" else counts.conversational
    per = "per-turn samples" if samples == "per_turn" else "samples (one per row)"
    return (
        f"fine-tuning data: {counts.rows} training rows, {counts.conversational} with a conversation; "
        f"finetune_rows: {rows} keeps {kept}; finetune_samples: {samples} gives {counts.samples} {per}"
    )


__all__ = [
    "FinetuneCounts",
    "check_finetune_rows",
    "confirmed_size_distribution",
    "conversational_rows",
    "describe_counts",
    "finetune_dataloader",
    "finetune_samples",
]
