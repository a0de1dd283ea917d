"""How a :class:`~recbole_crs.data.dataset.CRSDataset` reads its files: RecBole's loading hooks, overridden.

With ``inter_loading: compact`` (the default) the ``.inter`` file goes through :mod:`recbole_crs.data.compact`:
:meth:`CRSLoading._load_feat` reads it (sequence columns dictionary-encoded, their tables in ``_seq_tables``),
:meth:`CRSLoading._remap` remaps on those tables, ``_fill_nan`` and ``_del_col`` leave the codes alone, and
:meth:`CRSLoading._dataframe_to_interaction` pads the columns as RecBole pads them (``history_windows:
materialized``) or keeps them encoded in a :class:`~recbole_crs.data.windows.WindowedInteraction` (``lazy``).
Where the compact loader cannot give RecBole's result (:func:`recbole_crs.data.compact.compact_blockers`), and
for the ``.item`` / ``.user`` files, every hook is RecBole's own. Either way every file is read by the text rules
of :mod:`recbole_crs.data.atomic`, a cell of a float column that is not a number is named (file, line, column),
and a ``val_interval`` RecBole cannot apply is refused.
"""

import numpy as np
from recbole.data.interaction import Interaction
from recbole.utils import FeatureSource, FeatureType

from recbole_crs.data import compact
from recbole_crs.data.atomic import FLOAT_TYPES, first_bad_number, header_columns, recbole_reads_text
from recbole_crs.data.windows import WindowedInteraction, history_windows_mode
from recbole_crs.errors import CRSDataError, CRSInputError


