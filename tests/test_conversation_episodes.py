"""Which episodes are played and which history a ranker reads (recbole_crs/conversation/episodes.py,
histories.py): UNICORN's pair order on the real LastFM* file, the same order from a converted dataset, and
histories built from training rows only."""

import json
import os

import numpy as np
import pytest
import torch
from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_crs.config import Config
from recbole_crs.conversation.episodes import (
    EpisodeRandomness, dataset_pairs, load_review_dict_pairs, review_dict_pairs, select_episodes, shuffle_pairs,
)
from recbole_crs.conversation.histories import check_training_rows_first, training_histories
from recbole_crs.data.convert.scpr import convert_scpr_lastfm_star
from recbole_crs.errors import CRSDataError
from recbole_crs.quick_start import create_dataset
from tiny_data import isolated_run_dir, tiny_config, write_tiny_dataset

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LASTFM_STAR = os.path.join(REPO_ROOT, "..", "shared", "data", "scpr-lastfm-star")


# ---------------------------------------------------------------------------------------------- UNICORN's order
# The real file lives next to the repository (../shared/data, where CI's checkout finds it), as test_convert's
# Last.fm files; a clone elsewhere has no such folder, and the hand-made file below checks the same order.
@pytest.mark.skipif(not os.path.isdir(LASTFM_STAR), reason=f"SCPR's LastFM* files are not in {LASTFM_STAR}")
def test_unicorn_pair_order_on_the_real_lastfm_star_test_file():
    pairs = load_review_dict_pairs(os.path.join(LASTFM_STAR, "review_dict_test.json"))
    assert len(pairs) == 11892
    assert pairs[:3].tolist() == [[143, 4676], [1202, 7136], [734, 1598]]
    assert len(set(pairs[:4000, 0].tolist())) == 1616
    with open(os.path.join(LASTFM_STAR, "review_dict_test.json"), encoding="utf-8") as handle:
        users = [int(user) for user in json.load(handle)]
    # the file lists users in ascending order, as the converter writes them: a converted dataset's test rows
    # come in the file's order (checked on a small source below)
    assert users == sorted(users)


def test_shuffle_is_numpys_shuffle_after_seed_1():
    pairs = np.arange(20).reshape(10, 2)
    np.random.seed(1)
    expected = pairs.copy()
    np.random.shuffle(expected)
    assert shuffle_pairs(pairs).tolist() == expected.tolist()
    assert review_dict_pairs({"0": [5, 6], "1": [7]}).tolist() == shuffle_pairs([[0, 5], [0, 6], [1, 7]]).tolist()
    assert select_episodes(expected, 3).tolist() == expected[:3].tolist() and select_episodes(expected, "all") is expected


def scpr_source(folder):
    """A small SCPR source: users 0..2 (keys ascending, as LastFM*'s), items 0..9."""
    os.makedirs(folder, exist_ok=True)
    files = {
        "item_dict.json": {str(i): {"feature_index": [i % 3, 3 + i % 2]} for i in range(10)},
        "review_dict_train.json": {"0": [4, 1, 7], "1": [2, 9, 0], "2": [8, 5]},
        "review_dict_valid.json": {"0": [3], "1": [6], "2": [1]},
        "review_dict_test.json": {"0": [9, 2, 5], "1": [3, 1], "2": [0, 6, 4]},
    }
    for name, content in files.items():
        with open(os.path.join(folder, name), "w", encoding="utf-8") as handle:
            json.dump(content, handle)
    return files


def load(root, dataset, **overrides):
    config = Config(model="Pop", dataset=dataset, config_dict=tiny_config(root, **overrides))
    init_seed(config["seed"], config["reproducibility"])
    data = create_dataset(config)
    return data, data_preparation(config, data)


def tokens(data, pairs):
    users = data.id2token(data.uid_field, pairs[:, 0]).astype(int)
    items = data.id2token(data.iid_field, pairs[:, 1]).astype(int)
    return np.stack([users, items], axis=1)


