"""``scpr-lastfm-star``: SCPR's LastFM* (``item_dict.json`` + ``review_dict_{train,valid,test}.json``).

Each user's train, valid, then test items become rows with that split, at timestamps ``0..n-1`` (the review
lists carry no time); every conversation is simulated from the items' ``feature_index``. Details:
``docs/converters.md``.
"""

import os

import numpy as np

from recbole_crs.data.convert.conversion import Conversion
from recbole_crs.data.convert.problems import Problems
from recbole_crs.data.convert.reading import as_list, int_token, load_item_dict, load_json
from recbole_crs.data.convert.writing import Row
from recbole_crs.data.fields import CANDIDATE_FIELD, SPLITS
from recbole_crs.data.tokens import natural_key
from recbole_crs.errors import ConversionError, InvalidRecord

SCPR_FEATURE_KEY = "feature_index"
SCPR_FILES = {"item_dict": "item_dict.json", **{s: f"review_dict_{s}.json" for s in SPLITS}}


def convert_scpr_lastfm_star(data_dir, out_dir, candidates=0, **options):
    """Convert SCPR's LastFM* (``item_dict.json``, ``review_dict_{train,valid,test}.json``).

    Each user's items become rows in the order train, valid, test (each file's own order), with timestamps
    0..n-1 and that file's split; every conversation is simulated (see ``docs/converters.md``). ``options``:
    those of :class:`ConversionOptions`; ``conversations="targets"`` keeps the conversations on valid/test rows
    and on the last training row of ``train_conversations`` (fraction or count, default 1.0) of the users with
    training rows only.
    """
    conversion = Conversion("scpr-lastfm-star", out_dir, options, candidates)
    report, options = conversion.report, conversion.options
    paths = {key: os.path.join(data_dir, file) for key, file in SCPR_FILES.items()}
    drop = options.drop_items_without_attributes
    catalogue = load_item_dict(paths["item_dict"], report, options.skip_invalid, drop, _scpr_attributes)

    problems = Problems(report, options.skip_invalid, "interactions", drop)
    sequences = {}  # user -> [(item, split)]
    for split in SPLITS:
        reviews = load_json(paths[split], f"{split} review dict")
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
    report.notes.append(
        "all conversations are simulated; the review lists carry no time, so timestamps are list order"
    )
    return conversion.close(
        rows,
        catalogue,
        "--conversations targets: the simulated statistics cover every row simulated before blanking",
        candidate_notes=_candidate_notes,
    )


def _candidate_notes(sizes, candidates):
    return [f"{CANDIDATE_FIELD} on {len(sizes)} evaluated rows, mean size {np.mean(sizes or [0]):.1f}"]


def _scpr_attributes(value, where):
    if not isinstance(value, dict):
        raise InvalidRecord(
            "bad value", f"{where} is {type(value).__name__}, expected an object with {SCPR_FEATURE_KEY!r}"
        )
    if SCPR_FEATURE_KEY not in value:
        raise InvalidRecord("missing key", f"{where} has no key {SCPR_FEATURE_KEY!r}")
    return value[SCPR_FEATURE_KEY]


def _read_scpr_user(key, items, split, catalogue, sequences, problems, file_name):
    """Append one user's items of one review file to ``sequences``; each list entry is one record."""
    where = f"{file_name}[{key!r}]"
    try:
        user = int_token(key, where, "user")
        items = as_list(items, where)
    except InvalidRecord as invalid:
        problems.report.records_read += 1  # a malformed list counts as one record
        problems.add(invalid)
        return
    for value in items:
        problems.report.records_read += 1
        try:
            sequences.setdefault(user, []).append((catalogue.item(value, where), split))
        except InvalidRecord as invalid:
            problems.add(invalid)