class CRSLoading:
    """RecBole ``Dataset`` loading hooks for the compact ``.inter`` loader, mixed into ``CRSDataset``."""

    def _get_preset(self):
        super()._get_preset()
        self._seq_tables = {}  # compact .inter sequence columns: {field: compact.SeqTable}, until formatted
        self._compact_inter = False

    def _load_feat(self, filepath, source):
        """The ``.inter`` file through :mod:`recbole_crs.data.compact` (``inter_loading: compact``), else RecBole's;
        both read the text by :mod:`recbole_crs.data.atomic` (a byte-order mark, tokens such as ``NA``). A cell of a
        float column that is not a number fails either with pandas' words: the error names the file, line and cell.
        An item (user) listed twice in .item (.user), which RecBole would drop, is refused."""
        try:
            feat = self._load_atomic_file(filepath, source)
        except ValueError as error:
            if isinstance(error, CRSInputError):
                raise
            header = self._read_header(filepath, source) or []
            floats = [field_type for _, field_type, ftype in header if ftype.value in FLOAT_TYPES]
            bad = first_bad_number(filepath, floats, self.config) if floats else None
            if bad is None:
                raise
            raise self._bad_number_error(filepath, *bad) from None
        id_field = {FeatureSource.ITEM: self.iid_field, FeatureSource.USER: self.uid_field}.get(source)
        if id_field:
            self._check_no_duplicate_ids(feat, id_field, filepath)
        return feat

    def _bad_number_error(self, filepath, line, column, cell, value):
        if value == cell:
            problem = f"{cell!r}, which is not a number. Fix it, or leave the cell empty for a missing value."
        else:
            problem = (f"{cell!r}, and {value!r} in it is not a number (a float_seq cell is numbers separated by "
                       f"{self.config['seq_separator']!r}). Fix the cell.")
        return CRSDataError(f"'{filepath}' line {line}: column '{column}' holds {problem}")

    def _load_atomic_file(self, filepath, source):
        if source != FeatureSource.INTERACTION or compact.inter_loading_mode(self.config) != "compact":
            return self._recbole_load_feat(filepath, source)
        header = self._read_header(filepath, source)
        if header is None:
            return self._recbole_load_feat(filepath, source)
        seq_fields = [field for field, _, ftype in header if ftype in compact.SEQ_TYPES]
        blockers = compact.compact_blockers(self.config, seq_fields)
        if blockers:
            self.logger.info(f"inter_loading: RecBole's loader for {filepath} ({'; '.join(blockers)})")
            return self._recbole_load_feat(filepath, source)
        columns, usecols = [], []
        for field, field_type, ftype in header:  # the properties RecBole's _load_feat sets
            self.field2source[field] = source
            self.field2type[field] = ftype
            if not ftype.value.endswith("seq"):
                self.field2seqlen[field] = 1
            if "float" in ftype.value:
                self.field2bucketnum[field] = 2
            columns.append(field)
            usecols.append(field_type)
        df, self._seq_tables = compact.read_inter(self, filepath, columns, usecols, self.config["seq_separator"])
        self._compact_inter = True
        return df

    def _recbole_load_feat(self, filepath, source):
        with recbole_reads_text(self.config):
            return super()._load_feat(filepath, source)

    def _read_header(self, filepath, source):
        """``[(field, 'field:type', FeatureType)]`` of the columns RecBole would load; None: let RecBole decide
        (no column to load, or a type it rejects: its own error)."""
        load_col, unload_col = self._get_load_and_unload_col(source)
        if load_col == set():
            return None
        header = []
        for field_type in header_columns(filepath, self.config):
            field, _, type_name = field_type.partition(":")
            try:
                ftype = FeatureType(type_name)
            except ValueError:
                return None
            if (load_col is not None and field not in load_col) or (unload_col is not None and field in unload_col):
                continue
            header.append((field, field_type, ftype))
        return header or None

    def _remap(self, remap_list):
        if not self._compact_inter:
            return super()._remap(remap_list)
        if remap_list:
            compact.remap(self, remap_list, self._seq_tables)

    def _filter_by_inter_num(self):
        """RecBole counts every row's user and item in Python Counters even when the intervals (default
        ``[0,inf)``) cannot drop anything; skip it then."""
        keep_all = [("[", 0.0, float("inf"), ")")]
        intervals = [self._parse_intervals_str(self.config[key])
                     for key in ("user_inter_num_interval", "item_inter_num_interval")]
        if all(interval is None or interval == keep_all for interval in intervals):
            return
        super()._filter_by_inter_num()

    def _filter_by_field_value(self):
        """RecBole's ``val_interval`` filter, for the fields it can filter: on a sequence field RecBole fails (a
        ``float_seq`` compares whole arrays) or drops every row (``token_seq``), and a compact column holds codes,
        not values; a field the data lacks is RecBole's bare ValueError. Both are refused with the fix."""
        for field in self.config["val_interval"] or {}:
            if field not in self.field2type:
                raise CRSDataError(
                    f"val_interval names '{field}', which {self.dataset_name}'s atomic files do not have (fields: "
                    f"{', '.join(self.field2type)}): fix the name or remove it from val_interval."
                )
            if self.field2type[field] in compact.SEQ_TYPES:
                raise CRSDataError(
                    f"val_interval names '{field}', a {self.field2type[field].value} field: RecBole filters rows by "
                    "the value of a token or float field only. Remove it from val_interval."
                )
        super()._filter_by_field_value()

    def _fill_nan(self):
        """RecBole's, except for compact sequence columns (codes; an empty cell is already an empty sequence)."""
        if not self._seq_tables:
            return super()._fill_nan()
        for feat_name in self.feat_name_list:
            feat = getattr(self, feat_name)
            for field in feat:
                ftype = self.field2type[field]
                if ftype == FeatureType.TOKEN:
                    feat[field] = feat[field].fillna(value=0)
                elif ftype == FeatureType.FLOAT:
                    feat[field] = feat[field].fillna(value=feat[field].mean())
                elif not (feat is self.inter_feat and field in self._seq_tables):
                    dtype = np.int64 if ftype == FeatureType.TOKEN_SEQ else float
                    feat[field] = feat[field].apply(
                        lambda x: np.array([], dtype=dtype) if isinstance(x, float) else x
                    )

    def _del_col(self, feat, field):
        super()._del_col(feat, field)
        if feat is self.inter_feat:
            self._seq_tables.pop(field, None)

    def _dataframe_to_interaction(self, data):
        """Compact sequence columns become RecBole's padded tensors (``history_windows: materialized``) or stay
        encoded in a :class:`WindowedInteraction` (``lazy``); the other columns are converted by RecBole."""
        encoded_fields = [k for k in data if k in self._seq_tables] if data is self.inter_feat else []
        if not encoded_fields:
            return super()._dataframe_to_interaction(data)
        lazy = history_windows_mode(self.config) == "lazy"
        columns, tables = {}, {}
        for field in list(data):
            if field in encoded_fields:
                codes, table = compact.encoded_column(self._seq_tables[field], data[field].to_numpy(),
                                                      self.field2type[field])
                if lazy:
                    columns[field], tables[field] = codes, table
                else:
                    columns[field] = table[codes.long()]
            else:
                columns[field] = super()._dataframe_to_interaction(data[[field]]).interaction[field]
        self._seq_tables = {}
        return WindowedInteraction(columns, encoded=tables) if tables else Interaction(columns)


__all__ = ["CRSLoading"]
