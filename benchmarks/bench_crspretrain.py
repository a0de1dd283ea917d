"""CRSPretrain on ml-100k-crs: test quality over seeds, and epoch times as ratios to a SASRec epoch.

    python benchmarks/bench_crspretrain.py                 # 3 seeds, the yaml defaults
    python benchmarks/bench_crspretrain.py --seeds 1 --set epochs=2 --set pretrain_epochs=3

For every seed it runs, in one process and with the same hidden size, layers, max length, batch size,
learning rate, fine-tuning epochs and early stopping:

* ``CRSPretrain``: the full pipeline (SASRec generator -> MIP/SAD pre-training -> fine-tuning);
* ``no pre-training``: the same fine-tuning model trained from scratch (``crs_stages: [finetune]``);
* ``SASRec``: RecBole's SASRec (history only, no conversation input).

and reports test NDCG@10 / Recall@10 in ``crs_candidates`` modes ``confirmed`` and ``all`` (mean +- sample std
over seeds), plus seconds per training epoch of generator, pre-training and fine-tuning, each divided by the
seconds of a SASRec training epoch measured in the same run. Results also go to ``--out`` (gitignored).
This prints figures; it is not a timed test.
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
from recbole.utils import init_logger, init_seed  # noqa: E402

from recbole_crs.config import Config  # noqa: E402
from recbole_crs.quick_start import create_dataset, train  # noqa: E402
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


def parse_value(text):
    try:
        return eval(text, {}, {})  # noqa: S307 - values typed by the person running the benchmark
    except Exception:
        return text


def run(model, config_dict):
    """Train ``model`` and evaluate the best checkpoint on test in every mode; returns (results, wall seconds)."""
    config = Config(model=model, dataset=DATASET, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    started = time.perf_counter()
    from recbole.data import data_preparation

    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    trainer, _, _ = train(config, dataset, train_data, valid_data, saved=True, verbose=True)
    results = trainer.evaluate_modes(test_data, list(MODES), load_best_model=True)
    return {mode: {m: float(results[mode][m]) for m in METRICS} for mode in MODES}, time.perf_counter() - started


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
    args = parser.parse_args(argv)
    sys.argv = sys.argv[:1]  # RecBole reads --key=value from argv
    torch.set_num_threads(args.threads)
    overrides = dict(item.split("=", 1) for item in args.set)
    overrides = {key: parse_value(value) for key, value in overrides.items()}
    models = args.models.split(",")
    os.makedirs(args.out, exist_ok=True)
    data_path = os.path.abspath(args.data_path)

    quality = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))  # model -> mode -> metric -> [values]
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
                results, seconds = run(model, config_dict)
                wall[name].append(seconds)
                for mode in MODES:
                    for metric in METRICS:
                        quality[name][mode][metric].append(results[mode][metric])
                for kind, times in EPOCH_SECONDS.items():
                    new = times[before.get(kind, 0):]
                    if new:
                        seed_epochs[(name, kind)] = new
                print(f"seed {seed} {name}: {seconds:.0f}s {json.dumps(results)}", flush=True)
        sasrec_epoch = statistics.mean(seed_epochs.get(("SASRec", "sasrec"), [float("nan")]))
        for (name, kind), times in seed_epochs.items():
            epoch_means[(name, kind)].append(statistics.mean(times))
            ratios[(name, kind)].append(statistics.mean(times) / sasrec_epoch)
        logging.getLogger().handlers.clear()

    lines = [f"## CRSPretrain benchmark: {DATASET}, {args.seeds} seed(s), torch threads {args.threads}", ""]
    lines.append("Shared settings: " + ", ".join(f"{k}={shared[k]}" for k in SHARED_KEYS))
    lines.append(
        f"CRSPretrain: generator_epochs={reference['generator_epochs']}, pretrain_epochs={reference['pretrain_epochs']}, "
        f"n_negatives={reference['n_negatives']}, attribute_n_layers={reference['attribute_n_layers']}, "
        f"loss_type={reference['loss_type']}"
    )
    lines += ["", "| model | " + " | ".join(f"{mode} {m}" for mode in MODES for m in METRICS) + " | wall s |"]
    lines.append("|---" * (len(MODES) * len(METRICS) + 2) + "|")
    for name in models:
        cells = [fmt(quality[name][mode][m]) for mode in MODES for m in METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {fmt(wall[name], 0)} |")
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
                "quality": quality, "wall": wall, "shared": shared, "overrides": overrides,
                "epoch_seconds": {f"{n} {k}": v for (n, k), v in epoch_means.items()},
                "ratios": {f"{n} {k}": v for (n, k), v in ratios.items()},
            },
            f, indent=1, default=str,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
