"""The file system a run reads and writes: ``data_path`` holds the dataset (or a built-in one can be built under
it, or RecBole can download it), the checkpoints named by ``generator_path`` / ``pretrained_path`` exist when
the run's stages read them, and ``checkpoint_dir`` is a writable folder (created here).

A missing file or an unwritable folder would otherwise fail after the dataset was loaded or a stage had
trained (a checkpoint is first written once training has begun); these checks run last, once every value is
known to be right, so that nothing is created on disk for a config that is wrong anyway.
"""

import os
import stat
import tempfile

from recbole_crs.validation.keys import plugin_model_keys, yaml_keys


def _existing_ancestor(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def filesystem_errors(config, saved=True):
    """``data_path`` readable, ``checkpoint_dir`` writable (created here), checkpoint inputs present."""
    from recbole_crs.data.ml100k import is_builtin

    errors = []
    dataset, folder = config["dataset"], config["data_path"]
    if is_builtin(dataset):  # built on first use under data_path
        parent = _existing_ancestor(os.path.dirname(os.path.normpath(folder)))
        if not os.path.isdir(folder) and not (os.path.isdir(parent) and os.access(parent, os.W_OK)):
            errors.append(
                f"data_path: cannot build the built-in dataset '{dataset}' under '{os.path.dirname(folder)}' "
                f"('{parent}' is not a writable folder): set --data_path to a writable folder."
            )
    elif dataset != "ml-100k" and not _recbole_downloads(dataset):
        inter = os.path.join(folder, f"{dataset}.inter")
        parts = config["benchmark_filename"]
        if parts:
            inter = os.path.join(folder, f"{dataset}.{parts[0]}.inter")
        problem = _read_problem(inter)
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
    if saved:
        errors += _checkpoint_dir_errors(config["checkpoint_dir"])
    return errors


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
    from recbole_crs.model.negatives import needs_generator
    from recbole_crs.pipeline import stages_to_run

    stages = stages_to_run(config)
    if key == "generator_path":
        return "generator" in stages or ("pretrain" in stages and needs_generator(config))
    return "finetune" in stages and "pretrain" not in stages


def _recbole_downloads(dataset):
    """Whether RecBole knows a download address for ``dataset`` (it fetches a missing folder itself)."""
    import recbole

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
