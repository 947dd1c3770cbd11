"""When to take a snapshot and how much log to keep behind it: pure
arithmetic, no clock or I/O (policy_from_settings reads Django's settings)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SnapshotPolicy:
    """A snapshot every ``entries`` applied entries; the log keeps
    ``trailing`` entries at and below the snapshot's index, so a follower
    just behind is caught up with AppendEntries rather than a snapshot."""

    entries: int = 10_000
    trailing: int = 5_000

    def __post_init__(self):
        if self.entries < 1 or self.trailing < 0:
            raise ValueError(f"bad snapshot policy: {self}")

    def should_snapshot(self, last_applied: int, snapshot_index: int) -> bool:
        """Whether ``last_applied`` is far enough past the latest snapshot
        (``snapshot_index``, 0 if none) for a new one."""
        return last_applied - snapshot_index >= self.entries

    def compact_through(self, snapshot_index: int, first_log_index: int = 1) -> int:
        """The highest log index that may be deleted once a snapshot at
        ``snapshot_index`` is durable; below ``first_log_index`` (nothing
        to delete) if the log is already that short."""
        return max(first_log_index - 1, snapshot_index - self.trailing)


def policy_from_settings() -> SnapshotPolicy:
    """RAFT_SNAPSHOT_ENTRIES and RAFT_SNAPSHOT_TRAILING as a policy."""
    from django.conf import settings

    return SnapshotPolicy(
        settings.RAFT_SNAPSHOT_ENTRIES, settings.RAFT_SNAPSHOT_TRAILING
    )
