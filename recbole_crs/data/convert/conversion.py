"""What every converter does besides reading its format: the shared options, the seeded random streams, the
simulation of missing conversations, candidate lists, the conversation regime, writing and the report.

A converter ``convert_<format>(<its inputs>, out_dir, <its options>, **options)``:

1. starts a :class:`Conversion` (checks the options of :class:`ConversionOptions` and ``--candidates``, before
   any input is read, each error naming its option, and splits ``--seed`` into independent streams);
2. reads its input into a :class:`~recbole_crs.data.convert.reading.Catalogue` and
   :class:`~recbole_crs.data.convert.writing.Row` objects: a real conversation where the format has one, ``None``
   (to simulate) elsewhere, and the split where the format decides it;
3. returns :meth:`Conversion.close`: the closing steps, the same for every format.
"""

import numbers
import os
import time
from collections import Counter
from dataclasses import dataclass, fields

import numpy as np

from recbole_crs.data.convert.regimes import (
    ALL_CONVERSATIONS,
    TARGET_CONVERSATIONS,
    check_conversation_regime,
    keep_target_conversations,
)
from recbole_crs.data.convert.report import UNSPLIT, ConversionReport
from recbole_crs.data.convert.writing import write_crs_dataset
from recbole_crs.data.fields import EVALUATED_SPLITS, TRAIN_SPLIT
from recbole_crs.data.simulator import (
    DEFAULT_MAX_TURNS,
    DEFAULT_REC_LIST_SIZE,
    DEFAULT_SEED,
    ConversationSimulator,
    summarize_conversations,
)
from recbole_crs.errors import ConversionError


@dataclass(frozen=True)
class ConversionOptions:
    """The options every format takes, as keyword arguments of ``convert_<format>`` (command line:
    ``cli.add_common_options``, the same names with dashes)."""

    name: str = None  # dataset name (default: last part of out_dir)
    seed: int = DEFAULT_SEED
    max_turns: int = DEFAULT_MAX_TURNS
    rec_list_size: int = DEFAULT_REC_LIST_SIZE
    skip_invalid: bool = False
    drop_items_without_attributes: bool = False
    conversations: str = ALL_CONVERSATIONS
    train_conversations: object = None  # with "targets": a fraction in (0, 1] or a count (default 1.0)


COMMON_OPTIONS = tuple(option.name for option in fields(ConversionOptions))


class Conversion:
    """One run of a converter: its checked options, its random streams, its report, and the closing steps.

    ``candidates``: the format's ``--candidates`` (checked here; 0, the default: no candidate column).
    """

    def __init__(self, converter, out_dir, options, candidates=0):
        self.started = time.perf_counter()
        self.report = ConversionReport(converter)
        self.options = ConversionOptions(**options)
        self.out_dir = out_dir
        self.name = dataset_name(out_dir, self.options.name)
        check_integer("--seed", self.options.seed, 0)
        check_integer("--max-turns", self.options.max_turns, 1)
        check_integer("--rec-list-size", self.options.rec_list_size, 1)
        check_integer("--candidates", candidates, 0)
        self.candidates = candidates
        self.train_conversations = check_conversation_regime(
            self.options.conversations, self.options.train_conversations
        )
        self.simulation_seed, self.holdout_rng, self.candidate_rng, self.regime_rng = seeds(self.options.seed)

    def close(
        self,
        rows,
        catalogue,
        targets_note,
        with_split=True,
        item_popularity=None,
        keep_simulated=True,
        candidate_notes=None,
    ):
        """Simulate the missing conversations, add the candidate lists, apply the regime, write; return the report.

        ``rows``: in the order to write, every split set when ``with_split``. The simulator recommends popular
        items first, by ``item_popularity`` (default: interaction counts over the training rows, :func:`popularity`).
        ``candidate_notes(sizes, candidates)``: the report's notes on the candidate lists (``--candidates``).
        With ``--conversations targets``, ``keep_simulated=False`` lets only real conversations stay on training
        rows (:func:`~recbole_crs.data.convert.regimes.keep_target_conversations`); ``targets_note`` is the
        report's note on that regime.
        """
        report, options = self.report, self.options
        report.simulated_conversations = simulate_rows(
            rows,
            catalogue.item_attributes,
            popularity(rows) if item_popularity is None else item_popularity,
            self.simulation_seed,
            options.max_turns,
            options.rec_list_size,
        )
        if self.candidates:
            sizes = add_candidates(rows, catalogue, self.candidates, self.candidate_rng)
            report.notes += candidate_notes(sizes, self.candidates)
        if options.conversations == TARGET_CONVERSATIONS:
            keep_target_conversations(rows, self.train_conversations, self.regime_rng, report, keep_simulated)
            report.notes.append(targets_note)
        items = catalogue.item_attributes
        report.out_dir, report.name = self.out_dir, self.name
        written = write_crs_dataset(self.out_dir, self.name, items, rows, with_split, bool(self.candidates))
        report.files = list(written)
        report.rows = Counter(row.split or UNSPLIT for row in rows)
        report.conversation_rows = Counter(row.split or UNSPLIT for row in rows if row.confirmed)
        report.users = Counter(split for split, _ in {(row.split or UNSPLIT, row.user) for row in rows})
        report.items = len(items)
        report.attributes = len({a for attrs in items.values() for a in attrs})
        report.seconds = time.perf_counter() - self.started
        return report


