"""Compact loading of the ``.inter`` file (config ``inter_loading``).

RecBole's ``Dataset._load_feat`` reads every column with pandas' Python engine as Python strings, turns every
``token_seq`` / ``float_seq`` cell into its own numpy array, remaps them through per-row lists and pads them into
``[rows, width]`` tensors: at 2M interactions of ml-100k-crs that peaks at 4.2 GB, ~2 GB per million rows, most
of it per-row Python objects (``benchmarks/scale.py``). ``inter_loading: compact`` (the default) reads the same
file into the same dataset with

* pandas' C parser, every column read as a ``category``: a small integer code per row, each distinct string
  stored once (text read by the rules of :mod:`recbole_crs.data.atomic`, as RecBole's loader reads it here); ``float`` columns then become the ``float64`` values RecBole's Python engine gives them
  (:func:`python_engine_floats`);
* each sequence column kept **dictionary-encoded**: per row, the index of its (distinct) sequence in a table
  :class:`SeqTable`; only the distinct cells are split into tokens. A conversation column has few distinct
  values (ml-100k-crs: 172 distinct confirmed-attribute lists and 4 distinct rejected-item lists in 100,000
  rows), and a replicated dataset has no more;
* the remapping (``_remap``) computed on those tables: ids are still given in order of first appearance over
  the concatenated fields, as ``pd.factorize`` does, so ``field2id_token`` and every id are the same;
* after ``_change_feat_format`` the column is either padded as RecBole pads it (``history_windows:
  materialized``: the same tensors) or stays encoded in the :class:`~recbole_crs.data.windows.WindowedInteraction`
  (``lazy``): ``[rows]`` int32 codes plus a ``[distinct, width]`` table, decoded for the rows of each batch,
  each split and each whole-column read (``inter_feat[field]``), so they see the same tensors.

``inter_loading: recbole`` keeps RecBole's loader (the reference the tests compare against). The compact loader
is used only where it gives the same result: a one-character ``field_separator``, no ``benchmark_filename``,
and no ``.inter`` sequence field named by ``numerical_features``, ``normalize_field``, ``normalize_all``,
``discretization`` or ``preload_weight``; otherwise RecBole's loader is used (logged). ``.item``/``.user``
files are small and always go through RecBole's loader.
"""

import numpy as np
import pandas as pd
import torch
from recbole.utils import FeatureType

from recbole_crs.data.atomic import read_csv_options, text_encoding

INTER_LOADINGS = ("compact", "recbole")  # the first is the default: overall.yaml's (a test checks)
SEQ_TYPES = (FeatureType.TOKEN_SEQ, FeatureType.FLOAT_SEQ)


def inter_loading_mode(config):
    """``config['inter_loading']`` with its default filled in; unknown values are refused."""
    mode = config["inter_loading"] or INTER_LOADINGS[0]
    if mode not in INTER_LOADINGS:
        raise ValueError(f"inter_loading must be one of {list(INTER_LOADINGS)}, got {mode!r}.")
    return mode


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, dict):
        return list(value)
    if isinstance(value, str):
        return [value]
    return list(value)


def compact_blockers(config, seq_fields):
    """Why the compact loader cannot give RecBole's result for these ``.inter`` sequence fields ([] if it can)."""
    reasons = []
    if len(config["field_separator"] or "\t") != 1:
        reasons.append("field_separator is longer than one character")
    if config["benchmark_filename"]:
        reasons.append("benchmark_filename is set")
    seq_fields = set(seq_fields)
    named = set(_as_list(config["numerical_features"])) | set(_as_list(config["normalize_field"]))
    named |= set(_as_list(config["discretization"]))
    for key, value in (config["preload_weight"] or {}).items():
        named |= {key, value}
    if config["normalize_all"]:
        named |= seq_fields
    touched = sorted(named & seq_fields)
    if touched:
        reasons.append(f"sequence fields {touched} are normalised, discretised, numerical or preloaded")
    return reasons


