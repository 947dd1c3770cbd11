"""Snapshot files of the applied state, their transfer and their policy
(issue 9). Only restore and compaction write the Raft database."""

from .policy import SnapshotPolicy
from .store import SnapshotMeta, SnapshotStore

__all__ = ["SnapshotMeta", "SnapshotPolicy", "SnapshotStore"]
