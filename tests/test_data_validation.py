"""What ``validate`` knows about the data before anything is trained: an unreadable dataset folder is not a missing
one, the candidate modes need full ranking and ``authors`` a candidate column, ``hidden_act`` is one of RecBole's
activations."""

import os
import pickle
import shutil
import tempfile

import pytest

from recbole_crs.config import Config
from recbole_crs.errors import CRSConfigError
from recbole_crs.validation import filesystem_errors, validate
from tiny_data import tiny_config, write_tiny_dataset

NOBODY = 65534


def in_unprivileged_child(function):
    """``function()`` computed in a forked child that file permissions apply to: run as root (which permissions do
    not stop) the child becomes the user nobody. Returns its result (or raises its exception)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            payload = pickle.dumps(("ok", function()))
        except BaseException as error:  # noqa: BLE001 (handed to the parent)
            payload = pickle.dumps(("error", repr(error)))
        with os.fdopen(write_end, "wb") as handle:
            handle.write(payload)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as handle:
        kind, value = pickle.loads(handle.read())
    os.waitpid(pid, 0)
    assert kind == "ok", value
    return value


@pytest.fixture
def open_root(monkeypatch):
    """A folder every user may enter (tmp_path's parents are private to root), removed afterwards."""
    root = tempfile.mkdtemp()
    os.chmod(root, 0o755)
    monkeypatch.chdir(root)
    yield root
    for folder, _, _ in os.walk(root):
        os.chmod(folder, 0o755)
    shutil.rmtree(root)


def test_an_unreadable_dataset_folder_is_not_reported_as_missing(open_root):
    folder = write_tiny_dataset(open_root)
    config = Config(model="SASRec", dataset="tiny-crs", config_dict=tiny_config(open_root))
    assert in_unprivileged_child(lambda: filesystem_errors(config, saved=False)) == []
    os.chmod(folder, 0o000)
    errors = in_unprivileged_child(lambda: filesystem_errors(config, saved=False))
    inter = os.path.join(folder, "tiny-crs.inter")
    assert errors == [
        f"data_path: dataset 'tiny-crs' needs the readable file '{inter}', which cannot be reached (Permission "
        f"denied): fix the permissions of '{folder}' and its files, or set --data_path to a readable copy."
    ]
    os.chmod(folder, 0o755)
    os.chmod(inter, 0o000)
    errors = in_unprivileged_child(lambda: filesystem_errors(config, saved=False))
    assert errors and "which is not readable (permission denied): fix the permissions" in errors[0]
    os.remove(inter)
    assert "which does not exist: set --data_path" in filesystem_errors(config, saved=False)[0]
