"""CRSDataset: a RecBole ``SequentialDataset`` that carries conversations.

Atomic-file format: ``docs/data-format.md``. On top of RecBole's sequential dataset this class

* reads the ``.inter`` file compactly (``inter_loading: compact``, :mod:`recbole_crs.data.compact`): pandas'
  C parser, token columns as categories, sequence columns dictionary-encoded; the same dataset as RecBole's
  loader at about a tenth of its memory (10M interactions load in ~2 GB);
* checks the files before reading them (readable, not empty, consistent with a converter's manifest) and the
  rows before the first epoch (no duplicate (user, item, timestamp) rows, every interacted item in ``.item``
  with attributes, a float ``timestamp``); each failure is one line: problem, file, fix;
* validates the conversation fields (present, right type, known tokens, confirmed attributes belong to the
  target, rejected items never the target) and fails with a message that names the problem and the fix;
* keeps conversation fields as plain per-row fields: RecBole would list-augment every ``.inter`` field
  into ``[N, MAX_ITEM_LIST_LENGTH, seq_len]`` tensors, but a conversation belongs to its own target row
  only, so those tensors are pure waste (``benchmarks/dataset_memory.py`` measures the saving);
* exposes an item -> attributes table and an attribute -> items index as tensors
  (:attr:`item_attributes`, :attr:`attribute_item_mask`) for models, samplers and evaluation;
* optionally takes the train/valid/test split from a ``split`` column instead of ``eval_args``;
* evaluates conversations turn by turn: each validation and test row becomes one row per turn of its
  conversation (:mod:`recbole_crs.data.turns`), using the optional turn columns.
"""

import os

import numpy as np
import torch
from recbole.data.dataset import SequentialDataset
from recbole.data.interaction import Interaction
from recbole.utils import FeatureSource, FeatureType

from recbole_crs.artifacts import MANIFEST_SUFFIX, file_digests, manifest_problems
from recbole_crs.data import compact
from recbole_crs.data.fields import SPLITS
from recbole_crs.data.turns import LAST_TURN_FIELD, TURN_FIELD, conversation_states
from recbole_crs.data.windows import WindowedInteraction, history_windows_mode, materialize, windowed
from recbole_crs.errors import CRSInputError

# How many offending rows an error message quotes; the count is always given in full.
_EXAMPLES_IN_ERRORS = 3
# Row-wise checks decode encoded columns this many rows at a time (bounded memory at 10M rows).
_CHECK_CHUNK_ROWS = 1 << 18


class CRSDataError(CRSInputError):
    """Conversational data that cannot be used as given; the message says what to fix."""


def _examples(values):
    return ", ".join(repr(v) for v in list(values)[:_EXAMPLES_IN_ERRORS])


