"""Progress: the leader's view of one peer's log (Raft Figure 2).

Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Progress:
    # Raft Figure 2: the highest index known replicated on the peer.
    match_index: int = 0
    # Raft Figure 2: the next index to send.
    # invariant: match_index < next_index
    next_index: int = 1
    # One AppendEntries or InstallSnapshot outstanding at a time: the
    # runtime sends over HTTP request/response, one request per peer.
    in_flight: bool = False
    # The request_id of the latest request sent: only its reply answers
    # the request in flight.
    request_id: int = 0
    # The last_included_index of the InstallSnapshot in flight, 0 if none
    # (Raft §7). It is never taken as lost for want of an answer in time:
    # the runtime reports its reply or an Unreachable.
    pending_snapshot: int = 0
    # Ticks since the outstanding request was sent.
    in_flight_ticks: int = 0
    # Dissertation §6.2 check quorum: a reply came in this window.
    recent_active: bool = False
    # Reads wait for a request sent after them (read_index.py): one goes
    # out as soon as nothing is in flight, even with no entries to carry.
    round_wanted: bool = False
    # The last request left entries behind it (a full batch) or was a
    # snapshot: the peer is catching up, and thrifty replication sends it
    # the next one as soon as it answers.
    catching_up: bool = False
    # Ticks the peer has been behind the leader's log without its
    # match_index growing: a thrifty leader's sign that it is stalled.
    stalled_ticks: int = 0

    def sent(self, request_id: int, pending_snapshot: int = 0) -> None:
        self.round_wanted = False
        self.in_flight = True
        self.in_flight_ticks = 0
        self.request_id = request_id
        self.pending_snapshot = pending_snapshot

    def answered(self) -> None:
        """The request in flight is answered, or known lost."""
        self.in_flight = False
        self.pending_snapshot = 0

    def maybe_update(self, match_index: int) -> bool:
        """A success reply: the peer holds our log up to ``match_index``.

        Returns whether match_index grew. A stale success never lowers it.
        """
        grew = match_index > self.match_index
        if grew:
            self.match_index = match_index
            self.stalled_ticks = 0
        # Raft Figure 2: on success update next_index and match_index.
        self.next_index = self.match_index + 1
        return grew

    def maybe_decrease(self, rejected_prev: int, hint: int) -> bool:
        """A rejection of an AppendEntries whose prev_log_index was
        ``rejected_prev``; ``hint`` is where §5.3's fast backtracking
        says to retry.

        Returns False for a stale rejection (of an earlier request, or of
        an index already known to match), leaving the progress as it is.
        """
        if rejected_prev != self.next_index - 1 or rejected_prev <= self.match_index:
            return False
        # Always move back by at least one, never past what is known to
        # match, never below index 1.
        self.next_index = max(min(hint, rejected_prev), self.match_index + 1, 1)
        return True
