"""``precrs-lastfm``: the paper authors' Last.fm records (``item_dict_lastfm1.0.json`` + ``*_lastfm.json``).

Each record becomes one user sequence: its ``context`` items are training rows (conversations simulated), its
``pos_item`` the last row with the real dialogue. Record files give their split (``--train/--valid/--test``)
or are split by a seeded ``--holdout`` (``--records``). Details: ``docs/converters.md``.
"""

import os
from collections import Counter
from dataclasses import dataclass

import numpy as np

from recbole_crs.data.convert.conversion import Conversion
from recbole_crs.data.convert.problems import WITHOUT_ATTRIBUTES, Problems
from recbole_crs.data.convert.reading import as_list, int_token, load_item_dict, load_json
from recbole_crs.data.convert.regimes import ALL_CONVERSATIONS
from recbole_crs.data.convert.writing import Row
from recbole_crs.data.fields import CANDIDATE_FIELD, EVALUATED_SPLITS, SPLITS, TRAIN_SPLIT
from recbole_crs.data.simulator import summarize_conversations
from recbole_crs.data.tokens import natural_key
from recbole_crs.errors import ConversionError, InvalidRecord

PRECRS_REQUIRED_KEYS = ("user", "context", "pos_item", "initial", "dialog")
# A dialogue turn [attribute, n] has exactly this length; any other length is a list of rejected items.
PRECRS_ATTRIBUTE_TURN_LENGTH = 2


def convert_precrs_lastfm(
    item_dict,
    out_dir,
    train=(),
    valid=(),
    test=(),
    records=(),
    holdout=None,
    candidates=0,
    **options,
):
    """Convert the authors' Last.fm records (see ``docs/converters.md``); returns a :class:`ConversionReport`.

    Args:
        item_dict: path of ``item_dict_lastfm1.0.json`` (item id -> tag ids).
        train, valid, test: record files whose target rows get that split.
        records: record files whose targets are split by ``holdout`` (a dict like ``{"valid": 0.2, "test":
            0.2}`` or its string form); the rest are ``train``.
        candidates: if > 0, add ``candidate_items`` with up to this many items sharing the initial attribute
            (target removed) to every valid/test row (the authors' protocol uses 100).
        options: those of :class:`ConversionOptions`. ``conversations``: ``"all"`` (context rows carry
            simulated conversations) or ``"targets"`` (only real dialogues: every evaluated target, and the
            training targets of ``train_conversations`` (a fraction in (0, 1] or a count, default 1.0) of the
            users whose target row is a training row; context rows carry none).
    """
    conversion = Conversion("precrs-lastfm", out_dir, options, candidates)
    report, options = conversion.report, conversion.options
    if isinstance(holdout, str):
        holdout = parse_holdout(holdout)
    if records and holdout is None:
        raise ConversionError("--records needs --holdout (e.g. valid=0.2,test=0.2) to decide their splits.")
    if holdout is not None and not records:
        raise ConversionError("--holdout splits the files given with --records; give at least one.")
    sources = [(path, split) for split, paths in zip(SPLITS, (train, valid, test)) for path in paths]
    sources += [(path, None) for path in records]
    if not sources:
        raise ConversionError("No record files: give --train/--valid/--test and/or --records.")

    drop = options.drop_items_without_attributes
    catalogue = load_item_dict(item_dict, report, options.skip_invalid, drop, _precrs_attributes)
    kept, holdout_records = _read_precrs_records(sources, catalogue, report, options.skip_invalid, drop)
    splits = _holdout_splits(len(holdout_records), holdout or {}, conversion.holdout_rng)
    for record, split in zip(holdout_records, splits):
        record["split"] = split
    _unique_users(kept, report)

    rows = _precrs_rows(kept)
    report.real_conversations = summarize_conversations(
        [_RealConversation(r["confirmed"], r["rejected"]) for r in kept]
    )
    if options.conversations == ALL_CONVERSATIONS:
        report.notes.append(
            "context rows (split train) carry simulated conversations; target rows carry the real dialogues"
        )
    # --conversations targets: eligible are the users whose target row is a training row (a real dialogue);
    # context rows never keep one.
    return conversion.close(
        rows,
        catalogue,
        "--conversations targets: only real dialogues are written (context rows are plain interactions); "
        "the simulated statistics cover the conversations simulated before blanking",
        keep_simulated=False,
        candidate_notes=_candidate_notes,
    )


