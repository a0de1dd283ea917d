"""history_windows: lazy gives exactly the rows, batches and results of history_windows: materialized.

Runs on the hand-built tiny dataset (with and without a ``split`` column) and on ml-100k-crs (per-turn states,
leave-one-out), each built in a tmp dir.
"""

import os
import sys

import numpy as np
import pytest
import torch
import yaml
from recbole.data import data_preparation
from recbole.data.interaction import Interaction
from recbole.utils import init_seed

from recbole_crs.config import PROPERTIES_DIR, Config
from recbole_crs.data.finetune import finetune_samples
from recbole_crs.data.windows import HISTORY_START_FIELD, HISTORY_WINDOWS, WindowedInteraction, history_windows_mode
from recbole_crs.pipeline import pretrain_dataloader, run_crs_pretrain_pipeline
from recbole_crs.quick_start import create_dataset, run_recbole_crs
from tiny_data import isolated_run_dir, ml100k_config, tiny_config, unsaved_run_results, write_tiny_dataset

MODES = ("materialized", "lazy")


def build(model, dataset, config_dict, mode, augment=False):
    config = Config(model=model, dataset=dataset, config_dict={**config_dict, "history_windows": mode})
    init_seed(config["seed"], config["reproducibility"])
    built = create_dataset(config)
    if augment:  # what build() does first
        built._change_feat_format()
    return config, built


def all_rows(dataset):
    """Every row of ``dataset`` as a batch (what dataloaders see), and as a plain dict of tensors."""
    batch = dataset[np.arange(len(dataset))]
    assert not isinstance(batch, WindowedInteraction)
    return batch


def assert_same_interaction(a, b):
    assert a.columns == b.columns
    assert HISTORY_START_FIELD not in a.columns
    for field in a.columns:
        assert a[field].dtype == b[field].dtype, field
        assert torch.equal(a[field], b[field]), field


def assert_same_batches(loader_a, loader_b, seed):
    init_seed(seed, True)
    batches_a = list(loader_a)
    init_seed(seed, True)
    batches_b = list(loader_b)
    assert len(batches_a) == len(batches_b) > 0
    for a, b in zip(batches_a, batches_b):
        a, b = (a, b) if isinstance(a, Interaction) else (a[0], b[0])
        assert_same_interaction(a, b)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [sys.argv[0]])  # RecBole reads --key=value from argv
    return tmp_path


def write_with_split(root):
    """The tiny dataset with a split column: u1/u2 test on their last row, u3 validates on its last row."""
    folder = write_tiny_dataset(str(root))
    path = os.path.join(folder, "tiny-crs.inter")
    lines = open(path).read().splitlines()
    out = [lines[0] + "\tsplit:token"]
    for line in lines[1:]:
        user, _, t = line.split("\t")[:3]
        last = int(float(t)) == 4
        phase = "test" if last and user in ("u1", "u2") else ("valid" if last and user == "u3" else "train")
        out.append(f"{line}\t{phase}")
    open(path, "w").write("\n".join(out) + "\n")


def check_dataset_and_splits(model, name, config_dict, seed=7):
    """Whole dataset, each split, the per-turn states and the dataloaders agree between the two modes."""
    built = {mode: build(model, name, config_dict, mode) for mode in MODES}
    (config_m, data_m), (config_l, data_l) = built["materialized"], built["lazy"]
    init_seed(seed, True)
    loaders_m = data_preparation(config_m, data_m)  # builds: augmentation, split, per-turn states
    init_seed(seed, True)
    loaders_l = data_preparation(config_l, data_l)
    assert isinstance(data_l.inter_feat, WindowedInteraction)
    assert not isinstance(data_m.inter_feat, WindowedInteraction)
    assert_same_interaction(all_rows(data_m), all_rows(data_l))
    for loader_m, loader_l in zip(loaders_m, loaders_l):
        assert isinstance(loader_l._dataset.inter_feat, WindowedInteraction)  # splits stay lazy
        assert_same_interaction(all_rows(loader_m._dataset), all_rows(loader_l._dataset))
        assert_same_batches(loader_m, loader_l, seed)
    return config_m, loaders_m, config_l, loaders_l


def test_tiny_rows_splits_and_batches_are_identical(in_tmp):
    write_tiny_dataset(str(in_tmp))
    check_dataset_and_splits("SASRec", "tiny-crs", tiny_config(in_tmp))


def test_tiny_split_column_gives_identical_splits(in_tmp):
    write_with_split(in_tmp)
    check_dataset_and_splits("SASRec", "tiny-crs", tiny_config(in_tmp))


def test_list_fields_of_lazy_rows_match_materialised_rows_one_by_one(in_tmp):
    write_tiny_dataset(str(in_tmp))
    _, data_m = build("SASRec", "tiny-crs", tiny_config(in_tmp), "materialized", augment=True)
    _, data_l = build("SASRec", "tiny-crs", tiny_config(in_tmp), "lazy", augment=True)
    lazy = data_l.inter_feat
    assert "item_id_list" in lazy and "timestamp_list" in lazy
    for field in ("item_id_list", "timestamp_list", "item_length"):
        assert torch.equal(lazy[field], data_m.inter_feat[field])  # whole-column reads materialise
    for row in range(len(data_m)):
        assert_same_interaction(data_m[[row]], data_l[[row]])
    # row operations keep the windows with their rows
    order = torch.randperm(len(lazy))
    assert torch.equal(lazy[order]["item_id_list"], data_m.inter_feat[order]["item_id_list"])
    assert torch.equal(lazy.repeat_interleave(torch.full((len(lazy),), 2))["item_id_list"],
                       data_m.inter_feat.repeat_interleave(torch.full((len(lazy),), 2))["item_id_list"])
    assert_same_interaction(data_m.inter_feat.to("cpu"), lazy.to("cpu"))


