"""Tests of the dataset converters (recbole_crs.data.convert) and the default ml-100k-crs builder."""

import json
import os
import re
import subprocess
import sys

import pytest

from recbole_crs.data.convert import (
    ConversionError,
    convert_precrs_lastfm,
    convert_recbole,
    convert_scpr_lastfm_star,
    format_float,
    main,
    parse_holdout,
    parse_train_conversations,
)
from recbole_crs.data.fields import CANDIDATE_COLUMN, CONFIRMED_TURNS_COLUMN, REJECTED_TURNS_COLUMN
from recbole_crs.data.ml100k import builtin_base, builtin_options, ensure_builtin, ensure_ml100k_crs

# The authors' Last.fm files: ../shared/data next to the repository root (where CI's clean checkout finds them too).
PRECRS_REAL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data",
                           "precrs-lastfm")

# ---------------------------------------------------------------------------------------------- helpers
PRECRS_ITEMS = {"1": [1, 2], "2": [1, 3], "3": [2, 3], "5": [1, 2, 3], "6": [4], "8": [1]}  # no item 4 or 7
PRECRS_TRAIN = [
    {
        "user": 1,
        "context": [1, 2],
        "pos_item": 5,
        "neg_item": 3,
        "initial": 1,
        "dialog": [[1, 4], [3, 1, 2], [2, 1]],
        "pos_preference": [1, 2, 3],
    },
]
PRECRS_VALID = [{"user": 2, "context": [3], "pos_item": 1, "neg_item": 2, "initial": 2, "dialog": [[2, 3]]}]
PRECRS_TEST = [
    {"user": 3, "context": [8, 1], "pos_item": 3, "neg_item": 1, "initial": 3, "dialog": [[3, 3], [2, 1]]}
]


def write_json(path, data):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    return str(path)


def read_atomic(path):
    """(header columns, rows as lists of fields) of an atomic file; also checks line ends and encoding."""
    with open(path, "rb") as handle:
        raw = handle.read()
    assert b"\r" not in raw and raw.endswith(b"\n")
    lines = raw.decode("utf-8").split("\n")[:-1]
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


def read_dataset(folder, name):
    """Parse a written CRS dataset into (item -> attributes, list of row dicts keyed by field name)."""
    item_header, item_rows = read_atomic(os.path.join(folder, f"{name}.item"))
    assert item_header == ["item_id:token", "attributes:token_seq"]
    items = {row[0]: row[1].split(" ") for row in item_rows}
    header, rows = read_atomic(os.path.join(folder, f"{name}.inter"))
    names = [column.split(":")[0] for column in header]
    return items, [dict(zip(names, row)) for row in rows]


INTER_HEADER = [
    "user_id:token",
    "item_id:token",
    "timestamp:float",
    "confirmed_attributes:token_seq",
    "rejected_items:token_seq",
    "confirmed_turns:float_seq",
    "rejected_turns:float_seq",
]


def turns(text):
    """Parse a turn column; every value must be an integer written without a decimal point."""
    values = text.split()
    assert all(v.isdigit() for v in values), values
    return [int(v) for v in values]


def conversation_turns(row):
    """T of a row: the largest turn in either turn column."""
    return max(turns(row["confirmed_turns"]) + turns(row["rejected_turns"]))


def check_format(folder, name):
    """The invariants of docs/data-format.md hold for every row; returns the parsed dataset."""
    items, rows = read_dataset(folder, name)
    header, _ = read_atomic(os.path.join(folder, f"{name}.inter"))
    assert header[: len(INTER_HEADER)] == INTER_HEADER
    assert all(attrs and all(attrs) for attrs in items.values())
    item_set = set(items)
    for row in rows:
        confirmed = row["confirmed_attributes"].split()
        rejected = row["rejected_items"].split()
        assert row["item_id"] in items
        assert set(confirmed) <= set(items[row["item_id"]])
        assert row["item_id"] not in rejected and set(rejected) <= item_set
        if row.get("split", "train") != "train":
            assert confirmed, "evaluated rows need a conversation"
        # Turns are parallel to their lists, 1-based, non-decreasing; the initial attribute is turn 1.
        confirmed_turns, rejected_turns = turns(row["confirmed_turns"]), turns(row["rejected_turns"])
        assert len(confirmed_turns) == len(confirmed) and len(rejected_turns) == len(rejected)
        assert confirmed_turns == sorted(confirmed_turns) and rejected_turns == sorted(rejected_turns)
        assert all(t >= 1 for t in rejected_turns)
        if confirmed:
            assert confirmed_turns[0] == 1
        else:
            assert not rejected_turns
    return items, rows


def file_bytes(folder, name):
    return [open(os.path.join(folder, f"{name}.{suffix}"), "rb").read() for suffix in ("item", "inter")]


@pytest.fixture
def precrs_files(tmp_path):
    return {
        "item_dict": write_json(tmp_path / "items.json", PRECRS_ITEMS),
        "train": [write_json(tmp_path / "train.json", PRECRS_TRAIN)],
        "valid": [write_json(tmp_path / "valid.json", PRECRS_VALID)],
        "test": [write_json(tmp_path / "test.json", PRECRS_TEST)],
    }


def precrs_with(tmp_path, records=None, items=None, **options):
    """Convert one record file (given split 'train') against an item dict; both default to the fixtures."""
    item_dict = write_json(tmp_path / "items_case.json", PRECRS_ITEMS if items is None else items)
    train = write_json(
        tmp_path / "records_case.json", PRECRS_TRAIN + PRECRS_TEST if records is None else records
    )
    return convert_precrs_lastfm(item_dict, str(tmp_path / "out" / "case"), train=[train], **options)


