"""The two rule-based policies of the EAR / SCPR / UNICORN tables.

* :class:`AbsGreedy` ("Abs Greedy"): recommend at every action.
* :class:`MaxEntropy` ("Max Entropy", EAR's ``play_by == 'AO'``): recommend with probability
  ``k / |candidates|`` (so always once ``k`` or fewer are left), otherwise ask the askable attribute of maximum
  entropy over the candidates, ``H(p) = -p log2 p - (1-p) log2 (1-p)`` with ``p`` = the share of candidates
  that have it. The coin is the episode's own seeded uniform number for this action; among attributes of equal
  entropy the lowest id is asked (EAR takes the first in its dict's order).

One corner case EAR leaves open: when no askable attribute splits the candidates (every entropy is 0, e.g.
candidates with identical attribute sets), asking cannot change anything, so :class:`MaxEntropy` recommends.
"""

import numpy as np
import torch

from recbole_crs.conversation.policy import Decision, Policy, askable_entries, row_argmax


class AbsGreedy(Policy):
    """Recommend the ranker's top-k at every action."""

    name = "AbsGreedy"

    def decide(self, view, scores=None):
        return Decision(torch.ones(len(view), dtype=torch.bool))


def binary_entropy(p):
    """Elementwise entropy in bits; 0 at p = 0 and p = 1."""
    p = np.clip(p, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = -p * np.log2(p) - (1 - p) * np.log2(1 - p)
    return np.nan_to_num(value, nan=0.0)


class MaxEntropy(Policy):
    """EAR's Max Entropy baseline (see the module docstring)."""

    name = "MaxEntropy"

    def decide(self, view, scores=None):
        counts = self.catalogue.weighted_counts(view.candidates)  # [B, A] candidates holding each attribute
        n_candidates = view.candidates.sum(dim=1).double()  # [B]
        rows, attributes, values = askable_entries(counts, view.asked)
        entropy = binary_entropy(values / n_candidates.numpy()[rows])
        best_entropy, best_attribute = row_argmax(rows, attributes, entropy, len(view))
        coin = view.uniforms < self.topk / n_candidates.clamp(min=1)
        recommend = coin | (best_entropy <= 0)
        return Decision(recommend, torch.where(recommend, torch.zeros_like(best_attribute), best_attribute))
