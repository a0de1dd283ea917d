"""Scale: load time, peak RSS and training-step time from ~1M to ~10M interactions (issue "Scale").

    python benchmarks/scale.py --sizes 1M --out benchmarks/results/scale
    python benchmarks/scale.py --sizes 1M,10M --out benchmarks/results/scale --data_dir /big/tmp

The data are ml-100k-crs (``--base``; built on first use) replicated: copy k of every user gets user id ``u + k * 10^6``,
its items, attributes, timestamps and conversation unchanged, so a size is a whole number of copies (1M = 10
copies of the 100,000 interactions, 10M = 100). Each size's atomic files are written once to
``--data_dir/scale-<size>/`` (temporary names, then renamed) and reused; the table gives the time it took.

Every measurement runs in a fresh subprocess, so its peak RSS (``VmHWM``) is its own, and every subprocess
has an RSS guard: a thread that reads ``VmRSS`` every 50 ms and ends the process (exit status 3, "stopped
by the RSS guard") once it passes ``--rss_limit_gib`` (6 GiB), so that a size that does not fit cannot take
a shared machine down.

* ``load``: ``create_dataset`` + ``dataset.build()`` (augmentation, leave-one-out split, per-turn states of
  validation/test) of SASRec at ``MAX_ITEM_LIST_LENGTH`` 50, once per variant ``<inter_loading>/<history_windows>``
  (``--variants``; default ``compact/lazy``, the defaults, and ``recbole/lazy``, RecBole's loader); RSS before
  the load (interpreter, torch, RecBole) is reported next to the peak;
* ``steps``: seconds per 1,000 training steps of RecBole's SASRec and of each CRSPretrain stage (generator,
  pre-training, fine-tuning) with the stages' own trainers (``_train_epoch`` over the first ``--steps``
  batches after ``--warmup`` untimed ones, cycling the loader if it is shorter), scaled to 1,000; measured
  for the first variant only (the others give the same batches).

Variants are measured only up to their size limit: ``recbole/*`` up to ``--recbole_max`` (2M: ~2 GB per
million interactions), ``*/materialized`` up to ``--materialized_max`` (2M: its ``[rows, 50]`` tensors alone
take ~6 GB at 10M). The table has a column reserved for the training throughput of 2 processes vs 1
(distributed training is measured separately; ``--`` until then).

Writes ``scale.md`` (the table and the log-log slopes from the smallest to the largest size, also printed),
``scale.json`` and ``scale.png`` (log-log: load time, peak RSS and seconds per 1,000 steps against
interactions) into ``--out``, each atomically; ``--plot`` also writes the plot there (e.g. docs/img/scale.png).
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
sys.path.insert(0, REPO_ROOT)

from recbole_crs.benchmark.execution.steps import STAGES, Batches, stage_trainers  # noqa: E402
from recbole_crs.data.ml100k import ML100K_CRS  # noqa: E402
from recbole_crs.runtime import atomic_write, atomic_write_text  # noqa: E402

BASE = ML100K_CRS  # the base: a conversation on every row, the loader's hardest case
USER_SHIFT = 10**6
VARIANTS = ("compact/lazy", "recbole/lazy")
GUARD_EXIT = 3
MODEL_KEYS = {"hidden_size": 32, "inner_size": 64, "n_layers": 1, "n_heads": 2}


def parse_size(text):
    text = text.strip().upper()
    scale = {"K": 10**3, "M": 10**6}.get(text[-1], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def size_name(rows):
    return f"{rows // 10**6}M" if rows % 10**6 == 0 else f"{rows // 10**3}K"


def vm_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def start_rss_guard(limit_gib, interval_s=0.05):
    """End this process (exit status 3, a one-line message on stderr) once its VmRSS passes ``limit_gib``."""
    limit_kib = int(limit_gib * 2**20)

    def watch():
        while True:
            rss = vm_kib("VmRSS")
            if rss > limit_kib:
                sys.stderr.write(f"stopped by the RSS guard: VmRSS {rss / 1024:,.0f} MiB > {limit_gib:g} GiB\n")
                sys.stderr.flush()
                os._exit(GUARD_EXIT)
            time.sleep(interval_s)

    threading.Thread(target=watch, name="rss-guard", daemon=True).start()


# ---------------------------------------------------------------------------------------------- data
def replicate(data_dir, rows, base_name=BASE):
    """Write ``scale-<size>`` (``rows`` rounded to whole copies of ml-100k-crs); returns (name, rows, seconds)."""
    from recbole_crs.data.ml100k import ensure_builtin

    ensure_builtin(base_name, data_dir)
    base = os.path.join(data_dir, base_name, base_name)
    with open(base + ".inter") as f:
        header, *lines = f.read().splitlines()
    copies = max(1, round(rows / len(lines)))
    prefix = "scale" if base_name == BASE else f"scale-{base_name}"
    name = f"{prefix}-{size_name(copies * len(lines))}"
    folder = os.path.join(data_dir, name)
    meta_path = os.path.join(folder, "meta.json")
    if os.path.isfile(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get("copies") == copies:
            return name, meta["rows"], meta["write_s"]
    os.makedirs(folder, exist_ok=True)
    started = time.perf_counter()
    users, rests = zip(*(line.split("\t", 1) for line in lines))
    users = [int(u) for u in users]

    def write_inter(out):
        out.write((header + "\n").encode())
        for k in range(copies):
            shift = k * USER_SHIFT
            out.write("".join(f"{u + shift}\t{rest}\n" for u, rest in zip(users, rests)).encode())

    atomic_write(os.path.join(folder, f"{name}.inter"), write_inter)
    with open(base + ".item") as f:
        atomic_write_text(os.path.join(folder, f"{name}.item"), f.read())
    seconds = time.perf_counter() - started
    meta = {"copies": copies, "rows": copies * len(lines), "write_s": seconds}
    atomic_write_text(meta_path, json.dumps(meta))
    return name, meta["rows"], seconds


# ---------------------------------------------------------------------------------------------- workers
def config_for(model, dataset, data_dir, variant, extra=None):
    from recbole_crs.config import Config

    loading, windows = variant.split("/")
    config_dict = {
        "data_path": data_dir, "inter_loading": loading, "history_windows": windows, "MAX_ITEM_LIST_LENGTH": 50,
        "state": "ERROR",
        "show_progress": False, "use_gpu": False, "checkpoint_dir": os.path.join(data_dir, "saved"),
        # the atomic files keep ml-100k-crs's columns; RecBole's defaults name them already
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        **MODEL_KEYS, **(extra or {}),
    }
    return Config(model=model, dataset=dataset, config_dict=config_dict)


def measure_load(dataset, data_dir, mode):
    from recbole_crs.quick_start import create_dataset

    config = config_for("SASRec", dataset, data_dir, mode)
    rss_before = vm_kib("VmRSS")
    started = time.perf_counter()
    built = create_dataset(config)
    splits = built.build()
    seconds = time.perf_counter() - started
    inter = built.inter_feat
    if hasattr(inter, "nbytes"):  # WindowedInteraction: per-row columns, history sequences, encoded tables
        tensors = inter.nbytes()
    else:
        tensors = sum(t.nelement() * t.element_size() for t in inter.interaction.values())
    return {
        "load_s": seconds,
        "rss_before_MiB": rss_before / 1024,
        "peak_rss_MiB": vm_kib("VmHWM") / 1024,
        "inter_feat_MiB": tensors / 2**20,
        "rows": len(built),
        "split_rows": [len(d) for d in splits],
    }


def measure_steps(dataset, data_dir, mode, stages, steps, warmup, batch_size):
    results = {}
    extra = {"train_batch_size": batch_size, "pretrain_batch_size": batch_size}
    for stage, _, trainer, loader in stage_trainers(stages, lambda model: config_for(model, dataset, data_dir, mode,
                                                                                      extra)):
        trainer._train_epoch(Batches(loader, warmup), 0)
        started = time.perf_counter()
        trainer._train_epoch(Batches(loader, steps), 1)
        seconds = time.perf_counter() - started
        results[stage] = {"s_per_1000_steps": seconds / steps * 1000, "steps": steps,
                          "batches_per_epoch": len(loader), "samples": len(loader._dataset)}
    results["peak_rss_MiB"] = vm_kib("VmHWM") / 1024
    return results


def run_worker(args):
    """A measurement in this (fresh) process; prints one JSON line."""
    sys.path.insert(0, REPO_ROOT)
    import torch

    start_rss_guard(args.rss_limit_gib)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker == "load":
        result = measure_load(args.dataset, args.data_dir, args.mode)
    else:
        result = measure_steps(args.dataset, args.data_dir, args.mode, args.stages.split(","), args.steps,
                               args.warmup, args.batch_size)
    print(json.dumps(result))


def subprocess_measure(kind, name, args, mode):
    command = [sys.executable, os.path.realpath(__file__), "--worker", kind, "--dataset", name, "--mode", mode,
               "--data_dir", args.data_dir, "--stages", args.stages, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--batch_size", str(args.batch_size), "--threads", str(args.threads),
               "--rss_limit_gib", str(args.rss_limit_gib)]
    env = {**os.environ, "PYTHONPATH": REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=args.data_dir)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        guard = [line for line in lines if line.startswith("stopped by the RSS guard")]
        tail = guard or lines[-5:]
        print(f"  {kind} {name} {mode} failed: " + " | ".join(tail), flush=True)
        return {"error": tail[-1] if tail else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------- report
DDP_COLUMN = "2 processes vs 1 (training throughput)"


def table(records, stages):
    head = ["interactions", "write s", "inter_loading/history_windows", "load s", "peak RSS MiB (before load)",
            "inter_feat MiB"]
    head += [f"{stage} s/1000 steps" for stage in stages] + [DDP_COLUMN]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        load, steps = r.get("load") or {}, r.get("steps") or {}
        cells = [f"{r['rows']:,}", f"{r['write_s']:.1f}", r["mode"]]
        if "load_s" in load:
            cells += [f"{load['load_s']:.1f}", f"{load['peak_rss_MiB']:,.0f} ({load['rss_before_MiB']:,.0f})",
                      f"{load['inter_feat_MiB']:,.0f}"]
        else:
            cells += [load.get("error", "not run")] + [""] * 2
        for stage in stages:
            if stage in steps:
                cells.append(f"{steps[stage]['s_per_1000_steps']:.0f}")
            else:
                cells.append(steps.get("error", "") if r.get("steps") else "")
        cells.append(r.get("ddp") or "--")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def slope(points):
    """Log-log slope between the smallest and the largest x of ``[(x, y)]`` (None with fewer than 2 sizes)."""
    points = sorted((x, y) for x, y in points if y and y > 0)
    if len(points) < 2 or points[0][0] == points[-1][0]:
        return None
    (x0, y0), (x1, y1) = points[0], points[-1]
    return math.log(y1 / y0) / math.log(x1 / x0)


def slopes(records, stages):
    """``{variant: {quantity: slope}}``: load time, peak RSS, peak RSS above the pre-load RSS, step times."""
    result = {}
    for variant in dict.fromkeys(r["mode"] for r in records):
        rs = [r for r in records if r["mode"] == variant]
        loads = [(r["rows"], r["load"]) for r in rs if "load_s" in (r.get("load") or {})]
        found = {
            "load s": slope([(x, load["load_s"]) for x, load in loads]),
            "peak RSS": slope([(x, load["peak_rss_MiB"]) for x, load in loads]),
            "peak RSS - RSS before load": slope([(x, load["peak_rss_MiB"] - load["rss_before_MiB"]) for x, load in loads]),
        }
        for stage in stages:
            found[f"{stage} s/1000 steps"] = slope(
                [(r["rows"], r["steps"][stage]["s_per_1000_steps"]) for r in rs if stage in (r.get("steps") or {})]
            )
        found = {k: v for k, v in found.items() if v is not None}
        if found:
            result[variant] = found
    return result


def slopes_text(found):
    if not found:
        return ""
    lines = ["Log-log slopes from the smallest to the largest size (1 = linear):", ""]
    for variant, values in found.items():
        lines.append(f"* {variant}: " + ", ".join(f"{k} {v:.2f}" for k, v in values.items()))
    return "\n".join(lines) + "\n"


def plot(records, stages, paths):
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for variant in dict.fromkeys(r["mode"] for r in records):
        rs = [r for r in records if r["mode"] == variant and "load_s" in (r.get("load") or {})]
        if rs:
            xs = [r["rows"] for r in rs]
            axes[0].plot(xs, [r["load"]["load_s"] for r in rs], "o-", label=variant)
            axes[1].plot(xs, [r["load"]["peak_rss_MiB"] for r in rs], "o-", label=variant)
        for stage in stages:
            rs = [r for r in records if r["mode"] == variant and stage in (r.get("steps") or {})]
            if rs:
                axes[2].plot([r["rows"] for r in rs], [r["steps"][stage]["s_per_1000_steps"] for r in rs], "o-",
                             label=f"{stage} ({variant})")
    axes[1].axhline(4096, color="grey", linestyle="--", linewidth=1, label="4 GiB")
    for ax, title in zip(axes, ("load + build s", "peak RSS MiB", "s per 1,000 training steps")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("interactions")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=110, format="png")
    plt.close(fig)
    for path in paths:
        atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


def variant_allowed(variant, rows, args):
    loading, windows = variant.split("/")
    if loading == "recbole" and rows > parse_size(args.recbole_max):
        return False
    return not (windows == "materialized" and rows > parse_size(args.materialized_max))


def check_variant(variant):
    from recbole_crs.data.compact import INTER_LOADINGS
    from recbole_crs.data.windows import HISTORY_WINDOWS

    loading, _, windows = variant.partition("/")
    if loading not in INTER_LOADINGS or windows not in HISTORY_WINDOWS:
        raise SystemExit(f"scale.py: variant {variant!r} is not <inter_loading>/<history_windows> with inter_loading "
                         f"in {list(INTER_LOADINGS)} and history_windows in {list(HISTORY_WINDOWS)}")


def merged_records(paths):
    """Records of several ``scale.json`` files, one per (size, variant): the first file's, with the parts
    (``load``, ``steps``) it lacks taken from the next files."""
    records, settings = {}, []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        settings.append(data["settings"])
        for record in data["records"]:
            key = (record["rows"], record["mode"])
            if key not in records:
                records[key] = dict(record)
            else:
                for part in ("load", "steps"):
                    if not records[key].get(part) and record.get(part):
                        records[key][part] = record[part]
    return sorted(records.values(), key=lambda r: (r["rows"], r["mode"])), settings


def write_report(records, stages, settings, out, plot_path=None):
    found = slopes(records, stages)
    markdown = table(records, stages)
    note = (f"\nSettings: {json.dumps(settings)}. Load = create_dataset + build (augmentation, leave-one-out, "
            "per-turn states); peak RSS = VmHWM of the load's own process.\n\n" + slopes_text(found))
    atomic_write_text(os.path.join(out, "scale.md"), markdown + "\n" + note)
    atomic_write_text(os.path.join(out, "scale.json"),
                      json.dumps({"settings": settings, "records": records, "slopes": found}, indent=1))
    plot(records, stages, [os.path.join(out, "scale.png")] + ([plot_path] if plot_path else []))
    print(markdown)
    print(note)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1M", help="comma-separated interaction counts, e.g. 1M,10M")
    parser.add_argument("--out", default=os.path.join(REPO_ROOT, "benchmarks", "results", "scale"))
    parser.add_argument("--data_dir", default=os.path.join(tempfile.gettempdir(), "recbole-crs-scale"))
    parser.add_argument("--base", default=BASE, help="built-in dataset to replicate, e.g. ml-100k-crs-targets")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated <inter_loading>/<history_windows>; steps are timed for the first")
    parser.add_argument("--stages", default=",".join(STAGES), help="training steps to time; empty: none")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per stage (then scaled to 1,000)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=2048, help="train_batch_size and pretrain_batch_size")
    parser.add_argument("--threads", type=int, default=0, help="torch threads in the workers (0: torch's default)")
    parser.add_argument("--recbole_max", default="2M", help="largest size measured with inter_loading: recbole")
    parser.add_argument("--materialized_max", default="2M", help="largest size measured with history_windows: materialized")
    parser.add_argument("--steps_max", default="10M", help="largest size whose training steps are timed")
    parser.add_argument("--rss_limit_gib", type=float, default=6.0, help="RSS guard of every measuring process")
    parser.add_argument("--plot", default=None, help="also write the plot here (e.g. docs/img/scale.png)")
    parser.add_argument("--merge", default=None,
                        help="comma-separated scale.json files: write their merged table, slopes and plot; measure nothing")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return run_worker(args)

    stages = [s for s in args.stages.split(",") if s]
    os.makedirs(args.out, exist_ok=True)
    if args.merge:
        records, settings = merged_records([p for p in args.merge.split(",") if p])
        return write_report(records, stages, settings, args.out, args.plot)
    variants = [v for v in args.variants.split(",") if v]
    for variant in variants:
        check_variant(variant)
    args.data_dir = os.path.abspath(args.data_dir)
    os.makedirs(args.data_dir, exist_ok=True)
    records = []
    for size in [parse_size(s) for s in args.sizes.split(",")]:
        name, rows, write_s = replicate(args.data_dir, size, args.base)
        print(f"{name}: {rows:,} interactions, files written in {write_s:.1f}s", flush=True)
        for variant in variants:
            if not variant_allowed(variant, rows, args):
                continue
            record = {"rows": rows, "write_s": write_s, "mode": variant, "ddp": None}
            record["load"] = subprocess_measure("load", name, args, variant)
            print(f"  {variant} load: {record['load']}", flush=True)
            if stages and variant == variants[0] and rows <= parse_size(args.steps_max):
                record["steps"] = subprocess_measure("steps", name, args, variant)
                print(f"  {variant} steps: {record['steps']}", flush=True)
            records.append(record)
    settings = {"base": args.base, "MAX_ITEM_LIST_LENGTH": 50, "batch_size": args.batch_size, "steps": args.steps,
                "warmup": args.warmup, "threads": args.threads or "default", **MODEL_KEYS}
    write_report(records, stages, settings, args.out, args.plot)


if __name__ == "__main__":
    main()