# ---------------------------------------------------------------------------------------------- precrs-lastfm
def test_precrs_happy_path(tmp_path, precrs_files):
    out = tmp_path / "dataset" / "toy"
    report = convert_precrs_lastfm(
        precrs_files["item_dict"],
        str(out),
        train=precrs_files["train"],
        valid=precrs_files["valid"],
        test=precrs_files["test"],
    )
    assert report.records_read == report.records_kept == 3 and not report.skipped
    assert dict(report.rows) == {"train": 6, "valid": 1, "test": 1}
    items, rows = check_format(out, "toy")
    assert open(out / "toy.item", encoding="utf-8").read() == (
        "item_id:token\tattributes:token_seq\n1\t1 2\n2\t1 3\n3\t2 3\n5\t1 2 3\n6\t4\n8\t1\n"
    )
    assert [(r["user_id"], r["item_id"], r["timestamp"], r["split"]) for r in rows] == [
        ("1", "1", "0", "train"),
        ("1", "2", "1", "train"),
        ("1", "5", "2", "train"),
        ("2", "3", "0", "train"),
        ("2", "1", "1", "valid"),
        ("3", "8", "0", "train"),
        ("3", "1", "1", "train"),
        ("3", "3", "2", "test"),
    ]
    targets = {
        r["user_id"]: r for r in rows if r["timestamp"] == {"1": "2", "2": "1", "3": "2"}[r["user_id"]]
    }
    # initial, then [attr, n] turns with the repeated first turn removed; list turns are the rejected items.
    assert (targets["1"]["confirmed_attributes"], targets["1"]["rejected_items"]) == ("1 2", "3 1 2")
    assert (targets["2"]["confirmed_attributes"], targets["2"]["rejected_items"]) == ("2", "")
    assert (targets["3"]["confirmed_attributes"], targets["3"]["rejected_items"]) == ("3 2", "")
    # Dialogue turn i (1-based) happens at turn i: user 1's [3, 1, 2] is turn 2, its [2, 1] turn 3.
    assert (targets["1"]["confirmed_turns"], targets["1"]["rejected_turns"]) == ("1 3", "2 2 2")
    assert (targets["2"]["confirmed_turns"], targets["2"]["rejected_turns"]) == ("1", "")
    assert (targets["3"]["confirmed_turns"], targets["3"]["rejected_turns"]) == ("1 2", "")
    inter_header = open(out / "toy.inter", encoding="utf-8").readline().rstrip("\n").split("\t")
    assert inter_header == INTER_HEADER + ["split:token"]
    assert CONFIRMED_TURNS_COLUMN in inter_header and REJECTED_TURNS_COLUMN in inter_header
    for row in rows:  # context rows carry simulated conversations
        assert row["confirmed_attributes"].split()[0] in items[row["item_id"]]
    assert CANDIDATE_COLUMN.split(":")[0] not in rows[0]
    assert report.real_conversations["conversations"] == 3
    assert report.simulated_conversations["conversations"] == 5
    assert "first turns repeating initial: 3" in str(report)


def test_precrs_output_is_byte_identical_across_runs(tmp_path, precrs_files):
    outputs = []
    for run in ("a", "b"):
        convert_precrs_lastfm(
            precrs_files["item_dict"],
            str(tmp_path / run / "toy"),
            train=precrs_files["train"],
            valid=precrs_files["valid"],
            test=precrs_files["test"],
            candidates=3,
        )
        outputs.append(file_bytes(tmp_path / run / "toy", "toy"))
    assert outputs[0] == outputs[1]


def test_precrs_turns_follow_the_kept_dialogue_entries(tmp_path):
    """A repeated attribute adds no entry and no turn; a rejection list gives one turn value per item.

    dialog: turn 1 [1, 4] repeats initial 1 (removed), turn 2 rejects 3 1 2, turn 3 repeats 1 (removed),
    turn 4 confirms 2, turn 5 rejects 6 (a one-item list: any length but 2 is a rejection).
    """
    record = dict(PRECRS_TRAIN[0], dialog=[[1, 4], [3, 1, 2], [1, 2], [2, 1], [6]])
    report = precrs_with(tmp_path, records=[record])
    _, rows = check_format(tmp_path / "out" / "case", "case")
    target = rows[-1]
    assert (target["item_id"], target["confirmed_attributes"], target["rejected_items"]) == (
        "5",
        "1 2",
        "3 1 2 6",
    )
    assert (target["confirmed_turns"], target["rejected_turns"]) == ("1 4", "2 2 2 5")
    assert conversation_turns(target) == len(record["dialog"])
    assert "repeated confirmed attributes removed: 1" in report.notes
    # Context rows carry the simulator's turns (here: the initial attribute at turn 1, nothing rejected).
    assert all(r["confirmed_turns"].split()[0] == "1" for r in rows[:-1])


def many_records(n):
    """n one-record users, all valid against PRECRS_ITEMS."""
    return [
        {
            "user": 100 + k,
            "context": [1, 2, 3][: 1 + k % 3],
            "pos_item": 5,
            "initial": 1 + k % 3,
            "dialog": [[1 + k % 3, 3]],
        }
        for k in range(n)
    ]


def test_precrs_holdout_is_deterministic_and_sized(tmp_path):
    records = write_json(tmp_path / "val.json", many_records(10))
    item_dict = write_json(tmp_path / "items.json", PRECRS_ITEMS)
    splits = {}
    for run, seed in (("a", 5), ("b", 5), ("c", 6)):
        out = tmp_path / run / "held"
        report = convert_precrs_lastfm(
            item_dict, str(out), records=[records], holdout="valid=0.2,test=0.2", seed=seed
        )
        assert report.rows["valid"] == 2 and report.rows["test"] == 2
        _, rows = read_dataset(out, "held")
        splits[run] = {r["user_id"]: r["split"] for r in rows if r["split"] != "train"}
        assert all(r["split"] == "train" for r in rows if r["item_id"] != "5")  # context rows stay train
    assert splits["a"] == splits["b"]
    assert file_bytes(tmp_path / "a" / "held", "held") == file_bytes(tmp_path / "b" / "held", "held")
    assert splits["a"] != splits["c"]


def test_precrs_candidates_share_the_initial_attribute(tmp_path, precrs_files):
    out = tmp_path / "cand"
    convert_precrs_lastfm(
        precrs_files["item_dict"],
        str(out),
        train=precrs_files["train"],
        valid=precrs_files["valid"],
        test=precrs_files["test"],
        candidates=2,
    )
    items, rows = read_dataset(out, "cand")
    for row in rows:
        candidates = row["candidate_items"].split()
        if row["split"] == "train":
            assert candidates == []
            continue
        initial = row["confirmed_attributes"].split()[0]
        assert 0 < len(candidates) <= 2 and row["item_id"] not in candidates
        assert all(initial in items[c] for c in candidates)
        assert candidates == sorted(candidates, key=int)


def test_precrs_user_with_several_records_gets_one_sequence_per_record(tmp_path):
    records = many_records(2)
    records[1]["user"] = records[0]["user"]
    report = precrs_with(tmp_path, records=records)
    _, rows = read_dataset(tmp_path / "out" / "case", "case")
    assert {r["user_id"] for r in rows} == {"100-0", "100-1"}
    assert any("1 users have several records" in note for note in report.notes)


def drop_key(key):
    return lambda record: record.pop(key)


def setter(key, value):
    return lambda record: record.__setitem__(key, value)


