"""CRSDataset: validation errors, conversation fields kept per row, attribute tables, split column."""

import os

import pytest
import torch
from recbole.data import data_preparation

from recbole_crs.config import Config
from recbole_crs.data.dataset import CRSDataset
from recbole_crs.errors import CRSDataError
from tiny_data import ITEM_ATTRIBUTES, USER_SEQUENCES, write_tiny_dataset


def build(root, name="tiny-crs", **config):
    config = Config("SASRec", name, config_dict={"data_path": str(root), "MAX_ITEM_LIST_LENGTH": 5,
                                                 "state": "WARNING", **config})
    return CRSDataset(config)


def tokens(dataset, field, ids):
    return [dataset.id2token(field, i) for i in ids if i != 0]


def test_attribute_tables_match_the_item_file(tiny_root):
    dataset = build(tiny_root)
    dataset.build()
    for item, attributes in ITEM_ATTRIBUTES.items():
        item_id = dataset.token2id("item_id", item)
        assert sorted(tokens(dataset, "attributes", dataset.item_attributes[item_id].tolist())) == sorted(attributes)
        for attribute in ("a", "b", "c"):
            attribute_id = dataset.token2id("attributes", attribute)
            assert bool(dataset.attribute_item_mask[attribute_id, item_id]) == (attribute in attributes)
    assert not dataset.attribute_item_mask[0].any()  # padding belongs to no item
    assert dataset.n_attributes == 4  # a, b, c + padding


def test_conversations_share_the_attribute_id_space(tiny_root):
    dataset = build(tiny_root)
    assert list(dataset.field2id_token["confirmed_attributes"]) == list(dataset.field2id_token["attributes"])
    assert list(dataset.field2id_token["rejected_items"]) == list(dataset.field2id_token["item_id"])


def test_conversation_fields_stay_per_row_and_are_not_list_augmented(tiny_root):
    dataset = build(tiny_root)
    train, valid, test = dataset.build()
    assert "confirmed_attributes_list" not in train.inter_feat
    assert "rejected_items_list" not in train.inter_feat
    assert "item_id_list" in train.inter_feat
    # u1's test row: target i5 after i1 i2 i3 i4, conversation [a, c], rejected [i1].
    row = (test.inter_feat["user_id"] == dataset.token2id("user_id", "u1")).nonzero().item()
    assert dataset.id2token("item_id", test.inter_feat["item_id"][row].item()) == "i5"
    assert tokens(dataset, "item_id", test.inter_feat["item_id_list"][row].tolist()) == ["i1", "i2", "i3", "i4"]
    assert tokens(dataset, "attributes", test.inter_feat["confirmed_attributes"][row].tolist()) == ["a", "c"]
    assert tokens(dataset, "item_id", test.inter_feat["rejected_items"][row].tolist()) == ["i1"]


def test_augmentation_matches_recbole_for_history_fields(tiny_root):
    """Our vectorised augmentation gives RecBole's histories and lengths (window of MAX_ITEM_LIST_LENGTH)."""
    from recbole.data.dataset import SequentialDataset

    config = Config("SASRec", "tiny-crs", config_dict={"data_path": str(tiny_root), "MAX_ITEM_LIST_LENGTH": 2,
                                                      "state": "WARNING", "load_col": {"inter": ["user_id", "item_id", "timestamp"]}})
    reference = SequentialDataset(config)
    reference._change_feat_format()
    config_crs = Config("SASRec", "tiny-crs", config_dict={"data_path": str(tiny_root), "MAX_ITEM_LIST_LENGTH": 2,
                                                          "state": "WARNING"})
    ours = CRSDataset(config_crs)
    ours._change_feat_format()
    for field in ("item_id_list", "timestamp_list", "item_length", "item_id", "user_id"):
        ref = [dataset_tokens for dataset_tokens in reference.inter_feat[field].tolist()]
        got = ours.inter_feat[field].tolist()
        if field in ("item_id_list", "item_id"):
            ref = [[reference.id2token("item_id", i) for i in (r if isinstance(r, list) else [r])] for r in ref]
            got = [[ours.id2token("item_id", i) for i in (g if isinstance(g, list) else [g])] for g in got]
        if field == "user_id":
            ref = [reference.id2token("user_id", i) for i in ref]
            got = [ours.id2token("user_id", i) for i in got]
        assert got == ref, field


