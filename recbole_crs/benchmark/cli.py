"""The command line of ``python -m recbole_crs.benchmark``."""

import argparse
import json
import os
import sys

from recbole_crs.benchmark.execution.prepare import check_configs, check_variants, prepare_datasets
from recbole_crs.benchmark.execution.run_all import run_suite
from recbole_crs.benchmark.report.markdown import write_reports
from recbole_crs.benchmark.spec.results import RESULTS_JSON, load_results, to_builtin
from recbole_crs.benchmark.spec.runs import plan_runs
from recbole_crs.benchmark.spec.suite import (
    DEFAULT_DATA_PATH, DEFAULT_OUT, DEFAULT_SEEDS, DEFAULT_SUITE, load_suite, parse_set, select,
)
from recbole_crs.benchmark.spec.tuned import load_tuned, tuned_path
from recbole_crs.errors import CRSInputError, SuiteError, print_error


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m recbole_crs.benchmark",
        description="Benchmark suite: every model variant x dataset x seed, evaluated the same way, with tables, JSON "
        "and a plot.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--suite", default=DEFAULT_SUITE, help="suite yaml (default: benchmarks/suite.yaml)")
    parser.add_argument("--datasets", default=None, help="comma-separated dataset names of the suite (default: all)")
    parser.add_argument("--models", default=None, help="comma-separated variant names of the suite, or 'all'")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                        help=f"number of seeds: base_seed, base_seed+1, ... (default {DEFAULT_SEEDS})")
    parser.add_argument("--base-seed", type=int, default=None, help="first seed (default: the suite's base_seed)")
    parser.add_argument("--epochs", type=int, default=None, help="override 'epochs' for every run")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override for every run "
                        "(yaml value, repeatable), e.g. --set train_batch_size=1024")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per run (default: the suite's 'threads', else torch's default)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at a time, each in its own process (default 1: one run after the other, in this "
                        "process); without --threads each gets cpu_count // jobs torch threads")
    parser.add_argument("--data-path", default=DEFAULT_DATA_PATH, help="folder of the datasets (default: dataset/)")
    parser.add_argument("--precrs-source", default=None,
                        help="folder with the authors' Last.fm files; builds lastfm-precrs when missing")
    parser.add_argument("--out", default=DEFAULT_OUT, help="results folder (default: benchmarks/results/suite)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse finished runs in <out>/results.json whose config is unchanged, keep the others")
    parser.add_argument("--rerun", default=None, metavar="VARIANTS",
                        help="with --resume: rerun these variants (comma-separated, or 'all') even if unchanged, "
                        "e.g. after their model's code changed (the fingerprint covers configs, not code)")
    parser.add_argument("--overwrite", action="store_true", help="discard an existing <out>/results.json")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failed run")
    parser.add_argument("--no-key-check", action="store_true",
                        help="do not require a variant's config keys to be keys of its model's config")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep each run's checkpoints")
    parser.add_argument("--report-only", action="store_true", help="rewrite results.md and the plot from results.json")
    parser.add_argument("--epoch-ratios", default=None, metavar="VARIANT",
                        help="add to results.md each variant's seconds per training epoch (per stage) and their "
                        "ratio to an epoch of VARIANT (default: the suite's 'epoch_ratios', else no such table)")
    parser.add_argument("--dry-run", action="store_true", help="list the planned runs and their config, run nothing")
    tuning = parser.add_argument_group("equal tuning (docs/benchmarks.md)")
    tuning.add_argument("--tuned", default=None, metavar="PATH",
                        help="tuned-values file, a config layer after the variant's and before --set (default: the "
                        "suite's 'tuned'; 'none': no tuned values)")
    tuning.add_argument("--export-config", default=None, metavar="DIR",
                        help="write DIR/<dataset>-<variant>.yaml, the fixed config of each selected dataset and variant "
                        "(every suite layer and --set, no tuned values, the first seed) for run_hyper.py --config_files")
    tuning.add_argument("--tune", action="store_true",
                        help="for each of --datasets x --models: run_hyper.py over the model's params file, the best "
                        "values on validation into the tuned file (searches in <out>/tuning/)")
    tuning.add_argument("--params-file", default=None,
                        help="with --tune: the search space (default: benchmarks/hyper/<Model>.hyper)")
    return parser


def _report_only(args, out_dir, log):
    json_path = os.path.join(out_dir, RESULTS_JSON)
    if not os.path.exists(json_path):
        raise SuiteError(f"--report-only: {json_path} does not exist")
    suite = load_suite(args.suite) if os.path.exists(args.suite) else None
    payload = load_results(json_path)
    for path in write_reports(payload, out_dir, suite, epoch_ratios=args.epoch_ratios):
        log(f"wrote {path}")
    return 0


