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
