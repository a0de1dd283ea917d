"""Convert conversational-recommendation data into recbole-crs atomic files (``docs/data-format.md``).

Command line (``python -m recbole_crs.data.convert --help``; details in ``docs/converters.md``)::

    python -m recbole_crs.data.convert precrs-lastfm --item-dict item_dict_lastfm1.0.json \\
        --records val_lastfm.json --holdout valid=0.2,test=0.2 --candidates 100 --out dataset/lastfm-precrs
    python -m recbole_crs.data.convert scpr-lastfm-star --data-dir scpr-lastfm-star/ --out dataset/lastfm-star
    python -m recbole_crs.data.convert recbole --data-path DIR --dataset ml-100k --attribute-field class \\
        --out dataset/ml-100k-crs

Every converter writes ``<out>/<name>.item`` and ``<out>/<name>.inter`` (``name`` = last part of ``--out``),
byte-identical across runs: rows sorted, numbers formatted one way, every random choice drawn from a
``numpy`` generator seeded by ``--seed``. Malformed input is never dropped silently: by default the
conversion fails with the first problem and the number of malformed records; ``--skip-invalid`` skips them
and the report counts them per reason.
"""

import argparse
import hashlib
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from recbole_crs.data.simulator import (
    DEFAULT_MAX_TURNS,
    DEFAULT_REC_LIST_SIZE,
    DEFAULT_SEED,
    ConversationSimulator,
    natural_key,
    summarize_conversations,
)

# Column names and types of docs/data-format.md (the plugin's default field names).
from recbole_crs.data.fields import (  # noqa: E402,F401  (re-exported for the tests and callers)
    ATTRIBUTES_COLUMN,
    CANDIDATE_COLUMN,
    CONFIRMED_COLUMN,
    CONFIRMED_TURNS_COLUMN,
    EVALUATED_SPLITS,
    ITEM_COLUMN,
    REJECTED_COLUMN,
    REJECTED_TURNS_COLUMN,
    SPLIT_COLUMN,
    SPLITS,
    TIME_COLUMN,
    USER_COLUMN,
)
# --conversations: "all" rows keep their conversation, or only evaluated "targets" and the last training row
# of a seeded subset of training users (the paper's regime: dialogues scarce, histories abundant).
CONVERSATION_REGIMES = ("all", "targets")
# The authors rank the target against up to this many items sharing the initial attribute.
AUTHORS_CANDIDATES = 100
# How many example ids an error message quotes; counts are always given in full.
_EXAMPLES = 3

PRECRS_REQUIRED_KEYS = ("user", "context", "pos_item", "initial", "dialog")
# A dialogue turn [attribute, n] has exactly this length; any other length is a list of rejected items.
PRECRS_ATTRIBUTE_TURN_LENGTH = 2
SCPR_FEATURE_KEY = "feature_index"
# Reason under which records using an attribute-less item are counted.
WITHOUT_ATTRIBUTES = "item without attributes"
SCPR_FILES = {"item_dict": "item_dict.json", **{s: f"review_dict_{s}.json" for s in SPLITS}}


class ConversionError(ValueError):
    """Input that cannot be converted as given; the message names the problem and the fix."""


class _Invalid(Exception):
    """One malformed record: ``reason`` (short, used for counts) and ``message`` (names the record)."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason
        self.message = message


# ---------------------------------------------------------------------------------------------- report
@dataclass
class ConversionReport:
    """What a conversion read, kept, dropped (and why) and wrote."""

    converter: str
    out_dir: str = ""
    name: str = ""
    records_read: int = 0
    records_kept: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> records skipped
    rows: Counter = field(default_factory=Counter)  # split (or "all") -> .inter rows written
    items: int = 0
    attributes: int = 0
    notes: list = field(default_factory=list)  # other things the user should know (counts included)
    real_conversations: dict = field(default_factory=dict)
    simulated_conversations: dict = field(default_factory=dict)
    conversations: str = "all"  # the --conversations regime
    # split (or "all") -> rows of that split whose written conversation is not empty
    conversation_rows: Counter = field(default_factory=Counter)
    # split (or "all") -> users with rows of that split
    users: Counter = field(default_factory=Counter)
    # with --conversations targets: training users that could carry one / were chosen (see _keep_targets)
    eligible_users: int = 0
    chosen_users: int = 0
    seconds: float = 0.0
    files: list = field(default_factory=list)

    def __str__(self):
        lines = [
            f"[{self.converter}] wrote {self.name!r} to {self.out_dir} in {self.seconds:.2f} s",
            f"  records: {self.records_read} read, {self.records_kept} kept, "
            f"{sum(self.skipped.values())} skipped",
        ]
        lines += [f"    skipped ({reason}): {count}" for reason, count in sorted(self.skipped.items())]
        rows = ", ".join(f"{split} {count}" for split, count in sorted(self.rows.items(), key=_split_order))
        lines.append(f"  .inter rows: {sum(self.rows.values())} ({rows})")
        lines.append(f"  .item rows: {self.items} items, {self.attributes} distinct attributes")
        with_conversation = ", ".join(
            f"{split} {self.conversation_rows[split]} of {count} ({self.users[split]} users)"
            for split, count in sorted(self.rows.items(), key=_split_order)
        )
        lines.append(f"  rows with a conversation: {with_conversation}")
        if self.conversations != "all":
            lines.append(
                f"  --conversations {self.conversations}: every evaluated row keeps its conversation; the last "
                f"training row of {self.chosen_users} of {self.eligible_users} eligible training users keeps "
                "one; every other row is a plain interaction"
            )
        for label, stats in (("real", self.real_conversations), ("simulated", self.simulated_conversations)):
            if stats.get("conversations"):
                lines.append(f"  {label} conversations: " + _format_stats(stats))
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _split_order(pair):
    return (SPLITS.index(pair[0]) if pair[0] in SPLITS else len(SPLITS), pair[0])


def _format_stats(stats):
    return (
        f"{stats['conversations']}, confirmed attributes mean {stats['confirmed_mean']:.2f} "
        f"(min {stats['confirmed_min']}, max {stats['confirmed_max']}), rejected items mean "
        f"{stats['rejected_items_mean']:.2f}"
        + (
            f", turns mean {stats['turns_mean']:.2f}, success {stats['success_rate']:.3f}"
            if "turns_mean" in stats
            else ""
        )
    )


class _Problems:
    """Collects malformed records; at the end either raises (default) or leaves them counted as skipped.

    A record that uses an item without attributes is not a problem when ``drop_without_attributes`` was
    asked for: it is dropped and counted under that reason.
    """

    def __init__(self, report, skip_invalid, what, drop_without_attributes=False):
        self.report = report
        self.skip_invalid = skip_invalid
        self.what = what
        self.drop_without_attributes = drop_without_attributes
        self.first = None
        self.reasons = Counter()

    def add(self, invalid):
        self.report.skipped[invalid.reason] += 1
        if self.drop_without_attributes and invalid.reason == WITHOUT_ATTRIBUTES:
            return
        self.reasons[invalid.reason] += 1
        if self.first is None:
            self.first = invalid.message

    def finish(self, total):
        """Raise unless skipping was asked for; called once all records were checked, so counts are full."""
        count = sum(self.reasons.values())
        if count and not self.skip_invalid:
            reasons = ", ".join(f"{r}: {c}" for r, c in sorted(self.reasons.items()))
            raise ConversionError(
                f"{count} of {total} {self.what} are malformed ({reasons}). First: {self.first}. "
                "Fix the input, or pass --skip-invalid to drop them (the report counts them per reason)."
            )


# ---------------------------------------------------------------------------------------------- ids
def _int_token(value, where, kind):
    """Token of a non-negative integer id, given as a JSON int or a digit string (7 and "7" are one id)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _Invalid("bad id", f"{where}: {kind} id {value!r} is not an integer")
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            raise _Invalid("bad id", f"{where}: {kind} id {value!r} is not a non-negative integer")
        value = int(value)
    if value < 0:
        raise _Invalid("id out of range", f"{where}: {kind} id {value} is negative")
    return str(value)


