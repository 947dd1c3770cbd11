"""Snapshots: the one object the runtime owns for issue 9. It decides when
to take a snapshot, takes it on a thread of its own, runs one sender per
peer and holds the receiver; every outcome comes back through callbacks
that the runtime turns into inbox items. It never touches the RaftNode,
and writes the Raft database only in the methods marked "loop thread"."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .. import metrics
from .policy import SnapshotPolicy
from .receiver import SnapshotReceiver
from .restore import check_file, compact_log, log_matches, restore
from .sender import SendResult, SnapshotSender
from .store import SnapshotMeta, SnapshotStore
from .take import NothingToSnapshot
from .wire import SnapshotChunk

logger = logging.getLogger(__name__)


class Snapshots:
    """A node's snapshots.

    ``on_taken(meta)``: a snapshot was taken and is durable (snapshot
    thread). ``on_sent(result)``: a transfer to a peer ended (its sender's
    thread). ``on_received(meta, chunk)``: a leader's snapshot is complete
    and durable here (a request thread, before the last chunk is answered).
    Each should put an item on the runtime's inbox and return.
    """

    def __init__(
        self,
        data_dir: Path | str,
        db_path: Path | str,
        *,
        node_id: str,
        policy: SnapshotPolicy,
        on_taken: Callable[[SnapshotMeta], None],
        on_sent: Callable[[SendResult], None],
        on_received: Callable[[SnapshotMeta, SnapshotChunk], None],
        secret: str = "",
        sender_options: dict | None = None,
    ):
        self.store = SnapshotStore(data_dir)
        self.store.clean_temporary()
        self.db_path = Path(db_path)
        self.node_id = node_id
        self.policy = policy
        self.receiver = SnapshotReceiver(self.store, on_received, check_file)
        self._on_taken = on_taken
        self._on_sent = on_sent
        self._secret = secret
        self._sender_options = sender_options or {}
        self._taking: threading.Thread | None = None
        # The latest snapshot's index, kept here so that maybe_take, called
        # after every Ready, reads no directory. Written by the snapshot
        # thread before on_taken and by the loop thread (an int: atomic).
        latest = self.store.latest()
        self._covered = latest.last_included_index if latest else 0
        # Peer -> its transfer under way. Loop thread only.
        self._senders: dict[str, SnapshotSender] = {}

    # --- taking (loop thread decides, a thread of its own copies) ----------

    @property
    def covered(self) -> int:
        """The latest snapshot's last included index (0: none)."""
        return self._covered

    def maybe_take(self, last_applied: int) -> bool:
        """Loop thread, after a Ready is applied: start a snapshot if the
        policy asks for one and none is being taken. Returns whether it
        started one."""
        covered = self._covered
        if not self.policy.should_snapshot(last_applied, covered):
            return False
        if self._taking is not None and self._taking.is_alive():
            return False
        self._taking = threading.Thread(
            target=self._take, args=(covered + 1,), name="raft-snapshot", daemon=True
        )
        self._taking.start()
        return True

    def take_now(self) -> SnapshotMeta:
        """Take a snapshot at last_applied on the calling thread (not the
        loop's), whatever the policy; on_taken is called as for maybe_take.
        Raises NothingToSnapshot if the latest one covers last_applied."""
        meta = self._timed_take(self._covered + 1)
        self._covered = max(self._covered, meta.last_included_index)
        self._on_taken(meta)
        return meta

    def _take(self, min_index: int) -> None:
        try:
            meta = self._timed_take(min_index)
        except NothingToSnapshot:
            return
        except Exception:
            # The node goes on without it; the next Ready tries again.
            logger.exception("taking a snapshot failed")
            return
        self._covered = max(self._covered, meta.last_included_index)
        self._on_taken(meta)

    def _timed_take(self, min_index: int) -> SnapshotMeta:
        start = time.perf_counter()
        meta = self.store.take(self.db_path, min_index=min_index)
        metrics.SNAPSHOT_SECONDS.observe(time.perf_counter() - start)
        metrics.SNAPSHOTS.inc()
        metrics.SNAPSHOT_BYTES.set(meta.size)
        return meta

    def compact(self, meta: SnapshotMeta, through: int) -> None:
        """Loop thread, once the core has been told of ``meta`` and has
        dropped its entries through ``through`` (policy.compact_through):
        delete them from the stored log, then the older snapshots."""
        if through > 0:
            compact_log(self.store, through)
        self.store.remove_older_than(meta.last_included_index)

    # --- sending (leader) --------------------------------------------------

    def send(self, peer: str, term: int, index: int, snapshot_term: int):
        """Loop thread: stream the snapshot through ``index`` (of
        ``snapshot_term``), the one the core names, to ``peer`` unless a
        transfer of it in this term is under way. A newer file stands in
        for one already removed. Returns the sender, or None if no file
        covers ``index``."""
        wanted = self.store.find(index)
        if wanted is None or wanted.last_included_term != snapshot_term:
            latest = self.store.latest()
            if latest is None or latest.last_included_index < index:
                return None
            wanted = latest
        current = self._senders.get(peer)
        if current is not None and current.running:
            if current.term == term and current.snapshot.same_snapshot(wanted):
                return current
            current.cancel()
        sender = SnapshotSender(
            self.store,
            wanted,
            peer=peer,
            leader_id=self.node_id,
            term=term,
            on_done=self._on_sent,
            secret=self._secret,
            **self._sender_options,
        )
        self._senders[peer] = sender.start()
        return sender

    def sending(self, peer: str) -> SnapshotSender | None:
        """The transfer to ``peer`` under way, if any (for status)."""
        sender = self._senders.get(peer)
        return sender if sender is not None and sender.running else None

    def sent(self, result: SendResult) -> None:
        """Loop thread, when the runtime handles an on_sent item."""
        sender = self._senders.get(result.peer)
        if sender is not None and not sender.running:
            del self._senders[result.peer]

    def cancel_sends(self, keep: frozenset[str] = frozenset()) -> None:
        """Loop thread: stop the transfers to every peer not in ``keep``
        (all of them when this node stops leading)."""
        for peer in [p for p in self._senders if p not in keep]:
            self._senders.pop(peer).cancel()

    # --- receiving (follower) ----------------------------------------------

    def install(self, meta: SnapshotMeta, keep_log_after: bool | None = None) -> bool:
        """Loop thread: restore a received snapshot; returns whether the log
        after it was kept (Raft Figure 13: if the log holds the snapshot's
        last entry; ``keep_log_after`` says so when the core decided).
        Call StateMachine.load() next."""
        keep = log_matches(meta) if keep_log_after is None else keep_log_after
        restore(self.store, meta, keep_log_after=keep)
        self._covered = max(self._covered, meta.last_included_index)
        self.store.remove_older_than(meta.last_included_index)
        return keep

    def recover(self, last_applied: int) -> SnapshotMeta | None:
        """Loop thread, at open() before the core is built: a snapshot
        received and published but not restored before a crash is restored
        now. Returns it, or None."""
        latest = self.store.latest()
        if latest is None or latest.last_included_index <= last_applied:
            return None
        self.install(latest)
        return latest

    def close(self) -> None:
        self.cancel_sends()
        self.receiver.abandon()
