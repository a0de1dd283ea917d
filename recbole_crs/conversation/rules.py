"""The rules of the multi-round game, one function each, on batches of episodes (UNICORN's
``RL/env_binary_question.py``; SCPR and EAR play by the same rules).

* **Opening turn** (:func:`opening_attributes`, :func:`opening_candidates`): the user names one attribute of the
  target, drawn uniformly; the candidates are the items that have it (the target among them).
* **Ask** (:func:`answer_questions`, :func:`apply_answers`): the user accepts an attribute iff the target has
  it. An accepted attribute intersects the candidates with its items; a rejected one changes **no** candidate:
  nothing may be dropped because it carries a rejected attribute (that would use what only the target
  knows and makes the game trivial, see ``docs/conversation.md``).
* **Recommend** (:func:`recommendation_lists`, :func:`judge_recommendations`, :func:`remove_rejected`): the
  ``k`` candidates the ranker scores highest; the episode succeeds iff the target is among them, otherwise
  those items leave the candidates.
* **Turn limit** (:func:`out_of_turns`): at most ``max_turns`` turns, the opening one included, so the policy
  acts at most ``max_turns - 1`` times.

The target is always a candidate (an accepted attribute is one the target has; only failed lists are
removed), so with ``k`` or fewer candidates left a recommendation always succeeds. UNICORN removes failed items
only while more than ``k`` candidates remain; as a failure leaves more than ``k``, that is the same rule.
"""

import torch

INT64_MIN = torch.iinfo(torch.int64).min


def opening_attributes(targets, catalogue, uniforms):
    """[E] long: the attribute each user opens with, ``floor(u * n)``-th of the target's ``n`` attributes
    (ascending ids), ``u`` = ``uniforms`` [E] in [0, 1) (the episodes' own random streams)."""
    matrix = catalogue.item_matrix
    targets = targets.cpu().numpy()
    starts, counts = matrix.indptr[targets], catalogue.counts[targets]
    if (counts == 0).any():
        raise ValueError(f"target items {targets[counts == 0][:5].tolist()} have no attribute to open with")
    picks = (uniforms.cpu().numpy() * counts).astype("int64").clip(max=counts - 1)
    return torch.from_numpy(matrix.indices[starts + picks].astype("int64"))


def opening_candidates(opening, catalogue):
    """[E, n_items] bool: the items that have the opening attribute."""
    return catalogue.items_with(opening).clone()


def answer_questions(targets, attributes, catalogue):
    """[E] bool: the simulated user accepts ``attributes[e]`` iff ``targets[e]`` has it."""
    return catalogue.has(targets, attributes)


def apply_answers(candidates, attributes, accepted, catalogue):
    """The candidates after the answers: intersected with the items of an accepted attribute, unchanged
    (not one item dropped) after a rejected one. [E, n_items] bool, [E] long, [E] bool."""
    kept = candidates & catalogue.items_with(attributes)
    return torch.where(accepted.unsqueeze(1), kept, candidates)


def sortable_scores(scores):
    """[E, n] int64 keys ordered like the float scores: NaN counts as the lowest score (a broken model gains
    nothing from it) and -0.0 equals 0.0."""
    scores = torch.nan_to_num(scores.float(), nan=-torch.inf) + 0.0
    bits = scores.view(torch.int32)
    return torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).long()


def ranking_keys(scores, candidates, priority):
    """[E, n] int64 keys of the recommendation order: higher score first, ties to the higher ``priority``
    ([E, n_items] int32 >= 0, a seeded random order of the items per episode, so no item is favoured by its
    id); non-candidates get the lowest key. Exact for every float score: the score's bit pattern (ordered like
    the float) times 2^32 plus the priority."""
    key = sortable_scores(scores) * (1 << 32) + priority.long()
    return key.masked_fill(~candidates, INT64_MIN)


def recommendation_lists(scores, candidates, k, priority):
    """[E, k] long: each episode's ``k`` highest-scored candidates in :func:`ranking_keys` order, best first; 0
    pads a row with fewer than ``k`` candidates."""
    key = ranking_keys(scores, candidates, priority)
    top = key.topk(min(k, key.shape[1]), dim=1).indices  # [E, k]
    chosen = torch.gather(candidates, 1, top)
    items = torch.where(chosen, top, torch.zeros_like(top))
    if items.shape[1] < k:
        items = torch.nn.functional.pad(items, (0, k - items.shape[1]))
    return items


def judge_recommendations(items, targets):
    """[E] long: the 1-based rank of the target in each list, 0 when it is not there (the user rejects all)."""
    hit = items == targets.unsqueeze(1)
    ranks = torch.argmax(hit.long(), dim=1) + 1
    return torch.where(hit.any(dim=1), ranks, torch.zeros_like(ranks))


def remove_rejected(candidates, items):
    """The candidates without the items of a rejected list ([E, n_items] bool, [E, k] long, 0 = padding)."""
    candidates = candidates.clone()
    rows = torch.arange(len(items)).unsqueeze(1).expand_as(items)
    candidates[rows[items > 0], items[items > 0]] = False
    return candidates


def out_of_turns(actions, max_turns):
    """[E] bool: the policy has used all its ``max_turns - 1`` actions (the opening turn is turn 1)."""
    return actions >= max_turns - 1
