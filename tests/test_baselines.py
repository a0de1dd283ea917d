"""Conversation-aware baselines: Pop with exact counts."""

import sys
from types import SimpleNamespace

import pytest
import torch
import recbole.trainer.trainer as recbole_trainer
from recbole.data import data_preparation
from recbole.data.interaction import Interaction
from recbole.model.general_recommender.pop import Pop as RecBolePop
from recbole.utils import init_seed
from torch.utils.tensorboard import SummaryWriter

from recbole_crs.config import Config
from recbole_crs.model.pop import Pop
from recbole_crs.quick_start import build_model, create_dataset
from recbole_crs.utils import get_model, get_trainer
from tiny_data import tiny_config, write_tiny_dataset

# Leave-one-out on tests/tiny_data.py: each user's last two interactions are test and valid, the first
# three are training interactions: u1 i1 i2 i3, u2 i2 i3 i1, u3 i4 i5 i3, u4 i6 i3 i5.
TRAINING_COUNTS = {"i1": 2, "i2": 2, "i3": 4, "i4": 1, "i5": 2, "i6": 1}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("baselines")
    write_tiny_dataset(str(root))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setattr(sys, "argv", [sys.argv[0]])
        # RecBole's trainers write tensorboard logs on a cwd-relative path from a background thread.
        patch.setattr(recbole_trainer, "get_tensorboard", lambda logger: SummaryWriter(str(root / "log_tensorboard")))
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
    rows = dataloader._dataset.inter_feat
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
