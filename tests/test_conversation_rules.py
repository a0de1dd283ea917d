"""The multi-round game's rules one by one, each with a hand-worked episode (recbole_crs/conversation/rules.py,
environment.py, metrics.py).

The item-attribute table is tiny_data's, by hand (attribute ids a=1, b=2, c=3; d=4 belongs to no item)::

    i1: a b      i2: a        i3: b c
    i4: c        i5: a c      i6: b
"""

import math

import pytest
import torch

from recbole_crs.conversation import rules
from recbole_crs.conversation.catalogue import ItemAttributes
from recbole_crs.conversation.environment import Conversations, SimulatedUser
from recbole_crs.conversation.episodes import EpisodeRandomness
from recbole_crs.conversation.metrics import hdcg, summarize

A, B, C, D = 1, 2, 3, 4
TABLE = {1: [A, B], 2: [A], 3: [B, C], 4: [C], 5: [A, C], 6: [B]}


@pytest.fixture
def catalogue():
    return ItemAttributes.from_lists(TABLE, n_attributes=5)


def as_set(mask_row):
    return set(torch.nonzero(mask_row).squeeze(1).tolist())


def conversations(catalogue, targets, opening_uniforms, max_turns=15, topk=2, priority=None):
    randomness = EpisodeRandomness(0, range(len(targets)), catalogue.n_items, max_turns)
    randomness.opening = torch.tensor(opening_uniforms, dtype=torch.float64)
    if priority is not None:
        randomness.priority = priority
    user = SimulatedUser(torch.tensor(targets), catalogue, randomness.opening)
    return Conversations(torch.zeros(len(targets), dtype=torch.long), user, catalogue, randomness, max_turns, topk)


# ---------------------------------------------------------------------------------------------- the table
def test_catalogue_holds_the_table(catalogue):
    assert [catalogue.attributes_of(i).tolist() for i in range(1, 7)] == [TABLE[i] for i in range(1, 7)]
    assert catalogue.attributes_of(0).tolist() == []  # padding item
    assert as_set(catalogue.attribute_items[C]) == {3, 4, 5}
    counts = catalogue.weighted_counts(torch.tensor([[False, True, True, True, False, False, False]]))
    assert counts.toarray()[0].tolist() == [0, 2, 2, 1, 0]  # candidates i1 i2 i3: a twice, b twice, c once


# ---------------------------------------------------------------------------------------------- opening turn
def test_opening_names_one_attribute_of_the_target_and_candidates_are_its_items(catalogue):
    # target i3 has attributes [b, c]: u in [0, 0.5) picks b, [0.5, 1) picks c
    opening = rules.opening_attributes(torch.tensor([3, 3, 3]), catalogue, torch.tensor([0.0, 0.49, 0.5]))
    assert opening.tolist() == [B, B, C]
    candidates = rules.opening_candidates(opening, catalogue)
    assert [as_set(row) for row in candidates] == [{1, 3, 6}, {1, 3, 6}, {3, 4, 5}]
    env = conversations(catalogue, [3], [0.99])
    assert env.opening.tolist() == [C] and as_set(env.candidates[0]) == {3, 4, 5}
    assert env.asked[0, C] and env.accepted[0, 0] == C and env.actions[0] == 0  # the opening is not an action


