"""The plots of a results payload: the suite's ``plot_metric`` per variant and mode (bars), and by turn (lines)."""

from recbole_crs.benchmark.report.summary import (
    CHANCE_PREFIX, mean_std, metric_label, metric_value, ordered, summarize, summary_modes,
)
from recbole_crs.benchmark.spec.suite import DEFAULT_METRIC, DEFAULT_PLOT_MODE, MODE_ORDER
from recbole_crs.runtime import atomic_write


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib  # here: heavy (~0.6 s with pyplot) and only plots need it; Agg is chosen before pyplot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path):
    """Write the PNG atomically (a reader never sees half a file) and close the figure; returns ``path``."""
    atomic_write(path, lambda handle: fig.savefig(handle, dpi=120, format="png"))
    pyplot().close(fig)
    return path


def plot_file_name(metric, suffix=""):
    """``ndcg@10`` -> ``ndcg10.png`` (``ndcg10_by_turn.png`` with suffix ``_by_turn``)."""
    return metric.replace("@", "") + suffix + ".png"


def plot_metric(runs, path, metric=DEFAULT_METRIC, mode_order=MODE_ORDER, datasets_order=(), variants_order=()):
    """Grouped bars: one panel per dataset, one group per variant, one bar per mode (all turns), error bar = std."""
    summary = summarize(runs, datasets_order, variants_order)
    if not summary:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(
        len(summary), 1, figsize=(max(6.0, 1.1 * max(len(v) for v in summary.values()) + 2), 3.6 * len(summary)),
        squeeze=False,
    )
    for ax, (dataset, variants) in zip(axes[:, 0], summary.items()):
        modes = summary_modes(variants, mode_order)
        names = list(variants)
        width = 0.8 / max(1, len(modes))
        for j, mode in enumerate(modes):
            means, stds = [], []
            for name in names:
                values = [metric_value(r.get("test_results"), mode, metric) for r in variants[name]["ok_runs"]]
                mean, std = mean_std(values)
                means.append(mean if mean is not None else 0.0)
                stds.append(std or 0.0)
            xs = [i + (j - (len(modes) - 1) / 2) * width for i in range(len(names))]
            ax.bar(xs, means, width, yerr=stds, capsize=2, label=mode)
        for i, name in enumerate(names):
            if not variants[name]["ok"]:
                ax.text(i, 0, "failed", ha="center", va="bottom", rotation=90, color="red")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right")
        ax.set_ylabel(metric_label(metric))
        ax.set_title(f"{dataset}: test {metric_label(metric)} over all turns per candidate mode "
                     "(mean ± std over seeds)")
        if modes:
            ax.legend(title="crs_candidates", fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return save_figure(fig, path)


def _turn_keys_to_int(by_turn):
    """``{mode: {turn: metrics}}`` with int turns (JSON stores them as strings), turns in order."""
    return {
        mode: {int(turn): values for turn, values in sorted(turns.items(), key=lambda item: int(item[0]))}
        for mode, turns in (by_turn or {}).items()
    }


def by_turn_curves(runs, metric=DEFAULT_METRIC, mode=DEFAULT_PLOT_MODE, datasets_order=(), variants_order=()):
    """``{dataset: {"mode": m, "variants": {variant: [(turn, mean, std)]}, "chance": [(turn, value)]}}`` from the
    runs' ``test_results_by_turn`` (mean ± std over seeds at each turn). A dataset without ``mode`` in its runs
    uses its first mode that has per-turn results; datasets without any are left out."""
    summary = summarize(runs, datasets_order, variants_order)
    curves = {}
    for dataset, variants in summary.items():
        by_run = [(name, _turn_keys_to_int(r.get("test_results_by_turn")))
                  for name, s in variants.items() for r in s["ok_runs"] if r.get("test_results_by_turn")]
        available = []
        for _, by_turn in by_run:
            available += [m for m in by_turn if m not in available]
        if not available:
            continue
        chosen = mode if mode in available else ordered(available, MODE_ORDER)[0]
        per_variant, chance = {}, {}
        for name, by_turn in by_run:
            for turn, values in (by_turn.get(chosen) or {}).items():
                if values.get(metric) is not None:
                    per_variant.setdefault(name, {}).setdefault(turn, []).append(values[metric])
                if values.get(CHANCE_PREFIX + metric) is not None:
                    chance.setdefault(turn, values[CHANCE_PREFIX + metric])
        curves[dataset] = {
            "mode": chosen,
            "variants": {name: [(turn, *mean_std(values)) for turn, values in sorted(turns.items())]
                         for name, turns in per_variant.items()},
            "chance": sorted(chance.items()),
        }
    return curves


def plot_by_turn(runs, path, metric=DEFAULT_METRIC, mode=DEFAULT_PLOT_MODE, datasets_order=(), variants_order=()):
    """Test ``metric`` by turn, one line per variant (mean over seeds, band = std), chance dashed; one panel per
    dataset. None (nothing written) when no run has per-turn results."""
    curves = by_turn_curves(runs, metric, mode, datasets_order, variants_order)
    if not curves:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(len(curves), 1, figsize=(8.0, 3.8 * len(curves)), squeeze=False)
    for ax, (dataset, curve) in zip(axes[:, 0], curves.items()):
        max_turn = 1
        for name, points in curve["variants"].items():
            turns = [p[0] for p in points]
            means = [p[1] for p in points]
            stds = [p[2] or 0.0 for p in points]
            max_turn = max(max_turn, *turns)
            line, = ax.plot(turns, means, marker="o", markersize=3, label=name)
            if any(stds):
                ax.fill_between(turns, [m - d for m, d in zip(means, stds)], [m + d for m, d in zip(means, stds)],
                                color=line.get_color(), alpha=0.12, linewidth=0)
        if curve["chance"]:
            turns = [t for t, _ in curve["chance"]]
            max_turn = max(max_turn, *turns)
            ax.plot(turns, [v for _, v in curve["chance"]], linestyle="--", color="black", label="chance")
        ax.set_xlim(0.5, max_turn + 0.5)
        ax.set_xticks(range(1, max_turn + 1, max(1, max_turn // 15)))
        ax.set_xlabel("turn")
        ax.set_ylabel(metric_label(metric))
        ax.set_title(f"{dataset}: test {metric_label(metric)} by turn, {curve['mode']} mode (mean over seeds)")
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return save_figure(fig, path)
