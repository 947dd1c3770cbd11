"""How a RaftNode entry point gathers the Ready it returns, handing out
committed entries (Raft Figure 2's last_applied). Standard library only."""

from __future__ import annotations

from .messages import Message
from .ready import HardState, Ready, SoftState


class ReadyBuilderMixin:
    """An entry point calls _begin(), adds to the Ready (_send, and
    RaftNode._persist), and returns _end()."""

    def _begin(self) -> None:
        self._ready = Ready()
        self._before = (self.current_term, self.voted_for, self.role, self.leader_id)

    def _send(self, messages: list[Message]) -> None:
        self._ready.messages.extend(messages)

    def _end(self) -> Ready:
        ready = self._ready
        # Raft Figure 2, Rules for Servers, All Servers: "If commitIndex >
        # lastApplied: increment lastApplied, apply log[lastApplied]". The
        # core hands each committed entry out once, in order, and counts it
        # applied from then on: the runtime applies this Ready's entries,
        # after persisting, before its next call.
        if self.commit_index > self.last_applied:
            ready.committed_entries = self.log.slice(
                self.last_applied + 1, self.commit_index + 1
            )
            self.last_applied = self.commit_index
        term, voted_for, role, leader_id = self._before
        if (term, voted_for) != (self.current_term, self.voted_for):
            ready.hard_state = HardState(self.current_term, self.voted_for)
        if (role, leader_id) != (self.role, self.leader_id):
            ready.soft_state = SoftState(self.role, self.leader_id)
        self._ready = Ready()
        return ready
