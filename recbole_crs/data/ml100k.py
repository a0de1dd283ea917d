"""The default dataset, ``ml-100k-crs``: RecBole's bundled ml-100k with simulated conversations.

:func:`ensure_ml100k_crs` builds it offline from the copy of ml-100k inside the installed ``recbole`` package
(genres = attributes, one simulated conversation per interaction, fixed seed), so the plugin works out of
the box with no download. The result is byte-identical on every machine with the same recbole copy. Files
left by an older version of the plugin (another ``.inter`` header, e.g. without the turn columns) are rebuilt.
"""

import logging
import os
import shutil
import tempfile
import time

import recbole

from recbole_crs.data.convert import convert_recbole, inter_header
from recbole_crs.data.simulator import DEFAULT_MAX_TURNS, DEFAULT_REC_LIST_SIZE, DEFAULT_SEED

ML100K_CRS = "ml-100k-crs"
# The ml-100k copy shipped inside the recbole package, and its genre field.
RECBOLE_ML100K = "ml-100k"
ML100K_ATTRIBUTE_FIELD = "class"

logger = logging.getLogger(__name__)


def recbole_dataset_example_path():
    """Folder of the datasets bundled with the installed recbole package (holds ``ml-100k/``)."""
    return os.path.join(os.path.dirname(recbole.__file__), "dataset_example")


def ml100k_crs_files(data_path):
    """Paths of ``<data_path>/ml-100k-crs/ml-100k-crs.{inter,item}``."""
    folder = os.path.join(data_path, ML100K_CRS)
    return [os.path.join(folder, f"{ML100K_CRS}.{suffix}") for suffix in ("inter", "item")]


def _is_current(data_path):
    """Both files exist and the ``.inter`` header is the one this version writes.

    Files written by an older version (e.g. before ``confirmed_turns``/``rejected_turns``) have another
    header and are rebuilt; the build is deterministic, so a rebuild gives the same bytes everywhere.
    """
    inter_path, item_path = ml100k_crs_files(data_path)
    if not (os.path.isfile(inter_path) and os.path.isfile(item_path)):
        return False
    with open(inter_path, encoding="utf-8", newline="") as handle:
        first_line = handle.readline()
    return first_line == "\t".join(inter_header(with_split=False, with_candidates=False)) + "\n"


def ensure_ml100k_crs(data_path, force=False):
    """Build ``<data_path>/ml-100k-crs/`` unless both of its atomic files exist in the current format.

    Returns that folder. Files with an outdated ``.inter`` header (written by an older version) are rebuilt.
    The files are built in a temporary folder next to the target and moved into place with ``os.replace``
    (``.item`` first, then ``.inter``), so a concurrent or interrupted build never leaves a partial file under
    the final name. ``force`` rebuilds even if the files exist.
    """
    folder = os.path.join(data_path, ML100K_CRS)
    if not force and _is_current(data_path):
        return folder
    if not force and os.path.isfile(ml100k_crs_files(data_path)[0]):
        logger.info("rebuilding %s: its .inter header is from an older version of recbole-crs", folder)
    source = recbole_dataset_example_path()
    if not os.path.isfile(os.path.join(source, RECBOLE_ML100K, f"{RECBOLE_ML100K}.inter")):
        raise FileNotFoundError(
            f"recbole's bundled ml-100k is missing from '{source}'; reinstall recbole==1.2.1, or convert "
            "another dataset with `python -m recbole_crs.data.convert` and point `dataset` at it."
        )
    started = time.perf_counter()
    os.makedirs(folder, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{ML100K_CRS}-build-", dir=folder)
    try:
        report = convert_recbole(
            source,
            RECBOLE_ML100K,
            ML100K_ATTRIBUTE_FIELD,
            staging,
            name=ML100K_CRS,
            seed=DEFAULT_SEED,
            max_turns=DEFAULT_MAX_TURNS,
            rec_list_size=DEFAULT_REC_LIST_SIZE,
        )
        # .item before .inter: whoever sees the final .inter also finds its .item.
        for suffix in ("item", "inter"):
            file_name = f"{ML100K_CRS}.{suffix}"
            os.replace(os.path.join(staging, file_name), os.path.join(folder, file_name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info(
        "built %s in %.1f s (%d interactions, %d items, %d genres)",
        folder,
        time.perf_counter() - started,
        sum(report.rows.values()),
        report.items,
        report.attributes,
    )
    return folder
