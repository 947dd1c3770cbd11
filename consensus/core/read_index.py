"""Linearizable reads without log writes: ReadIndex (dissertation §6.4).

A leader answers a read with its commit index once it knows it was still
the leader when the read arrived: a majority of voters acknowledged a
request it sent after that. The runtime then serves the read from its state
machine once it has applied through that index. Reads waiting together share
one round of heartbeats. Standard library only.

A request's number (AppendEntries.request_id, echoed in every reply) tells
which requests were sent after a read arrived: each LeaderState numbers its
requests in order, so a reply echoing a number at or above the read's
``first_request`` answers a request sent after it. No message field is
added for reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import quorum
from .api import NotLeader
from .ready import ReadState


@dataclass(slots=True)
class _Pending:
    ctx: int
    index: int
    # The lowest request_id that answers for this read: requests numbered
    # from here were sent after it arrived.
    first_request: int
    acks: set[str] = field(default_factory=set)


class ReadQueue:
    """A leader's reads waiting for their round (one per LeaderState, so
    they are dropped with it when leadership ends: the runtime fails them)."""

    def __init__(self):
        self._pending: list[_Pending] = []

    def __bool__(self) -> bool:
        return bool(self._pending)

    def add(self, ctx: int, index: int, first_request: int) -> None:
        self._pending.append(_Pending(ctx, index, first_request))

    def ack(self, peer: str, request_id: int) -> None:
        for read in self._pending:
            if request_id >= read.first_request:
                read.acks.add(peer)

    def confirmed(self, leader_id: str, voters) -> list[ReadState]:
        """The reads a majority of ``voters`` has vouched for, oldest first.
        A later read's acknowledgements also count for every earlier one
        (they answer later requests), so confirmed reads are a prefix."""
        done = []
        while self._pending:
            read = self._pending[0]
            if not quorum.has_quorum(voters, read.acks | {leader_id}):
                break
            self._pending.pop(0)
            done.append(ReadState(read.ctx, read.index))
        return done


class ReadIndexMixin:
    """RaftNode's read_index() entry point and its hooks."""

    def read_index(self, contexts: list[int]):
        """Register reads ``contexts`` (the runtime's ids): each becomes a
        ReadState(ctx, index) in a later Ready once it is safe to serve
        the state machine through ``index``. Raises NotLeader when not
        leader or while leadership is being handed over."""
        self._begin()
        leader = self.leader_state
        if leader is None:
            raise NotLeader(self.leader_id)
        if leader.transfer_target is not None:
            # Dissertation §3.10: the target may already lead.
            raise NotLeader(None)
        self._awaiting_commit.extend(contexts)
        self._register_reads()
        return self._end()

    def _register_reads(self) -> None:
        """Dissertation §6.4 step 1: a new leader does not know which
        entries are committed until an entry of its term is; until then
        the reads wait. Then each takes the commit index as its read index
        and a round of requests goes out (step 2)."""
        leader = self.leader_state
        if (
            leader is None
            or not self._awaiting_commit
            or self.log.term_at(self.commit_index) != self.current_term
        ):
            return
        first_request = leader.last_request_id + 1
        for ctx in self._awaiting_commit:
            leader.reads.add(ctx, self.commit_index, first_request)
        self._awaiting_commit = []
        leader.want_round()
        self._send(leader.broadcast(self.commit_index))
        self._confirm_reads()

    def _read_acked(self, peer: str, request_term: int, request_id: int) -> None:
        """A peer answered a request of ``request_term``: if this term's,
        it still took us for its leader when it answered."""
        leader = self.leader_state
        if leader is None or request_term != self.current_term or not leader.reads:
            return
        leader.reads.ack(peer, request_id)
        self._confirm_reads()

    def _confirm_reads(self) -> None:
        leader = self.leader_state
        done = leader.reads.confirmed(self.id, self.configuration.voters)
        self._ready.read_states.extend(done)

    def _drop_reads(self) -> None:
        """Leadership ended: reads not yet confirmed never will be here."""
        self._awaiting_commit = []