def expect_error(root, match, **config):
    with pytest.raises(CRSDataError, match=match):
        dataset = build(root, **config)
        dataset.build()


def test_missing_attribute_field_is_named(tmp_path):
    write_tiny_dataset(str(tmp_path), item_header="item_id:token\ttags:token_seq")
    expect_error(tmp_path, r"'attributes' not found in tiny-crs.item.*ATTRIBUTE_FIELD")


def test_missing_conversation_field_is_named(tmp_path):
    write_tiny_dataset(str(tmp_path), inter_header="user_id:token\titem_id:token\ttimestamp:float\tdialog:token_seq\trejected_items:token_seq")
    expect_error(tmp_path, r"'confirmed_attributes' not found in tiny-crs.inter.*CONFIRMED_FIELD")


def test_wrong_field_type_is_named(tmp_path):
    write_tiny_dataset(str(tmp_path), inter_header="user_id:token\titem_id:token\ttimestamp:float\tconfirmed_attributes:token\trejected_items:token_seq")
    expect_error(tmp_path, r"'confirmed_attributes' has type token; it must be token_seq")


def test_unknown_attribute_token_is_rejected(tmp_path):
    sequences = {u: list(rows) for u, rows in USER_SEQUENCES.items()}
    sequences["u1"][1] = ("i2", ["zz"], [])
    write_tiny_dataset(str(tmp_path), user_sequences=sequences)
    expect_error(tmp_path, r"1 rows .* unknown attribute 'zz'")


def test_unknown_rejected_item_is_rejected(tmp_path):
    sequences = {u: list(rows) for u, rows in USER_SEQUENCES.items()}
    sequences["u2"][2] = ("i1", ["a"], ["i99"])
    write_tiny_dataset(str(tmp_path), user_sequences=sequences)
    expect_error(tmp_path, r"'rejected_items' tokens .* unknown item 'i99'")


def test_confirmed_attribute_the_target_lacks_is_rejected(tmp_path):
    sequences = {u: list(rows) for u, rows in USER_SEQUENCES.items()}
    sequences["u3"][0] = ("i4", ["a"], [])  # i4 only has c
    write_tiny_dataset(str(tmp_path), user_sequences=sequences)
    expect_error(tmp_path, r"1 rows .* confirm attributes their target item does not have")


def test_rejected_target_is_rejected(tmp_path):
    sequences = {u: list(rows) for u, rows in USER_SEQUENCES.items()}
    sequences["u4"][1] = ("i3", ["c"], ["i3"])
    write_tiny_dataset(str(tmp_path), user_sequences=sequences)
    expect_error(tmp_path, r"list their own target in 'rejected_items'")


def test_empty_conversation_on_an_evaluated_row_is_rejected(tmp_path):
    sequences = {u: list(rows) for u, rows in USER_SEQUENCES.items()}
    sequences["u1"][-1] = ("i5", [], [])
    write_tiny_dataset(str(tmp_path), user_sequences=sequences)
    expect_error(tmp_path, r"1 of 4 test rows of tiny-crs have an empty conversation")


def test_missing_dataset_folder_says_how_to_create_it(tmp_path):
    with pytest.raises(CRSDataError, match=r"recbole_crs.data.convert"):
        build(tmp_path, name="tiny-crs")


def write_with_split(root, phases_of):
    """The tiny dataset plus a split column given by phases_of(user, position)."""
    folder = write_tiny_dataset(str(root))
    path = os.path.join(folder, "tiny-crs.inter")
    lines = open(path).read().splitlines()
    out = [lines[0] + "\tsplit:token"]
    for line in lines[1:]:
        user, _, t = line.split("\t")[:3]
        out.append(line + "\t" + phases_of(user, int(float(t))))
    open(path, "w").write("\n".join(out) + "\n")


