"""Everything recbole 1.2.1 needs to run on the library versions this plugin pins, in one place.

Most breakages are fixed by pins in ``setup.py`` (numpy<2, pandas<3, scipy<1.13, setuptools<81,
hyperopt==0.2.5). The one that needs code is checkpoint loading:

torch >= 2.6 defaults ``torch.load(weights_only=True)``. RecBole pickles its ``Config`` object into every
checkpoint, so weights-only loading rejects RecBole's own files. We do NOT flip that default for the whole
process (that would make every ``torch.load`` in the program able to run arbitrary pickled code).
Instead:

* :func:`load_checkpoint` is the single place where the plugin loads a checkpoint with
  ``weights_only=False``; every caller passes a file the user asked for or that this run wrote.
* :func:`trusted_torch_load` lets a RecBole function that calls ``torch.load`` internally (e.g. S3Rec
  fine-tuning, which loads ``pre_model_path`` inside the model's constructor) read such a file; it is
  scoped to a ``with`` block and restores ``torch.load`` afterwards.

Security trade-off: a checkpoint is a pickle. Loading one can execute code it contains. Only load
checkpoints you produced or obtained from someone you trust, exactly as with RecBole before torch 2.6.
"""

import contextlib
import functools
import os
import pickle
import types
import warnings
import zipfile

import torch

from recbole_crs.errors import CheckpointError, MissingCheckpointError, UnsafeCheckpointError

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


def quiet_known_recbole_warnings():
    """Silence FutureWarnings that recbole 1.2.1 itself triggers on pandas 2.x / torch 2.x.

    They come from RecBole's own modules (chained ``fillna(inplace=True)``, ``Series.agg(len)``,
    ``torch.cuda.amp.GradScaler``), say nothing actionable to our users, and drown the training log.
    Warnings raised from any other module are untouched.
    """
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")


def disable_recbole_anomaly_detection():
    """Undo ``torch.autograd.set_detect_anomaly(True)``, which recbole 1.2.1 runs when SINE is imported.

    ``recbole/model/sequential_recommender/sine.py`` switches anomaly detection on for the whole process at
    import time, and any ``get_model`` lookup imports it. Anomaly mode checks every backward output for NaN,
    which about doubles the cost of a training step of every model (SASRec included). We import that module
    once, here, and switch the mode back off; a later import does not re-run it.
    """
    import recbole.model.sequential_recommender  # noqa: F401  (runs sine.py's module-level call)

    torch.autograd.set_detect_anomaly(False)


def restore_numpy_aliases():
    """Give NumPy >= 2 back the aliases recbole 1.2.1 reads (``np.float_``, ``np.complex_``, ``np.unicode_``).

    ``Config.compatibility_settings`` runs ``np.float = np.float_`` etc. on every Config, which raises
    AttributeError on NumPy 2. ``setup.py`` pins numpy<2; this lets the plugin also run where NumPy 2 is all
    there is (e.g. a GPU image). On NumPy 1 it does nothing.
    """
    import numpy as np

    for old, new in (("float_", "float64"), ("complex_", "complex128"), ("unicode_", "str_")):
        if old not in vars(np):
            setattr(np, old, getattr(np, new))
