"""CRSPretrain: masking, SAD corruption, negative sampling, the pre-training trainer and the pipeline.

Everything runs on the hand-built tiny dataset (tests/tiny_data.py) inside tmp dirs.
"""

import logging
import os
from types import SimpleNamespace

import pytest
import torch
import yaml
from recbole.data.interaction import Interaction
from recbole.model.sequential_recommender.sasrec import SASRec
from recbole.utils import init_seed

from recbole_crs.config import PROPERTIES_DIR, Config, model_yaml_files
from recbole_crs.data.windows import materialize
from recbole_crs.model.crsfinetune import CRSFinetune
from recbole_crs.model.crspretrain import CRSPretrain
from recbole_crs.model.layers import append_to_history
from recbole_crs.model.generator_sasrec import generator_config, stage_config
from recbole_crs.model.negative_generator import NegativeGenerator
from recbole_crs.model.negatives import UniformNegativeSampler, uniform_negatives
from recbole_crs.pipeline import (
    pretrain,
    pretrain_dataloader,
    pretrain_rows,
    run_crs_pretrain_pipeline,
    stage_checkpoint,
)
from recbole_crs.quick_start import run_recbole_crs
from recbole_crs.run_plan import check_stage_inputs, needs_generator
from recbole_crs.trainer.resumable import unique_checkpoint_file
from recbole_crs.trainer.stages import CRSFinetuneTrainer, CRSGeneratorTrainer, CRSPretrainTrainer
from tiny_data import prepare_data, tiny_config, tiny_run

FAST = {
    "generator_epochs": 1,
    "pretrain_epochs": 2,
    "epochs": 2,
    "n_negatives": 3,
    "train_batch_size": 4,
    "pretrain_batch_size": 4,
    "mask_ratio": 0.5,
}


