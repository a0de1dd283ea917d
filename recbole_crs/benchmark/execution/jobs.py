"""``--jobs N``: runs N at a time, each in a fresh Python process that leaves its record in a file for the suite."""

import contextlib
import dataclasses
import os
import subprocess
import sys
import time

from recbole_crs.benchmark.execution.run_one import execute_run, run_header
from recbole_crs.benchmark.spec.results import read_json, to_builtin, write_json
from recbole_crs.benchmark.spec.runs import RunSpec, run_dir_for
from recbole_crs.benchmark.spec.suite import REPO_ROOT
from recbole_crs.runtime import torch_threads

WORKER_COMMAND = "import sys; from recbole_crs.benchmark.execution.jobs import worker_main; worker_main(sys.argv[1])"


def _record_path(run_dir):
    """Where a run's process leaves its record for the parent (next to the run folder, which a run wipes)."""
    return os.path.normpath(run_dir) + ".record.json"


def _task_path(run_dir):
    return os.path.normpath(run_dir) + ".task.json"


def worker_main(task_path):
    """Entry point of a run's own process (``--jobs`` > 1): run the task file's spec, leave its record."""
    task = read_json(task_path)
    with torch_threads(task["threads"]):
        record = execute_run(RunSpec(**task["spec"]), task["run_dir"], task["keep_checkpoints"])
    write_json(task["record_path"], record)


def _lost_run_record(spec, run_dir, exitcode, wall_s):
    """The record of a run whose process died before it could write one (killed, out of memory, crash)."""
    record = run_header(spec, run_dir)
    record.update(
        stages=[], status="failed",
        error={"type": "ProcessDied", "traceback": None,
               "message": f"the run's process exited with code {exitcode} before writing its record; "
                          f"see {os.path.join(run_dir, 'run.log')}"},
        wall_s=round(wall_s, 2), cpu_s=None,
    )
    return record


def _start(spec, out_dir, keep_checkpoints, threads, env):
    run_dir = run_dir_for(out_dir, *spec.key)
    os.makedirs(os.path.dirname(run_dir), exist_ok=True)
    for path in (_record_path(run_dir), _task_path(run_dir)):
        if os.path.exists(path):
            os.remove(path)
    write_json(_task_path(run_dir), {
        "spec": to_builtin(dataclasses.asdict(spec)), "run_dir": run_dir, "threads": threads,
        "keep_checkpoints": keep_checkpoints, "record_path": _record_path(run_dir),
    })
    return run_dir, subprocess.Popen([sys.executable, "-c", WORKER_COMMAND, _task_path(run_dir)], env=env)


def _collect(spec, process, run_dir, started):
    try:
        record = read_json(_record_path(run_dir))
        os.remove(_record_path(run_dir))
    except (OSError, ValueError):
        record = _lost_run_record(spec, run_dir, process.returncode, time.perf_counter() - started)
    with contextlib.suppress(OSError):
        os.remove(_task_path(run_dir))
    return record


def run_in_processes(todo, out_dir, keep_checkpoints, jobs, threads, on_start, on_finish, should_stop, poll_s=0.2):
    """Run ``todo`` (index, spec) pairs ``jobs`` at a time, each in a fresh Python process.

    A run's process is ``python -c`` + a task file (the spec); it imports this checkout of recbole_crs
    (``PYTHONPATH``), nothing of the suite's process: not its ``__main__``, torch/OpenMP state, monkeypatches,
    cwd, argv or logging. ``on_start(index, spec, remaining)`` and ``on_finish(index, record, remaining)`` are
    called in this (the parent) process, so only the parent writes results.json; ``should_stop()`` stops
    starting new runs (the runs in flight finish).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([REPO_ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
    queue = list(todo)
    running = []  # (index, spec, process, run_dir, started)
    try:
        while queue or running:
            while queue and len(running) < jobs and not should_stop():
                index, spec = queue.pop(0)
                on_start(index, spec, [s for _, s in queue] + [entry[1] for entry in running] + [spec])
                run_dir, process = _start(spec, out_dir, keep_checkpoints, threads, env)
                running.append((index, spec, process, run_dir, time.perf_counter()))
            if not running:
                break
            ended = [entry for entry in running if entry[2].poll() is not None]
            if not ended:
                time.sleep(poll_s)
                continue
            for entry in ended:
                running.remove(entry)
                index, spec, process, run_dir, started = entry
                on_finish(index, _collect(spec, process, run_dir, started),
                          [s for _, s in queue] + [e[1] for e in running])
    finally:
        for index, spec, process, run_dir, started in running:
            process.terminate()
            process.wait()
