"""CRSFinetune: inputs (no target leakage, padding), losses, pre-trained checkpoint loading, trainer."""

import logging
import os
import sys

import pytest
import torch
import recbole.trainer.trainer as recbole_trainer
from recbole.data import data_preparation
from recbole.data.interaction import Interaction
from recbole.utils import init_seed
from torch.utils.tensorboard import SummaryWriter

from recbole_crs.config import Config
from recbole_crs.data.finetune import finetune_dataloader
from recbole_crs.data.windows import materialize
from recbole_crs.errors import CRSConfigError, CRSDataError, PretrainedCheckpointError
from recbole_crs.model.crsfinetune import CRSFinetune
from recbole_crs.model.crspretrain import CRSPretrain
from recbole_crs.quick_start import create_dataset, run_recbole_crs
from recbole_crs.trainer.stages import CRSFinetuneTrainer
from tiny_data import ITEM_ATTRIBUTES, USER_SEQUENCES, isolated_run_dir, tiny_config, tiny_run, write_tiny_dataset

FAST = {"epochs": 2, "train_batch_size": 4, "pretrain_epochs": 1, "generator_epochs": 1}


def crs_config(root, model="CRSFinetune", dataset="tiny-crs", **overrides):
    # These tests are about fine-tuning on the conversations; the yaml default (all rows) is asked for by name.
    config_dict = tiny_config(root, **FAST, finetune_rows="conversations")
    if model == "CRSFinetune":  # the fine-tuning model itself; its history prior is test_finetune_inputs' subject
        config_dict["history_prior_weight"] = 0.0
    config_dict.update(overrides)
    return Config(model=model, dataset=dataset, config_dict=config_dict)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    with tiny_run(tmp_path_factory.mktemp("crsfinetune"), crs_config) as tiny:
        yield tiny


def rows_of(dataloader):
    rows = materialize(dataloader._dataset.inter_feat)  # with history_windows: lazy, the list fields too
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
    model = CRSFinetune(crs_config(tiny.root, loss_type="BPR", attribute_filter=False), tiny.dataset)
    user_state = torch.randn(2, model.encoder.hidden_size)
    pos = torch.tensor([1, 2])
    negatives = torch.tensor([[3, 4, 0], [5, 0, 0]])
    loss = model._pairwise_loss(user_state, pos, negatives)
    scores = model.encoder.score_all_items(user_state)
    terms = [scores[0, 1] - scores[0, 3], scores[0, 1] - scores[0, 4], scores[1, 2] - scores[1, 5]]
    expected = -torch.nn.functional.logsigmoid(torch.stack(terms)).mean()
    assert torch.allclose(loss, expected)

    seen = []
    original = model._pairwise_loss
    model._pairwise_loss = lambda u, p, n, *rest: seen.append(n) or original(u, p, n, *rest)
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
    # Its default history prior reads a SASRec checkpoint: without generator_path, one line before any training.
    with pytest.raises(CRSConfigError, match=r"^history_prior_weight: .*set generator_path to a SASRec checkpoint"):
        run_recbole_crs(model="CRSFinetune", dataset="tiny-crs", config_dict=tiny_config(tiny.root, **FAST))
    sasrec_dir = os.path.join(str(tiny.root), "sasrec")
    run_recbole_crs(model="SASRec", dataset="tiny-crs", config_dict=tiny_config(tiny.root, epochs=1,
                                                                                 checkpoint_dir=sasrec_dir))
    (checkpoint,) = os.listdir(sasrec_dir)
    config_dict = tiny_config(tiny.root, **FAST, generator_path=os.path.join(sasrec_dir, checkpoint))
    result = run_recbole_crs(model="CRSFinetune", dataset="tiny-crs", config_dict=config_dict)
    assert set(result["test_results"]) == {"all", "first", "confirmed"}
    paper = run_recbole_crs(model="CRSFinetune", dataset="tiny-crs",
                            config_dict=tiny_config(tiny.root, **FAST, history_prior_weight=0))
    assert set(paper["test_results"]) == {"all", "first", "confirmed"}


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


