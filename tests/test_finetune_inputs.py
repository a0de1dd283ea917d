"""What CRSFinetune reads and adds beyond the paper: attributes for history rows (``history_attributes``), the
generator's SASRec as a history prior (``history_prior_weight``) and the attribute filter (``attribute_filter``).
On the mixed tiny data of test_finetune (two training rows without a conversation)."""

import pytest
import torch
import torch.nn.functional as F
from recbole.data.interaction import Interaction

from recbole_crs.config import Config
from recbole_crs.data.finetune import confirmed_size_distribution
from recbole_crs.errors import CRSConfigError
from recbole_crs.model.attribute_sampling import sample_attribute_subset
from recbole_crs.model.crsfinetune import CRSFinetune
from recbole_crs.model.generator_sasrec import GeneratorSASRec, generator_config
from recbole_crs.pipeline import run_crs_pretrain_pipeline
from recbole_crs.run_plan import check_stage_inputs, run_plan
from test_finetune import FAST, rows_of, write_mixed
from tiny_data import ITEM_ATTRIBUTES, isolated_run_dir, prepare_data, tiny_config


def mixed_config(root, model="CRSFinetune", **overrides):
    return Config(model=model, dataset="tiny-crs", config_dict=tiny_config(root, **{**FAST, **overrides}))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    write_mixed(root)
    with isolated_run_dir(str(root)):
        config = mixed_config(root)
        dataset, train, valid, test = prepare_data(config)
        yield root, dataset, train, valid


def attribute_tokens(dataset, ids):
    return {dataset.id2token("attributes", int(a)) for a in ids if a}


# ---------------------------------------------------------------------------------------------- history_attributes
@pytest.mark.parametrize("mode", ["subset", "initial", "matched"])
def test_history_rows_read_attributes_of_their_own_target(mixed, mode):
    root, dataset, train, _ = mixed
    model = CRSFinetune(mixed_config(root, history_attributes=mode), train._dataset)
    rows = rows_of(train)
    confirmed, targets = rows["confirmed_attributes"], rows["item_id"]
    plain = (confirmed == 0).all(dim=1)
    assert plain.sum() == 2  # the two history rows of the mixed data
    for _ in range(20):  # redrawn at every call
        attributes = model.training_attributes(confirmed, targets)
        for row in range(len(rows)):
            drawn = attribute_tokens(dataset, attributes[row])
            own = set(ITEM_ATTRIBUTES[dataset.id2token("item_id", int(targets[row]))])
            if plain[row]:
                assert drawn and drawn <= own  # a non-empty set of the target's own attributes
                if mode == "initial":
                    assert len(drawn) == 1
            else:  # a row with a conversation keeps it
                assert drawn == attribute_tokens(dataset, confirmed[row])


def test_empty_leaves_history_rows_without_attributes(mixed):
    root, _, train, _ = mixed
    model = CRSFinetune(mixed_config(root, history_attributes="empty"), train._dataset)
    rows = rows_of(train)
    assert torch.equal(model.training_attributes(rows["confirmed_attributes"], rows["item_id"]),
                       rows["confirmed_attributes"])


def test_the_first_drawn_attribute_is_uniform_over_the_items_attributes():
    """The opening attribute of a conversation is a uniformly drawn attribute of the target; the subsets start
    the same way, at every size distribution."""
    table = torch.tensor([[0, 0, 0], [1, 2, 3]])
    counts = torch.tensor([0, 3])
    torch.manual_seed(0)
    n = 30000
    for sizes in (None, torch.tensor([0.0, 0.2, 0.5, 0.3])):
        drawn = sample_attribute_subset(table, counts, torch.ones(n, dtype=torch.long), 10, None, sizes)
        first = torch.bincount(drawn[:, 0], minlength=4)[1:].double()
        assert ((first - n / 3) ** 2 / (n / 3)).sum() < 13.8  # chi-square, 2 degrees of freedom, p = 0.001
        if sizes is not None:
            realised = torch.bincount((drawn != 0).sum(dim=1), minlength=4).double() / n
            assert torch.allclose(realised, sizes.double(), atol=0.015)


def test_matched_sizes_are_those_of_the_training_conversation_states(mixed):
    root, _, train, _ = mixed
    # The ten per-turn states of the six conversational training rows (test_finetune.PER_TURN_SAMPLES): eight
    # hold one confirmed attribute (u1 i3 turn 1, u2 i3, u2 i1 turns 1-3, u3 i3, u4 i3, u4 i5), two hold two.
    assert torch.allclose(confirmed_size_distribution(train._dataset), torch.tensor([0.0, 0.8, 0.2]))
    model = CRSFinetune(mixed_config(root, history_attributes="matched"), train._dataset)
    assert torch.allclose(model.attribute_size_distribution, torch.tensor([0.0, 0.8, 0.2]))


# ---------------------------------------------------------------------------------------------- history prior
def prior_model(root, dataset, weight=1.5):
    model = CRSFinetune(mixed_config(root, history_prior_weight=weight, attribute_filter=False), dataset)
    sasrec = GeneratorSASRec(generator_config(mixed_config(root)), dataset)
    torch.nn.init.normal_(sasrec.item_embedding.weight, std=1.0)  # a prior that is far from uniform
    model.set_history_prior(sasrec)
    return model, sasrec


