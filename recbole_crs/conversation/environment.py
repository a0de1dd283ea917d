"""The environment: a batch of episodes played by the rules of :mod:`~recbole_crs.conversation.rules`.

:class:`Conversations` holds what the system knows of each episode (never the target): the user, the
candidates (an ``[E, n_items]`` bool mask), the attributes accepted in order (the opening one first), the
rejected attributes and items, and the actions taken. The answers come from a user object:

* :class:`SimulatedUser` holds the targets and answers by the rules (accept an attribute iff the target has
  it; find the target in a list or reject it);
* the interactive mode's terminal user (``recbole_crs.conversation.interactive``) asks a person instead.

A user object has ``opening(rows)``, ``answer(rows, attributes)`` -> [B] bool and ``judge(rows, items)`` ->
[B] long (1-based rank of the accepted item, 0 = none), for the episodes ``rows`` of the batch.

:meth:`Conversations.view` gives a policy or a ranker the state of the episodes still running
(:class:`ConversationView`); :meth:`Conversations.ask` and :meth:`Conversations.recommend` apply one action
to some of them. An attribute asked before (the opening one included) cannot be asked again (UNICORN only
offers attributes not yet accepted or rejected).
"""

import torch

from recbole_crs.conversation import rules


class SimulatedUser:
    """The simulated user of every episode of a batch: ``targets`` [E] long, answering by the rules."""

    def __init__(self, targets, catalogue, opening_uniforms):
        self.targets = torch.as_tensor(targets, dtype=torch.long)
        self.catalogue = catalogue
        self.opening_uniforms = opening_uniforms

    def opening(self, rows):
        return rules.opening_attributes(self.targets[rows], self.catalogue, self.opening_uniforms[rows])

    def answer(self, rows, attributes):
        return rules.answer_questions(self.targets[rows], attributes, self.catalogue)

    def judge(self, rows, items):
        return rules.judge_recommendations(items, self.targets[rows])


class ConversationView:
    """The state of some episodes as a policy and a ranker see it (tensors, row b = episode ``rows[b]``).

    ``users`` [B]; ``candidates`` [B, n_items] bool; ``accepted`` [B, C] attribute ids in the order the user
    gave them (opening first, 0-padded); ``rejected_attributes`` [B, C]; ``rejected_items`` [B, R] in the
    order they were rejected; ``asked`` [B, n_attributes] bool; ``actions`` [B] actions taken so far;
    ``actions_left`` [B] (>= 1); ``uniforms`` [B] this action's random number of each episode;
    ``priority`` [B, n_items] the tie-break order of recommendation lists.
    """

    def __init__(self, rows, **tensors):
        self.rows = rows
        for name, value in tensors.items():
            setattr(self, name, value)

    def __len__(self):
        return len(self.rows)

    def subset(self, chosen):
        """The view of the episodes ``chosen`` ([b] positions in this view)."""
        fields = {name: value[chosen] for name, value in vars(self).items() if name != "rows"}
        return ConversationView(self.rows[chosen], **fields)


