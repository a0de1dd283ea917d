"""Files this plugin writes and reads back: checkpoints, caches, converted datasets.

One module per job, re-exported here:

* :mod:`.checkpoints`: reading a checkpoint (the one place, refusing unsafe pickles) and writing one as plain
  data (``torch.load(weights_only=True)``), atomically;
* :mod:`.fingerprints`: what a checkpoint was trained on (item ids, data files), checked before loading;
* :mod:`.manifest`: size and sha256 of a converted dataset's files, so a half-written conversion is refused;
* :mod:`.caches`: RecBole's dataset/dataloader caches, read only from paths the user named.

Atomic writes and per-run names are :mod:`recbole_crs.runtime`'s.
"""

from recbole_crs.artifacts.caches import (
    atomic_pickle_dump,
    safe_create_dataset,
    safe_load_split_dataloaders,
    safe_save_dataset,
    safe_save_split_dataloaders,
)
from recbole_crs.artifacts.checkpoints import (
    atomic_torch_save,
    from_plain,
    load_checkpoint,
    plain_config,
    to_plain,
    trusted_torch_load,
)
from recbole_crs.artifacts.fingerprints import (
    ATOMIC_SUFFIXES,
    FINGERPRINT_KEY,
    check_data_fingerprint,
    check_item_fingerprint,
    data_fingerprint_of,
    dataset_files,
    dataset_fingerprint,
    dataset_items,
    file_digests,
    item_fingerprint,
    sha256_of_file,
)
from recbole_crs.artifacts.manifest import MANIFEST_SUFFIX, manifest_path, manifest_problems

__all__ = [
    "atomic_pickle_dump",
    "safe_create_dataset",
    "safe_load_split_dataloaders",
    "safe_save_dataset",
    "safe_save_split_dataloaders",
    "atomic_torch_save",
    "from_plain",
    "load_checkpoint",
    "plain_config",
    "to_plain",
    "trusted_torch_load",
    "ATOMIC_SUFFIXES",
    "FINGERPRINT_KEY",
    "check_data_fingerprint",
    "check_item_fingerprint",
    "data_fingerprint_of",
    "dataset_files",
    "dataset_fingerprint",
    "dataset_items",
    "file_digests",
    "item_fingerprint",
    "sha256_of_file",
    "MANIFEST_SUFFIX",
    "manifest_path",
    "manifest_problems",
]
