"""EAR/CRM-style user simulator: turns a target item into a conversation.

The simulated conversation follows the multi-round conversational recommendation setting of EAR (Lei et al.,
WSDM 2020) and CRM (Sun & Zhang, SIGIR 2018), reduced to what the atomic files record
(``docs/data-format.md``):

* turn 1: the user states an *initial attribute*, drawn uniformly from the target's attributes;
* every later turn is one system action:

  - **ask** the not-yet-asked attribute with maximum entropy over the current candidate set; the user
    confirms it iff the target carries it;
  - **recommend** the ``rec_list_size`` most popular candidates (ties by item order) when the candidate set
    has at most ``rec_list_size`` items or no attribute splits it any more; if the target is in the list the
    conversation ends, otherwise the listed items are rejected and leave the candidate set;

* the candidate set is: items carrying every confirmed attribute, minus items carrying a rejected attribute,
  minus rejected items (so the target is always a candidate);
* the conversation stops after ``max_turns`` turns, the initial statement included (the authors' Last.fm
  dialogues count it as their first turn, too).

Turns are numbered from 1 (the initial statement); the k-th system turn (``history[k]``) is turn ``k + 2``.
``Conversation.confirmed_turns`` and ``rejected_turns`` record, per confirmed attribute and per rejected item,
the turn it happened at, so evaluation can replay a conversation turn by turn.

Only the initial attribute is random. Everything after it is a deterministic function of the answers given
so far, so the simulator memoises the system's decision tree (one node per answer history). Every depth of
that tree partitions the item sets of its roots, so it holds at most ``max_turns * nnz(item x attribute)``
item ids in total, and each node's work (one sparse column count) is done once, however many conversations
pass through it. That keeps LastFM* (7,432 items, 8,438 tags, ~77k conversations) to a few seconds.
"""

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recbole_crs.data.tokens import natural_key

DEFAULT_MAX_TURNS = 5
DEFAULT_REC_LIST_SIZE = 10
DEFAULT_SEED = 2020

# Kinds of system turn, as they appear in Conversation.history.
ASK = "ask"
RECOMMEND = "recommend"


@dataclass
class Conversation:
    """One simulated conversation.

    Attributes:
        target: the target item (as given to :meth:`ConversationSimulator.simulate`).
        confirmed: attributes the user confirmed, in turn order; ``confirmed[0]`` is the initial attribute.
        rejected_items: items recommended and rejected, in turn order (each list by rank); never the target.
        rejected_attributes: attributes asked about and denied, in turn order.
        turns: turns used, the initial statement included (<= ``max_turns``).
        success: whether a recommendation list contained the target.
        history: one entry per system turn: ``("ask", attribute, confirmed?)`` or
            ``("recommend", [items], accepted?)``.
        confirmed_turns: parallel to ``confirmed``: the 1-based turn of each confirmation (the initial
            attribute is turn 1; ``history[k]`` is turn ``k + 2``); non-decreasing.
        rejected_turns: parallel to ``rejected_items``: the turn at which each item was recommended and
            rejected (one value per item, so a rejected list of 10 items at turn 4 gives ten 4s).
    """

    target: object
    confirmed: list = field(default_factory=list)
    rejected_items: list = field(default_factory=list)
    rejected_attributes: list = field(default_factory=list)
    turns: int = 1
    success: bool = False
    history: list = field(default_factory=list)
    confirmed_turns: list = field(default_factory=list)
    rejected_turns: list = field(default_factory=list)


class _Node:
    """A state of the system's decision tree: the candidate set after one answer history."""

    __slots__ = ("candidates", "asked", "action", "children")

    def __init__(self, candidates, asked):
        self.candidates = candidates  # sorted int array of item indices; always contains the target
        self.asked = asked  # frozenset of attribute indices already asked (the initial one included)
        self.action = None  # (ASK, attribute index) or (RECOMMEND, item index array), set lazily
        self.children = {}  # answer (bool) -> _Node