class Conversations:
    """A batch of episodes after their opening turn.

    Args:
        users: [E] long internal user ids.
        user: the answering user (:class:`SimulatedUser` or the terminal user).
        catalogue: :class:`~recbole_crs.conversation.catalogue.ItemAttributes`.
        randomness: :class:`~recbole_crs.conversation.episodes.EpisodeRandomness` of these episodes.
        max_turns: turns including the opening one (the policy acts at most ``max_turns - 1`` times).
        topk: length of a recommendation list.
    """

    def __init__(self, users, user, catalogue, randomness, max_turns=15, topk=10):
        self.users = torch.as_tensor(users, dtype=torch.long)
        self.user, self.catalogue, self.randomness = user, catalogue, randomness
        self.max_turns, self.topk = max_turns, topk
        n = len(self.users)
        slots = max(max_turns, 1)
        everyone = torch.arange(n)
        self.opening = user.opening(everyone)  # [E]
        self.candidates = rules.opening_candidates(self.opening, catalogue)  # [E, n_items]
        self.asked = torch.zeros(n, catalogue.n_attributes, dtype=torch.bool)
        self.asked[everyone, self.opening] = True
        self.accepted = torch.zeros(n, slots, dtype=torch.long)
        self.accepted[:, 0] = self.opening
        self.n_accepted = torch.ones(n, dtype=torch.long)
        self.rejected_attributes = torch.zeros(n, slots, dtype=torch.long)
        self.n_rejected_attributes = torch.zeros(n, dtype=torch.long)
        self.rejected_items = torch.zeros(n, slots * topk, dtype=torch.long)
        self.n_rejected_items = torch.zeros(n, dtype=torch.long)
        self.actions = torch.zeros(n, dtype=torch.long)
        self.success_action = torch.zeros(n, dtype=torch.long)  # 0 = not (yet) succeeded
        self.success_rank = torch.zeros(n, dtype=torch.long)
        self.done = rules.out_of_turns(self.actions, max_turns)

    def __len__(self):
        return len(self.users)

    def active_rows(self):
        return torch.nonzero(~self.done).squeeze(1)

    def view(self, rows):
        """:class:`ConversationView` of the episodes ``rows``."""
        width_accepted = self._width(self.n_accepted, rows)
        width_rejected = self._width(self.n_rejected_attributes, rows)
        width_items = self._width(self.n_rejected_items, rows)
        turn = self.actions[rows].clamp(max=self.randomness.action_uniforms.shape[1] - 1)
        return ConversationView(
            rows,
            users=self.users[rows],
            candidates=self.candidates[rows],
            accepted=self.accepted[rows, :width_accepted],
            rejected_attributes=self.rejected_attributes[rows, :width_rejected],
            rejected_items=self.rejected_items[rows, :width_items],
            asked=self.asked[rows],
            actions=self.actions[rows],
            actions_left=self.max_turns - 1 - self.actions[rows],
            uniforms=self.randomness.action_uniforms[rows, turn],
            priority=self.randomness.priority[rows],
        )

    @staticmethod
    def _width(counts, rows):
        """Columns needed to hold the longest list of ``rows`` (at least 1, so a padded tensor is never empty)."""
        return max(int(counts[rows].max()), 1) if len(rows) else 1

    def _check_running(self, rows):
        if self.done[rows].any():
            raise ValueError("an action for an episode that has ended")

    def ask(self, rows, attributes):
        """The episodes ``rows`` ask ``attributes`` ([B] long, never asked before in that episode, not 0)."""
        self._check_running(rows)
        attributes = torch.as_tensor(attributes, dtype=torch.long)
        if (attributes <= 0).any() or (attributes >= self.catalogue.n_attributes).any():
            raise ValueError("asked attribute ids must be real attributes (1 .. n_attributes - 1)")
        if self.asked[rows, attributes].any():
            raise ValueError("an attribute was asked twice in one episode (the opening one counts as asked)")
        accepted = self.user.answer(rows, attributes)
        self.asked[rows, attributes] = True
        self.candidates[rows] = rules.apply_answers(self.candidates[rows], attributes, accepted, self.catalogue)
        self._append(self.accepted, self.n_accepted, rows[accepted], attributes[accepted].unsqueeze(1))
        self._append(self.rejected_attributes, self.n_rejected_attributes, rows[~accepted],
                     attributes[~accepted].unsqueeze(1))
        self._count_action(rows)
        return accepted

    def recommend(self, rows, items):
        """The episodes ``rows`` recommend ``items`` ([B, k] long, 0-padded; a ranker's list from
        :func:`~recbole_crs.conversation.rules.recommendation_lists`). Returns the ranks ([B], 0 = rejected)."""
        self._check_running(rows)
        ranks = self.user.judge(rows, items)
        failed = ranks == 0
        self.candidates[rows[failed]] = rules.remove_rejected(self.candidates[rows[failed]], items[failed])
        self._append(self.rejected_items, self.n_rejected_items, rows[failed], items[failed])
        self._count_action(rows)
        won = rows[~failed]
        self.success_action[won] = self.actions[won]
        self.success_rank[won] = ranks[~failed]
        self.done[won] = True
        return ranks

    def _count_action(self, rows):
        self.actions[rows] += 1
        self.done[rows] |= rules.out_of_turns(self.actions[rows], self.max_turns)

    @staticmethod
    def _append(table, counts, rows, values):
        """Append each row's real values (``values`` [B, w], 0 = padding) after its ``counts`` entries."""
        if len(rows) == 0:
            return
        real = values > 0
        offsets = counts[rows].unsqueeze(1) + torch.cumsum(real.long(), dim=1) - 1  # [B, w]
        target_rows = rows.unsqueeze(1).expand_as(values)
        table[target_rows[real], offsets[real]] = values[real]
        counts[rows] += real.sum(dim=1)
