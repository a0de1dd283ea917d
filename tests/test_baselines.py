"""Conversation-aware baselines: Pop with exact counts, and EAR's factorisation machine (AttrFM)."""

import re
from types import SimpleNamespace

import pytest
import torch
from recbole.data import data_preparation
from recbole.data.interaction import Interaction
from recbole.model.general_recommender.pop import Pop as RecBolePop
from recbole.utils import init_seed

from recbole_crs.config import PROPERTIES_DIR, Config, get_model
from recbole_crs.data.windows import materialize
from recbole_crs.model.attrfm import AttrFM
from recbole_crs.model.pop import Pop
from recbole_crs.quick_start import build_model, create_dataset, run_recbole_crs
from recbole_crs.trainer import get_trainer
from tiny_data import ITEM_ATTRIBUTES, isolated_run_dir, tiny_config, write_tiny_dataset

# Leave-one-out on tests/tiny_data.py: each user's last two interactions are test and valid, the first
# three are training interactions: u1 i1 i2 i3, u2 i2 i3 i1, u3 i4 i5 i3, u4 i6 i3 i5.
TRAINING_COUNTS = {"i1": 2, "i2": 2, "i3": 4, "i4": 1, "i5": 2, "i6": 1}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("baselines")
    write_tiny_dataset(str(root))
    with isolated_run_dir(str(root)):
        yield root


def prepare(root, model, **overrides):
    config = Config(model=model, dataset="tiny-crs", config_dict=tiny_config(root, **overrides))
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    return SimpleNamespace(config=config, dataset=dataset, train=train, valid=valid, test=test)


def item_id(dataset, token):
    return dataset.field2token_id[dataset.iid_field][token]


def attribute_id(dataset, token):
    return dataset.field2token_id[dataset.attribute_field][token]


def rows_of(dataloader):
    rows = materialize(dataloader._dataset.inter_feat)  # with history_windows: lazy, the list fields too
    return Interaction({field: value.clone() for field, value in rows.interaction.items()})


# ---------------------------------------------------------------------------------------------- Pop
def expected_counts(dataset):
    counts = torch.zeros(dataset.item_num)
    for token, count in TRAINING_COUNTS.items():
        counts[item_id(dataset, token)] = count
    return counts


def test_plugin_pop_shadows_recbole_pop():
    assert get_model("Pop") is Pop


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_pop_scores_are_exact_training_counts_at_any_batch_size(tiny_root, batch_size):
    data = prepare(tiny_root, "Pop", train_batch_size=batch_size)
    model = build_model(data.config, data.train)
    trainer = get_trainer(type(model).type, "Pop")(data.config, model)
    trainer.fit(data.train, data.valid, saved=False, verbose=False)
    test_rows = rows_of(data.test)
    scores = model.full_sort_predict(test_rows)  # [B, n_items]
    assert scores.shape == (len(test_rows), data.dataset.item_num)
    assert torch.equal(scores, expected_counts(data.dataset).expand_as(scores))
    assert torch.equal(model.predict(test_rows), scores[torch.arange(len(test_rows)), test_rows["item_id"]])


def test_recbole_pop_undercounts_items_repeated_in_a_batch_and_ours_does_not(tiny_root):
    recbole_counts = {}
    for batch_size in (1, 64):
        data = prepare(tiny_root, "Pop", train_batch_size=batch_size)
        recbole_pop = RecBolePop(data.config, data.train._dataset)
        for batch in data.train:
            recbole_pop.calculate_loss(batch)
        recbole_counts[batch_size] = recbole_pop.item_cnt.squeeze(1).float()
    # i3 is the target of four training rows; in one batch of 64 RecBole counts it once.
    i3 = item_id(data.dataset, "i3")
    assert recbole_counts[1][i3] == 4 and recbole_counts[64][i3] == 1
    assert not torch.equal(recbole_counts[1], recbole_counts[64])
    # RecBole also never counts a user's first interaction (it is never a target row).
    assert recbole_counts[1][item_id(data.dataset, "i4")] == 0
    assert torch.equal(Pop(data.config, data.train._dataset).item_cnt.float(), expected_counts(data.dataset))


# ---------------------------------------------------------------------------------------------- AttrFM
@pytest.fixture(scope="module")
def attr_data(tiny_root):
    return prepare(tiny_root, "AttrFM", embedding_size=4)