class SeqTable:
    """The distinct cells of one sequence column: ``seqs[code]`` is a numpy array (tokens, then ids, or floats).

    The DataFrame column holds each row's ``code`` (int64), so RecBole's row filtering, sorting and index
    resets carry it like any other column.
    """

    def __init__(self, seqs):
        self.seqs = seqs

    def __len__(self):
        return len(self.seqs)

    def used(self, codes):
        """Codes that occur in ``codes``, in order of first occurrence."""
        return pd.unique(np.asarray(codes))

    def padded(self, codes, dtype):
        """``[len(table), width]`` numpy table, ``width`` the longest sequence among ``codes`` (RecBole pads a
        column to its longest remaining row)."""
        used = np.unique(np.asarray(codes))
        width = max((len(self.seqs[c]) for c in used), default=0)
        table = np.zeros((len(self.seqs), width), dtype=dtype)
        for code, seq in enumerate(self.seqs):
            n = min(len(seq), width)
            if n:
                table[code, :n] = seq[:n]
        return table


def read_inter(dataset, filepath, columns, usecols, seq_separator):
    """The ``.inter`` DataFrame (token columns categorical, sequence columns codes) and ``{field: SeqTable}``.

    ``dataset``'s ``field2type`` / ``field2seqlen`` are already set for ``columns`` (as RecBole's loader sets
    them); ``field2seqlen`` of the sequence fields is filled here exactly as RecBole fills it.
    """
    config = dataset.config
    df = pd.read_csv(
        filepath,
        delimiter=config["field_separator"],
        usecols=usecols,
        dtype={column: "category" for column in usecols},
        encoding=text_encoding(config["encoding"]),
        engine="c",
        **read_csv_options(usecols),
    )
    df.columns = columns
    for field, header in zip(columns, usecols):
        if dataset.field2type[field] == FeatureType.FLOAT:
            df[field] = python_engine_floats(df[field], header)
    tables = {}
    seq_len = config["seq_len"] or {}
    for field in columns:
        ftype = dataset.field2type[field]
        if ftype not in SEQ_TYPES:
            continue
        column = df[field].cat
        cells = [str(s) for s in column.categories]
        if ftype == FeatureType.TOKEN_SEQ:
            seqs = [np.array(list(filter(None, s.split(seq_separator)))) for s in cells]
        else:
            seqs = [np.array(list(map(float, filter(None, s.split(seq_separator))))) for s in cells]
        seqs.append(np.array([]))  # the empty cell (NaN), RecBole's fillna('')
        codes = column.codes.to_numpy().astype(np.int64)
        codes[codes < 0] = len(seqs) - 1
        max_seq_len = max(len(seqs[c]) for c in np.unique(codes))
        if field in seq_len:
            seqs = [seq[: seq_len[field]] for seq in seqs]
            dataset.field2seqlen[field] = min(seq_len[field], max_seq_len)
        else:
            dataset.field2seqlen[field] = max_seq_len
        df[field] = codes
        tables[field] = SeqTable(seqs)
    return df, tables


def python_engine_floats(column, header):
    """A categorical column of strings as the float64 values pandas' Python engine gives them.

    That engine converts a column with ``maybe_convert_numeric`` (pandas' own ``precise_xstrtod``: not always
    Python's ``float()``, e.g. '1000000000.2697867' -> ...868), and when that fails on any value (e.g. an integer
    beyond 64 bits) converts the whole column with numpy (``astype(float64)``). Converting the distinct strings
    the same way gives each row the same value (the C parser's ``float_precision`` options all differ from it).
    """
    strings = np.asarray(column.cat.categories, dtype=object)
    try:
        values = pd.to_numeric(strings)  # maybe_convert_numeric, as the Python engine calls it
    except (ValueError, TypeError):
        try:
            values = strings.astype(np.float64)
        except (ValueError, TypeError):
            raise ValueError(f"Unable to convert column {header} to type float64") from None  # the engine's words
    values = np.append(np.asarray(values, dtype=np.float64), np.nan)  # code -1 (empty cell) -> NaN
    return values[column.cat.codes.to_numpy()]


