"""The entry point runs RecBole's sequential models unchanged, with conversation-aware test results."""

import glob
import os

import pytest

from recbole_crs.quick_start import load_data_and_model, objective_function, run_recbole_crs
from tiny_data import write_tiny_dataset

MODES = {"all", "first", "confirmed"}


@pytest.mark.parametrize("model", ["Pop", "SASRec", "BERT4Rec", "GRU4Rec", "S3Rec", "SASRecF", "FDSA"])
def test_recbole_models_run_through_the_plugin(model, tiny_config_dict):
    config = {**tiny_config_dict, "epochs": 1, "pretrain_epochs": 1, "save_step": 1, "embedding_size": 8}
    result = run_recbole_crs(model=model, dataset="tiny-crs", config_dict=config)
    assert set(result["test_results"]) == MODES
    for metrics in result["test_results"].values():
        assert set(metrics) >= {"ndcg@3", "recall@3", "mrr@3", "hit@3"}
    # Restricting candidates can only raise the target's rank.
    assert result["test_results"]["confirmed"]["mrr@3"] >= result["test_results"]["all"]["mrr@3"]


def test_saved_checkpoint_reloads_under_torch_weights_only_default(tiny_config_dict):
    run_recbole_crs(model="SASRec", dataset="tiny-crs", config_dict=tiny_config_dict)
    (checkpoint,) = glob.glob(os.path.join(tiny_config_dict["checkpoint_dir"], "SASRec-*.pth"))
    config, model, dataset, _, _, test_data = load_data_and_model(checkpoint)
    assert config["model"] == "SASRec" and model.n_items == dataset.item_num


def test_checkpoint_from_another_dataset_is_refused(tiny_config_dict, tiny_root):
    run_recbole_crs(model="SASRec", dataset="tiny-crs", config_dict=tiny_config_dict)
    (checkpoint,) = glob.glob(os.path.join(tiny_config_dict["checkpoint_dir"], "SASRec-*.pth"))
    write_tiny_dataset(str(tiny_root), name="other-crs")
    from recbole_crs.config import Config
    from recbole_crs.quick_start import create_dataset, build_model
    from recbole_crs.trainer import get_trainer
    from recbole.data import data_preparation

    config = Config("SASRec", "other-crs", config_dict=tiny_config_dict)
    train_data, _, test_data = data_preparation(config, create_dataset(config))
    trainer = get_trainer(config["MODEL_TYPE"], "SASRec")(config, build_model(config, train_data))
    with pytest.raises(ValueError, match="trained on dataset 'tiny-crs', not 'other-crs'"):
        trainer.evaluate(test_data, model_file=checkpoint)


def test_objective_function_returns_what_hypertuning_reads(tiny_config_dict):
    result = objective_function(config_dict={**tiny_config_dict, "model": "SASRec", "dataset": "tiny-crs"}, saved=False)
    assert {"model", "best_valid_score", "valid_score_bigger", "best_valid_result", "test_result"} <= set(result)
    assert result["test_result"] == result["test_results"]["confirmed"]  # crs_candidates default


@pytest.mark.parametrize("candidates, test_modes, main", [
    ("first", ["all", "first"], "first"),
    ("confirmed", ["all", "first"], "all"),  # not tested in its own mode: the first test mode
    (None, ["first", "all"], "all"),  # crs_candidates ~ is the run plan's default mode, all
])
def test_test_result_is_in_the_run_plans_candidate_mode(tiny_config_dict, candidates, test_modes, main):
    config_dict = {**tiny_config_dict, "model": "Pop", "dataset": "tiny-crs", "crs_candidates": candidates,
                   "crs_test_modes": test_modes}
    result = objective_function(config_dict=config_dict, saved=False)
    assert set(result["test_results"]) == set(test_modes)
    assert result["test_result"] == result["test_results"][main]
