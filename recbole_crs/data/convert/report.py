"""The report of a conversion: what it read, kept, dropped (and why) and wrote; printed by the command line."""

from collections import Counter
from dataclasses import dataclass, field

from recbole_crs.data.convert.regimes import ALL_CONVERSATIONS
from recbole_crs.data.fields import SPLITS

# The key of the rows (and users) of a dataset written without a split column.
UNSPLIT = "all"

@dataclass
class ConversionReport:
    """What a conversion read, kept, dropped (and why) and wrote."""

    converter: str
    out_dir: str = ""
    name: str = ""
    records_read: int = 0
    records_kept: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> records skipped
    rows: Counter = field(default_factory=Counter)  # split (or UNSPLIT) -> .inter rows written
    items: int = 0
    attributes: int = 0
    notes: list = field(default_factory=list)  # other things the user should know (counts included)
    real_conversations: dict = field(default_factory=dict)
    simulated_conversations: dict = field(default_factory=dict)
    conversations: str = ALL_CONVERSATIONS  # the --conversations regime
    # split (or UNSPLIT) -> rows of that split whose written conversation is not empty
    conversation_rows: Counter = field(default_factory=Counter)
    # split (or UNSPLIT) -> users with rows of that split
    users: Counter = field(default_factory=Counter)
    # with --conversations targets: training users that could carry one / were chosen
    # (see regimes.keep_target_conversations)
    eligible_users: int = 0
    chosen_users: int = 0
    seconds: float = 0.0
    files: list = field(default_factory=list)

    def __str__(self):
        lines = [
            f"[{self.converter}] wrote {self.name!r} to {self.out_dir} in {self.seconds:.2f} s",
            f"  records: {self.records_read} read, {self.records_kept} kept, "
            f"{sum(self.skipped.values())} skipped",
        ]
        lines += [f"    skipped ({reason}): {count}" for reason, count in sorted(self.skipped.items())]
        rows = ", ".join(f"{split} {count}" for split, count in sorted(self.rows.items(), key=_split_order))
        lines.append(f"  .inter rows: {sum(self.rows.values())} ({rows})")
        lines.append(f"  .item rows: {self.items} items, {self.attributes} distinct attributes")
        with_conversation = ", ".join(
            f"{split} {self.conversation_rows[split]} of {count} ({self.users[split]} users)"
            for split, count in sorted(self.rows.items(), key=_split_order)
        )
        lines.append(f"  rows with a conversation: {with_conversation}")
        if self.conversations != ALL_CONVERSATIONS:
            lines.append(
                f"  --conversations {self.conversations}: every evaluated row keeps its conversation; the last "
                f"training row of {self.chosen_users} of {self.eligible_users} eligible training users keeps "
                "one; every other row is a plain interaction"
            )
        for label, stats in (("real", self.real_conversations), ("simulated", self.simulated_conversations)):
            if stats.get("conversations"):
                lines.append(f"  {label} conversations: " + _format_stats(stats))
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _split_order(pair):
    return (SPLITS.index(pair[0]) if pair[0] in SPLITS else len(SPLITS), pair[0])


def _format_stats(stats):
    return (
        f"{stats['conversations']}, confirmed attributes mean {stats['confirmed_mean']:.2f} "
        f"(min {stats['confirmed_min']}, max {stats['confirmed_max']}), rejected items mean "
        f"{stats['rejected_items_mean']:.2f}"
        + (
            f", turns mean {stats['turns_mean']:.2f}, success {stats['success_rate']:.3f}"
            if "turns_mean" in stats
            else ""
        )
    )