def crs_config(root, model="CRSPretrain", dataset="tiny-crs", **overrides):
    config_dict = tiny_config(root, **FAST)
    config_dict.update(overrides)
    return Config(model=model, dataset=dataset, config_dict=config_dict)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Config, dataset and dataloaders of the tiny dataset; cwd in a tmp dir for the whole module."""
    with tiny_run(tmp_path_factory.mktemp("crspretrain"), crs_config) as tiny:
        yield tiny


def all_train_rows(tiny):
    """Every training row as one batch (a copy, safe to modify)."""
    rows = materialize(tiny.train._dataset.inter_feat)  # with history_windows: lazy, the list fields too
    return Interaction({field: value.clone() for field, value in rows.interaction.items()})


def params(module):
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def same_params(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------------- leakage
def test_history_plus_one_item_is_built_in_one_place():
    history, lengths = torch.tensor([[4, 5, 9], [3, 9, 9], [0, 0, 0]]), torch.tensor([2, 1, 0])  # 9: stale ids
    sequence, real = append_to_history(history, lengths, torch.tensor([6, 7, 8]))
    assert sequence.tolist() == [[4, 5, 6, 0], [3, 7, 0, 0], [8, 0, 0, 0]]
    assert real.tolist() == [[True, True, True, False], [True, True, False, False], [True, False, False, False]]
    assert append_to_history(history, lengths, 1)[0].tolist() == [[4, 5, 1, 0], [3, 1, 0, 0], [1, 0, 0, 0]]


def test_masked_items_never_reach_the_discriminator_input(tiny):
    model = CRSPretrain(tiny.config, tiny.dataset)
    masks, item_inputs = [], []
    mask_sequence, encode_items = model.mask_sequence, model.encoder.encode_items

    def spy_mask(*args):
        masks.append(mask_sequence(*args))
        return masks[-1]

    def spy_encode(item_seq, real):  # record the ids that actually reach the item embedding
        hook = model.encoder.item_embedding.register_forward_pre_hook(lambda m, a: item_inputs.append(a[0].clone()))
        try:
            return encode_items(item_seq, real)
        finally:
            hook.remove()

    model.mask_sequence, model.encoder.encode_items = spy_mask, spy_encode
    rows = all_train_rows(tiny)
    torch.manual_seed(0)
    model.calculate_loss(rows)
    (sequence, real, _, masked), seen = masks[0], item_inputs[0]
    assert masked.sum() > len(rows), "every row masks its last item and some others"
    assert (seen[masked] == model.encoder.mask_token).all()
    assert torch.equal(seen[real & ~masked], sequence[real & ~masked])
    assert (seen[~real] == 0).all()
    # the last real position is the row's target
    assert torch.equal(sequence[torch.arange(len(rows)), rows["item_length"]], rows["item_id"])


# ---------------------------------------------------------------------------------------------- padding
def test_padded_positions_and_padding_embeddings_change_no_pretraining_output(tiny):
    model = CRSPretrain(tiny.config, tiny.dataset).eval()
    rows = all_train_rows(tiny)
    torch.manual_seed(1)
    expected = model.calculate_loss(rows)

    garbage = all_train_rows(tiny)
    seq, length = garbage["item_id_list"], garbage["item_length"]
    padded = torch.arange(seq.size(1)).unsqueeze(0) >= length.unsqueeze(1)
    assert padded.any()
    seq[padded] = torch.randint(1, model.n_items, (int(padded.sum()),))
    with torch.no_grad():
        model.encoder.item_embedding.weight[0].normal_()
        model.encoder.attribute_embedding.weight[0].normal_()
    torch.manual_seed(1)
    got = model.calculate_loss(garbage)
    assert all(torch.equal(a, b) for a, b in zip(expected, got))


# ---------------------------------------------------------------------------------------------- SAD
def test_attribute_subsets_are_non_empty_subsets_of_the_items_attributes(tiny):
    model = CRSPretrain(tiny.config, tiny.dataset)
    items = torch.arange(1, model.n_items).repeat(300)
    torch.manual_seed(0)
    subset = model.sample_attribute_subset(items)
    real = subset != 0
    assert real.any(dim=1).all()
    assert tiny.dataset.attribute_item_mask[subset, items.unsqueeze(1)][real].all()
    # left-aligned and without repeats
    assert not (~real[:, :-1] & real[:, 1:]).any()
    for row in subset[:50]:
        values = row[row != 0].tolist()
        assert len(values) == len(set(values))
    # every size from 1 to the item's attribute count occurs
    counts = model.item_attribute_count[items]
    sizes = real.sum(dim=1)
    for c in counts.unique().tolist():
        assert set(sizes[counts == c].unique().tolist()) == set(range(1, c + 1))


def test_sad_labels_mark_exactly_the_substituted_slots(tiny):
    model = CRSPretrain(tiny.config, tiny.dataset)
    items = torch.arange(1, model.n_items).repeat(500)
    torch.manual_seed(0)
    subset = model.sample_attribute_subset(items)
    corrupted, substituted = model.substitute_attributes(subset, items)
    assert torch.equal(substituted, corrupted != subset)
    assert (corrupted[subset == 0] == 0).all() and not substituted[subset == 0].any()
    carried = tiny.dataset.attribute_item_mask[corrupted, items.unsqueeze(1)]
    assert not carried[substituted].any(), "a substitute is an attribute the item lacks"
    assert carried[(subset != 0) & ~substituted].all()
    # a fraction sad_substitute_rate (0.3 by default) of the real slots at each size, not min(1, 2 / |subset|)
    assert tiny.config["sad_substitute_rate"] == 0.3
    size = (subset != 0).sum(dim=1, keepdim=True).expand_as(subset)
    for s in (1, 2):
        rate = substituted[(subset != 0) & (size == s)].float().mean().item()
        assert abs(rate - 0.3) < 0.05
    # a 2-attribute subset keeps an original
    assert not ((substituted.sum(dim=1) == 2)).any()


def _model_with_nested_attribute_sets(tiny, rate, n_attributes=21, width=8):
    """A model whose item n (1..6) has attributes 1..n out of 20, and item 7 has all 20 (nothing to substitute)."""
    model = CRSPretrain(crs_config(tiny.root, sad_substitute_rate=rate, max_attribute_length=width), tiny.dataset)
    table = torch.zeros(8, n_attributes - 1, dtype=torch.long)
    for n in range(1, 7):
        table[n, :n] = torch.arange(1, n + 1)
    table[7] = torch.arange(1, n_attributes)
    model.item_attribute_table, model.item_attribute_count = table, (table != 0).sum(dim=1)
    model.n_attributes = n_attributes
    return model


@pytest.mark.parametrize("rate", [0.3, 0.6])
def test_sad_substitutes_the_configured_fraction_at_every_subset_size(tiny, rate):
    """The realised fraction of substituted slots is sad_substitute_rate at sizes 1..6 (capped at (n - 1) / n,
    since a subset of n >= 2 keeps an original); the authors' min(1, 2 / n) would give 1.0 at sizes 1 and 2."""
    model = _model_with_nested_attribute_sets(tiny, rate)
    repeats, width = 6000, 8
    items = torch.arange(1, 8).repeat(repeats)  # [M]
    subset = torch.zeros(len(items), width, dtype=torch.long)
    for n in range(1, 7):  # the full attribute set of item n, shuffled, then padding
        rows = items == n
        subset[rows, :n] = torch.stack([torch.randperm(n) + 1 for _ in range(int(rows.sum()))])
    subset[items == 7, :3] = torch.tensor([5, 9, 2])
    torch.manual_seed(0)
    corrupted, substituted = model.substitute_attributes(subset, items)

    real = subset != 0
    assert not substituted[~real].any() and (corrupted[~real] == 0).all(), "padding is never substituted"
    assert torch.equal(substituted, corrupted != subset), "labels are exactly the substituted slots"
    own = model.item_attribute_table[items]  # [M, W]
    holds_own = (corrupted.unsqueeze(2) == own.unsqueeze(1)).any(dim=2)  # [M, A]
    assert not holds_own[substituted].any(), "a substitute is never an attribute the item has"
    assert holds_own[real & ~substituted].all()
    assert not substituted[items == 7].any(), "an item with every attribute keeps its own"
    assert (corrupted[substituted] < model.n_attributes).all() and (corrupted[substituted] > 0).all()

    for n in range(1, 7):
        rows = items == n
        realised = substituted[rows].sum().item() / (n * rows.sum().item())
        expected = min(rate, (n - 1) / n) if n > 1 else rate
        assert abs(realised - expected) < 0.02, (n, realised, expected)
        assert realised < 0.9, "never the degenerate 'substitute everything'"
        entirely = (substituted[rows].sum(dim=1) == n).float().mean().item()
        if n == 1:
            assert abs(entirely - rate) < 0.03
        else:
            assert entirely == 0, "a subset of 2+ attributes always keeps an original"
    # the restored slot is uniform among the slots: each slot position is substituted equally often
    rows = items == 3
    per_slot = substituted[rows][:, :3].float().mean(dim=0)
    assert (per_slot - per_slot.mean()).abs().max() < 0.03

    counts = CRSPretrain.sad_substitution_counts(subset, substituted).tolist()
    everything = ((substituted.sum(dim=1) == real.sum(dim=1)) & real.any(dim=1)).sum().item()
    assert counts == [real.sum().item(), substituted.sum().item(), len(items), everything]


@pytest.mark.parametrize("rate", [0, 1, 1.5, -0.2, "often", True, None])
def test_sad_substitute_rate_outside_the_open_unit_interval_is_refused(tiny, rate):
    with pytest.raises(ValueError, match=r"sad_substitute_rate must be a number strictly between 0 and 1") as error:
        CRSPretrain(crs_config(tiny.root, sad_substitute_rate=rate), tiny.dataset)
    assert "\n" not in str(error.value) and "sad_substitute_rate: 0.3" in str(error.value)


