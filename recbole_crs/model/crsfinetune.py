r"""
CRSFinetune
################################################

Reference:
    Kun Zhou, Wayne Xin Zhao, Hui Wang, Sirui Wang, Fuzheng Zhang, Zhongyuan Wang and Ji-Rong Wen.
    "Leveraging Historical Interaction Data for Improving Conversational Recommender System." CIKM 2020.

Conversational recommendation with the encoders pre-trained by
:class:`~recbole_crs.model.crspretrain.CRSPretrain`: the history (RecBole ``item_id_list``) followed by
``[MASK]`` goes through the item-based Transformer, the attributes the user confirmed in the target row's
conversation go through the attribute-based Transformer, and the fused state scores every item by dot
product. This is MIP at the last position, which pre-training always masks, so nothing new is learned from
scratch: the whole model is :class:`~recbole_crs.model.layers.CRSEncoder`.

Losses (``loss_type``):

* ``BPR``: ``-log sigmoid(s_pos - s_neg)`` against ``bpr_negatives`` uniform negatives per row plus the
  items rejected in the row's conversation (when the data has them); the paper's pairwise objective, on raw
  scores (the authors apply a sigmoid twice);
* ``CE``: cross-entropy over all items (RecBole's usual sequential loss); rejected items are negatives
  like every other item, and ``rejected_weight > 0`` adds the BPR term against them on top.

Deviations from the authors' code (docs/method.md): the pairwise loss is on raw scores (above); ``CE`` is the
default loss and ``finetune_rows: all`` the default training rows (history rows read an empty attribute
sequence; the paper fine-tunes on the conversational data), both chosen on validation; the encoder's own deviations
are listed in :mod:`recbole_crs.model.layers`.

The model is initialised from a pre-trained checkpoint with :meth:`load_pretrained` (the pipeline does that;
``pretrained_path`` in the config does it at construction); without one it is "the same architecture
without pre-training". ``full_sort_predict`` scores every item and never masks: restricting to the
conversation's candidates (``crs_candidates``) is the trainer's job.
"""

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender

from recbole_crs.artifacts import FINGERPRINT_KEY, check_item_fingerprint, dataset_items, load_checkpoint
from recbole_crs.errors import CheckpointMismatchError, PretrainedCheckpointError
from recbole_crs.model.layers import CRSEncoder
from recbole_crs.model.negatives import uniform_negatives
from recbole_crs.settings.key_rules import check_keys

ENCODER_PREFIX = "encoder."


