"""recbole-crs: pre-trained conversational recommendation as a RecBole plugin.

Importing the package installs its patches of RecBole 1.2.1 (:func:`recbole_crs.patches.install_recbole_patches`,
where each is listed with its reason): the package's one import side effect.
"""

__version__ = "0.1.0"

from recbole_crs.patches import install_recbole_patches  # noqa: E402

install_recbole_patches()
