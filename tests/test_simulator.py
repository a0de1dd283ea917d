"""Tests of the EAR/CRM-style conversation simulator (recbole_crs.data.simulator)."""

import time

import numpy as np
import pytest

from recbole_crs.data.simulator import (
    ASK,
    RECOMMEND,
    Conversation,
    ConversationSimulator,
    summarize_conversations,
)
from recbole_crs.data.tokens import natural_key

# A catalogue small enough to work every conversation out by hand (see the test docstrings).
HAND_CATALOGUE = {
    "i1": ["x", "a"],
    "i2": ["x", "a", "b"],
    "i3": ["x", "b"],
    "i4": ["x", "c"],
    "i5": ["x"],
    "i6": ["y"],
    "i7": ["z"],
    "i8": ["z"],
    "i9": ["z"],
}
HAND_POPULARITY = {"i7": 5, "i8": 3, "i9": 1}


def hand_simulator(**kwargs):
    options = dict(item_popularity=HAND_POPULARITY, rec_list_size=2, max_turns=5, seed=0)
    options.update(kwargs)
    return ConversationSimulator(HAND_CATALOGUE, **options)


def random_catalogue(n_items=300, n_attributes=25, density=0.15, seed=7):
    """Random item -> attributes map where every item has at least one attribute."""
    rng = np.random.default_rng(seed)
    catalogue = {}
    for item in range(n_items):
        attrs = np.flatnonzero(rng.random(n_attributes) < density)
        if len(attrs) == 0:
            attrs = [rng.integers(n_attributes)]
        catalogue[f"item{item}"] = [f"attr{a}" for a in attrs]
    return catalogue


def test_exact_conversation_with_rejected_attributes():
    """Target i5 has only x, so the initial attribute is x; candidates i1..i5.

    Counts among 5 candidates: a 2, b 2, c 1 -> a and b tie (|2*2-5| = 1), a comes first -> ask a: denied,
    i1, i2 leave. Candidates i3, i4, i5: b 1, c 1 tie -> ask b: denied, i3 leaves. Two candidates left
    (<= rec_list_size 2) -> recommend both, the target is among them.
    """
    conversation = hand_simulator().simulate("i5")
    assert conversation.confirmed == ["x"]
    assert conversation.rejected_attributes == ["a", "b"]
    assert conversation.rejected_items == []
    assert conversation.success and conversation.turns == 4
    assert conversation.history == [(ASK, "a", False), (ASK, "b", False), (RECOMMEND, ["i4", "i5"], True)]
    assert conversation.confirmed_turns == [1] and conversation.rejected_turns == []


def test_exact_conversation_with_rejected_items():
    """Target i9 has only z; i7, i8, i9 all carry exactly {z}, so no attribute splits them.

    The system recommends the 2 most popular (i7: 5, i8: 3), both rejected; then i9 alone, accepted.
    """
    conversation = hand_simulator().simulate("i9")
    assert conversation.confirmed == ["z"]
    assert conversation.rejected_items == ["i7", "i8"]
    assert conversation.success and conversation.turns == 3
    # Turn 1 states z; turn 2 (history[0]) recommends i7, i8, both rejected there; turn 3 accepts i9.
    assert conversation.confirmed_turns == [1] and conversation.rejected_turns == [2, 2]


def test_max_turns_cuts_the_conversation():
    conversation = hand_simulator(max_turns=2).simulate("i9")
    assert conversation.rejected_items == ["i7", "i8"]
    assert not conversation.success and conversation.turns == 2
    assert conversation.confirmed_turns == [1] and conversation.rejected_turns == [2, 2]
    only_initial = hand_simulator(max_turns=1).simulate("i9")
    assert only_initial.confirmed == ["z"] and only_initial.history == [] and only_initial.turns == 1
    assert only_initial.confirmed_turns == [1] and only_initial.rejected_turns == []


def test_popularity_ties_fall_back_to_item_order():
    conversation = hand_simulator(item_popularity=None).simulate("i9")
    assert conversation.rejected_items == ["i7", "i8"]  # equal popularity: item order i7 < i8 < i9


