"""Where NodeRuntime meets consensus/snapshots (Raft §7, dissertation
chapter 5): taking a snapshot and compacting the log behind it, a leader
streaming its snapshot to a follower the log no longer serves, and a
follower restoring one. Every outcome of the snapshot threads comes back to
the loop thread as an inbox item; only the loop thread writes the Raft
database or touches the RaftNode."""

from __future__ import annotations

import logging

from .core.configuration import Configuration
from .core.messages import (
    InstallSnapshot,
    InstallSnapshotReply,
    Message,
    SnapshotMetadata,
    Unreachable,
)
from .core.node import RaftNode
from .core.ready import Ready
from .errors import CommandTimeout
from .snapshots.sender import Outcome, SendResult
from .snapshots.service import Snapshots
from .snapshots.store import SnapshotMeta
from .snapshots.wire import SnapshotChunk

logger = logging.getLogger(__name__)
# Operators' events, on stdout with the toy's lines (raftsite/settings.py).
event_log = logging.getLogger("raft")


def core_metadata(meta: SnapshotMeta) -> SnapshotMetadata:
    """The core's view of a snapshot file (dissertation Figure 5.1)."""
    configuration = (
        Configuration.from_json(meta.configuration)
        if meta.configuration
        else Configuration()
    )
    return SnapshotMetadata(
        meta.last_included_index,
        meta.last_included_term,
        meta.configuration_index,
        configuration,
    )


class RoutedTransport:
    """The transport apply_ready sends through: an InstallSnapshot goes to
    the snapshot sender, whose chunks carry the data; the rest to the peer
    RPC transport."""

    def __init__(self, transport, send_snapshot):
        self._transport = transport
        self._send_snapshot = send_snapshot

    def send(self, message: Message) -> None:
        if isinstance(message, InstallSnapshot):
            self._send_snapshot(message)
        else:
            self._transport.send(message)


