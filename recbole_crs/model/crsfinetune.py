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

Deviations from the authors' code (docs/method.md), each chosen on validation: the pairwise loss is on raw scores
(above); ``CE`` is the default loss and ``finetune_rows: all`` the default training rows (the paper fine-tunes on
the conversational data only); and three additions for the opening turn, where a converged SASRec beat the paper's
model (docs/method.md, "The opening turn"):

* ``history_attributes``: history rows (no conversation) read a random subset of their target's attributes
  (:meth:`training_attributes`), so fine-tuning sees history + attributes on every row, not only on the few
  conversations;
* ``history_prior_weight``: scores = the fused model's + ``w`` x the next-item log-probabilities of the pipeline's
  generator SASRec, frozen (:meth:`history_log_probs`; :meth:`set_history_prior` takes it, ``generator_path``
  loads it for a model built alone); ``w = 0`` is the paper's model;
* ``attribute_filter``: items lacking one of the row's attributes score :data:`FILTERED_SCORE`, below all others.

The encoder's own deviations are listed in :mod:`recbole_crs.model.layers`.

The model is initialised from a pre-trained checkpoint with :meth:`load_pretrained` (the pipeline does that;
``pretrained_path`` in the config does it at construction); without one it is "the same architecture
without pre-training". ``full_sort_predict`` scores every item (only ``attribute_filter`` lowers some):
restricting to the conversation's candidates (``crs_candidates``) is the trainer's job.
"""

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender

from recbole_crs.artifacts import FINGERPRINT_KEY, check_item_fingerprint, dataset_items, load_checkpoint
from recbole_crs.data.finetune import confirmed_size_distribution
from recbole_crs.errors import CheckpointMismatchError, PretrainedCheckpointError
from recbole_crs.evaluation.candidates import holding_all, padded_attribute_item_mask
from recbole_crs.model.attribute_sampling import item_attribute_table, sample_attribute_subset
from recbole_crs.model.generator_sasrec import GeneratorSASRec, generator_config, load_generator_sasrec
from recbole_crs.model.layers import CRSEncoder
from recbole_crs.model.negatives import uniform_negatives
from recbole_crs.settings.key_rules import check_keys

ENCODER_PREFIX = "encoder."
# The score of an item that lacks a confirmed attribute (``attribute_filter``): below any learned score, finite so
# that such items tie (and split the ranks they share) rather than turn a loss into NaN.
FILTERED_SCORE = -1.0e4


class CRSFinetune(SequentialRecommender):
    r"""History + confirmed attributes -> next item, with pre-trained item and attribute Transformers."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # fine-tuning hyper-parameters (the encoder's are CRSEncoder.yaml's; they must match the pre-trained model's)
        self.loss_type = config["loss_type"]
        self.bpr_negatives = config["bpr_negatives"]
        self.rejected_weight = config["rejected_weight"] or 0.0
        self.history_attributes = config["history_attributes"] or "empty"
        self.history_prior_weight = config["history_prior_weight"] or 0.0
        self.attribute_filter = bool(config["attribute_filter"])
        # the rules validate() applies before a run (settings/key_rules.py)
        check_keys(config, ("loss_type", "history_attributes", "history_prior_weight", "attribute_filter"))

        # dataset information
        self.dataset_name = config["dataset"]
        self.CONFIRMED = dataset.confirmed_field
        self.REJECTED = dataset.loaded_rejected_field
        self.n_attributes = dataset.n_attributes
        self._items = dataset_items(dataset)  # what each item id means, for load_pretrained's check

        self.encoder = CRSEncoder.from_config(config, self.n_items, self.n_attributes)  # history + [MASK]
        if self.history_attributes != "empty":
            table, counts = item_attribute_table(dataset)
            self.register_buffer("item_attribute_table", table, persistent=False)  # [n_items, W], ascending
            self.register_buffer("item_attribute_count", counts, persistent=False)  # [n_items]
            sizes = confirmed_size_distribution(dataset) if self.history_attributes == "matched" else None
            self.register_buffer("attribute_size_distribution", sizes, persistent=False)  # [K + 1] or None
        if self.attribute_filter:
            # [n_attributes, n_items], padding holds every item
            self.register_buffer("attribute_item_mask", padded_attribute_item_mask(dataset), persistent=False)
        if self.history_prior_weight > 0:
            # the generator's SASRec, frozen; its weights come with set_history_prior (or a saved CRSFinetune)
            self.history_prior = GeneratorSASRec(generator_config(config), dataset).requires_grad_(False)
            self.register_buffer("history_prior_set", torch.tensor(False))  # saved: a reloaded model has it
        if config["pretrained_path"]:
            self.load_pretrained(config["pretrained_path"])
        if self.history_prior_weight > 0 and config["generator_path"]:
            self.set_history_prior(load_generator_sasrec(config["generator_path"], config, dataset))

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

    # ------------------------------------------------------------------ history prior
    def set_history_prior(self, sasrec):
        """Take the generator's trained SASRec (a :class:`GeneratorSASRec`) as the frozen history prior."""
        if sasrec is None:
            raise ValueError("history_prior_weight > 0 needs the generator's SASRec (the pipeline passes it)")
        try:
            self.history_prior.load_state_dict(sasrec.state_dict())
        except RuntimeError as error:
            problem = " ".join(str(error).split())[:300]
            raise CheckpointMismatchError(
                f"the generator's SASRec does not fit the history prior that the generator settings describe "
                f"({problem}): train the generator with this config, or use a generator_path trained with it."
            ) from None
        self.history_prior_set.fill_(True)

    def train(self, mode=True):
        super().train(mode)
        if self.history_prior_weight > 0:
            self.history_prior.eval()  # frozen: no dropout, ever
        return self

    def history_log_probs(self, interaction):
        """[B, n_items] the history prior's next-item log-probabilities over the real items (column 0, padding, holds
        0 and means nothing), or None without a prior."""
        if self.history_prior_weight <= 0:
            return None
        if not bool(self.history_prior_set):
            raise RuntimeError("the history prior was never set: call set_history_prior with the generator's SASRec")
        with torch.no_grad():
            logits = self.history_prior.full_sort_predict(interaction)  # [B, n_items]
            return F.pad(torch.log_softmax(logits[:, 1:], dim=-1), (1, 0))

    def _item_scores(self, user_state, items, prior, attributes):
        """Scores of ``items`` ([B, K]): the fused state's dot products, plus the weighted prior if any, filtered."""
        scores = self.encoder.score_items(user_state, items)  # [B, K]
        if prior is not None:
            scores = scores + self.history_prior_weight * prior.gather(1, items)
        if self.attribute_filter:
            holds = holding_all(self.attribute_item_mask, attributes).gather(1, items)
            scores = scores.masked_fill(~holds, FILTERED_SCORE)
        return scores

    def _all_scores(self, user_state, prior, attributes):
        """[B, n_items]: every item's score (column 0 is padding); with ``attribute_filter`` an item that lacks one
        of the row's attributes scores :data:`FILTERED_SCORE`, below every other."""
        logits = self.encoder.score_all_items(user_state)
        if prior is not None:
            logits = logits + self.history_prior_weight * prior
        if self.attribute_filter:
            logits = logits.masked_fill(~holding_all(self.attribute_item_mask, attributes), FILTERED_SCORE)
        return logits

    # ------------------------------------------------------------------ model
    def forward(self, item_seq, item_seq_len, confirmed):
        """[B, L] history, [B] lengths, [B, C] confirmed attributes -> [B, d] user state."""
        return self.encoder.next_item_state(item_seq, item_seq_len, confirmed)

    def _user_state(self, interaction, attributes=None):
        attributes = interaction[self.CONFIRMED] if attributes is None else attributes
        return self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN], attributes)

    def training_attributes(self, confirmed, targets):
        """The attribute input of training rows: rows without a conversation (no confirmed attribute) read a
        random subset of their target's attributes (``history_attributes: subset``, size uniform in 1..#, as MIP
        draws them) or one of them (``initial``, what a conversation's opening turn reveals), redrawn at every
        step; ``empty`` leaves them empty. Rows with a conversation keep theirs.

        Args:
            confirmed: [B, C] confirmed attributes (0 = padding), targets: [B] the rows' target items.
        Returns:
            [B, A] attribute ids, A <= max_attribute_length.
        """
        if self.history_attributes == "empty":
            return confirmed
        width = self.encoder.max_attribute_length
        plain = (confirmed == 0).all(dim=1)  # [B]
        if not plain.any():
            return confirmed[:, :width]
        max_size = 1 if self.history_attributes == "initial" else None
        drawn = sample_attribute_subset(
            self.item_attribute_table, self.item_attribute_count, targets[plain], width, max_size,
            self.attribute_size_distribution,
        )  # [P, A']
        columns = min(width, max(confirmed.size(1), drawn.size(1)))
        attributes = F.pad(confirmed, (0, max(0, columns - confirmed.size(1))))[:, :columns].clone()
        attributes[plain] = F.pad(drawn, (0, columns - drawn.size(1)))[:, :columns]
        return attributes

    def _pairwise_loss(self, user_state, pos_items, neg_items, prior=None, attributes=None):
        """Mean ``-log sigmoid(s_pos - s_neg)`` over real negatives ([B, d], [B], [B, K]; 0 = no negative)."""
        pos = self._item_scores(user_state, pos_items.unsqueeze(1), prior, attributes)  # [B, 1]
        neg = self._item_scores(user_state, neg_items, prior, attributes)  # [B, K]
        real = (neg_items != 0).to(neg.dtype)
        return (-F.logsigmoid(pos - neg) * real).sum() / real.sum().clamp(min=1.0)

    def calculate_loss(self, interaction):
        pos_items = interaction[self.POS_ITEM_ID]  # [B]
        attributes = self.training_attributes(interaction[self.CONFIRMED], pos_items)  # [B, A]
        user_state = self._user_state(interaction, attributes)  # [B, d]
        rejected = interaction[self.REJECTED] if self.REJECTED else None  # [B, R], 0 = padding
        prior = self.history_log_probs(interaction)  # [B, n_items] or None
        if self.loss_type == "BPR":
            negatives = uniform_negatives(pos_items, self.n_items, self.bpr_negatives)  # [B, K]
            if rejected is not None:
                negatives = torch.cat([negatives, rejected], dim=1)
            return self._pairwise_loss(user_state, pos_items, negatives, prior, attributes)
        logits = self._all_scores(user_state, prior, attributes)  # [B, n_items]
        logits[:, 0] = -torch.inf  # padding is never a target
        loss = F.cross_entropy(logits, pos_items)
        if self.rejected_weight > 0 and rejected is not None and (rejected != 0).any():
            loss = loss + self.rejected_weight * self._pairwise_loss(user_state, pos_items, rejected, prior, attributes)
        return loss

    def predict(self, interaction):
        user_state = self._user_state(interaction)  # [B, d]
        items = interaction[self.ITEM_ID].unsqueeze(1)
        prior, attributes = self.history_log_probs(interaction), interaction[self.CONFIRMED]
        return self._item_scores(user_state, items, prior, attributes).squeeze(1)  # [B]

    def full_sort_predict(self, interaction):
        """[B, n_items] raw scores (plus the weighted history prior, filtered with ``attribute_filter``)."""
        prior, attributes = self.history_log_probs(interaction), interaction[self.CONFIRMED]
        return self._all_scores(self._user_state(interaction), prior, attributes)
