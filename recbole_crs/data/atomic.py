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

import pandas as pd
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
    import recbole.data.dataset.dataset as recbole_dataset

    encoding = config["encoding"]
    config["encoding"] = text_encoding(encoding)
    recbole_dataset.pd = _TextPandas()
    try:
        yield
    finally:
        recbole_dataset.pd = pd
        config["encoding"] = encoding


__all__ = ["FLOAT_TYPES", "UTF8_TEXT", "first_bad_number", "read_csv_options", "recbole_reads_text", "text_encoding"]
