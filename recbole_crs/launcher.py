"""The processes of a multi-process run (``run_recbole_crs.py --nproc``, :func:`recbole_crs.quick_start.run`): start
them, join them, and end every one of them, whatever ends the run.

Launcher side, :func:`launch` spawns the processes (``torch.multiprocessing``, RecBole's way), reads what they
report while they run, and ends in one of four ways:

* every process finished: the ``(kind, value)`` items they reported (rank 0's result);
* a process refused its input (:class:`~recbole_crs.errors.CRSInputError`: config, data, checkpoint, a rendezvous
  that timed out): that error, raised here as one line; the other processes are stopped;
* a process died without a Python error (a signal, e.g. the out-of-memory killer's SIGKILL, or a bare exit
  status): :class:`WorkerDiedError`, one line naming its rank, pid and how it ended;
* a process raised any other error (a bug): torch's ``ProcessRaisedException``, with that process's traceback.

torch's per-process error files (``<tmp>/pytorch-errorfile-*.pickle``) are removed in every case. torch's own
log lines about it (the C++ ``c10d`` log with its stack frames, "Terminating process ... via signal SIGTERM") are
not shown: each case above says what happened in one line. Set ``TORCH_CPP_LOG_LEVEL`` (e.g. ``WARNING``) to see
the C++ log again.

Process side (called by each spawned process):

* :func:`end_with_launcher`: the process ends when its launcher does, even a launcher killed with SIGKILL
  (Linux: ``PR_SET_PDEATHSIG``; everywhere: a watchdog thread that sees its parent change);
* :func:`report_input_error`: hand a :class:`CRSInputError` to the launcher and exit with status 2;
* :func:`join_process_group`: the rendezvous of every rank, bounded by ``rendezvous_timeout``: past it, each
  process ends with one line naming the ranks that did not join.

This module imports nothing of the package but :mod:`recbole_crs.errors`: ``Config`` (the rendezvous) and
``quick_start`` (the launcher) both use it.
"""

import contextlib
import ctypes
import datetime
import logging
import os
import signal
import sys
import threading
import time

import torch.distributed as dist
import torch.multiprocessing as mp

from recbole_crs.errors import CRSConfigError, CRSInputError, WorkerDiedError

INPUT_ERROR_STATUS = 2  # a process that refused its input exits with this status, like the command would
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_JOINED_KEY = "recbole_crs/joined/{}"


# ------------------------------------------------------------------------------------------- launcher side
def launch(worker, args, kwargs, nproc, first_rank=0):
    """Run ``worker(local_rank, *args, kwargs)`` in ``nproc`` spawned processes and wait for all of them.

    ``kwargs`` (a dict) reaches each process with two more entries: ``queue`` (where it puts ``(kind, value)``
    items, :func:`report_input_error`'s included) and ``launcher_pid`` (for :func:`end_with_launcher`).
    ``first_rank``: the global rank of local rank 0 (``group_offset``), for the messages. Returns the items the
    processes put; raises as the module docstring says.
    """
    queue = mp.get_context("spawn").SimpleQueue()
    process_kwargs = {**kwargs, "queue": queue, "launcher_pid": os.getpid()}
    with _quiet_torch_logs():
        context = mp.spawn(worker, args=(*args, process_kwargs), nprocs=nproc, join=False)
        return _join(context, queue, first_rank)


def _join(context, queue, first_rank):
    items = []
    try:
        # Read while the processes run: a result larger than the pipe's buffer (every mode's metrics by turn)
        # would otherwise block rank 0 in put() while this process waits for it to exit (RecBole reads after).
        while not context.join(timeout=0.2):
            _drain(queue, items)
    except mp.ProcessExitedException as failure:
        _drain(queue, items)
        _raise_reported(items)
        raise _died(context, first_rank, failure.error_index) from None
    except mp.ProcessRaisedException:
        _drain(queue, items)
        _raise_reported(items)
        killed = _killed_index(context)  # a process killed first makes the others fail in their collectives
        if killed is not None:
            raise _died(context, first_rank, killed) from None
        raise
    finally:
        _stop(context)
        _remove_error_files(context)
    return _drain(queue, items)


@contextlib.contextmanager
def _quiet_torch_logs():
    """The processes start with torch's C++ log at FATAL unless the user chose a level (they read it when they
    import torch), and torch's "Terminating process" warnings of this process are not shown."""
    spawn_log = logging.getLogger("torch.multiprocessing.spawn")
    level, chosen = spawn_log.level, "TORCH_CPP_LOG_LEVEL" in os.environ
    spawn_log.setLevel(logging.ERROR)
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")
    try:
        yield
    finally:
        spawn_log.setLevel(level)
        if not chosen:
            os.environ.pop("TORCH_CPP_LOG_LEVEL", None)


def _drain(queue, items):
    while not queue.empty():
        items.append(queue.get())
    return items


def _raise_reported(items):
    for kind, value in items:
        if kind == "error":
            raise CRSInputError(value) from None


def _killed_index(context):
    """The local rank of a process killed by a signal other than the SIGTERM torch stops the others with."""
    for index, process in enumerate(context.processes):
        if process.exitcode is not None and process.exitcode < 0 and -process.exitcode != signal.SIGTERM:
            return index
    return None