class CRSFinetune(SequentialRecommender):
    r"""History + confirmed attributes -> next item, with pre-trained item and attribute Transformers."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # fine-tuning hyper-parameters (the encoder's are CRSEncoder.yaml's; they must match the pre-trained model's)
        self.loss_type = config["loss_type"]
        self.bpr_negatives = config["bpr_negatives"]
        self.rejected_weight = config["rejected_weight"] or 0.0
        check_keys(config, ("loss_type",))  # the rule validate() applies before a run (validation/key_rules.py)

        # dataset information
        self.dataset_name = config["dataset"]
        self.CONFIRMED = dataset.confirmed_field
        rejected = dataset.rejected_field
        self.REJECTED = rejected if rejected and rejected in dataset.field2type else None
        self.n_attributes = dataset.n_attributes
        self._items = dataset_items(dataset)  # what each item id means, for load_pretrained's check

        self.encoder = CRSEncoder.from_config(config, self.n_items, self.n_attributes)  # history + [MASK]
        if config["pretrained_path"]:
            self.load_pretrained(config["pretrained_path"])

    # ------------------------------------------------------------------ pre-trained weights
    def load_pretrained(self, checkpoint):
        """Initialise the encoders from a pre-trained checkpoint (a path or a loaded checkpoint dict).

        Checks that it was trained on this dataset and that every encoder tensor is present with the same
        shape; raises :class:`PretrainedCheckpointError` naming the mismatch otherwise.
        """
        source = checkpoint if isinstance(checkpoint, str) else "the pre-trained model"
        from_file = isinstance(checkpoint, str)
        if from_file:
            checkpoint = load_checkpoint(checkpoint)
        saved_config, state = checkpoint.get("config"), checkpoint.get("state_dict")
        if saved_config is None or state is None:
            raise PretrainedCheckpointError(f"{source} is not a RecBole checkpoint (no config/state_dict).")
        if saved_config["dataset"] != self.dataset_name:
            raise PretrainedCheckpointError(
                f"{source} was pre-trained on dataset '{saved_config['dataset']}', not '{self.dataset_name}': its "
                f"item and attribute ids mean different things here. Pre-train on '{self.dataset_name}'."
            )
        try:
            if from_file or checkpoint.get(FINGERPRINT_KEY):  # a hand-built dict may carry none
                check_item_fingerprint(checkpoint, self._items, source, what="pre-trained model")
        except CheckpointMismatchError as error:
            raise PretrainedCheckpointError(str(error)) from None
        encoder_state = {k[len(ENCODER_PREFIX):]: v for k, v in state.items() if k.startswith(ENCODER_PREFIX)}
        if not encoder_state:
            raise PretrainedCheckpointError(
                f"{source} holds no encoder weights ('{ENCODER_PREFIX}*'): it was written by "
                f"{saved_config['model']}, not by CRSPretrain/CRSFinetune: pass the checkpoint of a pretrain stage "
                "(CRSPretrain-<dataset>-pretrain-*.pth)."
            )
        own = self.encoder.state_dict()
        missing, unexpected = sorted(set(own) - set(encoder_state)), sorted(set(encoder_state) - set(own))
        if missing or unexpected:
            raise PretrainedCheckpointError(
                f"{source} does not match this model's encoder: missing {missing[:5]}, unexpected "
                f"{unexpected[:5]}. Use the same n_layers / attribute_n_layers as in pre-training."
            )
        named_sizes = {
            "item_embedding.weight": ("item ids (+ [MASK])", "n_items"),
            "attribute_embedding.weight": ("attribute ids", "n_attributes"),
            "position_embedding.weight": ("positions (MAX_ITEM_LIST_LENGTH + 1)", "MAX_ITEM_LIST_LENGTH"),
        }
        for key, tensor in own.items():
            saved = encoder_state[key]
            if saved.shape == tensor.shape:
                continue
            if key in named_sizes and saved.shape[1:] == tensor.shape[1:]:
                what, knob = named_sizes[key]
                raise PretrainedCheckpointError(
                    f"{source} has {saved.shape[0]} {what} but this model has {tensor.shape[0]}: it was "
                    f"pre-trained with a different {knob} (another version of the data or another "
                    f"config). Pre-train again on '{self.dataset_name}' with this config."
                )
            raise PretrainedCheckpointError(
                f"{source}: encoder tensor '{key}' has shape {tuple(saved.shape)}, this model "
                f"{tuple(tensor.shape)}. Use the same hidden_size / inner_size as in pre-training."
            )
        self.encoder.load_state_dict(encoder_state)

    # ------------------------------------------------------------------ model
    def forward(self, item_seq, item_seq_len, confirmed):
        """[B, L] history, [B] lengths, [B, C] confirmed attributes -> [B, d] user state."""
        return self.encoder.next_item_state(item_seq, item_seq_len, confirmed)

    def _user_state(self, interaction):
        return self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN], interaction[self.CONFIRMED])

    def _pairwise_loss(self, user_state, pos_items, neg_items):
        """Mean ``-log sigmoid(s_pos - s_neg)`` over real negatives ([B, d], [B], [B, K]; 0 = no negative)."""
        pos = self.encoder.score_items(user_state, pos_items.unsqueeze(1))  # [B, 1]
        neg = self.encoder.score_items(user_state, neg_items)  # [B, K]
        real = (neg_items != 0).to(neg.dtype)
        return (-F.logsigmoid(pos - neg) * real).sum() / real.sum().clamp(min=1.0)

    def calculate_loss(self, interaction):
        user_state = self._user_state(interaction)  # [B, d]
        pos_items = interaction[self.POS_ITEM_ID]  # [B]
        rejected = interaction[self.REJECTED] if self.REJECTED else None  # [B, R], 0 = padding
        if self.loss_type == "BPR":
            negatives = uniform_negatives(pos_items, self.n_items, self.bpr_negatives)  # [B, K]
            if rejected is not None:
                negatives = torch.cat([negatives, rejected], dim=1)
            return self._pairwise_loss(user_state, pos_items, negatives)
        logits = self.encoder.score_all_items(user_state)  # [B, n_items]
        logits[:, 0] = -torch.inf  # padding is never a target
        loss = F.cross_entropy(logits, pos_items)
        if self.rejected_weight > 0 and rejected is not None and (rejected != 0).any():
            loss = loss + self.rejected_weight * self._pairwise_loss(user_state, pos_items, rejected)
        return loss

    def predict(self, interaction):
        user_state = self._user_state(interaction)  # [B, d]
        return self.encoder.score_items(user_state, interaction[self.ITEM_ID].unsqueeze(1)).squeeze(1)  # [B]

    def full_sort_predict(self, interaction):
        return self.encoder.score_all_items(self._user_state(interaction))  # [B, n_items]
