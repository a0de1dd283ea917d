"""Equal tuning of the suite's variants through ``run_hyper.py``.

* :func:`export_configs` (``--export-config DIR``): the suite's fixed config of each dataset and variant as a yaml
  file ``run_hyper.py --config_files`` takes: every layer of the suite up to ``--set`` (without the tuned values),
  the runner's own keys but the per-run folder, and the suite's first seed, so that a trial with a variant's
  current values trains exactly as the suite's first run of it does. A two-stage variant also gets
  ``<dataset>-<variant>.pretrain.yaml``, the config of its pre-training stage.
* :func:`tune` (``--tune``): for each dataset and variant, the exported config, the variant's pre-training run
  once where it has one (every trial fine-tunes from that checkpoint), ``run_hyper.py --algo exhaustive`` over the
  model's params file (``benchmarks/hyper/<Model>.hyper``) with as many torch threads as the suite's runs, and the
  values of the trial with the best validation score written to the tuned file
  (:func:`recbole_crs.benchmark.spec.tuned.write_tuned_entry`).
"""

import datetime
import os
import shlex
import shutil
import subprocess
import sys

import yaml

from recbole_crs.benchmark.execution.isolation import isolated_run
from recbole_crs.benchmark.execution.run_one import run_pretrain_stage
from recbole_crs.benchmark.spec.results import to_builtin
from recbole_crs.benchmark.spec.runs import dataset_test_modes, stage_configs
from recbole_crs.benchmark.spec.suite import REPO_ROOT
from recbole_crs.benchmark.spec.tuned import repo_relative, write_tuned_entry
from recbole_crs.config import Config
from recbole_crs.errors import SuiteError
from recbole_crs.runtime import atomic_write_text, isolated_argv, torch_threads
from recbole_crs.tuning.results import read_result_file

HYPER_DIR = os.path.join(REPO_ROOT, "benchmarks", "hyper")
RUN_HYPER = os.path.join(REPO_ROOT, "run_hyper.py")


def config_file_name(dataset, variant, stage=None):
    return f"{dataset}-{variant}" + (f".{stage}" if stage else "") + ".yaml"


def _write_config(path, config, how):
    text = f"# {how}\n" + yaml.safe_dump(to_builtin(config), sort_keys=True, default_flow_style=False, width=120)
    atomic_write_text(path, text)
    return path


def export_configs(suite, datasets, variants, out_dir, data_path, overrides=None, seed=None):
    """``{(dataset, variant): (config path, pretrain config path or None)}`` written into ``out_dir``; ``seed``
    (default: the suite's ``base_seed``) is the seed of the suite's first run."""
    seed = suite.base_seed if seed is None else seed
    os.makedirs(out_dir, exist_ok=True)
    how = f"suite {repo_relative(suite.path)}: every layer up to --set, no tuned values, seed {seed}"
    written = {}
    for dataset in datasets:
        modes = dataset_test_modes(suite, data_path, dataset)
        for name in variants:
            config, pretrain = stage_configs(suite, dataset, name, modes, data_path, overrides)
            paths = []
            for stage, stage_config in (("", config), ("pretrain", pretrain)):
                if stage_config is None:
                    paths.append(None)
                    continue
                stage_config["seed"] = seed
                path = os.path.join(out_dir, config_file_name(dataset, name, stage))
                note = "; pre_model_path: the checkpoint its .pretrain.yaml run writes" if pretrain and not stage else ""
                paths.append(_write_config(path, stage_config, f"{dataset} {name} {stage or 'config'} ({how}{note})"))
            written[(dataset, name)] = tuple(paths)
    return written


def params_file_for(model, params_file=None):
    path = os.path.abspath(params_file) if params_file else os.path.join(HYPER_DIR, f"{model}.hyper")
    if not os.path.isfile(path):
        raise SuiteError(f"no params file for {model}: {path} does not exist (write one, or pass --params-file)")
    return path


def _pretrain_once(pretrain_file, work_dir, threads):
    """The checkpoint of a two-stage variant's pre-training stage, run once with its suite config in ``work_dir``
    (with the suite's torch threads: the same checkpoint as the suite's run of the same seed)."""
    with open(pretrain_file, "r", encoding="utf-8") as f:
        config = yaml.safe_load(f)
    config["checkpoint_dir"] = os.path.join(work_dir, "saved")
    with torch_threads(threads), isolated_run(work_dir):
        path, _, _ = run_pretrain_stage(config)
    return path


def _valid_metric(config_file):
    """``(metric label, bigger is better)`` of the trials, from the config they run with."""
    with isolated_argv():
        config = Config(config_file_list=[config_file])
    return f"{config['valid_metric']} ({config['crs_candidates']})", bool(config["valid_metric_bigger"])


