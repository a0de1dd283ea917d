"""What a checkpoint was trained on: the meaning of its item ids and the bytes of its atomic files.

:func:`dataset_fingerprint` = dataset name, a hash of the item tokens in id order (what an item id means) and a
hash of the atomic files (what the model was trained on). Every checkpoint we write stores it under
``crs_fingerprint``; :func:`check_item_fingerprint` and :func:`check_data_fingerprint` refuse a checkpoint whose
ids or data differ, before any model is built.
"""

import hashlib
import json
import os
from logging import getLogger

from recbole_crs.errors import CheckpointMismatchError

FINGERPRINT_KEY = "crs_fingerprint"
# Files of a RecBole atomic dataset (plus config['additional_feat_suffix']).
ATOMIC_SUFFIXES = ("inter", "item", "user", "kg", "link", "net")


def sha256_of_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dataset_files(config):
    """``[(file name, path)]`` of the atomic files of ``config['dataset']`` that exist."""
    folder = config["data_path"]
    token = config["dataset"]
    suffixes = list(ATOMIC_SUFFIXES) + list(config["additional_feat_suffix"] or [])
    files = []
    for suffix in suffixes:
        name = f"{token}.{suffix}"
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            files.append((name, path))
    return files


def file_digests(config):
    """``{file name: {"size": bytes, "sha256": hex}}`` of the dataset's atomic files."""
    return {name: {"size": os.path.getsize(path), "sha256": sha256_of_file(path)} for name, path in dataset_files(config)}


def data_fingerprint_of(digests):
    text = json.dumps({name: digest["sha256"] for name, digest in sorted(digests.items())}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def item_fingerprint(dataset):
    """Hash of the item tokens in id order: two datasets agree on what every item id means iff it is equal."""
    tokens = dataset.field2id_token[dataset.iid_field]
    return hashlib.sha256("\n".join(map(str, tokens)).encode("utf-8")).hexdigest()[:32]


def dataset_fingerprint(dataset):
    """``{"dataset", "n_items", "items", "data"}`` of a loaded dataset (``data`` from the files it was read from).

    CRSDataset records its files' digests while loading (``_crs_file_digests``); other datasets are hashed
    from their files now.
    """
    digests = getattr(dataset, "_crs_file_digests", None)
    if digests is None:
        try:
            digests = file_digests(dataset.config)
        except OSError:
            digests = {}
    return {
        "dataset": dataset.dataset_name,
        "n_items": int(dataset.item_num),
        "items": item_fingerprint(dataset),
        "data": data_fingerprint_of(digests) if digests else None,
    }


def dataset_items(dataset):
    """``{"dataset", "n_items", "items"}``: what :func:`check_item_fingerprint` compares (cheap to keep)."""
    return {"dataset": dataset.dataset_name, "n_items": int(dataset.item_num), "items": item_fingerprint(dataset)}


def check_item_fingerprint(checkpoint, dataset, source, what="checkpoint"):
    """Refuse ``checkpoint`` if its item ids mean other items in ``dataset`` (same name and count included).

    ``dataset``: a dataset or its :func:`dataset_items`. A checkpoint without a fingerprint (plain RecBole)
    cannot be checked: a warning says so.
    """
    saved = checkpoint.get(FINGERPRINT_KEY) if isinstance(checkpoint, dict) else None
    if not saved or not saved.get("items"):
        getLogger().warning(
            f"{what} '{source}' carries no item-id fingerprint (not written by recbole-crs): cannot verify that its "
            "item ids mean the same items as in this dataset."
        )
        return
    own = dataset if isinstance(dataset, dict) else dataset_items(dataset)
    if saved["items"] != own["items"]:
        raise CheckpointMismatchError(
            f"{what} '{source}' was trained on other item ids than dataset '{own['dataset']}' has now "
            f"(item-id fingerprint {saved['items'][:12]} != {own['items'][:12]}, {saved.get('n_items')} vs "
            f"{own['n_items']} ids): its item ids would mean different items. Retrain it on this data."
        )


def check_data_fingerprint(checkpoint, dataset, source):
    """Refuse ``checkpoint`` if the dataset's files differ from the ones it was trained on."""
    saved = checkpoint.get(FINGERPRINT_KEY) if isinstance(checkpoint, dict) else None
    if not saved or not saved.get("data"):
        getLogger().warning(f"checkpoint '{source}' carries no data fingerprint: cannot verify it matches this data.")
        return
    check_item_fingerprint(checkpoint, dataset, source)
    own = dataset_fingerprint(dataset)["data"]
    if own != saved["data"]:
        raise CheckpointMismatchError(
            f"checkpoint '{source}' was trained on other contents of dataset '{dataset.dataset_name}' than its files "
            f"in '{dataset.dataset_path}' hold now (data fingerprint {saved['data'][:12]} != {str(own)[:12]}): its "
            "test rows may have been training targets. Restore the data it was trained on, or retrain."
        )
