"""inter_loading: compact gives exactly the dataset of RecBole's loader (inter_loading: recbole).

Same field properties and id maps, same rows after build, same splits, per-turn states and batches, same
metrics; on the hand-built tiny data (with a split column, empty and missing cells, truncated sequences) and on
ml-100k-crs. Also: sequence columns stay encoded (small) with history_windows: lazy, the options the compact
loader cannot reproduce fall back to RecBole's loader, and row checks give the same errors chunk by chunk.
"""

import os
import re
import sys

import numpy as np
import pytest
import torch
import yaml
from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_crs.config import PROPERTIES_DIR, Config
from recbole_crs.data import checks as checks_module
from recbole_crs.data.compact import INTER_LOADINGS, inter_loading_mode
from recbole_crs.data.finetune import conversational_rows, finetune_samples
from recbole_crs.data.windows import WindowedInteraction, materialize
from recbole_crs.errors import CRSDataError
from recbole_crs.quick_start import create_dataset
from test_windows import all_rows, assert_same_batches, assert_same_interaction, write_with_split
from tiny_data import isolated_run_dir, ml100k_config, tiny_config, unsaved_run_results, write_tiny_dataset

LOADERS = ("recbole", "compact")


def build(model, name, config_dict, loading, windows="lazy"):
    config = Config(model=model, dataset=name,
                    config_dict={**config_dict, "inter_loading": loading, "history_windows": windows})
    init_seed(config["seed"], config["reproducibility"])
    return config, create_dataset(config)


def assert_same_properties(a, b):
    for name in ("field2type", "field2source", "field2seqlen", "field2bucketnum"):
        assert getattr(a, name) == getattr(b, name), name
    assert a.field2id_token.keys() == b.field2id_token.keys()
    for field, tokens in a.field2id_token.items():
        other = b.field2id_token[field]
        assert tokens.dtype == other.dtype and np.array_equal(tokens, other), field
        assert a.field2token_id[field] == b.field2token_id[field], field
    assert (a.field2id_token[a.iid_field] is a.field2id_token.get(a.rejected_field, a.field2id_token[a.iid_field]))
    assert_same_interaction(a.item_feat, b.item_feat)
    assert torch.equal(a.item_attributes, b.item_attributes)
    assert torch.equal(a.attribute_item_mask, b.attribute_item_mask)


def check_same_dataset(model, name, config_dict, windows, seed=7):
    """Both loaders: same properties, rows, splits, per-turn states and batches. Returns the compact dataset."""
    built = {loading: build(model, name, config_dict, loading, windows) for loading in LOADERS}
    (config_r, data_r), (config_c, data_c) = built["recbole"], built["compact"]
    assert not data_r._compact_inter and data_c._compact_inter
    init_seed(seed, True)
    loaders_r = data_preparation(config_r, data_r)  # builds: format, checks, augmentation, split, states
    init_seed(seed, True)
    loaders_c = data_preparation(config_c, data_c)
    assert_same_properties(data_r, data_c)
    assert len(data_r) == len(data_c)
    assert_same_interaction(all_rows(data_r), all_rows(data_c))
    for loader_r, loader_c in zip(loaders_r, loaders_c):
        assert_same_interaction(all_rows(loader_r._dataset), all_rows(loader_c._dataset))
        assert_same_batches(loader_r, loader_c, seed)
    return data_c


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [sys.argv[0]])
    return tmp_path


def write_awkward(root):
    """The tiny data with empty cells, a missing item cell (NaN: RecBole gives it id 0), float turns, a split."""
    write_with_split(root)
    path = os.path.join(str(root), "tiny-crs", "tiny-crs.inter")
    header, *lines = open(path).read().splitlines()
    out = [header + "\tconfirmed_turns:float_seq\trejected_turns:float_seq"]
    for line in lines:
        cells = line.split("\t")
        n_confirmed, n_rejected = len(cells[3].split()), len(cells[4].split())
        confirmed_turns = " ".join(str(t + 1) for t in range(n_confirmed))
        rejected_turns = " ".join(str(n_confirmed) for _ in range(n_rejected))  # rejected on the last turn
        out.append("\t".join(cells + [confirmed_turns, rejected_turns]))
    open(path, "w").write("\n".join(out) + "\n")


