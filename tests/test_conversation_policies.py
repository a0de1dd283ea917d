"""Policies (recbole_crs/conversation/baselines.py, score_guided.py): each decision by hand, a full episode per
policy, and determinism.

Hand-built table (every item has attribute 1, the opening one in these episodes)::

    i1: 1 2    i2: 1    i3: 1 3    i4: 1 3    i5: 1 4    i6: 1 2 3

A fixed ranker believes p = (0.40, 0.25, 0.15, 0.10, 0.06, 0.04) for i1..i6 (scores = log p, temperature 1).
"""

import math

import numpy as np
import pytest
import torch

from recbole_crs.conversation.catalogue import ItemAttributes
from recbole_crs.conversation.environment import ConversationView
from recbole_crs.conversation.loop import play, play_batch
from recbole_crs.conversation.policies import POLICIES, make_policy, policy_name
from recbole_crs.errors import CRSInputError

TABLE = {1: [1, 2], 2: [1], 3: [1, 3], 4: [1, 3], 5: [1, 4], 6: [1, 2, 3]}
BELIEF = [0.0, 0.40, 0.25, 0.15, 0.10, 0.06, 0.04]


class FixedRanker:
    def __init__(self, scores):
        self.values = torch.as_tensor(scores, dtype=torch.float32)
        self.calls = 0

    def scores(self, view):
        self.calls += 1
        return self.values.unsqueeze(0).repeat(len(view), 1)


@pytest.fixture
def catalogue():
    return ItemAttributes.from_lists(TABLE, n_attributes=5)


def log_belief():
    return torch.tensor([math.log(p) if p > 0 else -50.0 for p in BELIEF])


def view_of(candidates, asked=(1,), actions_left=14, uniform=0.99):
    mask = torch.zeros(1, 7, dtype=torch.bool)
    mask[0, list(candidates)] = True
    asked_mask = torch.zeros(1, 5, dtype=torch.bool)
    asked_mask[0, list(asked)] = True
    return ConversationView(
        torch.tensor([0]), users=torch.tensor([0]), candidates=mask, asked=asked_mask,
        actions_left=torch.tensor([actions_left]), uniforms=torch.tensor([uniform], dtype=torch.float64),
        priority=torch.zeros(1, 7, dtype=torch.int32),
    )


def decision(policy, view, scores=None):
    chosen = policy.decide(view, None if scores is None else scores.unsqueeze(0))
    return "recommend" if chosen.recommend[0] else int(chosen.attributes[0])


# ---------------------------------------------------------------------------------------------- names
def test_policy_names_and_unknown_policy():
    assert list(POLICIES) == ["AbsGreedy", "MaxEntropy", "ScoreGuided"]
    assert policy_name("max-entropy") == policy_name("max_entropy") == policy_name("MAXENTROPY") == "MaxEntropy"
    with pytest.raises(CRSInputError, match="is not a policy: use one of AbsGreedy, MaxEntropy, ScoreGuided"):
        policy_name("Random")


# ---------------------------------------------------------------------------------------------- decisions
def test_abs_greedy_always_recommends(catalogue):
    assert decision(make_policy("AbsGreedy", catalogue, 2), view_of(range(1, 7))) == "recommend"


def test_max_entropy_asks_the_attribute_splitting_the_candidates_best(catalogue):
    """Over i1..i6: attribute 2 holds 2/6 (H 0.918), 3 holds 3/6 (H 1.0), 4 holds 1/6 (H 0.650)."""
    policy = make_policy("MaxEntropy", catalogue, topk=2)
    assert decision(policy, view_of(range(1, 7), uniform=0.5)) == 3
    assert decision(policy, view_of(range(1, 7), asked=(1, 3), uniform=0.5)) == 2
    # the coin: recommend with probability k / |candidates| = 2/6
    assert decision(policy, view_of(range(1, 7), uniform=0.33)) == "recommend"
    assert decision(policy, view_of(range(1, 7), uniform=0.34)) == 3
    # k or fewer candidates: always recommend; no attribute splits i3 i4 (both hold 1 and 3 only): recommend
    assert decision(policy, view_of([2, 5], uniform=0.99)) == "recommend"
    assert decision(policy, view_of([3, 4, 4], uniform=0.99)) == "recommend"
    assert decision(make_policy("MaxEntropy", catalogue, topk=1), view_of([3, 4], uniform=0.99)) == "recommend"


