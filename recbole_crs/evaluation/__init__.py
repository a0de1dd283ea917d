from recbole_crs.evaluation.candidates import (
    CANDIDATE_MODES,
    CandidateFilter,
    authors_protocol_metrics,
    check_mode,
    strict_ranks,
)

__all__ = ["CANDIDATE_MODES", "CandidateFilter", "authors_protocol_metrics", "check_mode", "strict_ranks"]
