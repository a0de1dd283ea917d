"""The processes of a multi-process run end, whatever ends the run (issue 15, recbole_crs.launcher):

* a launcher killed with SIGKILL takes its processes along (they wrote new checkpoints 20 s later before), and the
  next run in that checkpoint_dir removes what they left half-written;
* a process killed with SIGKILL ends the run with one line naming its rank, exit status 137;
* a rendezvous that cannot complete (a world size larger than the processes started, rank 0 unreachable, its port
  taken) ends after rendezvous_timeout with one line naming the missing ranks, instead of waiting forever.

Each launch runs `run_recbole_crs.py --nproc=2` as a user would, in its own process, on the tiny dataset.
"""

import glob
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import recbole_crs
from recbole_crs.errors import CRSConfigError
from tiny_data import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(recbole_crs.__file__)))


def free_port():
    with socket.socket() as handle:
        handle.bind(("localhost", 0))
        return handle.getsockname()[1]


def launcher(root, *argv):
    """`run_recbole_crs.py --nproc=2` training SASRec for many epochs (until killed), started in ``root``."""
    values = tiny_config(root, epochs=1000, stopping_step=1000)
    options = [f"--{key}={value}" for key, value in values.items()]
    command = [sys.executable, os.path.join(REPO, "run_recbole_crs.py"), "--model=SASRec", "--dataset=tiny-crs",
               "--nproc=2", f"--port={free_port()}", *options, *argv]
    return subprocess.Popen(command, cwd=root, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": REPO})


def _stat(pid):
    """``(parent pid, state)`` of a process from /proc, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), fields[0]


def children(pid):
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and (_stat(int(name)) or (None,))[0] == pid:
            found.append(int(name))
    return found


def running(pid):
    """Alive and not a zombie waiting for its (new) parent to collect it."""
    stat = _stat(pid)
    return stat is not None and stat[1] != "Z"


def wait_for(condition, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def training(process, checkpoint_dir):
    """Wait until both processes train (rank 0 wrote its first checkpoint); returns the processes' pids."""
    wait_for(lambda: glob.glob(os.path.join(checkpoint_dir, "SASRec-*.pth")) or process.poll() is not None, 180,
             "the first checkpoint")
    assert process.poll() is None, process.stderr.read()
    (checkpoint,) = glob.glob(os.path.join(checkpoint_dir, "SASRec-*.pth"))
    return checkpoint, children(process.pid)


def test_a_killed_launcher_takes_its_processes_along(tiny_root):
    checkpoint_dir = tiny_root / "saved"
    process = launcher(tiny_root)
    try:
        checkpoint, descendants = training(process, checkpoint_dir)
        assert len(descendants) == 3  # the two processes and multiprocessing's resource tracker
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        wait_for(lambda: not any(running(pid) for pid in descendants), 5, "the processes to end")
    finally:
        process.kill()
        process.stderr.close()
    # A process may be killed while it writes its next checkpoint: that leaves only its temporary file (named
    # <checkpoint>.tmp-<pid>-<hex> by runtime.atomic_write), never a second checkpoint.
    left = sorted(os.listdir(checkpoint_dir))
    finished = [name for name in left if ".tmp-" not in name]
    assert finished == [os.path.basename(checkpoint)]
    assert all(int(name.split(".tmp-")[1].split("-")[0]) in descendants for name in left if ".tmp-" in name)
    written = os.stat(checkpoint).st_mtime_ns
    time.sleep(1.5)
    assert sorted(os.listdir(checkpoint_dir)) == left
    assert os.stat(checkpoint).st_mtime_ns == written  # nothing trains on

    # A process killed while it wrote leaves its temporary file (as runtime.atomic_write names it); the next run in
    # that checkpoint_dir removes it once the process no longer exists (init has collected the killed processes).
    wait_for(lambda: all(_stat(pid) is None for pid in descendants), 30, "init to collect the processes")
    leftover = checkpoint_dir / f"{os.path.basename(checkpoint)}.tmp-{descendants[0]}-0a1b2c3d"
    leftover.write_bytes(b"half a checkpoint")
    from recbole_crs.quick_start import run_recbole_crs

    run_recbole_crs("Pop", "tiny-crs", config_dict=tiny_config(tiny_root, epochs=1))
    assert not [name for name in os.listdir(checkpoint_dir) if ".tmp-" in name]


def test_a_killed_process_ends_the_run_with_one_line(tiny_root):
    process = launcher(tiny_root)
    try:
        _, descendants = training(process, tiny_root / "saved")
        workers = [pid for pid in descendants if "spawn_main" in open(f"/proc/{pid}/cmdline").read()]
        assert len(workers) == 2
        os.kill(workers[1], signal.SIGKILL)  # spawned in rank order: local rank 1
        status = process.wait(timeout=60)
        err = process.stderr.read()
    finally:
        process.kill()
        process.stderr.close()
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 128 + signal.SIGKILL and len(lines) == 1, err
    assert lines[0].startswith(f"error: the process of rank 1 (local rank 1, pid {workers[1]}) was killed by SIGKILL")
    assert lines[0].endswith("the launcher stopped the other processes.")
    assert not running(workers[0])


def test_a_rank_that_never_comes_ends_the_run_after_the_rendezvous_timeout(tiny_root):
    started = time.monotonic()
    process = launcher(tiny_root, "--world_size=3", "--rendezvous_timeout=2")
    try:
        status = process.wait(timeout=180)  # it waited forever before
        err = process.stderr.read()
    finally:
        process.kill()
        process.stderr.close()
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: rank 2 of world_size=3 did not join the run at localhost:")
    assert "within rendezvous_timeout=2 s: start them" in lines[0] and "--group_offset" in lines[0]
    assert time.monotonic() - started < 120
    assert not glob.glob(os.path.join(str(tiny_root), "saved", "*"))  # nothing trained


# ---------------------------------------------------------------------------------------------- the rendezvous
def test_the_rendezvous_names_a_missing_rank_an_unreachable_rank_0_and_a_taken_port():
    """One process, no group formed: each failure of `join_process_group` is one line, within the timeout."""
    from recbole_crs.launcher import join_process_group

    port = free_port()
    started = time.monotonic()
    with pytest.raises(CRSConfigError, match=rf"^rank 1 of world_size=2 did not join the run at localhost:{port} "
                                             r"within rendezvous_timeout=1 s"):
        join_process_group("gloo", 0, 2, "localhost", port, 1)
    with pytest.raises(CRSConfigError, match=rf"^rank 1 could not reach rank 0 at localhost:{port} within "
                                             r"rendezvous_timeout=1 s: start the machine of rank 0"):
        join_process_group("gloo", 1, 2, "localhost", port, 1)
    assert time.monotonic() - started < 30
    with socket.socket() as taken:
        taken.bind(("", port))
        taken.listen()
        with pytest.raises(CRSConfigError, match=rf"^port {port} on this machine is in use .*pick a free --port"):
            join_process_group("gloo", 0, 2, "localhost", port, 1)