def test_converted_dataset_plays_the_review_dicts_pairs_in_unicorns_order(tmp_path):
    files = scpr_source(tmp_path / "source")
    convert_scpr_lastfm_star(str(tmp_path / "source"), str(tmp_path / "star"))
    with isolated_run_dir(str(tmp_path)):
        data, (train, valid, test) = load(tmp_path, "star")
        for split, loader in (("test", test), ("valid", valid)):
            expected = review_dict_pairs(files[f"review_dict_{split}.json"])
            assert tokens(data, dataset_pairs(loader._dataset)).tolist() == expected.tolist(), split
        # histories: each user's training items in the file's order, never a valid or test item
        histories = training_histories(train._dataset, data.user_num, 5)
        for user, items in files["review_dict_train.json"].items():
            uid = data.token2id(data.uid_field, user)
            row = histories.items[uid, : histories.lengths[uid]]
            assert data.id2token(data.iid_field, row).astype(int).tolist() == items
        # whereas the last test row's own window holds the user's valid and earlier test items
        rows = test._dataset[torch.arange(len(test._dataset))]
        last = int(torch.nonzero(rows[data.uid_field] == data.token2id(data.uid_field, "0")).max())
        window = rows["item_id_list"][last, : rows["item_length"][last]]
        assert {3, 9, 2} <= set(data.id2token(data.iid_field, window).astype(int).tolist())


def test_histories_keep_the_last_max_len_training_items(tmp_path):
    write_tiny_dataset(str(tmp_path))
    with isolated_run_dir(str(tmp_path)):
        data, (train, valid, test) = load(tmp_path, "tiny-crs")
        # leave-one-out: u1's training items are i1 i2 i3 (i4 valid, i5 test)
        for max_len, expected in ((5, ["i1", "i2", "i3"]), (2, ["i2", "i3"])):
            histories = training_histories(train._dataset, data.user_num, max_len)
            uid = data.token2id(data.uid_field, "u1")
            items, length = histories.of(torch.tensor([uid]))
            assert data.id2token(data.iid_field, items[0, : length[0]]).tolist() == expected
            assert items[0, length[0]:].eq(0).all()


def test_training_rows_after_an_evaluated_row_are_refused(tmp_path):
    folder = tmp_path / "late"
    folder.mkdir()
    (folder / "late.item").write_text("item_id:token\tattributes:token_seq\n" + "".join(
        f"i{i}\ta\n" for i in range(1, 6)))
    rows = [("u1", "i1", "train"), ("u1", "i2", "train"), ("u1", "i3", "test"), ("u1", "i4", "train"),
            ("u1", "i5", "valid"), ("u2", "i1", "train"), ("u2", "i2", "train"), ("u2", "i3", "valid"),
            ("u2", "i4", "test")]
    (folder / "late.inter").write_text(
        "user_id:token\titem_id:token\ttimestamp:float\tconfirmed_attributes:token_seq\tsplit:token\n"
        + "".join(f"{u}\t{i}\t{t}\ta\t{s}\n" for t, (u, i, s) in enumerate(rows)))
    with isolated_run_dir(str(tmp_path)):
        data, _ = load(tmp_path, "late")
        with pytest.raises(CRSDataError, match=r"1 users of late \(e.g. \['u1'\]\) have a training row after"):
            check_training_rows_first(data)


def test_each_episode_draws_from_its_own_stream():
    a = EpisodeRandomness(7, [0, 1, 2], n_items=30, max_turns=5)
    b = EpisodeRandomness(7, [2, 0], n_items=30, max_turns=5)
    assert torch.equal(a.priority[2], b.priority[0]) and torch.equal(a.action_uniforms[0], b.action_uniforms[1])
    assert a.opening[0] == b.opening[1] and a.action_uniforms.shape == (3, 4)
    assert not torch.equal(a.priority[0], EpisodeRandomness(8, [0], 30, 5).priority[0])