# ---------------------------------------------------------------------------------------------- fine-tuning data
# Training rows are each user's 2nd and 3rd interactions. Two become plain history rows (empty conversation),
# and u2's 3rd gets a hand-worked four-turn conversation:
#     confirmed b@1 a@4, rejected i6@2 i3@3 ->
#     t1 ([b], []) | t2 ([b], []) | t3 ([b], [i6]) | t4 ([b, a], [i6, i3])
# The other training rows confirm k attributes at turns 1..k (none rejects anything): 1 state each, 2 for u1's 3rd.
MIXED_SEQUENCES = {
    "u1": [USER_SEQUENCES["u1"][0], ("i2", [], []), *USER_SEQUENCES["u1"][2:]],
    "u2": [*USER_SEQUENCES["u2"][:2], ("i1", ["b", "a"], ["i6", "i3"]), *USER_SEQUENCES["u2"][3:]],
    "u3": [USER_SEQUENCES["u3"][0], ("i5", [], []), *USER_SEQUENCES["u3"][2:]],
    "u4": USER_SEQUENCES["u4"],
}
HAND_WORKED = ("u2", "i1")
HAND_WORKED_STATES = [(1, ["b"], []), (2, ["b"], ["i6"]), (3, ["b"], ["i6", "i3"]), (4, ["b", "a"], ["i6", "i3"])]
TRAINING_ROWS, CONVERSATIONAL_ROWS, HISTORY_ROWS = 8, 6, {("u1", "i2"), ("u3", "i5")}
PER_TURN_SAMPLES = 2 + 1 + 4 + 1 + 1 + 1  # u1 i3, u2 i3, u2 i1, u3 i3, u4 i3, u4 i5


def hand_worked_turns(user, t, turns):
    return ("1 4", "2 3") if (user, t) == ("u2", 2) else turns


def write_mixed(root, turns=True, user_sequences=None):
    write_tiny_dataset(str(root), user_sequences=user_sequences or MIXED_SEQUENCES)
    if turns:
        from test_turns import add_turn_columns

        add_turn_columns(str(root), hand_worked_turns if user_sequences is None else None)


def prepared(root, **overrides):
    config = crs_config(root, **overrides)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, _ = data_preparation(config, dataset)
    return config, dataset, train, valid


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    write_mixed(root)
    with isolated_run_dir(str(root)):
        yield root


def readable(dataset, rows):
    """[(user, target, turn, confirmed attributes, rejected items)] as tokens."""
    tokens = lambda field, ids: [dataset.id2token(field, i) for i in ids if i]  # noqa: E731
    turns = rows["crs_turn"].tolist() if "crs_turn" in rows else [None] * len(rows)
    return [
        (dataset.id2token("user_id", u), dataset.id2token("item_id", i), t, tokens("attributes", c), tokens("item_id", r))
        for u, i, t, c, r in zip(rows["user_id"].tolist(), rows["item_id"].tolist(), turns,
                                 rows["confirmed_attributes"].tolist(), rows["rejected_items"].tolist())
    ]


def fit_and_record(config, dataset, train, verbose=False):
    """Fit one epoch; returns (trainer, every row calculate_loss saw, readable)."""
    model = CRSFinetune(config, dataset)
    seen = []
    original = model.calculate_loss
    model.calculate_loss = lambda interaction: seen.append(interaction.interaction.copy()) or original(interaction)
    trainer = CRSFinetuneTrainer(config, model)
    trainer.fit(train, None, verbose=verbose, saved=False)
    rows = Interaction({k: torch.cat([batch[k] for batch in seen]) for k in seen[0]})
    return trainer, rows, readable(dataset, rows)


@pytest.mark.parametrize("finetune_rows, finetune_samples, expected", [
    ("conversations", "conversation", CONVERSATIONAL_ROWS),
    ("all", "conversation", TRAINING_ROWS),
    ("conversations", "per_turn", PER_TURN_SAMPLES),
    ("all", "per_turn", PER_TURN_SAMPLES + len(HISTORY_ROWS)),
])
def test_finetuning_sees_the_rows_and_samples_the_keys_choose(mixed, finetune_rows, finetune_samples, expected):
    config, dataset, train, _ = prepared(mixed, epochs=1, finetune_rows=finetune_rows, finetune_samples=finetune_samples)
    assert len(train._dataset) == TRAINING_ROWS
    trainer, rows, seen = fit_and_record(config, dataset, train)
    assert len(seen) == expected  # one epoch: every sample exactly once
    assert trainer.finetune_counts == (TRAINING_ROWS, CONVERSATIONAL_ROWS, expected)
    history_seen = [(u, i) for u, i, _, confirmed, _ in seen if not confirmed]
    if finetune_rows == "conversations":
        assert history_seen == []
    else:
        assert sorted(history_seen) == sorted(HISTORY_ROWS)
    assert len(train._dataset) == TRAINING_ROWS  # the RecBole dataloader (what baselines read) is untouched


