"""RaftNode: one server's Raft state machine (Raft Figure 2, §5; dissertation).

Pure: time enters only as tick(), randomness only through the given
random.Random, and every entry point returns a Ready for the runtime.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

from .configuration import Configuration
from .messages import Entry, EntryType, Message
from .ready import HardState, Ready, Role


@dataclass(frozen=True, slots=True)
class RaftConfig:
    id: str  # this server's full address, host:port
    # Raft §5.2: each election timeout is drawn at random from
    # [election_timeout_ticks, 2 * election_timeout_ticks).
    election_timeout_ticks: int = 10
    heartbeat_ticks: int = 2
    # Bounds on one AppendEntries, so a lagging follower catches up in steps.
    max_append_entries: int = 1024
    max_append_bytes: int = 1 << 20
    pre_vote: bool = True
    check_quorum: bool = True


@dataclass(frozen=True, slots=True)
class Proposal:
    command: str
    client_id: str | None = None
    seq: int | None = None
    type: EntryType = EntryType.COMMAND


@dataclass(frozen=True, slots=True)
class PeerProgress:
    match_index: int
    next_index: int
    recent_active: bool
    voter: bool


@dataclass(frozen=True, slots=True)
class Status:
    id: str
    role: Role
    term: int
    voted_for: str | None
    leader_id: str | None
    commit_index: int
    last_log_index: int
    last_log_term: int
    configuration: Configuration
    # Leader only: its view of every other member.
    progress: dict[str, PeerProgress] = field(default_factory=dict)


class NotLeader(Exception):
    """A proposal reached a server that is not (or not now) the leader."""

    def __init__(self, leader_id: str | None):
        super().__init__(leader_id)
        self.leader_id = leader_id


def bootstrap_entries(cluster: Sequence[str]) -> list[Entry]:
    """The log every server of a new cluster starts with: its configuration.

    Identical on every initial member (index 1, term 0), so Log Matching
    holds before any leader exists.
    """
    configuration = Configuration(voters=frozenset(cluster))
    return [Entry(1, 0, EntryType.CONFIG, configuration.to_json())]


class RaftNode:
    def __init__(
        self,
        config: RaftConfig,
        rng: random.Random,
        hard_state: HardState = HardState(),
        entries: Sequence[Entry] = (),
        applied_index: int = 0,
    ):
        """Restore a server from what it persisted.

        ``applied_index`` is an index known committed (the runtime's
        last_applied); committed_entries start after it.
        """
        raise NotImplementedError

    def tick(self) -> Ready:
        """Advance logical time by one tick (elections, heartbeats)."""
        raise NotImplementedError

    def step(self, message: Message) -> Ready:
        """Advance by one message from a peer (or a local Unreachable)."""
        raise NotImplementedError

    def propose(self, proposals: Sequence[Proposal]) -> Ready:
        """Append client proposals to the leader's log in one batch.

        The new entries are the last len(proposals) of
        ready.entries_to_persist. Raises NotLeader when not leader or while
        a leadership transfer is under way.
        """
        raise NotImplementedError

    def transfer_leadership(self, to: str | None = None) -> Ready:
        """Dissertation §3.10: hand leadership to ``to`` (None: the most
        up-to-date voter). Raises NotLeader if not leader, ValueError for
        an unknown or non-voting target."""
        raise NotImplementedError

    def status(self) -> Status:
        raise NotImplementedError
