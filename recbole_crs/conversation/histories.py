"""The interaction history a ranker reads in an episode: the user's training interactions, nothing else.

SCPR's recommender sees the training interactions only (SCPR commit dd39123 removed a leak of test
interactions into its graph); every model of this plugin trains on the training rows alone (validation rows
only stop training early), so the history is built from the **training split** explicitly, never from an
evaluated row's ``item_id_list``: a converted dataset may order a user's evaluated rows after one another
(``scpr-lastfm-star`` writes a user's train, valid, then test items), so a test row's window would hold the
validation items and the test items before it.

A user's history is the window of their last training row plus that row's item: the last
``MAX_ITEM_LIST_LENGTH`` training interactions in time (for LastFM*: list) order, exactly what the model's
input held when it last trained on that user. This holds only when a user's training rows all come before
their evaluated rows; :func:`check_training_rows_first` verifies it on data with a ``split`` column (splits by
``eval_args`` hold the last rows out, so it holds by construction).
"""

import numpy as np
import torch

from recbole_crs.data.fields import TRAIN_SPLIT
from recbole_crs.data.windows import materialize
from recbole_crs.errors import CRSDataError


class Histories:
    """``items`` [n_users, L] long (right-padded with 0) and ``lengths`` [n_users] long, by internal user id."""

    def __init__(self, items, lengths):
        self.items = items
        self.lengths = lengths

    def of(self, users):
        """([E, L], [E]) of the users ([E] long)."""
        return self.items[users], self.lengths[users]


def training_histories(train_dataset, n_users, max_len):
    """:class:`Histories` from the training split of a sequential dataset (a user without a training row
    that has a history gets an empty one)."""
    inter = train_dataset.inter_feat
    users = inter[train_dataset.uid_field].numpy()
    time_field = train_dataset.time_field
    times = inter[time_field].numpy() if time_field and time_field in inter else np.arange(len(users))
    order = np.lexsort((np.arange(len(users)), times, users))  # by user, then time, then row
    is_last = np.ones(len(order), dtype=bool)
    is_last[:-1] = users[order][1:] != users[order][:-1]
    last_rows = order[is_last]
    rows = materialize(inter[torch.from_numpy(last_rows)])
    window = rows[train_dataset.item_id_list_field].long()  # [U, L]
    length = rows[train_dataset.item_list_length_field].long()  # [U]
    sequence = torch.nn.functional.pad(window, (0, 1))  # room for the row's own item
    sequence[torch.arange(len(length)), length] = rows[train_dataset.iid_field].long()
    length = length + 1
    # keep the last max_len items: shift each row left by its overflow
    overflow = (length - max_len).clamp(min=0)
    positions = torch.arange(max_len).unsqueeze(0) + overflow.unsqueeze(1)  # [U, max_len]
    kept = torch.gather(sequence, 1, positions.clamp(max=sequence.shape[1] - 1))
    length = length.clamp(max=max_len)
    kept = kept.masked_fill(torch.arange(max_len).unsqueeze(0) >= length.unsqueeze(1), 0)

    items = torch.zeros(n_users, max_len, dtype=torch.long)
    lengths = torch.zeros(n_users, dtype=torch.long)
    user_ids = torch.from_numpy(users[last_rows]).long()
    items[user_ids] = kept
    lengths[user_ids] = length
    return Histories(items, lengths)


def check_training_rows_first(dataset):
    """Raise :class:`CRSDataError` if a user has a training row after an evaluated row (``split`` column data):
    their last training row's window would then hold evaluated items."""
    field = getattr(dataset, "split_field", None)
    if not field or field not in dataset.inter_feat:
        return
    inter = dataset.inter_feat
    users = inter[dataset.uid_field].numpy()
    train_id = dataset.field2token_id[field].get(TRAIN_SPLIT, -1)
    is_train = inter[field].numpy() == train_id
    rows = np.arange(len(users))  # rows are sorted by user, then time
    last_train = np.full(dataset.user_num, -1)
    np.maximum.at(last_train, users[is_train], rows[is_train])
    first_evaluated = np.full(dataset.user_num, len(users))
    np.minimum.at(first_evaluated, users[~is_train], rows[~is_train])
    late = np.flatnonzero(last_train > first_evaluated)
    if len(late):
        tokens = dataset.id2token(dataset.uid_field, late[:3])
        raise CRSDataError(
            f"{len(late)} users of {dataset.dataset_name} (e.g. {list(tokens)}) have a training row after a "
            "valid/test row: the conversation's history (the user's training rows) would hold evaluated items. "
            "Order each user's rows train, then valid, then test (time or row order)."
        )