def test_per_turn_expands_a_row_into_its_turn_states_exactly(mixed):
    config, dataset, train, _ = prepared(mixed, epochs=1)  # conversations (crs_config), per_turn (default)
    _, _, seen = fit_and_record(config, dataset, train)
    states = sorted((t, c, r) for u, i, t, c, r in seen if (u, i) == HAND_WORKED)
    assert states == HAND_WORKED_STATES
    # every other conversational training row: one state per turn, its whole conversation at the last one
    one_state = sorted((u, i, t, c, r) for u, i, t, c, r in seen if (u, i) != HAND_WORKED)
    assert one_state == sorted([
        ("u1", "i3", 1, ["c"], []), ("u1", "i3", 2, ["c", "b"], []), ("u2", "i3", 1, ["b"], []),
        ("u3", "i3", 1, ["b"], []), ("u4", "i3", 1, ["c"], []), ("u4", "i5", 1, ["c"], []),
    ])


@pytest.mark.parametrize("loss_type", ["BPR", "CE"])
def test_each_states_rejected_items_reach_the_pairwise_loss(mixed, loss_type):
    config, dataset, train, _ = prepared(mixed, epochs=1, loss_type=loss_type, rejected_weight=1.0)
    model = CRSFinetune(config, dataset)
    pairs = []
    original_loss, original_pairwise = model.calculate_loss, model._pairwise_loss
    model.calculate_loss = lambda interaction: pairs.append([interaction]) or original_loss(interaction)
    model._pairwise_loss = lambda u, p, n, *rest: pairs[-1].append(n) or original_pairwise(u, p, n, *rest)
    CRSFinetuneTrainer(config, model).fit(train, None, verbose=False, saved=False)
    reached = []
    for interaction, *negatives in pairs:
        rejected = interaction["rejected_items"]
        if loss_type == "BPR":  # 1 uniform negative, then the state's rejected items
            (negative,) = negatives
            assert torch.equal(negative[:, 1:], rejected)
        elif (rejected != 0).any():  # CE + rejected_weight: the pairwise term is against the rejected items
            (negative,) = negatives
            assert torch.equal(negative, rejected)
        reached += readable(dataset, interaction)
    assert sorted(r for u, i, _, _, r in reached if (u, i) == HAND_WORKED) == sorted(r for _, _, r in HAND_WORKED_STATES)


