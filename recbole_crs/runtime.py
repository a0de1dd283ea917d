"""Process-level plumbing shared by the entry points, the benchmark, tuning and the converters.

* :func:`isolated_argv`: RecBole's ``Config`` reads ``--key=value`` from ``sys.argv``; a run started from inside
  another program (a benchmark, a tuning trial, a test) must not see that program's options.
* :func:`torch_threads`: run a block with a given torch thread count, restoring the previous one.
* Atomic writes: :func:`atomic_write` writes ``<path>.tmp-<pid>-<random>`` next to ``path``, flushes and
  fsyncs it, then ``os.replace``-s it onto ``path``: a kill or a full disk during a write leaves the previous
  file intact, never a truncated file under the final name. :func:`clean_stale_temporaries` removes the
  temporaries of processes that died mid-write (``atomic_write`` those of the file it writes).
* :func:`run_id`: a name part distinct for every run (local time + pid + random).
"""

import contextlib
import os
import secrets
import sys
import time
from logging import getLogger

import torch

TMP_MARK = ".tmp-"


@contextlib.contextmanager
def isolated_argv():
    """Within this block ``sys.argv`` holds only the program name, so RecBole's ``Config`` reads no
    command-line values of the calling program (a benchmark's, a tuning search's, pytest's, a Ray worker's)."""
    saved = sys.argv
    sys.argv = saved[:1] if saved else ["recbole_crs"]
    try:
        yield
    finally:
        sys.argv = saved


@contextlib.contextmanager
def torch_threads(threads):
    """Run with ``threads`` torch threads (None or 0: unchanged), restoring the previous count afterwards."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# ---------------------------------------------------------------------------------------------- names
def run_id():
    """``<local time>-<pid>-<6 hex>``: distinct for every run, even two started in the same second."""
    return f"{time.strftime('%b-%d-%Y_%H-%M-%S')}-{os.getpid()}-{secrets.token_hex(3)}"


def temporary_path(path):
    return f"{path}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OverflowError:
        return False
    return True


def clean_stale_temporaries(folder, target=None):
    """Remove ``*.tmp-<pid>[-<random>]`` files in ``folder`` left by processes that are no longer running (only
    those of the file named ``target``, when given).

    Files of this process and of live processes are kept (they may be mid-write). Returns the removed paths.
    """
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if TMP_MARK not in name or (target is not None and not name.startswith(target + TMP_MARK)):
            continue
        pid_text = name.rsplit(TMP_MARK, 1)[1].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _pid_alive(int(pid_text)):
            continue
        path = os.path.join(folder, name)
        try:
            if os.path.isfile(path):
                os.remove(path)
                removed.append(path)
        except OSError:
            pass
    if removed:
        getLogger().info(f"removed {len(removed)} temporary files of interrupted runs from {folder}")
    return removed


# ---------------------------------------------------------------------------------------------- atomic writes
def _fsync_folder(folder):
    try:
        descriptor = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def atomic_write(path, write):
    """Call ``write(handle)`` on a temporary file next to ``path``, fsync it, then rename it onto ``path``.

    On any failure (an exception, a full disk) the temporary file is removed and ``path`` is untouched. The
    temporary files of ``path`` that killed writers left are removed first, so a rerun leaves none.
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    clean_stale_temporaries(folder or ".", target=name)
    temporary = temporary_path(path)
    try:
        with open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.remove(temporary)
        except OSError:
            pass
        raise
    _fsync_folder(os.path.dirname(path))
    return path


def atomic_write_bytes(path, data):
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path, text, encoding="utf-8"):
    return atomic_write(path, lambda handle: handle.write(text.encode(encoding)))

