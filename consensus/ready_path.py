"""Carrying out a Ready: the one function the runtime and the simulation share.

Imports no Django, threads, sockets or clocks, so the pure simulation in
tests/core runs exactly the path the runtime runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from .core.messages import Entry, Message
from .core.ready import HardState, Ready, sendable_before_persist


class Storage(Protocol):
    """Where a node's Raft state survives a crash (hashicorp/raft's
    LogStore and StableStore in one)."""

    @property
    def last_index(self) -> int:
        """The highest index on disk."""

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        last_applied: int | None,
    ) -> None:
        """Persist one Ready's state at once. Stored entries at and above
        ``entries[0].index`` are replaced (Raft §5.3). Raising means
        nothing of it may be taken as durable.

        ``last_applied`` is the last index this Ready commits, for a
        Storage that records it (the simulation's disk). One whose state
        machine records it with the applied state instead ignores it
        (consensus.storage: see BatchingStateMachine)."""


class Transport(Protocol):
    def send(self, message: Message) -> None:
        """Hand ``message`` to the network; never blocks on a peer."""


class StateMachine(Protocol):
    """The replicated state machine (hashicorp/raft's FSM)."""

    def apply(self, entry: Entry) -> object:
        """Apply one committed entry, in log order; the answer for its client."""


class BatchingStateMachine(StateMachine, Protocol):
    """A state machine that applies a Ready's committed entries at once, as
    hashicorp/raft's optional BatchingFSM: consensus.state_machine writes
    them and last_applied in one transaction."""

    def apply_batch(self, entries: Sequence[Entry]) -> list[object]:
        """Apply committed entries, in log order; their answers, in order."""


def apply_ready(
    ready: Ready,
    storage: Storage,
    transport: Transport,
    state_machine: StateMachine,
    on_durable: Callable[[], None] | None = None,
) -> list[object]:
    """Persist, send and apply ``ready``; return the state machine's
    answers for ``ready.committed_entries``, in order.

    Raft Figure 2: nothing that depends on the Ready leaves before it is
    durable, except what dissertation §10.2.1 lets a leader send while it
    writes (``sendable_before_persist``). ``on_durable`` runs once the Ready
    is stored and its messages are sent, before anything is applied: the
    runtime answers the peer requests it serves over HTTP there.
    """
    committed = ready.committed_entries
    durable_index = storage.last_index
    later = []
    # Dissertation §10.2.1: a leader's AppendEntries may leave before its
    # own disk write, overlapping the two (see the rule's docstring).
    for message in ready.messages:
        if sendable_before_persist(ready, message, durable_index):
            transport.send(message)
        else:
            later.append(message)
    if ready.hard_state is not None or ready.entries_to_persist or committed:
        # last_applied rides with the Ready that commits the entries, so a
        # restarted node does not apply (and print) them again. Every entry
        # applied below is on this node's disk by now (a follower's arrive
        # in a Ready saved before it is applied; a leader counts itself
        # only once its write is done), so applied state written after
        # this save never counts an entry a crash could lose.
        last_applied = committed[-1].index if committed else None
        storage.save(ready.hard_state, ready.entries_to_persist, last_applied)
    for message in later:
        transport.send(message)
    if on_durable is not None:
        on_durable()
    apply_batch = getattr(state_machine, "apply_batch", None)
    if apply_batch is not None:
        return apply_batch(committed) if committed else []
    return [state_machine.apply(entry) for entry in committed]
