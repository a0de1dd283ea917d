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

import torch

_original_torch_load = torch.load


def load_checkpoint(path, map_location="cpu"):
    """Load a RecBole/recbole-crs checkpoint (a trusted pickle) with a clear error if it is missing."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Checkpoint '{path}' does not exist. Pass the path of a .pth file written by a previous run "
            "(RecBole writes them to `checkpoint_dir`, default ./saved/)."
        )
    try:
        return _original_torch_load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # pickle/zip errors have unhelpful messages on their own
        raise ValueError(
            f"Could not read checkpoint '{path}': {error}. The file is not a checkpoint written by "
            "RecBole or recbole-crs, or it is truncated."
        ) from error


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
    import warnings

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