def seeds(seed):
    """Independent seeds for simulation, holdout, candidates and the ``--conversations targets`` choice of
    users: one use never shifts another's draws. ``spawn`` numbers its children, so the first three are the
    ones this function returned before the fourth was added (outputs of older versions stay identical)."""
    simulation, holdout, candidates, regime = np.random.SeedSequence(seed).spawn(4)
    return simulation, np.random.default_rng(holdout), np.random.default_rng(candidates), np.random.default_rng(regime)


def simulate_rows(rows, catalogue_items, item_popularity, simulation_seed, max_turns, rec_list_size):
    """Fill ``confirmed``/``rejected`` (and their turns) of ``rows`` whose ``confirmed`` is None, in row order."""
    simulator = ConversationSimulator(
        catalogue_items,
        item_popularity=item_popularity,
        max_turns=max_turns,
        rec_list_size=rec_list_size,
        seed=simulation_seed,
    )
    conversations = []
    for row in rows:
        if row.confirmed is None:
            conversation = simulator.simulate(row.item)
            row.confirmed, row.rejected = conversation.confirmed, conversation.rejected_items
            row.confirmed_turns = conversation.confirmed_turns
            row.rejected_turns = conversation.rejected_turns
            row.simulated = True
            conversations.append(conversation)
    return summarize_conversations(conversations)


def add_candidates(rows, catalogue, n_candidates, rng):
    """Give each evaluated row up to ``n_candidates`` items sharing its initial attribute (target removed).

    Uniform without replacement from the pool in item order, then sorted, so the list depends only on the seed
    and the row order. Training rows get an empty list.
    """
    sizes = []
    for row in rows:
        row.candidates = []
        if row.split not in EVALUATED_SPLITS:
            continue
        pool = catalogue.items_with(row.confirmed[0])
        pool = pool[pool != row.item]
        chosen = np.sort(rng.choice(len(pool), size=min(n_candidates, len(pool)), replace=False))
        row.candidates = pool[chosen].tolist()  # pool is in item order, so sorted indices keep that order
        sizes.append(len(row.candidates))
    return sizes


def check_integer(option, value, minimum):
    """The numeric options, checked before any input is read, each error naming its option."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConversionError(f"{option} must be an integer >= {minimum}, got {value!r}.")


def popularity(rows, splits=None):
    """Interaction counts over the training rows: ``splits[i]`` is row i's split (default: each row's own).

    The simulator recommends popular candidates first; counting training rows only keeps held-out targets
    from shaping the simulated conversations.
    """
    splits = [row.split for row in rows] if splits is None else splits
    return Counter(row.item for row, split in zip(rows, splits) if split == TRAIN_SPLIT)


def dataset_name(out_dir, name):
    name = name or os.path.basename(os.path.normpath(out_dir))
    if not name or name in (".", ".."):
        raise ConversionError(f"Cannot take a dataset name from --out '{out_dir}'; pass --name.")
    return name