def test_the_default_of_an_unset_history_windows_is_the_yaml_default():
    """``history_windows: ~`` means the documented default (properties/overall.yaml's), the first allowed value."""
    with open(os.path.join(PROPERTIES_DIR, "overall.yaml"), encoding="utf-8") as handle:
        default = yaml.safe_load(handle)["history_windows"]
    assert history_windows_mode({"history_windows": None}) == default == HISTORY_WINDOWS[0]


def test_unknown_mode_is_refused(in_tmp):
    write_tiny_dataset(str(in_tmp))
    with pytest.raises(ValueError, match="history_windows must be one of"):
        build("SASRec", "tiny-crs", tiny_config(in_tmp), "windowed", augment=True)


def test_tiny_sasrec_gives_the_same_metrics(in_tmp):
    write_tiny_dataset(str(in_tmp))
    results = [run_recbole_crs("SASRec", "tiny-crs", config_dict={**tiny_config(in_tmp), "epochs": 1,
                                                                  "history_windows": mode}, saved=False)
               for mode in MODES]
    assert results[0]["best_valid_result"] == results[1]["best_valid_result"]
    assert results[0]["test_result"] == results[1]["test_result"]


def test_tiny_crspretrain_pipeline_gives_the_same_results(in_tmp):
    write_tiny_dataset(str(in_tmp))
    fast = {"generator_epochs": 1, "pretrain_epochs": 1, "epochs": 1, "n_negatives": 3, "train_batch_size": 4,
            "pretrain_batch_size": 4, "mask_ratio": 0.5}
    outcomes = []
    for mode in MODES:
        config, dataset = build("CRSPretrain", "tiny-crs", {**tiny_config(in_tmp), **fast}, mode)
        train, valid, test = data_preparation(config, dataset)
        pretrain_data = pretrain_dataloader(config, train)
        samples, counts = finetune_samples(config, train._dataset)
        trainer, score, result = run_crs_pretrain_pipeline(config, dataset, train, valid, saved=False, verbose=False)
        test_result = trainer.evaluate(test, load_best_model=False)
        outcomes.append((all_rows(pretrain_data._dataset), counts, score, result, test_result))
    (rows_m, *rest_m), (rows_l, *rest_l) = outcomes
    assert_same_interaction(rows_m, rows_l)
    assert rest_m == rest_l


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory):
    """``{mode: (config, dataset, [train, valid, test] loaders)}`` of ml-100k-crs, built once for the module."""
    root = tmp_path_factory.mktemp("ml100k")
    config_dict = ml100k_config(root)
    with isolated_run_dir(root):
        built = {}
        for mode in MODES:
            config, dataset = build("SASRec", "ml-100k-crs", config_dict, mode)
            init_seed(config["seed"], True)
            built[mode] = (config, dataset, data_preparation(config, dataset))
        yield built


def test_ml100k_rows_per_turn_states_and_batches_are_identical(ml100k):
    (config_m, data_m, loaders_m), (config_l, data_l, loaders_l) = ml100k["materialized"], ml100k["lazy"]
    assert isinstance(data_l.inter_feat, WindowedInteraction)
    assert_same_interaction(all_rows(data_m), all_rows(data_l))
    for loader_m, loader_l in zip(loaders_m, loaders_l):
        assert isinstance(loader_l._dataset.inter_feat, WindowedInteraction)
        assert_same_interaction(all_rows(loader_m._dataset), all_rows(loader_l._dataset))
        assert_same_batches(loader_m, loader_l, seed=3)
    valid_l = loaders_l[1]._dataset
    assert len(valid_l) > valid_l.user_num  # per-turn states: several rows per validation interaction
    train_m, train_l = loaders_m[0]._dataset, loaders_l[0]._dataset
    samples_m, counts_m = finetune_samples(config_m, train_m)
    samples_l, counts_l = finetune_samples(config_l, train_l)
    assert counts_m == counts_l
    if samples_m is not None:
        assert_same_interaction(all_rows(train_m.copy(samples_m)), all_rows(train_l.copy(samples_l)))
    assert_same_interaction(all_rows(pretrain_dataloader(config_m, loaders_m[0])._dataset),
                            all_rows(pretrain_dataloader(config_l, loaders_l[0])._dataset))


def test_ml100k_sasrec_gives_the_same_metrics(ml100k):
    results = []
    for mode in MODES:
        config, dataset, (train_data, valid_data, test_data) = ml100k[mode]
        results.append(unsaved_run_results(config, dataset, train_data, valid_data, test_data))
    assert results[0] == results[1]


def test_lazy_inter_feat_is_smaller(ml100k):
    size = {}
    for mode in MODES:
        inter = ml100k[mode][1].inter_feat
        size[mode] = sum(t.nelement() * t.element_size() for t in inter.interaction.values())
        if mode == "lazy":
            size[mode] += inter.windows.nbytes()
    assert size["lazy"] < size["materialized"] / 2