def test_every_initial_attribute_gives_its_expected_conversation():
    """Target i2 = {x, a, b}; the conversation depends only on which initial attribute is drawn.

    x: candidates i1..i5, ask a (confirmed) -> i1, i2 -> recommended, accepted.
    a: candidates i1, i2 -> recommended. b: candidates i2, i3 -> recommended.
    """
    expected = {"x": ["x", "a"], "a": ["a"], "b": ["b"]}
    expected_turns = {"x": [1, 2], "a": [1], "b": [1]}  # x: a is confirmed at turn 2 (history[0])
    seen = set()
    for seed in range(30):
        conversation = hand_simulator(seed=seed).simulate("i2")
        initial = conversation.confirmed[0]
        assert conversation.confirmed == expected[initial]
        assert conversation.confirmed_turns == expected_turns[initial] and conversation.rejected_turns == []
        assert conversation.success and conversation.rejected_items == []
        seen.add(initial)
    assert seen == set(expected)  # 30 seeds draw every one of the 3 initial attributes


def test_same_seed_same_conversations_different_seed_differs():
    catalogue = random_catalogue()
    targets = sorted(catalogue, key=natural_key)
    first = ConversationSimulator(catalogue, seed=11).simulate_many(targets)
    again = ConversationSimulator(catalogue, seed=11).simulate_many(targets)
    other = ConversationSimulator(catalogue, seed=12).simulate_many(targets)
    assert first == again
    assert [c.confirmed for c in first] != [c.confirmed for c in other]


def test_simulated_conversations_satisfy_the_protocol():
    # Few attributes: many items share an attribute set, so some recommendations must fail.
    catalogue = random_catalogue(n_items=300, n_attributes=8, density=0.25)
    popularity = {item: i % 7 for i, item in enumerate(catalogue)}
    max_turns = 6
    simulator = ConversationSimulator(
        catalogue, item_popularity=popularity, max_turns=max_turns, rec_list_size=5, seed=3
    )
    conversations = simulator.simulate_many(list(catalogue))
    attribute_sets = {item: set(attrs) for item, attrs in catalogue.items()}
    for conversation in conversations:
        target = conversation.target
        assert conversation.confirmed[0] in attribute_sets[target]
        assert set(conversation.confirmed) <= attribute_sets[target]
        assert not set(conversation.rejected_attributes) & attribute_sets[target]
        assert target not in conversation.rejected_items
        assert len(conversation.rejected_items) == len(set(conversation.rejected_items))
        assert conversation.turns == 1 + len(conversation.history) <= max_turns
        assert len(conversation.confirmed) <= max_turns
        _check_recommendations_fit_the_state(conversation, attribute_sets)
        _check_turns_follow_the_history(conversation)
    # The catalogue is large enough that the system both asks and recommends, and sometimes fails.
    stats = summarize_conversations(conversations)
    assert 0 < stats["success_rate"] < 1 and stats["rejected_items_mean"] > 0 and stats["confirmed_max"] > 1


def _check_recommendations_fit_the_state(conversation, attribute_sets):
    """Every recommended item carries each attribute confirmed so far and none denied so far."""
    confirmed, denied = {conversation.confirmed[0]}, set()
    for kind, value, answer in conversation.history:
        if kind == ASK:
            (confirmed if answer else denied).add(value)
            continue
        for item in value:
            assert confirmed <= attribute_sets[item]
            assert not denied & attribute_sets[item]
        assert answer == (conversation.target in value)


def _check_turns_follow_the_history(conversation):
    """Turns are parallel to their lists, start at 1, never decrease, and history[k] is turn k + 2."""
    assert len(conversation.confirmed_turns) == len(conversation.confirmed)
    assert len(conversation.rejected_turns) == len(conversation.rejected_items)
    assert conversation.confirmed_turns[0] == 1
    for turns in (conversation.confirmed_turns, conversation.rejected_turns):
        assert turns == sorted(turns) and all(1 <= t <= conversation.turns for t in turns)
    confirmed_turns, rejected_turns = [1], []
    for k, (kind, value, answer) in enumerate(conversation.history):
        if kind == ASK and answer:
            confirmed_turns.append(k + 2)
        elif kind == RECOMMEND and not answer:
            rejected_turns += [k + 2] * len(value)
    assert conversation.confirmed_turns == confirmed_turns
    assert conversation.rejected_turns == rejected_turns


