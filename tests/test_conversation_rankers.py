"""Rankers (recbole_crs/conversation/rankers.py): every model reads what it reads in evaluation, from the
conversation's state and the user's training history, in one batched call."""

import pytest
import torch
from recbole.data import data_preparation
from recbole.data.interaction import Interaction
from recbole.utils import init_seed

from recbole_crs.config import Config
from recbole_crs.conversation.environment import ConversationView
from recbole_crs.conversation.histories import training_histories
from recbole_crs.conversation.rankers import ModelRanker
from recbole_crs.quick_start import build_model, create_dataset
from tiny_data import isolated_run_dir, tiny_config, write_tiny_dataset


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rankers")
    write_tiny_dataset(str(folder))
    with isolated_run_dir(str(folder)):
        yield folder


def ranker_of(root, model, **overrides):
    config = Config(model=model, dataset="tiny-crs", config_dict=tiny_config(root, **overrides))
    init_seed(config["seed"], config["reproducibility"])
    data = create_dataset(config)
    train, _, _ = data_preparation(config, data)
    histories = training_histories(train._dataset, data.user_num, data.max_item_list_len)
    return ModelRanker(build_model(config, train), data, histories), data


def view(data, users, accepted, rejected_items=((0,),)):
    users = torch.tensor([data.token2id(data.uid_field, u) for u in users])
    attributes = torch.tensor([[data.token2id(data.attribute_field, a) if a else 0 for a in row] for row in accepted])
    return ConversationView(torch.arange(len(users)), users=users, accepted=attributes,
                            rejected_items=torch.tensor(rejected_items).expand(len(users), -1))


def test_sequential_model_reads_the_training_history_only(root):
    ranker, data = ranker_of(root, "SASRec")
    scores = ranker.scores(view(data, ["u1", "u1", "u2"], [["a", 0], ["b", "c"], ["a", 0]]))
    assert scores.shape == (3, data.item_num)
    assert torch.allclose(scores[0], scores[1])  # accepted attributes are no input of SASRec
    assert not torch.allclose(scores[0], scores[2])  # another user, another history
    u1 = data.token2id(data.uid_field, "u1")
    history = torch.tensor([[data.token2id(data.iid_field, i) for i in ("i1", "i2", "i3")] + [0, 0]])
    ranker.model.eval()  # no dropout, as the ranker scores
    expected = ranker.model.full_sort_predict(Interaction({
        "user_id": torch.tensor([u1]), "item_id_list": history, "item_length": torch.tensor([3])}))
    assert torch.allclose(scores[0], expected.reshape(-1))


def test_attrfm_reads_user_and_accepted_attributes(root):
    ranker, data = ranker_of(root, "AttrFM")
    scores = ranker.scores(view(data, ["u1", "u1"], [["a", 0], ["a", "c"]]))
    model = ranker.model
    u1 = data.token2id(data.uid_field, "u1")
    a, c = (data.token2id(data.attribute_field, t) for t in ("a", "c"))
    query = model.user_embedding.weight[u1] + model.attribute_embedding.weight[a] + model.attribute_embedding.weight[c]
    assert torch.allclose(scores[1], (model.item_embedding.weight @ query).detach(), atol=1e-5)
    assert not torch.allclose(scores[0], scores[1])


def test_crsfinetune_reads_history_and_accepted_attributes(root):
    # untrained and without a generator: the paper's model (the history prior is CRSFinetune's, test_finetune_inputs)
    ranker, data = ranker_of(root, "CRSFinetune", history_prior_weight=0)
    scores = ranker.scores(view(data, ["u1", "u1", "u1"], [["a", 0], ["a", "c"], ["c", "a"]]))
    assert not torch.allclose(scores[0], scores[1])
    assert torch.allclose(scores[1], scores[2], atol=1e-5)  # the attribute Transformer reads a set
    again = ranker.scores(view(data, ["u1", "u1", "u1"], [["a", 0], ["a", "c"], ["c", "a"]]))
    assert torch.equal(scores, again) and ranker.model.training  # scored without dropout, the mode left as found


def test_pop_scores_are_training_counts(root):
    ranker, data = ranker_of(root, "Pop")
    scores = ranker.scores(view(data, ["u3"], [["b", 0]]))
    assert scores[0, data.token2id(data.iid_field, "i3")] == 4  # i3: 4 training interactions (test_baselines)
