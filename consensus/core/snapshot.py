"""Snapshots and log compaction (Raft §7, dissertation chapter 5), RaftNode's
side: the metadata of a snapshot, compacting the log behind one, and the
InstallSnapshot receiver rules (Figure 5.3). What a leader sends is in
leader.py. Standard library only."""

from __future__ import annotations

from . import membership
from .messages import InstallSnapshot, InstallSnapshotReply, SnapshotMetadata
from .ready import Ready, Role


class SnapshotMixin:
    """Snapshots for RaftNode, whose state and helpers it uses."""

    def snapshot_metadata(self, index: int | None = None) -> SnapshotMetadata:
        """What a snapshot of the state machine through ``index`` (default
        last_applied) records besides its data (dissertation Figure 5.1):
        the term of the entry at ``index`` and the latest configuration as
        of it. Raises ValueError past last_applied or before the log."""
        index = self.last_applied if index is None else index
        if index == self.snapshot.last_included_index:
            return self.snapshot
        if index > self.last_applied or index < self.log.snapshot_index:
            raise ValueError(
                f"no snapshot through {index}: the log holds "
                f"{self.log.snapshot_index}..{self.log.last_index}, "
                f"last_applied is {self.last_applied}"
            )
        if index == self.log.snapshot_index:
            return self.log.snapshot
        configuration_index, configuration = membership.configuration_at(
            self.log, index
        )
        return SnapshotMetadata(
            index, self.log.term_at(index), configuration_index, configuration
        )

    def compact(self, snapshot: SnapshotMetadata, index: int | None = None) -> Ready:
        """The runtime holds ``snapshot`` durably (its metadata from
        snapshot_metadata()): from now on a leader sends it to a follower
        that needs entries the log no longer holds (Raft §7).

        Entries through ``index`` (default: the snapshot's last included
        one; at most that) are dropped from memory; the runtime keeps the
        entries after ``index`` as a trailing window, so a follower just
        behind still catches up by AppendEntries. It may delete the stored
        entries through ``index`` once the snapshot is durable. A snapshot
        older than the one held is ignored. The Ready holds nothing to
        persist.
        """
        last_included = snapshot.last_included_index
        index = last_included if index is None else index
        if index > last_included:
            raise ValueError(f"cannot compact past the snapshot, to {index}")
        if last_included < self.snapshot.last_included_index:
            return Ready()
        if last_included > self.last_applied:
            # Dissertation §5.1: a snapshot holds only applied (committed)
            # state; compacting an entry not applied would lose it.
            raise ValueError(f"snapshot through {last_included} is not applied")
        if self.log.term_at(last_included) not in (None, snapshot.last_included_term):
            raise ValueError(f"snapshot term differs from the log's at {last_included}")
        self._begin()
        self.snapshot = snapshot
        if self.leader_state is not None:
            self.leader_state.snapshot = snapshot
        if index > self.log.snapshot_index:
            self.log.compact(self.snapshot_metadata(index))
        return self._end()

    # A transfer's liveness. The runtime streams a snapshot's data in many
    # requests for one InstallSnapshot (Figure 5.3's offset and done), which
    # may take longer than an election timeout; meanwhile neither side
    # hears an AppendEntries. These keep the follower from campaigning
    # (§5.2) and the leader's check quorum (dissertation §6.2) from
    # counting the peer as silent while chunks flow.

    def heard_from_leader(self, leader: str, term: int) -> None:
        """The runtime received a chunk of ``leader``'s snapshot in ``term``."""
        if term == self.current_term and self.leader_id == leader:
            if self.leader_state is None and self.campaign is None:
                self.timer.heard_from_leader()

    def heard_from_peer(self, peer: str) -> None:
        """A peer acknowledged a chunk of this leader's snapshot."""
        if self.leader_state is not None:
            progress = self.leader_state.progress.get(peer)
            if progress is not None:
                progress.recent_active = True

    # InstallSnapshot, the follower's side.

    def _handle_install_snapshot(self, request: InstallSnapshot) -> None:
        if request.term < self.current_term or self.role is Role.LEADER:
            # Figure 5.3 receiver rule 1: reply immediately if term <
            # currentTerm. (A leader of the same term cannot exist, §5.2.)
            self._reply_install_snapshot(request)
            return
        if self.role is Role.CANDIDATE or self.leader_id != request.source:
            self._become_follower(request.term, request.source)
        else:
            self.timer.heard_from_leader()
        snapshot = request.metadata
        last_included = snapshot.last_included_index
        if last_included <= self.commit_index:
            # Not in Figure 5.3: a snapshot no newer than what is known
            # committed holds nothing new, and restoring it would take the
            # state machine back. Acknowledged without being restored.
            pass
        elif self.log.term_at(last_included) == snapshot.last_included_term:
            # Figure 5.3 rule 6: the log holds the snapshot's last entry,
            # so (Log Matching) every entry before it: keep them all, and
            # the entries following it. A snapshot holds only committed
            # entries; they are applied from the log.
            self._advance_commit(last_included)
        else:
            self._restore(snapshot)
        self._reply_install_snapshot(request)

    def _restore(self, snapshot: SnapshotMetadata) -> None:
        # Figure 5.3 rules 7-8: discard the entire log; reset the state
        # machine from the snapshot and load its configuration. Nothing
        # committed is lost: the snapshot is past commit_index.
        self.log.compact(snapshot)
        self.snapshot = snapshot
        self.commit_index = self.last_applied = snapshot.last_included_index
        ready = self._ready
        ready.snapshot = snapshot
        ready.entries_to_persist = []
        self._set_configuration(snapshot.configuration_index, snapshot.configuration)

    def _reply_install_snapshot(self, request: InstallSnapshot) -> None:
        reply = InstallSnapshotReply(
            term=self.current_term,
            source=self.id,
            dest=request.source,
            last_included_index=request.last_included_index,
            request_term=request.term,
            request_id=request.request_id,
        )
        self._send([reply])

    def _handle_install_snapshot_reply(self, reply: InstallSnapshotReply) -> None:
        leader = self.leader_state
        if leader is None or reply.term != self.current_term:
            return
        self._read_acked(reply.source, reply.request_term, reply.request_id)
        if leader.handle_snapshot_reply(reply):
            self._after_peer_reply(reply.source)
