"""Checkpoint files as plain data: written atomically, loadable with ``torch.load(weights_only=True)``.

:func:`plain_config` turns RecBole's ``Config`` into builtins (enums and devices tagged);
:func:`config_from_checkpoint` rebuilds a ``Config`` from either form. :func:`atomic_torch_save` writes through
:func:`recbole_crs.runtime.atomic_write` (:func:`checked_atomic_write`: a disk that refuses the file is one
:class:`~recbole_crs.errors.OutputError`).
"""

import enum

import torch

from recbole_crs.errors import OutputError
from recbole_crs.runtime import atomic_write


def _os_error(error):
    """The OSError behind ``error``: itself, or the one torch's zip writer turned into a RuntimeError."""
    while error is not None and not isinstance(error, OSError):
        error = error.__context__
    return error


def checked_atomic_write(path, write, what="checkpoint"):
    """:func:`atomic_write`; a file the disk refuses (full, over the file-size limit, read-only, no permission) is
    an :class:`OutputError` naming it. ``atomic_write`` has removed its temporary file, and the file at ``path``,
    if any, is the previous one, intact."""
    try:
        return atomic_write(path, write)
    except (OSError, RuntimeError) as error:
        cause = _os_error(error)
        if cause is None:
            raise
        raise OutputError(
            f"cannot write the {what} '{path}' ({cause.strerror or cause}): free space on that disk, raise the "
            "file-size limit (ulimit -f) or set checkpoint_dir to a folder with room; any earlier file of that "
            "name is unchanged."
        ) from error


def atomic_torch_save(obj, path, pickle_protocol=2):
    """``torch.save(obj, path)``, atomically (see :func:`checked_atomic_write`).

    Protocol 2 (torch's default): ``torch.load(weights_only=True)`` does not read protocol 4's frames. Tensor
    data lives outside the pickle, so protocol 4's large-object support is not needed.
    """
    return checked_atomic_write(path, lambda handle: torch.save(obj, handle, pickle_protocol=pickle_protocol))


def _plain_enums():
    from recbole.utils.enum_type import EvaluatorType, FeatureSource, FeatureType, InputType, ModelType

    return {cls.__name__: cls for cls in (ModelType, InputType, EvaluatorType, FeatureType, FeatureSource)}


def to_plain(value):
    """``value`` as builtins and tensors only (loadable with ``weights_only=True``).

    Enums of RecBole and ``torch.device`` become tagged dicts (:func:`from_plain` restores them); NumPy values
    become Python numbers or tensors; anything else becomes its ``repr`` (configs hold nothing else we read).
    """
    if value is None or isinstance(value, (bool, int, float, str, bytes, torch.Tensor)):
        return value
    if isinstance(value, enum.Enum):
        return {"__enum__": type(value).__name__, "name": value.name}
    if isinstance(value, torch.device):
        return {"__device__": str(value)}
    if isinstance(value, dict):
        return {to_plain(key) if not isinstance(key, str) else key: to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain(item) for item in value)
    if isinstance(value, (set, frozenset)):
        return [to_plain(item) for item in sorted(value, key=repr)]
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return torch.from_numpy(value.copy())
    except ImportError:  # pragma: no cover
        pass
    return repr(value)


def from_plain(value):
    if isinstance(value, dict):
        if set(value) == {"__enum__", "name"}:
            cls = _plain_enums().get(value["__enum__"])
            if cls is not None:
                return cls[value["name"]]
        if set(value) == {"__device__"}:
            device = value["__device__"]
            return torch.device(device if device == "cpu" or torch.cuda.is_available() else "cpu")
        return {key: from_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(from_plain(item) for item in value)
    return value


def plain_config(config):
    """The final config dict of a RecBole ``Config`` (or a dict) as plain data."""
    values = getattr(config, "final_config_dict", config)
    return to_plain(dict(values))


def config_from_checkpoint(checkpoint):
    """A ``recbole_crs.config.Config`` from a checkpoint's ``config`` (a Config object or our plain dict)."""
    from recbole_crs.config import Config
    from recbole_crs.utils import get_model

    saved = checkpoint["config"]
    if not isinstance(saved, dict):
        return saved  # RecBole's own format: a pickled Config
    values = from_plain(saved)
    config = Config.__new__(Config)
    config.final_config_dict = values
    config.model, config.dataset = values["model"], values["dataset"]
    config.model_class = get_model(values["model"])
    config.parameters = {key: list(names) for key, names in (checkpoint.get("config_parameters") or {}).items()}
    config.internal_config_dict, config.external_config_dict = {}, {}
    config.file_config_dict, config.variable_config_dict, config.cmd_config_dict = {}, {}, {}
    config.compatibility_settings()
    return config
