"""One run of the suite: its stages through :mod:`recbole_crs.quick_start`, isolated in its folder, and its record
(config, validation and test results, wall and epoch times, or the error)."""

import contextlib
import datetime
import logging
import os
import shutil
import time
import traceback

from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_crs.benchmark.execution.isolation import RUN_LOG, isolated_run
from recbole_crs.benchmark.report.epochs import epoch_seconds, log_size
from recbole_crs.benchmark.spec.results import to_builtin
from recbole_crs.benchmark.spec.runs import config_sha
from recbole_crs.config import Config
from recbole_crs.errors import SuiteError

# Config keys copied from each run's final config into the JSON (what the run actually used).
RESOLVED_KEYS = (
    "model", "dataset", "seed", "hidden_size", "embedding_size", "inner_size", "n_layers", "num_layers",
    "n_heads", "MAX_ITEM_LIST_LENGTH", "epochs", "train_batch_size", "eval_batch_size", "learning_rate",
    "stopping_step", "eval_step", "crs_candidates", "crs_test_modes", "valid_metric", "train_stage",
    "pretrain_epochs", "loss_type", "valid_metric_bigger",
)


def _close_trainer(trainer):
    writer = getattr(trainer, "tensorboard", None)
    if writer is not None:
        with contextlib.suppress(Exception):
            writer.close()


