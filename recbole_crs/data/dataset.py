"""CRSDataset: a RecBole ``SequentialDataset`` that carries conversations.

Atomic-file format: ``docs/data-format.md``. On top of RecBole's sequential dataset this class

* reads the ``.inter`` file compactly (``inter_loading: compact``, :mod:`recbole_crs.data.compact`, through
  the hooks of :mod:`recbole_crs.data.loading`): pandas' C parser, token columns as categories, sequence
  columns dictionary-encoded; the same dataset as RecBole's loader at about a tenth of its memory (10M
  interactions load in ~2 GB);
* checks the files before reading them (readable, not empty, consistent with a converter's manifest) and the
  rows before the first epoch (no duplicate (user, item, timestamp) rows, every interacted item in ``.item``
  with attributes, a float ``timestamp``); each failure is one line: problem, file, fix
  (:mod:`recbole_crs.data.checks`);
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

import numpy as np
import torch
from recbole.data.dataset import SequentialDataset
from recbole.data.interaction import Interaction
from recbole.utils import FeatureSource, FeatureType

from recbole_crs.data.checks import CRSDataChecks
from recbole_crs.data.fields import SPLITS
from recbole_crs.data.loading import CRSLoading
from recbole_crs.data.turns import LAST_TURN_FIELD, TURN_FIELD, conversation_states
from recbole_crs.data.windows import history_windows_mode, materialize, windowed
from recbole_crs.errors import CRSDataError


class CRSDataset(CRSLoading, CRSDataChecks, SequentialDataset):
    """Sequential dataset with item attributes and per-interaction conversations.

    Config keys: ``ATTRIBUTE_FIELD`` (item ``token_seq``), ``CONFIRMED_FIELD`` (inter ``token_seq``),
    ``REJECTED_FIELD`` (optional inter ``token_seq``), ``CANDIDATE_FIELD`` (optional inter ``token_seq``),
    ``SPLIT_FIELD`` (optional inter ``token``), ``CONFIRMED_TURN_FIELD`` and ``REJECTED_TURN_FIELD``
    (optional inter ``float_seq``, the turn of each confirmed attribute / rejected item).

    Its life cycle, in RecBole's order: load the files (:meth:`_load_data`: check the files, read them with
    the hooks of :class:`~recbole_crs.data.loading.CRSLoading`, check the loaded rows), remap ids
    (:meth:`_init_alias` declares the shared id spaces), format and check the conversations, augment
    (:meth:`_change_feat_format`), split into per-turn evaluation states (:meth:`build`). The checks are
    :class:`~recbole_crs.data.checks.CRSDataChecks`.
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

    # ------------------------------------------------------------------ conversation fields
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

    def _turn_columns(self):
        """``[(list field, its turn field)]`` for the turn columns present in the .inter file."""
        pairs = [(self.confirmed_field, self.confirmed_turn_field), (self.rejected_field, self.rejected_turn_field)]
        return [(field, turns) for field, turns in pairs if turns and turns in self.inter_feat]

    @property
    def has_turn_columns(self):
        """Whether the .inter file gives the turn of each confirmed attribute / rejected item."""
        return bool(self._turn_columns())

    @property
    def loaded_rejected_field(self):
        """``REJECTED_FIELD`` if this dataset has that column, else None: whether the data holds rejected items, the
        one answer for the models, the evaluation and the conversation rankers."""
        field = self.rejected_field
        return field if field and field in self.field2type else None

    @property
    def n_attributes(self):
        """Number of attribute ids, padding (0) included."""
        return self.num(self.attribute_field)

    # ------------------------------------------------------------------ load, check, remap
    def _load_data(self, token, dataset_path):
        self._check_files(token, dataset_path)
        super()._load_data(token, dataset_path)
        self._check_loaded_rows()

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

    def __str__(self):
        info = [super().__str__()]
        if self.item_attributes is not None:
            n_without = int((self.item_attributes[1:] == 0).all(dim=1).sum())
        else:  # before the tables are built: the count taken while loading
            n_without = getattr(self, "_n_items_without_attributes", 0)
        info.append(f"The number of attributes: {self.n_attributes - 1}")
        info.append(f"Items without attributes: {n_without}")
        return "\n".join(info)