"""Conversation-aware metrics as pure tensor -> number code: no model, no dataloader, no trainer.

* :mod:`~recbole_crs.evaluation.candidates`: the ``crs_candidates`` modes, as ``[batch, n_items]`` masks of the
  items each evaluated conversation state may be recommended;
* :mod:`~recbole_crs.evaluation.ranking`: tie counts of the target among those candidates, the tie rules
  (``crs_ties``), metrics and their chance level;
* :mod:`~recbole_crs.evaluation.summary`: all turns / turn 1 / last turn / by turn, and the results table.

What runs a model over the evaluation data and feeds these functions is a trainer's job:
:class:`~recbole_crs.trainer.crs_evaluation.CRSEvaluationMixin` (``trainer/crs_evaluation.py``).
"""

from recbole_crs.evaluation.candidates import CANDIDATE_MODES, CandidateFilter, check_mode
from recbole_crs.evaluation.ranking import TIE_RULES, RankMetrics, check_tie_rule, tie_counts
from recbole_crs.evaluation.summary import format_results_table, summarize_by_turn, summarize_states

__all__ = [
    "CANDIDATE_MODES",
    "CandidateFilter",
    "check_mode",
    "TIE_RULES",
    "RankMetrics",
    "check_tie_rule",
    "tie_counts",
    "format_results_table",
    "summarize_by_turn",
    "summarize_states",
]