def run_pretrain_stage(config_dict):
    """RecBole-style pre-training (``train_stage: pretrain``) through ``quick_start.train``; returns (checkpoint
    path, epochs, CPU seconds of the training alone: no dataset building)."""
    from recbole_crs import quick_start  # every model and trainer: loaded when a run starts, not by --report-only

    config_dict = dict(config_dict)
    epochs = int(config_dict.get("pretrain_epochs") or 0)
    if epochs <= 0:
        raise SuiteError("a pretrain stage needs pretrain_epochs >= 1")
    config_dict["save_step"] = epochs  # only the last pre-training epoch is written
    config = Config(model=config_dict["model"], dataset=config_dict["dataset"], config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    dataset = quick_start.create_dataset(config)
    train_data, valid_data, _ = data_preparation(config, dataset)
    cpu_started = time.process_time()
    trainer, _, _ = quick_start.train(config, dataset, train_data, valid_data, saved=True, verbose=True)
    train_cpu_s = round(time.process_time() - cpu_started, 2)
    _close_trainer(trainer)
    path = os.path.join(config["checkpoint_dir"], f"{config['model']}-{config['dataset']}-{epochs}.pth")
    if not os.path.isfile(path):
        raise RuntimeError(f"pre-training did not write {path}")
    return path, epochs, train_cpu_s


def _train_and_test_stage(config_dict):
    """The fine-tuning (or only) stage: ``quick_start.train_and_test_with_trainer`` (training, then the test set in
    every mode of ``crs_test_modes``); keeps its validation result, its test results per mode and per turn."""
    from recbole_crs import quick_start  # every model and trainer: loaded when a run starts, not by --report-only

    config = Config(model=config_dict["model"], dataset=config_dict["dataset"], config_dict=config_dict)
    # Taken before the dataset is built: the dataset writes into the config (e.g. alias_of_item_id).
    final_config = {k: to_builtin(v) for k, v in sorted(config.final_config_dict.items())}
    final_sha = config_sha(config.final_config_dict)
    init_seed(config["seed"], config["reproducibility"])
    logging.getLogger().info(config)
    result, trainer = quick_start.train_and_test_with_trainer(config, saved=True, verbose=True)
    _close_trainer(trainer)
    losses = getattr(trainer, "train_loss_dict", None)
    record = {
        "resolved": {k: to_builtin(config[k]) for k in RESOLVED_KEYS if k in config},
        # Every value the run used, model yaml defaults included: a model yaml edited between runs shows here.
        "final_config": final_config,
        "final_config_sha": final_sha,
        "best_valid_score": to_builtin(result["best_valid_score"]),
        "valid_score_bigger": to_builtin(result.get("valid_score_bigger", config["valid_metric_bigger"])),
        "best_valid_result": to_builtin(result.get("best_valid_result")),
        "test_results": to_builtin(result["test_results"]),
        "epochs_run": len(losses) if isinstance(losses, dict) else None,
    }
    stage_cpu_s = getattr(trainer, "stage_cpu_s", None)  # the CRSPretrain pipeline's own stages
    if stage_cpu_s:
        record["pipeline_cpu_s"] = {stage: round(seconds, 2) for stage, seconds in stage_cpu_s.items()}
    if result.get("test_results_by_turn") is not None:
        record["test_results_by_turn"] = to_builtin(result["test_results_by_turn"])
    return record


def run_header(spec, run_dir):
    """What every record of ``spec`` holds, finished, failed or lost."""
    return {
        "dataset": spec.dataset,
        "variant": spec.variant,
        "model": spec.config["model"],
        "seed": spec.seed,
        "fingerprint": spec.fingerprint,
        "overrides": to_builtin(spec.config),
        "pretrain_overrides": to_builtin(spec.pretrain_config) if spec.pretrain_config else None,
        "tuned": to_builtin(spec.tuned),  # the values of the tuned file in "overrides" (None: none)
        "run_dir": run_dir,
    }


def _timed_stage(record, log_path, stage, run_stage):
    """``run_stage()`` as ``stage``: its wall and CPU seconds into ``record['stages']``, the training epochs it
    logged into ``record['epoch_seconds']``; returns what ``run_stage`` returns."""
    started, cpu_started, offset = time.perf_counter(), time.process_time(), log_size(log_path)
    result = run_stage()
    entry = {"stage": stage, "wall_s": round(time.perf_counter() - started, 2),
             "cpu_s": round(time.process_time() - cpu_started, 2)}
    record["stages"].append(entry)
    record.setdefault("epoch_seconds", {}).update(epoch_seconds(log_path, offset, stage))
    return result, entry


def execute_run(spec, run_dir, keep_checkpoints=False):
    """Run one spec in isolation; returns its JSON record (``status`` ok or failed, never raises Exception)."""
    record = run_header(spec, run_dir)
    record.update(
        started_at=datetime.datetime.now().isoformat(timespec="seconds"),
        pid=os.getpid(),  # the suite's own process with --jobs 1, the run's own process otherwise
        stages=[],
    )
    if os.path.isdir(run_dir):
        shutil.rmtree(run_dir)  # a rerun starts clean
    log_path = os.path.join(run_dir, RUN_LOG)
    started, cpu_started = time.perf_counter(), time.process_time()
    with isolated_run(run_dir):
        try:
            config = dict(spec.config)
            if spec.pretrain_config is not None:
                (path, epochs, train_cpu_s), entry = _timed_stage(
                    record, log_path, "pretrain", lambda: run_pretrain_stage(spec.pretrain_config)
                )
                entry.update(epochs=epochs, train_cpu_s=train_cpu_s)
                config["pre_model_path"] = path
                record["overrides"]["pre_model_path"] = path
            stage = "finetune" if spec.pretrain_config is not None else "train"
            result, _ = _timed_stage(record, log_path, stage, lambda: _train_and_test_stage(config))
            record.update(result)
            if spec.config_sha is not None and record["final_config_sha"] != spec.config_sha:
                # A yaml file changed between planning and this run (e.g. a model's defaults were edited).
                record["config_changed_since_planned"] = True
            record["status"] = "ok"
        except Exception as error:  # a failing run is recorded, the suite goes on
            record["status"] = "failed"
            record["error"] = {
                "type": type(error).__name__,
                "message": str(error),
                "traceback": traceback.format_exc(limit=-8),
            }
            logging.getLogger().error(traceback.format_exc())
    record["wall_s"] = round(time.perf_counter() - started, 2)
    # CPU seconds of this process: with one torch thread, about what the wall time would be on an idle machine.
    record["cpu_s"] = round(time.process_time() - cpu_started, 2)
    if not keep_checkpoints:
        shutil.rmtree(os.path.join(run_dir, "saved"), ignore_errors=True)
    return record
