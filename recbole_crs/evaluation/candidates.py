"""Which items each evaluated conversation state may be recommended (config ``crs_candidates``).

* ``all``: every item (RecBole's full ranking);
* ``first``: only items that carry the conversation's first (initial) attribute;
* ``confirmed``: only items that carry every attribute confirmed so far, minus the items rejected so far;
* ``authors``: the target and the row's fixed candidate list (``CANDIDATE_FIELD``), the protocol of the
  paper's code: up to 100 items sharing the initial attribute.

A state at turn t (:mod:`recbole_crs.data.turns`) already holds only what was confirmed and rejected up to
then, so the same rules give each turn's candidates. The filter works on RecBole's full-sort score matrix, so
it applies to every model the same way; the target is always a candidate.
"""

import torch

CANDIDATE_MODES = ("all", "first", "confirmed", "authors")


def check_mode(mode):
    if mode not in CANDIDATE_MODES:
        raise ValueError(
            f"crs_candidates '{mode}' is not a candidate mode; use one of {', '.join(CANDIDATE_MODES)}."
        )
    return mode


def holding_all(attribute_item_mask, attributes):
    """[B, n_items] bool: the items that hold every attribute of each row.

    Args:
        attribute_item_mask: [n_attributes, n_items] bool, row 0 (padding) all True.
        attributes: [B, C] attribute ids, 0 = padding (constrains nothing).
    """
    allowed = attribute_item_mask[attributes[:, 0]].clone()
    # One [B, n_items] slice per column keeps memory at B x n_items, not B x C x n_items.
    for column in range(1, attributes.shape[1]):
        allowed &= attribute_item_mask[attributes[:, column]]
    return allowed


def padded_attribute_item_mask(dataset):
    """The dataset's [n_attributes, n_items] item-holds-attribute mask, with the padding attribute (row 0) holding
    every item, so that padded slots constrain nothing."""
    mask = dataset.attribute_item_mask.clone()
    mask[0] = True
    return mask


class CandidateFilter:
    """Builds the ``[B, n_items]`` boolean mask of allowed items for a batch of evaluated rows."""

    def __init__(self, dataset, mode, device):
        self.mode = check_mode(mode)
        self.confirmed_field = dataset.confirmed_field
        self.rejected_field = dataset.loaded_rejected_field
        self.item_field = dataset.iid_field
        self.candidate_field = dataset.candidate_field
        if mode == "authors" and not (self.candidate_field and self.candidate_field in dataset.inter_feat):
            raise ValueError(
                f"crs_candidates 'authors' ranks each target against a fixed candidate list, but "
                f"{dataset.dataset_name}.inter has no '{self.candidate_field}' column. Convert the data with "
                "`python -m recbole_crs.data.convert ... --candidates 100`, or use all/first/confirmed."
            )
        self.attribute_item_mask = padded_attribute_item_mask(dataset).to(device)  # [n_attributes, n_items]

    def __call__(self, interaction):
        confirmed = interaction[self.confirmed_field]  # [B, C], 0 = padding
        if self.mode == "all":
            allowed = torch.ones(
                len(confirmed), self.attribute_item_mask.shape[1], dtype=torch.bool, device=confirmed.device
            )
            allowed[:, 0] = False  # the padding item
            return allowed
        if self.mode == "authors":
            allowed = torch.zeros(
                len(confirmed), self.attribute_item_mask.shape[1], dtype=torch.bool, device=confirmed.device
            )
            allowed.scatter_(1, interaction[self.candidate_field], True)
            allowed[:, 0] = False  # padding of the candidate list
            allowed.scatter_(1, interaction[self.item_field].unsqueeze(1), True)
            return allowed
        if self.mode == "first":
            return self.attribute_item_mask[confirmed[:, 0]].clone()
        allowed = holding_all(self.attribute_item_mask, confirmed)
        if self.rejected_field is not None:
            rejected = interaction[self.rejected_field]  # [B, R], 0 = padding
            allowed.scatter_(1, rejected, False)
        return allowed
