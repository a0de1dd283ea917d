"""Benchmark suite: every model variant x dataset x seed, evaluated the same way, with tables, JSON and a plot.

    python -m recbole_crs.benchmark --datasets ml-100k-crs,lastfm-precrs --models all --seeds 3 \\
        --precrs-source /work/shared/data/precrs-lastfm --out benchmarks/results/suite

The suite file (default ``benchmarks/suite.yaml``) defines:

* ``common``: config for every run (hidden size, layers, max length, epochs, batch sizes, early stopping);
* ``tuned``: the file of the values equal tuning chose on validation (``--tune``), per dataset and variant;
* ``datasets``: per dataset, config overrides (``config``), overrides for one model on it
  (``models: {<Model>: {...}}``, e.g. a pre-training budget), and optionally a ``convert`` recipe that builds
  the atomic files from a source folder (``--precrs-source``) when they are missing;
* ``variants``: named variants = a ``model`` plus config overrides. A variant with a ``pretrain`` section runs
  two stages the way RecBole's pre-training models (S3Rec) expect: ``train_stage: pretrain`` with those
  overrides, which writes ``<checkpoint_dir>/<model>-<dataset>-<pretrain_epochs>.pth``, then
  ``train_stage: finetune`` with ``pre_model_path`` set to that file; wall time counts both stages.

Config layers, later wins: the plugin's defaults (``Config``) -> ``common`` -> the dataset's ``config`` -> the
dataset's ``models.<model>`` -> the variant's ``config`` -> its tuned values -> ``--epochs`` / ``--set KEY=VALUE``
-> what the runner sets itself (``seed``, ``data_path``, ``checkpoint_dir``, ``crs_test_modes``,
``show_progress: False``). ``--export-config DIR`` writes these layers (without the tuned values) as config files
for ``run_hyper.py``; ``--tune`` runs ``run_hyper.py`` per dataset and variant and writes the best values on
validation into the tuned file.

Every run is evaluated in every mode of the suite's ``modes`` (any mix of all/first/confirmed/authors;
``authors`` is added automatically on a dataset whose ``.inter`` has the ``CANDIDATE_FIELD`` column and skipped on
one without it). Each test conversation is scored at each of its turns; a run records per mode the mean over
every evaluated state (``m``), over first turns (``turn1/m``) and last turns (``last/m``), the chance level of each
(``chance/...``) and the curve by turn (``test_results_by_turn``). Runs are isolated: each one works in its own
folder ``<out>/runs/<dataset>/<variant>/seed<seed>/`` (its cwd, ``checkpoint_dir``, ``run.log``), and its
checkpoints are deleted when it ends unless ``--keep-checkpoints``. With ``--jobs N`` (N > 1) every run is a
separate, fresh Python process (nothing is shared: cwd, argv, logging, torch threads are the process's own), N
at a time; the parent alone writes ``results.json``.

A failing run does not stop the suite (unless ``--fail-fast``): it is recorded with ``status: failed`` and the
error in the JSON, the table counts it (``ok/total`` runs, and ``failed`` where no seed succeeded), and the
command exits with status 1 once every run has been tried. ``results.json`` is rewritten (atomically) after every
finished run, so an interrupted suite keeps what it finished; ``--resume`` reuses finished runs whose effective
config (every yaml layer, model defaults included) is unchanged and keeps the runs of other variants/datasets
already in the file, so a suite can be built up in parts.

Outputs in ``--out``: ``results.json`` (every run: overrides, seed, validation and test metrics per mode and per
turn, epochs, wall and CPU seconds per run and per stage, error), ``results.md`` (per dataset: a chance row, every
variant with its epochs (marked where a run hit its cap) and CPU seconds, the best baseline chosen on validation
and CRSPretrain's gain over it, for ``table_metrics`` x ``table_scopes`` in every mode; mean +- sample std over
seeds; the baselines ranked on validation and the pre-training compute below), ``ndcg10.png`` (the suite's ``plot_metric`` per variant and mode) and ``ndcg10_by_turn.png``
(the ``plot_metric`` by turn per variant in ``plot_mode``, chance dashed). A suite's ``epoch_ratios: <variant>``
(or ``--epoch-ratios <variant>``) adds to ``results.md`` each variant's seconds per training epoch, per stage (read
from the epochs its trainers log into ``run.log``), and their ratio to an epoch of that variant of the same seed.

Three wings, each a sub-package, one module a job, each wing importing only from the wings before it:

* :mod:`~recbole_crs.benchmark.spec`, what a benchmark is, its files: ``suite`` (the suite file, its ``curves``, the
  benchmark's defaults), ``tuned`` (the tuned-values file), ``datasets`` (a dataset's ``.inter`` header and its
  candidate modes), ``runs`` (one spec per run with its layered config, config hashes), ``results``
  (``results.json``);
* :mod:`~recbole_crs.benchmark.report`, what the results say: ``summary`` (runs over seeds, best baseline on
  validation, chance), ``costs`` (epochs, caps, CPU seconds), ``epochs`` (epoch times from the run logs),
  ``plots``, ``curves``, ``markdown`` (``results.md`` and the plots);
* :mod:`~recbole_crs.benchmark.execution`, running it: ``prepare`` (build the datasets, check the variants),
  ``isolation`` (a run's cwd, log and argv), ``run_one`` (one run through :mod:`recbole_crs.quick_start`),
  ``jobs`` (``--jobs`` processes), ``run_all`` (the suite: resume, progress, ETA, the report), ``tune``
  (``--export-config``, ``--tune``), ``steps`` (timed training steps for ``benchmarks/scale.py``);

and :mod:`~recbole_crs.benchmark.cli`, the command line.
"""

