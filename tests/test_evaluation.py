"""Conversation-aware evaluation on the tiny dataset, where every rank is known by hand.

A stub model scores items in a fixed order: i6 > i4 > i3 > i2 > i1 > i5. Test rows (tests/tiny_data.py):

    u1: target i5, confirmed [a, c], rejected [i1]    all: rank 6   first (a): {i1,i2,i5} rank 3   confirmed: {i5} rank 1
    u2: target i5, confirmed [c, a]                    all: rank 6   first (c): {i3,i4,i5} rank 3   confirmed: {i5} rank 1
    u3: target i2, confirmed [a], rejected [i1, i5]    all: rank 4   first (a): {i1,i2,i5} rank 1   confirmed: {i2} rank 1
    u4: target i3, confirmed [b, c], rejected [i6]     all: rank 3   first (b): {i1,i3,i6} rank 2   confirmed: {i3} rank 1
"""

import os

import pytest
import torch
from recbole.data import data_preparation
from recbole.model.abstract_recommender import SequentialRecommender

from recbole_crs.config import Config
from recbole_crs.data.dataset import CRSDataset
from recbole_crs.evaluation import CandidateFilter
from recbole_crs.trainer import get_trainer

PREFERENCE = ["i5", "i1", "i2", "i3", "i4", "i6"]  # ascending score