@pytest.mark.parametrize(
    "mutate, reason, message",
    [
        (drop_key("dialog"), "missing key", "has no key 'dialog'"),
        (drop_key("user"), "missing key", "has no key 'user'"),
        (setter("pos_item", 99), "id out of range", "pos_item: item id 99 is outside 1..8"),
        (setter("pos_item", -1), "id out of range", "item id -1 is negative"),
        (setter("user", "abc"), "bad id", "user id 'abc' is not a non-negative integer"),
        (setter("context", [1, 4]), "unknown item", "context: item 4 is not in items_case.json"),
        (setter("context", 3), "bad value", "context is int, expected a list"),
        (setter("dialog", [[1, 4], [7, 1, 2]]), "unknown item", "dialog turn 1: item 7 is not in"),
        (setter("dialog", [[1, 4], [6, 5, 2]]), "target in rejected list", "rejects the target item 5"),
        (setter("dialog", [[1, 4], "x"]), "bad dialog turn", "dialog turn 1 is 'x'"),
        (setter("dialog", [[1, "n"]]), "bad dialog turn", "candidate count 'n' is not an integer"),
        (setter("initial", 4), "attribute not of target", "attribute 4 is not an attribute of target item 5"),
        (setter("initial", 77), "id out of range", "attribute id 77 is outside 1..4"),
    ],
)
def test_precrs_malformed_record_fails_with_its_problem_and_count(tmp_path, mutate, reason, message):
    records = [dict(PRECRS_TRAIN[0]), dict(PRECRS_TEST[0])]
    mutate(records[0])
    with pytest.raises(ConversionError) as error:
        precrs_with(tmp_path, records=records)
    text = str(error.value)
    assert "1 of 2 records are malformed" in text and f"{reason}: 1" in text and message in text
    assert "records_case.json record 0" in text and "--skip-invalid" in text
    # --skip-invalid keeps the good record and counts the bad one by reason.
    report = precrs_with(tmp_path, records=records, skip_invalid=True)
    assert report.records_kept == 1 and dict(report.skipped) == {reason: 1}
    assert f"skipped ({reason}): 1" in str(report)


def test_precrs_error_counts_every_malformed_record(tmp_path):
    records = [dict(r) for r in PRECRS_TRAIN + PRECRS_TEST + PRECRS_VALID]
    records[0].pop("context")
    records[2]["pos_item"] = 99
    with pytest.raises(
        ConversionError, match=r"2 of 3 records are malformed \(id out of range: 1, missing key: 1\)"
    ):
        precrs_with(tmp_path, records=records)


def test_precrs_items_without_attributes(tmp_path):
    items = dict(PRECRS_ITEMS, **{"9": []})
    with pytest.raises(
        ConversionError,
        match=r"1 items have no attributes in .*items_case.json \(e.g. 9\).*--drop-items-without-attributes",
    ):
        precrs_with(tmp_path, items=items)
    records = [dict(PRECRS_TRAIN[0], context=[1, 9, 2]), dict(PRECRS_TEST[0], pos_item=9)]
    report = precrs_with(tmp_path, records=records, items=items, drop_items_without_attributes=True)
    assert report.records_kept == 1 and report.skipped["item without attributes"] == 1
    assert "context items without attributes removed: 1" in report.notes
    assert "dropped 1 items without attributes (e.g. 9)" in report.notes
    _, rows = read_dataset(tmp_path / "out" / "case", "case")
    assert [r["item_id"] for r in rows] == ["1", "2", "5"]
    # --skip-invalid alone does not drop attribute-less items: that needs its own flag, never silent.
    with pytest.raises(ConversionError, match="have no attributes"):
        precrs_with(tmp_path, items=items, skip_invalid=True)


@pytest.mark.parametrize(
    "items, message",
    [
        ({"1": "abc"}, "is str, expected a list"),
        ({"x": [1]}, "item id 'x' is not a non-negative integer"),
        ({"1": [1, "t"]}, "attribute id 't' is not a non-negative integer"),
    ],
)
def test_precrs_malformed_item_dict(tmp_path, items, message):
    with pytest.raises(ConversionError, match=r"1 of 1 entries of item dict .* are malformed.*" + message):
        precrs_with(tmp_path, items=items)


def test_precrs_malformed_json_and_wrong_shapes(tmp_path):
    item_dict = write_json(tmp_path / "items.json", PRECRS_ITEMS)
    broken = tmp_path / "broken.json"
    broken.write_text('[{"user": 1,', encoding="utf-8")
    with pytest.raises(
        ConversionError, match=r"record file '.*broken.json' is not valid JSON: .* line 1 column"
    ):
        convert_precrs_lastfm(item_dict, str(tmp_path / "o"), train=[str(broken)])
    with pytest.raises(ConversionError, match=r"item dict file '.*broken.json' is not valid JSON"):
        convert_precrs_lastfm(str(broken), str(tmp_path / "o"), train=[item_dict])
    not_a_list = write_json(tmp_path / "obj.json", {"user": 1})
    with pytest.raises(ConversionError, match="must hold a JSON list of records, got dict"):
        convert_precrs_lastfm(item_dict, str(tmp_path / "o"), train=[not_a_list])
    with pytest.raises(ConversionError, match="does not exist"):
        convert_precrs_lastfm(item_dict, str(tmp_path / "o"), train=[str(tmp_path / "missing.json")])
    with pytest.raises(ConversionError, match="--records needs --holdout"):
        convert_precrs_lastfm(item_dict, str(tmp_path / "o"), records=[item_dict])
    with pytest.raises(ConversionError, match="No record files"):
        convert_precrs_lastfm(item_dict, str(tmp_path / "o"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("valid=0.7,test=0.5", "add up to more than 1"),
        ("train=0.2", "expected 'valid=F,test=F'"),
        ("valid=x", "is not a number"),
        ("valid=-0.1", "outside"),
    ],
)
def test_parse_holdout_rejects_bad_specs(text, message):
    with pytest.raises(ConversionError, match=message):
        parse_holdout(text)


def test_parse_holdout_and_float_format():
    assert parse_holdout("valid=0.2, test=0.1") == {"valid": 0.2, "test": 0.1}
    assert [format_float(v) for v in (3, 881250949.0, 0.5, -2.0)] == ["3", "881250949", "0.5", "-2"]


@pytest.mark.skipif(not os.path.isdir(PRECRS_REAL), reason=f"the authors' Last.fm files are not in {PRECRS_REAL}")
def test_precrs_real_files(tmp_path):
    out = tmp_path / "lastfm-precrs"
    report = convert_precrs_lastfm(
        f"{PRECRS_REAL}/item_dict_lastfm1.0.json",
        str(out),
        records=[f"{PRECRS_REAL}/val_lastfm.json"],
        holdout="valid=0.2,test=0.2",
        candidates=100,
    )
    assert report.records_read == report.records_kept == 451 and not report.skipped
    assert (
        report.rows["valid"] == report.rows["test"] == 90 and report.items == 1921 and report.attributes == 71
    )
    records = {r["user"]: r for r in json.load(open(f"{PRECRS_REAL}/val_lastfm.json"))}
    _, rows = check_format(out, "lastfm-precrs")
    targets = [r for r in rows if r["split"] != "train"]
    for row in targets:
        record = records[int(row["user_id"])]
        attribute_turns = [str(t[0]) for t in record["dialog"] if len(t) == 2]
        assert row["item_id"] == str(record["pos_item"])
        assert row["confirmed_attributes"].split() == attribute_turns  # the first turn repeats `initial`
        assert row["rejected_items"].split() == [str(i) for t in record["dialog"] if len(t) != 2 for i in t]
        assert row["rejected_turns"].split() == [
            str(n) for n, t in enumerate(record["dialog"], start=1) if len(t) != 2 for _ in t
        ]
        assert conversation_turns(row) == len(record["dialog"])  # every real turn confirms or rejects
        assert len(row["candidate_items"].split()) <= 100


