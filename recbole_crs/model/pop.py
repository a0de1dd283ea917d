r"""
Pop
################################################

Reference:
    The most-popular baseline of RecBole (it has no paper of its own): Wayne Xin Zhao et al. "RecBole: Towards
    a Unified, Comprehensive and Efficient Framework for Recommendation Algorithms." CIKM 2021.

Most-popular baseline: every item is scored by its number of training interactions. This plugin class
shadows RecBole's ``Pop`` (the plugin's model lookup comes first, :func:`recbole_crs.config.get_model`).

Deviations from RecBole 1.2.1's ``Pop``:

* counts are exact and independent of ``train_batch_size``. RecBole counts in ``calculate_loss`` with
  ``item_cnt[item] = item_cnt[item] + 1``, an indexed assignment in which an item that occurs several times
  in one batch is counted once; its scores then depend on the batch size and take few distinct values.
  Here the counts are taken once, in ``__init__``, from the training split with ``torch.bincount``;
  ``calculate_loss`` only returns a zero loss so RecBole's trainer runs its one "epoch" unchanged;
* on the sequential rows of :class:`~recbole_crs.data.dataset.CRSDataset` (``crs_sequential_protocol``) the
  user's first interaction is never a target row: it appears only as the history of the user's second row
  (``item_id_list[:, 0]`` where ``item_length == 1``). It is counted from there, so every training
  interaction counts once. (A user whose second row is not a training row, e.g. a user with only three
  interactions under leave-one-out, has that first interaction in no training row: it is not counted.);
* scores are raw counts (RecBole divides by the maximum count, which does not change any ranking).
"""

import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType, ModelType


def training_item_counts(dataset, item_field, item_list_field, item_length_field, n_items):
    """Number of training interactions of every item id, [n_items] (long; index 0 is padding).

    Counts each row's target ``item_field``; on sequential rows (``item_list_field`` present) also the
    user's first interaction, the only history item of rows with ``item_length == 1``.
    """
    inter = dataset.inter_feat
    items = [inter[item_field].long()]  # [N]
    if item_list_field in inter and item_length_field in inter:
        first_rows = inter[item_length_field] == 1  # [N]
        # rows first, then the column: with history_windows: lazy only these rows' lists are built
        items.append(inter[first_rows][item_list_field][:, 0].long())  # [N_users_with_a_second_training_row]
    return torch.bincount(torch.cat(items), minlength=n_items)[:n_items]


class Pop(GeneralRecommender):
    r"""Scores every item by its exact number of training interactions."""

    input_type = InputType.POINTWISE
    type = ModelType.TRADITIONAL

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.ITEM_SEQ = self.ITEM_ID + config["LIST_SUFFIX"]
        self.ITEM_SEQ_LEN = config["ITEM_LIST_LENGTH_FIELD"]
        counts = training_item_counts(dataset, self.ITEM_ID, self.ITEM_SEQ, self.ITEM_SEQ_LEN, self.n_items)
        # A buffer: saved with the checkpoint and restored by load_state_dict.
        self.register_buffer("item_cnt", counts.to(self.device))  # [n_items]
        # RecBole's trainer builds an optimizer and calls backward(); this parameter keeps both working.
        self.fake_loss = torch.nn.Parameter(torch.zeros(1))

    def forward(self):
        pass

    def calculate_loss(self, interaction):
        # Counts are already exact; nothing is learned. A zero loss with a gradient path for the trainer.
        return self.fake_loss.sum() * 0.0

    def predict(self, interaction):
        return self.item_cnt[interaction[self.ITEM_ID]].to(torch.float32)  # [B]

    def full_sort_predict(self, interaction):
        batch_size = interaction[self.USER_ID].shape[0]
        return self.item_cnt.to(torch.float32).unsqueeze(0).expand(batch_size, -1).clone()  # [B, n_items]
