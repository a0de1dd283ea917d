"""From per-state metric values to the reported results: all turns, turn 1, last turn, chance, by turn.

Keys of a mode's result (one flat dict, as RecBole's trainers and HyperTuning expect), for every metric key
``m`` (e.g. ``ndcg@10``):

* ``m``: mean over every evaluated conversation state (each conversation at each of its turns): the
  validation score RecBole's ``valid_metric`` reads;
* ``turn1/m``: over the first turn of each conversation (initial attribute only: the state the paper
  authors' code effectively scores);
* ``last/m``: over the last turn of each conversation (the whole conversation);
* ``chance/m``, ``chance/turn1/m``, ``chance/last/m``: the same for a uniformly random ranking of the same
  candidate sets.
"""

from collections import OrderedDict

import torch

SCOPES = ("", "turn1/", "last/")
CHANCE = "chance/"


def summarize_states(values, chance, turn, last, decimals=4):
    """The flat result dict above from ``{m: [S]}`` values and chance levels, turns [S] and last-turn flags [S]."""
    masks = {"": torch.ones_like(last, dtype=torch.bool), "turn1/": turn == 1, "last/": last.bool()}
    result = OrderedDict()
    for prefix, source in (("", values), (CHANCE, chance)):
        for scope in SCOPES:
            for key, per_state in source.items():
                result[prefix + scope + key] = round(per_state[masks[scope]].mean().item(), decimals)
    return result


def summarize_by_turn(values, chance, turn, decimals=4):
    """``{t: {m: value, "chance/m": value, "states": count}}`` for every turn t present."""
    by_turn = OrderedDict()
    for t in sorted(set(turn.tolist())):
        at_t = turn == t
        row = OrderedDict((key, round(v[at_t].mean().item(), decimals)) for key, v in values.items())
        row.update((CHANCE + key, round(v[at_t].mean().item(), decimals)) for key, v in chance.items())
        row["states"] = int(at_t.sum())
        by_turn[int(t)] = row
    return by_turn


def format_results_table(results_by_mode):
    """A markdown table: per candidate mode, the model and chance rows for all turns, turn 1 and last turn."""
    first = next(iter(results_by_mode.values()))
    metrics = [key for key in first if "/" not in key]
    scope_names = {"": "all turns", "turn1/": "turn 1", "last/": "last turn"}
    lines = [
        "| crs_candidates | turns | ranking | " + " | ".join(metrics) + " |",
        "|---" * (len(metrics) + 3) + "|",
    ]
    for mode, result in results_by_mode.items():
        for prefix, who in (("", "model"), (CHANCE, "chance")):
            for scope in SCOPES:
                cells = [f"{result[prefix + scope + m]:.4f}" for m in metrics]
                lines.append(f"| {mode} | {scope_names[scope]} | {who} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
