"""Checkpoint files: the one place the plugin reads a checkpoint, and how it writes one as plain data.

Reading (:func:`load_checkpoint`): torch >= 2.6 loads with ``weights_only=True`` by default, and RecBole pickles
its ``Config`` object into every checkpoint, so weights-only loading rejects RecBole's own files. That default is
NOT flipped for the whole process (every ``torch.load`` of the program could then run pickled code); instead
:func:`load_checkpoint` reads our plain-data checkpoints weights-only and RecBole's with an unpickler restricted to
the classes such files reference, and :func:`trusted_torch_load` lets RecBole code that calls ``torch.load``
itself (S3Rec loads ``pre_model_path`` in its constructor) read a file the user chose, inside a ``with`` block.
A checkpoint is a pickle: loading one can run code it contains. Load only checkpoints you produced or obtained
from someone you trust, as with RecBole before torch 2.6.

Writing: :func:`plain_config` turns RecBole's ``Config`` into builtins (enums and devices tagged, :func:`to_plain`;
:func:`from_plain` restores them), so our checkpoints load with ``weights_only=True``; :func:`atomic_torch_save`
writes through :func:`recbole_crs.runtime.atomic_write` (:func:`checked_atomic_write`: a disk that refuses the file
is one :class:`~recbole_crs.errors.OutputError`). Rebuilding a ``Config`` from a checkpoint is
``recbole_crs.config.Config.from_checkpoint``'s job: this module reads and writes plain data only.
"""

import contextlib
import enum
import functools
import os
import pickle
import types
import warnings
import zipfile

import numpy as np
import torch
from recbole.utils.enum_type import EvaluatorType, FeatureSource, FeatureType, InputType, ModelType

from recbole_crs.errors import CheckpointError, MissingCheckpointError, OutputError, UnsafeCheckpointError
from recbole_crs.runtime import atomic_write

_original_torch_load = torch.load


def load_checkpoint(path, map_location="cpu"):
    """Load a checkpoint the user named or this run wrote, with a clear error if it is missing or foreign.

    1. The file must be a zip-format torch checkpoint (what ``torch.save`` writes): a raw pickle is refused
       unread.
    2. Our own checkpoints hold only plain data and tensors: they load with ``weights_only=True``.
    3. RecBole's format (a pickled ``Config`` inside) falls back to a full unpickling restricted to the classes
       and functions such checkpoints reference (:class:`_CheckpointUnpickler`); any other global (``os.system``,
       ``subprocess``, ``eval``...) is refused before it is called.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingCheckpointError(
            f"Checkpoint '{path}' does not exist. Pass the path of a .pth file written by a previous run "
            "(RecBole writes them to `checkpoint_dir`, default ./saved/)."
        )
    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint '{path}': {error.strerror or error}.") from error
    if not is_zip:
        raise CheckpointError(
            f"'{path}' is not a checkpoint: it is not a zip-format file written by torch.save (a truncated "
            "file or a raw pickle). Pass a .pth file written by RecBole or recbole-crs."
        )
    try:
        with warnings.catch_warnings():  # torch warns about RecBole's protocol-4 pickles before refusing them
            warnings.simplefilter("ignore", UserWarning)
            return _original_torch_load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        pass  # RecBole's format: a pickled Config; read below with the restricted unpickler
    except Exception as error:
        raise _unreadable(path, error) from error
    try:
        return _original_torch_load(
            path, map_location=map_location, weights_only=False, pickle_module=_restricted_pickle_module
        )
    except UnsafeCheckpointError as error:
        raise UnsafeCheckpointError(f"Refusing checkpoint '{path}': {error}") from None
    except Exception as error:  # pickle/zip errors have unhelpful messages on their own
        raise _unreadable(path, error) from error


def _unreadable(path, error):
    reason = " ".join(str(error).split())  # one line: torch's and pickle's messages may span several
    return CheckpointError(
        f"Could not read checkpoint '{path}': {reason}. The file is not a checkpoint written by RecBole or "
        "recbole-crs, or it is truncated."
    )


# (module, name) a RecBole checkpoint may reference besides classes of recbole / recbole_crs / yaml.loader.
_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
    ("builtins", "complex"),
    ("builtins", "bytearray"),
    ("builtins", "bytes"),
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
    ("_codecs", "encode"),
    ("torch", "device"),
    ("torch", "Size"),
    ("torch", "Generator"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._utils", "_rebuild_device_tensor_from_numpy"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch.nn.parameter", "Parameter"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("datetime", "datetime"),
    ("logging", "getLogger"),  # a pickled Logger (e.g. inside a model layer) is re-fetched by name
}
# Classes only (e.g. a model's `other_parameter` may hold an nn.Module such as SASRecF's feature layer).
_CLASS_MODULE_PREFIXES = ("recbole.", "recbole_crs.", "yaml.loader", "numpy.dtypes", "enum", "torch.nn.modules.")
# Protocol-2 pickles name Python 2 modules; pickle maps them to Python 3 ones.
_PYTHON2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class _CheckpointUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        module = _PYTHON2_MODULES.get(module, module)
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return super().find_class(module, name)
        if module.startswith(_CLASS_MODULE_PREFIXES) or module in ("recbole", "recbole_crs", "yaml"):
            found = super().find_class(module, name)
            if isinstance(found, type):  # classes only: a RecBole checkpoint holds no function references
                return found
        raise UnsafeCheckpointError(
            f"it references {module}.{name}, which no RecBole or recbole-crs checkpoint needs (a pickle can "
            "run code when loaded). It was not loaded. Use a checkpoint written by RecBole or recbole-crs."
        )


_restricted_pickle_module = types.SimpleNamespace(
    Unpickler=_CheckpointUnpickler, load=pickle.load, loads=pickle.loads, __name__="pickle"
)


@contextlib.contextmanager
def trusted_torch_load():
    """Within this block, ``torch.load`` reads full pickles (``weights_only=False``) unless told otherwise.

    Use it only around RecBole code that loads a checkpoint path the user chose.
    """
    torch.load = functools.partial(_original_torch_load, weights_only=False)
    try:
        yield
    finally:
        torch.load = _original_torch_load


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
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
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
