"""Log entries and the messages servers exchange (Raft Figure 2).

Every message names its ``source`` and ``dest`` by full address so the
runtime can route it; the other fields are named as in the paper.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .configuration import Configuration


class EntryType(enum.Enum):
    COMMAND = "command"
    CONFIG = "config"
    NOOP = "noop"
    # Users and tokens of the client API (consensus/access.py): replicated
    # like commands, applied by the state machine, opaque to the core.
    ACCESS = "access"
    # A put or delete of the key-value store (consensus/kv.py), applied
    # like a command (client sessions included), opaque to the core.
    KV = "kv"
    # For a project's own state part (consensus/parts.py): the command is
    # {"part": <name>, "data": ...}; applied like a command, opaque to the core.
    APP = "app"


@dataclass(frozen=True, slots=True)
class Entry:
    index: int
    term: int
    type: EntryType = EntryType.COMMAND
    # Client text for COMMAND, a Configuration's JSON for CONFIG, "" for NOOP,
    # an operation's JSON for ACCESS.
    command: str = ""
    # Optional client session: a repeat of (client_id, seq) applies once.
    # On a CONFIG entry: who asked for the change (issue 10), no session.
    client_id: str | None = None
    seq: int | None = None
    # The leader's wall clock (ms since the epoch) when it appended the
    # entry, from the runtime's Proposal (the core reads no clock). The
    # state machine ends idle client sessions by these (dissertation §6.3).
    # 0: none (NOOP entries, and entries from older versions).
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class SnapshotMetadata:
    """What a snapshot records besides the state machine's data
    (dissertation §5.1, Figure 5.1): the last entry it replaces, and the
    latest configuration as of that entry. All zero: no snapshot."""

    last_included_index: int = 0
    last_included_term: int = 0
    # The CONFIG entry holding ``configuration`` (at or before
    # last_included_index); 0 with the empty configuration: none.
    configuration_index: int = 0
    configuration: Configuration = Configuration()


NO_SNAPSHOT = SnapshotMetadata()


@dataclass(frozen=True, slots=True)
class Message:
    term: int
    source: str
    dest: str


@dataclass(frozen=True, slots=True)
class RequestVote(Message):
    last_log_index: int
    last_log_term: int
    # Dissertation §9.6: a pre-vote asks "would you vote for me at term?"
    # without anyone changing current_term.
    pre_vote: bool = False
    # Dissertation §3.10: sent after TimeoutNow, so voters ignore the
    # leader-stickiness rule of §4.2.3 for it.
    transfer: bool = False

    @property
    def candidate_id(self) -> str:
        return self.source


@dataclass(frozen=True, slots=True)
class RequestVoteReply(Message):
    vote_granted: bool
    pre_vote: bool = False


@dataclass(frozen=True, slots=True)
class AppendEntries(Message):
    prev_log_index: int
    prev_log_term: int
    entries: tuple[Entry, ...] = ()
    leader_commit: int = 0
    # Not in the paper: numbers the leader's requests within its term, so
    # the reply to the one request in flight is told from replies to
    # earlier ones (a request taken as lost and resent). 0: unnumbered.
    request_id: int = 0

    @property
    def leader_id(self) -> str:
        return self.source


@dataclass(frozen=True, slots=True)
class AppendEntriesReply(Message):
    success: bool
    # On success, the highest index known to match the leader's log.
    match_index: int = 0
    # Echo of the request's prev_log_index, so a stale reply is recognised.
    prev_log_index: int = 0
    # Raft §5.3 fast backtracking: on a failed consistency check, the term
    # of the follower's conflicting entry (0 if its log is too short) and
    # the first index it holds for that term (or its last_index + 1).
    conflict_term: int = 0
    conflict_index: int = 0
    # Echoes of the request's term and request_id. A request from an
    # earlier term than the reply's is refused for its term alone (Raft
    # §5.1) and says nothing about the follower's log; only a reply
    # echoing the request in flight frees it.
    request_term: int = 0
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class InstallSnapshot(Message):
    """Raft §7, dissertation Figure 5.3: the leader's latest snapshot, named
    by its metadata (Figure 5.1). The snapshot's data (the paper's offset,
    data and done) is the runtime's to transfer: it steps this on the
    follower once the whole snapshot is there and durable."""

    last_included_index: int
    last_included_term: int
    configuration_index: int = 0
    configuration: Configuration = Configuration()
    # As AppendEntries.request_id: numbers the leader's requests in its term.
    request_id: int = 0

    @property
    def leader_id(self) -> str:
        return self.source

    @property
    def metadata(self) -> SnapshotMetadata:
        return SnapshotMetadata(
            self.last_included_index,
            self.last_included_term,
            self.configuration_index,
            self.configuration,
        )


@dataclass(frozen=True, slots=True)
class InstallSnapshotReply(Message):
    # Echoes of the request's last_included_index, term and request_id:
    # a reply in the request's term means the follower now holds the
    # leader's log through last_included_index (Figure 5.3 has only term).
    last_included_index: int = 0
    request_term: int = 0
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class TimeoutNow(Message):
    """Dissertation §3.10: start an election now (leadership transfer)."""

    # The transfer's identity: the leader's last entry when it sent this,
    # which the target's log must still end with (see transfer.py). -1,
    # from a sender that did not say: never acted on.
    last_log_index: int = -1
    last_log_term: int = -1


@dataclass(frozen=True, slots=True)
class Unreachable(Message):
    """Local only, never sent: the runtime could not deliver to ``source``.

    Lets the leader resend at once on the next heartbeat instead of waiting
    for a reply that will not come. ``term`` is ignored.
    """


# Requests whose step() yields exactly one reply to their source.
REQUESTS = (RequestVote, AppendEntries, InstallSnapshot)
REPLIES = (RequestVoteReply, AppendEntriesReply, InstallSnapshotReply)
