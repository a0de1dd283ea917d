"""The report of a results payload: ``results.md`` (per dataset a chance row, every variant, the best baseline
chosen on validation and CRSPretrain's gain over it; the curves and epoch-time tables where asked for) and the
plots (:mod:`recbole_crs.benchmark.report.plots`, :mod:`recbole_crs.benchmark.report.curves`)."""

import os

from recbole_crs.benchmark.report.costs import COST_HEADERS, cost_cells, cost_notes
from recbole_crs.benchmark.report.curves import curves_report
from recbole_crs.benchmark.report.epochs import epoch_ratio_tables
from recbole_crs.benchmark.report.plots import plot_by_turn, plot_file_name, plot_metric
from recbole_crs.benchmark.report.summary import (
    OUR_MODELS, OUR_VARIANT, baselines_by_validation, chance_levels, duration, fmt, is_ours, mean_std,
    metric_label, metric_value, ordered, summarize, summary_modes,
)
from recbole_crs.benchmark.spec.results import RESULTS_JSON, RESULTS_MD
from recbole_crs.benchmark.spec.suite import (
    AUTHORS_MODE, DEFAULT_METRIC, DEFAULT_PLOT_MODE, DEFAULT_SCOPES, MODE_ORDER, SCOPES,
)
from recbole_crs.runtime import atomic_write_text


NO_COSTS = " | - " * len(COST_HEADERS) + "|"  # the cost cells of the rows that are not a variant


def table_columns(modes, metrics, scopes):
    """``[(mode, metric, scope)]``: the metric columns of a table, mode outermost, scope innermost."""
    return [(mode, metric, scope) for mode in modes for metric in metrics for scope in scopes]


def _gain(ours, base):
    if ours is None or base is None or base == 0:
        return "-"
    return f"{100.0 * (ours - base) / base:+.1f}%"


def _headers(variants, columns):
    headers = ["model", "runs ok"]
    for mode, metric, scope in columns:
        label = metric_label(metric)
        legacy_authors = mode == AUTHORS_MODE and not any(
            metric in (r.get("test_results") or {}).get(mode, {})
            for s in variants.values() for r in s["ok_runs"]
        )
        if legacy_authors and metric.startswith("recall"):
            label = label.replace("Recall", "Hit")  # older runs: the authors' mode had Hit@K only
        headers.append(f"{mode} {label} {SCOPES[scope][1]}")
    return headers + COST_HEADERS


def _variant_row(variant, s, columns, means):
    runs_cell = f"{s['ok']}/{s['runs']}"
    if s["failed"]:
        runs_cell += " (failed: " + ", ".join(f"seed {f['seed']} {f['error']}" for f in s["failed"]) + ")"
    if len(s["config_shas"]) > 1:
        runs_cell += " (final configs differ between seeds!)"
    cells = [variant, runs_cell]
    means[variant] = {}
    for column in columns:
        if not s["ok"]:
            cells.append("failed")
            continue
        mode, metric, scope = column
        mean, std = mean_std([metric_value(r.get("test_results"), mode, metric, scope) for r in s["ok_runs"]])
        means[variant][column] = mean
        cells.append(fmt(mean, std))
    cells += cost_cells(s)
    return "| " + " | ".join(cells) + " |"


def _notes(variants, ranked, chosen_on, chance_source, chance_differ):
    baseline = ranked[0] if ranked else None
    notes = []
    if chance_source:
        notes.append(
            "`chance`: the exact expected metric of a uniformly random ranking of the same candidate sets; it "
            "is the same for every model on a dataset and mode, so it is taken from one finished run "
            f"({chance_source[0]} seed {chance_source[1]})"
            + (" and checked against every other run." if not chance_differ else
               f"; **runs disagree on it** in {', '.join(' '.join(c) for c in chance_differ)}!")
        )
    baselines = [name for name, s in variants.items() if not is_ours(s)]
    if baseline is not None:
        notes.append(
            f"`best baseline`: of the baselines ({', '.join(baselines)}; variants of "
            f"{'/'.join(OUR_MODELS)} are ours, not baselines), the one with the best {chosen_on} "
            f"(`best_valid_score`, shown in its `runs ok` cell); test results play no part in the choice."
        )
        notes.append("Baselines ranked by " + chosen_on + ": "
                     + ", ".join(f"{i}. {name} {fmt(*s['valid'])}" for i, (name, s) in enumerate(ranked, 1)) + ".")
    if OUR_VARIANT in variants and baseline is not None:
        notes.append(f"`gain`: (mean of {OUR_VARIANT} - mean of {baseline[0]}) / mean of {baseline[0]}, per column.")
    legacy = sum(s["legacy"] for s in variants.values())
    if legacy:
        notes.append(f"**{legacy} run(s) predate per-turn evaluation** (no turn-1, last-turn or chance keys: "
                     "those cells are `-`); rerun them with `--resume --rerun all`.")
    return notes + cost_notes(variants)


