"""The multi-round metrics (UNICORN ``RL/RL_evaluate.py``), from each episode's outcome.

An episode's outcome is the policy action ``T`` (1-based) at which the target was recommended, and its rank
``r`` (1-based) in that list; ``T = 0`` for a failure.

* SR@t: share of episodes that succeed within ``t`` actions (``0 < T <= t``);
* AT: mean actions taken, a failure counting ``max_turns`` (UNICORN adds ``t + 1`` at its last step, ``t = 14``);
* hDCG@(15, 10): ``1/log2(T+2) + (1/log2(T+1) - 1/log2(T+2)) / log2(r+1)`` for a success, 0 for a failure;
* success by turn: SR@t for ``t = 1 .. max_turns`` (the curve of the plot).
"""

import torch

SR_TURNS = (5, 10, 15)


def hdcg(actions, ranks):
    """[E] float64 hDCG@(15,10) of successes at action ``actions`` with the target at ``ranks`` (0 = failure)."""
    turn = actions.double()
    rank = ranks.double()
    late = 1.0 / torch.log2(turn + 2.0)
    early = 1.0 / torch.log2(turn + 1.0)
    value = late + (early - late) / torch.log2(rank + 1.0)
    return torch.where(actions > 0, value, torch.zeros_like(value))


def turns_taken(actions, max_turns):
    """[E] long: AT's count per episode, ``actions`` for a success, ``max_turns`` for a failure."""
    return torch.where(actions > 0, actions, torch.full_like(actions, max_turns))


def success_within(actions, turns):
    """Share of episodes that succeed within ``turns`` actions."""
    return float(((actions > 0) & (actions <= turns)).double().mean()) if len(actions) else 0.0


def summarize(actions, ranks, max_turns):
    """``{"SR@5", "SR@10", "SR@15", "AT", "hDCG", "success_by_turn"}`` of the episodes' outcomes ([E] long each:
    success action or 0, rank or 0). ``success_by_turn[t - 1]`` = SR@t for ``t = 1 .. max_turns``."""
    actions, ranks = torch.as_tensor(actions).long(), torch.as_tensor(ranks).long()
    summary = {f"SR@{t}": success_within(actions, t) for t in SR_TURNS}
    count = max(len(actions), 1)
    summary["AT"] = float(turns_taken(actions, max_turns).double().sum()) / count
    summary["hDCG"] = float(hdcg(actions, ranks).sum()) / count
    summary["success_by_turn"] = [success_within(actions, t) for t in range(1, max_turns + 1)]
    return summary
