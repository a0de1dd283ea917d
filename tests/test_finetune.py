"""CRSFinetune: inputs (no target leakage, padding), losses, pre-trained checkpoint loading, trainer."""

import sys
from types import SimpleNamespace

import pytest
import torch
import recbole.trainer.trainer as recbole_trainer
from recbole.data import data_preparation
from recbole.data.interaction import Interaction
from recbole.utils import init_seed
from torch.utils.tensorboard import SummaryWriter

from recbole_crs.config import Config
from recbole_crs.model.crsfinetune import CRSFinetune, PretrainedCheckpointError
from recbole_crs.model.crspretrain import CRSPretrain
from recbole_crs.quick_start import create_dataset, run_recbole_crs
from recbole_crs.trainer.pretrain import CRSFinetuneTrainer
from tiny_data import ITEM_ATTRIBUTES, USER_SEQUENCES, tiny_config, write_tiny_dataset

FAST = {"epochs": 2, "train_batch_size": 4, "pretrain_epochs": 1, "generator_epochs": 1}


def crs_config(root, model="CRSFinetune", dataset="tiny-crs", **overrides):
    config_dict = tiny_config(root, **FAST)
    config_dict.update(overrides)
    return Config(model=model, dataset=dataset, config_dict=config_dict)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("crsfinetune")
    write_tiny_dataset(str(root))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setattr(sys, "argv", [sys.argv[0]])
        # RecBole's trainers open a tensorboard writer on a cwd-relative path that a background thread flushes
        # later, possibly after the cwd has moved back to the repo: give them an absolute tmp path instead.
        patch.setattr(recbole_trainer, "get_tensorboard", lambda logger: SummaryWriter(str(root / "log_tensorboard")))
        config = crs_config(root)
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        train, valid, test = data_preparation(config, dataset)
        yield SimpleNamespace(root=root, config=config, dataset=dataset, train=train, valid=valid, test=test)


def rows_of(dataloader):
    rows = dataloader._dataset.inter_feat
    return Interaction({field: value.clone() for field, value in rows.interaction.items()})


def pretrained_checkpoint(tiny):
    """A CRSPretrain checkpoint for the tiny dataset (untrained weights are enough to test loading)."""
    config = crs_config(tiny.root, model="CRSPretrain")
    model = CRSPretrain(config, tiny.dataset)
    return {"config": config, "state_dict": model.state_dict()}, model


# ---------------------------------------------------------------------------------------------- inputs
def test_target_never_reaches_its_own_history_input(tiny):
    model = CRSFinetune(tiny.config, tiny.dataset).eval()
    seen = []
    model.encoder.item_embedding.register_forward_pre_hook(
        lambda m, a: seen.append(a[0].clone()) if a[0].dim() == 2 and a[0].size(1) > 1 else None
    )
    for rows in (rows_of(tiny.train), rows_of(tiny.test)):
        seen.clear()
        scores = model.full_sort_predict(rows)
        history, length = rows["item_id_list"], rows["item_length"]
        batch = torch.arange(len(rows))
        (ids,) = seen
        # exactly: the history, then [MASK] where the target would be, then padding
        assert (ids[batch, length] == model.encoder.mask_token).all()
        in_history = torch.arange(history.size(1)).unsqueeze(0) < length.unsqueeze(1)  # [B, L]
        assert torch.equal(ids[:, :-1][in_history], history[in_history])
        assert (ids[torch.arange(ids.size(1)).unsqueeze(0) > length.unsqueeze(1)] == 0).all()
        # and the output does not depend on the target id at all
        rows["item_id"] = rows["item_id"] % (model.n_items - 1) + 1
        assert torch.equal(model.full_sort_predict(rows), scores)


def test_padding_changes_no_output(tiny):
    model = CRSFinetune(tiny.config, tiny.dataset).eval()
    rows = rows_of(tiny.train)  # histories of 1-2 items: most positions are padding
    expected = model.full_sort_predict(rows)

    seq, length = rows["item_id_list"], rows["item_length"]
    padded = torch.arange(seq.size(1)).unsqueeze(0) >= length.unsqueeze(1)
    assert padded.any()
    seq[padded] = torch.randint(1, model.n_items, (int(padded.sum()),))
    confirmed = rows["confirmed_attributes"]
    rows["confirmed_attributes"] = torch.cat([confirmed, torch.zeros_like(confirmed)], dim=1)  # more pad slots
    with torch.no_grad():
        model.encoder.item_embedding.weight[0].normal_()
        model.encoder.attribute_embedding.weight[0].normal_()
    # column 0 is the padding id (its score is never used: RecBole sets it to -inf)
    assert torch.allclose(model.full_sort_predict(rows)[:, 1:], expected[:, 1:], atol=1e-6)


def test_full_sort_predict_scores_every_item_and_masks_nothing(tiny):
    model = CRSFinetune(tiny.config, tiny.dataset).eval()
    rows = rows_of(tiny.valid)
    scores = model.full_sort_predict(rows)
    assert scores.shape == (len(rows), model.n_items) and torch.isfinite(scores).all()
    one = model.predict(rows)
    assert torch.allclose(one, scores[torch.arange(len(rows)), rows["item_id"]], atol=1e-6)