def test_max_entropy_ties_go_to_the_lowest_attribute(catalogue):
    """Over i1 i3: attribute 2 (i1) and 3 (i3) both split 1/2."""
    assert decision(make_policy("MaxEntropy", catalogue, topk=1), view_of([1, 3], uniform=0.9)) == 2


def test_score_guided_compares_asking_with_one_more_list(catalogue):
    """k = 1. Three actions left: a question leaves 2 lists (n = 2); attribute 3's items i3 i4 i6 are ranked
    3rd, 4th, 6th, so a "yes" brings i3 and i4 (0.15 + 0.10 = 0.25) into the first two lists, more than the
    third list would reach (rank 3: 0.15). Attribute 2 brings 0.04 (i6 after i1), attribute 4 0.06."""
    policy = make_policy("ScoreGuided", catalogue, topk=1, temperature=1.0, mass_threshold=1.0, ask_margin=1.0)
    scores = log_belief()
    assert decision(policy, view_of(range(1, 7), actions_left=3), scores) == 3
    # two actions left: n = 1; attribute 3 brings i3 (0.15) < the second list's i2 (0.25): recommend
    assert decision(policy, view_of(range(1, 7), actions_left=2), scores) == "recommend"
    assert decision(make_policy("ScoreGuided", catalogue, topk=1, ask_margin=0.5),
                    view_of(range(1, 7), actions_left=2), scores) == 3
    # an attribute asked before is never asked again: 4 (0.06) is the best of the rest, below 0.15
    assert decision(policy, view_of(range(1, 7), asked=(1, 3), actions_left=3), scores) == "recommend"
    assert decision(make_policy("ScoreGuided", catalogue, topk=1, ask_margin=0.2),
                    view_of(range(1, 7), asked=(1, 3), actions_left=3), scores) == 4


def test_score_guided_recommends_when_sure_last_or_few(catalogue):
    scores = log_belief()
    confident = make_policy("ScoreGuided", catalogue, topk=1, mass_threshold=0.399)
    assert decision(confident, view_of(range(1, 7), actions_left=3), scores) == "recommend"  # top-1 holds 0.40
    policy = make_policy("ScoreGuided", catalogue, topk=1, ask_margin=0.0)
    assert decision(policy, view_of(range(1, 7), actions_left=1), scores) == "recommend"  # last action
    assert decision(make_policy("ScoreGuided", catalogue, topk=2, ask_margin=0.0),
                    view_of([3, 4], actions_left=5), scores) == "recommend"  # k or fewer candidates


def test_policies_recommend_when_nothing_is_askable(catalogue):
    view = view_of(range(1, 7), asked=(1, 2, 3, 4), uniform=0.99)
    for name in ("MaxEntropy", "ScoreGuided"):
        assert decision(make_policy(name, catalogue, 1), view, log_belief()) == "recommend", name


def test_score_guided_belief_is_a_softmax_over_the_candidates_in_list_order(catalogue):
    policy = make_policy("ScoreGuided", catalogue, topk=1, temperature=2.0)
    items, mass = policy.ranked_belief(view_of([2, 3, 5]), log_belief().unsqueeze(0))
    assert items[0, :3].tolist() == [2, 3, 5] and items[0, 3:].eq(0).all()
    expected = torch.tensor([0.25, 0.15, 0.06]).sqrt()
    assert mass[0, :3].tolist() == pytest.approx((expected / expected.sum()).tolist())


# ---------------------------------------------------------------------------------------------- full episodes
def outcome(catalogue, policy, target, max_turns=15, topk=2, uniforms=(), ranker=None):
    """Play one episode opening with attribute 1 (opening uniform 0: the target's lowest attribute), the
    policy's coins set to ``uniforms``."""
    from recbole_crs.conversation import loop

    class Pinned(loop.EpisodeRandomness):
        def __init__(self, *args):
            super().__init__(*args)
            self.opening[:] = 0.0
            self.action_uniforms[:, : len(uniforms)] = torch.tensor(list(uniforms), dtype=torch.float64)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "EpisodeRandomness", Pinned)
        return play_batch(np.array([[0, target]]), [0], ranker or FixedRanker(log_belief()), policy, catalogue,
                          0, max_turns, topk)


