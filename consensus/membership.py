"""Membership changes driven by the leader's runtime (dissertation ch. 4).

Runs in the request thread that asked for a change; whatever touches the
RaftNode runs on the loop thread through NodeRuntime.run_in_loop. Time
enters here (time.monotonic), never in the core.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .catchup import CatchUpRounds
from .core.configuration import Configuration
from .core.messages import Entry, EntryType
from .core.node import (
    ChangeRefusal,
    MembershipChangeRefused,
    Proposal,
    RaftNode,
    TransferRefusal,
    TransferRefused,
)
from .core.ready import Ready, Role
from .errors import CommandLost, CommandTimeout, NotLeader
from .peer_proof import NotProven, ask_proof
from .runtime_submit import wall_clock_ms


class MembershipError(Exception):
    """A refused or failed change; the message is one line for a person."""


class ChangeConflict(MembershipError):
    """Another change is in progress, or this change is not allowed now."""


class UnknownServer(MembershipError):
    """The server named is not a member of the configuration."""


class CatchupFailed(MembershipError):
    """The new server did not catch up in time; it was removed again."""


class NotAPeer(MembershipError):
    """The server to add did not prove it holds the cluster secret; nothing
    was changed."""


class LeaderNotReady(MembershipError):
    """A new leader has not committed an entry of its term yet (the 2015
    correction to single-server changes); nothing was appended."""


class ChangeInterrupted(MembershipError):
    """Leadership moved, or a commit timed out, part way through an add:
    the server may remain a learner."""


class TransferTimeout(MembershipError):
    """Leadership did not move in time (it may still move)."""


class LeadershipMoved(MembershipError):
    """This leader handed leadership to ``leader_id`` before removing
    itself; the new leader must carry out the removal."""

    def __init__(self, leader_id: str):
        super().__init__(f"leadership moved to {leader_id}")
        self.leader_id = leader_id


@dataclass(frozen=True, slots=True)
class ChangeResult:
    # The CONFIG entry holding ``configuration`` (already there when
    # ``changed`` is False).
    index: int
    term: int
    configuration: Configuration
    changed: bool


@dataclass(frozen=True, slots=True)
class ServerView:
    """One member as this node sees it; progress fields only on a leader."""

    id: str
    voter: bool
    role: str
    match_index: int | None = None
    next_index: int | None = None
    last_contact_s: float | None = None  # seconds since its last answer
    # While the leader sends it a snapshot (Raft §7): bytes sent, of size.
    snapshot_bytes_sent: int | None = None
    snapshot_size: int | None = None


def _add_learner(address: str) -> Callable[[Configuration], Configuration]:
    def change(c: Configuration) -> Configuration:
        if address in c.members:
            return c
        return Configuration(c.voters, c.learners | {address})

    return change


def _promote(address: str) -> Callable[[Configuration], Configuration]:
    def change(c: Configuration) -> Configuration:
        if address in c.voters:
            return c
        if address not in c.learners:
            raise ChangeConflict(f"{address} is no longer a learner")
        return Configuration(c.voters | {address}, c.learners - {address})

    return change


def _remove(address: str, learner_only: bool = False):
    def change(c: Configuration) -> Configuration:
        if learner_only and address not in c.learners:
            return c
        if address not in c.members:
            raise UnknownServer(f"{address} is not a member of the cluster")
        if c.voters == {address}:
            raise ChangeConflict(f"{address} is the only voter; it cannot be removed")
        return Configuration(c.voters - {address}, c.learners - {address})

    return change


def server_views(status) -> list[ServerView]:
    """The members in a NodeStatus as that node sees them, with its
    replication progress when it leads (status.peers)."""
    peers = {peer.id: peer for peer in status.peers}
    views = []
    for server in status.servers:
        if server.id == status.id:
            role = status.role
        elif server.id == status.leader:
            role = Role.LEADER.value
        else:
            role = (Role.FOLLOWER if server.voter else Role.LEARNER).value
        peer = peers.get(server.id)
        contact = peer.last_contact_s if peer else None
        views.append(
            ServerView(
                server.id,
                server.voter,
                role,
                match_index=peer.match_index if peer else None,
                next_index=peer.next_index if peer else None,
                last_contact_s=round(contact, 3) if contact is not None else None,
                snapshot_bytes_sent=(
                    peer.snapshot_bytes_sent if sending_snapshot(peer) else None
                ),
                snapshot_size=peer.snapshot_size if sending_snapshot(peer) else None,
            )
        )
    return views


def sending_snapshot(peer) -> bool:
    return peer is not None and peer.snapshot_index is not None


class Membership:
    """The leader's side of addserver, removeserver and transferleader."""

    def __init__(
        self,
        runtime,
        catchup_timeout_s: float,
        election_timeout_s: float,
        poll_s: float,
        secret: str = "",
        ssl_context=None,
    ):
        self._runtime = runtime
        # A server to add proves it holds the secret first (peer_proof.py).
        self._secret = secret
        self._ssl_context = ssl_context
        self.node_id = runtime.node_id
        self.catchup_timeout_s = catchup_timeout_s
        self.election_timeout_s = election_timeout_s
        self.poll_s = poll_s
        # One change (or transfer) at a time on this server; the core also
        # refuses a CONFIG entry while another is uncommitted.
        self._busy = threading.Lock()

    # --- request threads ---------------------------------------------------

    def add_server(
        self, address: str, commit_timeout_s: float, requested_by: str | None = None
    ) -> ChangeResult:
        """Dissertation §4.2.1: join as a learner, catch up, then vote.
        ``requested_by`` (who asked) goes into each CONFIG entry.

        CatchupFailed (the learner removed again) if it has not caught up
        within catchup_timeout_s.
        """
        with self._exclusive():
            status = self._leader_status()
            if address in status.configuration.voters:
                return self._change(_promote(address), commit_timeout_s, requested_by)
            if self._secret:
                # Before the learner is in the configuration, which would
                # make this node send it entries and the secret itself.
                try:
                    ask_proof(
                        address,
                        self.node_id,
                        self._secret,
                        ssl_context=self._ssl_context,
                    )
                except NotProven as exc:
                    raise NotAPeer(
                        f"{address} did not prove it holds the cluster secret"
                        f" ({exc}); nothing was changed"
                    ) from None
            self._change(_add_learner(address), commit_timeout_s, requested_by)
            try:
                deadline = time.monotonic() + self.catchup_timeout_s
                if self._catch_up(address, deadline):
                    return self._change(
                        _promote(address), commit_timeout_s, requested_by
                    )
                self._change(
                    _remove(address, learner_only=True), commit_timeout_s, requested_by
                )
            except (NotLeader, CommandTimeout, CommandLost, LeaderNotReady) as e:
                raise ChangeInterrupted(
                    f"the change was interrupted ({e}); {address} may "
                    "remain a learner: retry addserver, or removeserver it"
                ) from None
            raise CatchupFailed(
                f"{address} did not catch up within {self.catchup_timeout_s:g} s "
                "(is it running and reachable?); it was removed again and the "
                "configuration is as before"
            )

    def remove_server(
        self, address: str, commit_timeout_s: float, requested_by: str | None = None
    ) -> ChangeResult:
        """Dissertation §4.2.2. A leader removing itself first hands
        leadership over (§3.10), raising LeadershipMoved; if that fails it
        removes itself and steps down once the change commits."""
        with self._exclusive():
            status = self._leader_status()
            configuration = status.configuration
            if address not in configuration.members:
                raise UnknownServer(f"{address} is not a member of the cluster")
            if address == self.node_id and configuration.voters - {address}:
                try:
                    raise LeadershipMoved(self._hand_over(None))
                except (TransferTimeout, ChangeConflict):
                    pass  # fall back: lead until the change commits
            return self._change(_remove(address), commit_timeout_s, requested_by)

    def transfer_leadership(self, to: str | None) -> str:
        """Dissertation §3.10: hand leadership to ``to`` (None: the most
        up-to-date voter); returns the leader once it has moved."""
        with self._exclusive():
            return self._hand_over(to)

    # --- steps of a change -------------------------------------------------

    @contextlib.contextmanager
    def _exclusive(self):
        if not self._busy.acquire(blocking=False):
            raise ChangeConflict(
                f"another membership change or leadership transfer is in "
                f"progress on {self.node_id}"
            )
        try:
            yield
        finally:
            self._busy.release()

    def _leader_status(self):
        status = self._runtime.run_in_loop(lambda node: (node.status(), Ready()))
        if status.role is not Role.LEADER:
            raise NotLeader(status.leader_id)
        return status

    def _change(
        self, change, commit_timeout_s: float, requested_by: str | None
    ) -> ChangeResult:
        """Append the CONFIG entry ``change`` makes of the configuration and
        wait until it is committed and applied."""
        # A new leader commits its NOOP within a round trip; wait for it
        # rather than refuse (dissertation §4.1, 2015 correction).
        ready_by = time.monotonic() + max(2 * self.election_timeout_s, 1.0)
        while True:
            outcome = self._runtime.run_in_loop(
                lambda node: self._propose(node, change, requested_by)
            )
            if not isinstance(outcome, LeaderNotReady):
                break
            if time.monotonic() >= ready_by:
                raise outcome
            time.sleep(self.poll_s)
        if isinstance(outcome, Exception):
            raise outcome
        if isinstance(outcome, ChangeResult):
            return outcome
        entry, slot, configuration = outcome
        if not slot.wait(commit_timeout_s):
            raise CommandTimeout(
                f"the configuration change was not committed within "
                f"{commit_timeout_s:g} s; it may or may not commit"
            )
        if slot.error is not None:
            raise slot.error
        return ChangeResult(entry.index, entry.term, configuration, True)

    def _propose(self, node: RaftNode, change, requested_by: str | None):
        """Loop thread: the CONFIG entry, its commit slot and the new
        configuration; a ChangeResult if nothing changes; or an error."""
        try:
            # The core's rules (dissertation §4.1) before computing the
            # change: a refusal wins over what the change itself raises.
            node.check_membership_change()
        except NotLeader as e:
            return e, Ready()
        except MembershipChangeRefused as e:
            return self._change_refused(e), Ready()
        status = node.status()
        try:
            configuration = change(status.configuration)
        except MembershipError as e:
            return e, Ready()
        if configuration == status.configuration:
            result = ChangeResult(
                status.configuration_index,
                status.configuration_term,
                configuration,
                False,
            )
            return result, Ready()
        # Who asked and when travel with the entry, so that every server
        # records the same (issue 10; the state machine's MembershipChange).
        proposal = Proposal(
            configuration.to_json(),
            requested_by,
            type=EntryType.CONFIG,
            timestamp_ms=wall_clock_ms(),
        )
        try:
            ready = node.propose([proposal])
        except NotLeader as e:
            return e, Ready()
        except MembershipChangeRefused as e:
            return self._change_refused(e), Ready()
        entry: Entry = ready.entries_to_persist[-1]
        return (entry, self._runtime.watch_entry(entry), configuration), ready

    def _change_refused(self, refusal: MembershipChangeRefused) -> MembershipError:
        if refusal.reason is ChangeRefusal.LEADER_NOT_READY:
            return LeaderNotReady(
                f"{self.node_id} was just elected and has not committed an entry "
                "of its term yet; nothing was appended"
            )
        return ChangeConflict(str(refusal))

    def _catch_up(self, address: str, deadline: float) -> bool:
        """Poll the leader's progress for ``address`` through its rounds."""
        rounds = CatchUpRounds(self.election_timeout_s, deadline)
        while True:
            last_index, match_index = self._progress(address)
            verdict = rounds.observe(time.monotonic(), last_index, match_index)
            if verdict is not None:
                return verdict
            time.sleep(self.poll_s)

    def _progress(self, address: str) -> tuple[int, int]:
        """(the leader's last index, ``address``'s match_index)."""

        def read(node: RaftNode):
            status = node.status()
            if status.role is not Role.LEADER:
                return NotLeader(status.leader_id), Ready()
            peer = status.progress.get(address)
            if peer is None:
                return ChangeConflict(f"{address} left the configuration"), Ready()
            return (status.last_log_index, peer.match_index), Ready()

        outcome = self._runtime.run_in_loop(read)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _hand_over(self, to: str | None) -> str:
        """Start a transfer and wait until another server leads."""

        def start(node: RaftNode):
            try:
                ready = node.transfer_leadership(to)
            except NotLeader as e:
                return e, Ready()
            except TransferRefused as e:
                if e.reason is TransferRefusal.UNKNOWN_SERVER:
                    error = UnknownServer(f"{to} is not a member of the cluster")
                elif e.reason is TransferRefusal.NOT_A_VOTER:
                    error = ChangeConflict(f"{to} is a learner, not a voter")
                else:
                    error = ChangeConflict(str(e))
                return error, Ready()
            if to == self.node_id:
                return self.node_id, ready
            return node.status().transfer_target, ready

        target = self._runtime.run_in_loop(start)
        if isinstance(target, Exception):
            raise target
        if target == self.node_id:
            return target
        # The core drops a transfer after an election timeout (§3.10).
        wait_s = 2 * self.election_timeout_s + 0.5
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            status = self._runtime.status()
            if status.role != Role.LEADER.value and status.leader not in (
                None,
                self.node_id,
            ):
                return status.leader
            time.sleep(self.poll_s)
        raise TransferTimeout(
            f"leadership did not move to {target} within {wait_s:.1f} s; "
            "it may still move"
        )
