"""Random attribute sets of items, drawn on the fly from the item attribute table.

MIP reads a random subset of a masked item's attributes (:class:`~recbole_crs.model.crspretrain.CRSPretrain`),
and fine-tuning gives training rows without a conversation a random subset of their target's attributes
(``history_attributes``, :class:`~recbole_crs.model.crsfinetune.CRSFinetune`): both draw it here, the same way.
"""

import numpy as np
import torch


def item_attribute_table(dataset):
    """Each item's distinct attributes, ascending and left-aligned: ([n_items, W] LongTensor, [n_items] counts)."""
    if dataset.item_attributes is None:
        raise ValueError(
            "The dataset has no item attribute table yet: build it first (recbole's data_preparation / "
            "dataset.build()), then create the model, as quick_start does."
        )
    rows = dataset.item_attributes.numpy()  # [n_items, max_attrs], 0 = padding
    unique = [np.unique(row[row > 0]) for row in rows]
    width = max(1, max(len(u) for u in unique))
    table = np.zeros((len(rows), width), dtype=np.int64)
    for i, attributes in enumerate(unique):
        table[i, : len(attributes)] = attributes
    counts = np.array([len(u) for u in unique], dtype=np.int64)
    return torch.from_numpy(table), torch.from_numpy(counts)


def sample_attribute_subset(table, counts, items, max_length, max_size=None, size_distribution=None):
    """A random non-empty subset of each item's attributes, shuffled, left-aligned.

    Args:
        table, counts: :func:`item_attribute_table`; items: [M] item ids; max_length: columns kept (the
            attribute Transformer's ``max_attribute_length``); max_size: largest subset (default: no cap but
            ``max_length``), e.g. 1 for a single attribute; size_distribution: [K + 1] probabilities of
            the sizes 0..K (0 never drawn) to draw the size from instead, capped at the item's attribute count.
    Returns:
        [M, A] attribute ids (0 = padding), A = min(max_length, widest item). The subset size is uniform in
        1 .. min(#attributes, A, max_size) (or drawn from ``size_distribution``); items without attributes get an
        empty row. Either way the subset is a uniformly random one of its size: the first attribute is uniform
        over the item's attributes, as a conversation's opening attribute is.
    """
    attributes = table[items]  # [M, W]
    keys = torch.rand(attributes.shape, device=items.device).masked_fill(attributes == 0, 2.0)
    shuffled = attributes.gather(1, keys.argsort(dim=1))[:, :max_length]  # real first
    largest = counts[items].clamp(max=shuffled.size(1) if max_size is None else min(shuffled.size(1), max_size))
    if size_distribution is None:
        size = (torch.rand(len(items), device=items.device) * largest).long() + 1
    else:
        size = torch.multinomial(size_distribution, len(items), replacement=True)
    size = torch.minimum(size, largest)  # 0 for items without attributes
    keep = torch.arange(shuffled.size(1), device=items.device).unsqueeze(0) < size.unsqueeze(1)
    return shuffled.masked_fill(~keep, 0)
