"""Hyper-parameter search: one params file, RecBole's ``HyperTuning`` (hyperopt) or Ray Tune.

``run_hyper.py`` (top level, like RecBole's) is the command line; everything it does lives here, one job a
module:

* :mod:`~recbole_crs.tuning.params`: the params file (parse, check, choose the algorithm);
* :mod:`~recbole_crs.tuning.objective`: what every trial runs (with ``sys.argv`` emptied) and the config check
  before the first trial;
* :mod:`~recbole_crs.tuning.hyperopt_backend`: ``--tool Hyperopt``, RecBole's ``HyperTuning``;
* :mod:`~recbole_crs.tuning.ray_backend`: ``--tool Ray``, Ray Tune;
* :mod:`~recbole_crs.tuning.results`: the result file and the closing summary;
* :mod:`~recbole_crs.tuning.cli`: the command line (``python -m recbole_crs.tuning`` runs it too).

See docs/tuning.md.
"""

from recbole_crs.tuning.cli import main
from recbole_crs.tuning.hyperopt_backend import hyperopt_tune
from recbole_crs.tuning.objective import TrialObjective, check_config
from recbole_crs.tuning.params import SearchParam, parse_params_file, resolve_algo
from recbole_crs.tuning.ray_backend import ray_tune
from recbole_crs.tuning.results import write_result_file

__all__ = [
    "SearchParam",
    "TrialObjective",
    "check_config",
    "hyperopt_tune",
    "main",
    "parse_params_file",
    "ray_tune",
    "resolve_algo",
    "write_result_file",
]
