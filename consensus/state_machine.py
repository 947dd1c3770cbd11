"""The replicated state machine: the original toy's list of messages.

Applying ``print`` logs every message so far, ``count`` logs how many;
applying a membership change logs ``Added new peer`` / ``Removed peer``.
(client_id, seq) pairs make a command apply once however often it reached
the log (dissertation §6.3).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .core.configuration import Configuration
from .core.messages import Entry, EntryType

event_log = logging.getLogger("raft")


@dataclass(frozen=True, slots=True)
class Applied:
    """The answer for an applied entry: its own, or the first copy's."""

    index: int
    term: int


class StateMachine:
    def __init__(self, node_id: str | None = None):
        # Membership changes are announced only by members of the new
        # configuration (None: always, for tests).
        self.node_id = node_id
        self.messages: list[str] = []
        # (client_id, seq) -> the first entry that carried it.
        self._sessions: dict[tuple[str, int], Applied] = {}
        self.last_applied = 0  # invariant: last_applied <= commit_index
        # The latest configuration applied; None before the first one.
        self.configuration: Configuration | None = None

    def lookup(self, client_id: str | None, seq: int | None) -> Applied | None:
        """The first answer for an already applied (client_id, seq)."""
        if client_id is None or seq is None:
            return None
        return self._sessions.get((client_id, seq))

    def apply(self, entry: Entry, replay: bool = False) -> Applied:
        """Apply one committed entry; ``replay`` rebuilds state silently
        after a restart."""
        assert entry.index == self.last_applied + 1, (entry, self.last_applied)
        self.last_applied = entry.index
        answer = Applied(entry.index, entry.term)
        if entry.type is EntryType.CONFIG:
            self._apply_configuration(entry, replay)
        if entry.type is not EntryType.COMMAND:
            return answer
        if entry.client_id is not None and entry.seq is not None:
            key = (entry.client_id, entry.seq)
            first = self._sessions.get(key)
            if first is not None:
                return first
            self._sessions[key] = answer
        self.messages.append(entry.command)
        if not replay:
            self._announce(entry.command)
        return answer

    def _apply_configuration(self, entry: Entry, replay: bool) -> None:
        try:
            new = Configuration.from_json(entry.command)
        except (ValueError, KeyError, TypeError):
            return  # the core refuses malformed configurations
        old, self.configuration = self.configuration, new
        if old is None or replay:
            return  # the initial configuration is not a change
        if self.node_id is not None and self.node_id not in new.members:
            return  # history a new server replays, or its own removal
        # A peer is a voting member: a learner being caught up is not
        # announced, its promotion is (on every member, itself included).
        for address in sorted(new.voters - old.voters):
            event_log.info("Added new peer %s", address)
        for address in sorted(old.voters - new.voters):
            event_log.info("Removed peer %s", address)

    def _announce(self, command: str) -> None:
        if command == "print":
            event_log.info("Logs [%s]", " ".join(self.messages))
        elif command == "count":
            event_log.info("Count %d", len(self.messages))
