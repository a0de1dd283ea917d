"""The suite runner: plan, reuse finished runs (``--resume``), run the rest one after the other or in processes
(``--jobs``), log progress with an ETA, keep ``results.json`` current after every run, then write the report."""

import datetime
import os
import time

from recbole_crs.benchmark.execution.jobs import run_in_processes
from recbole_crs.benchmark.execution.prepare import check_variants, prepare_datasets
from recbole_crs.benchmark.execution.run_one import execute_run
from recbole_crs.benchmark.report.markdown import write_reports
from recbole_crs.benchmark.report.summary import duration, is_legacy_run, metric_value, ordered
from recbole_crs.benchmark.spec.results import RESULTS_JSON, environment, load_results, to_builtin, write_json
from recbole_crs.benchmark.spec.runs import plan_runs, resolve_config_shas, run_dir_for
from recbole_crs.benchmark.spec.suite import DEFAULT_DATA_PATH
from recbole_crs.errors import SuiteError
from recbole_crs.runtime import torch_threads


def estimate_remaining(pending, finished):
    """Seconds left. A pending run costs the mean wall time of finished runs of its dataset and variant; else
    the variant's mean on another dataset scaled by how the two datasets compare on variants finished on
    both; else the mean of its dataset, of its variant, of every finished run, in that order."""
    if not finished:
        return None
    walls = {}
    for r in finished:
        walls.setdefault((r["dataset"], r["variant"]), []).append(r["wall_s"])
    means = {key: sum(v) / len(v) for key, v in walls.items()}

    def ratio(dataset, other):
        shared = [v for (d, v) in means if d == dataset and (other, v) in means]
        below = sum(means[(other, v)] for v in shared)
        return sum(means[(dataset, v)] for v in shared) / below if shared and below > 0 else None

    def average(values):
        values = list(values)
        return sum(values) / len(values) if values else None

    total = 0.0
    for spec in pending:
        estimate = means.get((spec.dataset, spec.variant))
        if estimate is None:
            scaled = []
            for (other, variant), mean in means.items():
                factor = ratio(spec.dataset, other) if variant == spec.variant else None
                if factor is not None:
                    scaled.append(mean * factor)
            estimate = average(scaled)
        for fallback in (
            lambda: average(m for (d, _), m in means.items() if d == spec.dataset),
            lambda: average(m for (_, v), m in means.items() if v == spec.variant),
            lambda: average(means.values()),
        ):
            if estimate is None:
                estimate = fallback()
        total += estimate
    return total


def _main_metric(record, metric):
    """``valid=<best_valid_score> | <mode> <metric> turn1/last/all=...`` for the progress line."""
    results = record.get("test_results") or {}
    mode = (record.get("resolved") or {}).get("crs_candidates") or record["overrides"].get("crs_candidates")
    parts = []
    if isinstance(record.get("best_valid_score"), (int, float)):
        parts.append(f"valid={record['best_valid_score']:.4f}")
    values = [(scope, metric_value(results, mode, metric, scope)) for scope in ("turn1", "last", "all")]
    values = [(scope, v) for scope, v in values if v is not None]
    if values:
        parts.append(f"test {mode} {metric} " + " ".join(f"{scope}={v:.4f}" for scope, v in values))
    return ", ".join(parts)


