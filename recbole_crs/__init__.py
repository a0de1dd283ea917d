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
