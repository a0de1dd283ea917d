"""The command line of ``run_hyper.py`` (and ``python -m recbole_crs.tuning``).

Options mirror RecBole's ``run_hyper.py``; every other ``--key=value`` is a fixed config value for every trial
(like a line in a config file: above ``--config_files``, below the searched parameters). A configuration or
data error prints ``error: <message>`` and exits with status 2, before any trial when it can be found then.
"""

import argparse
import sys

import yaml

from recbole_crs.data.ml100k import DEFAULT_DATASET
from recbole_crs.errors import CRSInputError, print_error
from recbole_crs.tuning.hyperopt_backend import hyperopt_tune
from recbole_crs.tuning.objective import check_config
from recbole_crs.tuning.params import ALGOS, grid_size, parse_params_file, resolve_algo
from recbole_crs.tuning.ray_backend import quiet_pkg_resources_warning, ray_tune
from recbole_crs.tuning.results import print_summary, write_result_file

TOOLS = ("Hyperopt", "Ray")
DEFAULT_MODEL = "CRSPretrain"


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
    """``key`` of the last config file that sets it. A file that cannot be read is passed over here: the
    config check before the first trial reports it (``error: config file ... cannot be read``)."""
    value = None
    for path in files or []:
        try:
            with open(path, "r", encoding="utf-8") as f:
                content = yaml.safe_load(f) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
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


def main(argv=None):
    """``run_hyper.py``: parse ``argv`` (default ``sys.argv[1:]``), search, write the result file; returns
    ``(trials, best)`` (see :mod:`recbole_crs.tuning.results`).

    A configuration or data error (params file, config, data) prints ``error: <message>`` and exits with
    status 2, before any trial when it can be found then.
    """
    try:
        return _main(argv)
    except CRSInputError as error:
        print_error(error)
        raise SystemExit(2) from None


def _main(argv=None):
    args, extras = parse_args(argv)
    quiet_pkg_resources_warning()
    config_file_list = args.config_files.strip().split() if args.config_files else None
    params = parse_params_file(args.params_file)
    algo = resolve_algo(args.algo, params)
    if algo != "exhaustive" and args.max_evals < 1:  # hyperopt's fmin raised 'There are no evaluation tasks'
        raise CRSInputError(f"--max_evals must be at least 1 for --algo {algo}, got {args.max_evals}: give the "
                            "number of trials, e.g. --max_evals 10")
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
    print_summary(trials, best, output_file)
    if best is None:
        raise SystemExit(f"run_hyper.py: no trial finished; see {output_file}")
    return trials, best
