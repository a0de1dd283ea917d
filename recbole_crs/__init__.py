"""recbole-crs: pre-trained conversational recommendation as a RecBole plugin."""

__version__ = "0.1.0"

from recbole_crs.compat import quiet_known_recbole_warnings

quiet_known_recbole_warnings()
