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