class ConversationSimulator:
    """Simulate conversations that end at (or give up on) a target item.

    Args:
        item_attributes: item -> iterable of attribute tokens. Items with no attributes may be listed (they
            are never candidates) but cannot be targets.
        item_popularity: item -> popularity (e.g. training interaction count); decides which candidates are
            recommended. Missing items count 0; ``None`` makes every item equally popular, so the
            recommendation order is the item order (see :func:`natural_key`).
        max_turns: turns per conversation, the initial statement included (>= 1).
        rec_list_size: items per recommendation, and the candidate-set size at or below which the system
            recommends instead of asking (>= 1).
        seed: seed of the ``numpy.random.Generator`` that draws initial attributes. The draws are consumed in
            call order, so the same seed and the same sequence of targets give the same conversations.
    """

    def __init__(
        self,
        item_attributes,
        item_popularity=None,
        max_turns=DEFAULT_MAX_TURNS,
        rec_list_size=DEFAULT_REC_LIST_SIZE,
        seed=DEFAULT_SEED,
    ):
        _check_positive_int("max_turns", max_turns)
        _check_positive_int("rec_list_size", rec_list_size)
        self.max_turns = int(max_turns)
        self.rec_list_size = int(rec_list_size)
        self.seed = seed
        self._rng = np.random.default_rng(seed)

        self.items = sorted(item_attributes, key=natural_key)
        self.attributes = sorted(
            {a for attrs in item_attributes.values() if not isinstance(attrs, str) for a in attrs},
            key=natural_key,
        )
        self._item_index = {item: i for i, item in enumerate(self.items)}
        self._attribute_index = {attr: j for j, attr in enumerate(self.attributes)}
        self._item_attr = self._build_matrix(item_attributes)  # CSR; each row's columns sorted
        self._attr_item = self._item_attr.tocsc()  # column j = sorted item indices carrying attribute j
        self._rank = self._recommendation_rank(item_popularity)
        self._roots = {}  # initial attribute index -> _Node

    # ------------------------------------------------------------------ construction
    def _build_matrix(self, item_attributes):
        """Boolean item x attribute matrix (CSR with sorted, duplicate-free indices)."""
        rows, cols = [], []
        for item, attrs in item_attributes.items():
            if isinstance(attrs, (str, bytes)):  # would silently become one attribute per character
                raise ValueError(f"item_attributes[{item!r}] is a string; give a list of attribute tokens.")
            columns = sorted({self._attribute_index[a] for a in attrs})
            rows.extend([self._item_index[item]] * len(columns))
            cols.extend(columns)
        data = np.ones(len(rows), dtype=bool)
        shape = (len(self.items), len(self.attributes))
        matrix = sp.csr_matrix(
            (data, (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))), shape
        )
        matrix.sort_indices()
        return matrix

    def _recommendation_rank(self, item_popularity):
        """rank[i] = position of item i in the global recommendation order (popularity desc, then item order).

        Any candidate set's top-k is then its k smallest ranks, so ties are broken the same way everywhere.
        """
        popularity = np.zeros(len(self.items), dtype=np.float64)
        for item, value in (item_popularity or {}).items():
            if item not in self._item_index:
                raise ValueError(
                    f"item_popularity has item {item!r}, which is not in item_attributes; give popularity "
                    "only for catalogue items."
                )
            popularity[self._item_index[item]] = float(value)
        # lexsort: last key is primary -> sort by -popularity, ties by item index.
        order = np.lexsort((np.arange(len(self.items)), -popularity))
        rank = np.empty(len(self.items), dtype=np.int64)
        rank[order] = np.arange(len(self.items))
        return rank

    # ------------------------------------------------------------------ public API
    def attributes_of(self, item):
        """The item's attributes, in attribute order (:func:`natural_key`)."""
        return [self.attributes[j] for j in self._attribute_indices(self._row(item))]

    def simulate(self, target_item):
        """Simulate one conversation for ``target_item`` (consumes one draw of the seeded generator)."""
        target = self._target_index(target_item)
        target_attrs = self._attribute_indices(target)
        initial = int(target_attrs[self._rng.integers(len(target_attrs))])
        target_attr_set = set(target_attrs.tolist())

        conversation = Conversation(
            target=target_item, confirmed=[self.attributes[initial]], confirmed_turns=[1]
        )
        node = self._root(initial)
        while conversation.turns < self.max_turns:
            kind, value = self._action(node)
            conversation.turns += 1
            if kind == ASK:
                answer = value in target_attr_set
                attribute = self.attributes[value]
                if answer:
                    conversation.confirmed.append(attribute)
                    conversation.confirmed_turns.append(conversation.turns)
                else:
                    conversation.rejected_attributes.append(attribute)
                conversation.history.append((ASK, attribute, answer))
            else:
                answer = bool(np.any(value == target))
                recommended = [self.items[i] for i in value]
                conversation.history.append((RECOMMEND, recommended, answer))
                if answer:
                    conversation.success = True
                    break
                conversation.rejected_items.extend(recommended)
                conversation.rejected_turns.extend([conversation.turns] * len(recommended))
            node = self._child(node, answer)
        return conversation

    def simulate_many(self, targets):
        """Simulate one conversation per target, in the given order."""
        return [self.simulate(target) for target in targets]

    # ------------------------------------------------------------------ decision tree
    def _row(self, item):
        try:
            return self._item_index[item]
        except (KeyError, TypeError):
            raise ValueError(
                f"Item {item!r} is not in the simulator's catalogue ({len(self.items)} items); add it with "
                "its attributes to item_attributes, or drop the interactions with this item."
            ) from None

    def _attribute_indices(self, row):
        """Sorted attribute indices of item row ``row``."""
        return self._item_attr.indices[self._item_attr.indptr[row] : self._item_attr.indptr[row + 1]]

    def _target_index(self, item):
        row = self._row(item)
        if len(self._attribute_indices(row)) == 0:
            raise ValueError(
                f"Item {item!r} has no attributes, so no conversation can lead to it; give it at least one "
                "attribute in item_attributes, or drop the interactions with this item."
            )
        return row

    def _root(self, initial):
        node = self._roots.get(initial)
        if node is None:
            candidates = self._items_with(initial)
            node = self._roots[initial] = _Node(candidates, frozenset([initial]))
        return node

    def _items_with(self, attribute):
        """Sorted item indices carrying ``attribute``."""
        return self._attr_item.indices[
            self._attr_item.indptr[attribute] : self._attr_item.indptr[attribute + 1]
        ]

    def _action(self, node):
        if node.action is None:
            node.action = self._decide(node)
        return node.action

    def _decide(self, node):
        """Ask the most informative unasked attribute; recommend if none splits or few candidates remain."""
        candidates = node.candidates
        size = len(candidates)
        if size > self.rec_list_size:
            counts = np.bincount(self._item_attr[candidates].indices, minlength=len(self.attributes))
            # Binary entropy of "candidate carries a" is maximal where |2*count - size| is minimal; comparing
            # integers makes ties exact, and argmin breaks them by the lowest attribute index.
            imbalance = np.abs(2 * counts - size)
            uninformative = (counts == 0) | (counts == size)
            uninformative[list(node.asked)] = True
            if not uninformative.all():
                imbalance[uninformative] = np.iinfo(imbalance.dtype).max
                return (ASK, int(np.argmin(imbalance)))
        top = np.argsort(self._rank[candidates], kind="stable")[: self.rec_list_size]
        return (RECOMMEND, candidates[top])

    def _child(self, node, answer):
        child = node.children.get(answer)
        if child is None:
            kind, value = node.action
            if kind == ASK:
                carries = np.isin(node.candidates, self._items_with(value), assume_unique=True)
                candidates = node.candidates[carries if answer else ~carries]
                child = _Node(candidates, node.asked | {value})
            else:  # a rejected recommendation
                child = _Node(np.setdiff1d(node.candidates, value, assume_unique=True), node.asked)
            node.children[answer] = child
        return child


def summarize_conversations(conversations):
    """Length statistics of conversations, for reports (anything with ``confirmed``/``rejected_items``)."""
    n = len(conversations)
    if n == 0:
        return {"conversations": 0}
    confirmed = np.array([len(c.confirmed) for c in conversations])
    rejected = np.array([len(c.rejected_items) for c in conversations])
    stats = {
        "conversations": n,
        "confirmed_mean": float(confirmed.mean()),
        "confirmed_min": int(confirmed.min()),
        "confirmed_max": int(confirmed.max()),
        "rejected_items_mean": float(rejected.mean()),
    }
    if all(isinstance(c, Conversation) for c in conversations):  # real dialogues have no turns/success
        stats["turns_mean"] = float(np.mean([c.turns for c in conversations]))
        stats["success_rate"] = float(np.mean([c.success for c in conversations]))
    return stats


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
