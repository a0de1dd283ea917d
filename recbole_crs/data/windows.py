"""History windows without the ``O(rows x MAX_ITEM_LIST_LENGTH)`` copy (config ``history_windows``).

RecBole's sequential augmentation stores, for every target row, its history as ``item_id_list``
``[rows, MAX_ITEM_LIST_LENGTH]`` plus one such tensor for every other list-augmented ``.inter`` field
(``timestamp_list``, ...). Every history is a window over the same per-user sequence, so the data is held
``MAX_ITEM_LIST_LENGTH`` times; at 10M rows and length 50 that is 4 GB per field (RecBole issue #1865 reports
~150 GB of RAM for ~10M rows).

``history_windows: lazy`` keeps instead

* one copy of every list-augmented field over all interactions, sorted by user then time (flat tensors, so a
  user's rows are one contiguous run): :class:`HistoryWindows`;
* per target row, where its window starts in those tensors (:data:`HISTORY_START_FIELD`, a hidden column) and
  its length (``item_length``, the usual column).

How every consumer keeps working (the design choice): ``dataset.inter_feat`` becomes a
:class:`WindowedInteraction`, an ``Interaction`` whose real columns are the per-row ones. Everything that
selects, reorders or repeats *rows* (RecBole's leave-one-out / ratio / time splits, the ``split`` column,
``dataset.copy``, ``sort``/``shuffle``, the per-turn states of :mod:`recbole_crs.data.turns`, fine-tuning
samples, the pre-training rows of :mod:`recbole_crs.pipeline`) goes through ``Interaction`` methods that act on
those columns, so the window pointers travel with their rows and the result stays lazy: no split, copy or
state list ever holds a ``[rows, L]`` tensor. The list fields appear only when rows become a *batch*:
RecBole's dataloaders take every batch with ``dataset[index]`` (``TrainDataLoader``, ``FullSortEvalDataLoader``
and ``NegSampleEvalDataLoader`` ``collate_fn``), and ``CRSDataset.__getitem__`` returns
:meth:`WindowedInteraction.materialize` of those rows: a plain ``Interaction`` with ``item_id_list``,
``<field>_list`` and ``item_length``, built by the same gather as the materialised augmentation, with the same
columns in the same order (the pointer column is replaced by the list fields). Models, transforms and negative
sampling therefore see exactly the batches of ``history_windows: materialized``.

Whole-column reads still work: ``inter_feat['item_id_list']`` materialises the column for every row (correct,
but ``O(rows x L)`` memory, so consumers should select rows first, as :mod:`recbole_crs.model.pop` does), and
``'item_id_list' in inter_feat`` is true. ``to``/``cpu``/``numpy`` materialise first. Only code that reads
the ``Interaction``'s private ``.interaction`` dict sees the per-row columns alone (and the pointer); such code
should take rows with ``dataset[index]`` or :func:`materialize` them.

Why not materialise in ``Interaction.__getitem__``: the same call selects a batch of 2,048 rows and a
training split of millions, so it cannot tell when to build lists; ``Dataset.__getitem__`` is the one place
RecBole reserves for batches.
"""

import numpy as np
import torch
from recbole.data.interaction import Interaction

HISTORY_WINDOWS = ("lazy", "materialized")  # the first is the default: overall.yaml's (a test checks)
# Hidden per-row column: position of the row's first history interaction in the flat per-user sequences.
HISTORY_START_FIELD = "crs_history_start"


def history_windows_mode(config):
    """``config['history_windows']`` with its default filled in; unknown values are refused."""
    mode = config["history_windows"] or HISTORY_WINDOWS[0]
    if mode not in HISTORY_WINDOWS:
        raise ValueError(f"history_windows must be one of {list(HISTORY_WINDOWS)}, got {mode!r}.")
    return mode


class HistoryWindows:
    """Flat per-field sequences (all interactions, sorted by user then time) and how to cut windows from them.

    Args:
        values: ``{list field: [N, ...] tensor}``, e.g. ``{'item_id_list': item_id column}``, in the order
            the list fields are added to a batch.
        max_len: ``MAX_ITEM_LIST_LENGTH``.
        length_field: the ``item_length`` field.
    """

    def __init__(self, values, max_len, length_field):
        self.values = dict(values)
        self.max_len = max_len
        self.length_field = length_field

    def gather(self, field, start, length):
        """``[B, max_len, ...]``: the windows ``values[field][start : start + length]``, right-padded with 0.

        Same arithmetic as ``CRSDataset``'s materialised augmentation (pad positions read row 0 and are
        multiplied by 0), so both give identical tensors. Done in numpy: a batch is ~10^5 elements, where
        torch's intra-op threads cost more than the work on a busy machine (about 50 ms instead of 0.5 ms per
        batch measured on 2 shared cores).
        """
        values = self.values[field].numpy()
        start, length = start.numpy(), length.numpy()
        offsets = np.arange(self.max_len)
        in_history = offsets[None, :] < length[:, None]  # [B, L]
        rows = np.where(in_history, start[:, None] + offsets, 0)
        window = values[rows]  # [B, L, ...]
        pad = in_history.reshape(in_history.shape + (1,) * (window.ndim - 2))
        return torch.from_numpy(window * pad.astype(window.dtype))

    def nbytes(self):
        return sum(t.nelement() * t.element_size() for t in self.values.values())