# ------------------------------------------------------------------------------------------ scpr-lastfm-star
def write_scpr(folder, item_dict=None, train=None, valid=None, test=None):
    os.makedirs(folder, exist_ok=True)
    default_items = {
        "0": {"feature_index": [0, 1]},
        "1": {"feature_index": [1]},
        "2": {"feature_index": [2, 0]},
        "3": {"feature_index": [3]},
    }
    write_json(os.path.join(folder, "item_dict.json"), default_items if item_dict is None else item_dict)
    write_json(
        os.path.join(folder, "review_dict_train.json"), {"0": [1, 0], "1": [2]} if train is None else train
    )
    write_json(os.path.join(folder, "review_dict_valid.json"), {"0": [2]} if valid is None else valid)
    write_json(os.path.join(folder, "review_dict_test.json"), {"0": [3], "1": [0]} if test is None else test)
    return str(folder)


def test_scpr_happy_path_and_determinism(tmp_path):
    source = write_scpr(tmp_path / "scpr")
    report = convert_scpr_lastfm_star(source, str(tmp_path / "a" / "star"), candidates=5)
    assert report.records_read == report.records_kept == 6 and dict(report.rows) == {
        "train": 3,
        "valid": 1,
        "test": 2,
    }
    items, rows = check_format(tmp_path / "a" / "star", "star")
    assert items == {"0": ["0", "1"], "1": ["1"], "2": ["0", "2"], "3": ["3"]}
    assert [(r["user_id"], r["item_id"], r["timestamp"], r["split"]) for r in rows] == [
        ("0", "1", "0", "train"),
        ("0", "0", "1", "train"),
        ("0", "2", "2", "valid"),
        ("0", "3", "3", "test"),
        ("1", "2", "0", "train"),
        ("1", "0", "1", "test"),
    ]
    assert all(r["confirmed_attributes"] for r in rows)  # every row has a simulated conversation
    assert all(r["confirmed_turns"].split()[0] == "1" for r in rows)
    assert [r["candidate_items"] for r in rows if r["split"] == "train"] == ["", "", ""]
    convert_scpr_lastfm_star(source, str(tmp_path / "b" / "star"), candidates=5)
    assert file_bytes(tmp_path / "a" / "star", "star") == file_bytes(tmp_path / "b" / "star", "star")


@pytest.mark.parametrize(
    "files, message",
    [
        ({"item_dict": {"0": {"features": [1]}}}, "has no key 'feature_index'"),
        (
            {"item_dict": {"0": {"feature_index": []}, "1": {"feature_index": [1]}}},
            "1 items have no attributes",
        ),
        ({"train": {"0": [1, 9]}}, "item id 9 is outside 0..3"),
        ({"valid": {"0": "2"}}, "is str, expected a list"),
        ({"test": {"x": [1]}}, "user id 'x' is not a non-negative integer"),
    ],
)
def test_scpr_malformed_input(tmp_path, files, message):
    source = write_scpr(tmp_path / "scpr", **files)
    with pytest.raises(ConversionError, match=message):
        convert_scpr_lastfm_star(source, str(tmp_path / "out"))


def test_scpr_malformed_json_and_skip_invalid(tmp_path):
    source = write_scpr(tmp_path / "scpr", train={"0": [1, 0, 9], "1": [2]})
    report = convert_scpr_lastfm_star(source, str(tmp_path / "out"), skip_invalid=True)
    assert (
        report.records_read == 7
        and report.records_kept == 6
        and dict(report.skipped) == {"id out of range": 1}
    )
    (tmp_path / "scpr" / "review_dict_valid.json").write_text("{", encoding="utf-8")
    with pytest.raises(ConversionError, match="review_dict_valid.json' is not valid JSON"):
        convert_scpr_lastfm_star(source, str(tmp_path / "out"))


