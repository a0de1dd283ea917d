"""The checks of a :class:`~recbole_crs.data.dataset.CRSDataset`: files, loaded rows, conversations.

Each failure is one :class:`CRSDataError` whose message is one line: the problem, the file, the fix. The
dataset runs them at three points of its life cycle, always in this order:

* :meth:`CRSDataChecks._check_files`, before the ``.inter`` file is read: readable (a missing file and an
  unreadable one are different problems), consistent with a converter's manifest, not empty, every line with the
  header's number of fields;
* :meth:`CRSDataChecks._check_no_duplicate_ids`, as ``.item`` / ``.user`` is read: one line per id;
* :meth:`CRSDataChecks._check_loaded_rows`, right after loading (raw tokens, before remapping): the
  conversation fields present with the right types, known tokens, every interacted item in ``.item`` with
  attributes, no duplicate (user, item, timestamp) rows;
* :meth:`CRSDataChecks._check_conversations_consistent`, once the columns are tensors and the attribute tables
  are built: confirmed attributes belong to the target, rejected items are never the target, turn columns are
  well formed; :meth:`CRSDataChecks._check_evaluated_rows_have_conversations` on the validation and test splits.

Row-wise checks read encoded columns (:mod:`recbole_crs.data.compact`) a chunk of rows at a time, so that
10M rows are never decoded at once.
"""

import os

import numpy as np
import torch
from recbole.utils import FeatureType

from recbole_crs.artifacts import MANIFEST_SUFFIX, file_digests, manifest_problems
from recbole_crs.data.atomic import UTF8_TEXT, ragged_lines, text_encoding
from recbole_crs.data.fields import SPLITS
from recbole_crs.errors import CRSDataError

# How many offending rows an error message quotes; the count is always given in full.
_EXAMPLES_IN_ERRORS = 3
# Row-wise checks decode encoded columns this many rows at a time (bounded memory at 10M rows).
_CHECK_CHUNK_ROWS = 1 << 18


def _examples(values):
    return ", ".join(repr(v) for v in list(values)[:_EXAMPLES_IN_ERRORS])


class CRSDataChecks:
    """The checks, mixed into ``CRSDataset``.

    They read the dataset's field names (``attribute_field``, ``confirmed_field``, ...), its
    ``_seq_tables`` (:class:`~recbole_crs.data.loading.CRSLoading`), ``_turn_columns()`` and, for the
    conversation checks, ``attribute_item_mask``.
    """

    def _check_files(self, token, dataset_path):
        """Before RecBole reads the files."""
        inter_file = os.path.join(dataset_path, f"{token}.inter")
        self._check_readable(dataset_path, inter_file, token)
        self._check_manifest(token, dataset_path)
        self._check_not_empty(inter_file)
        self._check_line_widths(inter_file)

    def _check_loaded_rows(self):
        """After loading, on the raw tokens."""
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

    def _check_line_widths(self, inter_file):
        """A line with missing trailing fields would be read as empty cells (an empty conversation), a longer one
        fails in pandas without naming the file."""
        separator = self.config["field_separator"] or "\t"
        if len(separator) != 1 or text_encoding(self.config["encoding"]) != UTF8_TEXT:
            return  # a regular-expression separator, or an encoding whose bytes ragged_lines cannot count
        expected, bad, found = ragged_lines(inter_file, separator)
        if bad:
            examples = ", ".join(f"line {line}: {fields}" for line, fields in found)
            raise CRSDataError(
                f"{bad} lines of '{inter_file}' do not have the header's {expected} fields ({examples}): a missing "
                "cell would be read as empty. Write every field of every line (an empty cell is nothing between "
                "two tabs)."
            )

    def _check_no_duplicate_ids(self, feat, field, filepath):
        """RecBole keeps the first line of an item (user) listed twice in .item (.user) and drops the other without
        a word; run on the file as read, before that."""
        if feat is None or field not in feat:
            return
        ids = feat[field]
        repeated = ids[ids.duplicated(keep=False) & ids.notna()]
        if len(repeated):
            first = repeated.iloc[0]
            lines = [int(index) + 2 for index in repeated.index[repeated == first]]  # RecBole's line numbers
            raise CRSDataError(
                f"'{filepath}' lists {field} {first!r} more than once (lines {', '.join(map(str, lines))}; "
                f"{repeated.nunique()} ids repeated): keep one line per id, with all its values."
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


__all__ = ["CRSDataChecks", "CRSDataError"]
