"""Training throughput of 1 process vs 2 (RecBole's distributed mode, gloo on the CPU) at the same global batch.

    python benchmarks/throughput.py                                  # 30 timed steps per stage, 1 and 2 processes
    python benchmarks/throughput.py --steps 200 --warmup 10 --out benchmarks/results/throughput
    python benchmarks/throughput.py --nprocs 1,2,4 --threads 1 --stages sasrec,pretrain

For each process count, ``nproc`` processes are spawned (also for 1, so that every figure comes from the same
code path), each building the dataset ``--dataset`` (ml-100k-crs-targets by default, built on first use from the
copy of ml-100k inside the recbole package) and, per stage, the stage's model and trainer as the pipeline builds
them: RecBole's SASRec, and CRSPretrain's generator (SASRec on the pre-training sequences), pre-training (MIP/SAD
with generator negatives) and fine-tuning (CRSFinetune). The model is small (hidden 32, 1 layer, 2 heads, length
50). Each stage runs ``--warmup`` untimed steps, then ``--steps`` timed ones of its own trainer's ``_train_epoch``
(gradient sync included), between barriers.

With several processes RecBole divides the batch by the world size, so every step processes the same global batch
(``--batch``: ``train_batch_size`` and ``pretrain_batch_size``) in 1 and 2 processes; samples/s is the rows all
ranks trained on (training rows for SASRec and fine-tuning, pre-training sequences for the generator and
pre-training) over the slowest rank's wall time. Each process uses ``--threads`` torch threads (default 1, the
pipeline's ``torch_threads``).

Prints the table (stage, samples/s with each process count, ratio to 1 process) with the machine's core count and
load average: on a machine shared with other jobs the figures are only indicative. ``--out DIR`` also writes
``throughput.json`` and ``throughput.md``.
"""

import argparse
import json
import os
import socket
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
sys.path.insert(0, REPO_ROOT)

from recbole_crs.benchmark.execution.steps import STAGES, Batches, stage_trainers  # noqa: E402
from recbole_crs.data.ml100k import DEFAULT_DATASET  # noqa: E402

MODEL_KEYS = {"hidden_size": 32, "inner_size": 64, "n_layers": 1, "attribute_n_layers": 1, "n_heads": 2,
              "MAX_ITEM_LIST_LENGTH": 50}


def free_port():
    with socket.socket() as handle:
        handle.bind(("localhost", 0))
        return handle.getsockname()[1]


def base_config(args, model):
    config = {"state": "ERROR", "show_progress": False, "use_gpu": False, "seed": 2020,
              "train_batch_size": args.batch, "pretrain_batch_size": args.batch, **MODEL_KEYS}
    if args.data_path:
        config["data_path"] = args.data_path
    config["checkpoint_dir"] = os.path.join(args.workdir, "saved")
    return config


def worker(rank, nproc, port, args, queue):
    """One process: every stage's timed steps; rank 0 puts ``{stage: {...}}`` into ``queue``."""
    import torch
    import torch.distributed as dist

    from recbole_crs.quick_start import build_config
    from recbole_crs.runtime import isolated_argv

    torch.set_num_threads(args.threads)
    os.chdir(args.workdir)  # RecBole's trainers write log_tensorboard/ under the working directory
    launched = {"local_rank": rank, "nproc": nproc, "world_size": nproc, "ip": "localhost", "port": port,
                "offset": 0} if nproc > 1 else {}
    results = {}
    config = None
    def config_of(model_name):
        with isolated_argv():
            return build_config(model_name, args.dataset, config_dict={**base_config(args, model_name), **launched})

    for stage, config, trainer, loader in stage_trainers(args.stages, config_of):
        trainer._train_epoch(Batches(loader, args.warmup), 0)
        timed = Batches(loader, args.steps)
        if nproc > 1:
            dist.barrier()
        started = time.perf_counter()
        trainer._train_epoch(timed, 1)
        if nproc > 1:
            dist.barrier()
        seconds = time.perf_counter() - started
        rows = torch.tensor([timed.rows], dtype=torch.float64)
        if nproc > 1:
            dist.all_reduce(rows)
        results[stage] = {"seconds": seconds, "samples": int(rows.item()), "steps": args.steps,
                          "samples_per_s": rows.item() / seconds, "batches_per_epoch_per_rank": len(loader)}
    if nproc > 1 and config is not None:
        dist.destroy_process_group()
    if rank == 0:
        queue.put(results)


def measure(args, nproc):
    import torch.multiprocessing as mp

    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(worker, args=(nproc, free_port(), args, queue), nprocs=nproc, join=True)
    return queue.get()


def table(records, nprocs, stages):
    base = nprocs[0]
    header = ["stage"] + [f"{n} proc samples/s" for n in nprocs] + [f"{n} vs {base}" for n in nprocs[1:]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for stage in stages:
        rates = [records[n][stage]["samples_per_s"] for n in nprocs]
        cells = [stage] + [f"{rate:,.0f}" for rate in rates] + [f"{rate / rates[0]:.2f}x" for rate in rates[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def prepare_dataset(args):
    """Build the built-in dataset once, here, rather than in every process at the same time; returns the
    absolute folder that holds the dataset's folder (the processes run in a temporary working directory)."""
    from recbole_crs.data.ml100k import ensure_builtin, is_builtin
    from recbole_crs.quick_start import build_config
    from recbole_crs.runtime import isolated_argv

    with isolated_argv():
        config = build_config("SASRec", args.dataset, config_dict=base_config(args, "SASRec"))
    root = os.path.abspath(os.path.dirname(os.path.normpath(config["data_path"])))
    if is_builtin(args.dataset):
        ensure_builtin(args.dataset, root)
    return root


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=DEFAULT_DATASET)
    parser.add_argument("--data_path", default=None, help="folder holding the dataset folder (default: the config's)")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, of {', '.join(STAGES)}")
    parser.add_argument("--nprocs", default="1,2", help="process counts to compare; the first is the baseline")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per stage")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per stage first")
    parser.add_argument("--batch", type=int, default=256, help="global batch (train_batch_size, pretrain_batch_size)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--out", default=None, help="folder for throughput.json and throughput.md")
    args = parser.parse_args(argv)
    args.stages = [stage.strip() for stage in args.stages.split(",") if stage.strip()]
    unknown = sorted(set(args.stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stages {unknown}; use {', '.join(STAGES)}")
    nprocs = [int(n) for n in args.nprocs.split(",")]

    with tempfile.TemporaryDirectory(prefix="throughput-") as workdir:
        args.workdir = workdir
        args.data_path = prepare_dataset(args)
        records = {}
        for nproc in nprocs:
            started = time.perf_counter()
            records[nproc] = measure(args, nproc)
            print(f"{nproc} process(es): done in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    text = table(records, nprocs, args.stages)
    note = (f"{args.dataset}, global batch {args.batch}, {args.steps} timed steps after {args.warmup}, "
            f"{args.threads} torch thread(s) per process; {os.cpu_count()} cores, load average "
            f"{', '.join(f'{x:.1f}' for x in load) if load else 'n/a'} at the end")
    print(text)
    print(note)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        payload = {"args": {k: v for k, v in vars(args).items() if k != "workdir"}, "nprocs": nprocs, "load_average": load,
                   "cpu_count": os.cpu_count(), "records": {str(n): r for n, r in records.items()}}
        with open(os.path.join(args.out, "throughput.json"), "w") as handle:
            json.dump(payload, handle, indent=2)
        with open(os.path.join(args.out, "throughput.md"), "w") as handle:
            handle.write(text + "\n\n" + note + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
