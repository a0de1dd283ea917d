"""Which (user, target) pairs are played, in which order, and each episode's own random stream.

Order (UNICORN ``RL/env_binary_question.py``, ``__test_tuple_generate__``): the pairs of
``review_dict_test.json`` users first, each user's items in the file's order, as an ``[N, 2]`` array shuffled
in place by ``np.random.shuffle`` after ``np.random.seed(1)``; UNICORN plays the first 4,000. The same
permutation is applied to any pair list (:func:`shuffle_pairs`), so ``--episodes N`` takes a random sample,
not the first users.

* :func:`review_dict_pairs`: the pairs of a SCPR review dict (raw ids), exactly UNICORN's list;
* :func:`dataset_pairs`: the evaluated rows of a split of a converted dataset (internal ids), in the dataset's
  row order (users in ``.inter`` order, each user's rows in time order). For ``scpr-lastfm-star`` that is the
  review dict's order (the converter writes each user's test items in the file's order, users ascending as the
  JSON lists them), so both give the same episodes; ``tests/test_conversation_episodes.py`` checks it on the
  real files.

Randomness: episode ``j`` (its place in the shuffled list) draws everything from
``numpy.random.default_rng([seed, j])``: the opening attribute, the tie-break order of the items and one
uniform number per action for a policy's coin flips (:class:`EpisodeRandomness`). An episode therefore plays
the same whatever else runs with it: the batch size, ``--episodes`` or another policy's choices never change it.
"""

import json

import numpy as np
import torch

from recbole_crs.data.turns import TURN_FIELD

UNICORN_SEED = 1  # np.random.seed(args.seed) with UNICORN's default seed, before the shuffle


def shuffle_pairs(pairs, seed=UNICORN_SEED):
    """A copy of ``pairs`` ([N, 2]) shuffled as UNICORN shuffles its test tuples."""
    shuffled = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    np.random.RandomState(seed).shuffle(shuffled)
    return shuffled


def review_dict_pairs(review_dict):
    """UNICORN's episode list of a review dict ``{user: [items]}`` (JSON keys as strings): [N, 2] int64."""
    pairs = [[int(user), int(item)] for user, items in review_dict.items() for item in items]
    return shuffle_pairs(pairs)


def load_review_dict_pairs(path):
    with open(path, encoding="utf-8") as handle:
        return review_dict_pairs(json.load(handle))


def dataset_pairs(split_dataset):
    """The (user, target) internal ids of the evaluated rows of a valid/test split, shuffled: [N, 2] int64.

    A split of :class:`~recbole_crs.data.dataset.CRSDataset` holds one row per conversation turn; each row's
    first turn stands for the row. The recorded conversations are not used: the environment plays its own.
    """
    inter = split_dataset.inter_feat
    first = inter[TURN_FIELD] == 1 if TURN_FIELD in inter else torch.ones(len(inter), dtype=torch.bool)
    users = inter[split_dataset.uid_field][first]
    items = inter[split_dataset.iid_field][first]
    return shuffle_pairs(torch.stack([users, items], dim=1).numpy())


def select_episodes(pairs, episodes):
    """The first ``episodes`` pairs (an int >= 1, or ``"all"``)."""
    if episodes == "all":
        return pairs
    return pairs[: int(episodes)]


class EpisodeRandomness:
    """Every random number of a batch of episodes, drawn from each episode's own stream.

    Args:
        seed: the run's seed (``--seed``).
        episode_ids: [E] places of the episodes in the shuffled list.
        n_items: item ids (padding included), for the tie-break order.
        max_turns: actions + 1; one uniform number per action.

    Attributes (tensors, row e = episode ``episode_ids[e]``): ``opening`` [E] float64 in [0, 1), ``priority``
    [E, n_items] int32 (a random order of the items: ties in a recommendation go to the higher value),
    ``action_uniforms`` [E, max_turns - 1] float64 in [0, 1).
    """

    def __init__(self, seed, episode_ids, n_items, max_turns):
        opening, priority, uniforms = [], [], []
        for episode in np.asarray(episode_ids, dtype=np.int64):
            stream = np.random.default_rng([int(seed), int(episode)])
            opening.append(stream.random())
            priority.append(stream.integers(0, np.iinfo(np.int32).max, n_items, dtype=np.int32))
            uniforms.append(stream.random(max(max_turns - 1, 0)))
        self.opening = torch.tensor(opening, dtype=torch.float64)
        self.priority = torch.from_numpy(np.stack(priority)) if priority else torch.zeros(0, n_items, dtype=torch.int32)
        self.action_uniforms = torch.from_numpy(np.stack(uniforms)) if uniforms else torch.zeros(0, max_turns - 1)
