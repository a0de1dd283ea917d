"""Encoders shared by :class:`~recbole_crs.model.crspretrain.CRSPretrain` and
:class:`~recbole_crs.model.crsfinetune.CRSFinetune` (Zhou et al., CIKM 2020, Figure 1).

:class:`CRSEncoder` holds everything that pre-training learns and fine-tuning reuses:

* an item-based Transformer over the history (item + learned position embeddings, bidirectional
  self-attention with a key padding mask), whose item table has one extra row, the ``[MASK]`` item;
* an attribute-based Transformer over an attribute sequence (attribute embeddings only, no positions,
  key padding mask), pooled by a mean over the real (non-padding) slots;
* a fusion layer ``u = W [h; s] + b`` (2d -> d) over the item-side state ``h`` and the attribute-side state
  ``s``; items are scored by ``u . e_item`` with the same item table the history is embedded with.

Both Transformers are RecBole's :class:`recbole.model.layers.TransformerEncoder` (post-LayerNorm, as in the
authors' code). The state dict of this module is exactly what a pre-trained checkpoint hands to fine-tuning.
Both models build it with :meth:`CRSEncoder.from_config` from the settings of ``properties/model/CRSEncoder.yaml``
(one yaml layer below either model's own).

Deviations from the authors' code (docs/method.md):

* separate embedding tables for items and attributes, sized from the dataset (the authors share one table with
  hard-coded sizes and mask id);
* the attribute-side state is the mean over the real slots (the authors read the output at the last slot; the
  attribute Transformer has no positions, the sequence is a set).
"""

import torch
from recbole.model.layers import TransformerEncoder
from torch import nn

# Additive attention-mask value for padded keys, as RecBole's SequentialRecommender.get_attention_mask uses.
# exp(-10000) underflows to exactly 0 in float32, so padded keys get exactly zero attention weight.
_MASKED_SCORE = -10000.0

# The settings of properties/model/CRSEncoder.yaml that CRSEncoder.from_config reads (besides MAX_ITEM_LIST_LENGTH).
ENCODER_KEYS = (
    "max_attribute_length", "hidden_size", "inner_size", "n_heads", "n_layers", "attribute_n_layers",
    "hidden_dropout_prob", "attn_dropout_prob", "hidden_act", "layer_norm_eps", "initializer_range",
)


def append_to_history(item_seq, item_seq_len, items):
    """Each row's history followed by one more item: the MIP sequence (``items`` = the targets), the fine-tuning
    input (``items`` = ``[MASK]``) and the generator's training sequence all start here.

    Args:
        item_seq: [B, L] RecBole ``item_id_list`` (right-padded), item_seq_len: [B] lengths (<= L),
        items: [B] item ids, or one id for every row.
    Returns:
        sequence [B, L + 1] (the history, the item at position ``item_seq_len``, zeros after),
        real [B, L + 1] bool (True at the history and the appended item).
    """
    batch = torch.arange(len(item_seq), device=item_seq.device)
    real = torch.arange(item_seq.size(1) + 1, device=item_seq.device).unsqueeze(0) <= item_seq_len.unsqueeze(1)
    sequence = torch.nn.functional.pad(item_seq, (0, 1))
    sequence[batch, item_seq_len] = items
    return sequence.masked_fill(~real, 0), real  # ids left at padded positions never matter


