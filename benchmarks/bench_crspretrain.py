"""CRSPretrain on ml-100k-crs: test quality over seeds, and epoch times as ratios to a SASRec epoch.

    python benchmarks/bench_crspretrain.py                 # 3 seeds, the yaml defaults
    python benchmarks/bench_crspretrain.py --seeds 1 --set epochs=2 --set pretrain_epochs=3

For every seed it runs, in one process and with the same hidden size, layers, max length, batch size,
learning rate, fine-tuning epochs and early stopping:

* ``CRSPretrain``: the full pipeline (SASRec generator -> MIP/SAD pre-training -> fine-tuning);
* ``no pre-training``: the same fine-tuning model trained from scratch (``crs_stages: [finetune]``);
* ``SASRec``: RecBole's SASRec (history only, no conversation input).

and reports, per model, the best validation score (``best_valid_score``: ``valid_metric`` in the
``crs_candidates`` mode) next to test NDCG@10 / Recall@10 in ``crs_candidates`` modes ``confirmed`` and ``all``
(mean +- sample std over seeds), plus seconds per training epoch of generator, pre-training and fine-tuning,
each divided by the seconds of a SASRec training epoch measured in the same run. Results also go to ``--out``
(gitignored). This prints figures; it is not a timed test.

Comparisons ("what was tried") are decided on validation, never on test: the table's rows are ranked by the
mean validation score and the chosen model is named; the test columns are reported, not used to choose. To
compare settings, run once per setting (``--set``, ``--tag``) and compare their validation columns.
"""

import argparse
import contextlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402
import yaml  # noqa: E402
from recbole.utils import init_logger, init_seed  # noqa: E402

from recbole_crs.config import Config  # noqa: E402
from recbole_crs.quick_start import train_and_test  # noqa: E402
from recbole_crs.trainer import CRSTrainer  # noqa: E402
from recbole_crs.trainer.pretrain import CRSFinetuneTrainer, CRSGeneratorTrainer, CRSPretrainTrainer  # noqa: E402

DATASET = "ml-100k-crs"
MODES = ("confirmed", "all")
METRICS = ("ndcg@10", "recall@10")
# Keys that make the SASRec baseline the same size and budget as CRSPretrain's fine-tuning model.
SHARED_KEYS = (
    "MAX_ITEM_LIST_LENGTH", "hidden_size", "inner_size", "n_layers", "n_heads", "hidden_dropout_prob",
    "attn_dropout_prob", "hidden_act", "layer_norm_eps", "initializer_range", "train_batch_size",
    "eval_batch_size", "learning_rate", "epochs", "stopping_step", "eval_step",
)

EPOCH_SECONDS = defaultdict(list)  # trainer kind -> seconds of each training epoch


def _time_epochs(trainer_class, kind):
    original = trainer_class._train_epoch

    def timed(self, *args, **kwargs):
        started = time.perf_counter()
        result = original(self, *args, **kwargs)
        EPOCH_SECONDS[kind].append(time.perf_counter() - started)
        return result

    trainer_class._train_epoch = timed


_time_epochs(CRSGeneratorTrainer, "generator")
_time_epochs(CRSPretrainTrainer, "pretrain")
_time_epochs(CRSFinetuneTrainer, "finetune")
_time_epochs(CRSTrainer, "sasrec")  # RecBole's SASRec gets with_crs_evaluation(Trainer) == CRSTrainer


