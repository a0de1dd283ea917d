"""``--sweep``: choose ScoreGuided's parameters on validation episodes (top floor).

Every combination of ``score_guided.sweep`` in ``properties/conversation.yaml`` plays the same validation
episodes with the same trained ranker; the combination with the highest SR@15 wins (the field's primary
metric; ties: lower AT). The lowest AT alone would favour asking less: on LastFM* with CRSFinetune it chose a
combination 5 points lower in SR@15 for 0.15 fewer actions (docs/conversation.md). The test split is refused: a
default chosen on test would be a test result. Writes ``sweep.json`` (every combination and the choice) and
prints the table and the yaml entry to record under ``score_guided.chosen``.
"""

import json
import os

from recbole_crs.conversation.options import score_guided_parameters, sweep_grid
from recbole_crs.conversation.policies import make_policy
from recbole_crs.conversation.report import format_table
from recbole_crs.conversation.runner import default_out, play_episodes, result_of
from recbole_crs.errors import CRSInputError
from recbole_crs.runtime import atomic_write_text

SWEEP_JSON = "sweep.json"
SWEPT = ("temperature", "mass_threshold", "ask_margin")


def check_sweep(options, defaults):
    if options["split"] != "valid":
        raise CRSInputError("--sweep chooses parameters, so it plays validation episodes only: add --split valid.")
    if options["policy"] != "ScoreGuided":
        raise CRSInputError(f"--sweep tunes ScoreGuided, not {options['policy']}: use --policy ScoreGuided.")
    if not sweep_grid(defaults) or sweep_grid(defaults) == [{}]:
        raise CRSInputError("properties/conversation.yaml has no score_guided.sweep grid to play.")


def run_sweep(setup, options, defaults, overrides=None, out=None, show_progress=True):
    """Play every grid combination on ``options``' validation episodes; returns (results, best result)."""
    check_sweep(options, defaults)
    base = score_guided_parameters(defaults, setup.config["dataset"], setup.ranker.name, options["topk"], overrides)
    results = []
    for combination in sweep_grid(defaults):
        parameters = dict(base, **combination)
        policy = make_policy("ScoreGuided", setup.catalogue, options["topk"], **parameters)
        outcomes, seconds = play_episodes(setup, policy, options, show_progress)
        result = result_of(setup, policy, options, outcomes, seconds)
        result["policy"] = "ScoreGuided " + " ".join(f"{key}={parameters[key]:g}" for key in SWEPT)
        results.append(result)
    best = max(results, key=lambda r: (round(r["SR@15"], 9), -r["AT"]))
    chosen = {key: best["policy_parameters"][key] for key in SWEPT}
    out = out or default_out(dict(results[0], policy="ScoreGuided-sweep"))
    os.makedirs(out, exist_ok=True)
    atomic_write_text(os.path.join(out, SWEEP_JSON), json.dumps({"results": results, "chosen": chosen}, indent=2) + "\n")
    print(format_table(results))
    print(f"chosen on {best['episodes']} validation episodes (highest SR@15, then lowest AT): {chosen}")
    print("record it in properties/conversation.yaml under score_guided.chosen:")
    print(f"    {setup.config['dataset']}:\n      {setup.ranker.name}: "
          + "{" + ", ".join(f"{key}: {value:g}" for key, value in chosen.items()) + "}")
    return results, best
