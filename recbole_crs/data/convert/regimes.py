"""Which rows keep a conversation: ``--conversations all|targets`` and ``--train-conversations X``.

``all``: every row keeps its conversation. ``targets`` (the paper's regime: dialogues scarce, histories abundant):
only the evaluated rows and the last training row of a seeded subset of the training users keep one; every
other row is a plain interaction. :func:`leave_one_out_splits` marks the evaluated rows of a format without a
split of its own (``recbole``) the way the default ``eval_args`` evaluate them.
"""

import numpy as np

from recbole_crs.data.fields import EVALUATED_SPLITS, SPLITS, TRAIN_SPLIT
from recbole_crs.errors import ConversionError

ALL_CONVERSATIONS, TARGET_CONVERSATIONS = CONVERSATION_REGIMES = ("all", "targets")

_TRAIN_CONVERSATIONS_FIX = (
    "give a fraction in (0, 1] of the training users (e.g. 0.05; written with a decimal point) or a whole "
    "number >= 1 of users (e.g. 50)"
)


def parse_train_conversations(value):
    """``--train-conversations``: a fraction in (0, 1] of the training users, or a count >= 1 of users.

    A Python ``int`` or text that is a whole number (``"50"``) is a count; a ``float`` or other numeric text
    (``"0.05"``, ``"1.0"``) is a fraction. ``None`` means 1.0 (every training user). Returns an ``int`` count
    or a ``float`` fraction; anything else raises :class:`ConversionError` naming the option and the fix.
    """
    if value is None:
        return 1.0
    parsed = value
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = int(text)
        except ValueError:
            try:
                parsed = float(text)
            except ValueError:
                parsed = None
    if isinstance(parsed, bool) or not isinstance(parsed, (int, float)):
        parsed = None
    elif isinstance(parsed, int) and parsed < 1:
        parsed = None
    elif isinstance(parsed, float) and not 0.0 < parsed <= 1.0:
        parsed = None
    if parsed is None:
        raise ConversionError(f"--train-conversations {value!r} is out of range: {_TRAIN_CONVERSATIONS_FIX}.")
    return parsed


def check_conversation_regime(conversations, train_conversations):
    """Validate ``--conversations``/``--train-conversations``; return the parsed count or fraction."""
    if conversations not in CONVERSATION_REGIMES:
        raise ConversionError(
            f"--conversations {conversations!r} is not a regime: use 'all' (every row keeps its conversation) "
            "or 'targets' (evaluated rows and one training row per chosen user)."
        )
    if train_conversations is not None and conversations != TARGET_CONVERSATIONS:
        raise ConversionError(
            "--train-conversations only applies with --conversations targets: add --conversations targets, "
            "or drop --train-conversations (with --conversations all every row keeps its conversation)."
        )
    return parse_train_conversations(train_conversations)


def keep_target_conversations(rows, train_conversations, rng, report, keep_simulated=True):
    """``--conversations targets``: blank every conversation except the evaluated rows' and chosen users'.

    Called after every conversation of the ``all`` output was filled in, so the kept ones are exactly that
    output's. Eligible users: those with a training row whose last training row may keep its conversation
    (``keep_simulated=False``: only a real one, so a history row never gets one). The chosen users are the
    first ``k`` of one seeded permutation of the eligible users (``k`` = the count, or ``round(fraction * n)``),
    so with the same input and seed a smaller ``k`` chooses a subset of a larger one's users.
    """
    last_train = {}  # user -> index of the user's last training row (rows are sorted by user, then time)
    for index, row in enumerate(rows):
        if row.split == TRAIN_SPLIT:
            last_train[row.user] = index
    eligible = [user for user, index in last_train.items() if keep_simulated or not rows[index].simulated]
    n = len(eligible)
    if isinstance(train_conversations, int):
        if train_conversations > n:
            raise ConversionError(
                f"--train-conversations {train_conversations} asks for more users than the {n} training users "
                "whose last training row can keep a conversation: give at most that many, or a fraction."
            )
        k = train_conversations
    else:
        k = int(np.floor(train_conversations * n + 0.5))
    order = rng.permutation(n)
    kept = {last_train[eligible[int(i)]] for i in order[:k]}
    for index, row in enumerate(rows):
        if row.split not in EVALUATED_SPLITS and index not in kept:
            row.confirmed, row.rejected, row.confirmed_turns, row.rejected_turns = [], [], [], []
    report.conversations = TARGET_CONVERSATIONS
    report.eligible_users, report.chosen_users = n, k
    if k == 0:
        report.notes.append(
            f"--train-conversations {train_conversations} of {n} eligible training users rounds to 0: no "
            "training row carries a conversation"
        )


def leave_one_out_splits(rows):
    """Set ``row.split`` as the plugin's default ``eval_args`` (leave-one-out by time) evaluates ``rows``
    (:func:`leave_one_out_split_values`)."""
    for row, split in zip(rows, leave_one_out_split_values(rows)):
        row.split = split


def leave_one_out_split_values(rows):
    """The split the plugin's default ``eval_args`` (leave-one-out by time) gives each of ``rows``, in order.

    ``rows`` are sorted by user, then time. A user's first row has no history and is never a sequential
    target, so RecBole's leave-one-out applies to rows 2..n: the last is ``test`` if there are at least 2
    such targets (n >= 3), the second-to-last ``valid`` if there are at least 3 (n >= 4), the rest ``train``.
    For every user with n >= 4 rows (all of ml-100k) that is: last test, second-to-last valid, rest train.
    """
    train, valid, test = SPLITS
    values = []
    start = 0
    while start < len(rows):
        end = start
        while end < len(rows) and rows[end].user == rows[start].user:
            end += 1
        n = end - start
        user_values = [train] * n
        if n >= 3:
            user_values[-1] = test
        if n >= 4:
            user_values[-2] = valid
        values += user_values
        start = end
    return values