def parse_overrides(items):
    """``KEY=VALUE`` strings -> ``{key: value}``, each value parsed as yaml (``3`` -> 3, ``[a, b]`` -> a list,
    ``null`` -> None, anything else stays a string); no Python is evaluated."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--set expects KEY=VALUE, got '{item}'")
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise SystemExit(f"--set {item}: the value is not valid yaml ({error})") from None
    return overrides


def run(model, config_dict):
    """Train ``model`` and evaluate the best checkpoint on test in every mode.

    Returns ``(test results {mode: {metric: value}}, best validation score, best validation result,
    valid_score_bigger, wall seconds)``.
    """
    config = Config(model=model, dataset=DATASET, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    started = time.perf_counter()
    result = train_and_test(config, saved=True, verbose=True)
    results = result["test_results"]
    test = {mode: {m: float(results[mode][m]) for m in METRICS} for mode in MODES}
    valid_result = {k: float(v) for k, v in (result.get("best_valid_result") or {}).items()
                    if isinstance(v, (int, float)) or hasattr(v, "item")}
    return (test, float(result["best_valid_score"]), valid_result, bool(result.get("valid_score_bigger", True)),
            time.perf_counter() - started)


def mean_std(values):
    if not values:
        return float("nan"), float("nan")
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values, digits=4):
    mean, std = mean_std(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (2020, 2021, ...)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; on the shared 2-core machine 2 threads ran several times slower")
    parser.add_argument("--data_path", default=os.path.join(REPO_ROOT, "dataset"))
    parser.add_argument("--out", default=os.path.join(REPO_ROOT, "benchmarks", "results", "crspretrain"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    parser.add_argument("--models", default="CRSPretrain,noPretrain,SASRec")
    parser.add_argument("--tag", default=None, help="name of this setting in the output (default: the --set list)")
    args = parser.parse_args(argv)
    sys.argv = sys.argv[:1]  # RecBole reads --key=value from argv
    torch.set_num_threads(args.threads)
    overrides = parse_overrides(args.set)
    models = args.models.split(",")
    os.makedirs(args.out, exist_ok=True)
    data_path = os.path.abspath(args.data_path)

    quality = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))  # model -> mode -> metric -> [values]
    valid = defaultdict(list)  # model -> [best_valid_score per seed]: what comparisons are decided on
    valid_results = defaultdict(list)  # model -> [best_valid_result per seed]
    bigger = {}
    wall = defaultdict(list)
    ratios = defaultdict(list)  # kind -> [ratio per seed]
    epoch_means = defaultdict(list)
    reference = Config(model="CRSPretrain", dataset=DATASET, config_dict=dict(overrides, data_path=data_path))
    shared = {key: reference[key] for key in SHARED_KEYS}
    for index in range(args.seeds):
        seed = 2020 + index
        EPOCH_SECONDS.clear()
        with tempfile.TemporaryDirectory(prefix="bench-crspretrain-") as work, contextlib.chdir(work):
            base = dict(
                overrides, seed=seed, data_path=data_path, checkpoint_dir=os.path.join(work, "saved"),
                show_progress=False, state="WARNING", crs_test_modes=list(MODES),
            )
            plan = {
                "CRSPretrain": ("CRSPretrain", base),
                "noPretrain": ("CRSPretrain", dict(base, crs_stages=["finetune"])),
                "SASRec": ("SASRec", dict(base, **shared)),
            }
            seed_epochs = {}
            for name in models:
                model, config_dict = plan[name]
                before = {kind: len(times) for kind, times in EPOCH_SECONDS.items()}
                results, valid_score, valid_result, bigger[name], seconds = run(model, config_dict)
                valid[name].append(valid_score)
                valid_results[name].append(valid_result)
                wall[name].append(seconds)
                for mode in MODES:
                    for metric in METRICS:
                        quality[name][mode][metric].append(results[mode][metric])
                for kind, times in EPOCH_SECONDS.items():
                    new = times[before.get(kind, 0):]
                    if new:
                        seed_epochs[(name, kind)] = new
                print(f"seed {seed} {name}: {seconds:.0f}s valid {valid_score:.4f} test {json.dumps(results)}",
                      flush=True)
        sasrec_epoch = statistics.mean(seed_epochs.get(("SASRec", "sasrec"), [float("nan")]))
        for (name, kind), times in seed_epochs.items():
            epoch_means[(name, kind)].append(statistics.mean(times))
            ratios[(name, kind)].append(statistics.mean(times) / sasrec_epoch)
        logging.getLogger().handlers.clear()

    tag = args.tag or (" ".join(args.set) if args.set else "defaults")
    lines = [f"## CRSPretrain benchmark: {DATASET}, {args.seeds} seed(s), torch threads {args.threads}, setting: {tag}",
             ""]
    lines.append("Shared settings: " + ", ".join(f"{k}={shared[k]}" for k in SHARED_KEYS))
    lines.append(
        f"CRSPretrain: generator_epochs={reference['generator_epochs']}, pretrain_epochs={reference['pretrain_epochs']}, "
        f"n_negatives={reference['n_negatives']}, attribute_n_layers={reference['attribute_n_layers']}, "
        f"loss_type={reference['loss_type']}"
    )
    valid_label = f"valid {reference['valid_metric']} ({reference['crs_candidates']})"
    # Ranked on validation only: the test columns are reported, never used to choose.
    higher = all(bigger.get(name, True) for name in models)
    ranked = sorted(models, key=lambda name: mean_std(valid[name])[0], reverse=higher)
    lines += ["", f"Rows ranked by mean {valid_label} (best first); chosen on validation: **{ranked[0]}**. "
              "Test results are reported, not used to choose.", ""]
    lines.append(f"| rank | model | {valid_label} | "
                 + " | ".join(f"test {mode} {m}" for mode in MODES for m in METRICS) + " | wall s |")
    lines.append("|---" * (len(MODES) * len(METRICS) + 4) + "|")
    for rank, name in enumerate(ranked, start=1):
        cells = [fmt(quality[name][mode][m]) for mode in MODES for m in METRICS]
        lines.append(f"| {rank} | {name} | {fmt(valid[name])} | " + " | ".join(cells) + f" | {fmt(wall[name], 0)} |")
    lines += ["", "| epoch | seconds | ratio to a SASRec epoch |", "|---|---|---|"]
    for (name, kind), values in sorted(epoch_means.items()):
        lines.append(f"| {name} {kind} | {fmt(values, 1)} | {fmt(ratios[(name, kind)], 2)} |")
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(
            {
                "tag": tag, "chosen_on_validation": ranked[0], "valid_metric": valid_label,
                "valid": valid, "valid_results": valid_results, "valid_score_bigger": bigger,
                "quality": quality, "wall": wall, "shared": shared, "overrides": overrides,
                "epoch_seconds": {f"{n} {k}": v for (n, k), v in epoch_means.items()},
                "ratios": {f"{n} {k}": v for (n, k), v in ratios.items()},
            },
            f, indent=1, default=str,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