def best_trial(trials, bigger=True):
    """``(params, score)`` of the finished trial with the best validation score (the first of equals, as
    RecBole's HyperTuning); test results are not even read."""
    best = None
    for params, result in trials:
        score = result.get("best_valid_score")
        if score is None:
            continue
        if best is None or (score > best[1] if bigger else score < best[1]):
            best = (params, score)
    return best


def shown(argv):
    """A ``python ...`` command line as a person types it: paths inside the repository relative to it."""
    return "python " + " ".join(shlex.quote(repo_relative(a) if os.path.isabs(a) else a) for a in argv)


def _search(command, work_dir, threads):
    """Run ``run_hyper.py``; its output goes to ``work_dir/run_hyper.log``. A config error stops with its message."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([REPO_ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)  # torch's intra-op threads, as the suite's runs have them
    log_path = os.path.join(work_dir, "run_hyper.log")
    with open(log_path, "w", encoding="utf-8") as log:
        code = subprocess.run(command, cwd=work_dir, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    if code:
        with open(log_path, "r", encoding="utf-8") as log:
            errors = [line.strip() for line in log if line.startswith("error: ")]
        raise SuiteError(f"run_hyper.py exited with status {code}: " + (" / ".join(errors) or f"see {log_path}"))


def _search_config(suite, dataset, name, work_dir, data_path, overrides, seed, threads, log):
    """The config file of one search: the suite's (:func:`export_configs`); for a two-stage variant its
    pre-training runs once here and every trial fine-tunes from that checkpoint."""
    config_file, pretrain_file = export_configs(suite, [dataset], [name], work_dir, data_path, overrides,
                                                seed)[(dataset, name)]
    if pretrain_file:
        log(f"{dataset} {name}: pre-training once ({os.path.basename(pretrain_file)})")
        with open(config_file, "r", encoding="utf-8") as f:
            config = yaml.safe_load(f)
        config["pre_model_path"] = _pretrain_once(pretrain_file, os.path.join(work_dir, "pretrain"), threads)
        _write_config(config_file, config, f"{dataset} {name} fine-tuning, from the pre-trained checkpoint")
    return config_file


def tune(suite, datasets, variants, out_dir, data_path, tuned_file, params_file=None, overrides=None, threads=None,
         seed=None, command=None, log=print):
    """Search each dataset x variant and write its best values (on validation) into ``tuned_file``; returns
    ``{(dataset, variant): entry}``. ``out_dir`` holds each search's files: ``<dataset>/<variant>/``."""
    if tuned_file is None:
        raise SuiteError("--tune needs a tuned file: the suite's 'tuned' key, or --tuned PATH")
    for name in variants:
        if suite.variants[name].tuned_from:
            raise SuiteError(f"variant '{name}' reads the tuned values of '{suite.variants[name].tuned_from}' "
                             "(tuned_from): tune that one")
    threads = threads or suite.threads
    entries = {}
    for dataset in datasets:
        for name in variants:
            params = params_file_for(suite.variants[name].model, params_file)
            work_dir = os.path.join(out_dir, dataset, name)
            shutil.rmtree(work_dir, ignore_errors=True)  # a rerun starts clean
            config_file = _search_config(suite, dataset, name, work_dir, data_path, overrides, seed, threads, log)
            result_file = os.path.join(work_dir, "hyper.result")
            search = [RUN_HYPER, "--config_files", config_file, "--params_file", params, "--algo", "exhaustive",
                      "--output_file", result_file, f"--checkpoint_dir={os.path.join(work_dir, 'saved')}"]
            log(f"{dataset} {name}: {shown(search)} (output: {os.path.join(work_dir, 'run_hyper.log')})")
            _search([sys.executable] + search, work_dir, threads)
            trials, _ = read_result_file(result_file)
            metric, bigger = _valid_metric(config_file)
            best = best_trial(trials, bigger)
            if best is None:
                raise SuiteError(f"{dataset} {name}: no trial finished; see {result_file}")
            failed = sum("error" in result for _, result in trials)
            entry = {
                "values": to_builtin(best[0]),
                "best_valid_score": to_builtin(best[1]),
                "valid_metric": metric,
                "trials": len(trials) - failed,
                "params_file": repo_relative(params),
                "search": shown(search),
                "command": command,
                "date": datetime.datetime.now().isoformat(timespec="seconds"),
            }
            if failed:
                entry["failed_trials"] = failed
            write_tuned_entry(tuned_file, dataset, name, entry)
            for checkpoints in (os.path.join(work_dir, "saved"), os.path.join(work_dir, "pretrain", "saved")):
                shutil.rmtree(checkpoints, ignore_errors=True)
            log(f"{dataset} {name}: {entry['values']} (valid {metric} {best[1]:.4f}, {entry['trials']} trials) "
                f"-> {tuned_file}")
            entries[(dataset, name)] = entry
    return entries
