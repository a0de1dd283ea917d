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

Training objective: SASRec's original one (Kang & McAuley, ICDM 2018), next-item cross-entropy at every
position of a sequence (:meth:`GeneratorSASRec.calculate_loss`), on the same training sequences as pre-training. RecBole's
``SASRec.calculate_loss`` scores only the last position of each augmented row, which needs one row per
target; the all-position loss learns the same next-item model from ~MAX_ITEM_LIST_LENGTH times fewer rows.

Excluding the row's positives (``negatives_exclude_positives``): both samplers take an optional
``exclude`` ([M, X] item ids, 0 = padding), the items of the masked position's MIP sequence, which the user
interacted with and are likely false negatives. They are removed from the allowed set before sampling
(:func:`allowed_items`); a row whose allowed set would be empty falls back to excluding only its true item.

Which distribution belongs to a masked position: SASRec is causal, its output at position ``p - 1`` is the
next-item distribution for position ``p`` given the items before ``p``. The MIP sequence is RecBole's
``item_id_list`` followed by the row's target, so the generator runs once on ``item_id_list`` and a masked
position ``p >= 1`` reads output ``p - 1``. Position 0 has no prefix: its negatives are uniform.
"""

import copy

import torch
from recbole.model.sequential_recommender.sasrec import SASRec
from torch import nn

from recbole_crs.artifacts import check_item_fingerprint, load_checkpoint
from recbole_crs.errors import CheckpointMismatchError, CRSConfigError
from recbole_crs.model.layers import append_to_history
from recbole_crs.model.negatives import allowed_items
from recbole_crs.settings.key_rules import check_keys

# SASRec's architecture keys: a generator loaded from a checkpoint is rebuilt with the checkpoint's values.
SASREC_ARCHITECTURE_KEYS = (
    "n_layers", "n_heads", "hidden_size", "inner_size", "hidden_dropout_prob", "attn_dropout_prob",
    "hidden_act", "layer_norm_eps", "initializer_range", "MAX_ITEM_LIST_LENGTH",
)


def stage_config(config, **overrides):
    """A copy of a RecBole ``Config`` with some values replaced; ``model=`` also renames the model.

    The copy shares nothing mutable with ``config`` that a stage would change (the final dict is copied).
    """
    staged = copy.copy(config)
    staged.final_config_dict = dict(config.final_config_dict)
    for key, value in overrides.items():
        staged[key] = value
    if "model" in overrides:
        staged.model = overrides["model"]
    return staged


def check_generator_overrides(overrides):
    """``generator_config`` as a dict of SASRec keys; a :class:`CRSConfigError` names any other key."""
    overrides = dict(overrides or {})
    # MAX_ITEM_LIST_LENGTH belongs to the dataset's item_id_list, so it is not the generator's to change.
    allowed = (set(SASREC_ARCHITECTURE_KEYS) - {"MAX_ITEM_LIST_LENGTH"}) | {"learning_rate", "epochs", "weight_decay"}
    bad = sorted(set(overrides) - allowed)
    if bad:
        raise CRSConfigError(
            f"generator_config has keys {bad} that do not configure a SASRec generator; allowed: "
            f"{', '.join(sorted(allowed))}."
        )
    return overrides


def generator_config(config):
    """The SASRec config of the generator: the model's config with the ``generator_*`` overrides.

    The generator must give a full softmax, so it always trains with ``loss_type: CE``.
    """
    overrides = check_generator_overrides(config["generator_config"])
    overrides.setdefault("epochs", config["generator_epochs"])
    overrides.setdefault("learning_rate", config["generator_learning_rate"])
    return stage_config(config, model="SASRec", loss_type="CE", **overrides)


class GeneratorSASRec(SASRec):
    """RecBole's SASRec with its output at every position as a public method; the generator's model.

    :meth:`forward_all` is SASRec's forward without the final gather; RecBole's :meth:`forward` (evaluation) reads
    it at the last position, the training loss (:meth:`calculate_loss`) and the sampling read every position.
    Parameters and checkpoints are SASRec's (``model: SASRec``), so any SASRec checkpoint loads.
    """

    def forward_all(self, item_seq):
        """[B, L] -> [B, L, d]; output ``j`` encodes items ``0..j`` (causal) and predicts item ``j + 1``."""
        positions = torch.arange(item_seq.size(1), device=item_seq.device).unsqueeze(0)
        hidden = self.item_embedding(item_seq) + self.position_embedding(positions)
        hidden = self.dropout(self.LayerNorm(hidden))
        attention_mask = self.get_attention_mask(item_seq)
        return self.trm_encoder(hidden, attention_mask, output_all_encoded_layers=False)[-1]

    def forward(self, item_seq, item_seq_len):
        """SASRec's forward: [B, L], [B] -> [B, d], the output at each row's last item."""
        return self.gather_indexes(self.forward_all(item_seq), item_seq_len - 1)

    def calculate_loss(self, interaction):
        """Next-item cross-entropy at every position of ``item_id_list + [target]`` (Kang & McAuley's objective).

        The sequence ``s`` ([B, L + 1], zeros after the target) is read as input ``s[:, :L]`` and labels
        ``s[:, 1:]``: output ``j`` predicts item ``j + 1``; padded labels are skipped.
        """
        sequence, _ = append_to_history(
            interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN], interaction[self.POS_ITEM_ID]
        )  # [B, L + 1]
        inputs, labels = sequence[:, :-1], sequence[:, 1:]  # [B, L], [B, L]
        output = self.forward_all(inputs)  # [B, L, d]
        has_label = labels != 0
        logits = output[has_label] @ self.item_embedding.weight.t()  # [N, n_items]
        return torch.nn.functional.cross_entropy(logits, labels[has_label])


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
        """A SASRec checkpoint (RecBole's or this plugin's) as the generator, checked to fit ``dataset``.

        ``checkpoint``: a path (``generator_path``) or a loaded checkpoint dict (the pipeline hands its generator
        stage's over this way, written or not). Every check (model, dataset name, item count, item-id fingerprint,
        length) runs before SASRec is built.
        """
        path = "this run's generator stage" if isinstance(checkpoint, dict) else checkpoint
        if not isinstance(checkpoint, dict):
            checkpoint = load_checkpoint(path)
        saved_config = checkpoint.get("config")
        state = checkpoint.get("state_dict")
        if saved_config is None or state is None:
            raise CheckpointMismatchError(
                f"'{path}' is not a RecBole checkpoint (no config/state_dict); pass a SASRec .pth file."
            )
        if str(saved_config["model"]).lower() != "sasrec":
            raise CheckpointMismatchError(
                f"generator_path '{path}' holds a {saved_config['model']} model; the negative generator must be a "
                "SASRec checkpoint (train one with --model SASRec, or leave generator_path empty so the "
                "pipeline trains it)."
            )
        if saved_config["dataset"] != config["dataset"]:
            raise CheckpointMismatchError(
                f"generator_path '{path}' was trained on dataset '{saved_config['dataset']}', not "
                f"'{config['dataset']}': its item ids mean different things here. Use a SASRec trained on "
                f"'{config['dataset']}'."
            )
        weights = ("item_embedding.weight", "position_embedding.weight")
        if not all(key in state for key in weights):
            raise CheckpointMismatchError(
                f"generator_path '{path}' holds no SASRec weights ({', '.join(weights)} missing): pass a checkpoint "
                "written by a SASRec run (--model SASRec), or leave generator_path empty so the pipeline trains it."
            )
        n_items = dataset.num(config["ITEM_ID_FIELD"])
        saved_items = state["item_embedding.weight"].shape[0]
        if saved_items != n_items:
            raise CheckpointMismatchError(
                f"generator_path '{path}' scores {saved_items} item ids but dataset '{config['dataset']}' has "
                f"{n_items}: the checkpoint was trained on a different version of the data. Retrain the generator."
            )
        # Same name and count do not mean same items: compare the item tokens in id order.
        check_item_fingerprint(checkpoint, dataset, path, what="generator_path")
        saved_length = state["position_embedding.weight"].shape[0]
        if saved_length < config["MAX_ITEM_LIST_LENGTH"]:
            raise CheckpointMismatchError(
                f"generator_path '{path}' handles sequences of at most {saved_length} items but "
                f"MAX_ITEM_LIST_LENGTH is {config['MAX_ITEM_LIST_LENGTH']}; use a generator trained with at least "
                "that length."
            )
        # a key the checkpoint's config lacks keeps this run's value; load_state_dict below catches a mismatch
        architecture = {key: saved_config[key] for key in SASREC_ARCHITECTURE_KEYS if key in saved_config}
        sasrec_config = stage_config(config, model="SASRec", loss_type="CE", **architecture)
        sasrec = GeneratorSASRec(sasrec_config, dataset)
        try:
            sasrec.load_state_dict(state)
        except RuntimeError as error:  # torch lists every missing, unexpected or reshaped tensor
            problem = " ".join(str(error).split())[:300]
            raise CheckpointMismatchError(
                f"generator_path '{path}' does not fit the SASRec its config describes ({problem}): pass a "
                "checkpoint written by a SASRec run, unchanged."
            ) from None
        return cls(config, dataset, sasrec=sasrec)

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
        """The generator's own loss (:meth:`GeneratorSASRec.calculate_loss`), for ``joint`` training."""
        return self.sasrec.calculate_loss(interaction)