def test_opening_attribute_is_uniform_over_the_targets_attributes(catalogue):
    uniforms = torch.rand(4000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    opening = rules.opening_attributes(torch.full((4000,), 5), catalogue, uniforms)  # i5: [a, c]
    assert set(opening.tolist()) == {A, C} and abs((opening == A).double().mean() - 0.5) < 0.03


# ---------------------------------------------------------------------------------------------- ask
def test_accepted_iff_the_target_has_the_attribute(catalogue):
    accepted = rules.answer_questions(torch.tensor([3, 3, 3, 3]), torch.tensor([A, B, C, D]), catalogue)
    assert accepted.tolist() == [False, True, True, False]


def test_accepted_intersects_rejected_prunes_nothing(catalogue):
    candidates = rules.opening_candidates(torch.tensor([B, B]), catalogue)  # {1, 3, 6} twice
    after = rules.apply_answers(candidates, torch.tensor([C, A]), torch.tensor([True, False]), catalogue)
    assert as_set(after[0]) == {3}  # accepted c: items with b and c
    assert as_set(after[1]) == {1, 3, 6}  # rejected a: i1 has a and stays a candidate


def test_ask_episode(catalogue):
    """Target i3, opening b (candidates i1 i3 i6); ask a: no, nothing pruned; ask c: yes, only i3 left."""
    env = conversations(catalogue, [3], [0.0])
    rows = torch.tensor([0])
    assert env.ask(rows, torch.tensor([A])).tolist() == [False]
    assert as_set(env.candidates[0]) == {1, 3, 6} and env.rejected_attributes[0, 0] == A
    assert env.ask(rows, torch.tensor([C])).tolist() == [True]
    assert as_set(env.candidates[0]) == {3} and env.accepted[0, :2].tolist() == [B, C]
    assert env.actions.tolist() == [2] and not env.done[0]
    view = env.view(rows)
    assert view.accepted.tolist() == [[B, C]] and view.rejected_attributes.tolist() == [[A]]
    with pytest.raises(ValueError, match="asked twice"):
        env.ask(rows, torch.tensor([A]))
    with pytest.raises(ValueError, match="asked twice"):
        env.ask(rows, torch.tensor([B]))  # the opening attribute counts as asked


# ---------------------------------------------------------------------------------------------- recommend
def test_recommendation_is_the_top_k_candidates_by_score_ties_by_priority():
    scores = torch.tensor([[9.0, 1.0, 5.0, 5.0, 7.0, float("nan"), 5.0]])
    candidates = torch.tensor([[False, True, True, True, False, True, True]])  # item 4 is not a candidate
    priority = torch.tensor([[0, 0, 1, 3, 0, 0, 2]], dtype=torch.int32)
    items = rules.recommendation_lists(scores, candidates, 3, priority)
    assert items.tolist() == [[3, 6, 2]]  # 5.0 three times: priority 3, 2, 1; item 0 is never a candidate
    # fewer candidates than k: every candidate, then padding; NaN ranks last
    assert rules.recommendation_lists(scores, candidates, 6, priority).tolist() == [[3, 6, 2, 1, 5, 0]]
    assert rules.recommendation_lists(scores, candidates, 9, priority).shape == (1, 9)


def test_keys_order_every_float_like_the_float():
    values = torch.tensor([-torch.inf, -3.5, -1e-30, -0.0, 0.0, 1e-30, 2.0, 3e38, torch.inf])
    keys = rules.sortable_scores(values.unsqueeze(0))[0]
    assert keys.tolist() == sorted(keys.tolist()) and keys[3] == keys[4]


def test_judge_and_remove_rejected():
    items = torch.tensor([[4, 2, 0], [1, 5, 6]])
    assert rules.judge_recommendations(items, torch.tensor([2, 3])).tolist() == [2, 0]
    candidates = torch.ones(2, 7, dtype=torch.bool)
    after = rules.remove_rejected(candidates, items)
    assert as_set(after[0]) == {0, 1, 3, 5, 6} and as_set(after[1]) == {0, 2, 3, 4}


def test_recommend_episode(catalogue):
    """Target i3, opening b (i1 i3 i6), k = 2, scores i6 > i1 > i3: the first list (i6, i1) fails and leaves
    the candidates; the second holds only i3, which succeeds at action 2 with rank 1."""
    env = conversations(catalogue, [3], [0.0])
    scores = torch.tensor([[0.0, 2.0, 0.0, 1.0, 0.0, 0.0, 3.0]])
    rows = torch.tensor([0])
    first = rules.recommendation_lists(scores, env.candidates[rows], 2, env.randomness.priority[rows])
    assert first.tolist() == [[6, 1]]
    assert env.recommend(rows, first).tolist() == [0]
    assert as_set(env.candidates[0]) == {3} and env.rejected_items[0, :2].tolist() == [6, 1]
    second = rules.recommendation_lists(scores, env.candidates[rows], 2, env.randomness.priority[rows])
    assert second.tolist() == [[3, 0]]
    assert env.recommend(rows, second).tolist() == [1]
    assert env.done[0] and env.success_action[0] == 2 and env.success_rank[0] == 1
    with pytest.raises(ValueError, match="ended"):
        env.recommend(rows, second)


# ---------------------------------------------------------------------------------------------- turn limit
def test_at_most_max_turns_including_the_opening(catalogue):
    """max_turns = 3: the policy acts twice; a third action is refused and the failure counts 3 turns."""
    env = conversations(catalogue, [3], [0.0], max_turns=3, topk=1)
    rows = torch.tensor([0])
    env.ask(rows, torch.tensor([A]))
    assert not env.done[0]
    env.ask(rows, torch.tensor([D]))
    assert env.done[0] and env.active_rows().tolist() == []
    assert rules.out_of_turns(torch.tensor([13, 14]), 15).tolist() == [False, True]
    summary = summarize(env.success_action, env.success_rank, 3)
    assert summary["AT"] == 3 and summary["SR@15"] == 0 and summary["hDCG"] == 0


# ---------------------------------------------------------------------------------------------- metrics
def test_hdcg_formula():
    value = hdcg(torch.tensor([1, 2, 3, 0]), torch.tensor([1, 3, 10, 0]))
    expected_2_3 = 1 / math.log2(4) + (1 / math.log2(3) - 1 / math.log2(4)) / math.log2(4)
    expected_3_10 = 1 / math.log2(5) + (1 / math.log2(4) - 1 / math.log2(5)) / math.log2(11)
    assert value.tolist() == pytest.approx([1.0, expected_2_3, expected_3_10, 0.0])


def test_summary_of_hand_outcomes():
    # successes at actions 1, 5, 6, 14 and one failure
    actions, ranks = torch.tensor([1, 5, 6, 14, 0]), torch.tensor([1, 2, 1, 10, 0])
    summary = summarize(actions, ranks, 15)
    assert summary["SR@5"] == pytest.approx(2 / 5) and summary["SR@10"] == pytest.approx(3 / 5)
    assert summary["SR@15"] == pytest.approx(4 / 5)
    assert summary["AT"] == pytest.approx((1 + 5 + 6 + 14 + 15) / 5)
    assert summary["hDCG"] == pytest.approx(float(hdcg(actions, ranks).mean()))
    assert summary["success_by_turn"][0] == pytest.approx(0.2) and len(summary["success_by_turn"]) == 15
    assert summary["success_by_turn"][13] == summary["success_by_turn"][14] == pytest.approx(0.8)