class CRSEncoder(nn.Module):
    r"""Item-side and attribute-side Transformers plus the fusion layer.

    Args:
        n_items: item ids including padding 0; the ``[MASK]`` item gets id ``n_items``.
        n_attributes: attribute ids including padding 0.
        max_seq_length: longest item sequence fed to the item Transformer (history + the masked target).
        max_attribute_length: attribute slots read from an attribute sequence (the first ones).
        hidden_size, inner_size, n_heads, n_layers, attribute_n_layers, hidden_dropout_prob,
        attn_dropout_prob, hidden_act, layer_norm_eps, initializer_range: as RecBole's SASRec.
    """

    def __init__(
        self,
        n_items,
        n_attributes,
        max_seq_length,
        max_attribute_length,
        hidden_size,
        inner_size,
        n_heads,
        n_layers,
        attribute_n_layers,
        hidden_dropout_prob,
        attn_dropout_prob,
        hidden_act,
        layer_norm_eps,
        initializer_range,
    ):
        super().__init__()
        self.n_items = n_items
        self.mask_token = n_items  # one extra row of the item table
        self.n_attributes = n_attributes
        self.max_seq_length = max_seq_length
        self.max_attribute_length = max_attribute_length
        self.hidden_size = hidden_size
        self.initializer_range = initializer_range

        def transformer(layers):
            return TransformerEncoder(
                n_layers=layers,
                n_heads=n_heads,
                hidden_size=hidden_size,
                inner_size=inner_size,
                hidden_dropout_prob=hidden_dropout_prob,
                attn_dropout_prob=attn_dropout_prob,
                hidden_act=hidden_act,
                layer_norm_eps=layer_norm_eps,
            )

        # item side
        self.item_embedding = nn.Embedding(n_items + 1, hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(max_seq_length, hidden_size)
        self.item_layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.item_dropout = nn.Dropout(hidden_dropout_prob)
        self.item_transformer = transformer(n_layers)
        # attribute side
        self.attribute_embedding = nn.Embedding(n_attributes, hidden_size, padding_idx=0)
        self.attribute_layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.attribute_dropout = nn.Dropout(hidden_dropout_prob)
        self.attribute_transformer = transformer(attribute_n_layers)
        # fusion of [item-side state; attribute-side state]
        self.fusion = nn.Linear(2 * hidden_size, hidden_size)

        self.apply(self._init_weights)

    @classmethod
    def from_config(cls, config, n_items, n_attributes):
        """The encoder of a model with ``config`` (:data:`ENCODER_KEYS`); its item Transformer reads
        ``MAX_ITEM_LIST_LENGTH + 1`` positions: the history and the item after it (the target or ``[MASK]``)."""
        settings = {key: config[key] for key in ENCODER_KEYS}
        return cls(n_items, n_attributes, max_seq_length=config["MAX_ITEM_LIST_LENGTH"] + 1, **settings)

    def _init_weights(self, module):
        """SASRec's initialisation (normal(0, initializer_range), LayerNorm = identity)."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    @staticmethod
    def _key_padding_mask(real):
        """[N, S] bool (True = real slot) -> [N, 1, 1, S] additive mask: 0 for real keys, -10000 for padding."""
        return torch.where(real.unsqueeze(1).unsqueeze(2), 0.0, _MASKED_SCORE)

    def encode_items(self, item_seq, real):
        """Bidirectional item Transformer.

        Args:
            item_seq: [B, S] item ids; may hold ``mask_token``.
            real: [B, S] bool, True at the sequence's real positions. Ids elsewhere are ignored (zeroed), so
                whatever a caller leaves at padded positions cannot change any output.
        Returns:
            [B, S, d] states (rows at padded positions are meaningless and never used).
        """
        item_seq = item_seq.masked_fill(~real, 0)
        positions = torch.arange(item_seq.size(1), device=item_seq.device).unsqueeze(0)  # [1, S]
        hidden = self.item_embedding(item_seq) + self.position_embedding(positions)  # [B, S, d]
        hidden = self.item_dropout(self.item_layer_norm(hidden))
        return self.item_transformer(hidden, self._key_padding_mask(real), output_all_encoded_layers=False)[-1]

    def encode_attributes(self, attribute_seq):
        """Attribute Transformer (no positions) and its mean-pooled state.

        Args:
            attribute_seq: [N, A] attribute ids, 0 = padding (anywhere).
        Returns:
            outputs [N, A, d] (padded slots meaningless), pooled [N, d] = mean over real slots
            (all zeros for a row without any attribute).
        """
        real = attribute_seq != 0  # [N, A]
        hidden = self.attribute_dropout(self.attribute_layer_norm(self.attribute_embedding(attribute_seq)))
        outputs = self.attribute_transformer(
            hidden, self._key_padding_mask(real), output_all_encoded_layers=False
        )[-1]  # [N, A, d]
        # masked_fill (not multiplication) so that values in padded slots cannot leak in.
        summed = outputs.masked_fill(~real.unsqueeze(-1), 0.0).sum(dim=1)  # [N, d]
        pooled = summed / real.sum(dim=1, keepdim=True).clamp(min=1).to(outputs.dtype)
        return outputs, pooled

    def next_item_state(self, item_seq, item_seq_len, attribute_seq):
        """User state for "which item comes next": history + ``[MASK]`` fused with an attribute sequence.

        This is MIP at the sequence's last position, which pre-training always masks.

        Args:
            item_seq: [B, L] history (RecBole ``item_id_list``, right-padded), item_seq_len: [B] (< L + 1),
            attribute_seq: [B, C] attributes (e.g. the confirmed ones), 0 = padding; only the first
                ``max_attribute_length`` columns are used.
        Returns:
            [B, d]
        """
        batch = torch.arange(len(item_seq), device=item_seq.device)
        sequence, real = append_to_history(item_seq, item_seq_len, self.mask_token)  # [B, L+1]
        item_state = self.encode_items(sequence, real)[batch, item_seq_len]  # [B, d]
        _, attribute_state = self.encode_attributes(attribute_seq[:, : self.max_attribute_length])  # [B, d]
        return self.fuse(item_state, attribute_state)

    def fuse(self, item_state, attribute_state):
        """[N, d], [N, d] -> [N, d]: W [h; s] + b."""
        return self.fusion(torch.cat([item_state, attribute_state], dim=-1))

    def score_items(self, user_state, items):
        """Dot-product scores: [N, d] x [N, K] item ids -> [N, K]."""
        return torch.einsum("nd,nkd->nk", user_state, self.item_embedding(items))

    def score_all_items(self, user_state):
        """[N, d] -> [N, n_items] scores of every real item id (column 0 = padding; the mask row excluded)."""
        return torch.matmul(user_state, self.item_embedding.weight[: self.n_items].transpose(0, 1))
