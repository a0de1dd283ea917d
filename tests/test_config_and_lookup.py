"""Config layering and model/trainer lookup (plugin first, RecBole otherwise)."""

import importlib.machinery
import sys
import types

import pytest
from recbole.model.sequential_recommender import SASRec
from recbole.trainer import S3RecTrainer, Trainer
from recbole.utils import ModelType

from recbole_crs import config as crs_config
from recbole_crs.config import Config, get_model
from recbole_crs.trainer import CRSEvaluationMixin, get_trainer


@pytest.fixture
def fake_properties(tmp_path, monkeypatch):
    """A properties/ folder whose layers each set `layer` and one key of their own."""
    props = tmp_path / "properties"
    (props / "model").mkdir(parents=True)
    (props / "dataset").mkdir()
    (props / "overall.yaml").write_text("layer: overall\nfrom_overall: 1\ntopk: [3]\ntrain_neg_sample_args: ~\n")
    (props / "model" / "SASRec.yaml").write_text("layer: model\nfrom_model: 2\n")
    (props / "dataset" / "tiny-crs.yaml").write_text("layer: dataset\nfrom_dataset: 3\n")
    monkeypatch.setattr(crs_config, "PROPERTIES_DIR", str(props))
    return props


def test_plugin_layers_override_recbole_and_each_other_in_order(tiny_root, fake_properties):
    config = Config("SASRec", "tiny-crs", config_dict={"data_path": str(tiny_root)})
    assert config["layer"] == "dataset"  # dataset yaml is the last plugin layer
    assert (config["from_overall"], config["from_model"], config["from_dataset"]) == (1, 2, 3)
    assert config["topk"] == [3]  # plugin overall overrides RecBole's default [10]
    assert config["hidden_size"] == 64  # RecBole's own SASRec.yaml still applies underneath


def test_crs_models_read_the_shared_encoder_and_finetune_layers_below_their_own(tiny_root, fake_properties):
    """overall -> CRSEncoder -> (CRSFinetune, for the pipeline) -> the model's own yaml -> dataset."""
    for name in ("CRSEncoder", "CRSFinetune", "CRSPretrain"):
        (fake_properties / "model" / f"{name}.yaml").write_text(f"layer: {name}\nfrom_{name}: {name}\nloss_type: CE\n")
    (fake_properties / "dataset" / "tiny-crs.yaml").write_text("from_dataset: 3\n")
    pipeline = Config("CRSPretrain", "tiny-crs", config_dict={"data_path": str(tiny_root)})
    assert pipeline["layer"] == "CRSPretrain"
    assert [pipeline[f"from_{name}"] for name in ("CRSEncoder", "CRSFinetune", "CRSPretrain")] == [
        "CRSEncoder", "CRSFinetune", "CRSPretrain"]
    finetune = Config("CRSFinetune", "tiny-crs", config_dict={"data_path": str(tiny_root)})
    assert (finetune["layer"], finetune["from_CRSEncoder"], finetune["from_CRSPretrain"]) == (
        "CRSFinetune", "CRSEncoder", None)
    assert Config("SASRec", "tiny-crs", config_dict={"data_path": str(tiny_root)})["from_CRSEncoder"] is None


def test_user_files_then_dict_then_command_line_override_plugin_yaml(tiny_root, fake_properties, monkeypatch):
    user_file = tiny_root / "user.yaml"
    user_file.write_text("layer: user_file\nfrom_model: 20\nfrom_dataset: 30\n")
    monkeypatch.setattr(sys, "argv", ["prog", "--from_dataset=300"])
    config = Config("SASRec", "tiny-crs", config_file_list=[str(user_file)],
                    config_dict={"layer": "dict", "data_path": str(tiny_root)})
    assert config["layer"] == "dict"
    assert config["from_model"] == 20
    assert config["from_dataset"] == 300


def test_real_plugin_defaults_are_loaded(tiny_root):
    config = Config("SASRec", "tiny-crs", config_dict={"data_path": str(tiny_root)})
    assert config["ATTRIBUTE_FIELD"] == "attributes"
    assert config["crs_test_modes"] == ["all", "first", "confirmed"]
    assert config["MODEL_TYPE"] == ModelType.SEQUENTIAL


def test_recbole_model_is_found_when_plugin_has_none():
    assert get_model("SASRec") is SASRec


def test_plugin_model_shadows_recbole_model(monkeypatch):
    name = "recbole_crs.model.sasrec"
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)

    class PluginSASRec:  # stands in for a plugin model that shares RecBole's name
        pass

    module.SASRec = PluginSASRec
    monkeypatch.setitem(sys.modules, name, module)
    assert get_model("SASRec") is PluginSASRec


def test_unknown_model_error_names_the_model():
    with pytest.raises(ValueError, match="NoSuchModel"):
        get_model("NoSuchModel")


def test_recbole_trainers_get_conversation_aware_evaluation():
    trainer = get_trainer(ModelType.SEQUENTIAL, "SASRec")
    assert issubclass(trainer, CRSEvaluationMixin) and issubclass(trainer, Trainer)
    s3rec_trainer = get_trainer(ModelType.SEQUENTIAL, "S3Rec")
    assert issubclass(s3rec_trainer, S3RecTrainer) and issubclass(s3rec_trainer, CRSEvaluationMixin)
    assert get_trainer(ModelType.SEQUENTIAL, "SASRec") is trainer  # cached wrapper class


def test_model_lookup_leaves_autograd_anomaly_mode_off():
    """recbole's sine.py turns anomaly mode on at import; it doubles every training step's cost."""
    import torch

    get_model("SINE")
    get_model("SASRec")
    assert not torch.is_anomaly_enabled()