def test_the_replaced_substitute_k_key_is_refused_with_its_replacement(tiny):
    with pytest.raises(ValueError, match=r"substitute_k \(got 2\) was replaced by sad_substitute_rate"):
        CRSPretrain(crs_config(tiny.root, substitute_k=2), tiny.dataset)


def test_lacking_attributes_are_uniform_over_the_missing_ones(tiny):
    model = CRSPretrain(tiny.config, tiny.dataset)
    item = tiny.dataset.field2token_id["item_id"]["i2"]  # i2 has only 'a': lacks b and c
    torch.manual_seed(0)
    draws = model.sample_lacking_attributes(torch.tensor([item] * 4000), 1).flatten()
    attribute_id = tiny.dataset.field2token_id["attributes"]
    assert set(draws.tolist()) == {attribute_id["b"], attribute_id["c"]}
    assert abs((draws == attribute_id["b"]).float().mean().item() - 0.5) < 0.05


def test_padding_slots_contribute_nothing_to_the_sad_loss():
    corrupted = torch.tensor([[3, 2, 0, 0], [1, 0, 0, 0]])
    substituted = torch.tensor([[True, False, False, False], [False, False, False, False]])
    logits = torch.randn(2, 4, requires_grad=True)
    loss = CRSPretrain.sad_loss(logits, corrupted, substituted)
    loss.backward()
    assert (logits.grad[corrupted == 0] == 0).all() and (logits.grad[corrupted != 0] != 0).all()
    real = corrupted != 0
    manual = torch.nn.functional.binary_cross_entropy_with_logits(logits[real], (~substituted[real]).float())
    assert torch.allclose(loss, manual)
    with torch.no_grad():
        changed = logits.detach().clone()
        changed[~real] = 100.0
    assert torch.equal(CRSPretrain.sad_loss(changed, corrupted, substituted), loss.detach())


def test_mip_loss_is_log_sigmoid_of_raw_score_differences():
    pos, neg = torch.tensor([2.0, -1.0]), torch.tensor([[0.0, 1.0], [-3.0, -1.0]])
    expected = -torch.log(torch.sigmoid(pos.unsqueeze(1) - neg)).mean()
    assert torch.allclose(CRSPretrain.mip_loss(pos, neg), expected)


# ---------------------------------------------------------------------------------------------- negatives
def test_uniform_negatives_never_hit_the_true_item_and_cover_all_others():
    torch.manual_seed(0)
    true = torch.randint(1, 7, (3000,))
    negatives = uniform_negatives(true, 7, 4)
    assert not (negatives == true.unsqueeze(1)).any()
    assert negatives.min() >= 1 and negatives.max() <= 6
    counts = torch.bincount(negatives[true == 3].flatten(), minlength=7)[1:].float()
    assert counts[2] == 0 and (counts[[0, 1, 3, 4, 5]] / counts.sum() - 0.2).abs().max() < 0.03


def _masked_positions(rows):
    """(batch_index, position_index, true_items) for every position 1..item_length of ``rows``."""
    seq = torch.nn.functional.pad(rows["item_id_list"], (0, 1))
    seq[torch.arange(len(rows)), rows["item_length"]] = rows["item_id"]
    real = torch.arange(seq.size(1)).unsqueeze(0) <= rows["item_length"].unsqueeze(1)
    batch, position = (real & (torch.arange(seq.size(1)) > 0)).nonzero(as_tuple=True)
    return batch, position, seq[batch, position]


def test_generator_negatives_follow_its_distribution_and_never_hit_the_true_item(tiny):
    torch.manual_seed(0)
    generator = NegativeGenerator(tiny.config, tiny.dataset)
    rows = all_train_rows(tiny)
    batch, position, true = _masked_positions(rows)
    history = rows["item_id_list"]
    with torch.no_grad():
        generator.eval()
        logits = generator.logits(history, batch, position)  # [M, n_items]
    excluded = logits.clone()
    excluded.scatter_(1, true.unsqueeze(1), -torch.inf)

    negatives = generator.sample(history, batch.repeat(400), position.repeat(400), true.repeat(400), 5)
    assert not (negatives == true.repeat(400).unsqueeze(1)).any()
    assert (negatives >= 1).all()
    # empirical frequencies match softmax(logits / T) without the true item (T = 1)
    expected = torch.softmax(excluded, dim=1)  # [M, n]
    n = generator.n_items
    for m in range(len(true)):
        counts = torch.bincount(negatives.view(400, len(true), 5)[:, m].flatten(), minlength=n).float()
        assert (counts / counts.sum() - expected[m]).abs().max() < 0.04

    # a peaked generator (item embeddings scaled up): nearly every draw is its top item, not 1 / (n - 2)
    with torch.no_grad():
        generator.sasrec.item_embedding.weight.mul_(300.0)
        peaked = generator.logits(history, batch, position).scatter_(1, true.unsqueeze(1), -torch.inf)
    top = peaked.argmax(dim=1, keepdim=True)
    assert torch.softmax(peaked, dim=1).max(dim=1).values.min() > 0.95  # precondition: it is peaked
    negatives = generator.sample(history, batch, position, true, 200)
    assert (negatives == top).float().mean() > 0.9 > 1 / (n - 2)


def test_generator_reads_sasrec_output_before_the_masked_position_and_samples_in_eval_mode(tiny):
    torch.manual_seed(0)
    generator = NegativeGenerator(tiny.config, tiny.dataset).eval()
    rows = all_train_rows(tiny)
    with torch.no_grad():
        full = generator.sequence_output(rows["item_id_list"])
        last = full[torch.arange(len(rows)), rows["item_length"] - 1]
        assert torch.allclose(last, generator.sasrec.forward(rows["item_id_list"], rows["item_length"]), atol=1e-6)
    modes = []
    generator.sasrec.trm_encoder.register_forward_hook(lambda m, i, o: modes.append(m.training))
    generator.train()
    batch, position, true = _masked_positions(rows)
    negatives = generator.sample(rows["item_id_list"], batch, position, true, 2)
    assert modes == [False] and generator.training, "samples without dropout, then restores the mode"
    assert not negatives.requires_grad
    # position 0 has no prefix: uniform negatives, and no generator call is needed
    modes.clear()
    zero = torch.zeros(len(rows), dtype=torch.long)
    generator.sample(rows["item_id_list"], torch.arange(len(rows)), zero, rows["item_id_list"][:, 0], 2)
    assert modes == []