def _as_list(value, where):
    if not isinstance(value, list):
        raise _Invalid("bad value", f"{where} is {type(value).__name__}, expected a list")
    return value


class _Catalogue:
    """Items and their attributes, with what is needed to explain a bad item or attribute id."""

    def __init__(self, item_attributes, without_attributes, source):
        self.item_attributes = item_attributes  # token -> list of attribute tokens (non-empty)
        self.without_attributes = without_attributes  # item tokens listed with no attributes
        self.source = source
        self.attributes = {a for attrs in item_attributes.values() for a in attrs}
        self._attribute_sets = {item: set(attrs) for item, attrs in item_attributes.items()}
        self._item_range = _int_range(list(item_attributes) + list(without_attributes))
        self._attribute_range = _int_range(self.attributes)
        self._items_by_attribute = None

    def item(self, value, where):
        token = _int_token(value, where, "item")
        if token in self.item_attributes:
            return token
        if token in self.without_attributes:
            raise _Invalid(WITHOUT_ATTRIBUTES, f"{where}: item {token} has no attributes in {self.source}")
        return self._unknown(token, where, "item", self._item_range)

    def attribute(self, value, where):
        token = _int_token(value, where, "attribute")
        if token in self.attributes:
            return token
        return self._unknown(token, where, "attribute", self._attribute_range)

    def has(self, item, attribute):
        return attribute in self._attribute_sets[item]

    def items_with(self, attribute):
        """Items carrying ``attribute``, in item order, as a numpy string array (for vectorised filtering)."""
        if self._items_by_attribute is None:
            index = {}
            for item in sorted(self.item_attributes, key=natural_key):
                for attr in self.item_attributes[item]:
                    index.setdefault(attr, []).append(item)
            self._items_by_attribute = {attr: np.array(items) for attr, items in index.items()}
        return self._items_by_attribute[attribute]

    def _unknown(self, token, where, kind, id_range):
        if id_range and not id_range[0] <= int(token) <= id_range[1]:
            raise _Invalid(
                "id out of range",
                f"{where}: {kind} id {token} is outside {id_range[0]}..{id_range[1]} ({self.source})",
            )
        raise _Invalid(f"unknown {kind}", f"{where}: {kind} {token} is not in {self.source}")


def _int_range(tokens):
    numbers = [int(t) for t in tokens if t.isdigit()]
    return (min(numbers), max(numbers)) if numbers else None


def _load_json(path, what):
    """Parse a JSON file, turning I/O and syntax errors into messages that name the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise ConversionError(f"{what} file '{path}' does not exist.") from None
    except OSError as error:
        raise ConversionError(f"cannot read {what} file '{path}': {error.strerror or error}.") from None
    except json.JSONDecodeError as error:
        position = f"line {error.lineno} column {error.colno}"
        raise ConversionError(f"{what} file '{path}' is not valid JSON: {error.msg} at {position}.") from None
    except UnicodeDecodeError as error:
        raise ConversionError(f"{what} file '{path}' is not UTF-8 text: {error}.") from None


def _load_item_dict(path, report, skip_invalid, drop_without_attributes, attributes_of):
    """Read ``item -> attributes`` JSON into a :class:`_Catalogue`.

    ``attributes_of(value, where)`` extracts the attribute id list from one entry (formats differ). Entries
    that are malformed fail the conversion unless ``skip_invalid``; items with no attributes fail it unless
    ``drop_without_attributes`` (then every record that uses them is dropped or trimmed, and counted).
    """
    data = _load_json(path, "item dict")
    if not isinstance(data, dict):
        raise ConversionError(
            f"item dict '{path}' must be a JSON object item -> attributes, got {type(data).__name__}."
        )
    problems = _Problems(report, skip_invalid, f"entries of item dict '{path}'")
    item_attributes, without_attributes = {}, set()
    for key, value in data.items():
        where = f"{os.path.basename(path)}[{key!r}]"
        try:
            item = _int_token(key, where, "item")
            raw = _as_list(attributes_of(value, where), where)
            attrs = list(dict.fromkeys(_int_token(a, where, "attribute") for a in raw))  # dedupe, keep order
        except _Invalid as invalid:
            problems.add(invalid)
            continue
        if attrs:
            item_attributes[item] = attrs
        else:
            without_attributes.add(item)
    problems.finish(len(data))
    _check_without_attributes(without_attributes, path, drop_without_attributes, report)
    if not item_attributes:
        raise ConversionError(f"item dict '{path}' has no item with attributes.")
    return _Catalogue(item_attributes, without_attributes, os.path.basename(path))


def _check_without_attributes(items, source, drop, report):
    if not items:
        return
    examples = ", ".join(sorted(items, key=natural_key)[:_EXAMPLES])
    if not drop:
        raise ConversionError(
            f"{len(items)} items have no attributes in {source} (e.g. {examples}); every CRS item needs at "
            "least one. Give them attributes, or pass --drop-items-without-attributes to drop them and the "
            "records that use them (counted in the report)."
        )
    report.notes.append(f"dropped {len(items)} items without attributes (e.g. {examples})")


# ---------------------------------------------------------------------------------------------- writing
@dataclass
class Row:
    """One ``.inter`` row; ``candidates`` is ``None`` when the dataset has no candidate column.

    ``confirmed_turns``/``rejected_turns`` are parallel to ``confirmed``/``rejected``: the 1-based dialogue
    turn of each entry (see ``docs/data-format.md``).
    """

    user: str
    item: str
    timestamp: float
    confirmed: list
    rejected: list = field(default_factory=list)
    split: str = None
    candidates: list = None
    confirmed_turns: list = field(default_factory=list)
    rejected_turns: list = field(default_factory=list)
    simulated: bool = False  # the conversation came from the simulator (not written)


def format_float(value):
    """One spelling per number: integral values without a decimal point, others as Python's shortest repr."""
    value = float(value)
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _check_tokens(tokens, what):
    """Atomic files separate fields by tabs and sequence items by spaces, so tokens must contain neither."""
    bad = sorted((t for t in tokens if not t or any(c.isspace() for c in t)), key=natural_key)
    if bad:
        examples = ", ".join(map(repr, bad[:_EXAMPLES]))
        raise ConversionError(
            f"{len(bad)} {what} tokens are empty or contain whitespace (e.g. {examples}); atomic files "
            "cannot hold them. Rename them in the input."
        )


