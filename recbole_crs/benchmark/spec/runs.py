"""Run planning: one :class:`RunSpec` per dataset x variant x seed with its layered config, its run folder, and the
hashes of its effective config that ``--resume`` compares.

Config layers, later wins: ``common`` -> ``datasets.<name>.config`` -> ``datasets.<name>.models.<Model>`` ->
``variants.<name>.config`` -> the tuned values (:mod:`recbole_crs.benchmark.spec.tuned`) -> ``--epochs`` / ``--set`` ->
what the runner sets (model, dataset, seed, data_path, checkpoint_dir, crs_test_modes, show_progress). A two-stage
variant's pre-training stage reads the same layers without the tuned values (they are searched on its fine-tuning
stage, from one fixed pre-trained checkpoint), then its ``pretrain`` section.
"""

import hashlib
import json
import os
from dataclasses import dataclass

from recbole_crs.benchmark.spec.datasets import dataset_modes
from recbole_crs.benchmark.spec.results import to_builtin
from recbole_crs.benchmark.spec.tuned import tuned_values
from recbole_crs.config import Config
from recbole_crs.data.fields import CANDIDATE_FIELD
from recbole_crs.errors import SuiteError
from recbole_crs.runtime import isolated_argv

# Keys that differ between runs of one variant by design (not by a change of the model's defaults).
VOLATILE_KEYS = ("seed", "data_path", "checkpoint_dir", "device", "pre_model_path")


@dataclass
class RunSpec:
    dataset: str
    variant: str
    seed: int
    config: dict  # everything passed as config_dict (the single-stage or the fine-tuning stage)
    pretrain_config: dict = None
    config_sha: str = None  # of the effective config (model yaml defaults included), see resolve_config_shas
    pretrain_config_sha: str = None
    tuned: dict = None  # the tuned values in ``config`` (recorded in the run), None when there are none

    @property
    def key(self):
        return (self.dataset, self.variant, self.seed)

    @property
    def fingerprint(self):
        """What defines the run's result: the effective config of each stage (not where it writes)."""
        if self.config_sha is not None:
            if self.pretrain_config is None:
                return self.config_sha
            return f"{self.config_sha}-{self.pretrain_config_sha}"
        payload = {k: v for k, v in self.config.items() if k not in VOLATILE_KEYS}
        pre = {k: v for k, v in (self.pretrain_config or {}).items() if k not in VOLATILE_KEYS}
        text = json.dumps([payload, pre], sort_keys=True, default=str)
        return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def config_sha(final_config_dict):
    """Hash of a final RecBole config without the keys that differ between seeds or run folders."""
    final = {k: to_builtin(v) for k, v in final_config_dict.items() if k not in VOLATILE_KEYS}
    return hashlib.sha1(json.dumps(final, sort_keys=True).encode("utf-8")).hexdigest()[:12]


def resolve_config_shas(specs):
    """Fill in each spec's effective-config hash: its config_dict over every yaml layer, as the run will see
    it. ``--resume`` compares these, so an edited model yaml (not only an edited suite) reruns a run."""
    for spec in specs:
        with isolated_argv():
            spec.config_sha = config_sha(
                Config(spec.config["model"], spec.dataset, config_dict=spec.config).final_config_dict
            )
            if spec.pretrain_config is not None:
                spec.pretrain_config_sha = config_sha(
                    Config(spec.config["model"], spec.dataset, config_dict=spec.pretrain_config).final_config_dict
                )
    return specs


def run_dir_for(out_dir, dataset, variant, seed):
    return os.path.join(out_dir, "runs", dataset, variant, f"seed{seed}")


def dataset_test_modes(suite, data_path, dataset, candidate_field=None):
    """The candidate modes runs on ``dataset`` are tested in (``authors`` where it has a candidate list)."""
    field_name = candidate_field or {**suite.common, **suite.datasets[dataset].config}.get(
        "CANDIDATE_FIELD", CANDIDATE_FIELD
    )
    return dataset_modes(suite, data_path, dataset, field_name)


def stage_configs(suite, dataset, name, modes, data_path, overrides=None, tuned=None):
    """``(config, pretrain_config)`` of one dataset and variant, every layer of the suite (see the module) but
    the per-run keys (seed, checkpoint_dir); ``pretrain_config`` is None for a one-stage variant."""
    variant = suite.variants[name]
    dataset_spec = suite.datasets[dataset]
    layers = {**suite.common, **dataset_spec.config, **dataset_spec.models.get(variant.model, {}), **variant.config}
    fixed = dict(model=variant.model, dataset=dataset, data_path=data_path, crs_test_modes=list(modes),
                 show_progress=False)
    config = {**layers, **(tuned or {}), **(overrides or {}), **fixed}
    if variant.pretrain is None:
        return config, None
    pretrain = {**layers, **(overrides or {}), **fixed, **variant.pretrain, "train_stage": "pretrain"}
    if not pretrain.get("pretrain_epochs"):
        raise SuiteError(
            f"variant '{name}' has a pretrain section but no pretrain_epochs on {dataset}: set it in "
            f"datasets.{dataset}.models.{variant.model} (or the variant's pretrain section), so that the model's "
            "own default never sets the pre-training budget"
        )
    pretrain["save_step"] = pretrain["pretrain_epochs"]  # write the last epoch only
    config["train_stage"] = "finetune"
    return config, pretrain


def plan_runs(suite, datasets, variants, seeds, data_path, out_dir, overrides=None, candidate_field=None,
              tuned=None):
    """One RunSpec per dataset x variant x seed, in that nesting order (datasets outermost). ``tuned``: the tuned
    file's content (:func:`recbole_crs.benchmark.spec.tuned.load_tuned`)."""
    runs = []
    for dataset in datasets:
        modes = dataset_test_modes(suite, data_path, dataset, candidate_field)
        for name in variants:
            values = tuned_values(tuned, dataset, suite.variants[name])
            for seed in seeds:
                run_dir = run_dir_for(out_dir, dataset, name, seed)
                config, pretrain = stage_configs(suite, dataset, name, modes, data_path, overrides, values)
                per_run = dict(seed=seed, checkpoint_dir=os.path.join(run_dir, "saved"))
                config.update(per_run)
                if pretrain is not None:
                    pretrain.update(per_run)
                runs.append(RunSpec(dataset, name, seed, config, pretrain, tuned=values or None))
    return runs