def test_generators_sasrec_scores_exactly_as_recboles_sasrec(tiny):
    """GeneratorSASRec's forward (the all-positions pass, read at the last item) == RecBole's SASRec.forward."""
    generator = NegativeGenerator(tiny.config, tiny.dataset).eval()
    plain = SASRec(generator_config(tiny.config), tiny.dataset).eval()
    plain.load_state_dict(generator.sasrec.state_dict())
    rows = all_train_rows(tiny)
    with torch.no_grad():
        assert torch.equal(generator.sasrec.full_sort_predict(rows), plain.full_sort_predict(rows))
        assert torch.equal(generator.sasrec.forward(rows["item_id_list"], rows["item_length"]),
                           plain.forward(rows["item_id_list"], rows["item_length"]))


def test_generator_config_overrides_the_generators_sasrec(tiny):
    generator = NegativeGenerator(crs_config(tiny.root, generator_config={"n_layers": 2}), tiny.dataset)
    assert len(generator.sasrec.trm_encoder.layer) == 2 and generator.sasrec.loss_type == "CE"
    with pytest.raises(ValueError, match="generator_config has keys \\['mask_ratio'\\]"):
        NegativeGenerator(crs_config(tiny.root, generator_config={"mask_ratio": 0.3}), tiny.dataset)


def test_generator_trains_with_sasrecs_own_loss_on_the_training_rows(tiny):
    """The generator is trained exactly as a SASRec baseline: SASRec's last-position cross-entropy, on every
    training row (the generator stage reads the training loader itself, not pre-training windows)."""
    from recbole_crs.pipeline import generator_stage

    torch.manual_seed(0)
    sasrec = NegativeGenerator(tiny.config, tiny.dataset).sasrec.eval()
    plain = SASRec(generator_config(tiny.config), tiny.dataset).eval()
    plain.load_state_dict(sasrec.state_dict())
    rows = all_train_rows(tiny)
    assert torch.equal(sasrec.calculate_loss(rows), plain.calculate_loss(rows))
    logits = plain.full_sort_predict(rows)  # the last position only: one target per row
    assert torch.allclose(sasrec.calculate_loss(rows), torch.nn.functional.cross_entropy(logits, rows["item_id"]))
    _, data = generator_stage(tiny.config, tiny.dataset, tiny.train)
    assert data is tiny.train


# ---------------------------------------------------------------------------------------------- excluding positives
# A hand-built batch over items 1..6 (n_items 7): each row is a masked position with its row's MIP sequence.
EXCLUDE = torch.tensor([
    [1, 2, 3, 0, 0, 0],  # true item 2 -> allowed 4, 5, 6
    [5, 0, 0, 0, 0, 0],  # true item 5 -> allowed 1, 2, 3, 4, 6
    [6, 4, 6, 1, 0, 0],  # true item 4 -> allowed 2, 3, 5 (repeated items and padding in the sequence)
    [1, 2, 3, 4, 5, 6],  # true item 3: every item excluded -> fallback: every item but the true one
])
EXCLUDE_TRUE = torch.tensor([2, 5, 4, 3])
EXCLUDE_ALLOWED = [{4, 5, 6}, {1, 2, 3, 4, 6}, {2, 3, 5}, {1, 2, 4, 5, 6}]


def _assert_draws_exactly_the_allowed_items(negatives):
    for row, allowed in enumerate(EXCLUDE_ALLOWED):
        assert set(negatives[row].tolist()) == allowed, f"row {row}"


def test_excluded_positives_are_never_uniform_negatives():
    torch.manual_seed(0)
    sampler = UniformNegativeSampler(7)
    negatives = sampler.sample(None, None, None, EXCLUDE_TRUE, 600, exclude=EXCLUDE)
    _assert_draws_exactly_the_allowed_items(negatives)
    # without exclude: only the true item is left out
    negatives = sampler.sample(None, None, None, EXCLUDE_TRUE, 600)
    assert set(negatives[0].tolist()) == {1, 3, 4, 5, 6}


def test_excluded_positives_are_never_generator_negatives(tiny):
    torch.manual_seed(0)
    generator = NegativeGenerator(tiny.config, tiny.dataset)
    assert generator.n_items == 7
    history = torch.tensor([[1, 2, 3, 0, 0], [5, 0, 0, 0, 0], [6, 4, 6, 1, 0], [1, 2, 3, 4, 5]])
    batch, position = torch.arange(4), torch.tensor([1, 0, 2, 4])  # position 0: uniform over the allowed items
    negatives = generator.sample(history, batch, position, EXCLUDE_TRUE, 600, exclude=EXCLUDE)
    _assert_draws_exactly_the_allowed_items(negatives)
    # a generator peaked on its favourite item for row 0 (item 1, excluded there) never proposes it either
    with torch.no_grad():
        generator.sasrec.item_embedding.weight.mul_(300.0)
        generator.eval()
        favourite = generator.logits(history, batch[:1], position[:1])[0].scatter(0, EXCLUDE_TRUE[:1], -torch.inf)
    with torch.no_grad():
        top = int(favourite.argmax())
        weights = generator.sasrec.item_embedding.weight
        weights[[1, top]] = weights[[top, 1]]  # item 1 takes the favourite's embedding (checked just below)
    unrestricted = generator.sample(history, batch[:1], position[:1], EXCLUDE_TRUE[:1], 600)
    assert (unrestricted == 1).float().mean() > 0.5, "precondition: without exclusion item 1 is drawn most"
    peaked = generator.sample(history, batch, position, EXCLUDE_TRUE, 600, exclude=EXCLUDE)
    for row, allowed in enumerate(EXCLUDE_ALLOWED):
        assert set(peaked[row].tolist()) <= allowed, f"row {row}"


