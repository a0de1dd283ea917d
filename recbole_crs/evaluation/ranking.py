"""Top-k metrics of one target per evaluated row, from its rank among the row's candidates.

Every evaluated row (a conversation state) has one target item and a candidate set (target included). With
``greater`` = candidates scored strictly higher than the target and ``equal`` = other candidates scored the
same, the target's rank ``r`` (0-based) is decided by the tie rule (config ``crs_ties``):

* ``expected`` (default): ties split evenly, ``r`` uniform on ``greater .. greater + equal``; the row's
  value is the mean of the metric over those ranks. A model that scores every candidate the same gets
  exactly the chance level;
* ``optimistic``: ``r = greater`` (every tie goes to the target: the rule of the paper authors' code, which
  gives a constant scorer a perfect score);
* ``pessimistic``: ``r = greater + equal``.

With one target, every top-k metric is a function ``m(r)``: Hit@k = Recall@k = [r < k],
Precision@k = [r < k] / k, MRR@k = MAP@k = 1/(r+1) if r < k, NDCG@k = 1/log2(r+2) if r < k. The *chance level*
of a row with ``n`` candidates is the metric of a uniformly random ranking, ``(1/n) sum_{r<n} m(r)``,
computed exactly. Both the tie split and the chance level are differences of the cumulative sums
``C[j] = sum_{r<j} m(r)``, so each costs one lookup per row.
"""

import math
from collections import OrderedDict

import torch

TIE_RULES = ("expected", "optimistic", "pessimistic")


def _hit(ranks, k):
    return (ranks < k).double()


def _precision(ranks, k):
    return (ranks < k).double() / k


def _mrr(ranks, k):
    return torch.where(ranks < k, 1.0 / (ranks + 1.0), torch.zeros_like(ranks))


def _ndcg(ranks, k):
    return torch.where(ranks < k, 1.0 / torch.log2(ranks + 2.0), torch.zeros_like(ranks))


# RecBole metric name (lower case) -> m(ranks, k) for one target per row.
RANK_METRICS = {"hit": _hit, "recall": _hit, "precision": _precision, "mrr": _mrr, "map": _mrr, "ndcg": _ndcg}


def check_tie_rule(rule):
    if rule not in TIE_RULES:
        raise ValueError(f"crs_ties '{rule}' is not a tie rule; use one of {', '.join(TIE_RULES)}.")
    return rule


def metric_keys(metrics, topk):
    """``[(key, name, k)]`` in RecBole's result order, e.g. ``("ndcg@10", "ndcg", 10)``."""
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    topk = [topk] if isinstance(topk, int) else list(topk)
    unknown = [name for name in names if name.lower() not in RANK_METRICS]
    if unknown:
        raise ValueError(
            f"metrics {unknown} cannot be computed from one target's rank; conversation-aware evaluation "
            f"supports {', '.join(sorted({'Hit', 'Recall', 'Precision', 'MRR', 'MAP', 'NDCG'}))}. Remove "
            "the others from `metrics`."
        )
    return [(f"{name.lower()}@{k}", name.lower(), int(k)) for name in names for k in topk]


def tie_counts(scores, targets, allowed):
    """Per row: candidates scored above the target, other candidates tied with it, and candidates in all.

    Args:
        scores: [B, n_items] float; NaN counts as the lowest score (a broken model gains nothing from it).
        targets: [B] item ids; the target is always a candidate.
        allowed: [B, n_items] bool candidate mask.

    Returns:
        greater, equal, n: three [B] long tensors.
    """
    scores = torch.nan_to_num(scores.double(), nan=-math.inf)
    allowed = allowed.clone()
    allowed.scatter_(1, targets.unsqueeze(1), True)
    target_scores = scores.gather(1, targets.unsqueeze(1))  # [B, 1]
    greater = ((scores > target_scores) & allowed).sum(dim=1)
    equal = ((scores == target_scores) & allowed).sum(dim=1) - 1
    return greater, equal, allowed.sum(dim=1)


class RankMetrics:
    """Metric values per row from ``(greater, equal, n)``, under a tie rule, and the rows' chance levels."""

    def __init__(self, metrics, topk, tie_rule="expected"):
        self.keys = metric_keys(metrics, topk)
        self.tie_rule = check_tie_rule(tie_rule)

    @staticmethod
    def _cumulative(name, k, max_n):
        """``C[j] = sum_{r<j} m(r)`` for j = 0..max_n, [max_n + 1] double."""
        values = RANK_METRICS[name](torch.arange(max_n, dtype=torch.double), k)
        return torch.cat([torch.zeros(1, dtype=torch.double), values.cumsum(0)])

    def values(self, greater, equal, n):
        """``({key: [B] metric values}, {key: [B] chance levels})`` for rows given by :func:`tie_counts`."""
        greater, equal, n = greater.cpu().long(), equal.cpu().long(), n.cpu().long()
        max_n = int(n.max()) if len(n) else 1
        values, chance = OrderedDict(), OrderedDict()
        for key, name, k in self.keys:
            cumulative = self._cumulative(name, k, max_n)
            if self.tie_rule == "expected":
                low, high = greater, greater + equal + 1
            elif self.tie_rule == "optimistic":
                low, high = greater, greater + 1
            else:
                low, high = greater + equal, greater + equal + 1
            values[key] = (cumulative[high] - cumulative[low]) / (high - low).double()
            chance[key] = cumulative[n] / n.double()
        return values, chance