class SnapshotRuntimeMixin:
    """NodeRuntime's snapshot side; uses its inbox, node and storage."""

    snapshots: Snapshots | None

    # --- taking and compacting ----------------------------------------------

    def take_snapshot(self, timeout: float = 60.0) -> SnapshotMeta:
        """Take a snapshot of the applied state now, whatever the policy,
        on the calling thread; return once it is durable and the log is
        compacted behind it. Raises NothingToSnapshot if the latest
        snapshot covers last_applied (or snapshots are off), CommandTimeout
        if the loop did not compact in time."""
        from .snapshots.take import NothingToSnapshot

        if self.snapshots is None:
            raise NothingToSnapshot("snapshots are off on this node")
        meta = self.snapshots.take_now()
        # The inbox is handled in order: once this runs, so has on_taken's.
        self.run_in_loop(lambda node: (None, Ready()), timeout)
        return meta

    def _on_snapshot_taken(self, meta: SnapshotMeta) -> None:
        # The snapshot thread (or take_snapshot's): hand over to the loop.
        self._post(lambda node: self._compact(node, meta))

    def _compact(self, node: RaftNode, meta: SnapshotMeta) -> Ready:
        index = meta.last_included_index
        try:
            expected = node.snapshot_metadata(index)
        except ValueError:
            # A leader's snapshot restored meanwhile moved the log past it.
            return Ready()
        if (expected.last_included_term, expected.configuration_index) != (
            meta.last_included_term,
            meta.configuration_index,
        ):
            logger.error(
                "snapshot %s does not match the log (%s); not compacting",
                meta.name,
                expected,
            )
            return Ready()
        status = node.status()
        through = self.snapshots.policy.compact_through(index, status.first_log_index)
        ready = node.compact(expected, through)
        self.snapshots.compact(meta, through)
        event_log.info(
            "Took snapshot through %d (%d bytes); log compacted through %d",
            index,
            meta.size,
            through,
        )
        return ready

    # --- sending (leader) ----------------------------------------------------

    def _send_snapshot(self, message: InstallSnapshot) -> None:
        # Loop thread, after the Ready that asked for it is durable.
        sender = None
        if self.snapshots is not None:
            sender = self.snapshots.send(
                message.dest,
                message.term,
                message.last_included_index,
                message.last_included_term,
            )
        if sender is None:
            logger.error(
                "no snapshot file through %d to send %s",
                message.last_included_index,
                message.dest,
            )
            self._deliver(Unreachable(0, message.dest, self.node_id))
            return
        self._snapshot_requests[message.dest] = message

    def _on_snapshot_sent(self, result: SendResult) -> None:
        # A sender's thread: hand over to the loop.
        self._post(lambda node: self._snapshot_sent(node, result))

    def _snapshot_sent(self, node: RaftNode, result: SendResult) -> Ready:
        self.snapshots.sent(result)
        if result.outcome is Outcome.CANCELLED:
            return Ready()  # replaced by a newer transfer, or not leading
        request = self._snapshot_requests.pop(result.peer, None)
        if request is None:
            return Ready()
        reply: Message
        if result.outcome is Outcome.INSTALLED:
            event_log.info(
                "Sent snapshot through %d to %s (%d bytes in %.1f s)",
                result.snapshot.last_included_index,
                result.peer,
                result.bytes_sent,
                result.seconds,
            )
        if result.outcome in (Outcome.INSTALLED, Outcome.STALE_TERM):
            # Figure 5.3: the follower's term; in the request's term it
            # means the follower holds the snapshot's entries.
            reply = InstallSnapshotReply(
                term=result.term,
                source=result.peer,
                dest=self.node_id,
                last_included_index=result.snapshot.last_included_index,
                request_term=request.term,
                request_id=request.request_id,
            )
        else:
            logger.warning(
                "snapshot to %s %s: %s",
                result.peer,
                result.outcome.value,
                result.detail,
            )
            reply = Unreachable(0, result.peer, self.node_id)
        return node.step(reply)

    def _snapshot_liveness(self, node: RaftNode) -> None:
        """Loop thread, at each tick: a peer acknowledging chunks is alive
        for check quorum (see RaftNode.heard_from_peer)."""
        if self.snapshots is None:
            return
        for peer in list(self._snapshot_requests):
            sender = self.snapshots.sending(peer)
            if sender is None:
                continue
            sent = sender.bytes_sent
            if sent != self._snapshot_bytes_seen.get(peer):
                self._snapshot_bytes_seen[peer] = sent
                node.heard_from_peer(peer)

    def _stop_sending(self, keep: frozenset[str] = frozenset()) -> None:
        if self.snapshots is not None:
            self.snapshots.cancel_sends(keep)
        for peer in [p for p in self._snapshot_requests if p not in keep]:
            del self._snapshot_requests[peer]

    # --- receiving (follower) ------------------------------------------------

    def snapshot_chunk_received(self, leader: str, term: int) -> None:
        """A request thread wrote a chunk of ``leader``'s snapshot: the
        leader is alive (see RaftNode.heard_from_leader)."""
        self._post(lambda node: (node.heard_from_leader(leader, term), Ready())[1])

    def _on_snapshot_received(self, meta: SnapshotMeta, chunk: SnapshotChunk) -> None:
        """A request thread, before the last chunk is answered: step the
        InstallSnapshot now that the file is durable (Figure 5.3: the
        reply to the last chunk says the follower holds it)."""
        snapshot = core_metadata(meta)
        message = InstallSnapshot(
            term=chunk.term,
            source=chunk.source,
            dest=self.node_id,
            last_included_index=snapshot.last_included_index,
            last_included_term=snapshot.last_included_term,
            configuration_index=snapshot.configuration_index,
            configuration=snapshot.configuration,
        )
        self.handle_rpc(message, timeout=self._settings.restore_timeout_s)

    def _install(self, ready: Ready) -> None:
        """Loop thread, before the rest of ``ready``: the core replaced its
        log with a leader's snapshot (Figure 5.3 rules 7-8); replace the
        stored log and the applied state with it in one fsynced
        transaction, before anything of the Ready is sent."""
        snapshot = ready.snapshot
        index = snapshot.last_included_index
        meta = self.snapshots.store.find(index) if self.snapshots else None
        if meta is None or meta.last_included_term != snapshot.last_included_term:
            raise RuntimeError(f"the core restored {snapshot}, no such file: {meta}")
        self.snapshots.install(meta, keep_log_after=False)
        self._storage.restored(index)
        self._state_machine.load()
        event_log.info(
            "Restored snapshot through %d from leader (%d bytes)", index, meta.size
        )
        # Whether a client's entry at or below the snapshot committed is
        # not known here any more: its outcome is unknown, as on a timeout.
        for waiting_index in [i for i in self._waiters if i <= index]:
            for waiter in self._waiters.pop(waiting_index):
                waiter.slot.set(
                    error=CommandTimeout("outcome unknown: replaced by a snapshot")
                )
