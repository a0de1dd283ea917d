"""The generator's model: RecBole's SASRec with its output at every position, its config, and its checked loading.

The pipeline's generator stage trains it on the training rows exactly as RecBole trains a SASRec baseline
(:func:`generator_config`); :class:`~recbole_crs.model.negative_generator.NegativeGenerator` samples MIP negatives
from it, and :class:`~recbole_crs.model.crsfinetune.CRSFinetune` reads it as its history prior
(``history_prior_weight``).
"""

import copy

import torch
from recbole.model.sequential_recommender.sasrec import SASRec

from recbole_crs.artifacts import check_item_fingerprint, load_checkpoint
from recbole_crs.errors import CheckpointMismatchError, CRSConfigError

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
    overrides.setdefault("learning_rate", config["generator_learning_rate"] or config["learning_rate"])
    return stage_config(config, model="SASRec", loss_type="CE", **overrides)


class GeneratorSASRec(SASRec):
    """RecBole's SASRec with its output at every position as a public method; the generator's model.

    :meth:`forward_all` is SASRec's forward without the final gather; RecBole's :meth:`forward` (training loss and
    evaluation) reads it at each row's last position, negative sampling at every position. Parameters, loss and
    checkpoints are SASRec's (``model: SASRec``), so any SASRec checkpoint loads.
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


def load_generator_sasrec(checkpoint, config, dataset, what="generator_path"):
    """A :class:`GeneratorSASRec` from a SASRec checkpoint (RecBole's or this plugin's), checked to fit ``dataset``.

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
            f"{what} '{path}' holds a {saved_config['model']} model; the negative generator must be a "
            "SASRec checkpoint (train one with --model SASRec, or leave generator_path empty so the "
            "pipeline trains it)."
        )
    if saved_config["dataset"] != config["dataset"]:
        raise CheckpointMismatchError(
            f"{what} '{path}' was trained on dataset '{saved_config['dataset']}', not "
            f"'{config['dataset']}': its item ids mean different things here. Use a SASRec trained on "
            f"'{config['dataset']}'."
        )
    weights = ("item_embedding.weight", "position_embedding.weight")
    if not all(key in state for key in weights):
        raise CheckpointMismatchError(
            f"{what} '{path}' holds no SASRec weights ({', '.join(weights)} missing): pass a checkpoint "
            "written by a SASRec run (--model SASRec), or leave generator_path empty so the pipeline trains it."
        )
    n_items = dataset.num(config["ITEM_ID_FIELD"])
    saved_items = state["item_embedding.weight"].shape[0]
    if saved_items != n_items:
        raise CheckpointMismatchError(
            f"{what} '{path}' scores {saved_items} item ids but dataset '{config['dataset']}' has "
            f"{n_items}: the checkpoint was trained on a different version of the data. Retrain the generator."
        )
    # Same name and count do not mean same items: compare the item tokens in id order.
    check_item_fingerprint(checkpoint, dataset, path, what="generator_path")
    saved_length = state["position_embedding.weight"].shape[0]
    if saved_length < config["MAX_ITEM_LIST_LENGTH"]:
        raise CheckpointMismatchError(
            f"{what} '{path}' handles sequences of at most {saved_length} items but "
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
            f"{what} '{path}' does not fit the SASRec its config describes ({problem}): pass a "
            "checkpoint written by a SASRec run, unchanged."
        ) from None
    return sasrec
