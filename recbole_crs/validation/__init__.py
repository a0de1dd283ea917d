"""Every check of a run's configuration, done before anything is trained or written.

:func:`validate` is the one owner: ``quick_start`` calls it before the logger, the dataset, the dataset cache or
any checkpoint is created, so a wrong value costs seconds, not a trained stage. It checks

* unknown keys given by the user (command line, ``config_dict``, config files), with a "did you mean"
  (:mod:`~recbole_crs.validation.keys`);
* the type and range of every plugin key and of the RecBole keys every run uses (:data:`GENERAL_RULES`,
  :data:`PLUGIN_MODEL_RULES` in :mod:`~recbole_crs.validation.key_rules`, written in the rule language of
  :mod:`~recbole_crs.validation.rules`), and the combinations (``crs_stages`` with ``pretrained_path`` / a
  generator, ``valid_metric`` among the computed metrics, ``hidden_size`` a multiple of ``n_heads``:
  :mod:`~recbole_crs.validation.values`);
* the multi-process options (:func:`check_launch`, :func:`check_distributed` in
  :mod:`~recbole_crs.validation.distributed`): ``nproc``, ``world_size``, ``ip``, ``port``, ``group_offset`` of
  the launcher (``run_recbole_crs.py --nproc``, ``quick_start.run``), the keys it hands each process, and one GPU
  per process when they run on CUDA;
* the file system (:mod:`~recbole_crs.validation.filesystem`): ``data_path`` readable, ``checkpoint_dir``
  writable (created if missing), the checkpoint files named by ``generator_path`` / ``pretrained_path`` present.

Each problem is one line naming the key, the problem and the fix; all of them are raised together as one
:class:`~recbole_crs.errors.CRSConfigError`. Models and trainers reuse :func:`check_keys` for their own keys, so
a rule exists once.
"""

from recbole_crs.errors import CRSConfigError
from recbole_crs.validation.distributed import (
    LAUNCHED_KEYS, LAUNCHER_OPTIONS, check_distributed, check_launch, gpu_errors,
)
from recbole_crs.validation.filesystem import filesystem_errors
from recbole_crs.validation.key_rules import GENERAL_RULES, PLUGIN_MODEL_RULES, REMOVED_KEYS, check_keys
from recbole_crs.validation.keys import known_keys, recbole_keys, unknown_key_errors, user_keys
from recbole_crs.validation.rules import Rule
from recbole_crs.validation.values import value_error, value_errors

__all__ = [
    "GENERAL_RULES", "LAUNCHED_KEYS", "LAUNCHER_OPTIONS", "PLUGIN_MODEL_RULES", "REMOVED_KEYS", "Rule",
    "check_distributed", "check_keys", "check_launch", "filesystem_errors", "gpu_errors", "known_keys",
    "recbole_keys", "unknown_key_errors", "user_keys", "validate", "value_error", "value_errors",
]


def validate(config, saved=True):
    """Check ``config`` (a built :class:`recbole_crs.config.Config`) before the run writes or trains anything.

    ``saved``: the run writes checkpoints (then ``checkpoint_dir`` must be writable; it is created).
    Raises :class:`CRSConfigError` with one line per problem.
    """
    errors = unknown_key_errors(config) + value_errors(config)
    if errors:  # nothing is created on disk for a config that is wrong anyway
        raise CRSConfigError(errors)
    errors = filesystem_errors(config, saved=saved)
    if errors:
        raise CRSConfigError(errors)
    return config