# ---------------------------------------------------------------------------------------------- recbole
def write_recbole(folder, inter_lines=None, item_lines=None):
    os.makedirs(os.path.join(folder, "toy"), exist_ok=True)
    inter = inter_lines or [
        "user_id:token\titem_id:token\trating:float\ttimestamp:float",
        "u2\ti1\t5\t10",
        "u1\ti3\t4\t7",
        "u1\ti2\t3\t5",
        "u1\ti1\t1\t7",
        "u10\ti2\t2\t1.5",
    ]
    item = item_lines or [
        "item_id:token\ttitle:token_seq\tyear:token\tgenre:token_seq",
        "i1\tToy Story\t1995\tComedy Animation",
        "i2\tHeat\t1995\tAction Crime",
        "i3\tBabe\t1995\tComedy",
    ]
    for suffix, lines in (("inter", inter), ("item", item)):
        with open(os.path.join(folder, "toy", f"toy.{suffix}"), "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
    return str(folder)


def test_recbole_happy_path_and_determinism(tmp_path):
    source = write_recbole(tmp_path / "src")
    report = convert_recbole(source, "toy", "genre", str(tmp_path / "a" / "toy-crs"))
    assert report.records_read == report.records_kept == 5 and dict(report.rows) == {"all": 5}
    items, rows = check_format(tmp_path / "a" / "toy-crs", "toy-crs")
    assert items == {"i1": ["Animation", "Comedy"], "i2": ["Action", "Crime"], "i3": ["Comedy"]}
    # by user, then time; the tie at time 7 keeps source order (i3 before i1), as RecBole's stable sort would.
    assert [(r["user_id"], r["item_id"], r["timestamp"]) for r in rows] == [
        ("u1", "i2", "5"),
        ("u1", "i3", "7"),
        ("u1", "i1", "7"),
        ("u10", "i2", "1.5"),
        ("u2", "i1", "10"),
    ]
    assert "split" not in rows[0] and all(r["confirmed_attributes"] for r in rows)
    assert all(r["confirmed_turns"].split()[0] == "1" for r in rows)
    convert_recbole(source, "toy", "genre", str(tmp_path / "b" / "toy-crs"))
    assert file_bytes(tmp_path / "a" / "toy-crs", "toy-crs") == file_bytes(
        tmp_path / "b" / "toy-crs", "toy-crs"
    )


def test_recbole_items_without_attributes(tmp_path):
    item = ["item_id:token\tgenre:token_seq", "i1\tComedy", "i2\t", "i3\tDrama"]
    source = write_recbole(tmp_path / "src", item_lines=item)
    with pytest.raises(
        ConversionError, match=r"1 items have no attributes in field 'genre' of toy.item \(e.g. i2\)"
    ):
        convert_recbole(source, "toy", "genre", str(tmp_path / "out"))
    report = convert_recbole(
        source, "toy", "genre", str(tmp_path / "out"), drop_items_without_attributes=True
    )
    assert report.records_kept == 3 and report.skipped["item without attributes"] == 2
    assert "dropped 2 interactions with items without attributes" in report.notes
    items, rows = check_format(tmp_path / "out", "out")
    assert set(items) == {"i1", "i3"} and all(r["item_id"] != "i2" for r in rows)


@pytest.mark.parametrize(
    "inter_extra, message",
    [
        ("u3\ti9\t1\t3", r"line 7: item 'i9' is not in the .item file"),
        ("u3\ti1\t1\tsoon", r"timestamp 'soon' is not a number"),
        ("u3\ti1\t1", r"line 7 has 3 fields, header has 4"),
    ],
)
def test_recbole_malformed_interactions(tmp_path, inter_extra, message):
    inter = [
        "user_id:token\titem_id:token\trating:float\ttimestamp:float",
        "u2\ti1\t5\t10",
        "u1\ti3\t4\t7",
        "u1\ti2\t3\t5",
        "u1\ti1\t1\t7",
        "u10\ti2\t2\t1.5",
        inter_extra,
    ]
    source = write_recbole(tmp_path / "src", inter_lines=inter)
    with pytest.raises(ConversionError, match="1 of 6 interactions of .* are malformed.*" + message):
        convert_recbole(source, "toy", "genre", str(tmp_path / "out"))
    report = convert_recbole(source, "toy", "genre", str(tmp_path / "out"), skip_invalid=True)
    assert report.records_kept == 5 and sum(report.skipped.values()) == 1


@pytest.mark.parametrize(
    "options, message",
    [
        (
            dict(attribute_field="genres"),
            r"has no field 'genres' \(fields: item_id, title, year, genre\).*--attribute-field",
        ),
        (dict(attribute_field="year"), "field 'year' is token, expected token_seq"),
        (dict(attribute_field="genre", time_field="when"), "has no field 'when'.*--time-field"),
        (
            dict(attribute_field="genre", dataset="nope"),
            r"nope.inter' does not exist|nope.item' does not exist",
        ),
    ],
)
def test_recbole_bad_fields_and_paths(tmp_path, options, message):
    source = write_recbole(tmp_path / "src")
    options = dict(dict(dataset="toy"), **options)
    with pytest.raises(ConversionError, match=message):
        convert_recbole(
            source, options.pop("dataset"), options.pop("attribute_field"), str(tmp_path / "out"), **options
        )


def prepend_byte_order_mark(*paths):
    for path in paths:
        data = open(path, "rb").read()
        open(path, "wb").write(b"\xef\xbb\xbf" + data)


def test_recbole_reads_files_that_start_with_a_byte_order_mark(tmp_path):
    plain = write_recbole(tmp_path / "plain")
    marked = write_recbole(tmp_path / "marked")
    prepend_byte_order_mark(*(os.path.join(marked, "toy", f"toy.{suffix}") for suffix in ("inter", "item")))
    convert_recbole(plain, "toy", "genre", str(tmp_path / "a" / "toy-crs"))
    convert_recbole(marked, "toy", "genre", str(tmp_path / "b" / "toy-crs"))
    assert file_bytes(tmp_path / "a" / "toy-crs", "toy-crs") == file_bytes(tmp_path / "b" / "toy-crs", "toy-crs")


def test_json_that_starts_with_a_byte_order_mark_is_read(tmp_path, precrs_files):
    convert_precrs_lastfm(precrs_files["item_dict"], str(tmp_path / "a" / "toy"), train=precrs_files["train"])
    prepend_byte_order_mark(precrs_files["item_dict"], *precrs_files["train"])
    convert_precrs_lastfm(precrs_files["item_dict"], str(tmp_path / "b" / "toy"), train=precrs_files["train"])
    assert file_bytes(tmp_path / "a" / "toy", "toy") == file_bytes(tmp_path / "b" / "toy", "toy")


@pytest.mark.parametrize("option, value, minimum", [
    ("--seed", "-5", 0), ("--max-turns", "0", 1), ("--rec-list-size", "-1", 1), ("--candidates", "-1", 0),
])
def test_cli_numeric_options_are_named_before_any_input_is_read(tmp_path, capsys, option, value, minimum):
    argv = ["scpr-lastfm-star", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"), option, value]
    assert main(argv) == 2
    assert capsys.readouterr().err == f"error: {option} must be an integer >= {minimum}, got {value}.\n"
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_success_and_error(tmp_path, capsys, precrs_files):
    out = tmp_path / "cli"
    argv = [
        "precrs-lastfm",
        "--item-dict",
        precrs_files["item_dict"],
        "--train",
        precrs_files["train"][0],
        "--test",
        precrs_files["test"][0],
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert "records: 2 read, 2 kept, 0 skipped" in capsys.readouterr().out
    assert os.path.isfile(out / "cli.inter") and os.path.isfile(out / "cli.item")
    assert main(argv[:-1] + [str(out), "--candidates", "-1"]) == 2
    assert "--candidates must be an integer >= 0" in capsys.readouterr().err
    broken = write_json(tmp_path / "bad.json", [{"user": 1}])
    assert (
        main(
            ["precrs-lastfm", "--item-dict", precrs_files["item_dict"], "--train", broken, "--out", str(out)]
        )
        == 2
    )
    assert "missing key" in capsys.readouterr().err


def test_cli_help_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "recbole_crs.data.convert", "precrs-lastfm", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for option in ("--item-dict", "--records", "--holdout", "--candidates", "--skip-invalid", "--seed"):
        assert option in result.stdout


def dead_pid():
    """The pid of a process that has ended."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(child.stdout)


def test_a_rerun_removes_the_temporaries_of_killed_conversions(tmp_path):
    source = write_recbole(tmp_path / "src")
    out = tmp_path / "toy-crs"
    out.mkdir()
    dead = [out / f"toy-crs.{suffix}.tmp-{dead_pid()}-0a1b" for suffix in ("inter", "item", "manifest.json")]
    live = out / f"toy-crs.inter.tmp-{os.getppid()}-2c3d"  # a conversion still running: left alone
    for path in dead + [live]:
        path.write_text("partial")
    convert_recbole(source, "toy", "genre", str(out))
    assert sorted(os.listdir(out)) == sorted(["toy-crs.inter", "toy-crs.item", "toy-crs.manifest.json", live.name])


# ---------------------------------------------------------------------------------------------- ml-100k-crs
def test_ml100k_crs_is_built_once_and_byte_identical(tmp_path):
    folders = [ensure_ml100k_crs(str(tmp_path / run)) for run in ("a", "b")]
    assert file_bytes(folders[0], "ml-100k-crs") == file_bytes(folders[1], "ml-100k-crs")
    items, rows = check_format(folders[0], "ml-100k-crs")
    assert len(rows) == 100000 and len(items) == 1682 and len({a for v in items.values() for a in v}) == 19
    built = [".build-version", "ml-100k-crs.inter", "ml-100k-crs.item", "ml-100k-crs.manifest.json"]
    assert sorted(os.listdir(folders[0])) == built
    inter = os.path.join(folders[0], "ml-100k-crs.inter")
    modified = os.stat(inter).st_mtime_ns
    stale = [os.path.join(folders[0], f"{name}.tmp-{dead_pid()}-0a1b") for name in ("ml-100k-crs.inter", ".build-version")]
    for path in stale:  # what a build killed mid-write leaves
        open(path, "w").write("partial")
    assert ensure_ml100k_crs(str(tmp_path / "a")) == folders[0]
    assert os.stat(inter).st_mtime_ns == modified  # present files are not rebuilt
    assert sorted(os.listdir(folders[0])) == built  # but the dead build's temporaries are gone
    # Files of an older build (here: no turn columns, no build version, manifest of those files) are rebuilt,
    # to the same bytes.
    old_inter = os.path.join(folders[1], "ml-100k-crs.inter")
    with open(old_inter, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    with open(old_inter, "w", encoding="utf-8", newline="\n") as handle:
        handle.write("\n".join("\t".join(line.split("\t")[:5]) for line in lines))
    os.remove(os.path.join(folders[1], "ml-100k-crs.manifest.json"))
    os.remove(os.path.join(folders[1], ".build-version"))
    assert "confirmed_turns" not in open(old_inter, encoding="utf-8").readline()
    assert ensure_ml100k_crs(str(tmp_path / "b")) == folders[1]
    assert file_bytes(folders[0], "ml-100k-crs") == file_bytes(folders[1], "ml-100k-crs")
    assert sorted(os.listdir(folders[1])) == built
    # A build of another version (same files, other version) is rebuilt too.
    with open(os.path.join(folders[1], ".build-version"), "w", encoding="utf-8") as handle:
        handle.write("1\n")
    assert ensure_ml100k_crs(str(tmp_path / "b")) == folders[1]
    assert open(os.path.join(folders[1], ".build-version"), encoding="utf-8").read() == "2\n"


# ------------------------------------------------------------------------------- --conversations targets
def inter_lines(folder, name):
    """The .inter data lines of a written dataset, as raw text."""
    return open(os.path.join(folder, f"{name}.inter"), encoding="utf-8").read().split("\n")[1:-1]


def blank(row):
    return not (
        row["confirmed_attributes"] or row["rejected_items"] or row["confirmed_turns"] or row["rejected_turns"]
    )


def last_train_rows(rows):
    """user -> index of the user's last training row."""
    return {row["user_id"]: index for index, row in enumerate(rows) if row.get("split") == "train"}


def check_targets_regime(all_rows, target_rows, all_lines, target_lines, chosen_users):
    """Evaluated rows and the chosen users' last training rows are those of `all`; every other row is blank."""
    assert len(all_rows) == len(target_rows)
    last = last_train_rows(target_rows)
    kept = {last[user] for user in chosen_users}
    for index, (row, line) in enumerate(zip(target_rows, target_lines)):
        if row["split"] != "train" or index in kept:
            assert line == all_lines[index] and row["confirmed_attributes"]
        else:
            assert blank(row)
            assert line.split("\t")[:3] == all_lines[index].split("\t")[:3]


def chosen(rows):
    """Users whose last training row carries a conversation."""
    return {user for user, index in last_train_rows(rows).items() if rows[index]["confirmed_attributes"]}


def test_scpr_targets_keep_evaluated_rows_and_last_training_rows(tmp_path):
    source = write_scpr(tmp_path / "scpr")
    convert_scpr_lastfm_star(source, str(tmp_path / "all" / "star"), candidates=5)
    report = convert_scpr_lastfm_star(
        source, str(tmp_path / "targets" / "star"), candidates=5, conversations="targets"
    )
    _, all_rows = check_format(tmp_path / "all" / "star", "star")
    _, rows = check_format(tmp_path / "targets" / "star", "star")
    # User 0: train items 1, 0, then valid, test; user 1: train 2, then test. Default: every training user.
    all_lines, target_lines = (inter_lines(tmp_path / regime / "star", "star") for regime in ("all", "targets"))
    check_targets_regime(all_rows, rows, all_lines, target_lines, {"0", "1"})
    assert [bool(r["confirmed_attributes"]) for r in rows] == [False, True, True, True, True, True]
    assert dict(report.conversation_rows) == {"train": 2, "valid": 1, "test": 2}
    assert (report.eligible_users, report.chosen_users) == (2, 2)
    assert "rows with a conversation: train 2 of 3 (2 users), valid 1 of 1 (1 users)" in str(report)
    assert "last training row of 2 of 2 eligible training users" in str(report)


def test_precrs_targets_are_exactly_the_real_dialogues(tmp_path, precrs_files):
    outputs = {}
    for regime in ("all", "targets"):
        report = convert_precrs_lastfm(
            precrs_files["item_dict"],
            str(tmp_path / regime / "toy"),
            train=precrs_files["train"],
            valid=precrs_files["valid"],
            test=precrs_files["test"],
            candidates=3,
            conversations=regime,
        )
        outputs[regime] = (report, *check_format(tmp_path / regime / "toy", "toy"))
    report, _, rows = outputs["targets"]
    _, _, all_rows = outputs["all"]
    # Only the target rows (each user's last row) keep a conversation: the real dialogues, never a simulated one.
    last_row = {row["user_id"]: index for index, row in enumerate(rows)}  # the target row of each record
    assert [rows[i]["item_id"] for i in last_row.values()] == ["5", "1", "3"]
    for index, (row, all_row) in enumerate(zip(rows, all_rows)):
        assert (row == all_row) if index in last_row.values() else blank(row)
    assert sum(1 for r in rows if r["confirmed_attributes"]) == 3
    # Eligible: users whose target row is a training row (user 1 only); valid/test users' context stays blank.
    assert (report.eligible_users, report.chosen_users) == (1, 1)
    assert dict(report.conversation_rows) == {"train": 1, "valid": 1, "test": 1}
    assert report.real_conversations["conversations"] == 3


def test_precrs_targets_on_held_out_records(tmp_path):
    records = write_json(tmp_path / "val.json", many_records(20))
    item_dict = write_json(tmp_path / "items.json", PRECRS_ITEMS)
    lines = {}
    for regime, x in (("all", None), ("targets", None), ("half", 0.5)):
        convert_precrs_lastfm(
            item_dict, str(tmp_path / regime / "held"), records=[records], holdout="valid=0.2,test=0.2",
            conversations="all" if regime == "all" else "targets", train_conversations=x,
        )
        _, rows = check_format(tmp_path / regime / "held", "held")
        lines[regime] = (rows, inter_lines(tmp_path / regime / "held", "held"))
    all_rows, all_lines = lines["all"]
    train_target_users = {r["user_id"] for r in all_rows if r["split"] == "train"} - {
        r["user_id"] for r in all_rows if r["split"] != "train"
    }
    assert len(train_target_users) == 12
    for regime, expected in (("targets", 12), ("half", 6)):
        rows, regime_lines = lines[regime]
        users = chosen(rows)
        assert len(users) == expected and users <= train_target_users
        check_targets_regime(all_rows, rows, all_lines, regime_lines, users)
    assert chosen(lines["half"][0]) <= chosen(lines["targets"][0])


def many_users_recbole(folder, users=40):
    """A RecBole dataset with `users` users of 1..6 interactions (user k has 1 + k % 6 rows)."""
    inter = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user in range(users):
        inter += [f"u{user}\ti{(user + t) % 3 + 1}\t{t}" for t in range(1 + user % 6)]
    return write_recbole(folder, inter_lines=inter)


def test_recbole_targets_split_column_is_leave_one_out(tmp_path):
    source = many_users_recbole(tmp_path / "src", users=12)
    convert_recbole(source, "toy", "genre", str(tmp_path / "all" / "toy-crs"))
    report = convert_recbole(source, "toy", "genre", str(tmp_path / "t" / "toy-crs"), conversations="targets")
    _, all_rows = check_format(tmp_path / "all" / "toy-crs", "toy-crs")
    _, rows = check_format(tmp_path / "t" / "toy-crs", "toy-crs")
    header = open(tmp_path / "t" / "toy-crs" / "toy-crs.inter", encoding="utf-8").readline().rstrip("\n")
    assert header.split("\t") == INTER_HEADER + ["split:token"]
    splits = {}
    for row in rows:
        splits.setdefault(row["user_id"], []).append(row["split"])
    # A user's first row is never a sequential target: test from 3 rows on, valid from 4 (as eval_args would).
    assert splits["u0"] == ["train"] and splits["u1"] == ["train", "train"]
    assert splits["u2"] == ["train", "train", "test"]
    assert splits["u3"] == ["train", "train", "valid", "test"]
    assert splits["u5"] == ["train"] * 4 + ["valid", "test"]
    # Apart from the split column, kept rows are the `all` rows; every user has training rows and is chosen.
    all_lines = inter_lines(tmp_path / "all" / "toy-crs", "toy-crs")
    target_lines = ["\t".join(line.split("\t")[:-1]) for line in inter_lines(tmp_path / "t" / "toy-crs", "toy-crs")]
    check_targets_regime(all_rows, rows, all_lines, target_lines, {f"u{k}" for k in range(12)})
    assert (report.eligible_users, report.chosen_users) == (12, 12)
    assert report.rows["valid"] == 6 and report.rows["test"] == 8


def test_targets_users_are_nested_across_fractions_and_counts(tmp_path):
    source = many_users_recbole(tmp_path / "src", users=40)
    choices, files = {}, {}
    # Labels, not the values, key the dicts: 1 (one user) and 1.0 (every user) are equal Python keys.
    for label, x in (("5%", 0.05), ("20%", 0.2), ("50%", 0.5), ("100%", 1.0), ("8 users", 8), ("1 user", 1)):
        out = tmp_path / label.replace(" ", "_").replace("%", "pc") / "toy-crs"
        report = convert_recbole(
            source, "toy", "genre", str(out), name="toy-crs", conversations="targets", train_conversations=x
        )
        _, rows = check_format(out, "toy-crs")
        choices[label], files[label] = chosen(rows), file_bytes(out, "toy-crs")
        assert report.chosen_users == len(choices[label]) and report.eligible_users == 40
    assert [len(choices[x]) for x in ("5%", "20%", "50%", "100%")] == [2, 8, 20, 40]
    assert choices["5%"] <= choices["20%"] <= choices["50%"] <= choices["100%"]
    assert files["8 users"] == files["20%"]  # a count chooses the same users as the fraction giving that count
    assert len(choices["1 user"]) == 1 and choices["1 user"] <= choices["5%"]
    # The evaluated rows are the same bytes in every fraction.
    lines = {
        label: [line for line in inter_lines(tmp_path / label / "toy-crs", "toy-crs") if not line.endswith("train")]
        for label in ("5pc", "100pc")
    }
    assert lines["5pc"] == lines["100pc"] and lines["100pc"]


def test_explicit_all_is_the_default_output(tmp_path):
    source = write_scpr(tmp_path / "scpr")
    convert_scpr_lastfm_star(source, str(tmp_path / "a" / "star"), candidates=2)
    convert_scpr_lastfm_star(source, str(tmp_path / "b" / "star"), candidates=2, conversations="all")
    assert file_bytes(tmp_path / "a" / "star", "star") == file_bytes(tmp_path / "b" / "star", "star")


@pytest.mark.parametrize(
    "value, expected", [(None, 1.0), ("0.05", 0.05), ("1.0", 1.0), ("1", 1), ("50", 50), (0.2, 0.2), (3, 3)]
)
def test_parse_train_conversations(value, expected):
    parsed = parse_train_conversations(value)
    assert parsed == expected and type(parsed) is type(expected)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--train-conversations", "0.5"], "--train-conversations only applies with --conversations targets"),
        (["--train-conversations", "1.5"], "--train-conversations '1.5' is out of range"),
        (["--train-conversations", "0"], "--train-conversations '0' is out of range"),
        (["--train-conversations", "-0.1"], r"out of range: give a fraction in \(0, 1\]"),
        (["--train-conversations", "half"], "--train-conversations 'half' is out of range"),
        (["--train-conversations", "5"], "--train-conversations 5 asks for more users than the 1 training"),
    ],
)
def test_cli_train_conversations_errors_are_one_line(tmp_path, capsys, precrs_files, extra, message):
    argv = ["precrs-lastfm", "--item-dict", precrs_files["item_dict"], "--train", precrs_files["train"][0]]
    argv += ["--test", precrs_files["test"][0], "--out", str(tmp_path / "cli")]
    if extra[1] != "0.5":
        argv += ["--conversations", "targets"]
    assert main(argv + extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert re.search(message, err), err


def test_cli_targets_reports_training_rows_with_a_conversation(tmp_path, capsys, precrs_files):
    argv = ["precrs-lastfm", "--item-dict", precrs_files["item_dict"], "--train", precrs_files["train"][0]]
    argv += ["--test", precrs_files["test"][0], "--out", str(tmp_path / "cli"), "--conversations", "targets"]
    assert main(argv + ["--train-conversations", "1"]) == 0
    out = capsys.readouterr().out
    assert "rows with a conversation: train 1 of 5 (2 users), test 1 of 1 (1 users)" in out
    assert "last training row of 1 of 1 eligible training users keeps one" in out


# ------------------------------------------------------------------------------------------ built-in datasets
def test_builtin_names():
    assert builtin_options("ml-100k-crs") == {"conversations": "all"}
    assert builtin_options("ml-100k-crs-targets") == {"conversations": "targets", "train_conversations": None}
    assert builtin_options("ml-100k-crs-targets-0.05") == {"conversations": "targets", "train_conversations": 0.05}
    assert builtin_options("ml-100k-crs-targets-50") == {"conversations": "targets", "train_conversations": 50}
    assert builtin_options("lastfm-precrs") is None and builtin_options("ml-100k-crs-targets-x") is None
    assert builtin_base("ml-100k-crs-targets-0.2") == "ml-100k-crs" and builtin_base("ml-100k") is None
    with pytest.raises(ConversionError, match="dataset 'ml-100k-crs-targets-1.5'.*out of range.*-0.05"):
        builtin_options("ml-100k-crs-targets-1.5")


def test_builtin_fraction_builds_in_a_suite_and_loads_through_create_dataset(tmp_path, monkeypatch):
    from recbole_crs import benchmark
    from recbole_crs.config import Config
    from recbole_crs.quick_start import create_dataset

    monkeypatch.chdir(tmp_path)  # RecBole's ./log
    monkeypatch.setattr(sys, "argv", [sys.argv[0]])
    name = "ml-100k-crs-targets-0.05"
    # A suite refers to a fraction by naming it under `datasets:`; prepare_datasets builds it like ml-100k-crs.
    suite = benchmark.Suite(str(tmp_path / "suite.yaml"), {}, {name: benchmark.DatasetSpec(name)}, {})
    benchmark.prepare_datasets(suite, [name], str(tmp_path), {})
    inter = tmp_path / name / f"{name}.inter"
    modified = os.stat(inter).st_mtime_ns
    items, rows = check_format(tmp_path / name, name)
    assert len(rows) == 100000 and len(items) == 1682
    with_conversation = [r for r in rows if r["confirmed_attributes"]]
    train = [r for r in with_conversation if r["split"] == "train"]
    assert len(train) == 47 and len({r["user_id"] for r in train}) == 47  # round(0.05 * 943)
    assert len(with_conversation) - len(train) == 2 * 943  # every user's valid and test row

    config = Config("SASRec", name, config_dict={"data_path": str(tmp_path), "state": "ERROR"})
    # The variant uses ml-100k-crs.yaml: same fields and budget.
    assert (config["MAX_ITEM_LIST_LENGTH"], config["epochs"], config["stopping_step"]) == (20, 20, 3)
    dataset = create_dataset(config)
    assert os.stat(inter).st_mtime_ns == modified  # present files in the current format are not rebuilt
    _, valid, test = dataset.build()
    assert len(valid) > 0 and len(test) > 0
    assert ensure_builtin(name, str(tmp_path)) == str(tmp_path / name)


# ---------------------------------------------------------------------------------------------- publishing
class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (not caught by `except Exception`)."""


def test_conversion_interrupted_between_the_two_renames_is_detected_on_load(tmp_path, monkeypatch):
    from recbole_crs.config import Config
    from recbole_crs.errors import CRSDataError
    from recbole_crs.data.dataset import CRSDataset

    source = write_recbole(tmp_path / "src")
    out = tmp_path / "out" / "toy-crs"
    convert_recbole(source, "toy", "genre", str(out))
    assert sorted(os.listdir(out)) == ["toy-crs.inter", "toy-crs.item", "toy-crs.manifest.json"]
    config = Config("SASRec", "toy-crs", config_dict={"data_path": str(tmp_path / "out"), "state": "WARNING",
                                                      "MAX_ITEM_LIST_LENGTH": 3})
    CRSDataset(config)  # a complete conversion loads

    # Re-convert with one more item; the process dies after the new .item is in place, before the new .inter.
    source = write_recbole(tmp_path / "src2", item_lines=[
        "item_id:token\ttitle:token_seq\tyear:token\tgenre:token_seq",
        "i1\tToy Story\t1995\tComedy Animation", "i2\tHeat\t1995\tAction Crime", "i3\tBabe\t1995\tComedy",
        "i4\tJumanji\t1995\tAdventure",
    ])
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith(".inter"):
            raise _Killed()
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(_Killed):
        convert_recbole(source, "toy", "genre", str(out), seed=3)
    monkeypatch.setattr(os, "replace", real_replace)
    assert "i4" in (out / "toy-crs.item").read_text()  # new .item, old .inter
    with pytest.raises(CRSDataError, match=r"does not match the files \(toy-crs.inter differs from it\).*Re-run the conversion"):
        CRSDataset(config)
    convert_recbole(source, "toy", "genre", str(out), seed=3)  # re-running it repairs the dataset
    CRSDataset(config)


def test_failed_write_keeps_the_previous_dataset_and_leaves_no_temporaries(tmp_path, monkeypatch):
    source = write_recbole(tmp_path / "src")
    out = tmp_path / "out" / "toy-crs"
    convert_recbole(source, "toy", "genre", str(out))
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    real_replace = os.replace

    def full_disk(src, dst):
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(ConversionError, match=r"^cannot write '.*': No space left on device\. .*re-run the conversion"):
        convert_recbole(source, "toy", "genre", str(out), seed=3)
    monkeypatch.setattr(os, "replace", real_replace)
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before


def test_full_disk_while_writing_a_temporary_names_the_file(tmp_path, monkeypatch):
    source = write_recbole(tmp_path / "src")
    out = tmp_path / "out" / "toy-crs"

    def full_disk(descriptor):  # a write that fails without naming a file, as ENOSPC does
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(ConversionError, match=r"^cannot write '.*toy-crs\.item': No space left on device\. "):
        convert_recbole(source, "toy", "genre", str(out))
    monkeypatch.undo()
    assert os.listdir(out) == []  # no temporaries left behind


def test_converter_os_errors_are_one_line_conversion_errors(tmp_path, capsys):
    source = write_recbole(tmp_path / "src")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConversionError, match=r"cannot create output folder '.*file/toy-crs'"):
        convert_recbole(source, "toy", "genre", str(tmp_path / "file" / "toy-crs"))
    os.remove(os.path.join(source, "toy", "toy.item"))
    os.mkdir(os.path.join(source, "toy", "toy.item"))
    code = main(["recbole", "--data-path", source, "--dataset", "toy", "--attribute-field", "genre",
                 "--out", str(tmp_path / "out" / "toy-crs")])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "cannot read item file" in error and "toy.item" in error
    with pytest.raises(ConversionError, match=r"cannot read item dict file '.*': Is a directory"):
        convert_precrs_lastfm(str(tmp_path), records=[str(tmp_path)], holdout="valid=0.2,test=0.2", out_dir=str(tmp_path / "o"))


@pytest.mark.parametrize("conversations", ["all", "targets"])
def test_recbole_simulator_popularity_counts_training_rows_only(tmp_path, monkeypatch, conversations):
    """The simulator recommends popular items first; held-out targets must not shape its popularity."""
    import recbole_crs.data.convert.conversion as common

    seen = {}
    real_simulator = common.ConversationSimulator

    def spy(*args, item_popularity=None, **kwargs):
        seen["popularity"] = dict(item_popularity)
        return real_simulator(*args, item_popularity=item_popularity, **kwargs)

    monkeypatch.setattr(common, "ConversationSimulator", spy)
    # Every user: two training rows of i1, then i3 (valid) and i3 (test): i3 is the most frequent item overall.
    inter = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user in range(5):
        inter += [f"u{user}\t{item}\t{t}" for t, item in enumerate(["i1", "i1", "i3", "i3"])]
    source = write_recbole(tmp_path / "src", inter_lines=inter)
    convert_recbole(source, "toy", "genre", str(tmp_path / "out" / "toy-crs"), conversations=conversations)
    assert seen["popularity"] == {"i1": 10}
