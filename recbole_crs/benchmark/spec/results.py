"""The results file: ``results.json`` read and written (atomically), JSON-safe values, the environment it records."""

import json
import math
import os
import platform
import subprocess

import torch

from recbole_crs.benchmark.spec.suite import REPO_ROOT
from recbole_crs.errors import SuiteError
from recbole_crs.runtime import atomic_write_text

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"


def to_builtin(value):
    """JSON-safe copy of config values and metric dicts (numpy/torch scalars, enums, tuples)."""
    if isinstance(value, dict):
        return {str(k): to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_builtin(v) for v in value]
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):
        return to_builtin(value.item())
    if hasattr(value, "name") and hasattr(value, "value"):  # enums such as ModelType
        return value.name
    return str(value)


def _git_state():
    """Commit of the repository and the files that differ from it (the code the runs used)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True,
                                 timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit or None, "changed_files": [line[3:] for line in changed]}


def environment():
    return {
        "git": _git_state(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "gpu": torch.cuda.is_available(),
    }


def read_json(path):
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)


def load_results(path):
    """A results.json payload. Files of older versions (runs without ``test_results_by_turn``,
    ``best_valid_result`` or ``table_scopes``) load as they are: their missing cells show ``-`` and the table
    says which runs to rerun. A file that is no results.json stops with a SuiteError saying why."""
    try:
        payload = read_json(path)
    except json.JSONDecodeError as error:
        raise SuiteError(f"{path} is not valid JSON ({error}); restore it or start over with --overwrite") from None
    runs = payload.get("runs") if isinstance(payload, dict) else None
    if not isinstance(runs, list):
        raise SuiteError(f"{path} has no list of 'runs': not a results.json of python -m recbole_crs.benchmark")
    for index, run in enumerate(runs):
        missing = [k for k in ("dataset", "variant", "seed") if not isinstance(run, dict) or k not in run]
        if missing:
            raise SuiteError(f"{path}: run {index} lacks {missing}: not a results.json of this benchmark")
    return payload


def write_json(path, payload):
    """``payload`` as indented JSON, written atomically (a reader never sees half a file)."""
    return atomic_write_text(path, json.dumps(payload, indent=1, sort_keys=False) + "\n")
