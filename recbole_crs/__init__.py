"""recbole-crs: pre-trained conversational recommendation as a RecBole plugin."""

__version__ = "0.1.0"

from recbole_crs.compat import (
    disable_recbole_anomaly_detection,
    quiet_known_recbole_warnings,
    restore_numpy_aliases,
)

restore_numpy_aliases()

quiet_known_recbole_warnings()
disable_recbole_anomaly_detection()

from recbole_crs.artifacts import install_safe_caches  # noqa: E402

# RecBole unpickles <checkpoint_dir>/<dataset>-for-<model>-dataloader.pth on every run if it exists: read caches
# only from files the user named (dataset_save_path / dataloaders_save_path).
install_safe_caches()
