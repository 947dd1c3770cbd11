"""The runtime's side of linearizable reads (dissertation §6.4; the core's
side is consensus/core/read_index.py): request threads ask the loop for a
read index and wait until the state machine has applied through it.

A leader's reads that arrive together go to the core in one call, so they
share one round of heartbeats; a follower asks the leader for the index
over peer RPC (consensus/peer_reads.py) and waits for its own apply, so
reads spread over the cluster as etcd's do.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from dataclasses import dataclass

from .core.ready import Ready, Role
from .errors import CommandTimeout, NotLeader
from .peer_reads import PeerReads
from .slots import Slot, Then

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Read:
    slot: Slot | Then


class ReadRuntimeMixin:
    """Mixed into NodeRuntime, which calls _init_reads() at construction,
    _start_reads() with each batch's _Read items, and _finish_reads() and
    _notify_applied() after handling each Ready."""

    def _init_reads(self, secret: str, ssl_context) -> None:
        self.peer_reads = PeerReads(self.node_id, secret, ssl_context)
        # Loop thread only: ctx -> the slot of the request thread waiting.
        self._read_slots: dict[int, object] = {}
        self._next_read_ctx = 0
        # Notified whenever the state machine has applied more.
        self._applied = threading.Condition()
        # The state machine's last_applied as of its last committed apply
        # (guarded by _applied; written by the loop thread only). Its own
        # field moves entry by entry inside
        # the apply transaction, before another connection can see the
        # rows: a read that waited on it could be served from the state
        # before the entries it waited for (a stale linearizable read).
        self._visible_applied = 0
        # (index, n, fn) to call once _visible_applied reaches index
        # (inline reads: when_applied; guarded by _applied).
        self._applied_waiters: list = []
        self._applied_order = itertools.count()

    # --- request threads ---------------------------------------------------

    def linearizable_index(self, timeout: float) -> int:
        """The index a linearizable read must wait for here: this leader's
        confirmed read index, or a follower's from its leader. Raises
        NotLeader (no leader to ask; the caller answers 503),
        ReadIndexUnavailable or CommandTimeout."""
        status = self.status()
        if status is not None and status.role == "leader":
            return self.read_index(timeout)
        leader = status.leader if status is not None else None
        members = {server.id for server in status.servers} if status else set()
        if leader is None or leader == self.node_id or leader not in members:
            # A leader hint comes from a peer: only a member is asked.
            raise NotLeader(None)
        return self.peer_reads.read_index(leader, timeout)

    def read_index(self, timeout: float) -> int:
        """The read index of a linearizable read on this leader: serve the
        read from the state machine once wait_applied(it) returns. Raises
        NotLeader (ask the leader, or retry) or CommandTimeout."""
        slot = Slot()
        self._inbox.put(_Read(slot))
        if not slot.wait(timeout):
            raise CommandTimeout(f"leadership not confirmed within {timeout:g} s")
        if slot.error is not None:
            raise slot.error
        return slot.value

    def read_index_later(self, then) -> None:
        """read_index without waiting: ``then(index)`` on the loop thread
        once this leader has confirmed its read index, or ``then(exc)`` with
        NotLeader. No timeout: the caller keeps its own deadline."""
        self._inbox.put(
            _Read(Then(lambda slot: then(slot.error or slot.value), self._due))
        )

    def when_applied(self, index: int, fn) -> None:
        """Call ``fn()`` once the state machine has applied through
        ``index`` and readers may see it: now, on this thread, if it has,
        else on the loop thread. ``fn`` must not block."""
        with self._applied:
            if self._visible_applied < index:
                heapq.heappush(
                    self._applied_waiters, (index, next(self._applied_order), fn)
                )
                return
        fn()

    def wait_applied(self, index: int, timeout: float) -> bool:
        """Block until the state machine has applied through ``index``;
        False if ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        with self._applied:
            while self._visible_applied < index:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._applied.wait(remaining)
        return True

    def wait_for_apply(self, after: int, timeout: float) -> int:
        """Block until last_applied passes ``after`` or ``timeout`` passes;
        the last_applied then (watches poll with it)."""
        deadline = time.monotonic() + timeout
        with self._applied:
            while self._visible_applied <= after:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._applied.wait(remaining)
            return self._visible_applied

    # --- the loop thread ---------------------------------------------------

    def _start_reads(self, reads: list[_Read]) -> Ready:
        contexts = []
        for read in reads:
            self._next_read_ctx += 1
            self._read_slots[self._next_read_ctx] = read.slot
            contexts.append(self._next_read_ctx)
        try:
            return self._node.read_index(contexts)
        except NotLeader as exc:
            for ctx in contexts:
                self._read_slots.pop(ctx).set(error=exc)
            return Ready()

    def _finish_reads(self, ready: Ready) -> None:
        for read in ready.read_states:
            slot = self._read_slots.pop(read.ctx, None)
            if slot is not None:
                slot.set(read.index)
        if ready.soft_state is not None and ready.soft_state.role is not Role.LEADER:
            # The core dropped the reads it held with its leadership.
            error = NotLeader(ready.soft_state.leader_id)
            for slot in self._read_slots.values():
                slot.set(error=error)
            self._read_slots.clear()

    def _notify_applied(self) -> None:
        """Called once what the state machine applied is committed (and at
        start, once it is loaded): readers may now see it."""
        due = []
        with self._applied:
            self._visible_applied = self._state_machine.last_applied
            self._applied.notify_all()
            waiters = self._applied_waiters
            while waiters and waiters[0][0] <= self._visible_applied:
                due.append(heapq.heappop(waiters)[2])
        for fn in due:
            try:
                fn()
            except Exception:
                # The loop thread must go on: the read it answers times out.
                logger.exception("answering an inline read failed")
