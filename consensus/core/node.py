"""RaftNode: one server's Raft state machine (Raft Figure 2, §5; dissertation).

Pure: time enters only as tick(), randomness only through the given
random.Random, and every entry point returns a Ready for the runtime.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from . import election, membership, replication
from .api import (
    ChangeRefusal,
    MembershipChangeRefused,
    NotLeader,
    PeerProgress,
    Proposal,
    RaftConfig,
    Status,
    TransferRefusal,
    TransferRefused,
    bootstrap_entries,
)
from .election import Campaign, ElectionTimer
from .leader import LeaderState
from .log import RaftLog
from .messages import (
    NO_SNAPSHOT,
    AppendEntries,
    AppendEntriesReply,
    Entry,
    EntryType,
    InstallSnapshot,
    InstallSnapshotReply,
    Message,
    RequestVote,
    RequestVoteReply,
    SnapshotMetadata,
    TimeoutNow,
    Unreachable,
)
from .quorum import VoteResult
from .read_index import ReadIndexMixin
from .ready import HardState, ReadState, Ready, Role
from .ready_builder import ReadyBuilderMixin
from .replication import ReplicationMixin
from .snapshot import SnapshotMixin
from .transfer import TransferMixin

# The public API, defined in api.py.
__all__ = [
    "ChangeRefusal",
    "MembershipChangeRefused",
    "NotLeader",
    "PeerProgress",
    "Proposal",
    "RaftConfig",
    "RaftNode",
    "ReadState",
    "SnapshotMetadata",
    "Status",
    "TransferRefusal",
    "TransferRefused",
    "bootstrap_entries",
]


class RaftNode(
    TransferMixin, SnapshotMixin, ReplicationMixin, ReadIndexMixin, ReadyBuilderMixin
):
    """One server: the entry points tick(), step(), propose(),
    read_index() (read_index.py), check_membership_change(),
    transfer_leadership() (transfer.py), compact() (snapshot.py) and
    status(); elections and role transitions.
    Log replication is in replication.py, how a call's Ready is gathered
    in ready_builder.py."""

    def __init__(
        self,
        config: RaftConfig,
        rng: random.Random,
        hard_state: HardState = HardState(),
        entries: Sequence[Entry] = (),
        last_applied: int = 0,
        snapshot: SnapshotMetadata = NO_SNAPSHOT,
    ):
        """Restore a server from what it persisted.

        ``snapshot``: the runtime's latest (dissertation §5.1), from which it
        restored its state machine; ``entries``: the stored log, of which
        those it covers are dropped. ``last_applied``: the runtime's (Raft
        Figure 2), so an index known committed; committed_entries resume
        after it, or after the snapshot.
        """
        self.id = config.id
        self.config = config
        self.rng = rng
        # Raft Figure 2, persistent state.
        self.current_term = hard_state.current_term
        self.voted_for = hard_state.voted_for
        self.snapshot = snapshot
        covered = snapshot.last_included_index
        self.log = RaftLog([e for e in entries if e.index > covered], snapshot)
        last_applied = max(last_applied, covered)
        if last_applied > self.log.last_index:
            raise ValueError(f"last_applied {last_applied} is past the log")
        # Raft Figure 2, volatile state: index of the highest entry known
        # committed, and of the highest applied to the state machine. The
        # core counts an entry applied once it has handed it to the runtime
        # in Ready.committed_entries (ready_builder.py): the runtime applies
        # it before its next call.
        self.commit_index = last_applied
        # invariant: last_applied <= commit_index
        self.last_applied = last_applied
        # Dissertation §4.1: the latest configuration in the log (or the
        # snapshot's) rules, committed or not. configuration_index 0: none.
        self.configuration_index, self.configuration = membership.latest_configuration(
            self.log, 0, self.log.first_index
        )
        # Set only by the _become_* transitions (and here, at start).
        self.role = self._member_role()
        self.leader_id: str | None = None
        self.leader_state: LeaderState | None = None
        self.campaign: Campaign | None = None
        # Reads a leader holds until an entry of its term commits (§6.4).
        self._awaiting_commit: list[int] = []
        self.timer = ElectionTimer(config.election_timeout_ticks, rng)
        self._ready = Ready()
        self._before: tuple = ()
        self._handlers = {
            AppendEntries: self._handle_append_entries,
            AppendEntriesReply: self._handle_append_entries_reply,
            InstallSnapshot: self._handle_install_snapshot,
            InstallSnapshotReply: self._handle_install_snapshot_reply,
            RequestVote: self._handle_request_vote,
            RequestVoteReply: self._handle_request_vote_reply,
            TimeoutNow: self._handle_timeout_now,
        }

    # Entry points.

    def tick(self) -> Ready:
        """Advance logical time by one tick (elections, heartbeats)."""
        self._begin()
        if self.leader_state is not None:
            keep_leading, messages = self.leader_state.tick(self.commit_index)
            if keep_leading:
                self._send(messages)
                self._outdate_timeout_now()
            else:
                # Dissertation §6.2: no word from a majority for an
                # election timeout; a newer leader may exist elsewhere.
                self._become_follower(self.current_term, None)
        else:
            if self.timer.tick() and membership.may_campaign(self):
                self._campaign(pre_vote=self.config.pre_vote)
        return self._end()

    def step(self, message: Message) -> Ready:
        """Advance by one message from a peer (or a local Unreachable)."""
        self._begin()
        if isinstance(message, Unreachable):
            if self.leader_state is not None:
                self.leader_state.unreachable(message.source)
            return self._end()
        if isinstance(message, AppendEntries) and not replication.well_formed(message):
            # Before the term is adopted: a malformed request changes nothing.
            self._reply_append_entries(message, success=False)
            return self._end()
        if message.term > self.current_term and election.adopts_term(
            message, self._in_lease()
        ):
            # Raft §5.1: a newer term always wins, whatever our role.
            from_leader = isinstance(message, (AppendEntries, InstallSnapshot))
            leader_id = message.source if from_leader else None
            self._become_follower(message.term, leader_id)
        self._handlers[type(message)](message)
        return self._end()

    def propose(self, proposals: Sequence[Proposal]) -> Ready:
        """Append client proposals to the leader's log in one batch.

        The new entries are the last len(proposals) of
        ready.entries_to_persist. A client is answered only once its entry
        comes back in committed_entries and is applied (Raft Figure 2,
        Rules for Servers, Leaders), never when this returns. Raises
        NotLeader when not leader or while a leadership transfer is under
        way, MembershipChangeRefused for a CONFIG entry the leader may not
        append (nothing is appended).
        """
        if self.leader_state is None:
            raise NotLeader(self.leader_id)
        if self.leader_state.transfer_target is not None:
            # Dissertation §3.10: hold proposals while leadership moves.
            raise NotLeader(None)
        first = self.log.last_index + 1
        entries = [
            Entry(
                first + n,
                self.current_term,
                p.type,
                p.command,
                p.client_id,
                p.seq,
                p.timestamp_ms,
            )
            for n, p in enumerate(proposals)
        ]
        membership.check_changes(
            entries,
            self.log,
            self.commit_index,
            self.configuration_index,
            self.current_term,
            self.configuration,
        )
        self._begin()
        if entries:
            self._append(entries)
            self._maybe_commit()
            if self.leader_state is not None:
                self._send(self.leader_state.broadcast(self.commit_index))
        return self._end()

    def check_membership_change(self) -> None:
        """Raise NotLeader, or MembershipChangeRefused, if propose() would
        refuse any CONFIG entry now, whatever its configuration (a transfer
        under way aside), so a caller can check before it computes one."""
        if self.leader_state is None:
            raise NotLeader(self.leader_id)
        membership.check_may_change(
            self.log, self.commit_index, self.configuration_index, self.current_term
        )

    def status(self) -> Status:
        leader = self.leader_state
        return Status(
            id=self.id,
            role=self.role,
            term=self.current_term,
            voted_for=self.voted_for,
            leader_id=self.leader_id,
            commit_index=self.commit_index,
            last_log_index=self.log.last_index,
            last_log_term=self.log.last_term,
            configuration=self.configuration,
            configuration_index=self.configuration_index,
            configuration_term=self.log.term_at(self.configuration_index) or 0,
            snapshot_index=self.snapshot.last_included_index,
            first_log_index=self.log.first_index,
            transfer_target=leader.transfer_target if leader is not None else None,
            progress=leader.peer_progress() if leader is not None else {},
        )

    # Elections.

    def _in_lease(self) -> bool:
        """Heard from a current leader within the minimum election timeout
        (dissertation §4.2.3); a leader is its own current leader."""
        if self.role is Role.LEADER:
            return True
        return self.leader_id is not None and self.timer.leader_is_recent()

    def _handle_request_vote(self, request: RequestVote) -> None:
        granted = election.grant_vote(
            request, self.log, self.current_term, self.voted_for, self._in_lease()
        )
        if granted and not request.pre_vote:
            self.voted_for = request.source
            self.campaign = None
            # Raft Figure 2: granting a vote resets the election timer.
            self.timer.reset()
        # A granted pre-vote carries the asked-for term so the candidate
        # does not take it for a newer term (§9.6).
        term = request.term if request.pre_vote and granted else self.current_term
        reply = RequestVoteReply(
            term=term,
            source=self.id,
            dest=request.source,
            vote_granted=granted,
            pre_vote=request.pre_vote,
        )
        self._send([reply])
        if request.pre_vote and not granted and self._outruns(request):
            self._campaign(pre_vote=self.config.pre_vote)

    def _outruns(self, request: RequestVote) -> bool:
        """Should this server campaign at once on refusing ``request``, a
        pre-vote? Yes if it refused only because its own log is ahead: the
        asker cannot win (§5.4.1), and this server, out of touch with a
        leader too, would grant anyone else as up to date. Waiting out its
        own timeout would leave the cluster without a leader that long.
        (Core README, departure 12: with thrifty replication the voter
        that times out first is often one a heartbeat behind.)"""
        # A leader is always in its own lease (_in_lease).
        return (
            self.campaign is None
            and request.term > self.current_term
            and not self._in_lease()
            and not self.log.is_up_to_date(
                request.last_log_index, request.last_log_term
            )
            and membership.may_campaign(self)
        )

    def _handle_request_vote_reply(self, reply: RequestVoteReply) -> None:
        campaign = self.campaign
        if campaign is None or reply.pre_vote != campaign.pre_vote:
            return
        if reply.vote_granted and reply.term != campaign.term:
            return  # from an earlier round
        if not reply.vote_granted and reply.term < self.current_term:
            return  # stale
        if campaign.record(reply.source, reply.vote_granted) is VoteResult.WON:
            self._won(campaign)

    def _campaign(self, pre_vote: bool, transfer: bool = False) -> None:
        if pre_vote:
            self._become_pre_candidate()
        else:
            self._become_candidate(transfer)
        if self.campaign.result() is VoteResult.WON:
            self._won(self.campaign)
        else:
            self._send(self.campaign.requests(self.log))

    def _won(self, campaign: Campaign) -> None:
        if campaign.pre_vote:
            self._campaign(pre_vote=False)
        else:
            self._become_leader()

    # Role transitions: the only places that set ``role``.

    def _become_pre_candidate(self) -> None:
        # Dissertation §9.6: ask whether an election at current_term + 1
        # could be won, changing neither current_term nor voted_for. There
        # is no pre-candidate role: the role stays that of a follower.
        self.role = self._member_role()
        self.leader_id = None
        self.timer.reset()
        self.campaign = Campaign(
            self.id, self.current_term + 1, self.configuration, pre_vote=True
        )

    def _become_candidate(self, transfer: bool) -> None:
        # Raft §5.2 (Figure 2, Rules for Servers, Candidates): increment
        # current_term, vote for self, reset the election timer, ask every
        # voter. ``transfer``: dissertation §3.10, past leader stickiness.
        self.current_term += 1
        self.voted_for = self.id
        self.role = Role.CANDIDATE
        self.leader_id = None
        self.timer.reset()
        self.campaign = Campaign(
            self.id, self.current_term, self.configuration, transfer=transfer
        )

    def _become_leader(self) -> None:
        self.role = Role.LEADER
        self.leader_id = self.id
        self.campaign = None
        self.leader_state = LeaderState(
            self.config, self.current_term, self.log, self.configuration, self.snapshot
        )
        # Raft §5.4.2 / §8: commit an entry of the new term so earlier
        # entries commit, and the leader learns its commit index.
        self._append(
            [Entry(self.log.last_index + 1, self.current_term, EntryType.NOOP)]
        )
        self._maybe_commit()
        if self.leader_state is not None:
            self._send(self.leader_state.broadcast(self.commit_index))

    def _become_follower(
        self, term: int, leader_id: str | None, reset_timer: bool = True
    ) -> None:
        """Follow ``leader_id`` (None: unknown) in ``term``, in the role the
        configuration gives: FOLLOWER, LEARNER or NONE (§4.1).
        ``reset_timer=False``: only the configuration changed."""
        if term > self.current_term:
            self.current_term = term
            self.voted_for = None
        self.role = self._member_role()
        self.leader_id = leader_id
        self.leader_state = None
        self.campaign = None
        self._drop_reads()
        if not reset_timer:
            return
        if leader_id is not None:
            self.timer.heard_from_leader()
        else:
            self.timer.reset()

    def _member_role(self) -> Role:
        """The role of a server that is neither leader nor candidate."""
        if self.id in self.configuration.voters:
            return Role.FOLLOWER
        if self.id in self.configuration.learners:
            return Role.LEARNER
        return Role.NONE

    # The log and the configuration.

    def _append(self, entries: list[Entry]) -> None:
        self.log.append(entries)
        self._persist(entries)

    def _persist(self, entries: list[Entry]) -> None:
        """Add entries just written to the log to this call's Ready."""
        ready = self._ready
        # Ready's contract: a first index at or below what this Ready
        # already holds replaces those entries (a §5.3 truncation).
        first = entries[0].index
        ready.entries_to_persist = [
            e for e in ready.entries_to_persist if e.index < first
        ] + entries
        self._log_changed(first, entries)

    def _log_changed(self, first_changed: int, written: list[Entry]) -> None:
        """The log holds ``written`` from ``first_changed`` on, to its end."""
        if self.configuration_index < first_changed and not any(
            e.type is EntryType.CONFIG for e in written
        ):
            # Dissertation §4.1: only appending a CONFIG entry, or
            # truncating the latest one away, changes the configuration in
            # force; the common append of commands leaves it as it is.
            return
        self._set_configuration(
            *membership.latest_configuration(
                self.log, self.configuration_index, first_changed
            )
        )

    def _set_configuration(self, index: int, configuration) -> None:
        self.configuration_index = index
        if configuration == self.configuration:
            return
        self.configuration = configuration
        if self.leader_state is not None:
            self.leader_state.set_configuration(configuration)
        elif self.role is not Role.CANDIDATE:
            # Dissertation §4.1: a follower's role follows the latest
            # configuration in its log. Only a current leader's
            # AppendEntries or InstallSnapshot changes a follower's log, so no
            # pre-vote is under way, and the handler has reset the timer.
            self._become_follower(self.current_term, self.leader_id, reset_timer=False)
