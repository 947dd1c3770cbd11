"""Raft's safety properties (Figure 3) checked against a cluster's history.

A SafetyChecker is told what every server persists, reports and applies,
and raises SafetyViolation at the first event that breaks a property.
Standard library and consensus.core only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from consensus.core.messages import Entry
from consensus.core.ready import HardState, Role


class SafetyViolation(AssertionError):
    """A Raft safety property failed; the message names it and the servers."""


@dataclass(frozen=True, slots=True)
class RoleChange:
    """One line of the history: ``node`` was ``role`` in ``term`` from ``step``."""

    step: int
    node: str
    role: Role
    term: int


def check_log_matching(logs: Mapping[str, Sequence[Entry]]) -> None:
    """Raft §5.3 Log Matching, by comparing every pair of logs.

    ``logs[node][i]`` is the entry at index i + 1. If two logs hold an entry
    with the same index and term, they must be identical up to that index.
    """
    names = sorted(logs)
    for position, a in enumerate(names):
        for b in names[position + 1 :]:
            check_log_pair(a, logs[a], b, logs[b])


def check_log_pair(
    a: str, log_a: Sequence[Entry], b: str, log_b: Sequence[Entry]
) -> None:
    """Log Matching over the indexes both logs still hold: either may start
    after a compacted prefix (its entries carry their indexes)."""
    first = max(_first_index(log_a), _first_index(log_b))
    # The highest index where both hold the same term is the only one that
    # needs checking: identical prefixes there imply identical prefixes below.
    i = min(_last_index(log_a), _last_index(log_b))
    while i >= first and _at(log_a, i).term != _at(log_b, i).term:
        i -= 1
    if i < first:
        return
    oa, ob = _first_index(log_a), _first_index(log_b)
    if log_a[first - oa : i + 1 - oa] == log_b[first - ob : i + 1 - ob]:
        return
    for j in range(first, i + 1):
        if _at(log_a, j) != _at(log_b, j):
            raise SafetyViolation(
                f"Log Matching: {a} and {b} both hold an entry at index {i} "
                f"term {_at(log_a, i).term}, but differ at index {j}: "
                f"{_at(log_a, j)} vs {_at(log_b, j)}"
            )


def _first_index(log: Sequence[Entry]) -> int:
    return log[0].index if log else 1


def _last_index(log: Sequence[Entry]) -> int:
    return log[-1].index if log else 0


def _at(log: Sequence[Entry], index: int) -> Entry:
    return log[index - log[0].index]


def held_at(log: Sequence[Entry], snapshot: Sequence[Entry], index: int):
    """The entry a server holds at ``index``: in its log, or in the state
    its snapshot holds (``snapshot[i]``: the entry at index i + 1)."""
    if log and log[0].index <= index <= log[-1].index:
        return _at(log, index)
    if index <= len(snapshot):
        return snapshot[index - 1]
    return None


def digest_of(entries: Iterable[Entry], digest: int = 0) -> int:
    """A state machine's state after applying ``entries`` to ``digest``."""
    for entry in entries:
        digest = hash((digest, entry))
    return digest


