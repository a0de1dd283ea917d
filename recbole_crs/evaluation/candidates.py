"""Which items each evaluated conversation may be recommended (config ``crs_candidates``).

* ``all``: RecBole's full ranking over every item;
* ``first``: only items that carry the conversation's first (initial) attribute;
* ``confirmed``: only items that carry every confirmed attribute, minus the items rejected in it.

The filter works on RecBole's full-sort score matrix, so it applies to every model the same way.
"""

import torch

CANDIDATE_MODES = ("all", "first", "confirmed")


def check_mode(mode):
    if mode not in CANDIDATE_MODES:
        raise ValueError(
            f"crs_candidates '{mode}' is not a candidate mode; use one of {', '.join(CANDIDATE_MODES)}."
        )
    return mode


class CandidateFilter:
    """Builds the ``[B, n_items]`` boolean mask of allowed items for a batch of evaluated rows."""

    def __init__(self, dataset, mode, device):
        self.mode = check_mode(mode)
        self.confirmed_field = dataset.confirmed_field
        rejected = dataset.rejected_field
        self.rejected_field = rejected if rejected and rejected in dataset.inter_feat else None
        mask = dataset.attribute_item_mask.clone()
        mask[0] = True  # a padded attribute slot constrains nothing
        self.attribute_item_mask = mask.to(device)  # [n_attributes, n_items]

    def __call__(self, interaction):
        confirmed = interaction[self.confirmed_field]  # [B, C], 0 = padding
        if self.mode == "all":
            return torch.ones(
                len(confirmed), self.attribute_item_mask.shape[1], dtype=torch.bool, device=confirmed.device
            )
        if self.mode == "first":
            return self.attribute_item_mask[confirmed[:, 0]].clone()
        allowed = self.attribute_item_mask[confirmed[:, 0]].clone()
        # One [B, n_items] slice per turn keeps memory at B x n_items, not B x C x n_items.
        for turn in range(1, confirmed.shape[1]):
            allowed &= self.attribute_item_mask[confirmed[:, turn]]
        if self.rejected_field is not None:
            rejected = interaction[self.rejected_field]  # [B, R], 0 = padding
            allowed.scatter_(1, rejected, False)
        return allowed
