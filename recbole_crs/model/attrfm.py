r"""
AttrFM
################################################

Reference:
    Wenqiang Lei, Xiangnan He, Yisong Miao, Qingyun Wu, Richang Hong, Min-Yen Kan and Tat-Seng Chua.
    "Estimation-Action-Reflection: Towards Deep Interaction Between Conversational and Recommender Systems."
    WSDM 2020 (EAR).

    Used as the recommendation component by:
    Wenqiang Lei, Gangyi Zhang, Xiangnan He, Yisong Miao, Xiang Wang, Liang Chen and Tat-Seng Chua.
    "Interactive Path Reasoning on Graph for Conversational Recommendation." KDD 2020 (SCPR), and
    Yang Deng, Yaliang Li, Fei Sun, Bolin Ding and Wai Lam.
    "Unified Conversational Recommendation Policy Learning via Graph-based Reinforcement Learning."
    SIGIR 2021 (UNICORN).

EAR's attribute-aware factorisation machine as a conversation-aware baseline: user ``u``, item ``v`` and
attribute ``p`` embeddings, and for the attributes ``P`` the user confirmed in the row's conversation

    score(u, v | P) = u·v + sum_{p in P} v·p = v·(u + sum_{p in P} p).

It reads the user id and the row's confirmed attributes (``CONFIRMED_FIELD``) and ignores the history
(``item_id_list``); it is a ``SequentialRecommender`` only so that it runs on the per-interaction rows of
:class:`~recbole_crs.data.dataset.CRSDataset` like every other model.

Training loss, per row (mean over rows):

* item BPR ``-log sigmoid(score(u, v+ | P) - score(u, v- | P))`` against EAR's two kinds of negatives:
  ``n_uniform_negatives`` uniform random items, and ``n_hard_negatives`` items that hold every attribute
  in ``P`` but are not the target (uniform among those; a uniform random item when there is none, and for
  rows with an empty ``P``, where every item qualifies). With ``use_rejected_negatives`` the items rejected
  in the row's conversation (``REJECTED_FIELD``, when the data has it) are negatives too;
* ``attribute_loss_weight`` x attribute BPR ``-log sigmoid(g(p+) - g(p-))`` with ``g(p) = u·p + v·p`` for
  the target item ``v``, ``p+`` a random attribute of the target and ``p-`` a random attribute it lacks
  (rows whose target has no attribute, or every attribute, are skipped);
* ``reg_weight`` x the squared L2 norm of the embeddings the row uses.

Deviations from EAR: the confirmed attributes are the data's, not a policy's (nothing here asks questions);
the attribute BPR term is only a multi-task regulariser of the embeddings and scores an attribute against
the user and the target item, ``u·p + v·p``, where EAR's attribute-preference score (which drives its
question asking) pairs it with the user and the attributes confirmed so far. ``full_sort_predict`` scores every item
and never masks: restricting to the conversation's candidates (``crs_candidates``) is the trainer's job.
"""

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.init import xavier_normal_initialization
from recbole.utils import InputType
from torch import nn

from recbole_crs.model.negatives import uniform_negatives


