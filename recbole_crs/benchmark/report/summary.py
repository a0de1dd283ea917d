"""Run records summarised over seeds: the metric of a run in a mode and scope, mean ± std, the best baseline chosen
on validation, and the chance level of each column. The tables, plots and curves read runs through these."""

import math

from recbole_crs.benchmark.spec.suite import SCOPES

CHANCE_PREFIX = "chance/"
# With one target per evaluated row Recall@K equals Hit@K; the authors' protocol reports Hit@K only.
METRIC_FALLBACK = {"recall": "hit"}
# Models of ours: their variants (the full pipeline and its ablations) are never baselines.
OUR_MODELS = ("CRSPretrain", "CRSFinetune")
# The variant whose gain over the best baseline the tables report.
OUR_VARIANT = "CRSPretrain"


def mean_std(values):
    """Mean and sample standard deviation (ddof 1; None for a single value)."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def fmt(mean, std, digits=4):
    """``mean ± std`` (``mean`` alone for one value, ``-`` for none)."""
    if mean is None:
        return "-"
    if std is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def metric_label(metric):
    return metric.replace("ndcg", "NDCG").replace("recall", "Recall").replace("mrr", "MRR").replace("hit", "Hit")


def ordered(values, preferred):
    """``values`` with those in ``preferred`` first, in its order."""
    seen = [v for v in preferred if v in values]
    return seen + [v for v in values if v not in seen]


def metric_value(results_by_mode, mode, metric, scope="all", chance=False):
    """``metric`` in ``mode`` over ``scope`` (``turn1``, ``last`` or ``all`` turns), or its chance level.

    Keys: ``m``, ``turn1/m``, ``last/m`` and ``chance/`` + each. Recall@K falls back to Hit@K (equal with one
    target per row; the old authors' mode reported Hit@K only). None where the run has no such key (a run of the
    older evaluation has no per-turn or chance keys).
    """
    result = (results_by_mode or {}).get(mode)
    if not result:
        return None
    prefix = (CHANCE_PREFIX if chance else "") + SCOPES[scope][0]
    if prefix + metric in result:
        return result[prefix + metric]
    name, _, k = metric.partition("@")
    fallback = METRIC_FALLBACK.get(name)
    if fallback and f"{prefix}{fallback}@{k}" in result:
        return result[f"{prefix}{fallback}@{k}"]
    return None


def is_legacy_run(record):
    """A finished run of the evaluation before per-turn results (no ``test_results_by_turn``)."""
    return record.get("status") == "ok" and "test_results_by_turn" not in record


def summarize(runs, datasets_order=(), variants_order=()):
    """``{dataset: {variant: summary}}`` over the runs' seeds (failed runs counted, not averaged)."""
    groups = {}
    for run in runs:
        groups.setdefault(run["dataset"], {}).setdefault(run["variant"], []).append(run)
    summary = {}
    for dataset in ordered(list(groups), datasets_order):
        summary[dataset] = {}
        for variant in ordered(list(groups[dataset]), variants_order):
            group = groups[dataset][variant]
            ok = [r for r in group if r.get("status") == "ok"]
            modes = []
            for r in ok:
                modes += [m for m in r.get("test_results", {}) if m not in modes]
            resolved = [r.get("resolved") or {} for r in ok]
            summary[dataset][variant] = {
                "model": group[0].get("model"),
                "runs": len(group),
                "ok": len(ok),
                "failed": [{"seed": r["seed"], "error": (r.get("error") or {}).get("type")} for r in group
                           if r.get("status") != "ok"],
                "seeds": sorted(r["seed"] for r in ok),
                "modes": modes,
                "ok_runs": ok,
                "wall_s": mean_std([r.get("wall_s") for r in ok]),
                "epochs_run": mean_std([r.get("epochs_run") for r in ok]),
                # Model selection uses this (validation), never the test results.
                "valid": mean_std([r.get("best_valid_score") for r in ok
                                   if isinstance(r.get("best_valid_score"), (int, float))]),
                "valid_bigger": all(r.get("valid_score_bigger", True) is not False for r in ok),
                "valid_metric": sorted({f"{x.get('valid_metric')} ({x.get('crs_candidates')})" for x in resolved
                                        if x.get("valid_metric")}),
                "legacy": sum(is_legacy_run(r) for r in ok),
                # More than one: the model's defaults changed between this variant's runs (yaml edited mid-suite).
                "config_shas": sorted({r["final_config_sha"] for r in ok if r.get("final_config_sha")}),
            }
    return summary


def summary_modes(variants, mode_order):
    """The modes the variants' runs were tested in, in ``mode_order`` first."""
    modes = []
    for s in variants.values():
        modes += [m for m in s["modes"] if m not in modes]
    return ordered(modes, mode_order)


def is_ours(summary_entry):
    """The variant's model is ours (the full pipeline or an ablation of it): never a baseline."""
    return summary_entry.get("model") in OUR_MODELS


def baselines_by_validation(variants):
    """``[(name, summary)]`` of the baselines (variants whose model is not ours) with a validation score, best mean
    validation score (``best_valid_score``; higher or lower as the runs' ``valid_score_bigger`` says) first; equal
    scores keep the listed order. Test results play no part."""
    candidates = [(name, s) for name, s in variants.items() if not is_ours(s) and s["valid"][0] is not None]
    bigger = all(s["valid_bigger"] for _, s in candidates)
    return sorted(candidates, key=lambda item: -item[1]["valid"][0] if bigger else item[1]["valid"][0])


def best_baseline(variants):
    """``(name, summary)`` of the first of :func:`baselines_by_validation`, or None."""
    ranked = baselines_by_validation(variants)
    return ranked[0] if ranked else None


def chance_levels(variants, columns):
    """``({column: value}, (variant, seed) it came from, [columns where runs disagree])``.

    The chance level depends only on the candidate sets, so it is the same for every model (and seed) on a
    dataset and mode: it is taken from the first finished run that has it, and every other run is checked.
    """
    values, source, differ = {}, None, []
    runs = [(name, r) for name, s in variants.items() for r in s["ok_runs"]]
    for column in columns:
        mode, metric, scope = column
        found = [(name, r, metric_value(r.get("test_results"), mode, metric, scope, chance=True))
                 for name, r in runs]
        found = [f for f in found if f[2] is not None]
        if not found:
            continue
        values[column] = found[0][2]
        source = source or (found[0][0], found[0][1]["seed"])
        if max(f[2] for f in found) - min(f[2] for f in found) > 1e-9:
            differ.append(column)
    return values, source, differ


def duration(seconds):
    """``1h02m``, ``3m05s`` or ``42s``."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
