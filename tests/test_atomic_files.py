"""The text of atomic files, in both .inter loaders (and RecBole's .item loading): tokens are text (``NA``, ``nan``,
``null``, ``None`` are ids like any other), a UTF-8 byte-order mark is no part of the first header field."""

import os

import pytest
from recbole.data import data_preparation
from recbole.utils import init_seed

from test_compact_loading import LOADERS, all_rows, assert_same_interaction, build, in_tmp  # noqa: F401 (fixture)
from tiny_data import ITEM_ATTRIBUTES, USER_SEQUENCES, tiny_config, write_tiny_dataset

# Tokens pandas reads as missing by default, given to users, items and attributes of the tiny data.
USERS = {"u1": "NA", "u2": "null", "u3": "None", "u4": "nan"}
ITEMS = {"i1": "NA", "i2": "N/A", "i3": "NULL"}
ATTRIBUTES = {"a": "NA", "b": "nan", "c": "<NA>"}


def renamed_data():
    """(item attributes, user sequences) of the tiny data with the tokens above."""
    def item(token):
        return ITEMS.get(token, token)

    def attributes(tokens):
        return [ATTRIBUTES[a] for a in tokens]

    items = {item(i): attributes(attrs) for i, attrs in ITEM_ATTRIBUTES.items()}
    sequences = {USERS[user]: [(item(i), attributes(confirmed), [item(r) for r in rejected])
                               for i, confirmed, rejected in rows] for user, rows in USER_SEQUENCES.items()}
    return items, sequences


def split_rows(config, dataset):
    init_seed(config["seed"], True)
    return [all_rows(loader._dataset) for loader in data_preparation(config, dataset)]


@pytest.mark.parametrize("loading", LOADERS)
def test_tokens_pandas_calls_missing_are_ids_like_any_other(in_tmp, loading):
    """A user named NA keeps their rows, an attribute NA stays in the conversation: renaming every token to one of
    pandas' missing markers gives the same dataset, id for id."""
    write_tiny_dataset(str(in_tmp / "plain"))
    config, plain = build("SASRec", "tiny-crs", tiny_config(in_tmp / "plain"), loading)
    items, sequences = renamed_data()
    write_tiny_dataset(str(in_tmp / "renamed"), item_attributes=items, user_sequences=sequences)
    renamed_config, renamed = build("SASRec", "tiny-crs", tiny_config(in_tmp / "renamed"), loading)
    assert len(renamed.inter_feat) == len(plain.inter_feat) == 20
    for field, names in (("user_id", USERS), ("item_id", ITEMS), ("attributes", ATTRIBUTES)):
        for token, new in names.items():
            assert renamed.field2token_id[field][new] == plain.field2token_id[field][token], (field, new)
    for ours, reference in zip(split_rows(renamed_config, renamed), split_rows(config, plain)):
        assert_same_interaction(ours, reference)


def test_an_empty_cell_is_still_missing(in_tmp):
    """Only the empty cell: a row without a user is dropped (RecBole's rule), an empty timestamp is filled in."""
    folder = write_tiny_dataset(str(in_tmp))
    with open(os.path.join(folder, "tiny-crs.inter"), "a") as handle:
        handle.write("\ti1\t9\ta\t\n" "u1\ti6\t\tb\t\n")
    for loading in LOADERS:
        _, dataset = build("SASRec", "tiny-crs", tiny_config(in_tmp), loading)
        assert len(dataset.inter_feat) == 21, loading
        assert not dataset.inter_feat["timestamp"].isnull().any()


@pytest.mark.parametrize("loading", LOADERS)
def test_a_byte_order_mark_is_not_part_of_the_header(in_tmp, loading):
    write_tiny_dataset(str(in_tmp / "plain"))
    config, plain = build("SASRec", "tiny-crs", tiny_config(in_tmp / "plain"), loading)
    folder = write_tiny_dataset(str(in_tmp / "bom"))
    for suffix in ("inter", "item"):
        path = os.path.join(folder, f"tiny-crs.{suffix}")
        data = open(path, "rb").read()
        open(path, "wb").write(b"\xef\xbb\xbf" + data)
    bom_config, with_bom = build("SASRec", "tiny-crs", tiny_config(in_tmp / "bom"), loading)
    assert "user_id" in with_bom.field2type and "item_id" in with_bom.item_feat
    for ours, reference in zip(split_rows(bom_config, with_bom), split_rows(config, plain)):
        assert_same_interaction(ours, reference)