def _candidate_notes(sizes, candidates):
    if not sizes:
        return []
    return [
        f"{CANDIDATE_FIELD} on {len(sizes)} evaluated rows: mean {np.mean(sizes):.1f}, min "
        f"{min(sizes)}, max {max(sizes)} (fewer than {candidates} where the initial attribute has "
        "fewer items)"
    ]


def _precrs_attributes(value, where):
    return value


def _parse_precrs_record(record, catalogue, where, drop_without_attributes, counters):
    """Validate one authors' record; return (user, context items, target, confirmed, rejected, turns).

    ``turns`` = (confirmed turns, rejected turns), parallel to ``confirmed`` and ``rejected``: dialogue turn
    ``i`` (1-based) confirms its attribute or rejects its items at turn ``i``; ``initial`` is turn 1.
    """
    if not isinstance(record, dict):
        raise InvalidRecord("bad record", f"{where} is {type(record).__name__}, expected an object")
    missing = [key for key in PRECRS_REQUIRED_KEYS if key not in record]
    if missing:
        raise InvalidRecord("missing key", f"{where} has no key {', '.join(map(repr, missing))}")
    user = int_token(record["user"], f"{where} user", "user")
    target = catalogue.item(record["pos_item"], f"{where} pos_item")
    context = []
    for value in as_list(record["context"], f"{where} context"):
        try:
            context.append(catalogue.item(value, f"{where} context"))
        except InvalidRecord as invalid:
            if not (drop_without_attributes and invalid.reason == WITHOUT_ATTRIBUTES):
                raise
            counters["context items without attributes removed"] += 1
    confirmed = [_target_attribute(catalogue, target, record["initial"], f"{where} initial")]
    rejected = []
    confirmed_turns, rejected_turns = [1], []
    for number, turn in enumerate(as_list(record["dialog"], f"{where} dialog")):
        turn_where = f"{where} dialog turn {number}"
        if not isinstance(turn, list) or not turn:
            raise InvalidRecord(
                "bad dialog turn", f"{turn_where} is {turn!r}, expected [attribute, n] or a list of items"
            )
        if len(turn) == PRECRS_ATTRIBUTE_TURN_LENGTH:
            attribute = _target_attribute(catalogue, target, turn[0], turn_where)
            if isinstance(turn[1], bool) or not isinstance(turn[1], int):
                raise InvalidRecord(
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
                raise InvalidRecord("target in rejected list", f"{turn_where} rejects the target item {target}")
            rejected.extend(items)
            rejected_turns.extend([number + 1] * len(items))
    return user, context, target, confirmed, rejected, (confirmed_turns, rejected_turns)


def _target_attribute(catalogue, target, value, where):
    attribute = catalogue.attribute(value, where)
    if not catalogue.has(target, attribute):
        raise InvalidRecord(
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
    splits = [TRAIN_SPLIT] * n
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


@dataclass
class _RealConversation:
    """The parts of a real dialogue that :func:`summarize_conversations` measures."""

    confirmed: list
    rejected_items: list


def _read_precrs_records(sources, catalogue, report, skip_invalid, drop_without_attributes):
    """Load and validate every record file; return (kept records, the kept ones awaiting --holdout)."""
    problems = Problems(report, skip_invalid, "records", drop_without_attributes)
    counters = Counter()
    kept, holdout_records = [], []
    for path, split in sources:
        data = load_json(path, "record")
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
            except InvalidRecord as invalid:
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
        rows += [Row(user, item, t, None, [], TRAIN_SPLIT) for t, item in enumerate(record["context"])]
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
