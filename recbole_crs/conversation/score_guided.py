"""Our policy: decide from the ranker's own scores whether to ask, and what.

The ranker's scores over the candidates, as a softmax with temperature ``T``, are its belief ``p`` about which
candidate is the target. Ranks follow the recommendation order (the very lists the environment would
recommend). With ``H`` actions left and ``k`` items per list, compare two plans for the rest of the episode:

* **recommend H times**: succeeds with the mass of the first ``k H`` ranks;
* **ask attribute a, then recommend H - 1 times**: on "yes" the candidates shrink to the items with ``a`` and
  the lists take the first ``n = k (H - 1)`` of them; on "no" nothing is pruned (rejections never remove
  items) and the lists are the current first ``n``. Together this succeeds with the mass of the first ``n``
  ranks plus ``gain(a)``: the mass of the items with ``a`` that are among the first ``n`` items with ``a`` but
  ranked beyond ``n`` overall (what a "yes" brings within reach).

So the policy asks ``argmax_a gain(a)`` when ``gain(a) > ask_margin * M`` with ``M`` the mass of ranks
``n+1 .. n+k`` (what the extra list would have reached), and recommends otherwise; it also recommends when the
top-k already hold ``mass_threshold`` of the belief, when ``k`` or fewer candidates remain (a sure success),
at its last action (``H = 1``: no list would follow a question) and when no askable attribute gains anything.
The plans read the current scores; a ranker that reads accepted attributes re-scores after a "yes", which only
helps. Only the ``considered_items`` best candidates enter ``gain`` and ``M`` (the mass below them is small, and
the cost stays ``B x considered_items x attributes per item`` per action). Rejected attributes are not used.

``temperature``, ``mass_threshold`` and ``ask_margin`` are chosen on validation episodes only
(``python -m recbole_crs.conversation ... --split valid --sweep``; ``properties/conversation.yaml`` records the
values and the command). Ties between attributes go to the lowest id.
"""

import numpy as np
import torch

from recbole_crs.conversation.policy import Decision, Policy, row_argmax
from recbole_crs.conversation.rules import ranking_keys

DEFAULTS = {"temperature": 1.0, "mass_threshold": 1.0, "ask_margin": 1.0, "considered_items": 200}


class ScoreGuided(Policy):
    """Ask-or-recommend from the ranker's score mass (see the module docstring)."""

    name = "ScoreGuided"
    reads_scores = True

    def __init__(self, catalogue, topk=10, temperature=1.0, mass_threshold=1.0, ask_margin=1.0,
                 considered_items=200):
        super().__init__(catalogue, topk)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if considered_items < topk:
            raise ValueError(f"considered_items ({considered_items}) must be at least topk ({topk})")
        self.temperature = float(temperature)
        self.mass_threshold = float(mass_threshold)
        self.ask_margin = float(ask_margin)
        self.considered_items = int(considered_items)

    def parameters(self):
        return {"temperature": self.temperature, "mass_threshold": self.mass_threshold,
                "ask_margin": self.ask_margin, "considered_items": self.considered_items}

    def ranked_belief(self, view, scores):
        """The ``considered_items`` best candidates in recommendation order and their belief: ([B, N] item ids,
        [B, N] probabilities, 0 where a row has fewer candidates)."""
        logits = scores.double() / self.temperature
        logits = torch.nan_to_num(logits, nan=-torch.inf).masked_fill(~view.candidates, -torch.inf)
        belief = torch.softmax(logits, dim=1).nan_to_num(0.0)  # a row of -inf only: no candidates, all 0
        key = ranking_keys(scores, view.candidates, view.priority)
        top = key.topk(min(self.considered_items, key.shape[1]), dim=1).indices  # [B, N]
        real = torch.gather(view.candidates, 1, top)
        return torch.where(real, top, torch.zeros_like(top)), torch.gather(belief, 1, top) * real

    def gains(self, view, items, mass, reach):
        """Per episode, the askable attribute of largest ``gain`` and that gain ([B] each; -inf when none).
        ``reach`` [B]: the ``n`` of each episode (items its remaining lists after a question cover)."""
        n_rows, width = items.shape
        n_attributes = self.catalogue.n_attributes
        flat = items.reshape(-1).numpy()
        positions, attributes = self.catalogue.pairs_of(flat)
        rows, ranks = positions // width, positions % width
        keep = (flat[positions] > 0) & ~view.asked.numpy()[rows, attributes]
        rows, ranks, attributes = rows[keep], ranks[keep], attributes[keep]
        if len(rows) == 0:  # nothing askable among the considered items
            return row_argmax(rows, attributes, np.zeros(0), n_rows)
        # group the entries by (episode, attribute); a stable sort keeps each group in rank order
        order = np.argsort(rows * n_attributes + attributes, kind="stable")
        rows, ranks, attributes = rows[order], ranks[order], attributes[order]
        starts = np.flatnonzero(np.r_[True, (rows[1:] != rows[:-1]) | (attributes[1:] != attributes[:-1])])
        rank_in_attribute = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
        reach = reach.numpy()[rows]
        brought_in = (rank_in_attribute < reach) & (ranks >= reach)
        weights = np.where(brought_in, mass.numpy()[rows, ranks], 0.0)
        total = np.add.reduceat(weights, starts)
        return row_argmax(rows[starts], attributes[starts], total, n_rows)

    def decide(self, view, scores=None):
        items, mass = self.ranked_belief(view, scores)
        k = self.topk
        reach = k * (view.actions_left - 1)  # [B] items the lists after a question cover
        ranks = torch.arange(mass.shape[1]).unsqueeze(0)
        extra_list = ((ranks >= reach.unsqueeze(1)) & (ranks < (reach + k).unsqueeze(1))).to(mass.dtype)
        extra_mass = (mass * extra_list).sum(dim=1)
        best_gain, best_attribute = self.gains(view, items, mass, reach)
        recommend = (
            (view.candidates.sum(dim=1) <= k)
            | (view.actions_left <= 1)
            | (mass[:, :k].sum(dim=1) >= self.mass_threshold)
            | ~(best_gain > self.ask_margin * extra_mass)
            | ~(best_gain > 0)
        )
        return Decision(recommend, torch.where(recommend, torch.zeros_like(best_attribute), best_attribute))
