"""Model, trainer and dataset lookup: the plugin first, RecBole otherwise (as RecBole-GNN does)."""

import importlib

from recbole.utils import ModelType
from recbole.utils import get_model as get_recbole_model
from recbole.utils import get_trainer as get_recbole_trainer


def get_model(model_name):
    """The model class called ``model_name``: ``recbole_crs.model.<name>`` first, then RecBole's models."""
    module_name = f"recbole_crs.model.{model_name.lower()}"
    if importlib.util.find_spec(module_name) is not None:
        return getattr(importlib.import_module(module_name), model_name)
    try:
        return get_recbole_model(model_name)
    except (ValueError, ModuleNotFoundError):
        # RecBole's lookup imports its optional exlib models (lightgbm, xgboost) before giving up.
        raise ValueError(
            f"Model '{model_name}' is neither a recbole-crs model (recbole_crs/model/) nor a RecBole model. "
            "Check the spelling and case of --model (e.g. CRSPretrain, SASRec)."
        ) from None


def get_trainer(model_type, model_name):
    """The trainer for ``model_name``, always with conversation-aware evaluation.

    ``recbole_crs.trainer.<Name>Trainer`` if the plugin has one, else RecBole's choice for the model,
    wrapped so that evaluation honours ``crs_candidates`` for every model alike.
    """
    from recbole_crs import trainer as crs_trainers
    from recbole_crs.trainer.crs_evaluation import with_crs_evaluation

    own = getattr(crs_trainers, f"{model_name}Trainer", None)
    if own is not None:
        return own
    return with_crs_evaluation(get_recbole_trainer(model_type, model_name))


def get_dataset_class(config):
    """CRSDataset for sequential models; RecBole's choice for the rest."""
    from recbole_crs.data.dataset import CRSDataset

    if config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
        return CRSDataset
    dataset_module = importlib.import_module("recbole.data.dataset")
    return getattr(dataset_module, "Dataset")
