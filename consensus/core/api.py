"""The values RaftNode takes and gives besides messages and Ready.

RaftConfig, Proposal, Status, NotLeader and the refusals are what the
runtime codes against; node.py re-exports them. Standard library only.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from .configuration import Configuration
from .messages import Entry, EntryType
from .ready import Role

# RaftConfig.thrifty_max_lag's default: a waiting voter's catch-up fits in
# one AppendEntries of max_append_entries.
THRIFTY_MAX_LAG = 1024


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
    # Thrifty replication (leader.py, "Thrifty replication"): new entries go
    # at once only to as many voters as a commit needs; the others get them
    # with the next heartbeat. Off: every peer at once, as in Raft §5.3.
    thrifty: bool = False
    # How far behind the leader's log a voter may fall while it waits: the
    # runtime keeps it within the entries a snapshot leaves in the log, so
    # that a waiting voter is never sent a snapshot.
    thrifty_max_lag: int = THRIFTY_MAX_LAG


@dataclass(frozen=True, slots=True)
class Proposal:
    command: str
    client_id: str | None = None
    seq: int | None = None
    type: EntryType = EntryType.COMMAND
    # The proposer's wall clock in ms, copied into the entry (Entry's field).
    timestamp_ms: int = 0


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
    # The latest CONFIG entry, which holds ``configuration``: the one in
    # force, committed or not (dissertation §4.1). 0: the log holds none.
    configuration_index: int = 0
    configuration_term: int = 0  # 0 also once its entry is compacted
    # The last included index of the node's latest snapshot (§5.1); 0: none.
    snapshot_index: int = 0
    # The first index the log holds; the entries before it are compacted.
    first_log_index: int = 1
    # Leader only: the voter leadership is being handed to (dissertation
    # §3.10), or None.
    transfer_target: str | None = None
    # Leader only: its view of every other member.
    progress: dict[str, PeerProgress] = field(default_factory=dict)


class NotLeader(Exception):
    """A proposal reached a server that is not (or not now) the leader."""

    def __init__(self, leader_id: str | None):
        super().__init__(leader_id)
        self.leader_id = leader_id


class ChangeRefusal(enum.Enum):
    """Why a leader refuses a CONFIG entry (dissertation chapter 4)."""

    IN_PROGRESS = "a configuration change is already in progress"
    LEADER_NOT_READY = "leader has not committed an entry of its term yet"
    MALFORMED = "malformed configuration"
    NOT_SINGLE_SERVER = "a change may add or remove only one voter at a time"
    NO_VOTERS = "a configuration needs at least one voter"


class TransferRefusal(enum.Enum):
    """Why a leader refuses a leadership transfer (dissertation §3.10)."""

    UNKNOWN_SERVER = "not a member of the configuration"
    NOT_A_VOTER = "not a voter"
    NO_OTHER_VOTER = "no other voter to transfer leadership to"


class Refused(ValueError):
    """The leader refused a request the protocol forbids now; nothing was
    appended or started. A ValueError, as these refusals were before they
    were typed; ``reason`` says which rule refused."""

    def __init__(self, reason: enum.Enum, detail: str = ""):
        super().__init__(detail or reason.value)
        self.reason = reason


class MembershipChangeRefused(Refused):
    """propose() refused a CONFIG entry; ``reason`` is a ChangeRefusal."""

    reason: ChangeRefusal


class TransferRefused(Refused):
    """transfer_leadership() refused its target; ``reason`` is a
    TransferRefusal."""

    reason: TransferRefusal


def bootstrap_entries(cluster: Sequence[str]) -> list[Entry]:
    """The log every server of a new cluster starts with: its configuration.

    Identical on every initial member (index 1, term 0), so Log Matching
    holds before any leader exists.
    """
    configuration = Configuration(voters=frozenset(cluster))
    return [Entry(1, 0, EntryType.CONFIG, configuration.to_json())]