def run_suite(suite, datasets, variants, seeds, out_dir, threads=None, jobs=1, **kwargs):
    """Run every dataset x variant x seed; write results.json after each run, then results.md and the plots.

    ``threads`` (default: the suite's ``threads``) sets torch's intra-op threads of each run (with ``jobs`` 1 the
    suite's own process, restored afterwards); on a shared 2-core machine one thread avoids oversubscription,
    which cost 4-5x the run time. ``jobs`` > 1 runs that many runs at a time, each in its own Python process
    (without ``threads``: cpu_count // jobs threads each). Returns the results payload (``payload['runs']``: one
    record per run). Keyword arguments: see :func:`_run_suite`.
    """
    jobs = int(jobs or 1)
    if jobs < 1:
        raise SuiteError("--jobs must be at least 1")
    threads = threads or suite.threads
    if jobs > 1 and not threads:
        threads = max(1, (os.cpu_count() or 1) // jobs)
    with torch_threads(threads):
        return _run_suite(suite, datasets, variants, seeds, out_dir, jobs=jobs, threads=threads, **kwargs)


def _previous_runs(json_path, resume):
    """``(runs, invocations)`` of an existing results.json, which only ``--resume`` may extend."""
    if not os.path.exists(json_path):
        return [], []
    if not resume:
        raise SuiteError(
            f"{json_path} exists: pass --resume to reuse its finished runs and add to it, --overwrite to "
            "start over, or another --out"
        )
    old = load_results(json_path)
    return old.get("runs", []), list(old.get("invocations", []))


class _Progress:
    """The progress lines of a suite (start, outcome, ETA) and the ``--fail-fast`` stop."""

    def __init__(self, todo, jobs, metric, fail_fast, log):
        self.todo, self.jobs, self.metric, self.fail_fast, self.log = todo, jobs, metric, fail_fast, log
        self.finished, self.stop = [], False
        self.started = time.perf_counter()

    def _eta(self, remaining):
        eta = estimate_remaining(remaining, self.finished)
        return eta / min(self.jobs, len(remaining)) if eta is not None and remaining else eta

    def start(self, index, spec, remaining):
        eta = self._eta(remaining)
        self.log(
            f"[{index}/{len(self.todo)}] start  {spec.dataset} {spec.variant} seed={spec.seed}"
            f" | elapsed {duration(time.perf_counter() - self.started)}"
            + (f", ETA {duration(eta)}" if eta is not None else "")
        )

    def finish(self, index, record, remaining):
        self.finished.append(record)
        eta = self._eta(remaining)
        if record["status"] == "ok":
            outcome = f"ok in {duration(record['wall_s'])}: {_main_metric(record, self.metric)}"
            if record.get("config_changed_since_planned"):
                outcome += " (WARNING: a yaml file changed since the suite was planned; see final_config)"
        else:
            outcome = f"FAILED after {duration(record['wall_s'])}: {record['error']['type']}: " + (
                record["error"]["message"].splitlines() or [""]
            )[0][:200]
        self.log(
            f"[{index}/{len(self.todo)}] {outcome}"
            + (f" | {len(self.finished)}/{len(self.todo)} done" if self.jobs > 1 else "")
            + (f" | ETA {duration(eta)}" if eta is not None and remaining else "")
        )
        if record["status"] != "ok" and self.fail_fast and not self.stop:
            self.stop = True
            self.log("--fail-fast: stopping after the first failed run"
                     + (" (runs in flight finish)" if self.jobs > 1 else ""))


def _run_suite(suite, datasets, variants, seeds, out_dir, data_path=DEFAULT_DATA_PATH, overrides=None, sources=None,
               resume=False, rerun=(), fail_fast=False, keep_checkpoints=False, key_check=True, log=print,
               command=None, jobs=1, threads=None, tuned=None, tuned_file=None):
    out_dir = os.path.abspath(out_dir)
    data_path = os.path.abspath(data_path)
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, RESULTS_JSON)
    previous, invocations = _previous_runs(json_path, resume)
    prepare_datasets(suite, datasets, data_path, sources or {}, log=log)
    if key_check:
        check_variants(suite, variants, datasets, data_path, tuned)
    specs = resolve_config_shas(plan_runs(suite, datasets, variants, seeds, data_path, out_dir, overrides,
                                          tuned=tuned))

    planned_keys = {spec.key for spec in specs}
    reusable = {
        (r["dataset"], r["variant"], r["seed"]): r for r in previous if r.get("status") == "ok"
    }
    kept = [r for r in previous if (r["dataset"], r["variant"], r["seed"]) not in planned_keys]
    payload = {
        "suite": suite.path,
        "suite_config": to_builtin(suite.raw),
        "command": command,
        "environment": environment(),
        "started_at": datetime.datetime.now().isoformat(timespec="seconds"),
        "table_metrics": list(suite.table_metrics),
        "table_scopes": list(suite.table_scopes),
        "plot_metric": suite.plot_metric,
        "plot_mode": suite.plot_mode,
        "curves": suite.curves,
        "epoch_ratios": suite.epoch_ratios,
        "tuned_file": tuned_file,  # the tuned values each run used are in its record ("tuned")
        "datasets_order": ordered(list(dict.fromkeys(datasets)), list(suite.datasets)),
        "variants_order": list(suite.variants),
        "invocations": invocations,
        "runs": list(kept),
    }
    invocation = {"command": command, "started_at": payload["started_at"], "environment": payload["environment"],
                  "runs_planned": len(specs), "jobs": jobs}
    invocations.append(invocation)
    done = {}  # key -> record, reused or finished now; results.json lists them in plan order
    todo = []
    legacy = 0
    for spec in specs:
        old = reusable.get(spec.key)
        if old is not None and old.get("fingerprint") == spec.fingerprint and spec.variant not in rerun:
            done[spec.key] = old
            legacy += is_legacy_run(old)
            log(f"reuse  {spec.dataset} {spec.variant} seed={spec.seed} (finished earlier, same config)")
        else:
            todo.append(spec)
    if legacy:
        log(f"WARNING: {legacy} reused run(s) have no per-turn results (an older evaluation); their turn-1, "
            "last-turn and chance cells stay empty: rerun them with --resume --rerun all")

    def sync():
        payload["runs"] = list(kept) + [done[spec.key] for spec in specs if spec.key in done]
        write_json(json_path, payload)

    sync()
    log(f"{len(todo)} run(s) to do ({len(specs) - len(todo)} reused) -> {out_dir}"
        + (f", {jobs} at a time in separate processes ({threads} torch thread(s) each)" if jobs > 1 else ""))
    progress = _Progress(todo, jobs, suite.plot_metric, fail_fast, log)

    def on_finish(index, record, remaining):
        done[(record["dataset"], record["variant"], record["seed"])] = record
        sync()
        progress.finish(index, record, remaining)

    numbered = list(enumerate(todo, start=1))
    if jobs > 1:
        run_in_processes(numbered, out_dir, keep_checkpoints, jobs, threads, progress.start, on_finish,
                         lambda: progress.stop)
    else:
        for index, spec in numbered:
            if progress.stop:
                break
            progress.start(index, spec, todo[index - 1:])
            on_finish(index, execute_run(spec, run_dir_for(out_dir, *spec.key), keep_checkpoints), todo[index:])
    payload["finished_at"] = datetime.datetime.now().isoformat(timespec="seconds")
    payload["suite_wall_s"] = round(time.perf_counter() - progress.started, 2)
    invocation.update(
        finished_at=payload["finished_at"], wall_s=payload["suite_wall_s"], runs_done=len(progress.finished),
        runs_reused=len(specs) - len(todo),
    )
    sync()
    paths = write_reports(payload, out_dir, suite)
    log("\n".join(f"wrote {path}" for path in [json_path, *paths]))
    return payload
