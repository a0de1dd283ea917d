"""The suite's datasets and variants before anything runs: build the missing datasets, check that every
variant's model and config keys exist, and that every run's config passes the checks a run makes first."""

import os

from recbole_crs.benchmark.spec.datasets import inter_header
from recbole_crs.benchmark.spec.tuned import tuned_values
from recbole_crs.config import Config
from recbole_crs.data import convert
from recbole_crs.data.ml100k import ensure_builtin, is_builtin
from recbole_crs.errors import CRSConfigError, SuiteError
from recbole_crs.runtime import isolated_argv
from recbole_crs.validation import unknown_key_errors, value_errors


def convert_command(spec, sources, data_path):
    """The converter argv that builds ``spec`` from its source folder (``{source}`` filled in)."""
    source = sources.get(spec.convert["source"])
    argv = [str(a).replace("{source}", source or "<" + spec.convert["source"] + ">") for a in spec.convert["argv"]]
    return argv + ["--out", os.path.join(data_path, spec.name)]


def prepare_datasets(suite, names, data_path, sources, log=print):
    """Make sure every dataset exists; run its ``convert`` recipe where the files are missing.

    The built-in datasets (ml-100k-crs, ml-100k-crs-targets, ml-100k-crs-targets-<X>: see
    :mod:`recbole_crs.data.ml100k`) are built by the plugin itself on first use. A dataset that is missing and
    cannot be built stops the suite before anything runs, with the exact command that would build it.
    """
    for name in names:
        spec = suite.datasets[name]
        if is_builtin(name):
            ensure_builtin(name, data_path)
            continue
        if inter_header(data_path, name) is not None:
            continue
        if spec.convert is None:
            raise SuiteError(f"dataset '{name}' has no atomic files in {os.path.join(data_path, name)}")
        argv = convert_command(spec, sources, data_path)
        if not sources.get(spec.convert["source"]):
            option = "--" + spec.convert["source"]
            raise SuiteError(
                f"dataset '{name}' is not in {os.path.join(data_path, name)}. Give its source folder with "
                f"{option} DIR, or build it with:\n  python -m recbole_crs.data.convert " + " ".join(argv)
            )
        log(f"preparing {name}: python -m recbole_crs.data.convert " + " ".join(argv))
        report = convert.run(convert.build_parser().parse_args(argv))
        log(str(report))


def check_variants(suite, variants, datasets, data_path, tuned=None):
    """Every variant's model exists, and every key that a variant (or a dataset's ``models.<model>``, or the tuned
    file ``tuned``) overrides is a config key of that model.

    RecBole accepts any key and ignores the ones nothing reads, so a misspelt ablation key (or one the model
    does not have) would silently run the unablated model under the ablation's name. Checked before any run.
    """
    problems = []
    for name in variants:
        variant = suite.variants[name]
        try:
            with isolated_argv():
                config = Config(model=variant.model, dataset=datasets[0], config_dict={"data_path": data_path})
        except (ValueError, KeyError, ImportError) as error:
            problems.append(f"variant '{name}': {error}")
            continue
        known = set(config.final_config_dict)
        sources = [(f"variant '{name}'", variant.config), (f"variant '{name}' (pretrain)", variant.pretrain or {})]
        sources += [(f"datasets.{d}.models.{variant.model}", suite.datasets[d].models.get(variant.model, {}))
                    for d in datasets]
        sources += [(f"the tuned values of {d}.{variant.tuned_name}", tuned_values(tuned, d, variant))
                    for d in datasets]
        for where, overrides in sources:
            unknown = sorted(set(overrides) - known)
            if unknown:
                problems.append(
                    f"{where} sets {unknown}, which {variant.model} has no default for (not in its yaml files): "
                    "RecBole would ignore them silently. Check the spelling against the model's yaml, or pass "
                    "--no-key-check if the model reads the key without a default."
                )
    if problems:
        raise SuiteError("\n".join(dict.fromkeys(problems)))


def check_configs(specs):
    """Every stage config of ``specs`` (:class:`~recbole_crs.benchmark.spec.runs.RunSpec`) passes the key and value
    checks each run makes before training (:mod:`recbole_crs.validation`), before any run starts.

    A value the config refuses (a ``--set``, suite or tuned value: ``hidden_act=foo``, ``epochs=abc``, a misspelt
    key) would otherwise fail every run of the suite one after the other, each recorded as a failed run. Raises one
    :class:`CRSConfigError`, a line per problem naming the datasets and variants it concerns. The file system
    (dataset files, checkpoint folders) is each run's own check: the datasets may not be built yet.
    """
    problems = {}  # problem -> where (a --set value wrong for every variant is one line)
    for spec in specs:
        for stage, config_dict in (("", spec.config), (" (pretrain)", spec.pretrain_config)):
            if config_dict is None:
                continue
            where = f"{spec.dataset} {spec.variant}{stage}"
            try:
                with isolated_argv():
                    config = Config(model=config_dict["model"], dataset=spec.dataset, config_dict=config_dict)
                errors = unknown_key_errors(config) + value_errors(config)
            except CRSConfigError as error:  # a value Config itself refuses (e.g. nproc)
                errors = error.errors
            except (ValueError, KeyError, ImportError) as error:  # an unknown model: as check_variants says it
                where, errors = f"variant '{spec.variant}'", [" ".join(str(error).split())]
            for line in errors:
                problems.setdefault(line, []).append(where)
    if problems:
        raise CRSConfigError([f"{', '.join(dict.fromkeys(wheres))}: {line}" for line, wheres in problems.items()])
