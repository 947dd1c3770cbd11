"""The replicated state machine: the original toy's list of messages.

Applying ``print`` logs every message so far, ``count`` logs how many.
(client_id, seq) pairs make a command apply once however often it reached
the log (dissertation §6.3).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .core.messages import Entry, EntryType

event_log = logging.getLogger("raft")


@dataclass(frozen=True, slots=True)
class Applied:
    """The answer for an applied entry: its own, or the first copy's."""

    index: int
    term: int


class StateMachine:
    def __init__(self):
        self.messages: list[str] = []
        # (client_id, seq) -> the first entry that carried it.
        self._sessions: dict[tuple[str, int], Applied] = {}
        self.last_applied = 0  # invariant: last_applied <= commit_index

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

    def _announce(self, command: str) -> None:
        if command == "print":
            event_log.info("Logs [%s]", " ".join(self.messages))
        elif command == "count":
            event_log.info("Count %d", len(self.messages))