from recbole_crs.benchmark.cli import build_parser, main
from recbole_crs.benchmark.execution.prepare import check_variants, prepare_datasets
from recbole_crs.benchmark.execution.run_all import estimate_remaining, run_suite
from recbole_crs.benchmark.execution.run_one import execute_run
from recbole_crs.benchmark.report.markdown import markdown_tables, write_reports
from recbole_crs.benchmark.report.plots import by_turn_curves, plot_by_turn, plot_metric
from recbole_crs.benchmark.report.summary import (
    baselines_by_validation, best_baseline, mean_std, metric_value, summarize,
)
from recbole_crs.benchmark.spec.datasets import dataset_modes, inter_header
from recbole_crs.benchmark.spec.results import RESULTS_JSON, RESULTS_MD, load_results, write_json
from recbole_crs.benchmark.spec.runs import RunSpec, config_sha, plan_runs, resolve_config_shas
from recbole_crs.benchmark.spec.suite import (
    AUTHORS_MODE, DEFAULT_MODES, DEFAULT_SCOPES, SCOPES, DatasetSpec, Suite, Variant, load_suite, parse_set, select,
)
from recbole_crs.benchmark.spec.tuned import load_tuned, tuned_values, write_tuned_entry
from recbole_crs.errors import SuiteError

# The package's public names, for ``from recbole_crs import benchmark`` callers (tests, notebooks).
__all__ = [
    "AUTHORS_MODE", "DEFAULT_MODES", "DEFAULT_SCOPES", "RESULTS_JSON", "RESULTS_MD", "SCOPES", "DatasetSpec",
    "RunSpec", "Suite", "SuiteError", "Variant", "baselines_by_validation", "best_baseline", "build_parser",
    "by_turn_curves", "check_variants", "config_sha", "dataset_modes", "estimate_remaining", "execute_run",
    "inter_header", "load_results", "load_suite", "load_tuned", "main", "markdown_tables", "mean_std", "metric_value",
    "parse_set", "plan_runs", "plot_by_turn", "plot_metric", "prepare_datasets", "resolve_config_shas", "run_suite",
    "select", "summarize", "tuned_values", "write_json", "write_reports", "write_tuned_entry",
]