def inter_header(with_split, with_candidates):
    """Columns of the ``.inter`` file this version writes (``ml100k`` compares it to detect old files)."""
    header = [USER_COLUMN, ITEM_COLUMN, TIME_COLUMN, CONFIRMED_COLUMN, REJECTED_COLUMN]
    header += [CONFIRMED_TURNS_COLUMN, REJECTED_TURNS_COLUMN]
    header += [SPLIT_COLUMN] if with_split else []
    header += [CANDIDATE_COLUMN] if with_candidates else []
    return header


def write_crs_dataset(out_dir, name, item_attributes, rows, with_split, with_candidates):
    """Write ``<out_dir>/<name>.item``, ``.inter`` and ``.manifest.json`` as a whole (:func:`_publish_dataset`);
    return (inter path, item path).

    ``item_attributes``: item -> attribute tokens (written sorted, deduplicated). ``rows``: :class:`Row` in
    the order to write; callers sort them, and RecBole's stable sort by user and time keeps ties in file
    order.
    """
    _check_tokens(item_attributes, "item")
    _check_tokens({a for attrs in item_attributes.values() for a in attrs}, "attribute")
    _check_tokens({row.user for row in rows}, "user")
    _check_turns(rows)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise ConversionError(
            f"cannot create output folder '{out_dir}': {error.strerror or error}. Pass a writable --out."
        ) from None
    item_path = os.path.join(out_dir, f"{name}.item")
    inter_path = os.path.join(out_dir, f"{name}.inter")

    item_lines = [f"{ITEM_COLUMN}\t{ATTRIBUTES_COLUMN}"]
    for item in sorted(item_attributes, key=natural_key):
        attrs = sorted(set(item_attributes[item]), key=natural_key)
        item_lines.append(f"{item}\t{' '.join(attrs)}")

    inter_lines = ["\t".join(inter_header(with_split, with_candidates))]
    for row in rows:
        fields = [
            row.user,
            row.item,
            format_float(row.timestamp),
            " ".join(row.confirmed),
            " ".join(row.rejected),
            " ".join(map(format_float, row.confirmed_turns)),
            " ".join(map(format_float, row.rejected_turns)),
        ]
        fields += [row.split] if with_split else []
        fields += [" ".join(row.candidates or [])] if with_candidates else []
        inter_lines.append("\t".join(fields))

    _publish_dataset(out_dir, name, {
        item_path: ("\n".join(item_lines) + "\n").encode("utf-8"),
        inter_path: ("\n".join(inter_lines) + "\n").encode("utf-8"),
    })
    return inter_path, item_path


