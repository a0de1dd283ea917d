"""Turn-by-turn evaluation on the tiny dataset with turn columns, every state worked out by hand.

Test rows (tests/tiny_data.py) get these turns; a fixed scorer ranks i6 > i4 > i3 > i2 > i1 > i5:

    user target confirmed (turns)  rejected (turns)  states: confirmed candidates -> rank of the target
    u1   i5     a@1 c@3            i1@2              t1 {i1,i2,i5} 2 | t2 {i2,i5} 1 | t3 {i5} 0
    u2   i5     c@1 a@2            -                 t1 {i3,i4,i5} 2 | t2 {i5} 0
    u3   i2     a@1                i1@2 i5@2         t1 {i1,i2,i5} 0 | t2 {i2} 0
    u4   i3     b@1 c@3            i6@2              t1 {i1,i3,i6} 1 | t2 {i1,i3} 0 | t3 {i3} 0

A state at turn t holds what turns 1..t revealed, rejections included (u3's state at its last turn holds the
items it rejected then). Rows that are not test rows get confirmed turns 1..k and their rejections one turn later.
"""

import os

import pytest
import torch
from recbole.data import data_preparation

from recbole_crs.config import Config
from recbole_crs.data.dataset import CRSDataset
from recbole_crs.data.turns import LAST_TURN_FIELD, TURN_FIELD
from recbole_crs.errors import CRSDataError
from recbole_crs.trainer import get_trainer

from test_evaluation import FixedOrder
from tiny_data import tiny_config

TEST_TURNS = {"u1": ("1 3", "2"), "u2": ("1 2", ""), "u3": ("1", "2 2"), "u4": ("1 3", "2")}
HEADER = "\tconfirmed_turns:float_seq\trejected_turns:float_seq"


def add_turn_columns(root, turns_of=None, header=HEADER):
    """Append the two turn columns to tiny-crs.inter; ``turns_of(user, t, confirmed, rejected)`` overrides a row."""
    path = os.path.join(root, "tiny-crs", "tiny-crs.inter")
    lines = open(path).read().splitlines()
    out = [lines[0] + header]
    for line in lines[1:]:
        user, _, t, confirmed, rejected = line.split("\t")
        k, r = len(confirmed.split()), len(rejected.split())
        turns = (" ".join(str(i) for i in range(1, k + 1)), " ".join([str(k + 1)] * r))
        if t == "4":
            turns = TEST_TURNS[user]
        if turns_of is not None:
            turns = turns_of(user, int(t), turns)
        out.append(line + "\t" + "\t".join(turns))
    open(path, "w").write("\n".join(out) + "\n")


def build(root, **overrides):
    config = Config("SASRec", "tiny-crs", config_dict=tiny_config(root, metrics=["Hit", "NDCG"], **overrides))
    dataset = CRSDataset(config)
    return config, dataset, data_preparation(config, dataset)


class RecordingFixedOrder(FixedOrder):
    """The fixed scorer, remembering the conversation fields it was given."""

    seen = []

    def full_sort_predict(self, interaction):
        RecordingFixedOrder.seen.append(interaction.interaction.copy())
        return super().full_sort_predict(interaction)


@pytest.fixture
def turned(tiny_root):
    add_turn_columns(tiny_root)
    config, dataset, (_, _, test_data) = build(tiny_root)
    trainer = get_trainer(config["MODEL_TYPE"], "SASRec")(config, RecordingFixedOrder(config, test_data._dataset))
    return dataset, test_data, trainer


def test_each_test_row_becomes_one_state_per_turn(turned):
    dataset, test_data, _ = turned
    inter = test_data._dataset.inter_feat
    users = [dataset.id2token("user_id", u) for u in inter["user_id"].tolist()]
    confirmed = [[dataset.id2token("attributes", a) for a in row if a] for row in inter["confirmed_attributes"].tolist()]
    rejected = [[dataset.id2token("item_id", i) for i in row if i] for row in inter["rejected_items"].tolist()]
    states = list(zip(users, inter[TURN_FIELD].tolist(), inter[LAST_TURN_FIELD].tolist(), confirmed, rejected))
    assert sorted(states) == sorted([
        ("u1", 1, False, ["a"], []), ("u1", 2, False, ["a"], ["i1"]), ("u1", 3, True, ["a", "c"], ["i1"]),
        ("u2", 1, False, ["c"], []), ("u2", 2, True, ["c", "a"], []),
        ("u3", 1, False, ["a"], []), ("u3", 2, True, ["a"], ["i1", "i5"]),
        ("u4", 1, False, ["b"], []), ("u4", 2, False, ["b"], ["i6"]), ("u4", 3, True, ["b", "c"], ["i6"]),
    ])


def test_the_model_reads_only_what_was_said_up_to_each_turn(turned):
    dataset, test_data, trainer = turned
    RecordingFixedOrder.seen.clear()
    trainer.evaluate(test_data, load_best_model=False, crs_candidates="confirmed")
    seen = {k: torch.cat([batch[k] for batch in RecordingFixedOrder.seen]) for k in ("user_id", TURN_FIELD)}
    confirmed = torch.cat([batch["confirmed_attributes"] for batch in RecordingFixedOrder.seen])
    u1_turn1 = (seen["user_id"] == dataset.token2id("user_id", "u1")) & (seen[TURN_FIELD] == 1)
    assert confirmed[u1_turn1].tolist() == [[dataset.token2id("attributes", "a"), 0]]


