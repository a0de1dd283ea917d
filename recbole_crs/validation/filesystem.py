"""The file system a run reads and writes: ``data_path`` holds the dataset (or a built-in one can be built under
it, or RecBole can download it) and its ``.inter`` header has the candidate column the ``authors`` mode needs,
the checkpoints named by ``generator_path`` / ``pretrained_path`` exist when the run's stages read them, and
``checkpoint_dir`` is a writable folder (created here).

A missing file or an unwritable folder would otherwise fail after the dataset was loaded or a stage had
trained (a checkpoint is first written once training has begun); these checks run last, once every value is
known to be right, so that nothing is created on disk for a config that is wrong anyway.
"""

import os
import stat
import tempfile

import recbole
from recbole.utils import ModelType

from recbole_crs.data.atomic import header_columns
from recbole_crs.data.ml100k import is_builtin
from recbole_crs.run_plan import run_plan
from recbole_crs.validation.known_keys import plugin_model_keys, yaml_keys


def _existing_ancestor(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def filesystem_errors(config, saved=True):
    """``data_path`` readable (with a candidate column for ``authors``), ``checkpoint_dir`` writable (created here),
    checkpoint inputs present."""
    errors = []
    dataset, folder = config["dataset"], config["data_path"]
    if is_builtin(dataset):  # built on first use under data_path
        parent = _existing_ancestor(os.path.dirname(os.path.normpath(folder)))
        if not os.path.isdir(folder) and not (os.path.isdir(parent) and os.access(parent, os.W_OK)):
            errors.append(
                f"data_path: cannot build the built-in dataset '{dataset}' under '{os.path.dirname(folder)}' "
                f"('{parent}' is not a writable folder): set --data_path to a writable folder."
            )
        errors += _candidate_column_errors(config, columns=())  # the built-in datasets have no candidate lists
    elif dataset != "ml-100k" and not _recbole_downloads(dataset):
        inter = os.path.join(folder, f"{dataset}.inter")
        parts = config["benchmark_filename"]
        if parts:
            inter = os.path.join(folder, f"{dataset}.{parts[0]}.inter")
        problem = _read_problem(inter)
        header = None if problem else _header_or_none(inter, config)
        if header is not None:
            errors += _candidate_column_errors(config, header, inter)
        if problem == "does not exist":
            errors.append(
                f"data_path: dataset '{dataset}' needs the readable file '{inter}', which does not exist: set "
                f"--data_path to the folder that holds {dataset}/ (or convert the data first, see docs/data-format.md)."
            )
        elif problem:
            errors.append(
                f"data_path: dataset '{dataset}' needs the readable file '{inter}', which {problem}: fix the "
                f"permissions of '{os.path.dirname(inter)}' and its files, or set --data_path to a readable copy."
            )
    for key in ("generator_path", "pretrained_path"):
        path = config[key] if key in plugin_model_keys(config["model"]) else None
        if isinstance(path, str) and path and _path_is_read(config, key) and not os.path.isfile(path):
            errors.append(f"{key}: no file '{path}': give the path of an existing checkpoint, or remove {key}.")
    if saved and not errors:  # it is created: not for a run that fails anyway
        errors += _checkpoint_dir_errors(config["checkpoint_dir"])
    return errors


def _candidate_column_errors(config, columns, inter=None):
    """``authors`` (in ``crs_candidates`` or ``crs_test_modes``) ranks each target against the row's
    ``CANDIDATE_FIELD`` list; without that column (in the header ``columns`` of ``inter``, and loaded) it would fail
    at the first evaluation, after the generator and pre-training stages."""
    keys = run_plan(config).keys_asking_for("authors")
    if not keys or config["MODEL_TYPE"] != ModelType.SEQUENTIAL:
        return []
    field = config["CANDIDATE_FIELD"]
    present = field in [column.partition(":")[0] for column in columns]
    if present and _is_loaded(config, field):
        return []
    where = f"'{inter}'" if inter else f"the built-in dataset '{config['dataset']}'"
    return [
        f"{' and '.join(keys)}: 'authors' ranks each target against its row's '{field}' list, but {where} has "
        f"{'that column unloaded (load_col / unload_col)' if present else 'no such column'}: convert the data with "
        "`python -m recbole_crs.data.convert ... --candidates 100`, or use the modes all, first, confirmed."
    ]


def _is_loaded(config, field):
    """Whether RecBole loads the .inter column ``field`` under ``load_col`` / ``unload_col``."""
    load_col, unload_col = config["load_col"], config["unload_col"]
    if isinstance(load_col, dict) and load_col.get("inter") not in (None, "*") and field not in load_col["inter"]:
        return False
    return not (isinstance(unload_col, dict) and field in (unload_col.get("inter") or []))


def _header_or_none(path, config):
    try:
        return header_columns(path, config)
    except (OSError, UnicodeError, LookupError):  # the loader reports a file it cannot read, in its own words
        return None


def _read_problem(path):
    """Why ``path`` cannot be read as a file (None if it can): a missing file and an unreadable folder or file
    have different fixes."""
    try:
        is_file = stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return "does not exist"
    except OSError as error:  # e.g. no permission to enter its folder
        return f"cannot be reached ({error.strerror or error})"
    if not is_file:
        return "is not a regular file"
    if not os.access(path, os.R_OK):
        return "is not readable (permission denied)"
    return None


def _path_is_read(config, key):
    if config["model"] != "CRSPretrain":
        return True
    plan = run_plan(config)
    stages = plan.stages
    if key == "generator_path":  # the generator stage loads it; without one, pre-training or the history prior reads it
        return "generator" in stages or ("pretrain" in stages and plan.generator_needed) \
            or ("finetune" in stages and plan.history_prior_needed)
    return "finetune" in stages and "pretrain" not in stages


def _recbole_downloads(dataset):
    """Whether RecBole knows a download address for ``dataset`` (it fetches a missing folder itself)."""
    root = os.path.join(os.path.dirname(recbole.__file__), "properties", "dataset")
    return any(dataset in yaml_keys(os.path.join(root, name)) for name in ("url.yaml", "kg_url.yaml")
               if os.path.isfile(os.path.join(root, name)))


def _checkpoint_dir_errors(checkpoint_dir):
    if not isinstance(checkpoint_dir, str) or not checkpoint_dir:
        return [f"checkpoint_dir must be a folder path, got {checkpoint_dir!r}: fix it, e.g. checkpoint_dir: saved"]
    try:
        os.makedirs(checkpoint_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=checkpoint_dir):
            pass
    except OSError as error:
        return [
            f"checkpoint_dir '{checkpoint_dir}' is not a writable folder ({error.strerror or error}): set "
            "--checkpoint_dir to a folder you can write to."
        ]
    return []
