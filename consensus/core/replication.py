"""Log replication (Raft §5.3, §5.4.2), RaftNode's side: the AppendEntries
receiver rules (Figure 2), a leader's reply handling and commitment. What a
leader keeps per peer and sends is in leader.py. Standard library only."""

from __future__ import annotations

from .configuration import Configuration
from .log import ConflictsWithCommitted
from .messages import AppendEntries, AppendEntriesReply, EntryType
from .ready import Role


def well_formed(request: AppendEntries) -> bool:
    """Raft §5.3: the entries follow prev_log_index one by one, terms never
    decrease along a log nor exceed the leader's, and a CONFIG entry holds
    a configuration. The /raft/ view refuses any other; the core refuses
    them too (with a reply, changing nothing), never raising on them."""
    index, term = request.prev_log_index, request.prev_log_term
    if not 0 <= term <= request.term or index < 0:
        return False
    for entry in request.entries:
        if entry.index != index + 1 or not term <= entry.term <= request.term:
            return False
        if entry.type is EntryType.CONFIG:
            try:
                configuration = Configuration.from_json(entry.command)
            except (ValueError, TypeError, KeyError, RecursionError):
                return False
            if not all(isinstance(m, str) for m in configuration.members):
                return False
        index, term = entry.index, entry.term
    return True


class ReplicationMixin:
    """Log replication for RaftNode, whose state and helpers it uses."""

    def _handle_append_entries(self, request: AppendEntries) -> None:
        if request.term < self.current_term or self.role is Role.LEADER:
            # Raft §5.1: a stale leader learns our term from the reply and
            # steps down. (A leader of the same term cannot exist, §5.2.)
            self._reply_append_entries(request, success=False)
            return
        if self.role is Role.CANDIDATE or self.leader_id != request.source:
            # Raft §5.2: a candidate that hears from its term's leader
            # returns to follower.
            self._become_follower(request.term, request.source)
        else:
            self.timer.heard_from_leader()
        try:
            new = self.log.maybe_append(
                request.prev_log_index,
                request.prev_log_term,
                request.entries,
                self.commit_index,
            )
        except ConflictsWithCommitted:
            # Only a forged request can contradict what is committed here
            # (Raft §5.4, Leader Completeness): refused, the log unchanged.
            self._reply_append_entries(request, success=False)
            return
        if new is None:
            # Raft §5.3: the consistency check failed; hint where to retry.
            conflict_term, conflict_index = self.log.conflict_hint(
                request.prev_log_index
            )
            self._reply_append_entries(
                request,
                success=False,
                conflict_term=conflict_term,
                conflict_index=conflict_index,
            )
            return
        if new:
            self._persist(new)
        # Raft Figure 2: commit_index = min(leader_commit, last new entry).
        last_new_index = request.prev_log_index + len(request.entries)
        self._advance_commit(min(request.leader_commit, last_new_index))
        self._reply_append_entries(request, success=True, match_index=last_new_index)

    def _reply_append_entries(
        self, request: AppendEntries, success: bool, **fields: int
    ) -> None:
        reply = AppendEntriesReply(
            term=self.current_term,
            source=self.id,
            dest=request.source,
            success=success,
            prev_log_index=request.prev_log_index,
            request_term=request.term,
            request_id=request.request_id,
            **fields,
        )
        self._send([reply])

    def _handle_append_entries_reply(self, reply: AppendEntriesReply) -> None:
        leader = self.leader_state
        if leader is None or reply.term != self.current_term:
            return
        # Any answer of this term vouches for our leadership, even a
        # rejection or one handle_reply finds stale (dissertation §6.4).
        self._read_acked(reply.source, reply.request_term, reply.request_id)
        if leader.handle_reply(reply):
            self._after_peer_reply(reply.source)

    def _after_peer_reply(self, peer: str) -> None:
        """A peer's log grew (or its progress moved): commit what a
        majority holds, then send the peer what follows."""
        leader = self.leader_state
        self._maybe_commit()
        if self.leader_state is not None:
            self._send(leader.after_reply(peer, self.commit_index))

    def _maybe_commit(self) -> None:
        """Leader: commit what a majority of voters hold, but only by
        counting replicas of a current-term entry (§5.4.2, Figure 8)."""
        candidate = self.leader_state.commit_candidate()
        if (
            candidate <= self.commit_index
            or self.log.term_at(candidate) != self.current_term
        ):
            return
        self._advance_commit(candidate)
        # The first commit of the term lets waiting reads in (§6.4).
        self._register_reads()
        if (
            self.id not in self.configuration.voters
            and self.configuration_index <= self.commit_index
        ):
            # Dissertation §4.2.2: a leader removed from the voters leads
            # until the configuration without it commits, then steps down.
            self._become_follower(self.current_term, None)

    def _advance_commit(self, index: int) -> None:
        # invariant: commit_index never decreases.
        self.commit_index = max(self.commit_index, index)
