"""Curves over datasets: one test metric against a numeric property of the dataset (the data-scarcity curve).

A suite file may group its datasets into curves, e.g. the share of training users whose last training row
carries a conversation::

    curves:
      label: training users with a conversation
      groups:
        ml-100k-crs:            # curve name
          0.01: ml-100k-crs-targets-0.01
          1.0: ml-100k-crs-targets
      metric: ndcg@10           # default: the suite's plot_metric
      mode: confirmed           # default: the suite's plot_mode
      scope: all                # all (every turn), turn1 or last

The report gets one table per curve (rows: variants and the chance level; columns: the x values; cells: mean ±
sample std over seeds) and one plot with a panel per curve.
"""

import os

from recbole_crs.benchmark.report.plots import plot_file_name, pyplot, save_figure
from recbole_crs.benchmark.report.summary import mean_std, metric_label as label_of, metric_value


def curve_points(summary, curves, value_of, chance_of):
    """``{curve: {"x": [...], "variants": {variant: [(mean, std, n)]}, "chance": [value]}}``.

    ``summary`` is the benchmark's ``{dataset: {variant: {"ok_runs": [...]}}}``; ``value_of(run)`` and
    ``chance_of(run)`` read the metric (or its chance level) from one run record.
    """
    out = {}
    for name, points in curves["groups"].items():
        xs = [x for x, _ in points]
        variant_names = []
        for _, dataset in points:
            variant_names += [v for v in summary.get(dataset, {}) if v not in variant_names]
        variants = {}
        for variant in variant_names:
            cells = []
            for _, dataset in points:
                runs = summary.get(dataset, {}).get(variant, {}).get("ok_runs", [])
                values = [value_of(r) for r in runs]
                mean, std = mean_std(values)
                cells.append((mean, std, len([v for v in values if v is not None])))
            variants[variant] = cells
        chance = []
        for _, dataset in points:
            levels = [chance_of(r) for s in summary.get(dataset, {}).values() for r in s.get("ok_runs", [])]
            levels = [v for v in levels if v is not None]
            chance.append(levels[0] if levels else None)
        out[name] = {"x": xs, "variants": variants, "chance": chance}
    return out


def _x_label(x):
    return f"{x:g}"


def curve_tables(points, curves, metric_label):
    """Markdown: one table per curve."""
    lines = []
    for name, curve in points.items():
        scope = {"all": "all turns", "turn1": "turn 1", "last": "last turn"}[curves["scope"]]
        lines += [
            f"### {name}: test {metric_label} ({curves['mode']} mode, {scope}) by {curves['label']}",
            "",
            "| model | " + " | ".join(_x_label(x) for x in curve["x"]) + " |",
            "|---" * (len(curve["x"]) + 1) + "|",
            "| chance | " + " | ".join("-" if c is None else f"{c:.4f}" for c in curve["chance"]) + " |",
        ]
        for variant, cells in curve["variants"].items():
            formatted = []
            for mean, std, n in cells:
                if mean is None:
                    formatted.append("-")
                elif std is None:
                    formatted.append(f"{mean:.4f} (n={n})")
                else:
                    formatted.append(f"{mean:.4f} ± {std:.4f}")
            lines.append(f"| {variant} | " + " | ".join(formatted) + " |")
        lines.append("")
    return "\n".join(lines)


def plot_curves(points, curves, metric_label, path):
    """One panel per curve: mean ± std over seeds per variant against x (log scale), chance dashed."""
    fig, axes = pyplot().subplots(1, len(points), figsize=(6.5 * len(points), 4.2), squeeze=False)
    for ax, (name, curve) in zip(axes[0], points.items()):
        for variant, cells in curve["variants"].items():
            xs = [x for x, (mean, _, _) in zip(curve["x"], cells) if mean is not None]
            means = [mean for mean, _, _ in cells if mean is not None]
            stds = [std or 0.0 for mean, std, _ in cells if mean is not None]
            if xs:
                ax.errorbar(xs, means, yerr=stds, marker="o", markersize=3, capsize=3, label=variant)
        chance = [(x, c) for x, c in zip(curve["x"], curve["chance"]) if c is not None]
        if chance:
            ax.plot([x for x, _ in chance], [c for _, c in chance], linestyle="--", color="black", label="chance")
        if all(x > 0 for x in curve["x"]) and max(curve["x"]) / min(curve["x"]) >= 10:
            ax.set_xscale("log")
        ax.set_xticks(curve["x"])
        ax.set_xticklabels([_x_label(x) for x in curve["x"]])
        ax.set_xlabel(curves["label"])
        ax.set_ylabel(f"test {metric_label} ({curves['mode']}, {curves['scope']})")
        ax.set_title(name)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return save_figure(fig, path)


def curves_report(summary, curves, plot_metric, plot_mode, out_dir):
    """The suite's curves over ``summary`` (the benchmark's summary of every run): markdown tables and a plot
    (``<metric>_curves.png`` in ``out_dir``); returns (markdown, png path). The curves' metric and mode default to
    the suite's ``plot_metric`` and ``plot_mode``."""
    curves = dict(curves, metric=curves.get("metric") or plot_metric, mode=curves.get("mode") or plot_mode)

    def value_of(run, chance=False):
        return metric_value(run.get("test_results"), curves["mode"], curves["metric"], curves["scope"], chance)

    points = curve_points(summary, curves, value_of, lambda run: value_of(run, chance=True))
    label = label_of(curves["metric"])
    markdown = f"## Curves: test {label} by {curves['label']}\n\n" + curve_tables(points, curves, label)
    path = plot_curves(points, curves, label, os.path.join(out_dir, plot_file_name(curves["metric"], "_curves")))
    return markdown, path
