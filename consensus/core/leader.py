"""LeaderState: what only a leader keeps, for one term (Raft Figure 2).

Per-peer replication progress, heartbeats, check quorum (dissertation
§6.2) and leadership transfer (§3.10). Standard library only.

Thrifty replication (RaftConfig.thrifty; a departure from Raft §5.3, which
sends to every follower at once): a commit needs a majority, so new entries
go at once only to the first voters to answer this term, as many as make a
majority with the leader (``eager``); the other voters get them with the
next heartbeat, everything since the last in one AppendEntries. On a small
machine each follower's share of a command (decode, fsync, reply, apply) is
CPU the committing majority waits behind; a follower a heartbeat behind
costs one request per heartbeat instead. Safety does not depend on when
AppendEntries are sent. An eager voter that falls behind for a heartbeat
interval without progress loses its place; while a place is free, every
peer gets entries at once, and the first to answer takes it. Learners, a
transfer's target, a peer a read waits for, a peer still catching up or
probing for the point where its log matches, and one ``thrifty_max_lag``
entries behind are sent to at once as before.
"""

from __future__ import annotations

from . import quorum
from .api import PeerProgress, RaftConfig, TransferRefusal, TransferRefused
from .configuration import Configuration
from .log import RaftLog
from .messages import (
    AppendEntries,
    AppendEntriesReply,
    InstallSnapshot,
    InstallSnapshotReply,
    Message,
    SnapshotMetadata,
    TimeoutNow,
)
from .progress import Progress
from .read_index import ReadQueue


