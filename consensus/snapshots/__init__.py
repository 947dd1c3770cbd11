"""Snapshot files of the applied state, their transfer and their policy
(issue 9). Only restore and compaction write the Raft database."""

from .policy import SnapshotPolicy
from .store import SnapshotMeta, SnapshotStore

# consensus.snapshots.service.Snapshots (what the runtime owns) imports the
# ORM and is not imported here, so the store and policy stay Django-free.
__all__ = ["SnapshotMeta", "SnapshotPolicy", "SnapshotStore"]
