"""What a conversation run leaves behind: ``conversation.json``, the success-by-turn plot, ``episodes.tsv``
and the printed table. Every file is written to a temporary name, then renamed into place."""

import io
import json
import os

from recbole_crs.conversation.metrics import SR_TURNS
from recbole_crs.runtime import atomic_write_bytes, atomic_write_text

RESULT_JSON = "conversation.json"
PLOT_PNG = "success_by_turn.png"
EPISODES_TSV = "episodes.tsv"
TABLE_KEYS = tuple(f"SR@{t}" for t in SR_TURNS) + ("AT", "hDCG")


def format_table(results):
    """One table, a row per result dict (``model``, ``policy``, ``episodes``, the metrics, ``seconds``)."""
    header = ["model", "policy", "episodes", *TABLE_KEYS, "seconds"]
    rows = []
    for result in results:
        cells = [str(result["model"]), str(result["policy"]), str(result["episodes"])]
        cells += [f"{result[key]:.4f}" if key != "AT" else f"{result[key]:.2f}" for key in TABLE_KEYS]
        cells.append(f"{result['seconds']:.1f}")
        rows.append(cells)
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in [header] + rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def success_plot_png(result):
    """PNG bytes: SR@t against the number of actions t."""
    import matplotlib  # here: a heavy import, and the Agg backend must be chosen before pyplot is imported

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = result["success_by_turn"]
    figure, axis = plt.subplots(figsize=(5, 3.5))
    axis.plot(range(1, len(curve) + 1), curve, marker="o", markersize=3)
    axis.set_xlabel("actions t")
    axis.set_ylabel("SR@t")
    axis.set_ylim(0, 1)
    axis.grid(alpha=0.3)
    axis.set_title(f"{result['model']} + {result['policy']} on {result['dataset']} ({result['split']}, "
                   f"{result['episodes']} episodes)", fontsize=8)
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    return buffer.getvalue()


def episodes_tsv(outcomes, user_tokens, item_tokens, attribute_tokens):
    """One line per episode: user, target, opening attribute (tokens), success action (0 = failure), rank,
    questions asked, questions accepted."""
    lines = ["user\ttarget\topening\tsuccess_action\trank\tasked\taccepted"]
    for i in range(len(outcomes)):
        lines.append("\t".join([
            str(user_tokens[outcomes.users[i]]), str(item_tokens[outcomes.targets[i]]),
            str(attribute_tokens[outcomes.opening[i]]), str(outcomes.success_action[i]),
            str(outcomes.success_rank[i]), str(outcomes.asked[i]), str(outcomes.accepted[i]),
        ]))
    return "\n".join(lines) + "\n"


def write_outputs(out_dir, result, episodes_text=None, plot=True):
    """Write ``conversation.json`` (+ the plot and ``episodes.tsv``) into ``out_dir``; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [atomic_write_text(os.path.join(out_dir, RESULT_JSON), json.dumps(result, indent=2) + "\n")]
    if plot:
        paths.append(atomic_write_bytes(os.path.join(out_dir, PLOT_PNG), success_plot_png(result)))
    if episodes_text is not None:
        paths.append(atomic_write_text(os.path.join(out_dir, EPISODES_TSV), episodes_text))
    return paths