class SafetyChecker:
    """Incremental checks of Raft Figure 3, plus durability of term and vote.

    Feed it events in the order they happen; every method raises
    SafetyViolation as soon as the history it has seen breaks a property.
    What a node persisted survives its restarts, so the per-node records
    here do too.
    """

    def __init__(self) -> None:
        self.history: list[RoleChange] = []
        # Election Safety: term -> the one server that led it.
        self.leaders: dict[int, str] = {}
        # Last persisted hard state and last reported (role, term) per node.
        self.hard_states: dict[str, HardState] = {}
        self.roles: dict[str, tuple[Role, int]] = {}
        # Granted (non pre-)votes seen on the wire: (voter, term) -> candidate.
        self.votes: dict[tuple[str, int], str] = {}
        # Log Matching over time: (index, term) -> (fingerprint of the log up
        # to and including that entry, first node seen holding it).
        self._prefixes: dict[tuple[int, int], tuple[int, str]] = {}
        # Per node, the fingerprint of its persisted log up to each index
        # (None below a snapshot it installed: it never held those).
        self._fingerprints: dict[str, list[int | None]] = {}
        # State Machine Safety: index -> the entry applied there; applied
        # indexes are contiguous from 1, so this is also "committed so far".
        self.committed: dict[int, Entry] = {}
        self.last_applied: dict[str, int] = {}
        # Linearizable reads (dissertation §6.4): ctx -> the highest index
        # any server had applied (so completed) when the read was asked.
        self._read_floors: dict[int, int] = {}
        # State machines: applied index -> (digest of the state there,
        # first node seen in it). Equal indexes, equal states.
        self._states: dict[int, tuple[int, str]] = {}

    # --- what a node persisted -----------------------------------------

    def persisted_hard_state(self, node: str, hard_state: HardState) -> None:
        """Terms never decrease; at most one vote per term (Figure 2)."""
        before = self.hard_states.get(node, HardState())
        if hard_state.current_term < before.current_term:
            raise SafetyViolation(
                f"{node} persisted current_term {hard_state.current_term} "
                f"after {before.current_term}: a term must never decrease"
            )
        if (
            hard_state.current_term == before.current_term
            and before.voted_for is not None
            and hard_state.voted_for != before.voted_for
        ):
            raise SafetyViolation(
                f"{node} voted for {before.voted_for} and then "
                f"{hard_state.voted_for} in term {hard_state.current_term}: "
                "at most one vote per term (Raft §5.2)"
            )
        self.hard_states[node] = hard_state

    def persisted_log(
        self, node: str, log: Sequence[Entry], first_changed: int
    ) -> None:
        """``log`` is the node's persisted log (from any index) after a
        write that replaced everything from index ``first_changed`` on."""
        fingerprints = self._fingerprints.setdefault(node, [])
        if first_changed <= len(fingerprints):
            self._check_truncation(node, first_changed)
            del fingerprints[first_changed - 1 :]
        if len(fingerprints) != first_changed - 1:
            raise SafetyViolation(
                f"{node} wrote entries from index {first_changed} with only "
                f"{len(fingerprints)} entries stored: a gap in its log"
            )
        previous = fingerprints[-1] if fingerprints else 0
        if previous is None:
            raise SafetyViolation(f"{node} wrote {first_changed} into its snapshot")
        for entry in (e for e in log if e.index >= first_changed):
            if entry.index != len(fingerprints) + 1:
                raise SafetyViolation(
                    f"{node} stored {entry} at position {len(fingerprints) + 1}"
                )
            previous = hash((previous, entry))
            fingerprints.append(previous)
            key = (entry.index, entry.term)
            first = self._prefixes.setdefault(key, (previous, node))
            if first[0] != previous:
                raise SafetyViolation(
                    f"Log Matching: {node} and {first[1]} each held an entry "
                    f"at index {entry.index} term {entry.term}, but their logs "
                    f"up to it differ; {node} has {entry}"
                )

    def installed(self, node: str, index: int, term: int) -> None:
        """``node`` replaced its whole log by a snapshot through the entry
        at (``index``, ``term``) (dissertation Figure 5.3, rules 7-8)."""
        current = self.hard_states.get(node, HardState()).current_term
        if self.leaders.get(current) == node:
            raise SafetyViolation(
                f"Leader Append-Only: {node}, leader of term {current}, "
                f"replaced its log by a snapshot through {index}"
            )
        prefix = self._prefixes.get((index, term))
        if prefix is None:
            raise SafetyViolation(
                f"{node} installed a snapshot through index {index} term "
                f"{term}, an entry no server ever held"
            )
        self._fingerprints[node] = [None] * (index - 1) + [prefix[0]]

    def _check_truncation(self, node: str, first_changed: int) -> None:
        # Leader Append-Only: a leader never deletes entries in its own log,
        # and no one may delete an entry it has applied (it is committed).
        # Only the leader of a term sends entries in it, so a server that led
        # its current term has no one to take entries from.
        term = self.hard_states.get(node, HardState()).current_term
        if self.leaders.get(term) == node:
            raise SafetyViolation(
                f"Leader Append-Only: {node}, leader of term {term}, deleted "
                f"its entries from index {first_changed}"
            )
        if first_changed <= self.last_applied.get(node, 0):
            raise SafetyViolation(
                f"{node} deleted entries from index {first_changed} though it "
                f"applied up to {self.last_applied[node]}: committed entries "
                "must never be removed"
            )

    # --- what a node reported --------------------------------------------

    def reported(
        self,
        step: int,
        node: str,
        role: Role,
        term: int,
        log: Sequence[Entry],
        snapshot: Sequence[Entry] = (),
    ) -> None:
        """A node's role and current_term as it reported them at ``step``;
        ``log`` is its persisted log at that moment (from any index), and
        ``snapshot`` the entries its persisted snapshot holds."""
        before = self.roles.get(node)
        if before == (role, term):
            return
        if before is not None and term < before[1]:
            raise SafetyViolation(
                f"{node} reports term {term} after term {before[1]}: "
                "a term must never decrease, restarts included"
            )
        self.roles[node] = (role, term)
        self.history.append(RoleChange(step, node, role, term))
        if role is Role.LEADER:
            self._became_leader(node, term, log, snapshot)

    def _became_leader(
        self, node: str, term: int, log: Sequence[Entry], snapshot: Sequence[Entry]
    ) -> None:
        other = self.leaders.setdefault(term, node)
        if other != node:
            raise SafetyViolation(
                f"Election Safety: {other} and {node} were both leader in "
                f"term {term}"
            )
        # Leader Completeness: whatever any server applied before this
        # election must be in the new leader's log (Raft §5.4), or in the
        # snapshot that replaced its prefix (Raft §7).
        for index, entry in self.committed.items():
            held = held_at(log, snapshot, index)
            if held != entry:
                raise SafetyViolation(
                    f"Leader Completeness: {node} became leader of term {term} "
                    f"without committed entry {entry}; it holds {held}"
                )

    def granted_vote(self, voter: str, term: int, candidate: str) -> None:
        """A vote granted on the wire (not a pre-vote)."""
        other = self.votes.setdefault((voter, term), candidate)
        if other != candidate:
            raise SafetyViolation(
                f"{voter} granted its term-{term} vote to both {other} and "
                f"{candidate} (Raft §5.2)"
            )

    # --- what a node applied -------------------------------------------

    def applied(self, node: str, entries: Iterable[Entry]) -> None:
        """State Machine Safety: indexes 1, 2, 3... once each, in order, and
        the same entry at an index on every server."""
        last = self.last_applied.get(node, 0)
        for entry in entries:
            if entry.index != last + 1:
                raise SafetyViolation(
                    f"{node} applied index {entry.index} after {last}: each "
                    "index must be applied once, in order"
                )
            first = self.committed.setdefault(entry.index, entry)
            if first != entry:
                raise SafetyViolation(
                    f"State Machine Safety: {node} applied {entry} at index "
                    f"{entry.index}, another server applied {first}"
                )
            last = entry.index
            self.last_applied[node] = last

    # --- linearizable reads ----------------------------------------------

    def read_registered(self, ctx: int) -> None:
        self._read_floors[ctx] = len(self.committed)

    def read_confirmed(self, node: str, ctx: int, index: int) -> None:
        """A read served through ``index`` must see every write completed
        before it was asked: one applied anywhere (a client hears of a
        command once the leader applied it). Once only."""
        floor = self._read_floors.pop(ctx, None)
        if floor is None:
            raise SafetyViolation(f"{node} confirmed read {ctx} twice or unasked")
        if index < floor:
            raise SafetyViolation(
                f"{node} confirmed read {ctx} at index {index}, but index "
                f"{floor} was applied before it was asked: a stale read "
                "(dissertation §6.4)"
            )

    def restored(self, node: str, index: int, state: Sequence[Entry]) -> None:
        """``node``'s state machine was reset to a snapshot whose state is
        the entries ``state`` (1 to ``index``): never back (Figure 5.3 rule
        8 applies only a newer snapshot), and State Machine Safety for every
        entry it holds."""
        last = self.last_applied.get(node, 0)
        if index <= last or len(state) != index:
            raise SafetyViolation(
                f"{node} restored a snapshot through {index} ({len(state)} "
                f"entries) after applying {last}"
            )
        for entry in state:
            first = self.committed.setdefault(entry.index, entry)
            if first != entry:
                raise SafetyViolation(
                    f"State Machine Safety: {node} restored a snapshot with "
                    f"{entry} at index {entry.index}, another server applied "
                    f"{first}"
                )
        self.last_applied[node] = index

    def state_at(self, node: str, index: int, digest: int) -> None:
        """``node``'s state machine, at applied index ``index``, has state
        ``digest``: every server's must be the same there, whether it got
        there by applying entries, restoring a snapshot or restarting."""
        first = self._states.setdefault(index, (digest, node))
        if first[0] != digest:
            raise SafetyViolation(
                f"State machines differ: {node} and {first[1]} at applied "
                f"index {index}"
            )

    # --- reading the history -------------------------------------------

    def leader_of(self, term: int) -> str | None:
        return self.leaders.get(term)