def _died(context, first_rank, index):
    process = context.processes[index]
    who = f"the process of rank {first_rank + index} (local rank {index}, pid {process.pid})"
    stopped = "; the launcher stopped the other processes"
    code = process.exitcode
    if code is not None and code < 0:
        name = _signal_name(-code)
        hint = (" (often the out-of-memory killer: see `dmesg`; lower train_batch_size or --nproc)"
                if -code == signal.SIGKILL else "")
        return WorkerDiedError(f"{who} was killed by {name}{hint}{stopped}.", 128 - code)
    return WorkerDiedError(f"{who} exited with status {code} without an error message{stopped}.", code or 1)


def _signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _stop(context, grace_s=5.0):
    """End every process still running (an interrupted launcher), SIGTERM first, SIGKILL after ``grace_s``."""
    alive = [process for process in context.processes if process.is_alive()]
    for process in alive:
        process.terminate()
    deadline = time.monotonic() + grace_s
    for process in alive:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def _remove_error_files(context):
    for path in context.error_files:
        try:
            os.remove(path)
        except OSError:  # never written: the process raised nothing
            pass


# ------------------------------------------------------------------------------------------- process side
def end_with_launcher(launcher_pid):
    """End this process when the launcher (its parent, ``launcher_pid``) ends, however it ends.

    A process left behind by a killed launcher would train on, write checkpoints and hold its port. On Linux the
    kernel sends SIGKILL when the parent dies (``PR_SET_PDEATHSIG``); everywhere a daemon thread checks each second
    that the parent is still ``launcher_pid``. No-op without ``launcher_pid``.
    """
    if launcher_pid is None:
        return
    _ask_for_signal_on_parent_death()
    if os.getppid() != launcher_pid:  # it died before the line above
        os._exit(1)
    threading.Thread(target=_watch_launcher, args=(launcher_pid,), name="recbole-crs-launcher-watch",
                     daemon=True).start()


def _ask_for_signal_on_parent_death():
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_launcher(launcher_pid, interval_s=1.0):
    while os.getppid() == launcher_pid:
        time.sleep(interval_s)
    os._exit(1)


def report_input_error(queue, error):
    """In a spawned process: hand ``error`` (a :class:`CRSInputError`) to the launcher, which prints it as the run's
    one ``error:`` line, and exit with status 2. Without a queue (not started by :func:`launch`) it is raised."""
    if queue is None:
        raise error
    queue.put(("error", str(error)))
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    sys.exit(INPUT_ERROR_STATUS)


def join_process_group(backend, rank, world_size, ip, port, timeout_s):
    """Join the ``torch.distributed`` group of ``world_size`` processes at ``ip:port`` as ``rank``.

    The rendezvous (every rank reaching rank 0's store and announcing itself) waits at most ``timeout_s`` seconds
    (None: torch's default, 30 minutes); past it a :class:`CRSConfigError` names the ranks that did not join, or
    says that rank 0 could not be reached. The group's collectives keep torch's default timeout.
    """
    timeout = datetime.timedelta(seconds=timeout_s) if timeout_s else dist.default_pg_timeout
    where = f"{ip}:{port}"
    try:
        store = dist.TCPStore(ip, int(port), world_size, is_master=rank == 0, timeout=timeout,
                              wait_for_workers=False)
    except dist.DistError as error:
        raise CRSConfigError(_store_problem(rank, where, timeout_s, error)) from None
    keys = [_JOINED_KEY.format(r) for r in range(world_size)]
    store.set(keys[rank], "1")
    try:
        store.wait(keys, timeout)
    except dist.DistError:
        raise CRSConfigError(_missing_ranks_problem(store, keys, where, timeout_s)) from None
    store.set_timeout(dist.default_pg_timeout)  # from here on the store serves the group, not the rendezvous
    dist.init_process_group(backend, store=store, rank=rank, world_size=world_size)


def _store_problem(rank, where, timeout_s, error):
    text = str(error)
    if rank == 0 and ("EADDRINUSE" in text or "address already in use" in text):
        return (f"port {where.rsplit(':', 1)[1]} on this machine is in use (another run?), so rank 0 cannot "
                "listen there: pick a free --port (the same on every machine).")
    if rank == 0:
        return f"rank 0 cannot listen at {where} ({' '.join(text.split())[:200]}): pick a free --port."
    return (f"rank {rank} could not reach rank 0 at {where} within rendezvous_timeout={timeout_s} s: start the "
            "machine of rank 0 (--group_offset=0) within that time, and check --ip/--port (the address of rank "
            "0's machine and a port open between the machines).")


def _missing_ranks_problem(store, keys, where, timeout_s):
    try:
        missing = [rank for rank, key in enumerate(keys) if not store.check([key])]
    except Exception:  # rank 0's store is gone (it timed out first): say what is known
        missing = None
    ranks = f"rank{'s' if len(missing) > 1 else ''} {_ranges(missing)}" if missing else "some ranks"
    return (f"{ranks} of world_size={len(keys)} did not join the run at {where} within rendezvous_timeout="
            f"{timeout_s} s: start them (on their machine: run_recbole_crs.py with the same --ip, --port and "
            "--world_size, and --group_offset = its first rank), or set --world_size to the processes you start.")


def _ranges(numbers):
    """``[2, 3, 4, 7]`` -> ``'2-4, 7'``."""
    parts, start = [], None
    for i, number in enumerate(numbers):
        if start is None:
            start = number
        if i + 1 == len(numbers) or numbers[i + 1] != number + 1:
            parts.append(str(start) if start == number else f"{start}-{number}")
            start = None
    return ", ".join(parts)
