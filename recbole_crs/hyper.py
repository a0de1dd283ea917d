"""Hyper-parameter search: one params file, RecBole's ``HyperTuning`` (hyperopt) or Ray Tune.

``run_hyper.py`` is the command line; everything it does lives here so that it can be imported and tested.

Params file (same syntax as RecBole's, plus ``#`` comment lines)::

    # name        type        values
    learning_rate loguniform  -9.2,-6.2        # natural-log bounds: exp(-9.2)..exp(-6.2)
    mask_ratio    uniform     0.1,0.4
    hidden_size   choice      [32,64]
    n_layers      quniform    1,4,1            # integers when the bounds and step are integers

Every other ``--key=value`` on the command line is a fixed config value for every trial (like a line in a
config file: above ``--config_files``, below the searched parameters). Trials run with ``sys.argv`` emptied,
so RecBole's ``Config`` does not read the search's own options (``--algo=...``) nor, in Ray workers, Ray's.
"""

import argparse
import ast
import contextlib
import math
import os
import sys
from dataclasses import dataclass

from recbole.utils.utils import dict2str

from recbole_crs.data.ml100k import DEFAULT_DATASET
from recbole_crs.errors import CRSConfigError, CRSInputError

ALGOS = ("exhaustive", "random", "bayes")
TOOLS = ("Hyperopt", "Ray")
PARAM_TYPES = ("choice", "uniform", "quniform", "loguniform")
DEFAULT_MODEL = "CRSPretrain"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


# ----------------------------------------------------------------------------------------------------------
# Params file
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchParam:
    """One searched parameter: ``values`` is the list for ``choice``, ``(low, high[, q])`` otherwise."""

    name: str
    kind: str
    values: tuple

    @property
    def is_integer_grid(self):
        return self.kind == "quniform" and all(float(v).is_integer() for v in self.values)


def _numbers(text, count, where):
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != count:
        raise CRSConfigError(f"{where}: expected {count} comma-separated numbers, got '{text}'")
    try:
        numbers = tuple(float(p) for p in parts)
    except ValueError:
        raise CRSConfigError(f"{where}: '{text}' is not {count} comma-separated numbers") from None
    if numbers[0] >= numbers[1]:
        raise CRSConfigError(f"{where}: the lower bound {numbers[0]} must be below the upper bound {numbers[1]}")
    if count == 3 and numbers[2] <= 0:
        raise CRSConfigError(f"{where}: the step q must be positive, got {numbers[2]}")
    return numbers