@pytest.mark.parametrize("windows", ["lazy", "materialized"])
def test_tiny_dataset_is_identical(in_tmp, windows):
    write_tiny_dataset(str(in_tmp))
    data = check_same_dataset("SASRec", "tiny-crs", tiny_config(in_tmp), windows)
    assert isinstance(data.inter_feat, WindowedInteraction) == (windows == "lazy")


@pytest.mark.parametrize("windows", ["lazy", "materialized"])
def test_tiny_with_split_turns_and_truncation_is_identical(in_tmp, windows):
    write_awkward(in_tmp)
    config = tiny_config(in_tmp, seq_len={"rejected_items": 1, "rejected_turns": 1})
    data = check_same_dataset("SASRec", "tiny-crs", config, windows)
    assert data.field2seqlen["rejected_items"] == 1
    # per-turn states of the evaluated rows come from the encoded columns too
    assert data.has_turn_columns


# What the tiny data adds so that RecBole's filters remove the last row of some token: u5's four rows (an item i7
# and an attribute d nobody else has, a rejected item i8 nobody interacts with, a duplicate (u5, i7) pair, a row
# without a channel).
FILTERED_ITEMS = {"i7": ["d"], "i8": ["d"]}
FILTERED_EXTRA_ROWS = [
    "u5\ti7\t10\td\ti8\tweb",
    "u5\ti1\t11\ta\t\tweb",
    "u5\ti7\t12\td\t\t",
    "u5\ti2\t13\ta\ti7\tweb",
]
# Missing values: a row without a user (RecBole drops it) whose channel 'phone' no other row has, a row without
# a timestamp (RecBole fills in the mean).
MISSING_VALUE_ROWS = ["\ti1\t3\ta\t\tphone", "u2\ti4\t\tc\t\tweb"]


def write_filterable(root, extra_rows=FILTERED_EXTRA_ROWS):
    """The tiny data with a ``channel`` token column, items i7 and i8, and ``extra_rows``."""
    from tiny_data import ITEM_ATTRIBUTES

    folder = write_tiny_dataset(str(root), item_attributes={**ITEM_ATTRIBUTES, **FILTERED_ITEMS})
    path = os.path.join(folder, "tiny-crs.inter")
    header, *lines = open(path).read().splitlines()
    lines = [f"{line}\tweb" for line in lines] + list(extra_rows)
    open(path, "w").write("\n".join([header + "\tchannel:token"] + lines) + "\n")


@pytest.mark.parametrize("windows", ["lazy", "materialized"])
def test_missing_values_give_the_same_dataset(in_tmp, windows):
    write_filterable(in_tmp, FILTERED_EXTRA_ROWS + MISSING_VALUE_ROWS)
    data = check_same_dataset("SASRec", "tiny-crs", tiny_config(in_tmp), windows)
    assert len(data) == 20  # 25 rows of 5 users: the row without a user is gone, the one without a timestamp kept
    assert "phone" not in data.field2token_id["channel"]


@pytest.mark.parametrize("filters, targets", [
    ({}, 19),  # 24 rows of 5 users: a user's first row is no target
    ({"user_inter_num_interval": "[5,inf)"}, 16),  # drops u5, and with it every row of u5
    ({"item_inter_num_interval": "[3,inf)"}, 13),  # drops i4, i6, i7, i8 and their rows: attribute d is gone
    ({"user_inter_num_interval": "[4,inf)", "item_inter_num_interval": "[3,inf)"}, 12),  # then u5 (2 rows left)
    ({"val_interval": {"timestamp": "[0,9]"}}, 16),  # a float interval drops u5
    ({"val_interval": {"channel": ["web"]}}, 18),  # a token set drops the row without a channel
    ({"rm_dup_inter": "first"}, 17),  # u4's second i3 and u5's second i7
    ({"rm_dup_inter": "last"}, 17),  # u4's first i3 and u5's first i7, the only row rejecting i8
], ids=lambda value: ",".join(value) if isinstance(value, dict) else None)
@pytest.mark.parametrize("windows", ["lazy", "materialized"])
def test_every_recbole_filter_gives_the_same_dataset(in_tmp, filters, targets, windows):
    """RecBole's filters drop rows after loading; a token whose last row they drop has no id any more."""
    write_filterable(in_tmp)
    data = check_same_dataset("SASRec", "tiny-crs", tiny_config(in_tmp, **filters), windows)
    assert len(data) == targets
    if "item_inter_num_interval" in filters:
        assert "d" not in data.field2token_id["attributes"]
    if "user_inter_num_interval" in filters or "timestamp" in filters.get("val_interval", {}):
        assert "u5" not in data.field2token_id["user_id"]


