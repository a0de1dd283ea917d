r"""
CRSPretrain
################################################

Reference:
    Kun Zhou, Wayne Xin Zhao, Hui Wang, Sirui Wang, Fuzheng Zhang, Zhongyuan Wang and Ji-Rong Wen.
    "Leveraging Historical Interaction Data for Improving Conversational Recommender System." CIKM 2020.

``--model CRSPretrain`` runs the whole method, not this model alone: ``quick_start`` hands it to the pipeline
(:mod:`recbole_crs.pipeline`, stages ``crs_stages``): a SASRec negative generator is trained (or loaded from
``generator_path``), this model is pre-trained with its negatives, and its encoders initialise a
:class:`~recbole_crs.model.crsfinetune.CRSFinetune` model, which is fine-tuned and is what the run evaluates
and returns (its checkpoint is ``CRSFinetune-<dataset>-finetune-*.pth``).

This model is the pre-training *discriminator*: an item-based Transformer over the interaction history and an
attribute-based Transformer over an attribute sequence (:class:`~recbole_crs.model.layers.CRSEncoder`),
trained with two objectives:

* **MIP** (masked item prediction): items of the sequence are replaced by ``[MASK]`` (each real position
  with probability ``mask_ratio``, the last one always); for every masked position a random non-empty subset
  of the masked item's attributes goes through the attribute Transformer, is fused with the item-side state
  at that position, and the true item is scored against ``n_negatives`` negatives with
  ``-log sigmoid(s_pos - s_neg)``. Negatives come from a negative sampler passed in by the trainer (RecBole's
  SASRec as generator, :mod:`recbole_crs.model.negative_generator`, or uniform). With
  ``negatives_exclude_positives`` no negative of a masked position is an item of its row's MIP sequence
  (history and target: items the user interacted with, likely false negatives).
* **SAD** (substituted attribute discrimination): in that subset, a fraction ``sad_substitute_rate`` of the
  attributes (in expectation, at every subset size) is replaced by attributes the item lacks, and a subset of
  two or more attributes always keeps at least one original; every real slot of the substituted sequence is
  classified original vs substituted from its attribute-side output and the item-side state at the masked
  position.

Loss ``mip_weight * L_MIP + sad_weight * L_SAD``, returned as the tuple ``(mip_weight * L_MIP, sad_weight * L_SAD)`` so that RecBole
logs both parts. The masked sequence is RecBole's ``item_id_list`` followed by the row's target item
(``[B, MAX_ITEM_LIST_LENGTH + 1]``): the target is the "last" item that is always masked, which is exactly
the fine-tuning situation (history + ``[MASK]`` -> next item).

Deviations from the authors' code (docs/method.md):

* ``-log sigmoid(s_pos - s_neg)`` on raw scores (the authors apply a sigmoid twice, giving tiny gradients);
* SAD ignores padding slots (the authors label them "original" and count them in the loss);
* MIP scores the clean subset and SAD sees the substituted one (two attribute-Transformer inputs, one batched
  call); the attribute-side state is the mean over real slots, not the output at the last slot;
* separate embedding tables for items and attributes (the authors share one table), no hard-coded sizes;
* SAD substitutes a configured fraction of slots (the authors' ``min(1, 2 / |subset|)`` substitutes every slot
  of most subsets on datasets whose items have few attributes, e.g. 91% of masked items on ml-100k-crs, which
  makes "substituted" the right answer almost always).

``full_sort_predict`` scores the next item exactly like fine-tuning (history + ``[MASK]``, the row's confirmed
attributes), so a pre-trained model can be evaluated before fine-tuning.
"""

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from torch import nn

from recbole_crs.model.attribute_sampling import item_attribute_table, sample_attribute_subset
from recbole_crs.model.layers import CRSEncoder, append_to_history
from recbole_crs.model.negatives import UniformNegativeSampler
from recbole_crs.settings.key_rules import check_keys


