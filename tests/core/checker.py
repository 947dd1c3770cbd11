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
    # The highest index where both hold the same term is the only one that
    # needs checking: identical prefixes there imply identical prefixes below.
    i = min(len(log_a), len(log_b))
    while i > 0 and log_a[i - 1].term != log_b[i - 1].term:
        i -= 1
    if i == 0 or log_a[:i] == log_b[:i]:
        return
    differ = next(j for j in range(i) if log_a[j] != log_b[j]) + 1
    raise SafetyViolation(
        f"Log Matching: {a} and {b} both hold an entry at index {i} "
        f"term {log_a[i - 1].term}, but differ at index {differ}: "
        f"{log_a[differ - 1]} vs {log_b[differ - 1]}"
    )


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
        # Per node, the fingerprint of its persisted log up to each index.
        self._fingerprints: dict[str, list[int]] = {}
        # State Machine Safety: index -> the entry applied there; applied
        # indexes are contiguous from 1, so this is also "committed so far".
        self.committed: dict[int, Entry] = {}
        self.last_applied: dict[str, int] = {}

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
        """``log`` is the node's whole persisted log after a write that
        replaced everything from index ``first_changed`` on."""
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
        for entry in log[first_changed - 1 :]:
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
        self, step: int, node: str, role: Role, term: int, log: Sequence[Entry]
    ) -> None:
        """A node's role and current_term as it reported them at ``step``;
        ``log`` is its persisted log at that moment."""
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
            self._became_leader(node, term, log)

    def _became_leader(self, node: str, term: int, log: Sequence[Entry]) -> None:
        other = self.leaders.setdefault(term, node)
        if other != node:
            raise SafetyViolation(
                f"Election Safety: {other} and {node} were both leader in "
                f"term {term}"
            )
        # Leader Completeness: whatever any server applied before this
        # election must be in the new leader's log (Raft §5.4).
        for index, entry in self.committed.items():
            held = log[index - 1] if index <= len(log) else None
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

    # --- reading the history -------------------------------------------

    def leader_of(self, term: int) -> str | None:
        return self.leaders.get(term)