# ---------------------------------------------------------------------------------------------- losses
def test_bpr_uses_rejected_items_as_negatives_and_skips_padding(tiny):
    model = CRSFinetune(crs_config(tiny.root, loss_type="BPR"), tiny.dataset)
    user_state = torch.randn(2, model.hidden_size)
    pos = torch.tensor([1, 2])
    negatives = torch.tensor([[3, 4, 0], [5, 0, 0]])
    loss = model._pairwise_loss(user_state, pos, negatives)
    scores = model.encoder.score_all_items(user_state)
    terms = [scores[0, 1] - scores[0, 3], scores[0, 1] - scores[0, 4], scores[1, 2] - scores[1, 5]]
    expected = -torch.nn.functional.logsigmoid(torch.stack(terms)).mean()
    assert torch.allclose(loss, expected)

    seen = []
    original = model._pairwise_loss
    model._pairwise_loss = lambda u, p, n: seen.append(n) or original(u, p, n)
    rows = rows_of(tiny.train)
    model.calculate_loss(rows)
    (negatives,) = seen
    assert torch.equal(negatives[:, 1:], rows["rejected_items"])  # 1 sampled + the rejected ones
    assert not (negatives[:, :1] == rows["item_id"].unsqueeze(1)).any()


@pytest.mark.parametrize("loss_type", ["CE", "BPR"])
def test_finetuning_loss_decreases(tiny, loss_type):
    config = crs_config(tiny.root, loss_type=loss_type, learning_rate=0.02, epochs=8)
    init_seed(config["seed"], config["reproducibility"])
    trainer = CRSFinetuneTrainer(config, CRSFinetune(config, tiny.dataset))
    losses = [trainer._train_epoch(tiny.train, epoch) for epoch in range(8)]
    assert sum(losses[-3:]) < 0.7 * sum(losses[:3])


# ---------------------------------------------------------------------------------------------- checkpoints
def test_pretrained_encoders_load_into_finetuning(tiny, tmp_path):
    checkpoint, pretrained = pretrained_checkpoint(tiny)
    torch.save(checkpoint, tmp_path / "pre.pth")
    model = CRSFinetune(crs_config(tiny.root, pretrained_path=str(tmp_path / "pre.pth")), tiny.dataset)
    for name, tensor in pretrained.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[name], tensor), name
    scratch = CRSFinetune(tiny.config, tiny.dataset)
    assert not torch.equal(scratch.encoder.item_embedding.weight, pretrained.encoder.item_embedding.weight)


def test_mismatched_pretrained_checkpoints_give_clear_errors(tiny, tmp_path):
    checkpoint, _ = pretrained_checkpoint(tiny)
    model = CRSFinetune(tiny.config, tiny.dataset)

    other = dict(checkpoint, config={**tiny.config.final_config_dict, "dataset": "ml-100k-crs"})
    with pytest.raises(PretrainedCheckpointError, match="pre-trained on dataset 'ml-100k-crs'"):
        model.load_pretrained(other)

    # the same dataset name, but a version with one more item
    root = tmp_path / "bigger"
    items = dict(ITEM_ATTRIBUTES, i7=["a"])
    users = dict(USER_SEQUENCES, u5=[("i7", ["a"], []), ("i1", ["a"], []), ("i2", ["a"], []), ("i3", ["b"], [])])
    write_tiny_dataset(str(root), item_attributes=items, user_sequences=users)
    bigger_config = crs_config(root, model="CRSPretrain")
    bigger_dataset = create_dataset(bigger_config)
    data_preparation(bigger_config, bigger_dataset)  # builds the attribute tables
    bigger = CRSPretrain(bigger_config, bigger_dataset)
    torch.save({"config": bigger_config, "state_dict": bigger.state_dict()}, tmp_path / "bigger.pth")
    with pytest.raises(PretrainedCheckpointError, match="has 9 item ids .* this model has 8"):
        model.load_pretrained(str(tmp_path / "bigger.pth"))

    deeper = CRSPretrain(crs_config(tiny.root, model="CRSPretrain", n_layers=2), tiny.dataset)
    with pytest.raises(PretrainedCheckpointError, match="n_layers"):
        model.load_pretrained({"config": tiny.config, "state_dict": deeper.state_dict()})

    sasrec_like = {"config": tiny.config, "state_dict": {"item_embedding.weight": torch.zeros(8, 8)}}
    with pytest.raises(PretrainedCheckpointError, match="no encoder weights"):
        model.load_pretrained(sasrec_like)


def test_finetune_model_runs_alone_from_quick_start(tiny):
    result = run_recbole_crs(model="CRSFinetune", dataset="tiny-crs", config_dict=tiny_config(tiny.root, **FAST))
    assert set(result["test_results"]) == {"all", "first", "confirmed"}


def test_finetune_resume_continues_exactly(tiny):
    def trainer_for(epochs):
        config = crs_config(tiny.root, epochs=epochs, eval_step=1, stopping_step=100)
        init_seed(config["seed"], config["reproducibility"])
        tiny.train.generator.manual_seed(config["seed"])
        return CRSFinetuneTrainer(config, CRSFinetune(config, tiny.dataset))

    straight = trainer_for(2)
    straight.fit(tiny.train, None, verbose=False, saved=False)
    first = trainer_for(1)
    first.fit(tiny.train, None, verbose=False, saved=True)
    resumed = trainer_for(2)
    resumed.resume_checkpoint(first.saved_model_file)
    resumed.fit(tiny.train, None, verbose=False, saved=False)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