def sad_slot_probabilities(rate, max_size):
    """Per-slot substitution probability for each subset size 0..max_size ([max_size + 1] float tensor).

    Size 1: ``rate``. Size n >= 2: the q with ``q - q**n / n == rate``, because when all n slots are drawn
    (probability q**n) one is restored: the expected substituted fraction is q - q**n / n. That function
    increases on [0, 1] up to (n - 1) / n, so q = 1 where ``rate`` exceeds it (bisection, exact to 1e-12).
    """
    probabilities = [0.0, float(rate)]
    for n in range(2, max_size + 1):
        low, high = 0.0, 1.0
        if 1.0 - 1.0 / n <= rate:
            low = 1.0
        else:
            for _ in range(60):
                middle = (low + high) / 2
                low, high = (middle, high) if middle - middle**n / n < rate else (low, middle)
        probabilities.append(low)
    return torch.tensor(probabilities[: max_size + 1])


class CRSPretrain(SequentialRecommender):
    r"""MIP + SAD pre-training of the item- and attribute-based Transformers (the ELECTRA-style discriminator).

    The pipeline's middle stage: ``--model CRSPretrain`` runs generator -> pre-training -> fine-tuning and ends
    with a :class:`~recbole_crs.model.crsfinetune.CRSFinetune` model (see the module docstring).
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        self.max_attribute_length = config["max_attribute_length"]  # also the attribute subsets' size cap
        # pre-training hyper-parameters
        self.mask_ratio = config["mask_ratio"]
        self.n_negatives = config["n_negatives"]
        self.sad_substitute_rate = config["sad_substitute_rate"]
        self.mip_weight = config["mip_weight"]
        self.sad_weight = config["sad_weight"]
        # The rules validate() applies before a run, for a model built directly (one place: settings/key_rules.py).
        check_keys(config, ("negatives_exclude_positives", "mask_ratio", "n_negatives", "substitute_k",
                            "sad_substitute_rate"))
        self.negatives_exclude_positives = config["negatives_exclude_positives"] or False

        # dataset information
        self.CONFIRMED = dataset.confirmed_field
        self.n_attributes = dataset.n_attributes
        table, counts = item_attribute_table(dataset)
        self.register_buffer("item_attribute_table", table, persistent=False)  # [n_items, W], ascending
        self.register_buffer("item_attribute_count", counts, persistent=False)  # [n_items]
        self.register_buffer(  # [max_attribute_length + 1], indexed by subset size
            "sad_slot_probability", sad_slot_probabilities(self.sad_substitute_rate, self.max_attribute_length), persistent=False
        )
        self.sad_counts = None  # [4] counts of the last calculate_loss call (see sad_substitution_counts)

        # the sequence is item_id_list + [target]: one position more than MAX_ITEM_LIST_LENGTH
        self.encoder = CRSEncoder.from_config(config, self.n_items, self.n_attributes)
        # SAD head: logit(slot j is original) = (W f_aj) . h_mask
        self.sad_projection = nn.Linear(self.encoder.hidden_size, self.encoder.hidden_size)
        self.sad_projection.apply(self.encoder._init_weights)
        self.uniform_sampler = UniformNegativeSampler(self.n_items)

    # ------------------------------------------------------------------ corruption (no parameters)
    def mask_sequence(self, item_seq, item_seq_len, target):
        """Build the MIP sequence and mask it.

        Args:
            item_seq: [B, L] history (RecBole ``item_id_list``, right-padded), item_seq_len: [B], target: [B].
        Returns:
            sequence [B, L+1] (history + target, zeros after), real [B, L+1] bool,
            masked_seq [B, L+1] (masked positions hold ``mask_token``), masked [B, L+1] bool.
        """
        batch = torch.arange(len(item_seq), device=item_seq.device)
        sequence, real = append_to_history(item_seq, item_seq_len, target)
        masked = (torch.rand(sequence.shape, device=sequence.device) < self.mask_ratio) & real
        masked[batch, item_seq_len] = True  # the last item is always masked
        masked_seq = sequence.masked_fill(masked, self.encoder.mask_token)
        return sequence, real, masked_seq, masked

    def sample_attribute_subset(self, items):
        """A random non-empty subset of each item's attributes, shuffled, left-aligned
        (:func:`~recbole_crs.model.attribute_sampling.sample_attribute_subset`).

        [M] items -> [M, A] attribute ids (0 = padding), A = min(max_attribute_length, widest item).
        The subset size is uniform in 1 .. min(#attributes, A); items without attributes get an empty row.
        """
        return sample_attribute_subset(
            self.item_attribute_table, self.item_attribute_count, items, self.max_attribute_length
        )

    def sample_lacking_attributes(self, items, n_slots):
        """Uniform attributes the item does NOT have: [M] items -> [M, n_slots] (0 where it has them all).

        Draws a rank among the item's missing attributes and maps it to an id by skipping over the item's own
        (ascending) attributes: exact, no rejection loop.
        """
        own = self.item_attribute_table[items]  # [M, W] ascending, 0 = padding
        own = own.masked_fill(own == 0, self.n_attributes)  # padding sorts last and is never skipped
        n_missing = (self.n_attributes - 1 - self.item_attribute_count[items]).clamp(min=0)  # [M]
        rank = (torch.rand(len(items), n_slots, device=items.device) * n_missing.unsqueeze(1)).long() + 1
        for j in range(own.size(1)):
            rank = rank + (rank >= own[:, j : j + 1]).long()
        return rank.masked_fill(n_missing.unsqueeze(1) == 0, 0)

    def substitute_attributes(self, subset, items):
        """SAD corruption: substitute a fraction ``sad_substitute_rate`` of the real slots, keep one original.

        Each real slot of a subset of size n is substituted independently with probability
        ``sad_slot_probability[n]`` by an attribute the item lacks (never where the item lacks none); if that
        substitutes every slot of a subset with n >= 2, its slot with the largest draw is restored, so at least
        one original attribute remains. ``sad_slot_probability`` compensates for the restoring: the expected
        fraction of substituted slots is ``sad_substitute_rate`` at every size n (capped at (n - 1) / n).

        Args:
            subset: [M, A] attribute ids (0 = padding), items: [M] their items.
        Returns:
            corrupted [M, A] and substituted [M, A] bool (True exactly where a slot was replaced; padding never).
        """
        real = subset != 0
        size = real.sum(dim=1, keepdim=True)  # [M, 1]
        probability = self.sad_slot_probability[size]  # [M, 1]
        replacement = self.sample_lacking_attributes(items, subset.size(1))  # [M, A]
        draw = torch.rand(subset.shape, device=subset.device)
        substituted = real & (draw < probability) & (replacement != 0)
        # all n >= 2 slots substituted: restore the one with the largest draw (uniform among them: the draws of
        # a fully substituted subset are i.i.d. uniform below the probability)
        everything = (substituted.sum(dim=1, keepdim=True) == size) & (size >= 2)  # [M, 1]
        restore = F.one_hot(draw.masked_fill(~real, -1.0).argmax(dim=1), subset.size(1)).bool() & everything
        substituted = substituted & ~restore
        return torch.where(substituted, replacement, subset), substituted

    @staticmethod
    def sad_substitution_counts(subset, substituted):
        """[4] long tensor: real slots, substituted slots, subsets with a real slot, entirely substituted subsets."""
        real = subset != 0
        size = real.sum(dim=1)
        changed = substituted.sum(dim=1)
        return torch.stack([size.sum(), changed.sum(), (size > 0).sum(), ((changed == size) & (size > 0)).sum()])

    # ------------------------------------------------------------------ model
    def forward(self, masked_seq, real, batch_index, position_index, subset, corrupted):
        """Discriminator pass.

        Args:
            masked_seq, real: [B, S] masked item sequence and its real positions.
            batch_index, position_index: [M] masked positions.
            subset, corrupted: [M, A] clean (MIP) and substituted (SAD) attribute sequences.
        Returns:
            user_state [M, d] (fusion of item-side state and clean attribute state), item_state [M, d],
            corrupted_outputs [M, A, d] (attribute Transformer outputs of the substituted sequence).
        """
        item_state = self.encoder.encode_items(masked_seq, real)[batch_index, position_index]  # [M, d]
        outputs, pooled = self.encoder.encode_attributes(torch.cat([subset, corrupted], dim=0))  # [2M, A, d], [2M, d]
        n = len(subset)
        user_state = self.encoder.fuse(item_state, pooled[:n])
        return user_state, item_state, outputs[n:]

    def sad_logits(self, corrupted_outputs, item_state):
        """[M, A, d], [M, d] -> [M, A] logits that a slot holds an original attribute of the masked item."""
        return (self.sad_projection(corrupted_outputs) * item_state.unsqueeze(1)).sum(dim=-1)

    @staticmethod
    def mip_loss(pos_score, neg_score):
        """``-log sigmoid(s_pos - s_neg)`` averaged over masked positions and negatives ([M], [M, K])."""
        return -F.logsigmoid(pos_score.unsqueeze(1) - neg_score).mean()

    @staticmethod
    def sad_loss(logits, corrupted, substituted):
        """BCE over real slots only (label 1 = original, 0 = substituted); padding slots contribute nothing."""
        real = corrupted != 0
        if not real.any():
            return logits.sum() * 0.0
        labels = (~substituted).to(logits.dtype)
        return F.binary_cross_entropy_with_logits(logits[real], labels[real])

    def calculate_loss(self, interaction, negative_sampler=None):
        """``(mip_weight * L_MIP, sad_weight * L_SAD)`` for a batch of RecBole sequential rows.

        ``negative_sampler`` has ``sample(item_seq, batch_index, position_index, true_items, n)``; uniform if None.
        With ``negatives_exclude_positives`` it is also passed ``exclude=`` [M, L + 1], each masked position's
        row of the MIP sequence (0 = padding), whose items it never draws.
        """
        item_seq = interaction[self.ITEM_SEQ]  # [B, L]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]  # [B]
        target = interaction[self.POS_ITEM_ID]  # [B]
        sequence, real, masked_seq, masked = self.mask_sequence(item_seq, item_seq_len, target)
        batch_index, position_index = masked.nonzero(as_tuple=True)  # [M], [M]
        true_items = sequence[batch_index, position_index]  # [M]

        subset = self.sample_attribute_subset(true_items)  # [M, A]
        corrupted, substituted = self.substitute_attributes(subset, true_items)
        self.sad_counts = self.sad_substitution_counts(subset, substituted)  # read by CRSPretrainTrainer's log
        user_state, item_state, corrupted_outputs = self.forward(
            masked_seq, real, batch_index, position_index, subset, corrupted
        )

        sampler = negative_sampler or self.uniform_sampler
        history = sequence[:, :-1].masked_fill(~real[:, 1:], 0)  # [B, L] item_id_list, padding zeroed
        if self.negatives_exclude_positives:
            exclude = sequence[batch_index]  # [M, L + 1] the row's history and target, padding 0
            negatives = sampler.sample(history, batch_index, position_index, true_items, self.n_negatives,
                                       exclude=exclude)  # [M, K]
        else:
            negatives = sampler.sample(history, batch_index, position_index, true_items, self.n_negatives)  # [M, K]
        pos_score = self.encoder.score_items(user_state, true_items.unsqueeze(1)).squeeze(1)  # [M]
        neg_score = self.encoder.score_items(user_state, negatives)  # [M, K]
        mip = self.mip_loss(pos_score, neg_score)
        sad = self.sad_loss(self.sad_logits(corrupted_outputs, item_state), corrupted, substituted)
        return self.mip_weight * mip, self.sad_weight * sad

    # ------------------------------------------------------------------ next-item scoring (as fine-tuning)
    def next_item_state(self, interaction):
        """History + ``[MASK]`` and the row's confirmed attributes -> [B, d] user state."""
        return self.encoder.next_item_state(
            interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN], interaction[self.CONFIRMED]
        )

    def predict(self, interaction):
        user_state = self.next_item_state(interaction)  # [B, d]
        return self.encoder.score_items(user_state, interaction[self.ITEM_ID].unsqueeze(1)).squeeze(1)  # [B]

    def full_sort_predict(self, interaction):
        return self.encoder.score_all_items(self.next_item_state(interaction))  # [B, n_items]
