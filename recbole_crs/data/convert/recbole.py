"""``recbole``: any RecBole atomic dataset with a ``token_seq`` item attribute field and a timestamp.

Every interaction gets a simulated conversation over the attribute field. No split column (RecBole's
``eval_args`` split it) unless ``--conversations targets`` needs one; no filtering (configure k-core etc. in
RecBole). Details: ``docs/converters.md``.
"""

import os

import numpy as np

from recbole_crs.data.atomic import UTF8_TEXT
from recbole_crs.data.convert.conversion import Conversion, popularity
from recbole_crs.data.convert.problems import WITHOUT_ATTRIBUTES, Problems
from recbole_crs.data.convert.reading import Catalogue, check_without_attributes
from recbole_crs.data.convert.regimes import TARGET_CONVERSATIONS, leave_one_out_split_values, leave_one_out_splits
from recbole_crs.data.convert.writing import Row
from recbole_crs.data.tokens import natural_key
from recbole_crs.errors import ConversionError, InvalidRecord

# The source dataset's fields by default (RecBole's own names) and its token_seq separator.
DEFAULT_USER_FIELD = "user_id"
DEFAULT_ITEM_FIELD = "item_id"
DEFAULT_TIME_FIELD = "timestamp"
DEFAULT_SEQ_SEPARATOR = " "


def convert_recbole(
    data_path,
    dataset,
    attribute_field,
    out_dir,
    user_field=DEFAULT_USER_FIELD,
    item_field=DEFAULT_ITEM_FIELD,
    time_field=DEFAULT_TIME_FIELD,
    seq_separator=DEFAULT_SEQ_SEPARATOR,
    **options,
):
    """Turn a RecBole atomic dataset (``<data_path>/<dataset>/<dataset>.{inter,item}``) into a CRS dataset.

    Attributes come from the ``token_seq`` item field ``attribute_field``; every interaction gets a simulated
    conversation; rows are sorted by user, then time, ties in source order (what RecBole's stable sort keeps).
    No split column and no filtering (k-core, rating threshold): RecBole's own config does that on load.
    ``options``: those of :class:`ConversionOptions`. ``conversations="targets"`` adds a ``split`` column
    (:func:`leave_one_out_splits`: the rows the default ``eval_args`` evaluate) and keeps conversations on
    valid/test rows and on the last training row of ``train_conversations`` (fraction or count, default 1.0)
    of the training users only.
    """
    conversion = Conversion("recbole", out_dir, options)
    report, options = conversion.report, conversion.options
    folder = os.path.join(data_path, dataset)
    item_path = os.path.join(folder, f"{dataset}.item")
    item_attributes, without = _read_recbole_items(
        item_path, item_field, attribute_field, seq_separator, report, options.skip_invalid
    )
    check_without_attributes(
        without, f"field {attribute_field!r} of {dataset}.item", options.drop_items_without_attributes, report
    )
    rows = _read_recbole_inter(
        os.path.join(folder, f"{dataset}.inter"),
        (user_field, item_field, time_field),
        item_attributes,
        without,
        report,
        options.skip_invalid,
    )
    order = sorted(range(len(rows)), key=lambda i: (natural_key(rows[i].user), rows[i].timestamp, i))
    rows = [rows[i] for i in order]
    # The simulator's popularity counts the rows the default eval_args train on, never held-out targets; the
    # split column is written only where the regime needs it (without it, RecBole's eval_args split on load).
    splits = leave_one_out_split_values(rows)
    with_split = options.conversations == TARGET_CONVERSATIONS
    if with_split:
        leave_one_out_splits(rows)
    return conversion.close(
        rows,
        Catalogue(item_attributes, without, os.path.basename(item_path)),
        "--conversations targets: split column = leave-one-out by time as the default eval_args evaluate "
        "(a user's first row is never a target); the simulated statistics cover every row before blanking",
        with_split=with_split,
        item_popularity=popularity(rows, splits),
    )


def _read_recbole_items(path, item_field, attribute_field, seq_separator, report, skip_invalid):
    names, types, lines = _read_atomic(path, "item")
    item_col = _require_field(names, types, item_field, ("token",), path, "--item-field")
    attr_col = _require_field(names, types, attribute_field, ("token_seq",), path, "--attribute-field")
    problems = Problems(report, skip_invalid, f"rows of '{path}'")
    item_attributes, without = {}, set()
    for number, fields in enumerate(lines, start=2):
        try:
            if len(fields) != len(names):
                raise InvalidRecord(
                    "bad row", f"{path} line {number} has {len(fields)} fields, header has {len(names)}"
                )
            item = fields[item_col]
            if item in item_attributes or item in without:
                raise InvalidRecord("duplicate item", f"{path} line {number}: item {item!r} is listed twice")
        except InvalidRecord as invalid:
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
    problems = Problems(report, skip_invalid, f"interactions of '{path}'")
    rows, dropped = [], 0
    for number, values in enumerate(lines, start=2):
        report.records_read += 1
        try:
            if len(values) != len(names):
                raise InvalidRecord(
                    "bad row", f"{path} line {number} has {len(values)} fields, header has {len(names)}"
                )
            item = values[item_col]
            if item in without:
                dropped += 1  # only reachable with --drop-items-without-attributes
                continue
            if item not in item_attributes:
                raise InvalidRecord(
                    "unknown item", f"{path} line {number}: item {item!r} is not in the .item file"
                )
            rows.append(Row(values[user_col], item, _parse_time(values[time_col], path, number), None))
        except InvalidRecord as invalid:
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
        raise InvalidRecord("bad timestamp", f"{path} line {number}: timestamp {text!r} is not a number") from None
    if not np.isfinite(value):
        raise InvalidRecord("bad timestamp", f"{path} line {number}: timestamp {text!r} is not finite")
    return value


def _read_atomic(path, what):
    """Read a RecBole atomic file: ({field: column index}, {field: type}, rows as lists of strings)."""
    try:
        with open(path, encoding=UTF8_TEXT) as handle:
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
