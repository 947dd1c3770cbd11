"""What the runtime reports: command results and node status snapshots."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CommandResult:
    index: int
    term: int


@dataclass(frozen=True, slots=True)
class ServerInfo:
    id: str
    voter: bool


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """A leader's view of one other member (empty on other roles)."""

    id: str
    voter: bool
    match_index: int
    next_index: int
    # Seconds since this node last had a reply from the peer; None: never.
    last_contact_s: float | None
    # While a snapshot is being sent to the peer (Raft §7): its last
    # included index, the bytes sent so far and the file's size.
    snapshot_index: int | None = None
    snapshot_bytes_sent: int = 0
    snapshot_size: int = 0


@dataclass(frozen=True, slots=True)
class NodeStatus:
    id: str
    role: str  # leader, follower, candidate, learner, none
    term: int
    leader: str | None
    commit_index: int
    last_applied: int
    last_log_index: int
    servers: tuple[ServerInfo, ...]
    peers: tuple[PeerInfo, ...] = ()
    # The last included index of the latest snapshot (Raft §7); 0: none.
    snapshot_index: int = 0
    # The first index the log holds (entries before it are compacted).
    first_log_index: int = 1
