"""Run planning: one :class:`RunSpec` per dataset x variant x seed with its layered config, its run folder, and the
hashes of its effective config that ``--resume`` compares."""

import hashlib
import json
import os
from dataclasses import dataclass

from recbole_crs.benchmark.datasets import dataset_modes
from recbole_crs.benchmark.results import to_builtin
from recbole_crs.data.fields import CANDIDATE_FIELD
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
    from recbole_crs.config import Config

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


def plan_runs(suite, datasets, variants, seeds, data_path, out_dir, overrides=None, candidate_field=None):
    """One RunSpec per dataset x variant x seed, in that nesting order (datasets outermost)."""
    overrides = dict(overrides or {})
    runs = []
    for dataset in datasets:
        field_name = candidate_field or {**suite.common, **suite.datasets[dataset].config}.get(
            "CANDIDATE_FIELD", CANDIDATE_FIELD
        )
        modes = dataset_modes(suite, data_path, dataset, field_name)
        for name in variants:
            variant = suite.variants[name]
            for seed in seeds:
                run_dir = run_dir_for(out_dir, dataset, name, seed)
                dataset_spec = suite.datasets[dataset]
                config = {**suite.common, **dataset_spec.config, **dataset_spec.models.get(variant.model, {}),
                          **variant.config, **overrides}
                config.update(
                    model=variant.model,
                    dataset=dataset,
                    seed=seed,
                    data_path=data_path,
                    checkpoint_dir=os.path.join(run_dir, "saved"),
                    crs_test_modes=list(modes),
                    show_progress=False,
                )
                pretrain = None
                if variant.pretrain is not None:
                    pretrain = {**config, **variant.pretrain, "train_stage": "pretrain"}
                    pretrain["save_step"] = pretrain.get("pretrain_epochs")  # write the last epoch only
                    config["train_stage"] = "finetune"
                runs.append(RunSpec(dataset, name, seed, config, pretrain))
    return runs