def attr_model(data, **overrides):
    config = data.config
    if overrides:
        config_dict = tiny_config(data.config["data_path"], embedding_size=4, **overrides)
        config = Config(model="AttrFM", dataset="tiny-crs", config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    return AttrFM(config, data.train._dataset)


def one_row(data, user, confirmed, item):
    return Interaction({
        "user_id": torch.tensor([data.dataset.field2token_id["user_id"][user]]),
        "confirmed_attributes": torch.tensor([[attribute_id(data.dataset, a) if a else 0 for a in confirmed]], dtype=torch.long),
        "item_id": torch.tensor([item_id(data.dataset, item)]),
    })


def test_score_is_user_item_plus_item_confirmed_attributes(attr_data):
    model = attr_model(attr_data)
    u = torch.tensor([1.0, 0.0, 2.0, 0.0])
    v = torch.tensor([0.5, 1.0, -1.0, 3.0])
    a = torch.tensor([2.0, 0.0, 0.0, 1.0])
    c = torch.tensor([0.0, -1.0, 1.0, 0.0])
    with torch.no_grad():
        model.user_embedding.weight[attr_data.dataset.field2token_id["user_id"]["u1"]] = u
        model.item_embedding.weight[item_id(attr_data.dataset, "i5")] = v
        model.attribute_embedding.weight[attribute_id(attr_data.dataset, "a")] = a
        model.attribute_embedding.weight[attribute_id(attr_data.dataset, "c")] = c
    score = model.predict(one_row(attr_data, "u1", ["a", "c"], "i5"))
    # u·v + v·a + v·c = (0.5 - 2) + (1 + 3) + (-1 - 1) = 0.5
    assert score.item() == pytest.approx(0.5)
    assert model.predict(one_row(attr_data, "u1", [], "i5")).item() == pytest.approx(-1.5)


def test_full_sort_predict_equals_predict_for_every_item(attr_data):
    model = attr_model(attr_data)
    rows = rows_of(attr_data.test)
    full = model.full_sort_predict(rows)  # [B, n_items]
    assert full.shape == (len(rows), attr_data.dataset.item_num)
    for item in range(1, attr_data.dataset.item_num):
        rows["item_id"] = torch.full((len(rows),), item)
        assert torch.allclose(model.predict(rows), full[:, item], atol=1e-6)


def test_padding_attributes_change_nothing(attr_data):
    model = attr_model(attr_data)
    rows = rows_of(attr_data.test)
    padded = rows_of(attr_data.test)
    confirmed = rows["confirmed_attributes"]
    padded["confirmed_attributes"] = torch.cat([torch.zeros_like(confirmed), confirmed, torch.zeros_like(confirmed)], 1)
    assert torch.allclose(model.full_sort_predict(rows), model.full_sort_predict(padded))
    assert torch.count_nonzero(model.attribute_embedding.weight[0]) == 0
    assert torch.count_nonzero(model.item_embedding.weight[0]) == 0


def items_with(dataset, attributes):
    return {item_id(dataset, item) for item, attrs in ITEM_ATTRIBUTES.items() if set(attributes) <= set(attrs)}


@pytest.mark.parametrize("confirmed,target,expected", [
    (["a"], "i2", {"i1", "i5"}),
    (["c", "b"], "i4", {"i3"}),
    (["c"], "i5", {"i3", "i4"}),
    (["a", "b"], "i1", None),  # only the target holds both: uniform fallback
    ([], "i3", None),  # no conversation: every item qualifies
])
def test_hard_negatives_hold_every_confirmed_attribute_and_are_never_the_target(attr_data, confirmed, target, expected):
    model = attr_model(attr_data)
    dataset = attr_data.dataset
    row = one_row(attr_data, "u1", confirmed + [0], target)
    confirmed_ids = row["confirmed_attributes"].repeat(200, 1)
    targets = row["item_id"].repeat(200)
    negatives = set(model.hard_negatives(confirmed_ids, targets, 3).flatten().tolist())
    if expected is None:
        expected = set(ITEM_ATTRIBUTES) - {target}
    assert negatives == {item_id(dataset, item) for item in expected}


def test_hard_negatives_on_training_rows(attr_data):
    model = attr_model(attr_data)
    rows = rows_of(attr_data.train)
    negatives = model.hard_negatives(rows["confirmed_attributes"], rows["item_id"], 20)  # [B, 20]
    mask = attr_data.dataset.attribute_item_mask
    for confirmed, target, sampled in zip(rows["confirmed_attributes"], rows["item_id"], negatives):
        assert not (sampled == target).any() and (sampled > 0).all()
        qualifying = mask[confirmed[confirmed > 0]].all(dim=0)
        qualifying[target] = False
        if qualifying[1:].any():
            assert qualifying[sampled].all()


def test_rejected_items_are_extra_negatives_only_when_asked(attr_data):
    rows = rows_of(attr_data.train)
    plain = attr_model(attr_data)._item_negatives(rows, rows["item_id"])
    assert plain.shape == (len(rows), 2)  # one uniform + one hard by default
    with_rejected = attr_model(attr_data, use_rejected_negatives=True)._item_negatives(rows, rows["item_id"])
    assert torch.equal(with_rejected[:, 2:], rows["rejected_items"])


def test_attribute_pairs_hold_and_lack(attr_data):
    model = attr_model(attr_data)
    targets = torch.arange(1, attr_data.dataset.item_num).repeat(20)
    pos_attr, neg_attr, valid = model.attribute_pairs(targets)
    mask = attr_data.dataset.attribute_item_mask
    assert valid.all()
    assert mask[pos_attr, targets].all() and not mask[neg_attr, targets].any() and (neg_attr > 0).all()


def train_steps(data, steps=40, **overrides):
    model = attr_model(data, **overrides)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    rows = rows_of(data.train)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model.calculate_loss(rows)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model, losses


def test_loss_decreases_and_training_is_deterministic_with_a_seed(attr_data):
    model, losses = train_steps(attr_data)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    again, losses_again = train_steps(attr_data)
    assert losses == losses_again
    for p, q in zip(model.parameters(), again.parameters()):
        assert torch.equal(p, q)
    # padding stays the zero vector through training
    assert torch.count_nonzero(model.attribute_embedding.weight[0]) == 0


def test_every_attrfm_key_is_documented_in_its_yaml():
    with open(f"{PROPERTIES_DIR}/model/AttrFM.yaml") as f:
        lines = [line for line in f if re.match(r"^\w+:", line)]
    keys = {line.split(":")[0] for line in lines}
    assert {"embedding_size", "n_uniform_negatives", "n_hard_negatives", "use_rejected_negatives",
            "attribute_loss_weight", "reg_weight"} <= keys
    assert all("# " in line for line in lines)


def test_attrfm_runs_end_to_end(tiny_root):
    config = tiny_config(tiny_root, epochs=2, embedding_size=8)
    result = run_recbole_crs(model="AttrFM", dataset="tiny-crs", config_dict=config)
    assert set(result["test_results"]) == {"all", "first", "confirmed"}
    assert all(result["test_results"].values())