class WindowedInteraction(Interaction):
    """An ``Interaction`` whose list fields (``item_id_list``, ...) are windows built on demand, and whose
    dictionary-encoded columns (:data:`encoded`) are decoded on demand.

    ``encoded`` maps a field to a ``[n_distinct, width]`` table: the real column holds, per row, the index of
    its row in the table (the compact loader, :mod:`recbole_crs.data.compact`, keeps conversation columns
    this way: ml-100k-crs's ``rejected_items`` is ``[rows, 10]`` int64 padded, but 4 distinct lists).
    Row selection (``inter[index]``), ``repeat``, ``repeat_interleave`` keep it lazy; ``inter[list_field]``,
    ``inter[encoded_field]`` and :meth:`materialize` build the full tensors. ``windows`` may be None (encoded
    columns only, before the augmentation).
    """

    def __init__(self, interaction, windows=None, encoded=None):
        super().__init__(interaction)
        self.windows = windows
        self.encoded = {k: v for k, v in (encoded or {}).items() if k in self.interaction}

    def _wrap(self, interaction):
        return WindowedInteraction(interaction.interaction, self.windows, self.encoded)

    # ------------------------------------------------------------------ lazily built columns
    def _window_fields(self):
        return self.windows.values if self.windows is not None else {}

    def _window(self, field):
        return self.windows.gather(
            field, self.interaction[HISTORY_START_FIELD], self.interaction[self.windows.length_field]
        )

    def _decode(self, field):
        return decode(self.encoded[field], self.interaction[field])

    def materialize(self):
        """A plain ``Interaction`` of these rows with every list field and every encoded column decoded; the
        pointer column is replaced by the list fields."""
        columns = {}
        for key, value in self.interaction.items():
            if key == HISTORY_START_FIELD and self.windows is not None:
                for field in self.windows.values:
                    columns[field] = self._window(field)
            elif key in self.encoded:
                columns[key] = self._decode(key)
            else:
                columns[key] = value
        return Interaction(columns)

    def __getitem__(self, index):
        if isinstance(index, str):
            if index in self.encoded:
                return self._decode(index)
            if index in self._window_fields() and index not in self.interaction:
                return self._window(index)
            return self.interaction[index]
        if isinstance(index, np.ndarray):
            index = torch.from_numpy(index)
        if isinstance(index, torch.Tensor):
            # Interaction.__getitem__ turns the index into a Python list first (~36 bytes and a conversion per
            # row: seconds and hundreds of MB at 10M rows); tensor indexing selects the same rows.
            return WindowedInteraction({k: v[index] for k, v in self.interaction.items()}, self.windows,
                                       self.encoded)
        return self._wrap(super().__getitem__(index))

    def __contains__(self, item):
        return item in self.interaction or item in self._window_fields()

    def __getattr__(self, item):
        if "encoded" in self.__dict__ and item in self.encoded:
            return self._decode(item)
        if item != "windows" and self.__dict__.get("windows") is not None and item in self.windows.values:
            return self._window(item)
        return super().__getattr__(item)

    def update(self, new_inter):
        """Columns of ``new_inter`` replace these; a replaced encoded column is no longer encoded."""
        for key in new_inter.interaction:
            self.encoded.pop(key, None)
        self.encoded.update(getattr(new_inter, "encoded", None) or {})
        super().update(new_inter)

    def drop(self, column):
        super().drop(column)
        self.encoded.pop(column, None)

    @property
    def columns(self):
        return self.materialize_columns()

    def materialize_columns(self):
        """Column names of :meth:`materialize`, in order."""
        names = []
        for key in self.interaction:
            names.extend(self.windows.values if key == HISTORY_START_FIELD and self.windows is not None else [key])
        return names

    # ------------------------------------------------------------------ row operations stay lazy
    def repeat(self, sizes):
        return self._wrap(super().repeat(sizes))

    def repeat_interleave(self, repeats, dim=0):
        return self._wrap(super().repeat_interleave(repeats, dim=dim))

    # ------------------------------------------------------------------ leaving the dataset: full columns
    def to(self, device, selected_field=None):
        return self.materialize().to(device, selected_field)

    def cpu(self):
        return self.materialize().cpu()

    def numpy(self):
        return self.materialize().numpy()

    def nbytes(self):
        """Bytes held: per-row columns, the shared history sequences and the encoded tables."""
        total = sum(t.nelement() * t.element_size() for t in self.interaction.values())
        total += self.windows.nbytes() if self.windows is not None else 0
        return total + sum(t.nelement() * t.element_size() for t in self.encoded.values())

    def __str__(self):
        text = super().__str__().rstrip() + "\n"
        if self.windows is not None:
            text += f"    lazy history windows: {', '.join(self.windows.values)}\n"
        if self.encoded:
            text += f"    encoded columns: {', '.join(self.encoded)}\n"
        return text


def decode(table, codes):
    """``table[codes]``: the rows of a dictionary-encoded column (numpy gather: no torch intra-op threads)."""
    return torch.from_numpy(table.numpy()[codes.numpy()])


def windowed(per_row, values, seq_start, max_len, length_field):
    """The lazy ``inter_feat`` of the augmentation: per-row columns plus window pointers.

    Args:
        per_row: ``Interaction`` of the target rows (every original column, ``item_length`` included).
        values: ``{list field: [N, ...] tensor}`` over all interactions in (user, time) order.
        seq_start: ``[M]`` index of each target row's first history interaction in ``values``.
    """
    columns = dict(per_row.interaction)
    columns[HISTORY_START_FIELD] = torch.from_numpy(np.asarray(seq_start, dtype=np.int64))
    windows = HistoryWindows(values, max_len, length_field)
    return WindowedInteraction(columns, windows, getattr(per_row, "encoded", None))


def materialize(interaction):
    """``interaction`` with its list fields built and its encoded columns decoded (plain ``Interaction``s are returned as they are)."""
    return interaction.materialize() if isinstance(interaction, WindowedInteraction) else interaction


__all__ = [
    "HISTORY_START_FIELD",
    "HISTORY_WINDOWS",
    "HistoryWindows",
    "WindowedInteraction",
    "decode",
    "history_windows_mode",
    "materialize",
    "windowed",
]
