"""What every trial runs, and the check that runs once before the first trial.

* :class:`TrialObjective`: ``quick_start.objective_function`` on the search's fixed config plus one trial's
  searched values, with ``sys.argv`` emptied (:func:`recbole_crs.runtime.isolated_argv`): RecBole's ``Config``
  reads ``--key=value`` from the command line and must not see the search's own options (``--algo=...``) nor,
  in Ray workers, Ray's. Both backends call it: HyperTuning as its objective, Ray inside each worker.
* :func:`check_config`: build and validate the config once, with a sample of every searched value, so that a
  wrong model, dataset, file, key or value fails before any trial (``run_hyper.py`` then exits 2).
"""

from recbole_crs import quick_start
from recbole_crs.errors import CRSConfigError
from recbole_crs.runtime import isolated_argv
from recbole_crs.tuning.params import edge_values, sample_value
from recbole_crs.validation import validate, value_error


class TrialObjective:
    """The objective ``HyperTuning`` calls: ``objective_function`` on the fixed config plus one trial's params."""

    def __init__(self, fixed, saved=True):
        self.fixed = dict(fixed)
        self.saved = saved

    def __call__(self, config_dict=None, config_file_list=None):
        merged = {**self.fixed, **(config_dict or {})}
        with isolated_argv():
            return quick_start.objective_function(merged, config_file_list, saved=self.saved)


def search_space_errors(params, config):
    """One line per searched value that breaks its key's rule (every choice, both bounds of a range)."""
    errors = []
    for p in params:
        for value in edge_values(p):
            message = value_error(config, p.name, value)
            if message:
                errors.append(f"params file: {message}")
    return errors


def check_config(fixed, config_file_list, params=None, saved=False):
    """Build and validate the config once before any trial: fails fast on a wrong model, dataset, file, key
    or value (and, with ``params``, on a searched name or value), and gives the values Ray needs (metric
    direction, absolute data path). ``saved``: trials write checkpoints, so ``checkpoint_dir`` must be
    writable (it is created)."""
    config_dict = dict(fixed)
    for p in params or []:
        config_dict[p.name] = sample_value(p)
    with isolated_argv():
        config = quick_start.build_config(config_dict=config_dict, config_file_list=config_file_list)
    validate(config, saved=saved)
    errors = search_space_errors(params or [], config)
    if errors:
        raise CRSConfigError(errors)
    return config