@pytest.mark.parametrize("sampler_name", ["uniform", "generator"])
def test_pretraining_negatives_exclude_the_rows_positives_when_configured(tiny, sampler_name):
    """Through calculate_loss on the tiny training rows: no negative is an item of its row's history or target."""
    config = crs_config(tiny.root, negatives_exclude_positives=True, n_negatives=40, mask_ratio=1.0)
    torch.manual_seed(0)
    model = CRSPretrain(config, tiny.dataset)
    inner = UniformNegativeSampler(model.n_items) if sampler_name == "uniform" else NegativeGenerator(config, tiny.dataset)
    seen = []

    class Spy:
        name = sampler_name

        def sample(self, item_seq, batch_index, position_index, true_items, n, **kwargs):
            negatives = inner.sample(item_seq, batch_index, position_index, true_items, n, **kwargs)
            seen.append((batch_index, negatives))
            return negatives

    rows = all_train_rows(tiny)
    model.calculate_loss(rows, negative_sampler=Spy())
    (batch_index, negatives), = seen
    for b in range(len(rows)):
        n = int(rows["item_length"][b])
        positives = set(rows["item_id_list"][b, :n].tolist()) | {int(rows["item_id"][b])}
        assert len(positives) < model.n_items - 1, "precondition: the row leaves an allowed item (no fallback)"
        drawn = set(negatives[batch_index == b].flatten().tolist())
        assert drawn and not drawn & positives, f"row {b}: {sorted(drawn & positives)}"
    # the switch is off by default: positives of the row (other than the true item) are drawn then
    model = CRSPretrain(crs_config(tiny.root, n_negatives=40, mask_ratio=1.0), tiny.dataset)
    assert model.negatives_exclude_positives is False
    seen.clear()
    model.calculate_loss(rows, negative_sampler=Spy())
    (batch_index, negatives), = seen
    history_items = rows["item_id_list"][batch_index]  # [M, L]
    assert (negatives.unsqueeze(2) == history_items.unsqueeze(1)).any()
    with pytest.raises(ValueError, match="negatives_exclude_positives must be True or False"):
        CRSPretrain(crs_config(tiny.root, negatives_exclude_positives="yes"), tiny.dataset)


def test_uniform_negatives_with_exclusion_are_uniform_over_the_allowed_items():
    """Chi-square over the 12 allowed items of 20 (7 excluded + the true item), 24,000 draws, fixed seed."""
    torch.manual_seed(0)
    exclude = torch.tensor([[3, 8, 9, 15, 20, 1, 0, 0, 17]])
    true = torch.tensor([11])
    negatives = UniformNegativeSampler(21).sample(None, None, None, true, 24000, exclude=exclude)
    counts = torch.bincount(negatives.flatten(), minlength=21).float()
    excluded = [0, 1, 3, 8, 9, 11, 15, 17, 20]
    assert counts[excluded].sum() == 0
    allowed = torch.tensor([i for i in range(21) if i not in excluded])
    assert len(allowed) == 12
    expected = 24000 / 12
    chi_square = ((counts[allowed] - expected) ** 2 / expected).sum().item()
    assert chi_square < 43.2  # 11 degrees of freedom: the 0.99999 quantile (a non-uniform draw gives hundreds)


# ---------------------------------------------------------------------------------------------- trainer
def _pretrain_trainer(tiny, **overrides):
    config = crs_config(tiny.root, **overrides)
    init_seed(config["seed"], config["reproducibility"])
    generator = NegativeGenerator(config, tiny.dataset)
    model = CRSPretrain(config, tiny.dataset)
    trainer = CRSPretrainTrainer(config, model, generator=generator)
    tiny.train.generator.manual_seed(config["seed"])  # the shared dataloader starts every run alike
    return trainer, pretrain_dataloader(config, tiny.train)


@pytest.mark.parametrize("mode", ["frozen", "joint"])
def test_generator_is_frozen_unless_joint(tiny, mode):
    trainer, data = _pretrain_trainer(tiny, generator_mode=mode, pretrain_stride=1)
    generator_before, model_before = params(trainer.generator), params(trainer.model)
    losses = trainer._train_epoch(data, 0)
    assert len(losses) == (3 if mode == "joint" else 2)
    assert same_params(generator_before, params(trainer.generator)) == (mode == "frozen")
    assert not same_params(model_before, params(trainer.model))


def test_trainer_logs_the_realised_sad_substitution_of_each_epoch(tiny):
    trainer, data = _pretrain_trainer(tiny, negative_sampler="uniform", pretrain_stride=1)
    seen = []
    substitute = trainer.model.substitute_attributes

    def spy(subset, items):
        corrupted, substituted = substitute(subset, items)
        seen.append(((subset != 0).sum().item(), substituted.sum().item()))
        return corrupted, substituted

    trainer.model.substitute_attributes = spy
    assert trainer.sad_substitution_summary() == ""  # nothing to report before an epoch
    trainer._train_epoch(data, 0)
    slot_rate, all_rate, slots, items = trainer.sad_substitution_stats()
    assert slots == sum(a for a, _ in seen) and slot_rate == sum(b for _, b in seen) / slots
    assert 0 < slot_rate < 0.6 and 0 <= all_rate < 0.6 and items > 0
    output = trainer._generate_train_loss_output(0, 0.0, 1.0, (1.0, 0.5))
    assert f"{slot_rate:.1%} of {slots} slots" in output and f"{all_rate:.1%} of {items} masked items" in output