@pytest.mark.parametrize("loading", LOADERS)
@pytest.mark.parametrize("field, interval, problem", [
    ("confirmed_turns", "[1,1]", "a float_seq field: RecBole filters rows by the value of a token or float field"),
    ("confirmed_attributes", ["a"], "a token_seq field"),
    ("rating", "[3,5]", "which tiny-crs's atomic files do not have"),
])
def test_a_val_interval_recbole_cannot_apply_is_refused(in_tmp, loading, field, interval, problem):
    """RecBole fails on a float_seq interval and drops every row for a token_seq one; the compact loader compared
    codes. Both loaders refuse them in one line."""
    write_awkward(in_tmp)
    with pytest.raises(CRSDataError, match=f"^val_interval names '{field}', {re.escape(problem)}") as error:
        build("SASRec", "tiny-crs", tiny_config(in_tmp, val_interval={field: interval}), loading)
    assert "\n" not in str(error.value)


def test_crspretrain_batches_and_per_turn_finetune_samples_are_identical(in_tmp):
    write_awkward(in_tmp)
    config_dict = tiny_config(in_tmp, finetune_rows="conversations", finetune_samples="per_turn")
    check_same_dataset("CRSPretrain", "tiny-crs", config_dict, "lazy")
    samples = {}
    for loading in LOADERS:
        config, data = build("CRSPretrain", "tiny-crs", config_dict, loading)
        train_data = data_preparation(config, data)[0]
        rows, counts = finetune_samples(config, train_data._dataset)
        samples[loading] = (all_rows(train_data._dataset.copy(rows)), counts)
    assert samples["recbole"][1] == samples["compact"][1]
    assert samples["compact"][1].samples > samples["compact"][1].rows / 2  # several states per conversation
    assert_same_interaction(samples["recbole"][0], samples["compact"][0])


def test_conversational_rows_of_an_encoded_column_match_the_decoded_column(in_tmp, monkeypatch):
    """Fine-tuning's conversational rows: decided per distinct confirmed list and mapped by code when the column
    is encoded, the same rows as the decoded column (and as RecBole's loader), without decoding the column."""
    write_awkward(in_tmp)
    path = os.path.join(str(in_tmp), "tiny-crs", "tiny-crs.inter")
    header, *lines = open(path).read().splitlines()
    for row in (11, 12):  # two training rows of u3 without a conversation: a history row each
        cells = lines[row].split("\t")
        assert cells[0] == "u3" and cells[5] == "train"
        cells[3] = cells[4] = cells[6] = cells[7] = ""
        lines[row] = "\t".join(cells)
    open(path, "w").write("\n".join([header] + lines) + "\n")
    config_dict = tiny_config(in_tmp, finetune_rows="conversations")
    train = {}
    for loading in LOADERS:
        config, data = build("CRSPretrain", "tiny-crs", config_dict, loading)
        train[loading] = data_preparation(config, data)[0]._dataset
    encoded = train["compact"]
    assert "confirmed_attributes" in encoded.inter_feat.encoded
    decoded = encoded.copy(materialize(encoded.inter_feat))
    assert not isinstance(decoded.inter_feat, WindowedInteraction)
    expected = conversational_rows(decoded)
    recbole = conversational_rows(train["recbole"])

    def no_decoding(self, field):
        raise AssertionError(f"decoded the whole column {field}")

    monkeypatch.setattr(WindowedInteraction, "_decode", no_decoding)
    found = conversational_rows(encoded)
    assert found.dtype == torch.bool and found.shape == (len(encoded),)
    assert torch.equal(found, expected) and torch.equal(found, recbole)
    assert 0 < int(found.sum()) < len(found)  # rows with and without a conversation


