"""The built-in datasets: RecBole's bundled ml-100k with simulated conversations, in two regimes.

:func:`ensure_builtin` builds one offline from the copy of ml-100k inside the installed ``recbole`` package
(genres = attributes, fixed seed), so the plugin works out of the box with no download:

* ``ml-100k-crs`` (the default dataset): ``--conversations all``, every interaction has a conversation;
* ``ml-100k-crs-targets``: ``--conversations targets``, the paper's regime: conversations on the evaluated
  rows and on the last training row of every training user only, every other row a plain interaction;
* ``ml-100k-crs-targets-<X>``: the same with ``--train-conversations X``: a fraction (``-0.05``: 5% of the
  training users, written with a decimal point) or a count (``-50``: 50 users). The users are nested across X.

All of them share ``properties/dataset/ml-100k-crs.yaml`` (:func:`builtin_base`), and the evaluated rows and
their conversations are the same in every one. The result is byte-identical on every machine with the same
recbole copy. Files built by an older version of the plugin (another :data:`BUILD_VERSION`) are rebuilt.
"""

import logging
import os
import re
import time

import recbole

from recbole_crs.artifacts import manifest_problems
from recbole_crs.data.convert import (
    ALL_CONVERSATIONS,
    TARGET_CONVERSATIONS,
    convert_recbole,
    parse_train_conversations,
)
from recbole_crs.data.simulator import DEFAULT_MAX_TURNS, DEFAULT_REC_LIST_SIZE, DEFAULT_SEED
from recbole_crs.errors import ConversionError
from recbole_crs.runtime import atomic_write_text, clean_stale_temporaries

ML100K_CRS = "ml-100k-crs"
ML100K_CRS_TARGETS = "ml-100k-crs-targets"
# The default dataset of every entry point: the paper's regime (few conversations, every history), where the
# default pipeline also fits the 10-minute CPU budget (docs/method.md, "Figures").
DEFAULT_DATASET = ML100K_CRS_TARGETS
# Built-in name -> options of convert_recbole (on top of the ml-100k source, genres and the default seed).
BUILTIN_DATASETS = {
    ML100K_CRS: {"conversations": ALL_CONVERSATIONS},
    ML100K_CRS_TARGETS: {"conversations": TARGET_CONVERSATIONS, "train_conversations": None},
}
# ml-100k-crs-targets-<X>: X = --train-conversations, a fraction (0.05) or a count (50) of training users.
_TARGETS_FRACTION = re.compile(re.escape(ML100K_CRS_TARGETS) + r"-(?P<x>[0-9][0-9.eE+-]*)")
# The ml-100k copy shipped inside the recbole package, and its genre field.
RECBOLE_ML100K = "ml-100k"
ML100K_ATTRIBUTE_FIELD = "class"
# What a built folder was built by: bump whenever the same name would now be built into other bytes, so that
# folders built before are rebuilt, not silently reused. 2: the simulator's popularity counts training rows only.
BUILD_VERSION = "2"
BUILD_VERSION_FILE = ".build-version"

logger = logging.getLogger(__name__)


def recbole_dataset_example_path():
    """Folder of the datasets bundled with the installed recbole package (holds ``ml-100k/``)."""
    return os.path.join(os.path.dirname(recbole.__file__), "dataset_example")


def builtin_options(name):
    """The ``convert_recbole`` options of built-in dataset ``name``, or None if it is not a built-in name.

    A name of the form ``ml-100k-crs-targets-<X>`` whose X is no valid ``--train-conversations`` value
    raises :class:`ConversionError` rather than being mistaken for a dataset of one's own.
    """
    if not isinstance(name, str):
        return None
    if name in BUILTIN_DATASETS:
        return dict(BUILTIN_DATASETS[name])
    match = _TARGETS_FRACTION.fullmatch(name)
    if match is None:
        return None
    try:
        value = parse_train_conversations(match.group("x"))
    except ConversionError as error:
        raise ConversionError(
            f"dataset '{name}': {error} ({ML100K_CRS_TARGETS}-<X>, e.g. {ML100K_CRS_TARGETS}-0.05 for 5% of the "
            f"training users or {ML100K_CRS_TARGETS}-50 for 50 users)"
        ) from None
    return {"conversations": TARGET_CONVERSATIONS, "train_conversations": value}


