"""Playing episodes: the environment, a ranker and a policy, many episodes at a time.

A *ranker* is any object with ``scores(view) -> [B, n_items]`` float tensor (higher = better) for a
:class:`~recbole_crs.conversation.environment.ConversationView`; the models' rankers are in
``recbole_crs.conversation.rankers``. Each step scores the running episodes in one call (only those that
recommend when the policy does not read scores), lets the policy decide, and applies the asks and the
recommendations (the ranker's top-k over the current candidates).

:func:`play` runs episodes in batches of ``batch_size`` (memory: a few ``[batch, n_items]`` tensors) and
returns :class:`Outcomes`; every episode draws from its own random stream, so the outcomes do not depend on
the batch size.
"""

import numpy as np
import torch

from recbole_crs.conversation.environment import Conversations, SimulatedUser
from recbole_crs.conversation.episodes import EpisodeRandomness
from recbole_crs.conversation.rules import recommendation_lists


class Outcomes:
    """Per episode: ``users``, ``targets``, ``opening`` attribute, ``actions`` taken, ``success_action`` (0 =
    failure) and ``success_rank`` (0 = failure), ``asked`` (questions), ``accepted`` (accepted questions);
    numpy int64 arrays in episode order."""

    FIELDS = ("users", "targets", "opening", "actions", "success_action", "success_rank", "asked", "accepted")

    def __init__(self, **columns):
        for field in self.FIELDS:
            setattr(self, field, np.asarray(columns[field], dtype=np.int64))

    def __len__(self):
        return len(self.users)

    @classmethod
    def concatenate(cls, parts):
        return cls(**{field: np.concatenate([getattr(p, field) for p in parts]) for field in cls.FIELDS})


def step(conversations, ranker, policy):
    """One action of every running episode of ``conversations``; returns how many were running."""
    rows = conversations.active_rows()
    if len(rows) == 0:
        return 0
    view = conversations.view(rows)
    scores = ranker.scores(view) if policy.reads_scores else None
    decision = policy.decide(view, scores)
    recommend = decision.recommend
    if recommend.any():
        chosen = torch.nonzero(recommend).squeeze(1)
        if scores is None:
            chosen_scores = ranker.scores(view.subset(chosen))
        else:
            chosen_scores = scores[chosen]
        items = recommendation_lists(chosen_scores, view.candidates[chosen], conversations.topk,
                                     view.priority[chosen])
        conversations.recommend(rows[chosen], items)
    if (~recommend).any():
        asking = torch.nonzero(~recommend).squeeze(1)
        conversations.ask(rows[asking], decision.attributes[asking])
    return len(rows)


def play_batch(pairs, episode_ids, ranker, policy, catalogue, seed, max_turns=15, topk=10):
    """Play the episodes ``pairs`` ([B, 2] user, target) to the end; returns their :class:`Outcomes`."""
    pairs = torch.as_tensor(np.asarray(pairs), dtype=torch.long).reshape(-1, 2)
    randomness = EpisodeRandomness(seed, episode_ids, catalogue.n_items, max_turns)
    user = SimulatedUser(pairs[:, 1], catalogue, randomness.opening)
    conversations = Conversations(pairs[:, 0], user, catalogue, randomness, max_turns=max_turns, topk=topk)
    with torch.no_grad():
        while step(conversations, ranker, policy):
            pass
    return Outcomes(
        users=pairs[:, 0], targets=pairs[:, 1], opening=conversations.opening, actions=conversations.actions,
        success_action=conversations.success_action, success_rank=conversations.success_rank,
        asked=conversations.n_accepted - 1 + conversations.n_rejected_attributes,
        accepted=conversations.n_accepted - 1,
    )


def play(pairs, ranker, policy, catalogue, seed, max_turns=15, topk=10, batch_size=1000, progress=None):
    """Play every episode of ``pairs`` ([N, 2]) in batches; ``progress(n)`` is called after each batch with
    the episodes it finished (e.g. a tqdm bar's ``update``). Returns :class:`Outcomes` in episode order."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    parts = []
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start: start + batch_size]
        episode_ids = np.arange(start, start + len(batch))
        parts.append(play_batch(batch, episode_ids, ranker, policy, catalogue, seed, max_turns, topk))
        if progress is not None:
            progress(len(batch))
    if not parts:
        return Outcomes(**{field: [] for field in Outcomes.FIELDS})
    return Outcomes.concatenate(parts)
