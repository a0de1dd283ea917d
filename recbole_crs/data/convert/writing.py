"""Writing a CRS dataset: ``<name>.item``, ``<name>.inter`` and ``<name>.manifest.json``, published as a whole.

Byte-identical for the same rows: items in token order (:func:`~recbole_crs.data.tokens.natural_key`), rows in
the order given, one spelling per number (:func:`format_float`), ``\\n`` line ends, UTF-8.
"""

import hashlib
import json
import os
from dataclasses import dataclass, field

from recbole_crs.artifacts import manifest_path
from recbole_crs.data.convert.problems import EXAMPLES
from recbole_crs.data.fields import (
    ATTRIBUTES_COLUMN,
    CANDIDATE_COLUMN,
    CONFIRMED_COLUMN,
    CONFIRMED_TURNS_COLUMN,
    ITEM_COLUMN,
    REJECTED_COLUMN,
    REJECTED_TURNS_COLUMN,
    SPLIT_COLUMN,
    TIME_COLUMN,
    USER_COLUMN,
)
from recbole_crs.data.tokens import natural_key
from recbole_crs.errors import ConversionError
from recbole_crs.runtime import atomic_write_bytes, clean_stale_temporaries, temporary_path


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
        examples = ", ".join(map(repr, bad[:EXAMPLES]))
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
    """Write ``<out_dir>/<name>.item``, ``.inter`` and ``.manifest.json`` as a whole (:func:`publish_dataset`);
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

    publish_dataset(out_dir, name, {
        item_path: ("\n".join(item_lines) + "\n").encode("utf-8"),
        inter_path: ("\n".join(inter_lines) + "\n").encode("utf-8"),
    })
    return inter_path, item_path


def publish_dataset(out_dir, name, contents):
    """Make ``contents`` ({path: bytes}) visible as a whole, with ``<name>.manifest.json`` describing them.

    0. temporary files that conversions killed before their end left in ``out_dir`` are removed
       (:func:`~recbole_crs.runtime.clean_stale_temporaries`: those of processes no longer running);
    1. every file is written to a temporary name and fsynced (a failure leaves the previous dataset as it was);
    2. the manifest (size and sha256 of each new file) replaces the old one, atomically;
    3. the temporary files are renamed onto the final names.
    A kill between 2 and the last rename leaves files that differ from the manifest: CRSDataset refuses them
    ("re-run the conversion") instead of training on a new .item with an old .inter. Before 2, the previous
    dataset and its manifest are untouched.
    """
    clean_stale_temporaries(out_dir)
    temporaries = {}
    try:
        for path, data in contents.items():
            target = path  # named by the error when the failing call does not name a file (a full disk)
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