class LeaderState:
    """Created when a server wins an election, dropped when it steps down."""

    def __init__(
        self,
        config: RaftConfig,
        term: int,
        log: RaftLog,
        configuration: Configuration,
        snapshot: SnapshotMetadata,
    ):
        self.id = config.id
        self.config = config
        self.term = term
        self.log = log
        self.configuration = configuration
        # The node's latest snapshot, sent to peers that need entries the
        # log no longer holds (Raft §7). RaftNode.compact updates it.
        self.snapshot = snapshot
        self.progress: dict[str, Progress] = {}
        # Thrifty replication: the voters sent new entries at once; filled
        # by the first to answer this term, up to ``eager_needed``.
        self.eager: set[str] = set()
        self.eager_needed = 0
        # The last request_id used in this term.
        self.last_request_id = 0
        # Reads waiting for a majority's word (dissertation §6.4).
        self.reads = ReadQueue()
        self.heartbeat_elapsed = 0
        # Ticks into the current check-quorum window (§6.2).
        self.quorum_elapsed = 0
        # Dissertation §3.10: the voter leadership is being handed to.
        self.transfer_target: str | None = None
        self.transfer_elapsed = 0
        # A TimeoutNow went out for the transfer under way.
        self.timeout_now_sent = False
        # A transfer was given up after its TimeoutNow went out: the node
        # appends an entry so that TimeoutNow goes stale (take_gave_up).
        self.gave_up_after_timeout_now = False
        # A request neither answered nor reported Unreachable by then is
        # taken as lost, so one lost message cannot stall a peer for good.
        self.resend_after_ticks = max(
            config.heartbeat_ticks, config.election_timeout_ticks // 2
        )
        self.set_configuration(configuration)

    def set_configuration(self, configuration: Configuration) -> None:
        """Track exactly the other members of ``configuration`` (§4.1)."""
        self.configuration = configuration
        peers = configuration.members - {self.id}
        for peer in set(self.progress) - peers:
            del self.progress[peer]
        for peer in peers - set(self.progress):
            # Raft Figure 2: next_index starts just after the leader's last
            # entry; the peer's rejections walk it back.
            self.progress[peer] = Progress(next_index=self.log.last_index + 1)
        # The order broadcast sends in; the peers change only here.
        self.peers = sorted(self.progress)
        voters = configuration.voters
        # A commit needs a majority of the voters, this server among them
        # only while it is one (§4.2.2).
        self.eager_needed = quorum.majority(len(voters)) - (self.id in voters)
        self.eager = set(sorted(self.eager & voters)[: self.eager_needed])
        if self.transfer_target not in configuration.voters:
            # The CONFIG entry that did this already outdates any
            # TimeoutNow sent (see transfer.py).
            self.transfer_target = None
            self.timeout_now_sent = False

    def peer_progress(self) -> dict[str, PeerProgress]:
        voters = self.configuration.voters
        return {
            peer: PeerProgress(
                pr.match_index, pr.next_index, pr.recent_active, peer in voters
            )
            for peer, pr in self.progress.items()
        }

    # Commitment.

    def commit_candidate(self) -> int:
        """The highest index a majority of voters hold (Raft §5.3).

        The leader counts itself with its last index: the runtime persists
        each Ready before the next call. A leader outside the voters (being
        removed, §4.2.2) does not count itself.
        """
        # Runs after every append and accepted reply: the voters' match
        # indexes go straight into a list, not through a dict of them all.
        # set_configuration tracks every voter but this server.
        progress, last_index = self.progress, self.log.last_index
        matches = [
            last_index if voter == self.id else progress[voter].match_index
            for voter in self.configuration.voters
        ]
        return quorum.majority_index(matches)

    # Sending.

    def replicate(self, peer: str, commit_index: int) -> Message | None:
        """The next request for ``peer``, or None while one is in flight:
        an AppendEntries carrying everything from next_index up to the
        batch bounds, so entries appended meanwhile all go in one request;
        or an InstallSnapshot if the log no longer holds next_index."""
        progress = self.progress[peer]
        if progress.in_flight:
            return None
        if progress.next_index <= self.log.snapshot_index:
            return self._install_snapshot(peer, progress)
        prev_log_index = progress.next_index - 1
        prev_log_term = self.log.term_at(prev_log_index)
        entries = self.log.entries_from(
            progress.next_index,
            self.config.max_append_entries,
            self.config.max_append_bytes,
        )
        self.last_request_id += 1
        progress.sent(self.last_request_id)
        progress.catching_up = bool(entries) and entries[-1].index < self.log.last_index
        return AppendEntries(
            term=self.term,
            source=self.id,
            dest=peer,
            prev_log_index=prev_log_index,
            prev_log_term=prev_log_term,
            entries=tuple(entries),
            leader_commit=commit_index,
            request_id=self.last_request_id,
        )

    def _install_snapshot(self, peer: str, progress: Progress) -> InstallSnapshot:
        # Raft §7: "the leader must occasionally send snapshots to followers
        # that lag behind", when it "has already discarded the next log
        # entry that it needs to send". The node's latest snapshot is at or
        # after the log's start, so it covers next_index.
        snapshot = self.snapshot
        self.last_request_id += 1
        progress.sent(self.last_request_id, snapshot.last_included_index)
        progress.catching_up = True
        return InstallSnapshot(
            term=self.term,
            source=self.id,
            dest=peer,
            last_included_index=snapshot.last_included_index,
            last_included_term=snapshot.last_included_term,
            configuration_index=snapshot.configuration_index,
            configuration=snapshot.configuration,
            request_id=self.last_request_id,
        )

    def broadcast(self, commit_index: int, everyone: bool = False) -> list[Message]:
        """The next request (AppendEntries or InstallSnapshot) to every
        peer with nothing in flight, but those that may wait for the next
        heartbeat (thrifty replication) unless ``everyone``."""
        messages = []
        progress = self.progress
        for peer in self.peers:
            if not everyone and self._may_wait(peer, progress[peer]):
                continue
            message = self.replicate(peer, commit_index)
            if message is not None:
                messages.append(message)
        return messages

    def _may_wait(self, peer: str, progress: Progress) -> bool:
        """Thrifty replication: whether ``peer`` may get new entries with
        the next heartbeat rather than at once (see the module's doc)."""
        return (
            self.config.thrifty
            and len(self.eager) >= self.eager_needed
            and peer not in self.eager
            and peer in self.configuration.voters
            and peer != self.transfer_target
            and not progress.round_wanted
            and not progress.catching_up
            # Probing (§5.3): where the logs match is not known yet.
            and progress.next_index == progress.match_index + 1
            and self.log.last_index - progress.match_index < self.config.thrifty_max_lag
        )

    def handle_reply(self, reply: AppendEntriesReply) -> bool:
        """Update ``reply.source``'s progress; False if the reply is stale
        or from a server no longer tracked."""
        progress = self.progress.get(reply.source)
        if progress is None:
            return False
        # Dissertation §6.2: the peer answered in this term.
        progress.recent_active = True
        if reply.request_term != self.term:
            # Raft §5.1 (Figure 2, AppendEntries receiver rule 1): a request
            # from this server's earlier term, refused for its term alone.
            # Not a §5.3 log conflict (it carries no hint), so next_index
            # stays; and it answers no request of this term.
            return False
        answers_in_flight = reply.request_id == progress.request_id
        if answers_in_flight:
            progress.answered()
        if reply.success:
            if reply.match_index > self.log.last_index:
                # No peer can hold more than was sent: not a real reply.
                return False
            # Even a late success is true of this term (one leader per
            # term, §5.2), and match_index never decreases.
            progress.maybe_update(reply.match_index)
            if (
                self.config.thrifty
                and len(self.eager) < self.eager_needed
                and reply.source in self.configuration.voters
            ):
                self.eager.add(reply.source)
            return True
        if not answers_in_flight:
            return False  # rejects an earlier request; the next one differs
        return progress.maybe_decrease(reply.prev_log_index, self._retry_index(reply))

    def handle_snapshot_reply(self, reply: InstallSnapshotReply) -> bool:
        """Update ``reply.source``'s progress after an InstallSnapshot; False
        if the reply is stale or from a server no longer tracked. Every
        reply of this term is a success: the follower holds the log
        through last_included_index (dissertation Figure 5.3)."""
        progress = self.progress.get(reply.source)
        if progress is None:
            return False
        progress.recent_active = True
        if reply.request_term != self.term:
            return False  # answers a request of an earlier term (§5.1)
        if reply.request_id == progress.request_id:
            progress.answered()
        # As for AppendEntries, a late success is still true of this term:
        # match_index = next_index - 1 = last_included_index, or above.
        progress.maybe_update(reply.last_included_index)
        return True

    def _retry_index(self, reply: AppendEntriesReply) -> int:
        # Raft §5.3 fast backtracking: skip the follower's whole
        # conflicting term. If the leader holds that term, resume just
        # after its own last entry of it; otherwise at the follower's
        # first entry of it (or just past the follower's log).
        if reply.conflict_term > 0:
            last = self.log.last_index_of_term(reply.conflict_term)
            if last is not None:
                return last + 1
        return reply.conflict_index

    def after_reply(self, peer: str, commit_index: int) -> list[Message]:
        """What to send ``peer`` at once after an accepted reply: the
        TimeoutNow of a transfer, or the next batch if one is waiting."""
        progress = self.progress.get(peer)
        if progress is None:
            return []
        if peer == self.transfer_target:
            timeout_now = self.maybe_timeout_now()
            if timeout_now is not None:
                return [timeout_now]
        if (
            progress.next_index <= self.log.last_index or progress.round_wanted
        ) and not self._may_wait(peer, progress):
            message = self.replicate(peer, commit_index)
            return [message] if message is not None else []
        return []

    def want_round(self) -> None:
        """Reads wait: every peer gets a request as soon as it has none in
        flight (read_index.py)."""
        for progress in self.progress.values():
            progress.round_wanted = True

    # Leadership transfer (dissertation §3.10).

    def start_transfer(self, to: str | None) -> str:
        """Begin handing leadership to ``to``, or to the voter with the
        highest match_index; returns the target. TransferRefused if ``to``
        is not another voter, or there is none."""
        voters = [p for p in self.progress if p in self.configuration.voters]
        if to is None:
            if not voters:
                raise TransferRefused(TransferRefusal.NO_OTHER_VOTER)
            # Ties go to the lowest address, so the choice is deterministic.
            to = max(sorted(voters), key=lambda p: self.progress[p].match_index)
        if to not in self.progress:
            raise TransferRefused(
                TransferRefusal.UNKNOWN_SERVER, f"{to} is not a member"
            )
        if to not in voters:
            # Dissertation §3.10: only a voter can win the election.
            raise TransferRefused(TransferRefusal.NOT_A_VOTER, f"{to} is not a voter")
        self._give_up_transfer()  # a new transfer replaces one under way
        self.transfer_target = to
        self.transfer_elapsed = 0
        return to

    def _give_up_transfer(self) -> None:
        if self.transfer_target is not None and self.timeout_now_sent:
            self.gave_up_after_timeout_now = True
        self.transfer_target = None
        self.timeout_now_sent = False

    def take_gave_up(self) -> bool:
        """Was a transfer given up after its TimeoutNow went out, since the
        last call? Then the node must append an entry (see
        _outdate_timeout_now in transfer.py)."""
        gave_up = self.gave_up_after_timeout_now
        self.gave_up_after_timeout_now = False
        return gave_up

    def maybe_timeout_now(self) -> TimeoutNow | None:
        """TimeoutNow for the target once its log matches the leader's."""
        target = self.transfer_target
        if target is None:
            return None
        if self.progress[target].match_index != self.log.last_index:
            return None
        self.timeout_now_sent = True
        return TimeoutNow(
            term=self.term,
            source=self.id,
            dest=target,
            last_log_index=self.log.last_index,
            last_log_term=self.log.last_term,
        )

    # Time.

    def tick(self, commit_index: int) -> tuple[bool, list[Message]]:
        """Advance one tick. Returns (keep_leading, messages): False when
        check quorum finds no active majority (dissertation §6.2)."""
        self.heartbeat_elapsed += 1
        self.quorum_elapsed += 1
        last_index = self.log.last_index
        for progress in self.progress.values():
            if progress.in_flight:
                progress.in_flight_ticks += 1
            if progress.match_index < last_index:
                progress.stalled_ticks += 1
            else:
                progress.stalled_ticks = 0
        self._free_stalled_places()
        if self.transfer_target is not None:
            self.transfer_elapsed += 1
            if self.transfer_elapsed >= self.config.election_timeout_ticks:
                # §3.10: a transfer that has not completed within an
                # election timeout is aborted; proposals resume.
                self._give_up_transfer()
        if self.quorum_elapsed >= self.config.election_timeout_ticks:
            self.quorum_elapsed = 0
            if self.config.check_quorum and not self.quorum_active():
                return False, []
            for progress in self.progress.values():
                progress.recent_active = False
        if self.heartbeat_elapsed < self.config.heartbeat_ticks:
            return True, []
        self.heartbeat_elapsed = 0
        for progress in self.progress.values():
            if (
                progress.in_flight
                and not progress.pending_snapshot
                and progress.in_flight_ticks >= self.resend_after_ticks
            ):
                progress.answered()
        return True, self.broadcast(commit_index, everyone=True)

    def _free_stalled_places(self) -> None:
        """Thrifty replication: drop from ``eager`` the voters that have
        been behind for a heartbeat interval without progress (down, slow,
        cut off). A heartbeat has sent the others what they lack by then;
        until one answers, new entries go to every voter at once."""
        stalled = [
            peer
            for peer in self.eager
            if self.progress[peer].stalled_ticks >= self.config.heartbeat_ticks
        ]
        self.eager.difference_update(stalled)

    def quorum_active(self) -> bool:
        active = {peer for peer, pr in self.progress.items() if pr.recent_active}
        active.add(self.id)
        return quorum.has_quorum(self.configuration.voters, active)

    def unreachable(self, peer: str) -> None:
        """The runtime could not deliver to ``peer``: its request is no
        longer in flight, so the next heartbeat resends."""
        progress = self.progress.get(peer)
        if progress is not None:
            progress.answered()