class FixedOrder(SequentialRecommender):
    """Scores every item by a fixed preference, whatever the input."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        scores = torch.zeros(dataset.item_num)
        for rank, item in enumerate(PREFERENCE, start=1):
            scores[dataset.token2id("item_id", item)] = float(rank)
        self.register_buffer("item_scores", scores)
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def full_sort_predict(self, interaction):
        return self.item_scores.expand(len(interaction), -1).clone()


@pytest.fixture
def setup(tiny_config_dict):
    config = Config("SASRec", "tiny-crs", config_dict={**tiny_config_dict, "metrics": ["Hit", "MRR"]})
    dataset = CRSDataset(config)
    _, _, test_data = data_preparation(config, dataset)
    model = FixedOrder(config, test_data._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], "SASRec")(config, model)
    return dataset, test_data, trainer


def test_each_mode_ranks_the_target_among_its_own_candidates(setup):
    _, test_data, trainer = setup
    results = trainer.evaluate_modes(test_data, ["all", "first", "confirmed"], load_best_model=False)
    assert results["all"]["hit@1"] == 0.0 and results["all"]["hit@3"] == 0.25
    assert results["all"]["mrr@3"] == pytest.approx((1 / 3) / 4, abs=1e-4)
    assert results["first"]["hit@1"] == 0.25 and results["first"]["hit@3"] == 1.0
    assert results["first"]["mrr@3"] == pytest.approx((1 / 3 + 1 / 3 + 1 + 1 / 2) / 4, abs=1e-4)
    assert results["confirmed"]["hit@1"] == 1.0 and results["confirmed"]["mrr@3"] == 1.0


def test_filter_masks_exactly_the_items_the_conversation_allows(setup):
    dataset, test_data, _ = setup
    interaction = next(iter(test_data))[0]
    users = [dataset.id2token("user_id", u) for u in interaction["user_id"].tolist()]
    expected = {
        "first": {"u1": {"i1", "i2", "i5"}, "u2": {"i3", "i4", "i5"}, "u3": {"i1", "i2", "i5"}, "u4": {"i1", "i3", "i6"}},
        "confirmed": {"u1": {"i5"}, "u2": {"i5"}, "u3": {"i2"}, "u4": {"i3"}},
    }
    for mode, allowed_by_user in expected.items():
        allowed = CandidateFilter(test_data._dataset, mode, torch.device("cpu"))(interaction)
        for row, user in enumerate(users):
            got = {dataset.id2token("item_id", i) for i in allowed[row].nonzero().flatten().tolist()}
            assert got == allowed_by_user[user], (mode, user)
    everything = CandidateFilter(test_data._dataset, "all", torch.device("cpu"))(interaction)
    assert everything[:, 1:].all() and not everything[:, 0].any()  # every item but the padding one


def test_unknown_mode_is_rejected(setup):
    _, test_data, trainer = setup
    with pytest.raises(ValueError, match="crs_candidates .best.*all, first, confirmed, authors"):
        trainer.evaluate(test_data, load_best_model=False, crs_candidates="best")


def test_candidate_modes_need_full_ranking(tiny_config_dict):
    config = Config("SASRec", "tiny-crs", config_dict={
        **tiny_config_dict, "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "uni3"}})
    dataset = CRSDataset(config)
    _, _, test_data = data_preparation(config, dataset)
    trainer = get_trainer(config["MODEL_TYPE"], "SASRec")(config, FixedOrder(config, test_data._dataset))
    with pytest.raises(ValueError, match="needs full ranking"):
        trainer.evaluate(test_data, load_best_model=False, crs_candidates="confirmed")


def test_authors_mode_ranks_target_against_its_candidate_list(tiny_root):
    """Candidate lists per test row; the fixed order i6 > i4 > i3 > i2 > i1 > i5 gives known strict ranks."""
    import os

    candidates = {"u1": "i2 i3", "u2": "i1", "u3": "i6 i4 i5", "u4": ""}  # u4: no candidates -> rank 0
    path = os.path.join(tiny_root, "tiny-crs", "tiny-crs.inter")
    lines = open(path).read().splitlines()
    out = [lines[0] + "\tcandidate_items:token_seq"]
    for line in lines[1:]:
        user, _, t = line.split("\t")[:3]
        out.append(line + "\t" + (candidates[user] if t == "4" else ""))
    open(path, "w").write("\n".join(out) + "\n")

    from tiny_data import tiny_config

    config = Config("SASRec", "tiny-crs", config_dict=tiny_config(tiny_root))
    dataset = CRSDataset(config)
    _, _, test_data = data_preparation(config, dataset)
    trainer = get_trainer(config["MODEL_TYPE"], "SASRec")(config, FixedOrder(config, test_data._dataset))
    result = trainer.evaluate(test_data, load_best_model=False, crs_candidates="authors")
    ranks = {"u1": 2, "u2": 1, "u3": 2, "u4": 0}  # i5 < i2,i3; i5 < i1; i2 < i6,i4 (> i5); nothing to beat
    assert result["mrr@3"] == pytest.approx(sum(1 / (r + 1) for r in ranks.values()) / 4, abs=1e-6)
    sizes = {"u1": 3, "u2": 2, "u3": 4, "u4": 1}  # the list plus the target
    assert result["chance/hit@1"] == pytest.approx(sum(1 / n for n in sizes.values()) / 4, abs=1e-6)


def test_authors_mode_without_candidate_column_says_how_to_add_it(setup):
    _, test_data, trainer = setup
    with pytest.raises(ValueError, match="no 'candidate_items' column.*--candidates 100"):
        trainer.evaluate(test_data, load_best_model=False, crs_candidates="authors")


def test_any_mix_of_test_modes_runs_end_to_end_and_formats_one_table(tiny_root):
    """`authors` used to report other metrics than the other modes, and the results table crashed on the mix."""
    import os

    from recbole_crs.evaluation import format_results_table
    from recbole_crs.quick_start import run_recbole_crs
    from tiny_data import tiny_config

    path = os.path.join(tiny_root, "tiny-crs", "tiny-crs.inter")
    lines = open(path).read().splitlines()
    out = [lines[0] + "\tcandidate_items:token_seq"]
    out += [line + "\t" + ("i1 i2 i3" if line.split("\t")[2] in ("3", "4") else "") for line in lines[1:]]
    open(path, "w").write("\n".join(out) + "\n")
    config = tiny_config(tiny_root, epochs=1, crs_test_modes=["all", "authors", "confirmed"])
    result = run_recbole_crs(model="SASRec", dataset="tiny-crs", config_dict=config)
    assert list(result["test_results"]) == ["all", "authors", "confirmed"]
    assert {tuple(r) for r in result["test_results"].values()} == {tuple(result["test_results"]["all"])}
    table = format_results_table(result["test_results"])
    assert table.count("| authors |") == 6 and "| chance |" in table
    assert set(result["test_results_by_turn"]) == {"all", "authors", "confirmed"}


def test_a_misspelt_test_mode_fails_before_training(tiny_root):
    from recbole_crs.quick_start import run_recbole_crs
    from tiny_data import tiny_config

    config = tiny_config(tiny_root, crs_test_modes=["all", "confirmd"])
    with pytest.raises(ValueError, match="crs_candidates 'confirmd' is not a candidate mode"):
        run_recbole_crs(model="SASRec", dataset="tiny-crs", config_dict=config)
    assert not os.path.exists(os.path.join(tiny_root, "saved")) or not os.listdir(os.path.join(tiny_root, "saved"))