@pytest.fixture
def here(tmp_path, monkeypatch):
    """cwd in a tmp dir (RecBole writes ./log there), no pytest flags in argv, tensorboard on an absolute path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [sys.argv[0]])
    monkeypatch.setattr(recbole_trainer, "get_tensorboard", lambda logger: SummaryWriter(str(tmp_path / "tb")))
    return tmp_path


def test_rows_without_turn_columns_stay_one_sample_each(here):
    tmp_path = here
    write_mixed(tmp_path, turns=False)
    config, dataset, train, _ = prepared(tmp_path, epochs=1)  # per_turn, but no turns to expand
    _, _, per_turn = fit_and_record(config, dataset, train)
    assert len(per_turn) == CONVERSATIONAL_ROWS
    config, dataset, train, _ = prepared(tmp_path, epochs=1, finetune_samples="conversation")
    _, _, whole = fit_and_record(config, dataset, train)
    assert sorted(per_turn) == sorted(whole)
    assert (*HAND_WORKED, None, ["b", "a"], ["i6", "i3"]) in per_turn  # the whole conversation, no turn field


def test_unchanged_data_keeps_recboles_own_dataloader(tiny):
    # every training row of the tiny data has a conversation and there are no turn columns: nothing to change
    trainer = CRSFinetuneTrainer(tiny.config, CRSFinetune(tiny.config, tiny.dataset))
    data, counts = finetune_dataloader(trainer.config, tiny.train)
    assert data is tiny.train and counts == (len(tiny.train._dataset),) * 3


def test_finetuning_logs_rows_conversations_and_samples(mixed, caplog):
    config, dataset, train, _ = prepared(mixed, epochs=1)
    caplog.set_level(logging.INFO)
    fit_and_record(config, dataset, train, verbose=True)
    (line,) = [r.getMessage() for r in caplog.records if "fine-tuning data" in r.getMessage()]
    for part in (f"{TRAINING_ROWS} training rows", f"{CONVERSATIONAL_ROWS} with a conversation",
                 f"{PER_TURN_SAMPLES} per-turn samples"):
        assert part in line


def test_bad_finetune_values_are_refused(mixed):
    config, dataset, _, _ = prepared(mixed, finetune_rows="some")
    with pytest.raises(ValueError, match="finetune_rows must be one of"):
        CRSFinetuneTrainer(config, CRSFinetune(config, dataset))
    config = crs_config(mixed, finetune_samples="per_dialogue")
    with pytest.raises(ValueError, match="finetune_samples must be one of"):
        CRSFinetuneTrainer(config, CRSFinetune(config, dataset))


def test_the_default_of_an_unset_finetune_key_is_the_yaml_default():
    """``finetune_rows: ~`` means the documented default (the yaml's ``all``), not another value."""
    import yaml

    from recbole_crs.config import PROPERTIES_DIR
    from recbole_crs.run_plan import finetune_options

    with open(os.path.join(PROPERTIES_DIR, "model", "CRSFinetune.yaml"), encoding="utf-8") as handle:
        defaults = yaml.safe_load(handle)
    assert finetune_options({"finetune_rows": None, "finetune_samples": None}) == (
        defaults["finetune_rows"], defaults["finetune_samples"]) == ("all", "per_turn")


@pytest.mark.parametrize("model", ["CRSFinetune", "CRSPretrain"])
def test_no_conversational_training_row_fails_before_any_training(here, monkeypatch, model):
    tmp_path = here
    # every training row (2nd and 3rd interaction) a plain interaction; validation and test rows keep theirs
    plain = {u: [rows[0], (rows[1][0], [], []), (rows[2][0], [], []), *rows[3:]] for u, rows in USER_SEQUENCES.items()}
    write_mixed(tmp_path, user_sequences=plain)
    config_dict = tiny_config(tmp_path, **FAST, finetune_rows="conversations")
    if model == "CRSFinetune":
        config_dict["history_prior_weight"] = 0  # no generator to read (test_finetune_model_runs_alone_...)
    started = []
    original = recbole_trainer.Trainer._train_epoch
    monkeypatch.setattr(recbole_trainer.Trainer, "_train_epoch",
                        lambda self, *a, **k: started.append(1) or original(self, *a, **k))
    with pytest.raises(CRSDataError) as error:
        run_recbole_crs(model=model, dataset="tiny-crs", config_dict=config_dict)
    message = str(error.value)
    assert "\n" not in message
    for part in ("'tiny-crs'", "finetune_rows: conversations", "finetune_rows: all", "convert"):
        assert part in message
    assert started == []
    saved = tmp_path / "saved"
    assert not saved.exists() or os.listdir(saved) == []
    # finetune_rows: all trains on those plain interactions
    config, dataset, train, _ = prepared(tmp_path, epochs=1, finetune_rows="all")
    _, _, seen = fit_and_record(config, dataset, train)
    assert len(seen) == TRAINING_ROWS and all(not confirmed for _, _, _, confirmed, _ in seen)


@pytest.mark.parametrize("finetune_rows, finetune_samples", [("conversations", "per_turn"), ("all", "conversation")])
def test_full_pipeline_runs_on_mixed_data(mixed, finetune_rows, finetune_samples):
    config_dict = tiny_config(mixed, **FAST, finetune_rows=finetune_rows, finetune_samples=finetune_samples)
    result = run_recbole_crs(model="CRSPretrain", dataset="tiny-crs", config_dict=config_dict, saved=False)
    assert set(result["test_results"]) == {"all", "first", "confirmed"}
    config = Config(model="CRSPretrain", dataset="tiny-crs", config_dict=config_dict)
    assert config["crs_stages"] == ["generator", "pretrain", "finetune"]


def test_finetune_resume_continues_exactly_on_per_turn_samples(mixed):
    """The per-turn dataloader is rebuilt by every fit; its shuffling state still comes back from the checkpoint."""
    config, dataset, train, _ = prepared(mixed)

    def trainer_for(epochs):
        config = crs_config(mixed, epochs=epochs, eval_step=1, stopping_step=100)
        init_seed(config["seed"], config["reproducibility"])
        return CRSFinetuneTrainer(config, CRSFinetune(config, dataset))

    straight = trainer_for(2)
    straight.fit(train, None, verbose=False, saved=False)
    assert straight.finetune_counts.samples == PER_TURN_SAMPLES
    first = trainer_for(1)
    first.fit(train, None, verbose=False, saved=True)
    resumed = trainer_for(2)
    resumed.resume_checkpoint(first.saved_model_file)
    resumed.fit(train, None, verbose=False, saved=False)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