def test_uniform_warmup_then_generator_negatives(tiny):
    trainer, _ = _pretrain_trainer(tiny, uniform_warmup_epochs=1)
    assert trainer.sampler_for_epoch(0).name == "uniform"
    assert trainer.sampler_for_epoch(1) is trainer.generator
    trainer, _ = _pretrain_trainer(tiny, negative_sampler="uniform")
    assert trainer.sampler_for_epoch(5).name == "uniform"
    assert trainer.negatives.uniform is trainer.model.uniform_sampler  # one uniform sampler


@pytest.mark.parametrize("sampler, warmup, expected", [
    ("generator", 0, True), ("generator", 1, True), ("generator", 2, False), ("uniform", 0, False),
])
def test_pipeline_and_trainer_ask_one_owner_whether_a_generator_is_needed(tiny, sampler, warmup, expected):
    """pretrain_epochs 2: a generator is needed unless every epoch is uniform (run_plan.needs_generator)."""
    config = crs_config(tiny.root, negative_sampler=sampler, uniform_warmup_epochs=warmup)
    assert needs_generator(config) is expected
    trainer = CRSPretrainTrainer(config, CRSPretrain(config, tiny.dataset), generator=None) if not expected else None
    assert trainer is None or not trainer.uses_generator
    if expected:
        with pytest.raises(ValueError, match="needs a trained SASRec generator"):
            CRSPretrainTrainer(config, CRSPretrain(config, tiny.dataset), generator=None)
        with pytest.raises(ValueError, match="needs a generator"):
            check_stage_inputs(config, ["pretrain"])
    else:
        check_stage_inputs(config, ["pretrain"])


class _LogRecorder:
    """Stands in for a trainer's logger: records info/warning messages, delegates the rest."""

    def __init__(self, logger):
        self.logger, self.info_messages, self.warnings = logger, [], []

    def info(self, message, *args, **kwargs):
        self.info_messages.append(str(message))

    def warning(self, message, *args, **kwargs):
        self.warnings.append(str(message))

    def __getattr__(self, name):
        return getattr(self.logger, name)


def _learning_rates_per_epoch(trainer, data):
    """Fit the trainer; per epoch, the (sampler name, optimizer learning rate) seen by every batch."""
    epochs = []
    calculate_loss = trainer.model.calculate_loss

    def spy(interaction, negative_sampler=None):
        epochs[-1].add((negative_sampler.name, trainer.optimizer.param_groups[0]["lr"]))
        return calculate_loss(interaction, negative_sampler=negative_sampler)

    train_epoch = trainer._train_epoch

    def spy_epoch(train_data, epoch_idx, *args, **kwargs):
        epochs.append(set())
        return train_epoch(train_data, epoch_idx, *args, **kwargs)

    trainer.model.calculate_loss, trainer._train_epoch = spy, spy_epoch
    trainer.logger = _LogRecorder(trainer.logger)
    trainer.fit(data, verbose=False, saved=False)
    return epochs


def test_learning_rate_switches_at_the_first_generator_epoch(tiny):
    """The paper's schedule: uniform warm-up at pretrain_learning_rate, then generator_phase_learning_rate."""
    trainer, data = _pretrain_trainer(
        tiny, pretrain_epochs=4, uniform_warmup_epochs=2, pretrain_learning_rate=0.002,
        generator_phase_learning_rate=0.0001,
    )
    epochs = _learning_rates_per_epoch(trainer, data)
    assert epochs == [{("uniform", 0.002)}] * 2 + [{("generator", 0.0001)}] * 2
    switches = [m for m in trainer.logger.info_messages if "learning rate" in m]
    assert len(switches) == 1 and "0.002 -> 0.0001 from pre-training epoch 2" in switches[0]
    assert trainer.learning_rate_for_epoch(1) == 0.002 and trainer.learning_rate_for_epoch(2) == 0.0001

    # no warm-up: the generator phase (and its learning rate) starts at epoch 0
    trainer, data = _pretrain_trainer(tiny, pretrain_learning_rate=0.002, generator_phase_learning_rate=0.0005)
    assert _learning_rates_per_epoch(trainer, data) == [{("generator", 0.0005)}] * 2


def test_learning_rate_is_unchanged_without_the_key(tiny, caplog):
    trainer, data = _pretrain_trainer(tiny, pretrain_epochs=3, uniform_warmup_epochs=1, pretrain_learning_rate=0.002)
    assert trainer.generator_phase_learning_rate is None
    epochs = _learning_rates_per_epoch(trainer, data)
    assert epochs == [{("uniform", 0.002)}, {("generator", 0.002)}, {("generator", 0.002)}]
    assert not [m for m in trainer.logger.info_messages if "learning rate" in m]

    # set, but no epoch uses the generator: unchanged, with a warning at construction
    with caplog.at_level(logging.WARNING):
        trainer, data = _pretrain_trainer(tiny, negative_sampler="uniform", generator_phase_learning_rate=0.0001)
    assert "no pre-training epoch uses generator negatives" in caplog.text
    epochs = _learning_rates_per_epoch(trainer, data)
    assert epochs == [{("uniform", trainer.config["pretrain_learning_rate"])}] * 2


@pytest.mark.parametrize("value", [0, -0.001, "fast", True, float("nan")])
def test_generator_phase_learning_rate_must_be_positive(tiny, value):
    with pytest.raises(ValueError, match="^generator_phase_learning_rate must be a number > 0") as error:
        _pretrain_trainer(tiny, generator_phase_learning_rate=value)
    assert "\n" not in str(error.value)


def test_pretraining_loss_decreases(tiny):
    trainer, data = _pretrain_trainer(
        tiny, negative_sampler="uniform", pretrain_stride=1, pretrain_learning_rate=0.02, pretrain_epochs=15
    )
    losses = [sum(trainer._train_epoch(data, epoch)) for epoch in range(15)]
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


