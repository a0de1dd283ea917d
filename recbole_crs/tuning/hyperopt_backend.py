"""``--tool Hyperopt``: RecBole's ``HyperTuning``, trials one after another in this process.

Used as RecBole's own ``run_hyper.py`` uses it: constructor, ``run()``, then ``best_params`` and
``params2result[params2str(best_params)]`` for the best trial. One method is overridden, in a subclass
(:class:`RecordingHyperTuning`), not by patching an instance, for two things ``HyperTuning`` does not do:

* a record of every trial in the order it ran, with its searched values as a dict, including failed ones
  (``params2result`` is keyed by a string and holds only the trials that finished);
* a failed trial after the first is recorded and the search goes on (``HyperTuning.trial`` lets the error end
  the search). The first trial's error is raised: it is most likely not about the searched values (the data,
  the model, the config files).

The override calls ``HyperTuning.trial`` unchanged for every trial, so its printing, best-score bookkeeping and
returned loss stay RecBole's. Argument isolation is not part of it: the objective
(:class:`recbole_crs.tuning.objective.TrialObjective`) runs each trial with ``sys.argv`` emptied.
"""

import sys

from recbole.trainer import HyperTuning

from recbole_crs.tuning.objective import TrialObjective
from recbole_crs.tuning.results import params2str


def hyperopt_space(params):
    """The hyperopt space RecBole's ``HyperTuning`` searches (``space=`` argument)."""
    # hyperopt only when a Hyperopt search runs (~0.15 s and a pkg_resources warning): not for --help or Ray
    from hyperopt import hp
    from hyperopt.pyll import scope

    space = {}
    for p in params:
        if p.kind == "choice":
            space[p.name] = hp.choice(p.name, list(p.values))
        elif p.kind == "uniform":
            space[p.name] = hp.uniform(p.name, *p.values)
        elif p.kind == "loguniform":
            space[p.name] = hp.loguniform(p.name, *p.values)
        else:
            node = hp.quniform(p.name, *p.values)
            space[p.name] = scope.int(node) if p.is_integer_grid else node
    return space


class RecordingHyperTuning(HyperTuning):
    """``HyperTuning`` that records every trial (``trial_records``) and survives a failed trial after the first.

    ``trial_records``: ``[(params, result), ...]`` in the order the trials ran; ``result`` is the objective's
    dict, or ``{"error": "<type>: <message>"}`` for a failed trial (see :mod:`recbole_crs.tuning.results`).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.trial_records = []

    def trial(self, params):
        """``HyperTuning.trial``, recorded; a failure after the first trial returns hyperopt's ``STATUS_FAIL``."""
        import hyperopt  # not at the top: see hyperopt_space

        try:
            status = super().trial(params)
        except Exception as error:
            if not self.trial_records:
                raise
            message = f"{type(error).__name__}: {error}"
            print(f"trial {params2str(params)} failed: {message}", file=sys.stderr)
            self.trial_records.append((dict(params), {"error": message}))
            return {"loss": float("inf"), "status": hyperopt.STATUS_FAIL}
        self.trial_records.append((dict(params), self.params2result[self.params2str(params)]))
        return status

    def best_record(self):
        """``(params, result)`` of the best trial, or ``None`` when no trial finished."""
        if self.best_params is None:
            return None
        return dict(self.best_params), self.params2result[self.params2str(self.best_params)]


def hyperopt_tune(params, algo, fixed, config_file_list, max_evals=10, early_stop=10, saved=True):
    """Run the search with RecBole's ``HyperTuning``; returns ``(trials, best, hp)`` (see
    :mod:`recbole_crs.tuning.results`)."""
    hp = RecordingHyperTuning(
        TrialObjective(fixed, saved=saved),
        space=hyperopt_space(params),
        fixed_config_file_list=config_file_list,
        algo=algo,
        max_evals=max_evals,
        early_stop=early_stop,
    )
    hp.run()
    return hp.trial_records, hp.best_record(), hp
