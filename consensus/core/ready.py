"""Ready: what the runtime must persist, send and apply after a core call."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .messages import AppendEntries, Entry, Message, SnapshotMetadata


class Role(enum.Enum):
    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"
    # Dissertation §4.2.1: a non-voting member receiving the log.
    LEARNER = "learner"
    # Not in the configuration at all: waits to be added.
    NONE = "none"


@dataclass(frozen=True, slots=True)
class HardState:
    """Raft Figure 2's persistent state besides the log."""

    current_term: int = 0
    voted_for: str | None = None


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state the runtime reports; not persisted."""

    role: Role
    leader_id: str | None


@dataclass(frozen=True, slots=True)
class ReadState:
    """A read (the runtime's ``ctx``) that may be served once the state
    machine has applied through ``index`` (dissertation §6.4, ReadIndex)."""

    ctx: int
    index: int


@dataclass(slots=True)
class Ready:
    # Set when current_term or voted_for changed: persist before sending.
    hard_state: HardState | None = None
    # Persist before sending. Every stored entry with an index at or above
    # entries_to_persist[0].index is deleted first (Raft §5.3 truncation).
    entries_to_persist: list[Entry] = field(default_factory=list)
    # Send after persisting.
    messages: list[Message] = field(default_factory=list)
    # Newly committed entries, in log order, to apply after persisting.
    committed_entries: list[Entry] = field(default_factory=list)
    # Set when role or known leader changed.
    soft_state: SoftState | None = None
    # Set when a leader's snapshot replaced the log (dissertation Figure
    # 5.3, InstallSnapshot receiver rules 7-8). In the same transaction as
    # the rest: record it as the latest snapshot (its data is already
    # durable) and delete every stored entry before entries_to_persist;
    # restore the state machine from it before applying committed_entries,
    # which follow it. Nothing is sent before that is durable.
    snapshot: SnapshotMetadata | None = None
    # Reads confirmed by this call (read_index.py): serve each once the
    # state machine has applied through its index.
    read_states: list[ReadState] = field(default_factory=list)

    def merge(self, later: Ready) -> None:
        """Fold a later Ready into this one, as if both came from one call."""
        if later.hard_state is not None:
            self.hard_state = later.hard_state
        if later.snapshot is not None:
            # The snapshot replaced the whole log, and covers every entry
            # committed before it: none of them is applied on its own.
            self.snapshot = later.snapshot
            self.entries_to_persist = []
            self.committed_entries = []
        if later.entries_to_persist:
            first = later.entries_to_persist[0].index
            # A later truncation supersedes what this Ready would append.
            self.entries_to_persist = [
                e for e in self.entries_to_persist if e.index < first
            ] + later.entries_to_persist
        self.messages.extend(later.messages)
        self.committed_entries.extend(later.committed_entries)
        self.read_states.extend(later.read_states)
        if later.soft_state is not None:
            self.soft_state = later.soft_state

    def __bool__(self) -> bool:
        return bool(
            self.hard_state
            or self.entries_to_persist
            or self.messages
            or self.committed_entries
            or self.soft_state
            or self.snapshot
            or self.read_states
        )


def sendable_before_persist(ready: Ready, message: Message, durable_index: int) -> bool:
    """May the runtime send ``message`` before it persists ``ready``?

    Dissertation §10.2.1: a leader may send AppendEntries in parallel with
    its own disk write, provided it counts itself towards a majority only
    for entries already written. Hence never with a new term or vote to
    write (the term is not durable yet), and never with a leader_commit
    beyond what is on disk (a sole voter commits as it appends).
    ``durable_index`` is the last index stored before this Ready.
    """
    return (
        ready.hard_state is None
        and isinstance(message, AppendEntries)
        and message.leader_commit <= durable_index
    )