def test_turns_of_a_conversation_that_confirms_and_rejects():
    """Target t = {x, a}; q = {x, a} is more popular; r, s = {x}; one item per recommendation.

    Initial x (turn 1): candidates t, q, r, s; a splits them 2/2 -> ask a (turn 2): confirmed -> t, q, which
    no attribute splits -> recommend q (turn 3): rejected -> recommend t (turn 4): accepted.
    Initial a (turn 1): candidates t, q -> recommend q (turn 2): rejected -> recommend t (turn 3): accepted.
    """
    catalogue = {"t": ["x", "a"], "q": ["x", "a"], "r": ["x"], "s": ["x"]}
    expected = {
        "x": (["x", "a"], [1, 2], ["q"], [3], 4),
        "a": (["a"], [1], ["q"], [2], 3),
    }
    simulator = ConversationSimulator(catalogue, item_popularity={"q": 2, "t": 1}, rec_list_size=1, seed=0)
    seen = set()
    for conversation in simulator.simulate_many(["t"] * 20):
        initial = conversation.confirmed[0]
        assert (
            conversation.confirmed,
            conversation.confirmed_turns,
            conversation.rejected_items,
            conversation.rejected_turns,
            conversation.turns,
        ) == expected[initial]
        assert conversation.success
        seen.add(initial)
    assert seen == {"x", "a"}


def test_questions_maximise_entropy_over_the_candidates():
    """Replay each conversation and recompute the best question by brute force."""
    catalogue = random_catalogue(n_items=120, n_attributes=12, density=0.3, seed=5)
    simulator = ConversationSimulator(catalogue, max_turns=5, rec_list_size=3, seed=1)
    attributes = simulator.attributes
    for conversation in simulator.simulate_many(list(catalogue)[:60]):
        confirmed, denied, rejected = {conversation.confirmed[0]}, set(), set()
        asked = set(confirmed)
        for kind, value, answer in conversation.history:
            candidates = [
                item
                for item, attrs in catalogue.items()
                if confirmed <= set(attrs) and not denied & set(attrs) and item not in rejected
            ]
            if kind == ASK:
                entropies = {
                    a: _entropy(sum(a in catalogue[i] for i in candidates), len(candidates))
                    for a in attributes
                    if a not in asked
                }
                best = max(entropies.values())
                assert best > 0 and np.isclose(entropies[value], best)
                asked.add(value)
                (confirmed if answer else denied).add(value)
            else:
                rejected |= set(value)


def _entropy(count, size):
    p = count / size
    return 0.0 if p in (0.0, 1.0) else float(-p * np.log2(p) - (1 - p) * np.log2(1 - p))


def test_unknown_item_and_item_without_attributes_are_rejected():
    simulator = ConversationSimulator({"a": ["t"], "b": []})
    with pytest.raises(ValueError, match=r"Item 'zzz' is not in the simulator's catalogue.*item_attributes"):
        simulator.simulate("zzz")
    with pytest.raises(ValueError, match=r"Item 'b' has no attributes.*at least one attribute"):
        simulator.simulate("b")
    with pytest.raises(ValueError, match=r"item_attributes\['a'\] is a string"):
        ConversationSimulator({"a": "tag"})
    with pytest.raises(ValueError, match="item_popularity has item 'q'"):
        ConversationSimulator({"a": ["t"]}, item_popularity={"q": 1})


@pytest.mark.parametrize("option, value", [("max_turns", 0), ("rec_list_size", 0), ("max_turns", 2.5)])
def test_bad_settings_are_rejected(option, value):
    with pytest.raises(ValueError, match=f"{option} must be an integer >= 1"):
        ConversationSimulator({"a": ["t"]}, **{option: value})


def test_natural_key_orders_numbers_numerically():
    assert sorted(["10", "9", "b", "a", "1", 2], key=natural_key) == ["1", 2, "9", "10", "a", "b"]


def test_conversation_defaults_and_integer_tokens():
    simulator = ConversationSimulator({1: [10, 20], 2: [10], 3: [20]}, rec_list_size=1)
    conversation = simulator.simulate(1)
    assert isinstance(conversation, Conversation) and conversation.target == 1
    assert set(conversation.confirmed) <= {10, 20}
    assert simulator.attributes_of(1) == [10, 20]


def test_large_catalogue_is_fast():
    """LastFM*-sized: thousands of items and attributes; the memoised decision tree keeps it quick."""
    catalogue = random_catalogue(n_items=5000, n_attributes=3000, density=0.004, seed=2)
    started = time.perf_counter()
    simulator = ConversationSimulator(catalogue, seed=0)
    conversations = simulator.simulate_many(list(catalogue) * 4)
    assert len(conversations) == 20000
    assert time.perf_counter() - started < 30  # measured ~1-2 s on 2 cores; generous for slow CI