def test_split_column_decides_the_split(tmp_path):
    # u1 and u2 are test users, u3 a validation user; every other row trains.
    def phases_of(user, t):
        if t == 4 and user in ("u1", "u2"):
            return "test"
        return "valid" if (t == 4 and user == "u3") else "train"

    write_with_split(tmp_path, phases_of)
    dataset = build(tmp_path)
    train, valid, test = dataset.build()
    users = lambda d: sorted(dataset.id2token("user_id", u) for u in d.inter_feat["user_id"].tolist())
    assert users(test) == ["u1", "u2"]
    assert users(valid) == ["u3"]
    assert len(train) == 4 * 4 - 3  # every non-first row minus the three evaluated rows


def test_unknown_split_value_is_rejected(tmp_path):
    write_with_split(tmp_path, lambda user, t: "dev" if t == 4 else "train")
    expect_error(tmp_path, r"'split' holds 'dev'; allowed values are train, valid, test")


def test_dataloaders_carry_conversations_to_evaluation(tiny_root):
    config = Config("SASRec", "tiny-crs", config_dict={"data_path": str(tiny_root), "MAX_ITEM_LIST_LENGTH": 5,
                                                      "state": "WARNING", "eval_batch_size": 8})
    dataset = CRSDataset(config)
    _, _, test_data = data_preparation(config, dataset)
    interaction = next(iter(test_data))[0]
    assert interaction["confirmed_attributes"].shape == (4, 2)
    assert torch.all(interaction["confirmed_attributes"][:, 0] > 0)


# ---------------------------------------------------------------------------------------------- integrity
def one_line_error(root, match, **config):
    with pytest.raises(CRSDataError, match=match) as caught:
        build(root, **config).build()
    assert "\n" not in str(caught.value)
    return str(caught.value)


def append_inter_lines(folder, lines, name="tiny-crs"):
    with open(os.path.join(folder, f"{name}.inter"), "a") as handle:
        handle.write("".join(line + "\n" for line in lines))


def test_duplicate_rows_are_an_error_with_count_examples_and_fix(tmp_path):
    folder = write_tiny_dataset(str(tmp_path))
    append_inter_lines(folder, ["u1\ti2\t1\ta\ti1", "u1\ti2\t1\ta\ti1", "u3\ti4\t0\tc\t"])
    message = one_line_error(tmp_path, r"3 rows of tiny-crs.inter repeat an earlier row's \(user, item, timestamp\)")
    assert "('u1', 'i2', 1.0)" in message and "rm_dup_inter" in message


def test_duplicate_rows_are_removed_when_rm_dup_inter_asks_for_it(tmp_path):
    folder = write_tiny_dataset(str(tmp_path))
    append_inter_lines(folder, ["u1\ti2\t1\ta\ti1"])  # repeats u1's (i2, t=1); u4 has i3 at t=1 and t=4
    dataset = build(tmp_path, rm_dup_inter="first")
    rows = [(dataset.id2token("user_id", user), dataset.id2token("item_id", item), time)
            for user, item, time in dataset.inter_feat[["user_id", "item_id", "timestamp"]].itertuples(index=False)]
    assert len(rows) == 19 and len(set(rows)) == 19  # 21 lines, two repeated (user, item) pairs removed
    assert [time for user, item, time in rows if (user, item) == ("u4", "i3")] == [1.0]  # the first one kept
    train, valid, test = dataset.build()
    assert len(train) + len(valid) + len(test) == 15  # each user's first row is no target


def test_an_item_listed_twice_is_an_error_naming_both_lines(tmp_path):
    folder = write_tiny_dataset(str(tmp_path))
    with open(os.path.join(folder, "tiny-crs.item"), "a") as handle:
        handle.write("i2\tb\n")  # line 8; i2 is on line 3
    message = one_line_error(tmp_path, r"^'.*tiny-crs.item' lists item_id 'i2' more than once \(lines 3, 8; 1 ids ")
    assert "keep one line per id" in message


@pytest.mark.parametrize("loading", ["compact", "recbole"])
@pytest.mark.parametrize("line, problem", [
    ("u1\ti6\t9\tb", "line 23: 4"),  # no rejected_items cell: it would be read as empty
    ("u1\ti6\t9", "line 23: 3"),  # no conversation: it would be an empty one
    ("u1\ti6\t9\tb\t\textra", "line 23: 6"),  # one field too many: pandas' error named no file
])
def test_a_line_without_every_field_is_an_error_naming_it(tmp_path, loading, line, problem):
    folder = write_tiny_dataset(str(tmp_path))
    append_inter_lines(folder, ["", line, ""])  # blank lines are skipped, as pandas skips them
    message = one_line_error(tmp_path, rf"^1 lines of '.*tiny-crs.inter' do not have the header's 5 fields \({problem}\)",
                             inter_loading=loading)
    assert "Write every field" in message


