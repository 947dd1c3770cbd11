"""Small hand-driven helpers for the test_node_* modules (no tests here).

Messages move only when a test says so; the randomized multi-node
simulation lives in simulation.py.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from consensus.core.configuration import Configuration
from consensus.core.messages import (
    NO_SNAPSHOT,
    AppendEntries,
    Entry,
    EntryType,
    InstallSnapshot,
    Message,
    SnapshotMetadata,
    Unreachable,
)
from consensus.core.node import Proposal, RaftConfig, RaftNode, bootstrap_entries
from consensus.core.ready import HardState, Ready, Role

ELECTION_TICKS = 10


def config_entry(
    voters: Iterable[str], learners: Iterable[str] = (), index: int = 1, term: int = 0
) -> Entry:
    configuration = Configuration(frozenset(voters), frozenset(learners))
    return Entry(index, term, EntryType.CONFIG, configuration.to_json())


def log_of(voters: Iterable[str], terms: Iterable[int]) -> list[Entry]:
    """A log drawn as in the paper's figures: index 1 holds the
    configuration at the first term, then one entry per term given."""
    terms = list(terms)
    entries = [config_entry(voters, term=terms[0])]
    for index, term in enumerate(terms[1:], start=2):
        entries.append(Entry(index, term, command=f"x{index}"))
    return entries


def make_node(
    id: str,
    entries: Iterable[Entry] = (),
    seed: int = 1,
    hard_state: HardState = HardState(),
    last_applied: int = 0,
    snapshot: SnapshotMetadata = NO_SNAPSHOT,
    **config: object,
) -> RaftNode:
    config.setdefault("election_timeout_ticks", ELECTION_TICKS)
    return RaftNode(
        RaftConfig(id, **config),
        random.Random(seed),
        hard_state,
        list(entries),
        last_applied,
        snapshot,
    )


@dataclass
class Store:
    """What the runtime would have persisted, applied from each Ready."""

    hard_state: HardState = HardState()
    entries: list[Entry] = field(default_factory=list)
    applied: list[Entry] = field(default_factory=list)
    snapshot: SnapshotMetadata = NO_SNAPSHOT
    # The last index the state machine holds, restores included.
    last_applied: int = 0

    def save(self, ready: Ready) -> None:
        if ready.hard_state is not None:
            self.hard_state = ready.hard_state
        if ready.snapshot is not None:
            # Dissertation Figure 5.3 rules 7-8: the log is discarded.
            self.snapshot, self.entries = ready.snapshot, []
            self.last_applied = ready.snapshot.last_included_index
        if ready.entries_to_persist:
            first = ready.entries_to_persist[0].index
            self.entries = [e for e in self.entries if e.index < first]
            self.entries += ready.entries_to_persist
        for entry in ready.committed_entries:
            # Exactly once and in order, across all calls.
            expected = self.last_applied + 1
            assert entry.index == expected, (entry, expected)
            self.applied.append(entry)
            self.last_applied = entry.index


class Net:
    """RaftNodes whose messages wait in ``pending`` until delivered."""

    def __init__(
        self,
        ids: Iterable[str] = ("a", "b", "c"),
        entries: Iterable[Entry] | None = None,
        seed: int = 1,
        **config: object,
    ):
        ids = list(ids)
        entries = list(entries) if entries is not None else bootstrap_entries(ids)
        self.config = config
        self.nodes: dict[str, RaftNode] = {}
        self.stores: dict[str, Store] = {}
        for n, id in enumerate(ids):
            self.add(id, entries, seed=seed + n)
        self.pending: list[Message] = []
        self.delivered: list[Message] = []
        self.down: set[str] = set()

    def add(
        self,
        id: str,
        entries: Iterable[Entry] = (),
        seed: int = 99,
        hard_state: HardState = HardState(),
    ) -> RaftNode:
        entries = list(entries)
        self.nodes[id] = make_node(
            id, entries, seed=seed, hard_state=hard_state, **self.config
        )
        self.stores[id] = Store(hard_state=hard_state, entries=entries)
        return self.nodes[id]

    def handle(self, id: str, ready: Ready) -> Ready:
        store = self.stores[id]
        store.save(ready)
        # The Ready stream reproduces the node's log exactly, past what it
        # has compacted.
        node = self.nodes[id]
        kept = [e for e in store.entries if e.index > node.log.snapshot_index]
        assert kept == list(node.log), id
        if ready.hard_state is not None:
            node = self.nodes[id]
            assert ready.hard_state == HardState(node.current_term, node.voted_for)
        self.pending.extend(ready.messages)
        return ready

    def tick(self, id: str, n: int = 1) -> None:
        for _ in range(n):
            self.handle(id, self.nodes[id].tick())

    def step(self, id: str, message: Message) -> Ready:
        return self.handle(id, self.nodes[id].step(message))

    def propose(self, id: str, *commands: str) -> Ready:
        proposals = [Proposal(c) for c in commands]
        return self.handle(id, self.nodes[id].propose(proposals))

    def deliver(self, drop: Callable[[Message], bool] = lambda m: False) -> int:
        """Deliver pending messages, and all they cause, until none is left.

        Messages to or from a down server, or that ``drop`` picks, are lost.
        """
        delivered = 0
        while self.pending:
            message = self.pending.pop(0)
            if message.dest in self.down or message.source in self.down:
                if (
                    isinstance(message, (AppendEntries, InstallSnapshot))
                    and message.source not in self.down
                ):
                    # As the runtime does when a peer does not answer.
                    unreachable = Unreachable(0, message.dest, message.source)
                    self.step(message.source, unreachable)
                continue
            if message.dest not in self.nodes or drop(message):
                continue
            self.step(message.dest, message)
            self.delivered.append(message)
            delivered += 1
        return delivered

    def elect(self, id: str) -> RaftNode:
        """Tick ``id`` alone until it wins an election."""
        node = self.nodes[id]
        for _ in range(4 * ELECTION_TICKS):
            self.tick(id)
            self.deliver()
            if node.role is Role.LEADER:
                return node
        raise AssertionError(f"{id} did not become leader")

    def heartbeat(self, id: str) -> None:
        """Tick the leader through one heartbeat interval and deliver."""
        self.tick(id, self.nodes[id].config.heartbeat_ticks)
        self.deliver()

    def restart(self, id: str, seed: int = 7) -> RaftNode:
        store = self.stores[id]
        applied = store.applied[-1].index if store.applied else 0
        # The state machine is rebuilt from the snapshot, then the log.
        store.last_applied = max(applied, store.snapshot.last_included_index)
        self.nodes[id] = make_node(
            id,
            store.entries,
            seed=seed,
            hard_state=store.hard_state,
            last_applied=store.last_applied,
            snapshot=store.snapshot,
            **self.config,
        )
        return self.nodes[id]

    def compact(self, id: str, index: int | None = None) -> SnapshotMetadata:
        """Snapshot ``id``'s state machine at last_applied, and compact its
        log through ``index`` (default: the snapshot's last entry)."""
        node, store = self.nodes[id], self.stores[id]
        snapshot = node.snapshot_metadata()
        store.snapshot = snapshot
        self.handle(id, node.compact(snapshot, index))
        return snapshot

    def commands(self, id: str) -> list[str]:
        return [
            e.command for e in self.stores[id].applied if e.type is EntryType.COMMAND
        ]
