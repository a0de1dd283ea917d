from recbole_crs.evaluation.candidates import CANDIDATE_MODES, CandidateFilter, check_mode

__all__ = ["CANDIDATE_MODES", "CandidateFilter", "check_mode"]