def test_resume_continues_pretraining_exactly(tiny):
    """2 epochs straight == 1 epoch, a new trainer resuming the checkpoint, 1 more epoch (joint mode)."""
    overrides = dict(generator_mode="joint", pretrain_stride=1, pretrain_batch_size=3)

    straight, data = _pretrain_trainer(tiny, **overrides)
    straight.fit(data, verbose=False, saved=False)

    first, data = _pretrain_trainer(tiny, pretrain_epochs=1, **overrides)
    first.fit(data, verbose=False, saved=True)
    checkpoint = torch.load(first.saved_model_file, weights_only=False)
    for key in ("state_dict", "optimizer", "generator_state_dict", "generator_optimizer", "random_state"):
        assert checkpoint[key] is not None, key

    resumed, data = _pretrain_trainer(tiny, **overrides)
    torch.rand(5)  # the resumed run's global random state differs until the checkpoint restores it
    resumed.resume_checkpoint(first.saved_model_file)
    assert resumed.start_epoch == 1
    resumed.fit(data, verbose=False, saved=False)
    assert same_params(params(straight.model), params(resumed.model))
    assert same_params(params(straight.generator), params(resumed.generator))


def test_checkpoint_names_never_collide(tmp_path):
    names = {unique_checkpoint_file(str(tmp_path), "CRSPretrain-x-pretrain") for _ in range(3)}
    assert len(names) == 3


def test_pretrain_rows_cut_each_users_history_into_windows():
    dataset = SimpleNamespace(uid_field="u", inter_feat={"u": torch.tensor([1, 1, 1, 1, 1, 2, 2, 1])})
    # user 1: rows 0,1,2,3,4,7 in time order; every 3rd counting back from its last row: 7, 2. User 2: 6.
    assert pretrain_rows(dataset, 3).tolist() == [2, 6, 7]
    assert pretrain_rows(dataset, 1).tolist() == list(range(8))


# ---------------------------------------------------------------------------------------------- pipeline
def test_pipeline_is_deterministic_and_returns_the_finetuned_trainer(tiny):
    def run():
        config = crs_config(tiny.root)
        init_seed(config["seed"], config["reproducibility"])
        dataset, train, valid, test = prepare_data(config)
        trainer, score, _ = run_crs_pretrain_pipeline(config, dataset, train, valid, saved=True, verbose=False)
        assert isinstance(trainer.model, CRSFinetune) and "CRSFinetune" in os.path.basename(trainer.saved_model_file)
        return score, trainer.evaluate_modes(test, ["all", "first", "confirmed"])

    first, second = run(), run()
    assert first == second
    assert set(first[1]) == {"all", "first", "confirmed"}


def test_a_stage_hands_over_the_same_checkpoint_written_or_not(tiny):
    """stage_checkpoint: the file pre-training wrote (its last epoch) == the in-memory checkpoint, and both are
    what the next stage accepts (fine-tuning from either gives the same encoder)."""
    config = crs_config(tiny.root, negative_sampler="uniform", pretrain_epochs=1)
    trainer = pretrain(config, tiny.dataset, tiny.train, None, saved=True, verbose=False)
    written, in_memory = stage_checkpoint(trainer, saved=True), stage_checkpoint(trainer, saved=False)
    assert written["state_dict"].keys() == in_memory["state_dict"].keys()
    assert all(torch.equal(written["state_dict"][k], in_memory["state_dict"][k]) for k in written["state_dict"])
    assert written["crs_fingerprint"] == in_memory["crs_fingerprint"] and written["crs_fingerprint"]
    encoders = []
    for checkpoint in (written, in_memory):
        model = CRSFinetune(stage_config(config, model="CRSFinetune", pretrained_path=None), tiny.dataset)
        model.load_pretrained(checkpoint)
        encoders.append(params(model.encoder))
    assert same_params(*encoders)


def test_quick_start_runs_the_pipeline_and_reports_every_mode(tiny):
    result = run_recbole_crs(
        model="CRSPretrain", dataset="tiny-crs", config_dict=tiny_config(tiny.root, **dict(FAST, pretrain_epochs=1))
    )
    assert set(result["test_results"]) == {"all", "first", "confirmed"}
    assert result["test_results"]["confirmed"]["ndcg@3"] >= result["test_results"]["all"]["ndcg@3"]


def test_stages_can_run_one_at_a_time(tiny):
    config = crs_config(tiny.root, crs_stages=["generator"])
    generator_trainer, _, _ = run_crs_pretrain_pipeline(config, tiny.dataset, tiny.train, tiny.valid, verbose=False)
    assert isinstance(generator_trainer.model, SASRec)

    config = crs_config(tiny.root, crs_stages=["pretrain"], generator_path=generator_trainer.saved_model_file)
    pretrain_trainer, _, _ = run_crs_pretrain_pipeline(config, tiny.dataset, tiny.train, tiny.valid, verbose=False)
    assert isinstance(pretrain_trainer.model, CRSPretrain)
    assert pretrain_trainer.evaluate(tiny.test)["ndcg@3"] >= 0  # a pre-trained model alone can be evaluated

    config = crs_config(tiny.root, crs_stages=["finetune"], pretrained_path=pretrain_trainer.saved_model_file,
                        generator_path=generator_trainer.saved_model_file)  # the history prior
    finetune_trainer, _, _ = run_crs_pretrain_pipeline(config, tiny.dataset, tiny.train, tiny.valid, verbose=False)
    assert isinstance(finetune_trainer.model, CRSFinetune)

    config = crs_config(tiny.root, crs_stages=["pretrain"])
    with pytest.raises(ValueError, match="needs a generator"):
        run_crs_pretrain_pipeline(config, tiny.dataset, tiny.train, tiny.valid, verbose=False)
    with pytest.raises(ValueError, match="crs_stages"):
        run_crs_pretrain_pipeline(crs_config(tiny.root, crs_stages=["train"]), tiny.dataset, tiny.train, tiny.valid)