def is_builtin(name):
    """Whether ``name`` is a built-in dataset that :func:`ensure_builtin` builds on first use."""
    return builtin_options(name) is not None


def builtin_base(name):
    """The built-in dataset whose ``properties/dataset/<base>.yaml`` ``name`` uses (None if not built-in)."""
    return ML100K_CRS if is_builtin(name) else None


def builtin_files(name, data_path):
    """Paths of ``<data_path>/<name>/<name>.{inter,item}``."""
    folder = os.path.join(data_path, name)
    return [os.path.join(folder, f"{name}.{suffix}") for suffix in ("inter", "item")]


def _is_current(name, data_path):
    """Both files exist, match their manifest, and were built by this :data:`BUILD_VERSION`.

    Files built by an older version (e.g. before ``confirmed_turns``/``rejected_turns``, or with the simulator's
    popularity counted over held-out rows) are rebuilt; the build is deterministic, so a rebuild gives the same
    bytes everywhere.
    """
    folder = os.path.join(data_path, name)
    inter_path, item_path = builtin_files(name, data_path)
    if not (os.path.isfile(inter_path) and os.path.isfile(item_path)):
        return False
    if manifest_problems(folder, name):
        logger.info("rebuilding %s: its files do not match its manifest (an interrupted build)", name)
        return False
    try:
        with open(os.path.join(folder, BUILD_VERSION_FILE), encoding="utf-8") as handle:
            built_by = handle.read().strip()
    except FileNotFoundError:
        built_by = None
    if built_by != BUILD_VERSION:
        logger.info("rebuilding %s: built by an older version of recbole-crs (build %s, now %s)",
                    folder, built_by or "1", BUILD_VERSION)
        return False
    return True


def ensure_ml100k_crs(data_path, force=False):
    """Build the default dataset ``<data_path>/ml-100k-crs/`` on first use (see :func:`ensure_builtin`)."""
    return ensure_builtin(ML100K_CRS, data_path, force=force)


def ensure_builtin(name, data_path, force=False):
    """Build ``<data_path>/<name>/`` unless both of its atomic files exist in the current format.

    ``name`` is a built-in name (:func:`builtin_options`). Returns that folder. Files with an outdated
    ``.inter`` header (written by an older version) are rebuilt. The converter writes every file to a temporary
    name and renames it into place after the manifest (:func:`recbole_crs.data.convert.writing.publish_dataset`),
    so a concurrent or interrupted build never leaves a partial file under the final name. ``force`` rebuilds
    even if the files exist.
    """
    options = builtin_options(name)
    if options is None:
        raise ValueError(
            f"'{name}' is not a built-in dataset; built-in: {', '.join(BUILTIN_DATASETS)} and "
            f"{ML100K_CRS_TARGETS}-<X> (X a fraction such as 0.05 or a count of training users)."
        )
    folder = os.path.join(data_path, name)
    clean_stale_temporaries(folder)  # of builds killed mid-write, even when the files are current
    if not force and _is_current(name, data_path):
        return folder
    source = recbole_dataset_example_path()
    if not os.path.isfile(os.path.join(source, RECBOLE_ML100K, f"{RECBOLE_ML100K}.inter")):
        raise FileNotFoundError(
            f"recbole's bundled ml-100k is missing from '{source}'; reinstall recbole==1.2.1, or convert "
            "another dataset with `python -m recbole_crs.data.convert` and point `dataset` at it."
        )
    started = time.perf_counter()
    # The converter publishes the files as a whole (writing.publish_dataset): temporaries next to them, the
    # manifest, then the renames; an interruption leaves files that differ from the manifest, which the next use
    # rebuilds and CRSDataset refuses. Concurrent builds write the same bytes.
    report = convert_recbole(
        source,
        RECBOLE_ML100K,
        ML100K_ATTRIBUTE_FIELD,
        folder,
        name=name,
        seed=DEFAULT_SEED,
        max_turns=DEFAULT_MAX_TURNS,
        rec_list_size=DEFAULT_REC_LIST_SIZE,
        **options,
    )
    atomic_write_text(os.path.join(folder, BUILD_VERSION_FILE), BUILD_VERSION + "\n")
    logger.info(
        "built %s in %.1f s (%d interactions, %d with a conversation, %d items, %d genres)",
        folder,
        time.perf_counter() - started,
        sum(report.rows.values()),
        sum(report.conversation_rows.values()),
        report.items,
        report.attributes,
    )
    return folder
