"""The policy interface: given the state of a batch of episodes, ask an attribute or recommend.

A policy sees a :class:`~recbole_crs.conversation.environment.ConversationView` (never the target) and, when
``reads_scores`` is true, the ranker's ``[B, n_items]`` scores of those states; it returns a :class:`Decision`
per episode. It never builds a recommendation list itself: the environment recommends the ranker's top-k
candidates (:func:`~recbole_crs.conversation.rules.recommendation_lists`), so a policy decides *when* to
recommend, not *what*. Nor may it drop candidates: it only chooses an action.

An attribute a policy may ask is *askable*: not asked before in the episode (the opening one counts as asked)
and held by at least one candidate (UNICORN's "reachable" attributes). An RL policy is one more subclass.

Shared helpers: :func:`row_argmax` (best attribute per episode of a CSR statistic) and
:func:`askable_entries` (drop the entries of attributes already asked).
"""

import numpy as np
import torch


class Decision:
    """``recommend`` [B] bool and ``attributes`` [B] long (the attribute to ask; 0 where recommending)."""

    def __init__(self, recommend, attributes=None):
        self.recommend = torch.as_tensor(recommend, dtype=torch.bool)
        if attributes is None:
            attributes = torch.zeros(len(self.recommend), dtype=torch.long)
        self.attributes = torch.as_tensor(attributes, dtype=torch.long)
        if (~self.recommend & (self.attributes <= 0)).any():
            raise ValueError("a policy chose to ask but gave no attribute")


class Policy:
    """Base class. ``name`` is the ``--policy`` value; ``parameters()`` what the result file records."""

    name = None
    reads_scores = False  # the loop scores every state before decide() only for policies that read scores

    def __init__(self, catalogue, topk=10):
        self.catalogue = catalogue
        self.topk = topk

    def parameters(self):
        return {}

    def decide(self, view, scores=None):
        raise NotImplementedError


def askable_entries(statistic, asked):
    """The CSR ``statistic`` [B, A] (from ``catalogue.weighted_counts``) as entry arrays ``(rows, attributes,
    values)``, without attributes already asked (``asked`` [B, A] bool). Every entry is an attribute held by a
    candidate, so what remains is exactly the askable attributes."""
    rows = np.repeat(np.arange(statistic.shape[0]), np.diff(statistic.indptr))
    attributes = statistic.indices.astype(np.int64)
    keep = ~asked.numpy()[rows, attributes]
    return rows[keep], attributes[keep], statistic.data[keep]


def row_argmax(rows, attributes, values, n_rows):
    """Per row, the largest value and its attribute (the lowest attribute id among ties; entries of a row must
    be sorted by attribute). Rows without entries get value ``-inf`` and attribute 0. Returns two tensors [B]."""
    best_value = np.full(n_rows, -np.inf)
    best_attribute = np.zeros(n_rows, dtype=np.int64)
    if len(rows):
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        maxima = np.maximum.reduceat(values, starts)
        row_max = np.repeat(maxima, np.diff(np.r_[starts, len(rows)]))
        first = np.minimum.reduceat(np.where(values == row_max, np.arange(len(rows)), len(rows)), starts)
        best_value[rows[starts]] = maxima
        best_attribute[rows[starts]] = attributes[first]
    return torch.from_numpy(best_value), torch.from_numpy(best_attribute)
