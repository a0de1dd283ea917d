"""Every check of a run's configuration, done before anything is trained or written.

:func:`validate` is the one owner: ``quick_start`` calls it before the logger, the dataset, the dataset cache or
any checkpoint is created, so a wrong value costs seconds, not a trained stage. It checks

* unknown keys given by the user (command line, ``config_dict``, config files), with a "did you mean"
  (:mod:`~recbole_crs.validation.known_keys`);
* the type and range of every plugin key and of the RecBole keys every run uses (the rules of
  :mod:`recbole_crs.settings.key_rules`), and the combinations (``crs_stages`` with ``pretrained_path`` / a
  generator, ``valid_metric`` among the computed metrics, ``hidden_size`` a multiple of ``n_heads``:
  :mod:`~recbole_crs.validation.values`);
* the file system (:mod:`~recbole_crs.validation.filesystem`): ``data_path`` readable, ``checkpoint_dir``
  writable (created if missing), the checkpoint files named by ``generator_path`` / ``pretrained_path`` present.

The multi-process options are checked by :mod:`recbole_crs.settings.launch` (the launcher before any process
starts, ``Config`` in each process). Each problem is one line naming the key, the problem and the fix; all of them
are raised together as one :class:`~recbole_crs.errors.CRSConfigError`. The run plan that validation checks is
then read by the pipeline and the trainers (:mod:`recbole_crs.run_plan`).
"""

from recbole_crs.errors import CRSConfigError
from recbole_crs.validation.filesystem import filesystem_errors
from recbole_crs.validation.known_keys import unknown_key_errors
from recbole_crs.validation.values import value_error, value_errors

__all__ = ["filesystem_errors", "unknown_key_errors", "validate", "value_error", "value_errors"]


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
