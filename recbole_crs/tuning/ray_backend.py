"""``--tool Ray``: the same search with Ray Tune, trials in parallel worker processes.

Each trial runs :class:`recbole_crs.tuning.objective.TrialObjective` in a worker whose working folder is its
own trial folder, so the driver makes the data path and config files absolute, builds a built-in dataset once
before the trials, gives each trial its own checkpoint folder and puts this package on the workers'
``PYTHONPATH``. Trials report their scores once, at the end; :func:`ray_tune` turns Ray's trials into the
``(trials, best)`` of :mod:`recbole_crs.tuning.results`.
"""

import contextlib
import math
import os
import warnings

import torch

import recbole_crs
from recbole_crs.data.ml100k import ensure_builtin, is_builtin
from recbole_crs.tuning.objective import TrialObjective, check_config

# The folder that holds the recbole_crs package: Ray workers import it from there, installed or not.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.realpath(recbole_crs.__file__)))

# setuptools < 81 (pinned for ray 2.6.3) warns on every `import pkg_resources`, i.e. in every Ray process.
_PKG_RESOURCES_WARNING = "pkg_resources is deprecated as an API"


def ray_space(params, grid=False):
    """The Ray Tune search space; ``grid=True`` turns every choice into ``tune.grid_search`` (exhaustive)."""
    from ray import tune  # Ray (~0.8 s) only when a Ray search runs: not for --help or a Hyperopt search

    space = {}
    for p in params:
        if p.kind == "choice":
            space[p.name] = tune.grid_search(list(p.values)) if grid else tune.choice(list(p.values))
        elif p.kind == "uniform":
            space[p.name] = tune.uniform(*p.values)
        elif p.kind == "loguniform":
            low, high = p.values
            space[p.name] = tune.loguniform(math.exp(low), math.exp(high))
        elif p.is_integer_grid:
            low, high, q = (int(v) for v in p.values)
            space[p.name] = tune.qrandint(low, high, q)
        else:
            space[p.name] = tune.quniform(*p.values)
    return space


def ray_trainable(config, fixed=None, config_file_list=None, checkpoint_root="saved", saved=True):
    """One Ray Tune trial: ``objective_function`` in a worker process; reports the scores once at the end.

    Runs in the trial's own folder (Ray's working dir), so RecBole's ``log_tensorboard/`` lands there;
    checkpoints go to ``<checkpoint_root>/<trial id>`` (``checkpoint_root``: the config's ``checkpoint_dir``;
    relative means inside the trial's folder), so parallel trials never share a file: RecBole names
    checkpoints by model and second, and two trials often start in the same second.
    (Not called ``checkpoint_dir``: Ray would take that for its own deprecated checkpoint argument.)
    """
    from ray.air import session  # Ray only when a Ray search runs (as in ray_space)

    trial_fixed = dict(fixed or {})
    trial_fixed["checkpoint_dir"] = os.path.join(checkpoint_root, session.get_trial_id())
    result = TrialObjective(trial_fixed, saved=saved)(dict(config), config_file_list)
    session.report(
        {
            "best_valid_score": float(result["best_valid_score"]),
            "valid": {k: float(v) for k, v in result["best_valid_result"].items()},
            "test": {k: float(v) for k, v in result["test_result"].items()},
            "test_modes": {
                mode: {k: float(v) for k, v in r.items()} for mode, r in (result.get("test_results") or {}).items()
            },
        }
    )


def quiet_pkg_resources_warning():
    """Hide setuptools' pkg_resources deprecation warning in this process."""
    warnings.filterwarnings("ignore", message=_PKG_RESOURCES_WARNING, category=UserWarning)


@contextlib.contextmanager
def _quiet_pkg_resources_in_children():
    """Processes started in this block (Ray's raylet and its workers) skip the pkg_resources warning."""
    saved = os.environ.get("PYTHONWARNINGS")
    rule = f"ignore:{_PKG_RESOURCES_WARNING}:UserWarning"
    os.environ["PYTHONWARNINGS"] = f"{saved},{rule}" if saved else rule
    try:
        yield
    finally:
        if saved is None:
            del os.environ["PYTHONWARNINGS"]
        else:
            os.environ["PYTHONWARNINGS"] = saved


def _prepare_default_dataset(config):
    """Build a built-in dataset (ml-100k-crs, ...) on the driver, so that parallel Ray trials do not all build
    it at once."""
    if is_builtin(config["dataset"]):
        ensure_builtin(config["dataset"], os.path.dirname(os.path.normpath(config["data_path"])))


def _absolute_paths(fixed, config, config_file_list):
    """Trials run in other folders: make the data path and the config files absolute."""
    fixed = dict(fixed)
    if config["dataset"] != "ml-100k":  # RecBole points ml-100k at its bundled copy anyway
        fixed["data_path"] = os.path.abspath(os.path.dirname(os.path.normpath(config["data_path"])))
    for key in ("pre_model_path",):  # S3Rec-style fine-tuning reads a pre-trained file
        value = config.final_config_dict.get(key)
        if isinstance(value, str) and value and not os.path.isabs(value) and os.path.exists(value):
            fixed[key] = os.path.abspath(value)
    files = [os.path.abspath(f) for f in config_file_list] if config_file_list else None
    return fixed, files