def test_lazy_compact_columns_stay_encoded(in_tmp):
    write_tiny_dataset(str(in_tmp))
    _, data = build("SASRec", "tiny-crs", tiny_config(in_tmp), "compact")
    train_data, _, _ = data_preparation(*build("SASRec", "tiny-crs", tiny_config(in_tmp), "compact"))
    data._change_feat_format()
    inter = data.inter_feat
    for field in ("confirmed_attributes", "rejected_items"):
        assert field in inter.encoded
        codes = inter.interaction[field]
        assert codes.dtype == torch.int32 and codes.dim() == 1  # a code per row, not a padded row
        assert inter[field].dim() == 2 and inter[field].dtype == torch.long  # reads decode
    split_inter = train_data._dataset.inter_feat
    assert "confirmed_attributes" in split_inter.encoded  # splits keep the encoding
    batch = train_data._dataset[np.arange(3)]
    assert not isinstance(batch, WindowedInteraction) and batch["confirmed_attributes"].dim() == 2


def test_option_the_compact_loader_cannot_reproduce_falls_back(in_tmp):
    write_tiny_dataset(str(in_tmp))
    path = os.path.join(str(in_tmp), "tiny-crs", "tiny-crs.inter")
    header, *lines = open(path).read().splitlines()
    rows = [f"{line}\t{i % 3} {i % 5}" for i, line in enumerate(lines)]
    open(path, "w").write("\n".join([header + "\tscores:float_seq"] + rows) + "\n")
    config = tiny_config(in_tmp, normalize_field=["scores"])
    _, data = build("SASRec", "tiny-crs", config, "compact")
    assert not data._compact_inter
    _, reference = build("SASRec", "tiny-crs", config, "recbole")
    data._change_feat_format()
    reference._change_feat_format()
    assert_same_interaction(all_rows(reference), all_rows(data))


def test_the_default_of_an_unset_inter_loading_is_the_yaml_default():
    """``inter_loading: ~`` means the documented default (properties/overall.yaml's), the first allowed value."""
    with open(os.path.join(PROPERTIES_DIR, "overall.yaml"), encoding="utf-8") as handle:
        default = yaml.safe_load(handle)["inter_loading"]
    assert inter_loading_mode({"inter_loading": None}) == default == INTER_LOADINGS[0]


def test_unknown_loading_is_refused(in_tmp):
    write_tiny_dataset(str(in_tmp))
    with pytest.raises(ValueError, match="inter_loading must be one of"):
        inter_loading_mode({"inter_loading": "fast"})
    with pytest.raises(ValueError, match="inter_loading must be one of"):
        build("SASRec", "tiny-crs", tiny_config(in_tmp), "fast")


@pytest.mark.parametrize("loading", LOADERS)
def test_row_checks_in_chunks_report_every_bad_row(in_tmp, monkeypatch, loading):
    """A target in its own rejected list on three rows of different chunks: one error counting all three."""
    sequences = {user: [list(row) for row in rows] for user, rows in __import__("tiny_data").USER_SEQUENCES.items()}
    for user in ("u1", "u3", "u4"):
        item = sequences[user][2][0]
        sequences[user][2][2] = [item]
    write_tiny_dataset(str(in_tmp), user_sequences={u: [tuple(r) for r in rows] for u, rows in sequences.items()})
    monkeypatch.setattr(checks_module, "_CHECK_CHUNK_ROWS", 2)
    _, data = build("SASRec", "tiny-crs", tiny_config(in_tmp), loading)
    with pytest.raises(CRSDataError, match=r"^3 rows of tiny-crs.inter list their own target") as error:
        data._change_feat_format()
    assert "\n" not in str(error.value)


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory):
    root = tmp_path_factory.mktemp("ml100k-compact")
    config_dict = ml100k_config(root)
    with isolated_run_dir(root):
        yield config_dict