def _first_appearances(feat, field, ftype, table):
    """The tokens of one remap piece in order of first appearance (NaN dropped): the order ``pd.factorize``
    gives them over the piece's whole column."""
    column = feat[field]
    if table is not None:  # compact sequence column: each distinct cell at its first row
        seqs = [table.seqs[c] for c in table.used(column.to_numpy())]
        tokens = np.concatenate([np.asarray(s, dtype=object) for s in seqs]) if seqs else np.array([], dtype=object)
    elif ftype == FeatureType.TOKEN_SEQ:
        values = list(column.values)
        tokens = np.concatenate([np.asarray(s, dtype=object) for s in values]) if values else np.array([], dtype=object)
    elif isinstance(column.dtype, pd.CategoricalDtype):
        codes = pd.unique(column.cat.codes.to_numpy())
        tokens = np.asarray(column.cat.categories, dtype=object)[codes[codes >= 0]]
    else:
        tokens = np.asarray(pd.unique(column.to_numpy()), dtype=object)
    tokens = tokens[~pd.isnull(tokens)] if len(tokens) else tokens
    return pd.unique(tokens)


def remap(dataset, remap_list, tables):
    """RecBole's ``Dataset._remap`` for pieces that may be compact: the same ``mp`` and ids.

    ``pd.factorize`` over the concatenation numbers tokens by first appearance; the first appearances of each
    piece, concatenated in piece order, have the same first appearances in the same order. RecBole's filters
    (k-core, ``val_interval``, ``rm_dup_inter``, missing ids) drop rows, not categories or table cells: a token
    whose rows are all gone has no id, so only the categories and cells still in use are remapped.
    """
    streams = [_first_appearances(feat, field, ftype, tables.get(field) if feat is dataset.inter_feat else None)
               for feat, field, ftype in remap_list]
    stream = np.concatenate(streams) if streams else np.array([], dtype=object)
    uniques = pd.unique(stream) if len(stream) else stream
    mp = np.array(["[PAD]"] + list(uniques))
    token_id = {t: i for i, t in enumerate(mp)}
    for feat, field, ftype in remap_list:
        if field not in dataset.field2id_token:
            dataset.field2id_token[field] = mp
            dataset.field2token_id[field] = token_id
        table = tables.get(field) if feat is dataset.inter_feat else None
        column = feat[field]
        if table is not None:
            used = set(table.used(column.to_numpy()).tolist())
            table.seqs = [np.array([token_id[t] for t in seq] if code in used else [], dtype=np.int64)
                          for code, seq in enumerate(table.seqs)]
        elif ftype == FeatureType.TOKEN_SEQ:
            feat[field] = [np.array([token_id.get(t, 0) for t in seq], dtype=np.int64) for seq in column.values]
        elif isinstance(column.dtype, pd.CategoricalDtype):
            column = column.cat.remove_unused_categories()
            ids = np.array([token_id[t] for t in column.cat.categories] + [0], dtype=np.int64)
            feat[field] = ids[column.cat.codes.to_numpy()]  # code -1 (NaN) -> the appended 0, as factorize's -1 + 1
        else:
            feat[field] = np.array([token_id.get(t, 0) for t in column.to_numpy()], dtype=np.int64)


def encoded_column(table, codes, ftype):
    """``(codes tensor, table tensor)`` of a compact column in an ``Interaction``: RecBole's padded tensor is
    ``table[codes]`` (``LongTensor`` for ``token_seq``, ``FloatTensor`` for ``float_seq``)."""
    dtype = np.int64 if ftype == FeatureType.TOKEN_SEQ else np.float32
    codes = np.asarray(codes)
    padded = table.padded(codes, dtype)
    code_dtype = np.int32 if len(table) < 2**31 else np.int64
    return torch.from_numpy(codes.astype(code_dtype)), torch.from_numpy(padded)


__all__ = [
    "INTER_LOADINGS",
    "SeqTable",
    "compact_blockers",
    "encoded_column",
    "inter_loading_mode",
    "read_inter",
    "remap",
]
