"""Epoch times: seconds per training epoch, read from each run's ``run.log``, and the table of each stage's epoch
time as a ratio to an epoch of a reference variant (the suite's ``epoch_ratios``, e.g. SASRec).

RecBole's trainers log every training epoch as ``epoch <n> training [time: <s>s, ...]`` (CRSPretrain's
pre-training as ``epoch <n> pre-training [time: ...``); the time covers the epoch's training pass, not its
validation. The CRSPretrain pipeline logs ``stage <name> done in ...`` after each of its stages, which assigns the
epochs logged before it to that stage; the epochs of any other run belong to the benchmark's stage (``train``, or
``pretrain`` / ``finetune`` for a two-stage variant).
"""

import os
import re

from recbole_crs.benchmark.report.summary import fmt, mean_std

EPOCH_LINE = re.compile(r"epoch \d+ (?:pre-)?training \[time: ([0-9.]+)s")
STAGE_DONE = re.compile(r"stage (\w+) done in ")


def log_size(path):
    """Where the next stage's lines start in ``path`` (0 while the log does not exist)."""
    return os.path.getsize(path) if os.path.exists(path) else 0


def epoch_seconds(path, offset, stage):
    """``{stage: [seconds of each training epoch]}`` logged in ``path`` after byte ``offset``."""
    if not os.path.exists(path):
        return {}
    with open(path, "rb") as f:
        f.seek(offset)
        text = f.read().decode("utf-8", "replace")
    times, pending = {}, []
    for line in text.splitlines():
        epoch = EPOCH_LINE.search(line)
        if epoch:
            pending.append(float(epoch.group(1)))
            continue
        done = STAGE_DONE.search(line)
        if done and pending:
            times.setdefault(done.group(1), []).extend(pending)
            pending = []
    if pending:
        times.setdefault(stage, []).extend(pending)
    return times


def _mean(values):
    return sum(values) / len(values) if values else None


def epoch_ratio_tables(summary, reference):
    """Markdown, one table per dataset: a row per variant and stage with its seconds per training epoch and their
    ratio to a training epoch of ``reference`` (mean ± sample std over seeds; each seed is divided by the epoch
    time of the reference's run with the same seed). Datasets without epoch times are left out."""
    blocks = []
    for dataset, variants in summary.items():
        unit = {r["seed"]: _mean([t for times in (r.get("epoch_seconds") or {}).values() for t in times])
                for r in variants.get(reference, {}).get("ok_runs", [])}
        rows = []
        for variant, entry in variants.items():
            stages = []
            for run in entry["ok_runs"]:
                stages += [stage for stage in run.get("epoch_seconds") or {} if stage not in stages]
            for stage in stages:
                seconds, ratios = [], []
                for run in entry["ok_runs"]:
                    mean = _mean((run.get("epoch_seconds") or {}).get(stage))
                    if mean is None:
                        continue
                    seconds.append(mean)
                    if unit.get(run["seed"]):
                        ratios.append(mean / unit[run["seed"]])
                rows.append(f"| {variant} {stage} | {fmt(*mean_std(seconds), digits=1)} | "
                            f"{fmt(*mean_std(ratios), digits=2)} |")
        if rows:
            blocks.append("\n".join([
                f"### {dataset}: seconds per training epoch, and as a ratio to a {reference} epoch of the same seed",
                "", f"| epoch | seconds | ratio to a {reference} epoch |", "|---|---|---|", *rows,
            ]))
    return "\n\n".join(blocks) + "\n" if blocks else ""
