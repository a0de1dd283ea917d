"""Conversation states: one evaluated row per conversation turn.

A conversation of ``T`` turns (``docs/data-format.md``, "Turns") is scored at every turn ``t = 1..T``. The
state at turn ``t`` is what the conversation revealed in turns ``1..t``: the row with only the attributes
confirmed and the items rejected at turns ``<= t``; everything else (user, history, target, a fixed candidate
list) is the row's. Turn 1 holds the initial attribute alone (the state the paper authors' code effectively
scores); the last turn holds the whole conversation. A dataset without turn columns has one turn per
conversation, whose state is the whole row.

Why rejections count from their own turn: turns that change nothing (a denied question, the accepted
recommendation) leave no value in the data, so a conversation's last recorded turn is often the rejection
that preceded its success. Counting rejections only from the next turn would put every such item in no state
(all 1,950 rejected items of ml-100k-crs's training rows), and the last state would not be the whole
conversation.

Turn values are non-decreasing along each list (``CRSDataset`` checks this), so the kept entries are always a
prefix and the truncated lists stay left-aligned, as models expect.
"""

import torch
from recbole.data.interaction import Interaction

from recbole_crs.data.windows import WindowedInteraction

# Fields added to every evaluated row: its turn t (1-based) and whether t is the conversation's last turn.
TURN_FIELD = "crs_turn"
LAST_TURN_FIELD = "crs_last_turn"


def _encoded(inter_feat):
    """``{field: table}`` of the dictionary-encoded columns of ``inter_feat`` (none for a plain Interaction)."""
    return getattr(inter_feat, "encoded", None) or {}


def conversation_turns(inter_feat, turn_fields):
    """[N] long: the number of turns of each row's conversation (the largest turn in ``turn_fields``, >= 1)."""
    turns = torch.ones(len(inter_feat), dtype=torch.long)
    encoded = _encoded(inter_feat)
    for field in turn_fields:
        if field in encoded:  # the largest turn of each distinct list, then per row
            table = encoded[field]
            if table.numel():
                per_code = table.max(dim=1).values.long()
                turns = torch.maximum(turns, per_code[inter_feat.interaction[field].long()])
        elif inter_feat[field].numel():  # a column that is empty on every row has width 0
            turns = torch.maximum(turns, inter_feat[field].max(dim=1).values.long())
    return turns


def _truncate_encoded(states, value_field, turn_field, turn):
    """Encoded ``value_field`` / ``turn_field`` of ``states`` truncated to each row's ``turn``: ``(codes, value
    table, turn table)``, one table row per distinct (value list, turn list, turn), so that per-turn states of
    millions of rows are never padded row by row; decoding gives the tensors of the row-wise truncation."""
    value_table, turn_table = states.encoded[value_field], states.encoded[turn_field]
    value_codes = states.interaction[value_field].long()
    turn_codes = states.interaction[turn_field].long()
    n_turns = int(turn.max()) + 1 if len(turn) else 1
    key = (value_codes * len(turn_table) + turn_codes) * n_turns + turn
    unique, codes = torch.unique(key, return_inverse=True)
    row_turn = unique % n_turns
    unique_turn_codes = (unique // n_turns) % len(turn_table)
    unique_value_codes = unique // n_turns // len(turn_table)
    turns, values = turn_table[unique_turn_codes], value_table[unique_value_codes]
    keep = (turns <= row_turn.unsqueeze(1).to(turns.dtype)) & (turns > 0)
    values = torch.where(keep, values, torch.zeros_like(values))
    turns = torch.where(keep, turns, torch.zeros_like(turns))
    return codes.to(torch.int32), values, turns


def conversation_states(inter_feat, confirmed, rejected=None):
    """Every row of ``inter_feat`` repeated once per turn, its conversation truncated to that turn.

    Args:
        inter_feat: RecBole ``Interaction`` of evaluated rows.
        confirmed: ``(attribute field, turn field or None)``.
        rejected: ``(item field, turn field or None)``, or None when the data has no rejected items.

    Returns:
        An ``Interaction`` with :data:`TURN_FIELD` and :data:`LAST_TURN_FIELD` added; rows of one
        conversation are consecutive, in turn order.
    """
    lists = [confirmed] + ([rejected] if rejected else [])
    turn_fields = [turn_field for _, turn_field in lists if turn_field]
    n_turns = conversation_turns(inter_feat, turn_fields)  # [N]
    rows = torch.repeat_interleave(torch.arange(len(inter_feat)), n_turns)  # [S]
    first_state = torch.cumsum(n_turns, dim=0) - n_turns  # [N]
    turn = torch.arange(len(rows)) - first_state[rows] + 1  # [S], 1..T per conversation

    states = inter_feat[rows]
    truncated = {TURN_FIELD: turn, LAST_TURN_FIELD: turn == n_turns[rows]}
    encoded_codes, encoded_tables = {}, {}
    for value_field, turn_field in lists:
        if not turn_field:
            continue
        if value_field in _encoded(states) and turn_field in _encoded(states):
            codes, values, turns = _truncate_encoded(states, value_field, turn_field, turn)
            encoded_codes[value_field], encoded_codes[turn_field] = codes, codes
            encoded_tables[value_field], encoded_tables[turn_field] = values, turns
            continue
        turns = states[turn_field]  # [S, L] float, 0 = padding
        keep = (turns <= turn.unsqueeze(1).to(turns.dtype)) & (turns > 0)
        truncated[value_field] = torch.where(keep, states[value_field], torch.zeros_like(states[value_field]))
        truncated[turn_field] = torch.where(keep, turns, torch.zeros_like(turns))
    states.update(Interaction(truncated))
    if encoded_tables:
        states.update(WindowedInteraction(encoded_codes, encoded=encoded_tables))
    return states
