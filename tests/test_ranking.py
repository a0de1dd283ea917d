"""Ranks with ties, the three tie rules, and exact chance levels (recbole_crs.evaluation.ranking)."""

import math

import pytest
import torch

from recbole_crs.evaluation import RankMetrics, tie_counts


def ndcg(rank):
    return 1 / math.log2(rank + 2)


def test_tie_counts_only_count_candidates_and_never_the_target_itself():
    scores = torch.tensor([[9.0, 0.5, 0.9, 0.5, 0.5, 0.1, 0.5]])
    allowed = torch.tensor([[False, True, True, True, True, True, False]])  # item 6 ties but is no candidate
    greater, equal, n = tie_counts(scores, torch.tensor([1]), allowed)
    assert (greater.item(), equal.item(), n.item()) == (1, 2, 5)  # item 0 is higher but not a candidate


def test_target_outside_the_mask_is_still_a_candidate_and_nan_scores_rank_last():
    scores = torch.tensor([[float("nan"), 0.2, 0.3]])
    greater, equal, n = tie_counts(scores, torch.tensor([0]), torch.tensor([[False, True, True]]))
    # A NaN target is the lowest score: below both candidates, tied with nothing.
    assert (greater.item(), equal.item(), n.item()) == (2, 0, 3)


@pytest.mark.parametrize(
    "rule, expected_ndcg, expected_hit2",
    [
        # one candidate above, target tied with two others: rank uniform on {1, 2, 3}
        ("expected", (ndcg(1) + ndcg(2) + ndcg(3)) / 3, 1 / 3),
        ("optimistic", ndcg(1), 1.0),
        ("pessimistic", ndcg(3), 0.0),
    ],
)
def test_each_tie_rule_on_a_hand_worked_tie(rule, expected_ndcg, expected_hit2):
    metrics = RankMetrics(["NDCG", "Hit"], [2, 10], tie_rule=rule)
    values, chance = metrics.values(torch.tensor([1]), torch.tensor([2]), torch.tensor([5]))
    assert values["ndcg@10"].item() == pytest.approx(expected_ndcg)
    assert values["hit@2"].item() == pytest.approx(expected_hit2)
    # The chance level does not depend on the tie rule: a uniform rank over the 5 candidates.
    assert chance["ndcg@10"].item() == pytest.approx(sum(ndcg(r) for r in range(5)) / 5)
    assert chance["hit@2"].item() == pytest.approx(2 / 5)


def test_every_metric_of_one_rank_follows_its_formula():
    metrics = RankMetrics(["Recall", "Hit", "Precision", "MRR", "MAP", "NDCG"], [3])
    values, _ = metrics.values(torch.tensor([0, 2, 3]), torch.zeros(3, dtype=torch.long), torch.tensor([10, 10, 10]))
    assert values["recall@3"].tolist() == values["hit@3"].tolist() == [1.0, 1.0, 0.0]
    assert values["precision@3"].tolist() == pytest.approx([1 / 3, 1 / 3, 0.0])
    assert values["mrr@3"].tolist() == values["map@3"].tolist() == pytest.approx([1.0, 1 / 3, 0.0])
    assert values["ndcg@3"].tolist() == pytest.approx([1.0, 0.5, 0.0])


def test_constant_scorer_gets_exactly_the_chance_level_under_split_ties():
    sizes = torch.tensor([1, 2, 3, 7, 50, 1682])
    scores = torch.zeros(len(sizes), 1683)
    allowed = torch.arange(1683).unsqueeze(0) < sizes.unsqueeze(1) + 1
    allowed[:, 0] = False  # candidates are items 1..n
    targets = torch.ones(len(sizes), dtype=torch.long)
    metrics = RankMetrics(["NDCG", "MRR", "Hit"], [1, 10, 20])
    values, chance = metrics.values(*tie_counts(scores, targets, allowed))
    for key in values:
        assert torch.allclose(values[key], chance[key], atol=1e-12), key
    # Chance is not trivially 1 here: hit@10 of a 50-candidate row is 10/50.
    assert chance["hit@10"][4].item() == pytest.approx(0.2)
    # The authors' rule gives the same constant scorer a perfect score.
    optimistic, _ = RankMetrics(["NDCG"], [10], "optimistic").values(*tie_counts(scores, targets, allowed))
    assert optimistic["ndcg@10"].tolist() == [1.0] * len(sizes)


def test_unknown_tie_rule_and_unrankable_metric_are_rejected_with_the_fix():
    with pytest.raises(ValueError, match="crs_ties 'best' is not a tie rule; use one of expected, optimistic, pessimistic"):
        RankMetrics(["NDCG"], [10], "best")
    with pytest.raises(ValueError, match=r"metrics \['AUC'\] cannot be computed.*Remove"):
        RankMetrics(["NDCG", "AUC"], [10])