def _stages_trained(tiny, monkeypatch, caplog, **overrides):
    """Run the pipeline (one epoch a stage); returns the stage trainers that trained, in order, and the last one."""
    fitted = []
    for cls in (CRSGeneratorTrainer, CRSPretrainTrainer, CRSFinetuneTrainer):
        def fit(self, *args, _fit=cls.fit, **kwargs):
            fitted.append(type(self).__name__)
            return _fit(self, *args, **kwargs)

        monkeypatch.setattr(cls, "fit", fit)
    config = crs_config(tiny.root, **dict(dict(pretrain_epochs=1, epochs=1), **overrides))
    with caplog.at_level(logging.INFO):
        trainer, _, _ = run_crs_pretrain_pipeline(config, tiny.dataset, tiny.train, tiny.valid, saved=False)
    return fitted, trainer


@pytest.mark.parametrize("overrides", [{"negative_sampler": "uniform"}, {"uniform_warmup_epochs": 1}])
def test_default_stages_train_no_generator_that_no_epoch_uses(tiny, monkeypatch, caplog, overrides):
    """crs_stages left at its default: with only uniform negatives and no history prior the generator stage is
    skipped, with one line; the history prior alone keeps it."""
    fitted, trainer = _stages_trained(tiny, monkeypatch, caplog, history_prior_weight=0, **overrides)
    assert fitted == ["CRSPretrainTrainer", "CRSFinetuneTrainer"]
    assert isinstance(trainer.model, CRSFinetune)
    assert sum("stage generator skipped" in record.getMessage() for record in caplog.records) == 1
    caplog.clear()
    fitted, _ = _stages_trained(tiny, monkeypatch, caplog, **overrides)  # the default history prior reads it
    assert fitted == ["CRSGeneratorTrainer", "CRSPretrainTrainer", "CRSFinetuneTrainer"]
    # generator negatives in some epoch: the default stages train the generator as before
    caplog.clear()
    fitted, _ = _stages_trained(tiny, monkeypatch, caplog, uniform_warmup_epochs=0)
    assert fitted == ["CRSGeneratorTrainer", "CRSPretrainTrainer", "CRSFinetuneTrainer"]
    assert "stage generator skipped" not in caplog.text


def test_a_generator_listed_in_crs_stages_runs_even_if_unused(tiny, monkeypatch, caplog):
    stages = ["generator", "pretrain", "finetune"]
    fitted, _ = _stages_trained(tiny, monkeypatch, caplog, negative_sampler="uniform", crs_stages=stages)
    assert fitted == ["CRSGeneratorTrainer", "CRSPretrainTrainer", "CRSFinetuneTrainer"]
    assert "stage generator skipped" not in caplog.text


def test_generator_checkpoint_mismatch_gives_a_clear_error(tiny, tmp_path):
    config = crs_config(tiny.root, crs_stages=["generator"])
    trainer, _, _ = run_crs_pretrain_pipeline(config, tiny.dataset, tiny.train, tiny.valid, verbose=False)
    checkpoint = torch.load(trainer.saved_model_file, weights_only=False)

    other_dataset = dict(checkpoint, config=dict(checkpoint["config"], dataset="ml-100k-crs"))
    torch.save(other_dataset, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="trained on dataset 'ml-100k-crs'"):
        NegativeGenerator.from_checkpoint(str(tmp_path / "other.pth"), tiny.config, tiny.dataset)

    state = dict(checkpoint["state_dict"])
    state["item_embedding.weight"] = torch.zeros(50, state["item_embedding.weight"].shape[1])
    torch.save(dict(checkpoint, state_dict=state), tmp_path / "items.pth")
    with pytest.raises(ValueError, match="scores 50 item ids"):
        NegativeGenerator.from_checkpoint(str(tmp_path / "items.pth"), tiny.config, tiny.dataset)

    not_sasrec = dict(checkpoint, config=dict(checkpoint["config"], model="GRU4Rec"))
    torch.save(not_sasrec, tmp_path / "gru.pth")
    with pytest.raises(ValueError, match="must be a SASRec checkpoint"):
        NegativeGenerator.from_checkpoint(str(tmp_path / "gru.pth"), tiny.config, tiny.dataset)


def _model_yaml(model):
    """{key: value} of each of ``model``'s plugin yamls (its shared layers, then its own), by file name."""
    files = {}
    for path in model_yaml_files(model):
        with open(path) as f:
            files[os.path.basename(path)] = yaml.safe_load(f)
    return files


def test_finetune_settings_agree_with_the_pipelines(tiny):
    """The CRSPretrain pipeline fine-tunes with exactly CRSFinetune's settings: every key of CRSFinetune's yaml
    layers has the same value in a CRSPretrain config (the pipeline reads those layers; it overrides none)."""
    layers = _model_yaml("CRSFinetune")
    assert list(layers) == ["CRSEncoder.yaml", "CRSFinetune.yaml"]
    keys = set().union(*layers.values())
    pretrain, finetune = (Config(model, "tiny-crs", config_dict={"data_path": str(tiny.root)})
                          for model in ("CRSPretrain", "CRSFinetune"))
    assert {k: pretrain[k] for k in keys} == {k: finetune[k] for k in keys}
    assert not keys & set(_model_yaml("CRSPretrain")["CRSPretrain.yaml"])


def test_each_crs_setting_is_set_in_one_yaml_file():
    files = _model_yaml("CRSPretrain")
    assert list(files) == ["CRSEncoder.yaml", "CRSFinetune.yaml", "CRSPretrain.yaml"]
    seen = [key for values in files.values() for key in values]
    assert sorted(key for key in set(seen) if seen.count(key) > 1) == []


def test_every_yaml_key_is_documented():
    keys = set().union(*_model_yaml("CRSPretrain").values())
    with open(os.path.join(os.path.dirname(PROPERTIES_DIR), "docs", "method.md")) as f:
        docs = f.read()
    assert sorted(key for key in keys if f"`{key}`" not in docs) == []