def parse_params_file(path):
    """The searched parameters of a params file, in file order.

    Lines: ``name type values``; blank lines and lines starting with ``#`` are skipped; a trailing
    `` # comment`` after the values is allowed. Types: ``choice [v1, v2, ...]`` (Python literals),
    ``uniform lo,hi``, ``quniform lo,hi,q``, ``loguniform lo,hi`` (natural-log bounds, as in RecBole).
    Choices are read with ``ast.literal_eval`` (data only, never code); a string choice reaches the trial's
    Config, which parses it as a value and never evaluates it (:func:`recbole_crs.config.parse_value`).
    """
    params = {}
    with open(path, "r", encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            where = f"{path}, line {number}"
            parts = line.split(None, 2)
            if len(parts) < 3:
                raise CRSConfigError(f"{where}: expected 'name type values', got '{line}'")
            name, kind, value = parts
            if " #" in value or "\t#" in value:  # trailing comment (values never contain ' #')
                value = value[: min(i for i in (value.find(" #"), value.find("\t#")) if i >= 0)].strip()
            if kind not in PARAM_TYPES:
                raise CRSConfigError(f"{where}: unknown type '{kind}' (use one of {', '.join(PARAM_TYPES)})")
            if name in params:
                raise CRSConfigError(f"{where}: '{name}' is already defined")
            if kind == "choice":
                try:
                    values = ast.literal_eval(value)
                except (ValueError, SyntaxError):
                    raise CRSConfigError(f"{where}: choice values must be a Python list literal, got '{value}'") from None
                if not isinstance(values, (list, tuple)) or not values:
                    raise CRSConfigError(f"{where}: choice values must be a non-empty list, got '{value}'")
                params[name] = SearchParam(name, kind, tuple(values))
            else:
                params[name] = SearchParam(name, kind, _numbers(value, 3 if kind == "quniform" else 2, where))
    if not params:
        raise CRSConfigError(f"{path} defines no parameter to search")
    return list(params.values())


def is_discrete(params):
    return all(p.kind == "choice" for p in params)


def grid_size(params):
    return math.prod(len(p.values) for p in params if p.kind == "choice")


def resolve_algo(algo, params):
    """``algo`` checked against the space; ``None`` means exhaustive for all-choice spaces, else random."""
    if algo is None:
        return "exhaustive" if is_discrete(params) else "random"
    if algo not in ALGOS:
        raise CRSConfigError(f"--algo must be one of {', '.join(ALGOS)}, got '{algo}'")
    if algo == "exhaustive" and not is_discrete(params):
        continuous = [p.name for p in params if p.kind != "choice"]
        raise CRSConfigError(
            f"--algo exhaustive needs 'choice' parameters only; {', '.join(continuous)} are continuous. "
            "Use --algo random or --algo bayes, or turn them into choices."
        )
    return algo


def hyperopt_space(params):
    """The hyperopt space RecBole's ``HyperTuning`` searches (``space=`` argument)."""
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


def ray_space(params, grid=False):
    """The Ray Tune search space; ``grid=True`` turns every choice into ``tune.grid_search`` (exhaustive)."""
    from ray import tune

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


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------
def build_parser():
    parser = argparse.ArgumentParser(
        prog="run_hyper.py",
        allow_abbrev=False,  # an unknown --key=value must never be taken for a prefix of an option
        description="Search hyper-parameters of a recbole-crs or RecBole model. Any other --key=value is a "
        "fixed config value for every trial.",
    )
    parser.add_argument("--model", "-m", default=None, help=f"model name (default: config files, else {DEFAULT_MODEL})")
    parser.add_argument(
        "--dataset", "-d", default=None, help=f"dataset name (default: config files, else {DEFAULT_DATASET})"
    )
    parser.add_argument("--config_files", default=None, help="space-separated config files fixed for every trial")
    parser.add_argument("--params_file", required=True, help="the search space (see docs/tuning.md)")
    parser.add_argument("--tool", default="Hyperopt", choices=TOOLS, help="Hyperopt (one process) or Ray (Ray Tune)")
    parser.add_argument(
        "--algo", default=None, choices=ALGOS,
        help="exhaustive (all-choice spaces; every combination), random, bayes (TPE). "
        "Default: exhaustive when every parameter is a choice, else random",
    )
    parser.add_argument(
        "--max_evals", type=int, default=10, help="trials for random/bayes (exhaustive runs the whole grid)"
    )
    parser.add_argument(
        "--early_stop", type=int, default=10, help="Hyperopt: stop after this many trials without improvement"
    )
    parser.add_argument(
        "--output_file", default=None,
        help="result file: every trial's params and results (default hyper_<model>.result)",
    )
    ray_group = parser.add_argument_group("Ray")
    ray_group.add_argument(
        "--ray_address", default=None,
        help="an existing Ray cluster ('auto', 'ray://host:10001'); default: start a local Ray instance",
    )
    ray_group.add_argument("--ray_cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    ray_group.add_argument("--cpus_per_trial", type=float, default=1, help="CPUs reserved per trial")
    ray_group.add_argument(
        "--gpus_per_trial", type=float, default=None,
        help="GPUs reserved per trial (default: 1 if CUDA is visible, else 0)",
    )
    ray_group.add_argument("--ray_dir", default="ray_log", help="where Ray Tune writes trial folders")
    return parser


def split_extras(unknown):
    """The fixed config values of ``--key=value`` arguments argparse did not know; warns about the rest."""
    extras, ignored = {}, []
    for arg in unknown:
        if arg.startswith("--") and "=" in arg:
            key, value = arg[2:].split("=", 1)
            if key:
                extras[key] = value  # the trial's Config parses it ("0.1" -> 0.1, "[1,2]" -> [1, 2]), never evals
                continue
        ignored.append(arg)
    if ignored:
        print(f"run_hyper.py: ignoring arguments {ignored} (config values are written --key=value)", file=sys.stderr)
    return extras


def parse_args(argv=None):
    args, unknown = build_parser().parse_known_args(argv)
    return args, split_extras(unknown)


def _read_yaml_key(files, key):
    import yaml

    value = None
    for path in files or []:
        with open(path, "r", encoding="utf-8") as f:
            content = yaml.safe_load(f) or {}
        if isinstance(content, dict) and content.get(key) is not None:
            value = content[key]
    return value


def fixed_config(args, extras, config_file_list):
    """The config_dict every trial starts from: model and dataset (argument > config files > default) and
    the extra ``--key=value`` values."""
    fixed = dict(extras)
    for key, arg, default in (("model", args.model, DEFAULT_MODEL), ("dataset", args.dataset, DEFAULT_DATASET)):
        if arg is not None:
            fixed[key] = arg
        elif key not in fixed and _read_yaml_key(config_file_list, key) is None:
            fixed[key] = default
    return fixed


@contextlib.contextmanager
def isolated_argv():
    """Within this block ``sys.argv`` holds only the program name, so RecBole's ``Config`` reads no
    command-line values (the search's own options, pytest's, or a Ray worker's)."""
    saved = sys.argv
    sys.argv = saved[:1] if saved else ["run_hyper.py"]
    try:
        yield
    finally:
        sys.argv = saved


class TrialObjective:
    """The objective ``HyperTuning`` calls: ``objective_function`` on the fixed config plus one trial's params."""

    def __init__(self, fixed, saved=True):
        self.fixed = dict(fixed)
        self.saved = saved

    def __call__(self, config_dict=None, config_file_list=None):
        from recbole_crs.quick_start import objective_function

        merged = {**self.fixed, **(config_dict or {})}
        with isolated_argv():
            return objective_function(merged, config_file_list, saved=self.saved)


def sample_value(param):
    """One value of ``param``'s range (its first choice, its lower bound): a trial-like value to check."""
    if param.kind == "choice":
        return param.values[0]
    low = param.values[0]
    if param.kind == "loguniform":
        return math.exp(low)
    return int(low) if param.is_integer_grid else low


def search_space_errors(params, config):
    """One line per searched value that breaks its key's rule (every choice, both bounds of a range)."""
    from recbole_crs.validation import value_error

    errors = []
    for p in params:
        if p.kind == "choice":
            values = list(p.values)
        elif p.kind == "loguniform":
            values = [math.exp(v) for v in p.values[:2]]
        else:
            values = list(p.values[:2])
        for value in values:
            message = value_error(config, p.name, value)
            if message:
                errors.append(f"params file: {message}")
    return errors


def check_config(fixed, config_file_list, params=None, saved=False):
    """Build and validate the config once before any trial: fails fast on a wrong model, dataset, file, key
    or value (and, with ``params``, on a searched name or value), and gives the values Ray needs (metric
    direction, absolute data path). ``saved``: trials write checkpoints, so ``checkpoint_dir`` must be
    writable (it is created)."""
    from recbole_crs.quick_start import build_config
    from recbole_crs.validation import validate

    config_dict = dict(fixed)
    for p in params or []:
        config_dict[p.name] = sample_value(p)
    with isolated_argv():
        config = build_config(config_dict=config_dict, config_file_list=config_file_list)
    validate(config, saved=saved)
    errors = search_space_errors(params or [], config)
    if errors:
        raise CRSConfigError(errors)
    return config


def _prepare_default_dataset(config):
    """Build a built-in dataset (ml-100k-crs, ...) on the driver, so that parallel Ray trials do not all build
    it at once."""
    try:
        from recbole_crs.data.ml100k import ensure_builtin, is_builtin
    except ImportError:
        return
    if is_builtin(config["dataset"]):
        ensure_builtin(config["dataset"], os.path.dirname(os.path.normpath(config["data_path"])))


# ----------------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------------
def params2str(params):
    return ", ".join(f"{name}:{value}" for name, value in params.items())


def write_result_file(output_file, trials, best):
    """Every trial's params and results (RecBole's ``export_result`` layout), then the best trial.

    ``trials``: list of ``(params, result)`` where ``result`` is the objective's dict or ``{"error": str}``.
    ``best``: ``(params, result)`` or ``None``.
    """
    directory = os.path.dirname(os.path.abspath(output_file))
    os.makedirs(directory, exist_ok=True)
    with open(output_file, "w", encoding="utf-8") as fp:
        for params, result in trials:
            fp.write(params2str(params) + "\n")
            if "error" in result:
                fp.write(f"Failed: {result['error']}\n\n")
                continue
            fp.write(f"Best valid score: {result['best_valid_score']}\n")
            fp.write("Valid result:\n" + dict2str(result["best_valid_result"]) + "\n")
            fp.write("Test result:\n" + dict2str(result["test_result"]) + "\n")
            for mode, mode_result in (result.get("test_results") or {}).items():
                fp.write(f"Test result ({mode}):\n" + dict2str(mode_result) + "\n")
            fp.write("\n")
        if best is None:
            fp.write("Best params: none (no trial finished)\n")
        else:
            params, result = best
            fp.write("Best params: " + params2str(params) + "\n")
            fp.write(f"Best valid score: {result['best_valid_score']}\n")
            fp.write("Best valid result:\n" + dict2str(result["best_valid_result"]) + "\n")
            fp.write("Best test result:\n" + dict2str(result["test_result"]) + "\n")


def _print_best(best, output_file):
    if best is None:
        print("no trial finished; see", output_file)
        return
    params, result = best
    print("best params: ", params)
    print("best result: ")
    print({key: result[key] for key in ("best_valid_score", "best_valid_result", "test_result")})
    print("all trials written to", output_file)


# ----------------------------------------------------------------------------------------------------------
# Hyperopt (RecBole's HyperTuning)
# ----------------------------------------------------------------------------------------------------------
def hyperopt_tune(params, algo, fixed, config_file_list, max_evals=10, early_stop=10, saved=True):
    """Run RecBole's ``HyperTuning``; returns ``(trials, best, hp)`` (see :func:`write_result_file`)."""
    from recbole.trainer import HyperTuning

    hp = HyperTuning(
        TrialObjective(fixed, saved=saved),
        space=hyperopt_space(params),
        fixed_config_file_list=config_file_list,
        algo=algo,
        max_evals=max_evals,
        early_stop=early_stop,
    )
    trials = []
    original_trial = hp.trial

    def trial(p):
        # HyperTuning keys results by a string: keep each trial's params as a dict too. A trial that fails
        # is recorded and the search goes on, unless it is the first one (then the error is most likely
        # not about the params: the data, the model, the config files), which stops it.
        import hyperopt

        try:
            status = original_trial(p)
        except Exception as error:
            if not trials:
                raise
            print(f"trial {params2str(p)} failed: {type(error).__name__}: {error}", file=sys.stderr)
            trials.append((dict(p), {"error": f"{type(error).__name__}: {error}"}))
            return {"loss": float("inf"), "status": hyperopt.STATUS_FAIL}
        trials.append((dict(p), hp.params2result[hp.params2str(p)]))
        return status

    hp.trial = trial
    hp.run()
    best = None
    if hp.best_params is not None:
        best = (dict(hp.best_params), hp.params2result[hp.params2str(hp.best_params)])
    return trials, best, hp


# ----------------------------------------------------------------------------------------------------------
# Ray Tune
# ----------------------------------------------------------------------------------------------------------
def ray_trainable(config, fixed=None, config_file_list=None, checkpoint_root="saved", saved=True):
    """One Ray Tune trial: ``objective_function`` in a worker process; reports the scores once at the end.

    Runs in the trial's own folder (Ray's working dir), so RecBole's ``log_tensorboard/`` lands there; checkpoints go to ``<checkpoint_root>/<trial id>`` (``checkpoint_root``: the config's
    ``checkpoint_dir``; relative means inside the trial's folder), so parallel trials never share a file:
    RecBole names checkpoints by model and second, and two trials often start in the same second.
    (Not called ``checkpoint_dir``: Ray would take that for its own deprecated checkpoint argument.)
    """
    from ray.air import session

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


# setuptools < 81 (pinned for ray 2.6.3) warns on every `import pkg_resources`, i.e. in every Ray process.
_PKG_RESOURCES_WARNING = "pkg_resources is deprecated as an API"


def quiet_pkg_resources_warning():
    import warnings

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


def _trial_result(last_result):
    valid = last_result.get("valid") or {}
    test = last_result.get("test") or {}
    return {
        "best_valid_score": last_result.get("best_valid_score"),
        "best_valid_result": valid,
        "test_result": test,
        "test_results": last_result.get("test_modes") or {},
    }


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
    """Run the search with Ray Tune; returns ``(trials, best, analysis)`` (see :func:`write_result_file`)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report (and no network) by default
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Ray 2.6's new output ignores the CLIReporter below
    import ray
    from ray import tune
    from ray.tune import CLIReporter
    from ray.tune.schedulers import ASHAScheduler

    config = check_config(fixed, config_file_list, params=params, saved=saved)
    metric, mode = "best_valid_score", ("max" if config["valid_metric_bigger"] else "min")
    fixed, files = _absolute_paths(fixed, config, config_file_list)
    _prepare_default_dataset(config)
    if gpus_per_trial is None:
        import torch

        gpus_per_trial = 1 if torch.cuda.is_available() else 0

    # Workers must import recbole_crs whatever their working dir, installed or not.
    python_path = os.pathsep.join(p for p in (REPO_ROOT, os.environ.get("PYTHONPATH")) if p)
    runtime_env = {"env_vars": {"PYTHONPATH": python_path}}
    started_here = False
    if not ray.is_initialized():
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
        started_here = True

    search_alg, num_samples = None, max_evals
    if algo == "exhaustive":
        num_samples = 1  # one trial per grid point
    elif algo == "bayes":
        from ray.tune.search.hyperopt import HyperOptSearch

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
    return trials, best, analysis


# ----------------------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------------------
def main(argv=None):
    """``run_hyper.py``: parse ``argv`` (default ``sys.argv[1:]``), search, write the result file.

    A configuration or data error (params file, config, data) prints ``error: <message>`` and exits with
    status 2, before any trial when it can be found then.
    """
    try:
        return _main(argv)
    except CRSInputError as error:
        for line in str(error).splitlines():
            print(f"error: {line}", file=sys.stderr)
        raise SystemExit(2) from None


def _main(argv=None):
    args, extras = parse_args(argv)
    quiet_pkg_resources_warning()
    config_file_list = args.config_files.strip().split() if args.config_files else None
    params = parse_params_file(args.params_file)
    algo = resolve_algo(args.algo, params)
    fixed = fixed_config(args, extras, config_file_list)
    overridden = sorted(set(extras) & {p.name for p in params})
    if overridden:
        print(f"run_hyper.py: {overridden} are searched; their --key=value is ignored", file=sys.stderr)
    output_file = args.output_file or f"hyper_{fixed.get('model') or _read_yaml_key(config_file_list, 'model')}.result"
    if algo == "exhaustive":
        print(f"exhaustive search over {grid_size(params)} combinations with {args.tool}")
    else:
        print(f"{algo} search, {args.max_evals} trials, with {args.tool}")

    if args.tool == "Ray":
        trials, best, _ = ray_tune(
            params, algo, fixed, config_file_list,
            max_evals=args.max_evals,
            ray_dir=args.ray_dir,
            ray_address=args.ray_address,
            ray_cpus=args.ray_cpus,
            cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial,
        )
    else:
        check_config(fixed, config_file_list, params=params, saved=True)  # fail before the first trial
        trials, best, _ = hyperopt_tune(
            params, algo, fixed, config_file_list, max_evals=args.max_evals, early_stop=args.early_stop
        )
    write_result_file(output_file, trials, best)
    _print_best(best, output_file)
    failed = sum("error" in result for _, result in trials)
    if failed:
        print(f"run_hyper.py: {failed} of {len(trials)} trials failed; see {output_file}", file=sys.stderr)
    if best is None:
        raise SystemExit(f"run_hyper.py: no trial finished; see {output_file}")
    return trials, best
