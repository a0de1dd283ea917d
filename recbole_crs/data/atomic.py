"""How the text of an atomic file is read: by both ``.inter`` loaders, by RecBole's ``.item`` / ``.user`` loading,
by the configuration's header check and by the converters.

* **Encoding.** A UTF-8 file may start with a byte-order mark (Windows editors write one). It is read as
  ``utf-8-sig`` (:func:`text_encoding`), so the first header field is ``user_id:token``, not
  ``\\ufeffuser_id:token`` (which no column would match).
* **Missing values.** Tokens are text: ``NA``, ``nan``, ``null``, ``None`` and pandas' other missing markers are
  user ids, item ids and attributes like any other; only an empty cell is missing. In ``float`` and
  ``float_seq`` columns pandas' markers still mean missing (no number is called NA) (:func:`read_csv_options`).
  :func:`recbole_reads_text` gives RecBole's own loader the same rules.
"""

import codecs
import contextlib

import numpy as np
import pandas as pd
import recbole.data.dataset.dataset as recbole_dataset
from pandas._libs.parsers import STR_NA_VALUES  # pandas' default missing markers (pinned pandas<3)

FLOAT_TYPES = ("float", "float_seq")
_FLOAT_MISSING = sorted(STR_NA_VALUES)
# UTF-8 text with or without a byte-order mark (the mark is skipped; files are written without one).
UTF8_TEXT = "utf-8-sig"


def text_encoding(encoding):
    """``encoding`` (a config's ``encoding``, default UTF-8), reading UTF-8 with or without a byte-order mark."""
    encoding = encoding or "utf-8"
    try:
        is_utf8 = codecs.lookup(encoding).name == "utf-8"
    except LookupError:  # an unknown encoding: RecBole's or pandas' own error names it
        return encoding
    return UTF8_TEXT if is_utf8 else encoding


def read_csv_options(usecols):
    """``pandas.read_csv`` keywords for the ``name:type`` columns ``usecols``: an empty cell is missing in every
    column; pandas' other markers only in float columns."""
    return {
        "keep_default_na": False,
        "na_values": {column: _FLOAT_MISSING if column.rpartition(":")[2] in FLOAT_TYPES else [""]
                      for column in usecols},
    }


def header_columns(filepath, config):
    """The ``name:type`` columns of an atomic file's header, split as RecBole splits them."""
    with open(filepath, "r", encoding=text_encoding(config["encoding"])) as handle:
        return handle.readline()[:-1].split(config["field_separator"] or "\t")


def first_bad_number(filepath, columns, config):
    """``(line, 'name:type', cell, value)`` of the first cell of the ``float`` / ``float_seq`` columns ``columns``
    (``name:type`` headers of ``filepath``) that is not a number (``value``: the bad part of a sequence cell), or
    None. A plain scan of the text, run only once a loader has failed, to name the place.
    """
    separator, seq_separator = config["field_separator"] or "\t", config["seq_separator"] or " "
    missing = set(_FLOAT_MISSING)
    with open(filepath, encoding=text_encoding(config["encoding"]), errors="replace") as handle:
        header = handle.readline().rstrip("\r\n").split(separator)
        where = [(header.index(column), column) for column in columns if column in header]
        for number, line in enumerate(handle, start=2):
            cells = line.rstrip("\r\n").split(separator)
            for index, column in where:
                cell = cells[index] if index < len(cells) else ""
                is_seq = column.endswith(":float_seq")
                for value in filter(None, cell.split(seq_separator)) if is_seq else [cell]:
                    if value in missing and (not is_seq or value == cell):
                        continue
                    try:
                        float(value)
                    except ValueError:
                        return number, column, cell, value
    return None


def ragged_lines(filepath, separator, examples=3, chunk_bytes=1 << 24):
    """``(header fields, number of lines whose field count differs, [(line, fields)] of the first ``examples``)``
    of a UTF-8 file with a one-character ``separator``; blank lines (pandas skips them) do not count.

    pandas reads a line with missing trailing fields as empty cells (an empty conversation, without a word) and
    fails on a longer one without naming the file. Counted on the bytes, a chunk at a time (a few seconds per GB).
    """
    separator_byte, newline, carriage_return = ord(separator), ord("\n"), ord("\r")
    expected, bad, found = None, 0, []
    line, carried, carried_length, last_byte = 1, 0, 0, 0  # the line being read: number, separators, bytes, last
    with open(filepath, "rb") as handle:
        while True:
            data = handle.read(chunk_bytes)
            if not data and not carried_length:
                break
            codes = np.frombuffer(data or b"\n", dtype=np.uint8)  # an unterminated last line ends at the end
            ends = np.flatnonzero(codes == newline)
            if not len(ends):
                carried += int((codes == separator_byte).sum())
                carried_length += len(codes)
                last_byte = int(codes[-1])
                continue
            starts = np.concatenate(([0], ends[:-1] + 1))
            fields = np.add.reduceat(codes[: ends[-1] + 1] == separator_byte, starts, dtype=np.int64) + 1
            lengths = ends - starts
            fields[0] += carried
            lengths[0] += carried_length
            before_end = np.where(ends > 0, codes[np.maximum(ends - 1, 0)], last_byte)
            blank = (lengths == 0) | ((lengths == 1) & (before_end == carriage_return))
            if expected is None:
                expected = int(fields[0])
                blank[0] = True  # the header sets the width
            wrong = np.flatnonzero(~blank & (fields != expected))
            bad += len(wrong)
            found += [(line + int(i), int(fields[i])) for i in wrong[: examples - len(found)]]
            line += len(ends)
            tail = codes[ends[-1] + 1:]
            carried, carried_length = int((tail == separator_byte).sum()), len(tail)
            last_byte = int(tail[-1]) if len(tail) else last_byte
            if not data:
                break
    return expected, bad, found


class _TextPandas:
    """pandas, except that ``read_csv`` reads atomic-file columns by :func:`read_csv_options`."""

    def __getattr__(self, name):
        return getattr(pd, name)

    @staticmethod
    def read_csv(*args, **kwargs):
        return pd.read_csv(*args, **kwargs, **read_csv_options(kwargs["usecols"]))


@contextlib.contextmanager
def recbole_reads_text(config):
    """Within this block RecBole's ``Dataset._load_feat`` follows this module's rules.

    It reads the header with ``open(encoding=config['encoding'])`` and the rows with ``pd.read_csv(usecols=...,
    encoding=...)`` of its own module: the config's encoding becomes :func:`text_encoding`'s, and that module's
    ``pd`` reads with :func:`read_csv_options`. Both are restored afterwards.
    """
    encoding = config["encoding"]
    config["encoding"] = text_encoding(encoding)
    recbole_dataset.pd = _TextPandas()
    try:
        yield
    finally:
        recbole_dataset.pd = pd
        config["encoding"] = encoding


__all__ = ["FLOAT_TYPES", "UTF8_TEXT", "first_bad_number", "header_columns", "ragged_lines", "read_csv_options", "recbole_reads_text", "text_encoding"]