class AttrFM(SequentialRecommender):
    r"""EAR's FM recommender: u·v + sum over the confirmed attributes p of v·p."""

    # One row per interaction; negatives are sampled inside calculate_loss, not by RecBole's dataloader.
    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # hyper-parameters
        self.embedding_size = config["embedding_size"]
        self.n_uniform_negatives = config["n_uniform_negatives"]
        self.n_hard_negatives = config["n_hard_negatives"]
        self.use_rejected_negatives = bool(config["use_rejected_negatives"])
        self.attribute_loss_weight = config["attribute_loss_weight"] or 0.0
        self.reg_weight = config["reg_weight"] or 0.0
        if self.n_uniform_negatives + self.n_hard_negatives < 1 and not self.use_rejected_negatives:
            raise ValueError("AttrFM needs negatives: set n_uniform_negatives or n_hard_negatives to at least 1.")

        # dataset information
        self.n_users = dataset.num(self.USER_ID)
        self.CONFIRMED = dataset.confirmed_field
        self.REJECTED = dataset.loaded_rejected_field
        self.n_attributes = dataset.n_attributes
        # derived from the dataset, so not saved with the checkpoint
        self.register_buffer("item_attributes", dataset.item_attributes.clone(), persistent=False)  # [n_items, A]
        self.register_buffer("attribute_item_mask", dataset.attribute_item_mask.clone(), persistent=False)  # [n_attr, n_items]

        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size, padding_idx=0)
        self.attribute_embedding = nn.Embedding(self.n_attributes, self.embedding_size, padding_idx=0)
        self.apply(xavier_normal_initialization)
        with torch.no_grad():  # padding item / attribute: the zero vector, so padding changes no score
            self.item_embedding.weight[0].zero_()
            self.attribute_embedding.weight[0].zero_()

    # ------------------------------------------------------------------ scores
    def forward(self, user, confirmed):
        """[B] users, [B, C] confirmed attributes (0 = padding) -> [B, d] query ``u + sum_p p``."""
        return self.user_embedding(user) + self.attribute_embedding(confirmed).sum(dim=1)

    def _query(self, interaction):
        return self.forward(interaction[self.USER_ID], interaction[self.CONFIRMED])

    def predict(self, interaction):
        query = self._query(interaction)  # [B, d]
        return (query * self.item_embedding(interaction[self.ITEM_ID])).sum(dim=-1)  # [B]

    def full_sort_predict(self, interaction):
        return self._query(interaction) @ self.item_embedding.weight.t()  # [B, n_items]

    # ------------------------------------------------------------------ negatives
    def hard_negatives(self, confirmed, pos_items, n_negatives):
        """Items that hold every confirmed attribute of the row and are not its target.

        Args:
            confirmed: [B, C] attribute ids, 0 = padding.
            pos_items: [B] target items.
        Returns:
            [B, n_negatives] ids, drawn uniformly (with replacement) among those items; uniform over all
            items but the target for rows where no such item exists.
        """
        no_constraint = torch.ones_like(self.attribute_item_mask[:1])  # [1, n_items]
        mask = torch.cat([no_constraint, self.attribute_item_mask[1:]])  # padding row = no constraint
        allowed = mask[confirmed].all(dim=1)  # [B, n_items]
        allowed[:, 0] = False
        allowed[torch.arange(len(pos_items), device=pos_items.device), pos_items] = False
        has_any = allowed.any(dim=1)  # [B]
        weights = allowed.to(torch.float32)
        weights[~has_any] = 1.0  # placeholder rows, replaced below
        negatives = torch.multinomial(weights, n_negatives, replacement=True)  # [B, K]
        if not has_any.all():
            fallback = uniform_negatives(pos_items[~has_any], self.n_items, n_negatives)
            negatives[~has_any] = fallback
        return negatives

    def _item_negatives(self, interaction, pos_items):
        """[B, K] negatives of the item BPR term (0 = no negative, e.g. padding of rejected items)."""
        confirmed = interaction[self.CONFIRMED]
        parts = []
        if self.n_uniform_negatives > 0:
            parts.append(uniform_negatives(pos_items, self.n_items, self.n_uniform_negatives))
        if self.n_hard_negatives > 0:
            parts.append(self.hard_negatives(confirmed, pos_items, self.n_hard_negatives))
        if self.use_rejected_negatives and self.REJECTED is not None:
            parts.append(interaction[self.REJECTED])
        return torch.cat(parts, dim=1)

    def attribute_pairs(self, pos_items):
        """One attribute the target holds and one it lacks, per row ([B] each), and which rows have both."""
        holds = self.attribute_item_mask[:, pos_items].t().clone()  # [B, n_attr]
        lacks = ~holds
        lacks[:, 0] = False
        valid = holds.any(dim=1) & lacks.any(dim=1)  # [B]
        holds[~valid] = True
        lacks[~valid] = True
        pos_attr = torch.multinomial(holds.to(torch.float32), 1).squeeze(1)  # [B]
        neg_attr = torch.multinomial(lacks.to(torch.float32), 1).squeeze(1)  # [B]
        return pos_attr, neg_attr, valid

    # ------------------------------------------------------------------ loss
    def calculate_loss(self, interaction):
        user_emb = self.user_embedding(interaction[self.USER_ID])  # [B, d]
        confirmed_emb = self.attribute_embedding(interaction[self.CONFIRMED])  # [B, C, d]
        query = user_emb + confirmed_emb.sum(dim=1)  # [B, d]
        pos_items = interaction[self.POS_ITEM_ID]  # [B]
        neg_items = self._item_negatives(interaction, pos_items)  # [B, K]

        pos_emb = self.item_embedding(pos_items)  # [B, d]
        neg_emb = self.item_embedding(neg_items)  # [B, K, d]
        pos_score = (query * pos_emb).sum(dim=-1, keepdim=True)  # [B, 1]
        neg_score = torch.einsum("bd,bkd->bk", query, neg_emb)  # [B, K]
        real = (neg_items != 0).to(neg_score.dtype)  # [B, K]
        item_loss = (-F.logsigmoid(pos_score - neg_score) * real).sum() / real.sum().clamp(min=1.0)

        reg = user_emb.pow(2).sum() + confirmed_emb.pow(2).sum() + pos_emb.pow(2).sum() + neg_emb.pow(2).sum()
        loss = item_loss

        if self.attribute_loss_weight > 0:
            pos_attr, neg_attr, valid = self.attribute_pairs(pos_items)  # [B], [B], [B]
            pos_attr_emb = self.attribute_embedding(pos_attr)  # [B, d]
            neg_attr_emb = self.attribute_embedding(neg_attr)  # [B, d]
            attr_query = user_emb + pos_emb  # g(p) = u·p + v·p
            diff = (attr_query * (pos_attr_emb - neg_attr_emb)).sum(dim=-1)  # [B] g(p+) - g(p-)
            valid_f = valid.to(diff.dtype)
            attr_loss = (-F.logsigmoid(diff) * valid_f).sum() / valid_f.sum().clamp(min=1.0)
            loss = loss + self.attribute_loss_weight * attr_loss
            reg = reg + ((pos_attr_emb.pow(2).sum(-1) + neg_attr_emb.pow(2).sum(-1)) * valid_f).sum()

        return loss + self.reg_weight * reg / len(pos_items)