def test_abs_greedy_episode(catalogue):
    """Target i5, k = 2: lists (i1 i2), (i3 i4) fail, (i5 i6) succeeds at action 3, rank 1."""
    result = outcome(catalogue, make_policy("AbsGreedy", catalogue, 2), target=5)
    assert (result.success_action[0], result.success_rank[0], result.asked[0]) == (3, 1, 0)


def test_max_entropy_episode(catalogue):
    """Target i5, k = 2, coins 0.9: ask 3 (no, nothing pruned), ask 2 (no), ask 4 (yes: only i5 left), then
    recommend (one candidate: the coin always says recommend): success at action 4."""
    ranker = FixedRanker(log_belief())
    result = outcome(catalogue, make_policy("MaxEntropy", catalogue, 2), 5, uniforms=[0.9, 0.9, 0.9, 0.9],
                     ranker=ranker)
    assert (result.success_action[0], result.success_rank[0], result.asked[0], result.accepted[0]) == (4, 1, 3, 1)
    assert ranker.calls == 1  # MaxEntropy reads no scores: only the recommending step is scored


def test_score_guided_episode(catalogue):
    """Target i3, k = 1, max_turns 4 (3 actions): ask 3 (yes: i3 i4 i6 left); with two actions left attribute
    2 would bring i6 (0.04/0.29) < the second list's i4 (0.10/0.29): recommend i3, success at action 2."""
    policy = make_policy("ScoreGuided", catalogue, topk=1, temperature=1.0, mass_threshold=1.0, ask_margin=1.0)
    result = outcome(catalogue, policy, target=3, max_turns=4, topk=1)
    assert (result.success_action[0], result.success_rank[0], result.asked[0], result.accepted[0]) == (2, 1, 1, 1)


def test_a_failure_uses_every_action_and_counts_max_turns(catalogue):
    """k = 1, 3 actions, target i6 ranked last: Abs Greedy shows i1, i2, i3 and fails; AT counts 4."""
    from recbole_crs.conversation.metrics import summarize

    result = outcome(catalogue, make_policy("AbsGreedy", catalogue, 1), target=6, max_turns=4, topk=1)
    assert (result.success_action[0], result.actions[0]) == (0, 3)
    assert summarize(result.success_action, result.success_rank, 4)["AT"] == 4


# ---------------------------------------------------------------------------------------------- determinism
def random_world(seed=0, n_items=80, n_attributes=15):
    rng = np.random.default_rng(seed)
    table = {i: sorted(set(rng.choice(np.arange(1, n_attributes), rng.integers(1, 5), replace=False).tolist()))
             for i in range(1, n_items)}
    catalogue = ItemAttributes.from_lists(table, n_attributes)
    scores = torch.from_numpy(rng.normal(size=n_items)).float()
    scores[:20] = 0.5  # ties, broken by each episode's seeded order
    pairs = np.stack([rng.integers(0, 5, 60), rng.integers(1, n_items, 60)], axis=1)
    return catalogue, scores, pairs


@pytest.mark.parametrize("name", list(POLICIES))
def test_same_seed_same_episodes_at_any_batch_size(name):
    catalogue, scores, pairs = random_world()
    policy = make_policy(name, catalogue, 3)
    runs = [play(pairs, FixedRanker(scores), policy, catalogue, seed=5, max_turns=8, topk=3, batch_size=size)
            for size in (60, 7, 60)]
    for run in runs[1:]:
        for field in run.FIELDS:
            assert (getattr(run, field) == getattr(runs[0], field)).all(), field
    # the first 25 episodes alone play exactly as within all 60
    head = play(pairs[:25], FixedRanker(scores), policy, catalogue, seed=5, max_turns=8, topk=3)
    assert (head.success_action == runs[0].success_action[:25]).all()
    other = play(pairs, FixedRanker(scores), policy, catalogue, seed=6, max_turns=8, topk=3)
    assert (other.opening != runs[0].opening).any()  # the seed matters
