"""Rankers: a trained model of this plugin (or of RecBole) scoring a batch of conversation states.

:class:`ModelRanker` turns a :class:`~recbole_crs.conversation.environment.ConversationView` into the
``Interaction`` the model reads when it is evaluated, and returns ``model.full_sort_predict`` as
``[B, n_items]`` scores. Each model takes what it reads and ignores the rest:

* ``CRSFinetune`` (the model CRSPretrain ends with): the history and the accepted attributes in the order the
  user gave them (the opening one first) as ``confirmed_attributes`` (its attribute Transformer reads the
  first ``max_attribute_length``);
* ``AttrFM`` (EAR's FM): the user and the accepted attributes;
* RecBole's sequential models (SASRec, GRU4Rec, ...): the history only;
* ``Pop``: nothing (training counts).

The rejected items go in as ``rejected_items`` (none of the models above scores with them; CRSFinetune reads
them only in its training loss). Rejected attributes are never an input: no model here learned to read them.

The history is the user's training interactions (:mod:`recbole_crs.conversation.histories`), never an
evaluated row's window. This is the top floor of the package: it wraps trained models.
"""

import torch
from recbole.data.interaction import Interaction


class ModelRanker:
    """Scores of a trained ``model`` for conversation states of ``dataset`` (a CRSDataset).

    Args:
        model: a RecBole recommender in eval mode or not (scoring switches it to eval and back).
        dataset: the dataset the model was trained on (for its field names).
        histories: :class:`~recbole_crs.conversation.histories.Histories` of the training rows.
    """

    def __init__(self, model, dataset, histories):
        self.model = model
        self.name = type(model).__name__
        self.histories = histories
        self.user_field = dataset.uid_field
        self.item_list_field = dataset.iid_field + dataset.config["LIST_SUFFIX"]
        self.length_field = dataset.item_list_length_field
        self.confirmed_field = dataset.confirmed_field
        self.rejected_field = dataset.loaded_rejected_field
        self.device = next(model.parameters(), torch.empty(0)).device

    def interaction(self, view):
        """The model input of the states of ``view``."""
        history, length = self.histories.of(view.users)
        # A user without training history reads one padding item (RecBole's models index position length - 1).
        columns = {
            self.user_field: view.users,
            self.item_list_field: history,
            self.length_field: length.clamp(min=1),
            self.confirmed_field: view.accepted,
        }
        if self.rejected_field:
            columns[self.rejected_field] = view.rejected_items
        return Interaction(columns)

    @torch.no_grad()
    def scores(self, view):
        was_training = self.model.training
        self.model.eval()
        try:
            scores = self.model.full_sort_predict(self.interaction(view).to(self.device))
        finally:
            self.model.train(was_training)
        return scores.reshape(len(view), -1).float().cpu()
