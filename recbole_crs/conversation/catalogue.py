"""Which item has which attribute: the one table the environment, the user simulator and the policies read.

:class:`ItemAttributes` holds it twice, each form for what it is fast at:

* ``attribute_items``: a dense ``[n_attributes, n_items]`` bool tensor (the dataset's ``attribute_item_mask``),
  to intersect a batch of candidate masks with one attribute each (a row gather) and to answer "does item i
  have attribute a" for a batch of pairs;
* ``item_matrix``: a scipy CSR ``[n_items, n_attributes]`` matrix, to count (or weigh) the attributes of every
  episode's candidates at once: ``candidates [E, n_items] @ item_matrix``. LastFM* has 94k non-zeros, so this
  costs about ``E x |candidates| x 12.7`` operations where a dense product would cost ``E x 7,432 x 8,438``.

Id 0 is RecBole's padding in both id spaces: item 0 has no attribute and attribute 0 belongs to no item.
"""

import numpy as np
import scipy.sparse as sp
import torch


class ItemAttributes:
    """The item-attribute incidence of a dataset.

    Args:
        attribute_items: [n_attributes, n_items] bool tensor; row 0 and column 0 (padding) are ignored.
    """

    def __init__(self, attribute_items):
        mask = torch.as_tensor(attribute_items, dtype=torch.bool).clone()
        mask[0, :] = False
        mask[:, 0] = False
        self.attribute_items = mask  # [A, N]
        self.n_attributes, self.n_items = mask.shape
        attributes, items = mask.nonzero(as_tuple=True)
        ones = np.ones(len(items), dtype=np.float64)
        self.item_matrix = sp.csr_matrix(
            (ones, (items.numpy(), attributes.numpy())), shape=(self.n_items, self.n_attributes)
        )  # [N, A]
        self.item_matrix.sort_indices()
        self.counts = self.item_matrix.getnnz(axis=1)  # attributes per item

    @classmethod
    def from_dataset(cls, dataset):
        """The table of a :class:`~recbole_crs.data.dataset.CRSDataset` (its ``attribute_item_mask``)."""
        return cls(dataset.attribute_item_mask)

    @classmethod
    def from_lists(cls, item_attributes, n_attributes):
        """From ``{item id: [attribute ids]}`` (ids >= 1), e.g. a hand-built table in a test."""
        n_items = max(item_attributes) + 1
        mask = torch.zeros(n_attributes, n_items, dtype=torch.bool)
        for item, attributes in item_attributes.items():
            mask[list(attributes), item] = True
        return cls(mask)

    def attributes_of(self, item):
        """The attribute ids of one item, ascending (numpy int64)."""
        row = self.item_matrix.indices[self.item_matrix.indptr[item]: self.item_matrix.indptr[item + 1]]
        return np.sort(row).astype(np.int64)

    def has(self, items, attributes):
        """[E] bool: whether ``items[e]`` has ``attributes[e]`` ([E] long each)."""
        return self.attribute_items[attributes, items]

    def items_with(self, attributes):
        """[E, n_items] bool: the items that have ``attributes[e]``."""
        return self.attribute_items[attributes]

    def weighted_counts(self, weights):
        """``weights @ item_matrix`` as CSR ``[E, n_attributes]``: per episode and attribute, the summed weight of
        the items that have it. ``weights``: [E, n_items] float or bool tensor (bool: a count of candidates)."""
        weights = weights.detach().cpu()
        rows, items = weights.nonzero(as_tuple=True)
        values = weights[rows, items].to(torch.float64).numpy()
        left = sp.csr_matrix((values, (rows.numpy(), items.numpy())), shape=(weights.shape[0], self.n_items))
        result = (left @ self.item_matrix).tocsr()
        result.sort_indices()
        return result

    def pairs_of(self, items):
        """The (position, attribute) pairs of a flat item list: for ``items`` [M] long, returns ``positions`` [P]
        and ``attributes`` [P] (numpy int64), ordered by position, then attribute."""
        items = np.asarray(items, dtype=np.int64)
        starts, ends = self.item_matrix.indptr[items], self.item_matrix.indptr[items + 1]
        lengths = ends - starts
        positions = np.repeat(np.arange(len(items)), lengths)
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        attributes = self.item_matrix.indices[np.repeat(starts, lengths) + offsets].astype(np.int64)
        return positions, attributes