def test_ml100k_dataset_and_metrics_are_identical(ml100k):
    check_same_dataset("SASRec", "ml-100k-crs", ml100k, "lazy", seed=3)
    results = []
    for loading in LOADERS:
        config, dataset = build("SASRec", "ml-100k-crs", ml100k, loading)
        init_seed(config["seed"], True)
        train_data, valid_data, test_data = data_preparation(config, dataset)
        results.append(unsaved_run_results(config, dataset, train_data, valid_data, test_data))
    assert results[0] == results[1]


def test_ml100k_k_core_filtering_gives_the_same_dataset(ml100k):
    """The default loader under k-core filtering on ml-100k-crs (it raised KeyError: '103'): RecBole's dataset."""
    config = {**ml100k, "user_inter_num_interval": "[30,inf)", "item_inter_num_interval": "[10,inf)"}
    data = check_same_dataset("Pop", "ml-100k-crs", config, "lazy", seed=3)
    assert data.user_num - 1 < 943 and data.item_num - 1 < 1682  # users and items were filtered out


def test_ml100k_compact_inter_feat_is_smaller(ml100k):
    sizes = {}
    for loading in LOADERS:
        _, dataset = build("SASRec", "ml-100k-crs", ml100k, loading)
        dataset._change_feat_format()
        sizes[loading] = dataset.inter_feat.nbytes()
    assert sizes["compact"] < sizes["recbole"] / 2


def test_float_columns_parse_to_the_same_float64_as_recboles_python_engine(in_tmp):
    """pandas' C parser rounds some decimal strings differently unless it parses round-trip (as Python does)."""
    write_tiny_dataset(str(in_tmp))
    path = os.path.join(str(in_tmp), "tiny-crs", "tiny-crs.inter")
    header, *lines = open(path).read().splitlines()
    rng = np.random.default_rng(0)
    rows = []
    for line in lines:
        cells = line.split("\t")
        cells[2] = f"{float(cells[2]) * 1e9 + rng.random():.17g}"  # 17 significant digits: ulp-level cases
        rows.append("\t".join(cells))
    open(path, "w").write("\n".join([header] + rows) + "\n")
    frames = {loading: build("SASRec", "tiny-crs", tiny_config(in_tmp), loading)[1].inter_feat for loading in LOADERS}
    assert frames["compact"]["timestamp"].dtype == np.float64
    assert np.array_equal(frames["compact"]["timestamp"].to_numpy(), frames["recbole"]["timestamp"].to_numpy())


@pytest.mark.parametrize("loading", LOADERS)
@pytest.mark.parametrize("suffix, column, cell, expected", [
    ("inter", 2, "yesterday", "column 'timestamp:float' holds 'yesterday', which is not a number"),
    ("inter", 5, "1 two", "column 'confirmed_turns:float_seq' holds '1 two', and 'two' in it is not a number"),
    ("item", 2, "cheap", "column 'price:float' holds 'cheap', which is not a number"),
])
def test_a_float_cell_that_is_not_a_number_is_named(in_tmp, loading, suffix, column, cell, expected):
    """A text cell in a float or float_seq column: one line naming the file, the line, the column and the value
    (pandas' error named neither the file nor the value; float() named no column)."""
    write_tiny_dataset(str(in_tmp))
    path = os.path.join(str(in_tmp), "tiny-crs", f"tiny-crs.{suffix}")
    header, *lines = open(path).read().splitlines()
    header += "\tconfirmed_turns:float_seq" if suffix == "inter" else "\tprice:float"
    rows = [line.split("\t") + ["1"] for line in lines]
    rows[1][column] = cell  # line 3 of the file
    open(path, "w").write("\n".join([header] + ["\t".join(row) for row in rows]) + "\n")
    with pytest.raises(CRSDataError) as error:
        build("SASRec", "tiny-crs", tiny_config(in_tmp), loading)
    assert str(error.value) == f"'{path}' line 3: {expected}" + (
        ". Fix it, or leave the cell empty for a missing value." if "which" in expected
        else " (a float_seq cell is numbers separated by ' '). Fix the cell.")
