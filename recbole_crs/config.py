"""Config: RecBole's Config plus the plugin's yaml layers.

Merge order, later wins: RecBole's internal yamls (overall, model, dataset, quick-start defaults for the
model type) -> ``properties/overall.yaml`` -> ``properties/model/<model>.yaml`` ->
``properties/dataset/<dataset>.yaml`` -> the user's ``config_file_list`` -> ``config_dict`` -> command line.
"""

import os

from recbole.config import Config as RecBoleConfig
from recbole.utils import ModelType

from recbole_crs.utils import get_model

PROPERTIES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "properties")


def dataset_yaml(dataset):
    """``properties/dataset/<dataset>.yaml``; a built-in variant without its own file (ml-100k-crs-targets,
    ml-100k-crs-targets-0.05, ...) uses its base's (ml-100k-crs.yaml): same fields and budget, one file."""
    own = os.path.join(PROPERTIES_DIR, "dataset", f"{dataset}.yaml")
    if os.path.isfile(own):
        return own
    from recbole_crs.data.ml100k import builtin_base

    base = builtin_base(dataset)
    return os.path.join(PROPERTIES_DIR, "dataset", f"{base}.yaml") if base else own


def plugin_yaml_files(model, dataset):
    """The plugin's own yaml layers for ``model`` on ``dataset``, in merge order (existing files only)."""
    if not os.path.isdir(PROPERTIES_DIR):
        raise FileNotFoundError(
            f"recbole-crs cannot find its properties folder '{PROPERTIES_DIR}'. Install the plugin from "
            "its repository with `pip install -e .` so the yaml defaults stay next to the package."
        )
    candidates = [
        os.path.join(PROPERTIES_DIR, "overall.yaml"),
        os.path.join(PROPERTIES_DIR, "model", f"{model}.yaml"),
        dataset_yaml(dataset),
    ]
    return [path for path in candidates if os.path.isfile(path)]


class Config(RecBoleConfig):
    """RecBole Config that finds plugin models and adds the plugin's yaml defaults."""

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise KeyError(
                    "model needs to be given in one of: the model argument, a config file, config_dict, "
                    "or --model on the command line."
                )
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise KeyError(
                    "dataset needs to be given in one of: the dataset argument, a config file, "
                    "config_dict, or --dataset on the command line."
                )
        if isinstance(model, str):
            return model, get_model(model), dataset
        return model.__name__, model, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        dataset_path = dataset_yaml(dataset)
        for path in plugin_yaml_files(model, dataset):
            config_dict = self._update_internal_config_dict(path)
            if path == dataset_path:
                self.parameters["Dataset"] += [k for k in config_dict if k not in self.parameters["Dataset"]]
        self._use_sequential_protocol(model_class)

    def _use_sequential_protocol(self, model_class):
        """Run general/traditional models (e.g. Pop) on the same leave-one-out rows as sequential ones.

        Conversations belong to single interactions, so a CRS dataset is evaluated per interaction; a general
        model only needs user and item ids, which those rows carry. Its trainer is still chosen by its own type.
        """
        key = "crs_sequential_protocol"
        enabled = self.external_config_dict.get(key, self.internal_config_dict.get(key, True))
        if enabled and model_class.type in (ModelType.GENERAL, ModelType.TRADITIONAL):
            self.internal_config_dict["MODEL_TYPE"] = ModelType.SEQUENTIAL
