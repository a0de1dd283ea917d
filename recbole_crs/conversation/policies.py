"""The policies by name (``--policy``): :data:`POLICIES` and :func:`make_policy`."""

from recbole_crs.conversation.baselines import AbsGreedy, MaxEntropy
from recbole_crs.conversation.score_guided import ScoreGuided
from recbole_crs.errors import CRSInputError

POLICIES = {policy.name: policy for policy in (AbsGreedy, MaxEntropy, ScoreGuided)}


def _spelling(name):
    return str(name).replace("-", "").replace("_", "").lower()


def policy_name(name):
    """The canonical name of a ``--policy`` value (case, ``-`` and ``_`` ignored: ``max-entropy`` =
    ``MaxEntropy``); an unknown name raises :class:`CRSInputError`."""
    for known in POLICIES:
        if _spelling(known) == _spelling(name):
            return known
    raise CRSInputError(f"--policy {name!r} is not a policy: use one of {', '.join(POLICIES)}.")


def make_policy(name, catalogue, topk=10, **parameters):
    """The policy ``name`` over ``catalogue``; ``parameters`` go to policies that take them (ScoreGuided)."""
    policy_class = POLICIES[policy_name(name)]
    if policy_class is ScoreGuided:
        return policy_class(catalogue, topk, **parameters)
    return policy_class(catalogue, topk)