def test_inter_item_missing_from_item_file_is_an_error_not_a_silent_drop(tmp_path):
    folder = write_tiny_dataset(str(tmp_path))
    append_inter_lines(folder, ["u1\ti9\t9\t\t"])
    one_line_error(tmp_path, r"1 rows of tiny-crs.inter have items that are not in tiny-crs.item \(e.g. 'i9'.*would be dropped")


def test_items_without_attributes_are_named(tmp_path):
    write_tiny_dataset(str(tmp_path), item_attributes=dict(ITEM_ATTRIBUTES, i7=[], i8=[]))
    one_line_error(tmp_path, r"2 items of tiny-crs.item have no 'attributes' \(e.g. 'i7', 'i8'\).*drop-items-without-attributes")


def test_items_without_attributes_count_is_right_in_the_log(tiny_root):
    dataset = build(tiny_root)
    assert "Items without attributes: 0" in str(dataset)
    dataset._n_items_without_attributes = 2  # as counted while loading, before the tables exist
    assert "Items without attributes: 2" in str(dataset)


def test_token_timestamp_is_an_error_with_the_fix(tmp_path):
    header = "user_id:token\titem_id:token\ttimestamp:token\tconfirmed_attributes:token_seq\trejected_items:token_seq"
    write_tiny_dataset(str(tmp_path), inter_header=header)
    one_line_error(tmp_path, r"'timestamp' has type token; it must be float.*'timestamp:float'")


@pytest.mark.parametrize("content, problem", [("", "is empty"), ("user_id:token\titem_id:token\n", "has a header but no rows")])
def test_empty_or_header_only_inter_is_a_clear_error(tmp_path, content, problem):
    folder = write_tiny_dataset(str(tmp_path))
    with open(os.path.join(folder, "tiny-crs.inter"), "w") as handle:
        handle.write(content)
    one_line_error(tmp_path, rf"tiny-crs.inter' {problem}: it needs a 'name:type' header")


def test_unreadable_dataset_folder_is_not_reported_as_missing(tmp_path):
    with open(tmp_path / "tiny-crs", "w") as handle:  # a file where the folder should be
        handle.write("x")
    message = one_line_error(tmp_path, r"cannot read '.*tiny-crs': Not a directory")
    assert "No interaction file" not in message


def test_unreadable_inter_file_is_not_reported_as_missing(tmp_path):
    folder = write_tiny_dataset(str(tmp_path))
    os.remove(os.path.join(folder, "tiny-crs.inter"))
    os.mkdir(os.path.join(folder, "tiny-crs.inter"))
    one_line_error(tmp_path, r"cannot read '.*tiny-crs.inter': it is not a regular file")


def test_unreadable_file_reports_the_os_error(tmp_path, monkeypatch):
    """As root, chmod cannot make a file unreadable: the OS error is injected where the file is opened."""
    folder = write_tiny_dataset(str(tmp_path))
    real_open = open

    def deny(path, *args, **kwargs):
        if str(path).endswith("tiny-crs.inter"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", deny)
    one_line_error(tmp_path, r"cannot read '.*tiny-crs.inter': Permission denied")
    assert folder


def test_files_that_differ_from_their_manifest_are_refused(tmp_path):
    import json

    from recbole_crs.artifacts import file_digests

    folder = write_tiny_dataset(str(tmp_path))
    config = Config("SASRec", "tiny-crs", config_dict={"data_path": str(tmp_path), "state": "WARNING"})
    with open(os.path.join(folder, "tiny-crs.manifest.json"), "w") as handle:
        json.dump({"format": 1, "files": file_digests(config)}, handle)
    build(tmp_path).build()  # matching manifest: fine
    append_inter_lines(folder, ["u4\ti1\t9\tb\t"])
    one_line_error(tmp_path, r"tiny-crs.manifest.json .* does not match the files \(tiny-crs.inter differs from it\).*Re-run the conversion")