def test_confirmed_mode_scores_every_turn_with_its_own_candidates(turned):
    _, test_data, trainer = turned
    result = trainer.evaluate(test_data, load_best_model=False, crs_candidates="confirmed")
    ranks = {"turn1": [2, 2, 0, 1], "last": [0, 0, 0, 0], "all": [2, 1, 0, 2, 0, 0, 0, 1, 0, 0]}
    sizes = {"turn1": [3, 3, 3, 3], "last": [1, 1, 1, 1], "all": [3, 2, 1, 3, 1, 3, 1, 3, 2, 1]}
    for scope, prefix in (("all", ""), ("turn1", "turn1/"), ("last", "last/")):
        hit1 = sum(r < 1 for r in ranks[scope]) / len(ranks[scope])
        assert result[prefix + "hit@1"] == pytest.approx(hit1, abs=1e-6), scope
        chance = sum(1 / n for n in sizes[scope]) / len(sizes[scope])
        assert result["chance/" + prefix + "hit@1"] == pytest.approx(chance, abs=1e-6), scope
    by_turn = trainer.results_by_turn["confirmed"]
    assert [by_turn[t]["states"] for t in (1, 2, 3)] == [4, 4, 2]
    assert by_turn[2]["hit@1"] == pytest.approx(3 / 4, abs=1e-6)  # u1 rank 1, u2 0, u3 0, u4 0


def test_first_mode_keeps_the_initial_attributes_items_at_every_turn(turned):
    _, test_data, trainer = turned
    result = trainer.evaluate(test_data, load_best_model=False, crs_candidates="first")
    # first: u1 {i1,i2,i5} rank 2 (x3 turns), u2 {i3,i4,i5} rank 2 (x2), u3 {i1,i2,i5} rank 0 (x2), u4 {i1,i3,i6} rank 1 (x3)
    assert result["hit@1"] == pytest.approx(2 / 10, abs=1e-6)
    assert result["chance/hit@1"] == pytest.approx(1 / 3, abs=1e-6)


def test_constant_scorer_gets_the_chance_level_in_every_mode_and_turn(tiny_root):
    add_turn_columns(tiny_root)
    config, _, (_, _, test_data) = build(tiny_root)

    class Constant(FixedOrder):
        def full_sort_predict(self, interaction):
            return torch.zeros(len(interaction), self.n_items)

    trainer = get_trainer(config["MODEL_TYPE"], "SASRec")(config, Constant(config, test_data._dataset))
    for mode, result in trainer.evaluate_modes(test_data, ["all", "first", "confirmed"], load_best_model=False).items():
        for key, value in result.items():
            if not key.startswith("chance/"):
                assert value == pytest.approx(result["chance/" + key], abs=1e-6), (mode, key)
    assert result["chance/hit@1"] < 1  # confirmed mode: not trivially 1 (turns before the last have 3 candidates)


def test_without_turn_columns_each_conversation_is_one_turn(tiny_root):
    _, _, (_, _, test_data) = build(tiny_root)
    inter = test_data._dataset.inter_feat
    assert len(inter) == 4 and inter[TURN_FIELD].tolist() == [1] * 4 and inter[LAST_TURN_FIELD].all()


@pytest.mark.parametrize(
    "turns_of, message",
    [
        (lambda u, t, turns: ("1", turns[1]) if (u, t) == ("u1", 4) else turns, "do not have one turn per entry of 'confirmed_attributes'"),
        (lambda u, t, turns: ("3 1", turns[1]) if (u, t) == ("u1", 4) else turns, "decrease along the list"),
        (lambda u, t, turns: ("2 3", turns[1]) if (u, t) == ("u1", 4) else turns, "do not start at turn 1"),
        (lambda u, t, turns: ("1 2.5", turns[1]) if (u, t) == ("u1", 4) else turns, "not whole numbers"),
        (lambda u, t, turns: (turns[0], "") if (u, t) == ("u1", 4) else turns, "one turn per entry of 'rejected_items'"),
    ],
)
def test_malformed_turns_are_rejected_before_training(tiny_root, turns_of, message):
    add_turn_columns(tiny_root, turns_of)
    with pytest.raises(CRSDataError, match=message + ".*fix the column or drop both turn columns"):
        build(tiny_root)


def test_one_turn_column_without_the_other_is_rejected(tiny_root):
    path = os.path.join(tiny_root, "tiny-crs", "tiny-crs.inter")
    add_turn_columns(tiny_root)
    lines = [line.rsplit("\t", 1)[0] for line in open(path).read().splitlines()]  # drop rejected_turns
    open(path, "w").write("\n".join(lines) + "\n")
    with pytest.raises(CRSDataError, match="has turn column 'confirmed_turns' but not 'rejected_turns'"):
        build(tiny_root)
