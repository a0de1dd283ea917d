"""Patches recbole 1.2.1 needs on the pinned libraries (installed by ``recbole_crs/__init__``)."""

import warnings

import torch


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