def markdown_tables(runs, metrics=(DEFAULT_METRIC,), mode_order=MODE_ORDER, datasets_order=(), variants_order=(),
                    scopes=DEFAULT_SCOPES):
    """One markdown table per dataset: ``metrics`` x ``scopes`` (turn 1 / last turn / all turns) in every mode.

    Rows: ``chance`` (expected metric of a uniformly random ranking of the same candidates, from the runs'
    ``chance/`` keys), every variant (mean ± sample std over seeds), ``best baseline`` (the non-ours variant with
    the best mean validation score, named) and the relative gain of ``CRSPretrain`` over it in %.
    """
    summary = summarize(runs, datasets_order, variants_order)
    blocks = []
    for dataset, variants in summary.items():
        columns = table_columns(summary_modes(variants, mode_order), metrics, scopes)
        headers = _headers(variants, columns)
        ranked = baselines_by_validation(variants)
        baseline = ranked[0] if ranked else None
        valid_metrics = sorted({m for s in variants.values() for m in s["valid_metric"]})
        chosen_on = f"mean validation {' / '.join(valid_metrics) or 'score'}"
        lines = [
            f"### {dataset} (best baseline chosen on {chosen_on}, never on test)",
            "",
            "| " + " | ".join(headers) + " |",
            "|" + "---|" * len(headers),
        ]
        means = {}  # variant -> {column: mean}
        chance, chance_source, chance_differ = chance_levels(variants, columns)
        lines.append("| chance | - | " + " | ".join(
            f"{chance[c]:.4f}" if c in chance else "-" for c in columns) + NO_COSTS)
        lines += [_variant_row(variant, s, columns, means) for variant, s in variants.items()]
        if baseline is None:
            lines.append("| best baseline: none finished | - | " + " | ".join("-" for _ in columns) + NO_COSTS)
        else:
            name, s = baseline
            cells = [f"best baseline: {name}", f"valid {fmt(*s['valid'])}"]
            cells += [fmt(*mean_std([metric_value(r.get("test_results"), *c) for r in s["ok_runs"]]))
                      for c in columns]
            lines.append("| " + " | ".join(cells) + NO_COSTS)
        if OUR_VARIANT in variants:
            ours = means.get(OUR_VARIANT, {})
            base = means.get(baseline[0], {}) if baseline else {}
            lines.append(f"| gain of {OUR_VARIANT} over best baseline | - | " + " | ".join(
                _gain(ours.get(c), base.get(c)) for c in columns) + NO_COSTS)
        dataset_runs = [r for r in runs if r["dataset"] == dataset]
        wall = sum(r.get("wall_s") or 0 for r in dataset_runs)
        lines += ["", f"{len(dataset_runs)} runs, {duration(wall)} wall time in all."]
        notes = _notes(variants, ranked, chosen_on, chance_source, chance_differ)
        if notes:
            lines += [""] + [f"* {note}" for note in notes]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def write_reports(payload, out_dir, suite=None, epoch_ratios=None):
    """results.md and the PNGs from a results payload (an older results.json without per-turn results too);
    returns the paths written. ``epoch_ratios`` (default: the payload's, else the suite's) names the variant
    whose training epoch is the unit of an epoch-time table (:mod:`recbole_crs.benchmark.report.epochs`)."""
    runs = payload.get("runs", [])
    metrics = tuple(payload.get("table_metrics") or (suite.table_metrics if suite else (DEFAULT_METRIC,)))
    scopes = tuple(payload.get("table_scopes") or (suite.table_scopes if suite else DEFAULT_SCOPES))
    plot = payload.get("plot_metric") or (suite.plot_metric if suite else DEFAULT_METRIC)
    plot_mode = payload.get("plot_mode") or (suite.plot_mode if suite else DEFAULT_PLOT_MODE)
    epoch_ratios = epoch_ratios or payload.get("epoch_ratios") or (suite.epoch_ratios if suite else None)
    datasets_order = tuple(payload.get("datasets_order") or ())
    variants_order = tuple(payload.get("variants_order") or ())
    mode_order = tuple(ordered(list(MODE_ORDER), list(suite.modes) if suite else []))
    tables = markdown_tables(runs, metrics, mode_order=mode_order, datasets_order=datasets_order,
                             variants_order=variants_order, scopes=scopes)
    failed = [r for r in runs if r.get("status") != "ok"]
    header = [
        "# Benchmark results",
        "",
        f"Suite: `{payload.get('suite')}`. Test metrics, mean ± sample std over seeds, each over the test "
        "conversations' first turns (`turn 1`: the initial attribute only), last turns (`last turn`: the whole "
        "conversation) and every turn (`all turns`). `runs ok` = finished/planned runs; `epochs` = epochs trained (the "
        "early-stopped stage's); CPU and wall seconds per run cover dataset loading, every training stage and the "
        "test evaluation. Baselines are ranked on validation only.",
        "",
    ]
    if failed:
        header += [f"**{len(failed)} run(s) failed** (see `{RESULTS_JSON}`, key `error`).", ""]
    png_path = plot_metric(
        runs, os.path.join(out_dir, plot_file_name(plot)), plot, mode_order=mode_order,
        datasets_order=datasets_order, variants_order=variants_order,
    )
    by_turn_path = plot_by_turn(
        runs, os.path.join(out_dir, plot_file_name(plot, "_by_turn")), plot, plot_mode,
        datasets_order=datasets_order, variants_order=variants_order,
    )
    markdown = "\n".join(header) + "\n" + tables
    curves_path = None
    curves = payload.get("curves") if "curves" in payload else (suite.curves if suite else None)
    if curves:
        summary = summarize(runs, datasets_order, variants_order)
        curves_md, curves_path = curves_report(summary, curves, plot, plot_mode, out_dir)
        markdown += "\n" + curves_md
    if epoch_ratios:
        epochs_md = epoch_ratio_tables(summarize(runs, datasets_order, variants_order), epoch_ratios)
        markdown += "\n## Epoch times\n\n" + (epochs_md or f"No run recorded epoch times (`{RESULTS_JSON}`, key "
                                                          "`epoch_seconds`).\n")
    md_path = os.path.join(out_dir, RESULTS_MD)
    atomic_write_text(md_path, markdown)
    return [md_path] + [p for p in (png_path, by_turn_path, curves_path) if p]