def _run(args, argv, out_dir, log):
    suite = load_suite(args.suite)
    datasets = select(args.datasets, list(suite.datasets), "datasets")
    variants = select(args.models, list(suite.variants), "models")
    if args.epoch_ratios:
        suite.epoch_ratios = select(args.epoch_ratios, list(suite.variants), "--epoch-ratios variant")[0]
    for option, value in (("--seeds", args.seeds), ("--threads", args.threads), ("--jobs", args.jobs)):
        if value is not None and value < 1:  # torch refused threads < 1 with a traceback; --jobs 0 meant 1
            raise SuiteError(f"{option} must be at least 1, got {value}")
    if args.base_seed is not None and args.base_seed < 0:
        raise SuiteError(f"--base-seed must be at least 0, got {args.base_seed}")
    base = suite.base_seed if args.base_seed is None else args.base_seed
    seeds = list(range(base, base + args.seeds))
    overrides = parse_set(args.set)
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    sources = {"precrs-source": os.path.abspath(args.precrs_source) if args.precrs_source else None}
    tuned_file = tuned_path(suite, args.tuned)
    # --tune writes the file: a new one is started empty (any other run must read an existing one)
    tuned = {} if args.tune and tuned_file and not os.path.exists(tuned_file) else load_tuned(tuned_file)
    # Before anything is built or run: every variant's model and keys, then every dataset x variant's config (the
    # first seed's: the others differ in seed and folder only). A --set value the config refuses is one error, not
    # a failed run per seed.
    data_path = os.path.abspath(args.data_path)
    if not args.no_key_check:
        check_variants(suite, variants, datasets, data_path, tuned)
    check_configs(plan_runs(suite, datasets, variants, seeds[:1], data_path, out_dir, overrides, tuned=tuned))
    if args.export_config or args.tune:
        return _tuning(args, argv, suite, datasets, variants, seeds[0], overrides, sources, tuned_file, log)
    if args.dry_run:
        for spec in plan_runs(suite, datasets, variants, seeds, data_path, out_dir, overrides, tuned=tuned):
            extra = f" (pretrain: {json.dumps(to_builtin(spec.pretrain_config))})" if spec.pretrain_config else ""
            log(f"{spec.dataset} {spec.variant} seed={spec.seed}: {json.dumps(to_builtin(spec.config))}{extra}")
        return None
    if args.overwrite:
        json_path = os.path.join(out_dir, RESULTS_JSON)
        if os.path.exists(json_path):
            os.remove(json_path)
    rerun = select(args.rerun, list(suite.variants), "--rerun variants") if args.rerun else ()
    return run_suite(
        suite, datasets, variants, seeds, out_dir, data_path=args.data_path, overrides=overrides,
        sources=sources, resume=args.resume, rerun=rerun, fail_fast=args.fail_fast,
        keep_checkpoints=args.keep_checkpoints, threads=args.threads, jobs=args.jobs,
        key_check=False, log=log, command=_command(argv), tuned=tuned, tuned_file=tuned_file,  # checked above
    )


def _command(argv):
    return ["python", "-m", "recbole_crs.benchmark"] + list(sys.argv[1:] if argv is None else argv)


def _tuning(args, argv, suite, datasets, variants, seed, overrides, sources, tuned_file, log):
    """``--export-config DIR`` or ``--tune``; returns None (nothing for the exit status to count)."""
    # Imports run_hyper.py's package (RecBole's HyperTuning, torch): only these two options need it.
    from recbole_crs.benchmark.execution import tune

    data_path = os.path.abspath(args.data_path)
    prepare_datasets(suite, datasets, data_path, sources, log=log)
    if args.export_config:
        written = tune.export_configs(suite, datasets, variants, os.path.abspath(args.export_config), data_path,
                                      overrides, seed)
        for paths in written.values():
            log("\n".join(f"wrote {path}" for path in paths if path))
        return None
    if args.datasets is None or args.models in (None, "all"):
        raise SuiteError("--tune searches one grid per dataset and variant: name them with --datasets and --models")
    tune.tune(suite, datasets, variants, os.path.join(os.path.abspath(args.out), "tuning"), data_path, tuned_file,
              params_file=args.params_file, overrides=overrides, threads=args.threads, seed=seed,
              command=" ".join(_command(argv)), log=log)
    return None


def main(argv=None):
    """Exit status: 0 when every run finished, 1 when one failed, 2 for a suite or command-line error, or an input
    error found before the runs (a ``--set``, suite or tuned value the config refuses, a dataset that cannot be
    built). A run that fails is recorded with its one-line message and the suite goes on (exit status 1)."""
    args = build_parser().parse_args(argv)
    log = lambda message: print(message, flush=True)  # noqa: E731
    try:
        out_dir = os.path.abspath(args.out)
        if args.report_only:
            return _report_only(args, out_dir, log)
        payload = _run(args, argv, out_dir, log)
    except SuiteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except CRSInputError as error:
        print_error(error)
        return 2
    if payload is None:  # --dry-run, --export-config, --tune
        return 0
    failed = [r for r in payload["runs"] if r.get("status") != "ok"]
    if failed:
        names = ", ".join(f"{r['dataset']}/{r['variant']}/seed{r['seed']}" for r in failed)
        log(f"{len(failed)} run(s) failed: {names}")
        return 1
    return 0
