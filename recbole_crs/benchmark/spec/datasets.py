"""A suite dataset's files as the plan sees them: the field names of its ``.inter`` file, and the candidate modes
the dataset is evaluated in (``authors`` only where it has a fixed candidate list per evaluated row)."""

import os

from recbole_crs.benchmark.spec.suite import AUTHORS_MODE
from recbole_crs.data.fields import CANDIDATE_FIELD


def _inter_path(data_path, name):
    return os.path.join(data_path, name, f"{name}.inter")


def inter_header(data_path, name):
    """Field names of ``<data_path>/<name>/<name>.inter`` (``name:type`` headers), or None if missing."""
    path = _inter_path(data_path, name)
    if not os.path.isfile(path):
        return None
    with open(path, "r", encoding="utf-8") as f:
        return [column.split(":")[0] for column in f.readline().rstrip("\n").split("\t")]


def dataset_modes(suite, data_path, dataset_name, candidate_field=CANDIDATE_FIELD):
    """The suite's modes on this dataset: ``authors`` only where the dataset has a fixed candidate list per
    evaluated row (added at the end when the suite does not list it, dropped where the dataset has none)."""
    header = inter_header(data_path, dataset_name) or []
    has_candidates = candidate_field in header
    modes = [m for m in suite.modes if m != AUTHORS_MODE or has_candidates]
    if has_candidates and AUTHORS_MODE not in modes:
        modes.append(AUTHORS_MODE)
    return modes
