"""The tuned-values file of a suite (its ``tuned`` key, ``benchmarks/tuned.yaml`` for the main suite): per dataset
and variant, the values a search chose on validation, and how they were found.

::

    ml-100k-crs-targets:
      SASRec:
        values: {learning_rate: 0.001, hidden_dropout_prob: 0.2, attn_dropout_prob: 0.2}
        best_valid_score: 0.3123          # of the chosen trial, in valid_metric
        valid_metric: NDCG@10 (confirmed)
        trials: 9                         # finished trials (failed_trials: the failed ones, if any)
        params_file: benchmarks/hyper/SASRec.hyper
        search: python run_hyper.py --config_files ... --params_file ... --algo exhaustive --output_file ...
        command: python -m recbole_crs.benchmark --tune ...
        date: '2025-01-31T12:00:00'

The suite applies ``values`` as a config layer after the variant's config and before ``--set``
(:func:`recbole_crs.benchmark.spec.runs.stage_configs`); a variant with ``tuned_from: <other variant>`` reads the
other one's entry. ``python -m recbole_crs.benchmark --tune`` writes the entries (:mod:`recbole_crs.benchmark.execution.tune`).
"""

import fcntl
import os

import yaml

from recbole_crs.benchmark.spec.suite import REPO_ROOT, read_yaml
from recbole_crs.errors import SuiteError
from recbole_crs.runtime import atomic_write_text

HEADER = """\
# Tuned values of the benchmark suite, chosen on validation only (best_valid_score of run_hyper.py's trials; test
# results play no part). Written by `python -m recbole_crs.benchmark --tune` (docs/benchmarks.md, "Equal tuning");
# the suite applies each `values` after the variant's config and before --set. Edit by rerunning the search.
"""


def load_tuned(path):
    """``{dataset: {variant: entry}}`` of a tuned file; ``{}`` for no file (``path`` None)."""
    if path is None:
        return {}
    raw = read_yaml(path, "tuned file", ": write it with --tune, or pass --tuned none")
    if not isinstance(raw, dict):
        raise SuiteError(f"tuned file '{path}' must map datasets to variants, got {type(raw).__name__}")
    for dataset, variants in raw.items():
        if not isinstance(variants, dict):
            raise SuiteError(f"tuned file '{path}': {dataset} must map variants to entries")
        for variant, entry in variants.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("values"), dict):
                raise SuiteError(f"tuned file '{path}': {dataset}.{variant} needs a mapping 'values'")
    return raw


def tuned_values(tuned, dataset, variant):
    """The tuned config values of ``variant`` (a :class:`~recbole_crs.benchmark.spec.suite.Variant`) on ``dataset``."""
    entry = (tuned or {}).get(dataset, {}).get(variant.tuned_name)
    return dict(entry["values"]) if entry else {}


def tuned_path(suite, option):
    """The tuned file a command uses: ``--tuned`` (``none``: no file), else the suite's ``tuned``."""
    if option is None:
        return suite.tuned
    return None if option == "none" else os.path.abspath(option)


def repo_relative(path):
    """``path`` relative to the repository when it lies inside it (what a committed file should name)."""
    path = os.path.abspath(path)
    inside = os.path.commonpath([path, REPO_ROOT]) == REPO_ROOT
    return os.path.relpath(path, REPO_ROOT) if inside else path


def write_tuned_entry(path, dataset, variant, entry):
    """Set ``dataset.variant`` of the tuned file to ``entry``, keeping every other entry; written atomically, read
    and written under a lock (``<path>.lock``), so two ``--tune`` commands at once never drop each other's entry."""
    with open(path + ".lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        tuned = load_tuned(path) if os.path.exists(path) else {}
        tuned.setdefault(dataset, {})[variant] = entry
        atomic_write_text(path, HEADER + "\n" + yaml.safe_dump(tuned, sort_keys=True, default_flow_style=False,
                                                                width=120))
    return tuned