def _publish_dataset(out_dir, name, contents):
    """Make ``contents`` ({path: bytes}) visible as a whole, with ``<name>.manifest.json`` describing them.

    1. every file is written to a temporary name and fsynced (a failure leaves the previous dataset as it was);
    2. the manifest (size and sha256 of each new file) replaces the old one, atomically;
    3. the temporary files are renamed onto the final names.
    A kill between 2 and the last rename leaves files that differ from the manifest: CRSDataset refuses them
    ("re-run the conversion") instead of training on a new .item with an old .inter. Before 2, the previous
    dataset and its manifest are untouched.
    """
    from recbole_crs.artifacts import atomic_write_bytes, manifest_path, temporary_path

    temporaries = {}
    try:
        for path, data in contents.items():
            temporary = temporary_path(path)
            temporaries[path] = temporary
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        manifest = {
            "format": 1,
            "files": {
                os.path.basename(path): {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                for path, data in contents.items()
            },
        }
        target = manifest_path(out_dir, name)
        atomic_write_bytes(target, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode("utf-8"))
        for path, temporary in temporaries.items():
            target = path
            os.replace(temporary, path)
    except OSError as error:
        raise ConversionError(
            f"cannot write '{error.filename or target}': {error.strerror or error}. Check that --out is a "
            "writable folder with free space, then re-run the conversion."
        ) from None
    finally:
        for temporary in temporaries.values():
            if os.path.exists(temporary):
                os.remove(temporary)


def _check_turns(rows):
    """Turn lists must be parallel to the lists they annotate; a mismatch is a converter bug, never data."""
    for row in rows:
        if len(row.confirmed_turns) != len(row.confirmed) or len(row.rejected_turns) != len(row.rejected):
            raise ValueError(
                f"row of user {row.user!r}, item {row.item!r}: {len(row.confirmed_turns)} confirmed turns for "
                f"{len(row.confirmed)} confirmed attributes, {len(row.rejected_turns)} rejected turns for "
                f"{len(row.rejected)} rejected items; the turn lists must be parallel."
            )


# ---------------------------------------------------------------------------------------------- shared steps
def _seeds(seed):
    """Independent seeds for simulation, holdout, candidates and the ``--conversations targets`` choice of
    users: one use never shifts another's draws. ``spawn`` numbers its children, so the first three are the
    ones this function returned before the fourth was added (outputs of older versions stay identical)."""
    simulation, holdout, candidates, regime = np.random.SeedSequence(seed).spawn(4)
    return simulation, np.random.default_rng(holdout), np.random.default_rng(candidates), np.random.default_rng(regime)


def _simulate_rows(rows, catalogue_items, popularity, simulation_seed, max_turns, rec_list_size):
    """Fill ``confirmed``/``rejected`` (and their turns) of ``rows`` whose ``confirmed`` is None, in row order."""
    simulator = ConversationSimulator(
        catalogue_items,
        item_popularity=popularity,
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


def _add_candidates(rows, catalogue, n_candidates, rng):
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


def _check_candidates(candidates):
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 0:
        raise ConversionError(f"--candidates must be an integer >= 0, got {candidates!r}.")


def _popularity(rows, splits=("train",)):
    """Interaction counts over rows of the given splits, or all rows if ``splits`` is None.

    The simulator recommends popular candidates first; counting training rows only keeps held-out targets
    from shaping the simulated conversations.
    """
    return Counter(row.item for row in rows if splits is None or row.split in splits)


_TRAIN_CONVERSATIONS_FIX = (
    "give a fraction in (0, 1] of the training users (e.g. 0.05; written with a decimal point) or a whole "
    "number >= 1 of users (e.g. 50)"
)


def parse_train_conversations(value):
    """``--train-conversations``: a fraction in (0, 1] of the training users, or a count >= 1 of users.

    A Python ``int`` or text that is a whole number (``"50"``) is a count; a ``float`` or other numeric text
    (``"0.05"``, ``"1.0"``) is a fraction. ``None`` means 1.0 (every training user). Returns an ``int`` count
    or a ``float`` fraction; anything else raises :class:`ConversionError` naming the option and the fix.
    """
    if value is None:
        return 1.0
    parsed = value
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = int(text)
        except ValueError:
            try:
                parsed = float(text)
            except ValueError:
                parsed = None
    if isinstance(parsed, bool) or not isinstance(parsed, (int, float)):
        parsed = None
    elif isinstance(parsed, int) and parsed < 1:
        parsed = None
    elif isinstance(parsed, float) and not 0.0 < parsed <= 1.0:
        parsed = None
    if parsed is None:
        raise ConversionError(f"--train-conversations {value!r} is out of range: {_TRAIN_CONVERSATIONS_FIX}.")
    return parsed


def check_conversation_regime(conversations, train_conversations):
    """Validate ``--conversations``/``--train-conversations``; return the parsed count or fraction."""
    if conversations not in CONVERSATION_REGIMES:
        raise ConversionError(
            f"--conversations {conversations!r} is not a regime: use 'all' (every row keeps its conversation) "
            "or 'targets' (evaluated rows and one training row per chosen user)."
        )
    if train_conversations is not None and conversations != "targets":
        raise ConversionError(
            "--train-conversations only applies with --conversations targets: add --conversations targets, "
            "or drop --train-conversations (with --conversations all every row keeps its conversation)."
        )
    return parse_train_conversations(train_conversations)


def _keep_target_conversations(rows, train_conversations, rng, report, keep_simulated=True):
    """``--conversations targets``: blank every conversation except the evaluated rows' and chosen users'.

    Called after every conversation of the ``all`` output was filled in, so the kept ones are exactly that
    output's. Eligible users: those with a training row whose last training row may keep its conversation
    (``keep_simulated=False``: only a real one, so a history row never gets one). The chosen users are the
    first ``k`` of one seeded permutation of the eligible users (``k`` = the count, or ``round(fraction * n)``),
    so with the same input and seed a smaller ``k`` chooses a subset of a larger one's users.
    """
    last_train = {}  # user -> index of the user's last training row (rows are sorted by user, then time)
    for index, row in enumerate(rows):
        if row.split == "train":
            last_train[row.user] = index
    eligible = [user for user, index in last_train.items() if keep_simulated or not rows[index].simulated]
    n = len(eligible)
    if isinstance(train_conversations, int):
        if train_conversations > n:
            raise ConversionError(
                f"--train-conversations {train_conversations} asks for more users than the {n} training users "
                "whose last training row can keep a conversation: give at most that many, or a fraction."
            )
        k = train_conversations
    else:
        k = int(np.floor(train_conversations * n + 0.5))
    order = rng.permutation(n)
    kept = {last_train[eligible[int(i)]] for i in order[:k]}
    for index, row in enumerate(rows):
        if row.split not in EVALUATED_SPLITS and index not in kept:
            row.confirmed, row.rejected, row.confirmed_turns, row.rejected_turns = [], [], [], []
    report.conversations = "targets"
    report.eligible_users, report.chosen_users = n, k
    if k == 0:
        report.notes.append(
            f"--train-conversations {train_conversations} of {n} eligible training users rounds to 0: no "
            "training row carries a conversation"
        )


def _leave_one_out_splits(rows):
    """Set ``row.split`` as the plugin's default ``eval_args`` (leave-one-out by time) evaluates ``rows``.

    ``rows`` are sorted by user, then time. A user's first row has no history and is never a sequential
    target, so RecBole's leave-one-out applies to rows 2..n: the last is ``test`` if there are at least 2
    such targets (n >= 3), the second-to-last ``valid`` if there are at least 3 (n >= 4), the rest ``train``.
    For every user with n >= 4 rows (all of ml-100k) that is: last test, second-to-last valid, rest train.
    """
    start = 0
    while start < len(rows):
        end = start
        while end < len(rows) and rows[end].user == rows[start].user:
            end += 1
        n = end - start
        for row in rows[start:end]:
            row.split = "train"
        if n >= 3:
            rows[end - 1].split = "test"
        if n >= 4:
            rows[end - 2].split = "valid"
        start = end


def _finish(report, out_dir, name, catalogue_items, rows, with_split, with_candidates, started):
    report.out_dir, report.name = out_dir, name
    report.files = list(write_crs_dataset(out_dir, name, catalogue_items, rows, with_split, with_candidates))
    report.rows = Counter(row.split or "all" for row in rows)
    report.conversation_rows = Counter(row.split or "all" for row in rows if row.confirmed)
    report.users = Counter(split for split, _ in {(row.split or "all", row.user) for row in rows})
    report.items = len(catalogue_items)
    report.attributes = len({a for attrs in catalogue_items.values() for a in attrs})
    report.seconds = time.perf_counter() - started
    return report


def _dataset_name(out_dir, name):
    name = name or os.path.basename(os.path.normpath(out_dir))
    if not name or name in (".", ".."):
        raise ConversionError(f"Cannot take a dataset name from --out '{out_dir}'; pass --name.")
    return name


# ---------------------------------------------------------------------------------------------- precrs-lastfm
def _precrs_attributes(value, where):
    return value


def _parse_precrs_record(record, catalogue, where, drop_without_attributes, counters):
    """Validate one authors' record; return (user, context items, target, confirmed, rejected, turns).

    ``turns`` = (confirmed turns, rejected turns), parallel to ``confirmed`` and ``rejected``: dialogue turn
    ``i`` (1-based) confirms its attribute or rejects its items at turn ``i``; ``initial`` is turn 1.
    """
    if not isinstance(record, dict):
        raise _Invalid("bad record", f"{where} is {type(record).__name__}, expected an object")
    missing = [key for key in PRECRS_REQUIRED_KEYS if key not in record]
    if missing:
        raise _Invalid("missing key", f"{where} has no key {', '.join(map(repr, missing))}")
    user = _int_token(record["user"], f"{where} user", "user")
    target = catalogue.item(record["pos_item"], f"{where} pos_item")
    context = []
    for value in _as_list(record["context"], f"{where} context"):
        try:
            context.append(catalogue.item(value, f"{where} context"))
        except _Invalid as invalid:
            if not (drop_without_attributes and invalid.reason == WITHOUT_ATTRIBUTES):
                raise
            counters["context items without attributes removed"] += 1
    confirmed = [_target_attribute(catalogue, target, record["initial"], f"{where} initial")]
    rejected = []
    confirmed_turns, rejected_turns = [1], []
    for number, turn in enumerate(_as_list(record["dialog"], f"{where} dialog")):
        turn_where = f"{where} dialog turn {number}"
        if not isinstance(turn, list) or not turn:
            raise _Invalid(
                "bad dialog turn", f"{turn_where} is {turn!r}, expected [attribute, n] or a list of items"
            )
        if len(turn) == PRECRS_ATTRIBUTE_TURN_LENGTH:
            attribute = _target_attribute(catalogue, target, turn[0], turn_where)
            if isinstance(turn[1], bool) or not isinstance(turn[1], int):
                raise _Invalid(
                    "bad dialog turn", f"{turn_where}: candidate count {turn[1]!r} is not an integer"
                )
            if attribute in confirmed:
                # The authors' first turn repeats `initial`; any repeat adds no information.
                counters[
                    "repeated confirmed attributes removed" if number else "first turns repeating initial"
                ] += 1
                continue
            confirmed.append(attribute)
            confirmed_turns.append(number + 1)
        else:
            items = [catalogue.item(value, turn_where) for value in turn]
            if target in items:
                raise _Invalid("target in rejected list", f"{turn_where} rejects the target item {target}")
            rejected.extend(items)
            rejected_turns.extend([number + 1] * len(items))
    return user, context, target, confirmed, rejected, (confirmed_turns, rejected_turns)


def _target_attribute(catalogue, target, value, where):
    attribute = catalogue.attribute(value, where)
    if not catalogue.has(target, attribute):
        raise _Invalid(
            "attribute not of target",
            f"{where}: attribute {attribute} is not an attribute of target item {target}",
        )
    return attribute


def parse_holdout(text):
    """``"valid=0.2,test=0.2"`` -> ``{"valid": 0.2, "test": 0.2}`` (fractions of records, sum <= 1)."""
    fractions = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        split, sep, value = part.partition("=")
        split = split.strip()
        if not sep or split not in EVALUATED_SPLITS or split in fractions:
            raise ConversionError(
                f"--holdout {text!r}: expected 'valid=F,test=F' (each at most once), got {part!r}."
            )
        try:
            fractions[split] = float(value)
        except ValueError:
            raise ConversionError(f"--holdout {text!r}: {value!r} is not a number.") from None
        if not 0.0 <= fractions[split] <= 1.0:
            raise ConversionError(f"--holdout {text!r}: fraction {fractions[split]} is outside [0, 1].")
    if sum(fractions.values()) > 1.0:
        raise ConversionError(f"--holdout {text!r}: fractions add up to more than 1.")
    return fractions


def _holdout_splits(n, fractions, rng):
    """Per-record split: a seeded permutation's first round(f_valid*n) records are valid, the next test."""
    counts = {split: int(np.floor(fractions.get(split, 0.0) * n + 0.5)) for split in EVALUATED_SPLITS}
    splits = ["train"] * n
    order = rng.permutation(n)
    start = 0
    for split in EVALUATED_SPLITS:
        for index in order[start : start + counts[split]]:
            splits[int(index)] = split
        start += counts[split]
    return splits


def _unique_users(records, report):
    """A user with several records gets one sequence per record (``<user>-<k>``): contexts may overlap."""
    per_user = Counter(record["user"] for record in records)
    seen = Counter()
    for record in records:
        user = record["user"]
        if per_user[user] > 1:
            record["user"] = f"{user}-{seen[user]}"
            seen[user] += 1
    repeated = sum(1 for count in per_user.values() if count > 1)
    if repeated:
        report.notes.append(
            f"{repeated} users have several records; each record became its own sequence '<user>-<k>' "
            "(k = record order within that user)"
        )


def convert_precrs_lastfm(
    item_dict,
    out_dir,
    train=(),
    valid=(),
    test=(),
    records=(),
    holdout=None,
    candidates=0,
    name=None,
    seed=DEFAULT_SEED,
    max_turns=DEFAULT_MAX_TURNS,
    rec_list_size=DEFAULT_REC_LIST_SIZE,
    skip_invalid=False,
    drop_items_without_attributes=False,
    conversations="all",
    train_conversations=None,
):
    """Convert the authors' Last.fm records (see ``docs/converters.md``); returns a :class:`ConversionReport`.

    Args:
        item_dict: path of ``item_dict_lastfm1.0.json`` (item id -> tag ids).
        train, valid, test: record files whose target rows get that split.
        records: record files whose targets are split by ``holdout`` (a dict like ``{"valid": 0.2, "test":
            0.2}`` or its string form); the rest are ``train``.
        candidates: if > 0, add ``candidate_items`` with up to this many items sharing the initial attribute
            (target removed) to every valid/test row (the authors' protocol uses 100).
        conversations: ``"all"`` (context rows carry simulated conversations) or ``"targets"`` (only real
            dialogues: every evaluated target, and the training targets of ``train_conversations`` of the
            users whose target row is a training row; context rows carry none).
        train_conversations: with ``"targets"``: a fraction in (0, 1] or a count of those users (default 1.0).
    """
    started = time.perf_counter()
    report = ConversionReport("precrs-lastfm")
    name = _dataset_name(out_dir, name)
    _check_candidates(candidates)
    train_conversations = check_conversation_regime(conversations, train_conversations)
    if isinstance(holdout, str):
        holdout = parse_holdout(holdout)
    if records and holdout is None:
        raise ConversionError("--records needs --holdout (e.g. valid=0.2,test=0.2) to decide their splits.")
    if holdout is not None and not records:
        raise ConversionError("--holdout splits the files given with --records; give at least one.")
    sources = [(p, s) for s, paths in (("train", train), ("valid", valid), ("test", test)) for p in paths]
    sources += [(p, None) for p in records]
    if not sources:
        raise ConversionError("No record files: give --train/--valid/--test and/or --records.")
    simulation_seed, holdout_rng, candidate_rng, regime_rng = _seeds(seed)

    catalogue = _load_item_dict(
        item_dict, report, skip_invalid, drop_items_without_attributes, _precrs_attributes
    )
    kept, holdout_records = _read_precrs_records(
        sources, catalogue, report, skip_invalid, drop_items_without_attributes
    )
    for record, split in zip(
        holdout_records, _holdout_splits(len(holdout_records), holdout or {}, holdout_rng)
    ):
        record["split"] = split
    _unique_users(kept, report)

    rows = _precrs_rows(kept)
    report.real_conversations = summarize_conversations(
        [_RealConversation(r["confirmed"], r["rejected"]) for r in kept]
    )
    report.simulated_conversations = _simulate_rows(
        rows, catalogue.item_attributes, _popularity(rows), simulation_seed, max_turns, rec_list_size
    )
    if conversations == "all":
        report.notes.append(
            "context rows (split train) carry simulated conversations; target rows carry the real dialogues"
        )
    if candidates:
        sizes = _add_candidates(rows, catalogue, candidates, candidate_rng)
        if sizes:
            report.notes.append(
                f"candidate_items on {len(sizes)} evaluated rows: mean {np.mean(sizes):.1f}, min "
                f"{min(sizes)}, max {max(sizes)} (fewer than {candidates} where the initial attribute has "
                "fewer items)"
            )
    if conversations == "targets":
        # Eligible: users whose target row is a training row (a real dialogue); context rows never keep one.
        _keep_target_conversations(rows, train_conversations, regime_rng, report, keep_simulated=False)
        report.notes.append(
            "--conversations targets: only real dialogues are written (context rows are plain interactions); "
            "the simulated statistics cover the conversations simulated before blanking"
        )
    return _finish(report, out_dir, name, catalogue.item_attributes, rows, True, bool(candidates), started)


@dataclass
class _RealConversation:
    """The parts of a real dialogue that :func:`summarize_conversations` measures."""

    confirmed: list
    rejected_items: list


def _read_precrs_records(sources, catalogue, report, skip_invalid, drop_without_attributes):
    """Load and validate every record file; return (kept records, the kept ones awaiting --holdout)."""
    problems = _Problems(report, skip_invalid, "records", drop_without_attributes)
    counters = Counter()
    kept, holdout_records = [], []
    for path, split in sources:
        data = _load_json(path, "record")
        if not isinstance(data, list):
            raise ConversionError(
                f"record file '{path}' must hold a JSON list of records, got {type(data).__name__}."
            )
        for index, record in enumerate(data):
            report.records_read += 1
            where = f"{os.path.basename(path)} record {index}"
            try:
                user, context, target, confirmed, rejected, turns = _parse_precrs_record(
                    record, catalogue, where, drop_without_attributes, counters
                )
            except _Invalid as invalid:
                problems.add(invalid)
                continue
            parsed = dict(
                user=user,
                context=context,
                target=target,
                confirmed=confirmed,
                rejected=rejected,
                confirmed_turns=turns[0],
                rejected_turns=turns[1],
                split=split,
            )
            kept.append(parsed)
            if split is None:
                holdout_records.append(parsed)
    problems.finish(report.records_read)
    report.records_kept = len(kept)
    report.notes += [f"{reason}: {count}" for reason, count in sorted(counters.items())]
    return kept, holdout_records


def _precrs_rows(records):
    """Context items at timestamps 0..len-1 (``train``, conversation to simulate), then the target row."""
    rows = []
    for record in sorted(records, key=lambda r: natural_key(r["user"])):
        user = record["user"]
        rows += [Row(user, item, t, None, [], "train") for t, item in enumerate(record["context"])]
        rows.append(
            Row(
                user,
                record["target"],
                len(record["context"]),
                record["confirmed"],
                record["rejected"],
                record["split"],
                confirmed_turns=record["confirmed_turns"],
                rejected_turns=record["rejected_turns"],
            )
        )
    return rows


# ------------------------------------------------------------------------------------------ scpr-lastfm-star
def _scpr_attributes(value, where):
    if not isinstance(value, dict):
        raise _Invalid(
            "bad value", f"{where} is {type(value).__name__}, expected an object with {SCPR_FEATURE_KEY!r}"
        )
    if SCPR_FEATURE_KEY not in value:
        raise _Invalid("missing key", f"{where} has no key {SCPR_FEATURE_KEY!r}")
    return value[SCPR_FEATURE_KEY]


def convert_scpr_lastfm_star(
    data_dir,
    out_dir,
    candidates=0,
    name=None,
    seed=DEFAULT_SEED,
    max_turns=DEFAULT_MAX_TURNS,
    rec_list_size=DEFAULT_REC_LIST_SIZE,
    skip_invalid=False,
    drop_items_without_attributes=False,
    conversations="all",
    train_conversations=None,
):
    """Convert SCPR's LastFM* (``item_dict.json``, ``review_dict_{train,valid,test}.json``).

    Each user's items become rows in the order train, valid, test (each file's own order), with timestamps
    0..n-1 and that file's split; every conversation is simulated (see ``docs/converters.md``).
    ``conversations="targets"`` keeps them on valid/test rows and on the last training row of
    ``train_conversations`` (fraction or count, default 1.0) of the users with training rows only.
    """
    started = time.perf_counter()
    report = ConversionReport("scpr-lastfm-star")
    name = _dataset_name(out_dir, name)
    _check_candidates(candidates)
    train_conversations = check_conversation_regime(conversations, train_conversations)
    simulation_seed, _, candidate_rng, regime_rng = _seeds(seed)
    paths = {key: os.path.join(data_dir, file) for key, file in SCPR_FILES.items()}
    catalogue = _load_item_dict(
        paths["item_dict"], report, skip_invalid, drop_items_without_attributes, _scpr_attributes
    )

    problems = _Problems(report, skip_invalid, "interactions", drop_items_without_attributes)
    sequences = {}  # user -> [(item, split)]
    for split in SPLITS:
        reviews = _load_json(paths[split], f"{split} review dict")
        if not isinstance(reviews, dict):
            raise ConversionError(
                f"'{paths[split]}' must be a JSON object user -> items, got {type(reviews).__name__}."
            )
        for key, items in reviews.items():
            _read_scpr_user(key, items, split, catalogue, sequences, problems, SCPR_FILES[split])
    problems.finish(report.records_read)
    report.records_kept = sum(len(seq) for seq in sequences.values())

    rows = [
        Row(user, item, t, None, [], split)
        for user in sorted(sequences, key=natural_key)
        for t, (item, split) in enumerate(sequences[user])
    ]
    report.simulated_conversations = _simulate_rows(
        rows, catalogue.item_attributes, _popularity(rows), simulation_seed, max_turns, rec_list_size
    )
    report.notes.append(
        "all conversations are simulated; the review lists carry no time, so timestamps are list order"
    )
    if candidates:
        sizes = _add_candidates(rows, catalogue, candidates, candidate_rng)
        report.notes.append(
            f"candidate_items on {len(sizes)} evaluated rows, mean size {np.mean(sizes or [0]):.1f}"
        )
    if conversations == "targets":
        _keep_target_conversations(rows, train_conversations, regime_rng, report)
        report.notes.append(
            "--conversations targets: the simulated statistics cover every row simulated before blanking"
        )
    return _finish(report, out_dir, name, catalogue.item_attributes, rows, True, bool(candidates), started)


def _read_scpr_user(key, items, split, catalogue, sequences, problems, file_name):
    """Append one user's items of one review file to ``sequences``; each list entry is one record."""
    where = f"{file_name}[{key!r}]"
    try:
        user = _int_token(key, where, "user")
        items = _as_list(items, where)
    except _Invalid as invalid:
        problems.report.records_read += 1  # a malformed list counts as one record
        problems.add(invalid)
        return
    for value in items:
        problems.report.records_read += 1
        try:
            sequences.setdefault(user, []).append((catalogue.item(value, where), split))
        except _Invalid as invalid:
            problems.add(invalid)


# ---------------------------------------------------------------------------------------------- recbole
def _read_atomic(path, what):
    """Read a RecBole atomic file: ({field: column index}, {field: type}, rows as lists of strings)."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
    except FileNotFoundError:
        raise ConversionError(
            f"{what} file '{path}' does not exist (expected RecBole atomic files)."
        ) from None
    except OSError as error:
        raise ConversionError(f"cannot read {what} file '{path}': {error.strerror or error}.") from None
    except UnicodeDecodeError as error:
        raise ConversionError(f"{what} file '{path}' is not UTF-8 text: {error}.") from None
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise ConversionError(f"{what} file '{path}' is empty; it needs a 'name:type' header.")
    names, types = {}, {}
    for index, column in enumerate(lines[0].rstrip("\r").split("\t")):
        field_name, sep, field_type = column.partition(":")
        if not sep:
            raise ConversionError(f"{what} file '{path}': header column {column!r} is not 'name:type'.")
        names[field_name], types[field_name] = index, field_type
    return names, types, [line.rstrip("\r").split("\t") for line in lines[1:]]


def _require_field(names, types, field_name, allowed, path, option):
    if field_name not in names:
        raise ConversionError(
            f"'{path}' has no field {field_name!r} (fields: {', '.join(names)}); pick one with {option}."
        )
    if types[field_name] not in allowed:
        raise ConversionError(
            f"'{path}': field {field_name!r} is {types[field_name]}, expected {' or '.join(allowed)}."
        )
    return names[field_name]


def convert_recbole(
    data_path,
    dataset,
    attribute_field,
    out_dir,
    user_field="user_id",
    item_field="item_id",
    time_field="timestamp",
    seq_separator=" ",
    name=None,
    seed=DEFAULT_SEED,
    max_turns=DEFAULT_MAX_TURNS,
    rec_list_size=DEFAULT_REC_LIST_SIZE,
    skip_invalid=False,
    drop_items_without_attributes=False,
    conversations="all",
    train_conversations=None,
):
    """Turn a RecBole atomic dataset (``<data_path>/<dataset>/<dataset>.{inter,item}``) into a CRS dataset.

    Attributes come from the ``token_seq`` item field ``attribute_field``; every interaction gets a simulated
    conversation; rows are sorted by user, then time, ties in source order (what RecBole's stable sort keeps).
    No split column and no filtering (k-core, rating threshold): RecBole's own config does that on load.
    ``conversations="targets"`` adds a ``split`` column (:func:`_leave_one_out_splits`: the rows the default
    ``eval_args`` evaluate) and keeps conversations on valid/test rows and on the last training row of
    ``train_conversations`` (fraction or count, default 1.0) of the training users only.
    """
    started = time.perf_counter()
    report = ConversionReport("recbole")
    name = _dataset_name(out_dir, name)
    train_conversations = check_conversation_regime(conversations, train_conversations)
    simulation_seed, _, _, regime_rng = _seeds(seed)
    folder = os.path.join(data_path, dataset)
    item_attributes, without = _read_recbole_items(
        os.path.join(folder, f"{dataset}.item"),
        item_field,
        attribute_field,
        seq_separator,
        report,
        skip_invalid,
    )
    _check_without_attributes(
        without, f"field {attribute_field!r} of {dataset}.item", drop_items_without_attributes, report
    )
    rows = _read_recbole_inter(
        os.path.join(folder, f"{dataset}.inter"),
        (user_field, item_field, time_field),
        item_attributes,
        without,
        report,
        skip_invalid,
    )
    order = sorted(range(len(rows)), key=lambda i: (natural_key(rows[i].user), rows[i].timestamp, i))
    rows = [rows[i] for i in order]
    report.simulated_conversations = _simulate_rows(
        rows, item_attributes, _popularity(rows, None), simulation_seed, max_turns, rec_list_size
    )
    with_split = conversations == "targets"
    if with_split:
        _leave_one_out_splits(rows)
        _keep_target_conversations(rows, train_conversations, regime_rng, report)
        report.notes.append(
            "--conversations targets: split column = leave-one-out by time as the default eval_args evaluate "
            "(a user's first row is never a target); the simulated statistics cover every row before blanking"
        )
    return _finish(report, out_dir, name, item_attributes, rows, with_split, False, started)


def _read_recbole_items(path, item_field, attribute_field, seq_separator, report, skip_invalid):
    names, types, lines = _read_atomic(path, "item")
    item_col = _require_field(names, types, item_field, ("token",), path, "--item-field")
    attr_col = _require_field(names, types, attribute_field, ("token_seq",), path, "--attribute-field")
    problems = _Problems(report, skip_invalid, f"rows of '{path}'")
    item_attributes, without = {}, set()
    for number, fields in enumerate(lines, start=2):
        try:
            if len(fields) != len(names):
                raise _Invalid(
                    "bad row", f"{path} line {number} has {len(fields)} fields, header has {len(names)}"
                )
            item = fields[item_col]
            if item in item_attributes or item in without:
                raise _Invalid("duplicate item", f"{path} line {number}: item {item!r} is listed twice")
        except _Invalid as invalid:
            problems.add(invalid)
            continue
        attrs = list(dict.fromkeys(a for a in fields[attr_col].split(seq_separator) if a))
        if attrs:
            item_attributes[item] = attrs
        else:
            without.add(item)
    problems.finish(len(lines))
    return item_attributes, without


def _read_recbole_inter(path, fields, item_attributes, without, report, skip_invalid):
    """Parse interactions; those of dropped attribute-less items are counted, other bad ones are problems."""
    names, types, lines = _read_atomic(path, "interaction")
    user_col = _require_field(names, types, fields[0], ("token",), path, "--user-field")
    item_col = _require_field(names, types, fields[1], ("token",), path, "--item-field")
    time_col = _require_field(names, types, fields[2], ("float",), path, "--time-field")
    problems = _Problems(report, skip_invalid, f"interactions of '{path}'")
    rows, dropped = [], 0
    for number, values in enumerate(lines, start=2):
        report.records_read += 1
        try:
            if len(values) != len(names):
                raise _Invalid(
                    "bad row", f"{path} line {number} has {len(values)} fields, header has {len(names)}"
                )
            item = values[item_col]
            if item in without:
                dropped += 1  # only reachable with --drop-items-without-attributes
                continue
            if item not in item_attributes:
                raise _Invalid(
                    "unknown item", f"{path} line {number}: item {item!r} is not in the .item file"
                )
            rows.append(Row(values[user_col], item, _parse_time(values[time_col], path, number), None))
        except _Invalid as invalid:
            problems.add(invalid)
    problems.finish(report.records_read)
    if dropped:
        report.skipped[WITHOUT_ATTRIBUTES] += dropped
        report.notes.append(f"dropped {dropped} interactions with items without attributes")
    report.records_kept = len(rows)
    return rows


def _parse_time(text, path, number):
    try:
        value = float(text)
    except ValueError:
        raise _Invalid("bad timestamp", f"{path} line {number}: timestamp {text!r} is not a number") from None
    if not np.isfinite(value):
        raise _Invalid("bad timestamp", f"{path} line {number}: timestamp {text!r} is not finite")
    return value


# ---------------------------------------------------------------------------------------------- CLI
_EXAMPLES_HELP = """examples:
  python -m recbole_crs.data.convert precrs-lastfm --item-dict item_dict_lastfm1.0.json \\
      --records val_lastfm.json --holdout valid=0.2,test=0.2 --candidates 100 --out dataset/lastfm-precrs
  python -m recbole_crs.data.convert scpr-lastfm-star --data-dir scpr-lastfm-star --out dataset/lastfm-star
  python -m recbole_crs.data.convert recbole --data-path DIR --dataset ml-100k --attribute-field class \\
      --out dataset/ml-100k-crs
  python -m recbole_crs.data.convert FORMAT --help    (options of one format)"""

def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m recbole_crs.data.convert",
        description="Convert conversational-recommendation data into recbole-crs atomic files "
        "(<out>/<name>.inter and <out>/<name>.item, format: docs/data-format.md). Output is byte-identical "
        "for the same input and --seed. Malformed input fails with the first problem and a count unless "
        "--skip-invalid is given (then it is skipped and counted per reason). See docs/converters.md.",
        epilog=_EXAMPLES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    formats = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")

    precrs = formats.add_parser(
        "precrs-lastfm",
        help="the paper authors' Last.fm records (item_dict_lastfm1.0.json + *_lastfm.json)",
        description="Each record's context becomes the user's train rows (simulated conversations), its "
        "pos_item the final row with the real dialogue (confirmed = initial + [attr, n] turns, rejected = "
        "list turns, each with its dialogue turn in confirmed_turns/rejected_turns).",
    )
    precrs.add_argument(
        "--item-dict", required=True, help="item id -> tag ids JSON (item_dict_lastfm1.0.json)"
    )
    for split in SPLITS:
        precrs.add_argument(
            f"--{split}",
            action="append",
            default=[],
            metavar="FILE",
            help=f"record file whose target rows are '{split}' (repeatable)",
        )
    precrs.add_argument(
        "--records",
        action="append",
        default=[],
        metavar="FILE",
        help="record file whose targets are split by --holdout (repeatable)",
    )
    precrs.add_argument(
        "--holdout",
        metavar="valid=F,test=F",
        help="fractions of --records targets that become valid/test (seeded permutation); the rest are train",
    )
    _add_candidate_option(precrs)
    _add_common_options(precrs)

    scpr = formats.add_parser(
        "scpr-lastfm-star",
        help="SCPR's LastFM* (item_dict.json + review_dict_{train,valid,test}.json)",
        description="Each user's train, valid, then test items become rows with that split; all "
        "conversations are simulated from the items' feature_index.",
    )
    scpr.add_argument("--data-dir", required=True, help="folder holding " + ", ".join(SCPR_FILES.values()))
    _add_candidate_option(scpr)
    _add_common_options(scpr)

    recbole = formats.add_parser(
        "recbole",
        help="any RecBole atomic dataset with a token_seq item attribute field and a timestamp",
        description="Every interaction gets a simulated conversation over the item attribute field. No "
        "split column: RecBole's eval_args split it. No filtering: configure k-core etc. in RecBole.",
    )
    recbole.add_argument("--data-path", required=True, help="folder holding <dataset>/<dataset>.{inter,item}")
    recbole.add_argument("--dataset", required=True, help="RecBole dataset name, e.g. ml-100k")
    recbole.add_argument(
        "--attribute-field", required=True, help="token_seq field of .item, e.g. class for ml-100k"
    )
    recbole.add_argument(
        "--user-field", default="user_id", help="token field of users in .inter (default: %(default)s)"
    )
    recbole.add_argument(
        "--item-field", default="item_id", help="token field of items (default: %(default)s)"
    )
    recbole.add_argument(
        "--time-field", default="timestamp", help="float field ordering interactions (default: %(default)s)"
    )
    recbole.add_argument(
        "--seq-separator", default=" ", help="separator inside token_seq values (default: space)"
    )
    _add_common_options(recbole)
    return parser


def _add_candidate_option(parser):
    parser.add_argument(
        "--candidates",
        type=int,
        default=0,
        metavar="N",
        help="add column candidate_items to valid/test rows: up to N items sharing the row's initial "
        f"attribute, target removed, seeded (authors' protocol: {AUTHORS_CANDIDATES}; default 0 = no column)",
    )


def _add_common_options(parser):
    parser.add_argument("--out", required=True, help="output folder, e.g. dataset/<name>")
    parser.add_argument("--name", help="dataset name (default: last part of --out)")
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="seed of every random choice (default: %(default)s)"
    )
    parser.add_argument(
        "--max-turns",
        type=int,
        default=DEFAULT_MAX_TURNS,
        help="turns per simulated conversation, initial statement included (default: %(default)s)",
    )
    parser.add_argument(
        "--rec-list-size",
        type=int,
        default=DEFAULT_REC_LIST_SIZE,
        help="items per simulated recommendation (default: %(default)s)",
    )
    parser.add_argument(
        "--skip-invalid", action="store_true", help="skip malformed records, counted per reason"
    )
    parser.add_argument(
        "--drop-items-without-attributes",
        action="store_true",
        help="drop items that have no attributes and the records/interactions using them (counted)",
    )
    parser.add_argument(
        "--conversations",
        choices=CONVERSATION_REGIMES,
        default="all",
        help="all: every row carries a conversation (default); targets: only evaluated rows and the last "
        "training row of the --train-conversations users (the paper's regime; precrs-lastfm: only real "
        "dialogues); every other row is a plain interaction",
    )
    parser.add_argument(
        "--train-conversations",
        metavar="X",
        help="with --conversations targets: a fraction in (0, 1] of the training users (e.g. 0.05) or a whole "
        "number >= 1 of users (e.g. 50) whose last training row keeps its conversation; seeded, and a "
        "smaller X picks a subset of a larger X's users (default: 1.0)",
    )


def run(args):
    """Dispatch parsed CLI arguments to a converter; returns its :class:`ConversionReport`."""
    common = dict(
        out_dir=args.out,
        name=args.name,
        seed=args.seed,
        max_turns=args.max_turns,
        rec_list_size=args.rec_list_size,
        skip_invalid=args.skip_invalid,
        drop_items_without_attributes=args.drop_items_without_attributes,
        conversations=args.conversations,
        train_conversations=args.train_conversations,
    )
    if args.format == "precrs-lastfm":
        return convert_precrs_lastfm(
            args.item_dict,
            train=args.train,
            valid=args.valid,
            test=args.test,
            records=args.records,
            holdout=args.holdout,
            candidates=args.candidates,
            **common,
        )
    if args.format == "scpr-lastfm-star":
        return convert_scpr_lastfm_star(args.data_dir, candidates=args.candidates, **common)
    return convert_recbole(
        args.data_path,
        args.dataset,
        args.attribute_field,
        user_field=args.user_field,
        item_field=args.item_field,
        time_field=args.time_field,
        seq_separator=args.seq_separator,
        **common,
    )


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except (ConversionError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # anything the converters did not name themselves: still one line
        print(f"error: cannot access '{error.filename}': {error.strerror or error}.", file=sys.stderr)
        return 2
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