def _start_ray(ray_address, ray_cpus, verbose):
    """Connect to ``ray_address`` or start a local instance, unless Ray is up already; True if started here."""
    import ray  # Ray only when a Ray search runs (as in ray_space)

    if ray.is_initialized():
        return False
    python_path = os.pathsep.join(p for p in (PACKAGE_PARENT, os.environ.get("PYTHONPATH")) if p)
    runtime_env = {"env_vars": {"PYTHONPATH": python_path}}
    with _quiet_pkg_resources_in_children():
        if ray_address:
            ray.init(address=ray_address, runtime_env=runtime_env)
        else:
            ray.init(
                address="local",
                num_cpus=ray_cpus or os.cpu_count(),
                include_dashboard=False,
                runtime_env=runtime_env,
                log_to_driver=verbose > 0,
            )
    return True


def _trial_result(last_result):
    """A trial's last report as an objective result (see :mod:`recbole_crs.tuning.results`)."""
    return {
        "best_valid_score": last_result.get("best_valid_score"),
        "best_valid_result": last_result.get("valid") or {},
        "test_result": last_result.get("test") or {},
        "test_results": last_result.get("test_modes") or {},
    }


def _collect(analysis, params, metric, mode):
    """``(trials, best)`` from Ray's trials: each trial's searched values and its last report or its error."""
    trials, best = [], None
    for trial in analysis.trials:
        searched = {p.name: trial.config.get(p.name) for p in params}
        if trial.last_result and metric in trial.last_result:
            trials.append((searched, _trial_result(trial.last_result)))
        else:
            trials.append((searched, {"error": f"trial {trial.trial_id} {trial.status}; see {trial.local_path}"}))
    best_trial = analysis.get_best_trial(metric, mode, "last")
    if best_trial is not None and best_trial.last_result:
        best = ({p.name: best_trial.config.get(p.name) for p in params}, _trial_result(best_trial.last_result))
    return trials, best


def ray_tune(
    params,
    algo,
    fixed,
    config_file_list,
    max_evals=10,
    ray_dir="ray_log",
    ray_address=None,
    ray_cpus=None,
    cpus_per_trial=1,
    gpus_per_trial=None,
    saved=True,
    verbose=1,
):
    """Run the search with Ray Tune; returns ``(trials, best, analysis)`` (see :mod:`recbole_crs.tuning.results`)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report (and no network) by default
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Ray 2.6's new output ignores the CLIReporter below
    # Ray only when a Ray search runs (as in ray_space), and imported after the two variables above are set
    import ray
    from ray import tune
    from ray.tune import CLIReporter
    from ray.tune.schedulers import ASHAScheduler

    config = check_config(fixed, config_file_list, params=params, saved=saved)
    metric, mode = "best_valid_score", ("max" if config["valid_metric_bigger"] else "min")
    fixed, files = _absolute_paths(fixed, config, config_file_list)
    _prepare_default_dataset(config)
    if gpus_per_trial is None:
        gpus_per_trial = 1 if torch.cuda.is_available() else 0
    started_here = _start_ray(ray_address, ray_cpus, verbose)

    search_alg, num_samples = None, max_evals
    if algo == "exhaustive":
        num_samples = 1  # one trial per grid point
    elif algo == "bayes":
        from ray.tune.search.hyperopt import HyperOptSearch  # Ray only when a Ray search runs (as in ray_space)

        search_alg = HyperOptSearch()
    valid_metric = str(config["valid_metric"]).lower()
    reporter = CLIReporter(
        parameter_columns=[p.name for p in params],
        metric_columns=[metric, f"valid/{valid_metric}"],
        max_report_frequency=30,
    )
    try:
        analysis = tune.run(
            tune.with_parameters(
                ray_trainable,
                fixed=fixed,
                config_file_list=files,
                checkpoint_root=config["checkpoint_dir"],
                saved=saved,
            ),
            name=f"hyper_{config['model']}",
            config=ray_space(params, grid=algo == "exhaustive"),
            num_samples=num_samples,
            search_alg=search_alg,
            # As in RecBole's run_hyper.py. Each trial reports once, when its training is over, so ASHA
            # has nothing to cut short: it matters only for trainables that report every epoch.
            scheduler=ASHAScheduler(grace_period=1, reduction_factor=2),
            metric=metric,
            mode=mode,
            resources_per_trial={"cpu": cpus_per_trial, "gpu": gpus_per_trial},
            storage_path=os.path.abspath(ray_dir),
            progress_reporter=reporter,
            verbose=verbose,
            raise_on_failed_trial=False,
        )
    finally:
        if started_here:
            ray.shutdown()
    trials, best = _collect(analysis, params, metric, mode)
    return trials, best, analysis
