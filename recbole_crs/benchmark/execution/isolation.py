"""Isolation of one run inside the suite's process: its own cwd, its own ``run.log``, no argv."""

import contextlib
import logging
import os

from recbole.utils.logger import RemoveColorFilter

from recbole_crs.runtime import isolated_argv

RUN_LOG = "run.log"


@contextlib.contextmanager
def isolated_run(run_dir):
    """cwd = ``run_dir`` (RecBole writes ./log_tensorboard), RecBole's log into ``run_dir/run.log``, no argv.

    RecBole's ``Config`` reads ``--key=value`` from ``sys.argv``: the benchmark's own options must not leak in.
    """
    os.makedirs(run_dir, exist_ok=True)
    saved_cwd = os.getcwd()
    root = logging.getLogger()
    saved_level = root.level
    handler = logging.FileHandler(os.path.join(run_dir, RUN_LOG), encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s  %(message)s"))

    handler.addFilter(RemoveColorFilter())
    handler.setLevel(logging.INFO)
    # Console handlers (RecBole's init_logger, if something called it) are muted for the run.
    muted = [
        h for h in root.handlers if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]
    muted_levels = [h.level for h in muted]
    for h in muted:
        h.setLevel(logging.CRITICAL + 1)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    os.chdir(run_dir)
    try:
        with isolated_argv():
            yield
    finally:
        os.chdir(saved_cwd)
        root.removeHandler(handler)
        handler.close()
        root.setLevel(saved_level)
        for h, level in zip(muted, muted_levels):
            h.setLevel(level)
