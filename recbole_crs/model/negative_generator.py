"""Negative samplers for MIP pre-training: RecBole's SASRec as a generator, and uniform sampling.

Reference: Zhou et al., "Leveraging Historical Interaction Data for Improving Conversational Recommender
System", CIKM 2020 (pre-training with negatives from a SASRec "negative generator", as ELECTRA's generator
feeds its discriminator).

Deviations from the authors' code (docs/method.md):

* the distribution is ``softmax(logits / temperature)`` over SASRec's raw logits; the authors take a softmax
  over ``sigmoid(logits)``, which makes any two items' probabilities differ by less than a factor e, so
  their "hard" negatives are close to uniform;
* the generator is RecBole's causal SASRec (the authors' "SASRec" is bidirectional); it samples in eval
  mode (no dropout) under ``no_grad``;
* sampling is one batched ``torch.multinomial`` over logits where the true item is set to ``-inf``, so a
  negative never equals the true item (the authors loop in Python per position and redraw at most six
  times, then keep the true item).

Training: the generator stage trains the SASRec exactly as RecBole trains a SASRec baseline (every training row,
its last-position cross-entropy, early stopping on validation; :mod:`recbole_crs.model.generator_sasrec`).

Excluding the row's positives (``negatives_exclude_positives``): both samplers take an optional
``exclude`` ([M, X] item ids, 0 = padding), the items of the masked position's MIP sequence, which the user
interacted with and are likely false negatives. They are removed from the allowed set before sampling
(:func:`allowed_items`); a row whose allowed set would be empty falls back to excluding only its true item.

Which distribution belongs to a masked position: SASRec is causal, its output at position ``p - 1`` is the
next-item distribution for position ``p`` given the items before ``p``. The MIP sequence is RecBole's
``item_id_list`` followed by the row's target, so the generator runs once on ``item_id_list`` and a masked
position ``p >= 1`` reads output ``p - 1``. Position 0 has no prefix: its negatives are uniform.
"""

import torch
from torch import nn

from recbole_crs.model.generator_sasrec import GeneratorSASRec, generator_config, load_generator_sasrec
from recbole_crs.model.negatives import allowed_items
from recbole_crs.settings.key_rules import check_keys

class NegativeGenerator(nn.Module):
    """RecBole's SASRec as the negative generator; it samples MIP negatives from its next-item distribution.

    Args:
        config: the pre-training config; ``generator_temperature`` and the generator's SASRec config
            (:func:`generator_config`) are read from it.
        dataset: the dataset SASRec is built for.
        sasrec: an already built SASRec (used when loading a checkpoint); built from config if None.
    """

    name = "generator"

    def __init__(self, config, dataset, sasrec=None):
        super().__init__()
        check_keys(config, ("generator_temperature",))
        self.temperature = config["generator_temperature"]
        self.dataset_name = config["dataset"]
        self.sasrec = sasrec if sasrec is not None else GeneratorSASRec(generator_config(config), dataset)
        self.n_items = self.sasrec.n_items

    @classmethod
    def from_checkpoint(cls, checkpoint, config, dataset):
        """A SASRec checkpoint (RecBole's or this plugin's) as the generator, checked to fit ``dataset``
        (:func:`~recbole_crs.model.generator_sasrec.load_generator_sasrec`)."""
        return cls(config, dataset, sasrec=load_generator_sasrec(checkpoint, config, dataset))

    def sequence_output(self, item_seq):
        """[B, L] -> [B, L, d] SASRec outputs at every position (:meth:`GeneratorSASRec.forward_all`)."""
        return self.sasrec.forward_all(item_seq)

    def logits(self, item_seq, batch_index, position_index):
        """Raw next-item logits for masked positions ``(batch_index, position_index)`` (all >= 1).

        Returns [M, n_items]; column 0 (padding) is -inf.
        """
        output = self.sequence_output(item_seq)  # [B, L, d]
        state = output[batch_index, position_index - 1]  # [M, d]
        logits = state @ self.sasrec.item_embedding.weight.t()  # [M, n_items]
        logits[:, 0] = -torch.inf
        return logits

    @torch.no_grad()
    def sample(self, item_seq, batch_index, position_index, true_items, n_negatives, exclude=None):
        """Sample negatives for masked positions of the MIP sequence ``item_id_list + [target]``.

        Args:
            item_seq: [B, L] RecBole ``item_id_list`` (the MIP sequence without its last item).
            batch_index, position_index: [M] row and position (0 .. item_length) of each masked item.
            true_items: [M] the masked items.
            exclude: optional [M, X] item ids (0 = padding) that are never drawn for that position
                (``negatives_exclude_positives``: the items of its row's MIP sequence).
        Returns:
            [M, n_negatives] item ids drawn from ``softmax(logits / temperature)`` with the true item,
            padding and ``exclude`` removed (:func:`allowed_items`); uniform over those for position 0, which
            has no prefix.
        """
        was_training = self.training
        self.eval()  # no dropout while sampling
        try:
            logits = torch.zeros(len(true_items), self.n_items, device=true_items.device)  # uniform
            has_prefix = position_index > 0
            if has_prefix.any():
                logits[has_prefix] = self.logits(item_seq, batch_index[has_prefix], position_index[has_prefix])
            logits = logits / self.temperature
            logits = logits.masked_fill(~allowed_items(true_items, self.n_items, exclude), -torch.inf)
            probabilities = torch.softmax(logits, dim=-1)
            return torch.multinomial(probabilities, n_negatives, replacement=True)
        finally:
            self.train(was_training)

    def calculate_loss(self, interaction):
        """The generator's own loss (SASRec's next-item cross-entropy), for ``joint`` training."""
        return self.sasrec.calculate_loss(interaction)