class CRSDataset(SequentialDataset):
    """Sequential dataset with item attributes and per-interaction conversations.

    Config keys: ``ATTRIBUTE_FIELD`` (item ``token_seq``), ``CONFIRMED_FIELD`` (inter ``token_seq``),
    ``REJECTED_FIELD`` (optional inter ``token_seq``), ``CANDIDATE_FIELD`` (optional inter ``token_seq``),
    ``SPLIT_FIELD`` (optional inter ``token``), ``CONFIRMED_TURN_FIELD`` and ``REJECTED_TURN_FIELD``
    (optional inter ``float_seq``, the turn of each confirmed attribute / rejected item).
    """

    def __init__(self, config):
        self.attribute_field = config["ATTRIBUTE_FIELD"]
        self.confirmed_field = config["CONFIRMED_FIELD"]
        self.rejected_field = config["REJECTED_FIELD"]
        self.candidate_field = config["CANDIDATE_FIELD"]
        self.split_field = config["SPLIT_FIELD"]
        self.confirmed_turn_field = config["CONFIRMED_TURN_FIELD"]
        self.rejected_turn_field = config["REJECTED_TURN_FIELD"]
        self.item_attributes = None
        self.attribute_item_mask = None
        super().__init__(config)

    # ------------------------------------------------------------------ loading (inter_loading: compact | recbole)
    def _get_preset(self):
        super()._get_preset()
        self._seq_tables = {}  # compact .inter sequence columns: {field: compact.SeqTable}, until formatted
        self._compact_inter = False

    def _load_feat(self, filepath, source):
        """The ``.inter`` file through :mod:`recbole_crs.data.compact` (``inter_loading: compact``), else RecBole's."""
        if source != FeatureSource.INTERACTION or compact.inter_loading_mode(self.config) != "compact":
            return super()._load_feat(filepath, source)
        header = self._read_header(filepath, source)
        if header is None:
            return super()._load_feat(filepath, source)
        seq_fields = [field for field, _, ftype in header if ftype in compact.SEQ_TYPES]
        blockers = compact.compact_blockers(self.config, seq_fields)
        if blockers:
            self.logger.info(f"inter_loading: RecBole's loader for {filepath} ({'; '.join(blockers)})")
            return super()._load_feat(filepath, source)
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

    def _read_header(self, filepath, source):
        """``[(field, 'field:type', FeatureType)]`` of the columns RecBole would load; None: let RecBole decide
        (no column to load, or a type it rejects: its own error)."""
        load_col, unload_col = self._get_load_and_unload_col(source)
        if load_col == set():
            return None
        separator = self.config["field_separator"]
        with open(filepath, "r", encoding=self.config["encoding"]) as f:
            head = f.readline()[:-1]
        header = []
        for field_type in head.split(separator):
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

    # ------------------------------------------------------------------ validation
    def _load_data(self, token, dataset_path):
        inter_file = os.path.join(dataset_path, f"{token}.inter")
        self._check_readable(dataset_path, inter_file, token)
        self._check_manifest(token, dataset_path)
        self._check_not_empty(inter_file)
        super()._load_data(token, dataset_path)
        self._check_fields_present()
        self._check_raw_tokens()
        self._check_items_known()
        self._check_items_have_attributes()
        self._check_no_duplicate_rows()

    def _check_readable(self, dataset_path, inter_file, token):
        """A missing file and an unreadable one are different problems with different fixes."""
        try:
            os.listdir(dataset_path)
        except FileNotFoundError:
            pass  # reported below as a missing interaction file
        except OSError as error:
            raise CRSDataError(
                f"cannot read '{dataset_path}': {error.strerror or error}. Make it a readable folder holding "
                f"{token}.inter and {token}.item (or set `data_path`)."
            ) from None
        try:
            os.stat(inter_file)
        except FileNotFoundError:
            raise CRSDataError(
                f"No interaction file '{inter_file}'. Put the dataset's atomic files in "
                f"'{dataset_path}/' (format: docs/data-format.md), or convert your data with "
                "`python -m recbole_crs.data.convert`, or set `data_path` to the folder holding "
                f"'{token}/'."
            ) from None
        except OSError as error:
            raise CRSDataError(f"cannot read '{inter_file}': {error.strerror or error}. Fix its permissions.") from None
        if not os.path.isfile(inter_file):
            raise CRSDataError(f"cannot read '{inter_file}': it is not a regular file. Replace it with the .inter file.")
        try:
            # Read once here: the manifest check and the checkpoints' data fingerprint use these digests.
            self._crs_file_digests = file_digests(self.config)
        except OSError as error:
            raise CRSDataError(
                f"cannot read '{error.filename or dataset_path}': {error.strerror or error}. Fix its permissions."
            ) from None

    def _check_manifest(self, token, dataset_path):
        """A converter writes ``<name>.manifest.json`` (sizes and sha256 of both files) before putting the files
        in place: files that differ from it come from an interrupted conversion (e.g. a new .item, an old .inter)."""
        problems = manifest_problems(dataset_path, token, self._crs_file_digests)
        if problems:
            raise CRSDataError(
                f"{token}{MANIFEST_SUFFIX} in '{dataset_path}' does not match the files ({'; '.join(problems)}): a "
                "conversion was interrupted and the files are mixed. Re-run the conversion."
            )

    def _check_not_empty(self, inter_file):
        rows = 0
        try:
            with open(inter_file, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if line.strip():
                        rows += 1
                        if rows == 2:
                            return
        except OSError as error:
            raise CRSDataError(f"cannot read '{inter_file}': {error.strerror or error}. Fix its permissions.") from None
        problem = "is empty" if rows == 0 else "has a header but no rows"
        raise CRSDataError(
            f"'{inter_file}' {problem}: it needs a 'name:type' header line and one line per interaction "
            "(docs/data-format.md). Re-run the conversion or fill the file."
        )

    def _check_items_known(self):
        """RecBole silently drops interactions whose item is not in .item (filter_inter_by_user_or_item)."""
        name = self.dataset_name
        known = set(self.item_feat[self.iid_field])
        items = self.inter_feat[self.iid_field]
        missing = ~items.isin(known)
        if missing.any():
            unknown = sorted(set(items[missing]))
            raise CRSDataError(
                f"{int(missing.sum())} rows of {name}.inter have items that are not in {name}.item (e.g. "
                f"{_examples(unknown)}; {len(unknown)} distinct): they would be dropped. Add those items with their "
                f"attributes to {name}.item, or remove those rows."
            )

    def _check_items_have_attributes(self):
        name = self.dataset_name
        attributes = self.item_feat[self.attribute_field]
        empty = attributes.apply(len) == 0
        self._n_items_without_attributes = int(empty.sum())
        if empty.any():
            items = list(self.item_feat[self.iid_field][empty])
            raise CRSDataError(
                f"{len(items)} items of {name}.item have no '{self.attribute_field}' (e.g. {_examples(items)}): a "
                "conversation cannot lead to them. Give them attributes, or remove them and their rows (the "
                "converters' --drop-items-without-attributes does both)."
            )

    def _check_no_duplicate_rows(self):
        """Repeated (user, item, timestamp) rows make a target its own history: metrics near 1.0 mean nothing."""
        if self.config["rm_dup_inter"] is not None or self.time_field not in self.inter_feat:
            return  # RecBole removes duplicates itself when rm_dup_inter is set
        name = self.dataset_name
        key = [self.uid_field, self.iid_field, self.time_field]
        duplicated = self.inter_feat.duplicated(subset=key, keep="first")
        if duplicated.any():
            examples = [tuple(row) for row in self.inter_feat.loc[duplicated, key].head(_EXAMPLES_IN_ERRORS).values]
            raise CRSDataError(
                f"{int(duplicated.sum())} rows of {name}.inter repeat an earlier row's (user, item, timestamp) (e.g. "
                f"{_examples(examples)}): a repeated target sits in its own history. Remove the duplicates "
                "(or set rm_dup_inter: first)."
            )

    def _optional_inter_fields(self):
        """Conversation fields that are configured and present in the .inter file."""
        return [
            field
            for field in (
                self.rejected_field,
                self.candidate_field,
                self.split_field,
                self.confirmed_turn_field,
                self.rejected_turn_field,
            )
            if field and field in self.inter_feat
        ]

    def crs_fields(self):
        """Per-row conversation fields; they are never list-augmented."""
        return [self.confirmed_field] + self._optional_inter_fields()

    def _check_fields_present(self):
        name = self.dataset_name
        if self.item_feat is None or self.attribute_field not in self.item_feat:
            raise CRSDataError(
                f"Item attribute field '{self.attribute_field}' not found in {name}.item. Add a column "
                f"'{self.attribute_field}:token_seq' to {name}.item, or set ATTRIBUTE_FIELD to the name "
                "of your item attribute column (and make sure `load_col` loads it)."
            )
        if self.confirmed_field not in self.inter_feat:
            raise CRSDataError(
                f"Conversation field '{self.confirmed_field}' not found in {name}.inter. Add a column "
                f"'{self.confirmed_field}:token_seq' with the attributes the user confirmed (turn "
                "order), or set CONFIRMED_FIELD to your column's name (and make sure `load_col` loads "
                "it). `python -m recbole_crs.data.convert recbole ...` simulates conversations for "
                "data that has none."
            )
        expected = {
            self.attribute_field: FeatureType.TOKEN_SEQ,
            self.confirmed_field: FeatureType.TOKEN_SEQ,
            self.rejected_field: FeatureType.TOKEN_SEQ,
            self.candidate_field: FeatureType.TOKEN_SEQ,
            self.split_field: FeatureType.TOKEN,
            self.confirmed_turn_field: FeatureType.FLOAT_SEQ,
            self.rejected_turn_field: FeatureType.FLOAT_SEQ,
            # RecBole sorts by the timestamp; a token timestamp is an id given in file order, not a time.
            self.time_field: FeatureType.FLOAT,
        }
        for field, ftype in expected.items():
            if field in self.field2type and self.field2type[field] != ftype:
                raise CRSDataError(
                    f"Field '{field}' has type {self.field2type[field].value}; it must be "
                    f"{ftype.value}. Fix its header in the atomic file (e.g. '{field}:{ftype.value}')."
                )
        self._check_turn_fields_present()

    def _turn_columns(self):
        """``[(list field, its turn field)]`` for the turn columns present in the .inter file."""
        pairs = [(self.confirmed_field, self.confirmed_turn_field), (self.rejected_field, self.rejected_turn_field)]
        return [(field, turns) for field, turns in pairs if turns and turns in self.inter_feat]

    def _check_turn_fields_present(self):
        """Turn columns come together: a state at turn t needs the turn of every confirmation and rejection."""
        name = self.dataset_name
        has = {field: bool(field) and field in self.inter_feat for field in
               (self.rejected_field, self.confirmed_turn_field, self.rejected_turn_field)}
        if has[self.rejected_turn_field] and not has[self.rejected_field]:
            raise CRSDataError(
                f"{name}.inter has '{self.rejected_turn_field}' but no '{self.rejected_field}' column it could "
                f"describe. Add the rejected items or drop the '{self.rejected_turn_field}' column."
            )
        needs_both = has[self.rejected_field] and (has[self.confirmed_turn_field] != has[self.rejected_turn_field])
        if has[self.rejected_turn_field] and not has[self.confirmed_turn_field] or needs_both:
            present, missing = (
                (self.confirmed_turn_field, self.rejected_turn_field)
                if has[self.confirmed_turn_field]
                else (self.rejected_turn_field, self.confirmed_turn_field)
            )
            raise CRSDataError(
                f"{name}.inter has turn column '{present}' but not '{missing}': per-turn evaluation needs the "
                f"turn of every confirmed attribute and every rejected item. Add '{missing}:float_seq' "
                "(docs/data-format.md), or drop both turn columns to score each conversation once."
            )

    def _check_raw_tokens(self):
        """Unknown tokens would silently become new ids after remapping; reject them here."""
        known_attributes = set(np.concatenate(list(self.item_feat[self.attribute_field]) or [[]]))
        self._check_tokens_known(self.confirmed_field, known_attributes, "attribute", "any item's attributes")
        known_items = set(self.item_feat[self.iid_field]) | set(self.inter_feat[self.iid_field].unique())
        for field in (self.rejected_field, self.candidate_field):
            if field and field in self.inter_feat:
                self._check_tokens_known(field, known_items, "item", f"{self.dataset_name}.item")
        if self.split_field and self.split_field in self.inter_feat:
            bad = sorted(set(self.inter_feat[self.split_field].unique()) - set(SPLITS))
            if bad:
                raise CRSDataError(
                    f"Column '{self.split_field}' holds {_examples(bad)}; allowed values are "
                    f"{', '.join(SPLITS)}."
                )

    def _seq_cells(self, field):
        """``(codes [N], cells)`` of an ``.inter`` sequence column before remapping: row ``i`` holds
        ``cells[codes[i]]`` (compact loading: its distinct cells; RecBole's: one cell per row)."""
        if field in self._seq_tables:
            return self.inter_feat[field].to_numpy(), self._seq_tables[field].seqs
        column = list(self.inter_feat[field])
        return np.arange(len(column)), column

    def _check_tokens_known(self, field, known, kind, where):
        codes, cells = self._seq_cells(field)
        if len(codes) == 0:
            return
        used = np.unique(codes)
        tokens = np.concatenate([cells[c] for c in used])
        unknown = sorted(set(tokens) - known)
        if unknown:
            bad_cells = used[[not set(cells[c]) <= known for c in used]]
            rows = int(np.isin(codes, bad_cells).sum())
            raise CRSDataError(
                f"{rows} rows of {self.dataset_name}.inter have '{field}' tokens that are not in "
                f"{where}: unknown {kind} {_examples(unknown)} ({len(unknown)} distinct). Fix the ids "
                f"or add the missing {kind}s to {self.dataset_name}.item."
            )

    def _init_alias(self):
        """Attributes share one id space in .item and .inter; rejected/candidate items share item ids."""
        alias = self.config["alias_of_item_id"] or []
        for field in (self.rejected_field, self.candidate_field):
            if field and field in self.inter_feat and field not in alias:
                alias.append(field)
        self.config["alias_of_item_id"] = alias
        super()._init_alias()
        self._set_alias("crs_attribute", [self.attribute_field, self.confirmed_field])
        self._rest_fields = np.setdiff1d(self._rest_fields, self.alias["crs_attribute"], assume_unique=True)

    # ------------------------------------------------------------------ tables for models and evaluation
    def _build_attribute_tables(self):
        # item_feat rows are indexed by remapped item id; row 0 is padding.
        self.item_attributes = self.item_feat[self.attribute_field].long()  # [n_items, max_attrs]
        n_attributes = self.num(self.attribute_field)
        mask = torch.zeros(n_attributes, self.item_num, dtype=torch.bool)
        items = torch.arange(self.item_num).unsqueeze(1).expand_as(self.item_attributes)
        mask[self.item_attributes, items] = True
        mask[0] = False  # padding is nobody's attribute
        self.attribute_item_mask = mask  # [n_attributes, n_items]

    @property
    def n_attributes(self):
        """Number of attribute ids, padding (0) included."""
        return self.num(self.attribute_field)

    def _rows_where(self, bad_of):
        """[K] long: the rows of ``inter_feat`` where ``bad_of(rows) -> [n] bool`` holds, computed a chunk of
        rows at a time so that encoded columns are never decoded for every row at once."""
        _, found = self._rows_where_each(lambda part: [(None, bad_of(part))])
        return found[0] if found else torch.zeros(0, dtype=torch.long)

    def _rows_where_each(self, problems_of):
        """``(names, [[K] long per problem])`` for ``problems_of(rows) -> [(name, [n] bool)]``, chunk by chunk."""
        names, found = None, None
        for start in range(0, len(self.inter_feat), _CHECK_CHUNK_ROWS):
            problems = problems_of(self.inter_feat[start:start + _CHECK_CHUNK_ROWS])
            if found is None:
                names, found = [name for name, _ in problems], [[] for _ in problems]
            for rows, (_, bad) in zip(found, problems):
                rows.append(bad.nonzero().flatten() + start)
        if found is None:
            return [], []
        return names, [torch.cat(rows) for rows in found]

    def _check_conversations_consistent(self):
        def confirms_foreign_attribute(part):
            confirmed = part[self.confirmed_field]  # [n, C]
            held = self.attribute_item_mask[confirmed, part[self.iid_field].unsqueeze(1)] | (confirmed == 0)
            return ~held.all(dim=1)

        bad_rows = self._rows_where(confirms_foreign_attribute)
        if len(bad_rows):
            raise CRSDataError(
                f"{len(bad_rows)} rows of {self.dataset_name}.inter confirm attributes their target item "
                f"does not have (rows {_examples(bad_rows.tolist())}, 0-based after loading). A user can "
                f"only confirm attributes of the item the conversation led to: fix '{self.confirmed_field}' "
                f"or the item's '{self.attribute_field}'."
            )
        if self.rejected_field and self.rejected_field in self.inter_feat:
            bad_rows = self._rows_where(
                lambda part: (part[self.rejected_field] == part[self.iid_field].unsqueeze(1)).any(dim=1)
            )
            if len(bad_rows):
                raise CRSDataError(
                    f"{len(bad_rows)} rows of {self.dataset_name}.inter list their own target in "
                    f"'{self.rejected_field}' (rows {_examples(bad_rows.tolist())}). A rejected item cannot "
                    "be the item the user chose: remove it from the rejected list."
                )
        self._check_turns_consistent()

    def _check_turns_consistent(self):
        """Each turn column is parallel to its list, holds whole turns >= 1, non-decreasing; turn 1 is the first."""
        name = self.dataset_name
        for field, turn_field in self._turn_columns():
            def problems(part, field=field, turn_field=turn_field):
                values, turns = part[field], part[turn_field]
                present = values != 0
                # Both lists are left-aligned, so equal counts mean the same positions (and the same width).
                found = [("do not have one turn per entry of '" + field + "'", present.sum(1) != (turns > 0).sum(1))]
                if turns.shape == present.shape:
                    found += [
                        ("hold turns that are not whole numbers", (turns != turns.round()).any(dim=1)),
                        ("hold turns that decrease along the list",
                         ((turns[:, 1:] < turns[:, :-1]) & (turns[:, 1:] > 0)).any(dim=1)),
                    ]
                    if field == self.confirmed_field:
                        found.append(("do not start at turn 1 (the initial attribute)",
                                      present[:, 0] & (turns[:, 0] != 1)))
                return found

            names, bad_rows = self._rows_where_each(problems)
            for problem, rows in zip(names, bad_rows):
                if len(rows):
                    raise CRSDataError(
                        f"{len(rows)} rows of {name}.inter have '{turn_field}' values that {problem} (rows "
                        f"{_examples(rows.tolist())}, 0-based after loading). '{turn_field}' gives, for "
                        f"each entry of '{field}' in order, the 1-based turn it happened in "
                        "(docs/data-format.md): fix the column or drop both turn columns."
                    )

    def _change_feat_format(self):
        # Skip SequentialDataset's version: format first, validate, then our own augmentation.
        super(SequentialDataset, self)._change_feat_format()
        self._build_attribute_tables()
        self._check_conversations_consistent()
        self.data_augmentation()

    # ------------------------------------------------------------------ sequential augmentation
    def _aug_presets(self):
        """Declare ``<field>_list`` for every inter field except the user and the conversation fields."""
        list_suffix = self.config["LIST_SUFFIX"]
        skip = set(self.crs_fields()) | {self.uid_field}
        for field in self.inter_feat:
            if field in skip:
                continue
            list_field = field + list_suffix
            setattr(self, f"{field}_list_field", list_field)
            ftype = self.field2type[field]
            is_seq = ftype in (FeatureType.TOKEN_SEQ, FeatureType.FLOAT_SEQ)
            is_token = ftype in (FeatureType.TOKEN, FeatureType.TOKEN_SEQ)
            list_ftype = FeatureType.TOKEN_SEQ if is_token else FeatureType.FLOAT_SEQ
            list_len = (self.max_item_list_len, self.field2seqlen[field]) if is_seq else self.max_item_list_len
            self.set_field_property(list_field, list_ftype, FeatureSource.INTERACTION, list_len)
        self.set_field_property(self.item_list_length_field, FeatureType.TOKEN, FeatureSource.INTERACTION, 1)

    def data_augmentation(self):
        """RecBole's augmentation, vectorised, without list fields for conversation columns.

        Row ``i`` of a user becomes a target whose history is the (at most ``MAX_ITEM_LIST_LENGTH``) rows
        before it, exactly as ``SequentialDataset.data_augmentation`` does.
        """
        self._aug_presets()
        self._check_field("uid_field", "time_field")
        self.sort(by=[self.uid_field, self.time_field], ascending=True)
        self._count_rows_without_history()
        max_len = self.max_item_list_len

        uids = self.inter_feat[self.uid_field].numpy()
        rows = np.arange(len(uids))
        first_of_user = np.ones(len(uids), dtype=bool)
        first_of_user[1:] = uids[1:] != uids[:-1]
        user_start = np.maximum.accumulate(np.where(first_of_user, rows, 0))
        target_index = rows[~first_of_user]
        seq_start = np.maximum(user_start[target_index], target_index - max_len)
        length = target_index - seq_start

        if history_windows_mode(self.config) == "lazy":  # windows built per batch: recbole_crs/data/windows.py
            self._lazy_augmentation(target_index, seq_start, length)
            return
        offsets = np.arange(max_len)
        in_history = offsets[None, :] < length[:, None]  # [M, L]
        history_rows = torch.from_numpy(np.where(in_history, seq_start[:, None] + offsets, 0))
        in_history = torch.from_numpy(in_history)

        new_data = self.inter_feat[target_index]
        new_dict = {self.item_list_length_field: torch.from_numpy(length.astype(np.int64))}
        skip = set(self.crs_fields()) | {self.uid_field}
        for field in list(self.inter_feat.interaction):
            if field in skip:
                continue
            values = self.inter_feat[field][history_rows]  # [M, L, ...]
            pad = in_history.view(in_history.shape + (1,) * (values.dim() - 2))
            new_dict[getattr(self, f"{field}_list_field")] = values * pad.to(values.dtype)
        new_data.update(Interaction(new_dict))
        self.inter_feat = new_data

    def _lazy_augmentation(self, target_index, seq_start, length):
        """The same rows as :meth:`data_augmentation`, their list fields kept as windows over one sequence per user."""
        skip = set(self.crs_fields()) | {self.uid_field}
        values = {getattr(self, f"{field}_list_field"): self.inter_feat[field]
                  for field in self.inter_feat.interaction if field not in skip}
        per_row = self.inter_feat[target_index]
        per_row.update(Interaction({self.item_list_length_field: torch.from_numpy(length.astype(np.int64))}))
        self.inter_feat = windowed(per_row, values, seq_start, self.max_item_list_len, self.item_list_length_field)

    def __getitem__(self, index, join=True):
        """Rows as a batch: with ``history_windows: lazy`` the list fields are built here, for these rows only."""
        df = materialize(self.inter_feat[index])
        return self.join(df) if join else df

    def _count_rows_without_history(self):
        """A user's first row never becomes a target; remember how many per split phase, to report it."""
        self._rows_without_history = {}
        if not (self.split_field and self.split_field in self.inter_feat):
            return
        uids = self.inter_feat[self.uid_field].numpy()
        first = np.ones(len(uids), dtype=bool)
        first[1:] = uids[1:] != uids[:-1]
        phases = self.inter_feat[self.split_field].numpy()[first]
        id_token = self.field2id_token[self.split_field]
        for phase_id, count in zip(*np.unique(phases, return_counts=True)):
            self._rows_without_history[str(id_token[phase_id])] = int(count)

    # ------------------------------------------------------------------ split
    def build(self):
        if not (self.split_field and self.split_field in self.inter_feat):
            datasets = super().build()
        else:
            datasets = self._build_by_split_field()
        self._check_evaluated_rows_have_conversations(datasets[1:])
        for dataset in datasets[1:]:
            dataset.inter_feat = self.conversation_states_of(dataset.inter_feat)
        return datasets

    @property
    def has_turn_columns(self):
        """Whether the .inter file gives the turn of each confirmed attribute / rejected item."""
        return bool(self._turn_columns())

    def conversation_states_of(self, inter_feat):
        """Rows of ``inter_feat``, one per turn of their conversation (:func:`recbole_crs.data.turns.conversation_states`).

        The one rule for both uses: every evaluated row, and fine-tuning's per-turn samples
        (:mod:`recbole_crs.data.finetune`). Without turn columns each row stays one state.
        """
        turn_of = dict(self._turn_columns())
        rejected = None
        if self.rejected_field and self.rejected_field in inter_feat:
            rejected = (self.rejected_field, turn_of.get(self.rejected_field))
        states = conversation_states(inter_feat, (self.confirmed_field, turn_of.get(self.confirmed_field)), rejected)
        self.set_field_property(TURN_FIELD, FeatureType.TOKEN, FeatureSource.INTERACTION, 1)
        self.set_field_property(LAST_TURN_FIELD, FeatureType.TOKEN, FeatureSource.INTERACTION, 1)
        return states

    def _build_by_split_field(self):
        self._change_feat_format()
        self._drop_unused_col()
        phase_of_row = self.inter_feat[self.split_field]
        token_id = self.field2token_id[self.split_field]
        datasets = []
        for phase in SPLITS:
            phase_id = token_id.get(phase, -1)
            datasets.append(self.copy(self.inter_feat[phase_of_row == phase_id]))
        for phase, dataset in zip(SPLITS, datasets):
            if self._rows_without_history.get(phase):
                self.logger.warning(
                    f"{self._rows_without_history[phase]} '{phase}' rows of {self.dataset_name} are a user's "
                    "first interaction: with no history they cannot be a sequential target and are not used."
                )
            if len(dataset) == 0:
                raise CRSDataError(
                    f"Column '{self.split_field}' of {self.dataset_name}.inter marks no evaluable "
                    f"'{phase}' rows (a user's first row has no history and is never a target). Mark some "
                    f"rows '{phase}', or drop the column to use `eval_args` splitting."
                )
        return datasets

    def _check_evaluated_rows_have_conversations(self, eval_datasets):
        for phase, dataset in zip(SPLITS[1:], eval_datasets):
            confirmed = dataset.inter_feat[self.confirmed_field]
            empty = (confirmed == 0).all(dim=1).nonzero().flatten()
            if len(empty):
                raise CRSDataError(
                    f"{len(empty)} of {len(dataset)} {phase} rows of {self.dataset_name} have an empty "
                    f"conversation ('{self.confirmed_field}'): conversation-aware evaluation needs at least "
                    "the initial attribute. Give every evaluated interaction a conversation (the converters "
                    "simulate one when the data has none)."
                )

    def __str__(self):
        info = [super().__str__()]
        if self.item_attributes is not None:
            n_without = int((self.item_attributes[1:] == 0).all(dim=1).sum())
        else:  # before the tables are built: the count taken while loading
            n_without = getattr(self, "_n_items_without_attributes", 0)
        info.append(f"The number of attributes: {self.n_attributes - 1}")
        info.append(f"Items without attributes: {n_without}")
        return "\n".join(info)