def test_scores_add_the_weighted_log_probabilities_of_the_generators_sasrec(mixed):
    root, _, train, _ = mixed
    model, sasrec = prior_model(root, train._dataset)
    model.eval(), sasrec.eval()
    rows = rows_of(train)
    with torch.no_grad():
        fused = model.encoder.score_all_items(model._user_state(rows))
        log_probs = torch.log_softmax(sasrec.full_sort_predict(rows)[:, 1:], dim=-1)
        scores = model.full_sort_predict(rows)
    assert torch.allclose(scores[:, 1:], fused[:, 1:] + 1.5 * log_probs, atol=1e-5)
    item_scores = model.predict(Interaction({**rows.interaction}))
    assert torch.allclose(item_scores, scores.gather(1, rows["item_id"].unsqueeze(1)).squeeze(1), atol=1e-5)


def test_the_history_prior_stays_frozen_and_without_dropout_while_fine_tuning(mixed):
    root, _, train, _ = mixed
    model, _ = prior_model(root, train._dataset)
    before = {k: v.clone() for k, v in model.history_prior.state_dict().items()}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    assert not model.history_prior.training
    for _ in range(3):
        optimizer.zero_grad()
        model.calculate_loss(rows_of(train)).backward()
        optimizer.step()
    assert all(torch.equal(before[k], v) for k, v in model.history_prior.state_dict().items())


def test_a_saved_model_keeps_its_history_prior_and_an_unset_one_is_refused(mixed):
    root, _, train, _ = mixed
    model, _ = prior_model(root, train._dataset)
    model.eval()
    reloaded = CRSFinetune(mixed_config(root, history_prior_weight=1.5, attribute_filter=False), train._dataset).eval()
    rows = rows_of(train)
    with pytest.raises(RuntimeError, match="history prior was never set"):
        reloaded.full_sort_predict(rows)
    reloaded.load_state_dict(model.state_dict())  # what load_data_and_model does with a saved CRSFinetune
    with torch.no_grad():
        assert torch.equal(reloaded.full_sort_predict(rows), model.full_sort_predict(rows))


def test_a_history_prior_needs_a_generator_and_keeps_the_generator_stage(mixed):
    root, _, _, _ = mixed
    config = mixed_config(root, model="CRSPretrain", history_prior_weight=1.0, crs_stages=["finetune"])
    with pytest.raises(CRSConfigError, match="history_prior_weight 1.0 reads the SASRec generator"):
        check_stage_inputs(config, list(run_plan(config).stages))
    # left at its default, crs_stages drops a generator that pre-training would not use, unless fine-tuning reads it
    for weight, skipped in ((0.0, True), (1.0, False)):
        config = mixed_config(root, model="CRSPretrain", negative_sampler="uniform", history_prior_weight=weight)
        assert run_plan(config).generator_skipped == skipped


def test_the_pipeline_fine_tunes_on_top_of_its_own_generator(mixed):
    root, dataset, train, valid = mixed
    config = mixed_config(root, model="CRSPretrain", history_prior_weight=1.0)
    trainer, _, _ = run_crs_pretrain_pipeline(config, dataset, train, valid, saved=False, verbose=False)
    model = trainer.model
    assert bool(model.history_prior_set)
    assert model.history_prior.item_embedding.weight.abs().sum() > 0


# ---------------------------------------------------------------------------------------------- attribute filter
def test_attribute_filter_ranks_items_lacking_a_confirmed_attribute_last(mixed):
    root, dataset, train, _ = mixed
    from recbole_crs.model.crsfinetune import FILTERED_SCORE

    rows = rows_of(train)
    # history rows keep their empty attribute input (history_attributes is tested above), so the loss is comparable
    unchanged = dict(history_prior_weight=0, history_attributes="empty")
    plain = CRSFinetune(mixed_config(root, **unchanged, attribute_filter=False), train._dataset).eval()
    filtered = CRSFinetune(mixed_config(root, **unchanged, attribute_filter=True), train._dataset).eval()
    filtered.load_state_dict(plain.state_dict())
    with torch.no_grad():
        raw, scores = plain.full_sort_predict(rows), filtered.full_sort_predict(rows)
    for row in range(len(rows)):
        confirmed = attribute_tokens(dataset, rows["confirmed_attributes"][row])
        for item, attributes in ITEM_ATTRIBUTES.items():
            column = dataset.token2id("item_id", item)
            if confirmed <= set(attributes):  # every confirmed attribute held: the same score
                assert scores[row, column] == raw[row, column]
            else:
                assert scores[row, column] == FILTERED_SCORE < raw[row].min()
    # in training the filter makes the cross-entropy one over the conversation's candidates only
    torch.manual_seed(0)
    loss = filtered.calculate_loss(rows)
    logits = filtered.full_sort_predict(rows)
    logits[:, 0] = -torch.inf
    assert torch.allclose(loss, F.cross_entropy(logits, rows["item_id"]))
