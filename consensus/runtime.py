"""NodeRuntime: the one thread that owns a RaftNode, and its public face.

Views and the ticker put work on the inbox; the loop thread steps the core
and carries out each Ready with ``apply_ready``: a leader's AppendEntries may
leave before its own write (dissertation §10.2.1), every other message and
every reply waits for the fsynced save (Raft Figure 2: persist before
responding), then committed entries are applied. Nothing else touches the
RaftNode.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import metrics
from .core.api import THRIFTY_MAX_LAG
from .core.messages import NO_SNAPSHOT, REPLIES, Message, Unreachable
from .core.node import RaftConfig, RaftNode, bootstrap_entries
from .core.ready import Ready, Role
from .datadir import DataDirectoryDamaged, DataDirLock
from .errors import (
    CommandLost,
    CommandTimeout,
    NotLeader,
)
from .inbox import Inbox
from .ready_path import apply_ready
from .runtime_reads import ReadRuntimeMixin, _Read
from .runtime_snapshots import RoutedTransport, SnapshotRuntimeMixin, core_metadata
from .runtime_submit import SubmitRuntimeMixin, _Propose, _ProposeBatch
from .slots import Slot, Then, run_due
from .snapshots.policy import SnapshotPolicy
from .snapshots.service import Snapshots
from .state_machine import STORAGE_ERRORS, Answer, StateMachine
from .status import NodeStatus, PeerInfo, ServerInfo
from .storage import Storage
from .transport import Transport

event_log = logging.getLogger("raft")

# gunicorn's master halts, rather than boot a new worker, when a worker exits
# with this code (its WORKER_BOOT_ERROR). A node whose disk failed must stay
# down: a new worker could read back pages a failed fsync never wrote, and
# acknowledge entries no disk holds.
STOP_NODE_EXIT_CODE = 3
logger = logging.getLogger(__name__)


def current_runtime() -> NodeRuntime | None:
    """The NodeRuntime serving in this process, or None."""
    from django.apps import apps

    return apps.get_app_config("consensus").runtime


# Inbox items.
@dataclass(slots=True)
class _Tick:
    pass


@dataclass(slots=True)
class _Incoming:
    message: Message
    slot: Slot | Then | None  # set for requests answered over HTTP


@dataclass(slots=True)
class _Stop:
    pass


@dataclass(slots=True)
class _Call:
    # Runs on the loop thread: fn(node) -> (value for slot, Ready to handle).
    fn: Callable[[RaftNode], tuple[object, Ready]]
    slot: Slot


@dataclass(slots=True)
class _Waiter:
    term: int
    slot: Slot


@dataclass
class RuntimeSettings:
    tick_seconds: float = 0.05
    heartbeat_ticks: int = 2
    election_timeout_ticks: int = 10
    # Thrifty replication (consensus/core/leader.py).
    thrifty: bool = True
    secret: str = ""
    # With TLS, for every call to a peer (consensus/tls.py); None: plain HTTP.
    tls_context: ssl.SSLContext | None = None
    max_batch: int = 4096  # inbox items folded into one Ready
    rng_seed: int | None = None
    # Dissertation §4.2.1: how long a new server may take to catch up.
    catchup_timeout_s: float = 30.0
    # How long open() waits for another runtime to let go of the data
    # directory (a gunicorn reload's old worker draining) before refusing.
    lock_timeout_s: float = 20.0
    # The pid the data directory's lock names to others (default: ours).
    owner_pid: int | None = None
    # Raft §7: when to take snapshots (None: never; needs a data_dir).
    snapshot_policy: SnapshotPolicy | None = None
    # How long a follower may take to restore a leader's snapshot.
    restore_timeout_s: float = 60.0
    extra: dict = field(default_factory=dict)


class NodeRuntime(SnapshotRuntimeMixin, ReadRuntimeMixin, SubmitRuntimeMixin):
    def __init__(
        self,
        node_id: str,
        cluster: list[str],
        settings: RuntimeSettings,
        *,
        storage: Storage | None = None,
        transport: Transport | None = None,
        state_machine: StateMachine | None = None,
        data_dir: Path | None = None,
    ):
        """``storage``, ``transport`` and ``state_machine`` replace the
        built-in ones (tests give fakes). With ``data_dir`` the runtime holds
        its lock (consensus/datadir.py) from open() until its loop has
        closed the database."""
        self.node_id = node_id
        self._lock = DataDirLock(data_dir) if data_dir is not None else None
        self._cluster = cluster
        self._settings = settings
        self._inbox = Inbox()
        if storage is None:
            storage = Storage()
        if transport is None:
            transport = Transport(
                node_id,
                self._deliver,
                settings.secret,
                ssl_context=settings.tls_context,
                watcher=self._inbox,
            )
        if state_machine is None:
            state_machine = StateMachine(node_id)
        self._storage = metrics.Timed(storage, "save", metrics.SAVE_SECONDS)
        self._transport = transport
        self._state_machine = state_machine
        # As apply_ready calls it: each applied batch timed.
        self._timed_state_machine = metrics.Timed(
            state_machine, "apply_batch", metrics.APPLY_SECONDS
        )
        self._last_leader: str | None = None
        # Index -> the clients waiting for an entry at that index. More than
        # one when a leader, deposed and re-elected, appends a new entry at
        # the index of an old one of its own that is not known lost yet.
        self._waiters: dict[int, list[_Waiter]] = {}
        # Inline clients' answers, given once the status counts them.
        self._due: list[Then] = []
        # Peer -> time.monotonic() of its last reply, for operators.
        self._last_contact: dict[str, float] = {}
        self._node: RaftNode | None = None
        self._status: NodeStatus | None = None
        self._data_dir = Path(data_dir) if data_dir is not None else None
        # Built by open() once the data directory is ours.
        self.snapshots: Snapshots | None = None
        # Peer -> the InstallSnapshot its transfer answers (loop thread).
        self._snapshot_requests: dict[str, Message] = {}
        # Peer -> bytes of its transfer seen sent at the last tick.
        self._snapshot_bytes_seen: dict[str, int] = {}
        self._transport_routed = RoutedTransport(transport, self._send_snapshot)
        self._init_reads(settings.secret, settings.tls_context)
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._configuration = None  # the core's, as last published
        self._servers: tuple[ServerInfo, ...] = ()  # its servers, for status
        from .membership import Membership  # it imports this module

        self.membership = Membership(
            self,
            catchup_timeout_s=settings.catchup_timeout_s,
            election_timeout_s=settings.election_timeout_ticks * settings.tick_seconds,
            poll_s=min(settings.tick_seconds, 0.02),
            secret=settings.secret,
            ssl_context=settings.tls_context,
        )

    # --- lifecycle -------------------------------------------------------

    def start(self) -> None:
        self.open()
        for name, target in (("raft-loop", self._loop), ("raft-ticker", self._ticker)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def open(self) -> None:
        """Restore the node from storage, without starting any thread
        (tests then step the loop with _run_once)."""
        if self._lock is not None:
            # One runtime per database, in any process: two could grant two
            # votes in one term (Raft Figure 2: at most one). Taken before
            # the database is opened; a reload's new worker waits here for
            # the old one to stop.
            self._lock.acquire(self._settings.lock_timeout_s, self._settings.owner_pid)
            event_log.info(
                "Opened data directory %s (pid %d)", self._lock.data_dir, os.getpid()
            )
        bootstrap = (
            bootstrap_entries(self._cluster) if self.node_id in self._cluster else []
        )
        restored = self._storage.prepare(bootstrap)
        snapshot = NO_SNAPSHOT
        if self._settings.snapshot_policy is not None and self._data_dir is not None:
            self.snapshots = self._open_snapshots()
            if self.snapshots.recover(restored.last_applied) is not None:
                restored = self._storage.load()
            latest = self.snapshots.store.latest()
            if latest is not None:
                snapshot = core_metadata(latest)
        first = restored.entries[0].index if restored.entries else None
        if first is not None and first > snapshot.last_included_index + 1:
            raise DataDirectoryDamaged(
                f"{self._data_dir}: the log starts at index {first} but no"
                " snapshot covers the entries before it (latest:"
                f" {snapshot.last_included_index})"
            )
        # The applied state is on disk with last_applied: nothing to replay.
        self._state_machine.load()
        self._notify_applied()
        seed = self._settings.rng_seed
        rng = random.Random(seed if seed is not None else os.urandom(16))
        self._node = RaftNode(
            RaftConfig(
                id=self.node_id,
                election_timeout_ticks=self._settings.election_timeout_ticks,
                heartbeat_ticks=self._settings.heartbeat_ticks,
                thrifty=self._settings.thrifty,
                thrifty_max_lag=self._thrifty_max_lag(),
            ),
            rng,
            restored.hard_state,
            restored.entries,
            last_applied=restored.last_applied,
            snapshot=snapshot,
        )
        self._publish_status()

    def _open_snapshots(self) -> Snapshots:
        from django.db import connection

        return Snapshots(
            self._data_dir,
            connection.settings_dict["NAME"],
            node_id=self.node_id,
            policy=self._settings.snapshot_policy,
            on_taken=self._on_snapshot_taken,
            on_sent=self._on_snapshot_sent,
            on_received=self._on_snapshot_received,
            secret=self._settings.secret,
            sender_options={"ssl_context": self._settings.tls_context},
        )

    @property
    def snapshot_receiver(self):
        """Where /raft/install_snapshot writes chunks (None: no snapshots)."""
        return self.snapshots.receiver if self.snapshots is not None else None

    def stop(self) -> None:
        self._stopped.set()
        self._inbox.put(_Stop())
        for thread in self._threads:
            thread.join(timeout=5)
        self._transport.close()
        if self.snapshots is not None:
            self.snapshots.close()
        if not any(thread.is_alive() for thread in self._threads):
            # The loop has closed the database (or never ran). One still
            # running keeps the lock until the process exits.
            self._release_lock()

    def _release_lock(self) -> None:
        if self._lock is not None and self._lock.held:
            event_log.info(
                "Closed data directory %s (pid %d)", self._lock.data_dir, os.getpid()
            )
            self._lock.release()

    # --- called from request threads ---------------------------------------

    def status(self) -> NodeStatus:
        """A snapshot of this node's state; never blocks on the loop."""
        return self._status

    def handle_rpc(self, message: Message, timeout: float = 2.0) -> Message | None:
        """Step a peer's request; return the reply once it is durable."""
        slot = Slot()
        self._inbox.put(_Incoming(message, slot))
        if not slot.wait(timeout):
            raise CommandTimeout("the node did not process the request in time")
        return slot.value

    @property
    def inbox(self) -> Inbox:
        """The loop thread's inbox, which also watches sockets for it."""
        return self._inbox

    def call_in_loop(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` on the loop thread soon; nobody waits for it."""
        self._post(lambda _node: fn() or Ready())

    def step_later(self, message: Message, then: Callable[[Message | None], None]):
        """Step a peer's request without waiting: ``then`` gets the reply on
        the loop thread once it is durable (an inline request's answer,
        raftsite/inline_worker.py). ``then`` must not block."""
        self._inbox.put(_Incoming(message, Then(lambda slot: then(slot.value))))

    # --- membership (driven by consensus/membership.py) --------------------

    def run_in_loop(self, fn, timeout: float = 5.0):
        """Run ``fn(node)`` on the loop thread, which handles the Ready it
        returns with the rest of its batch; return fn's value."""
        slot = Slot()
        self._inbox.put(_Call(fn, slot))
        if not slot.wait(timeout):
            raise CommandTimeout("the node did not process the request in time")
        return slot.value

    def watch_entry(self, entry) -> Slot:
        """Loop thread: a slot set once ``entry`` is applied (its Applied),
        or with CommandLost once another entry commits at its index."""
        slot = Slot()
        self._watch(entry, slot)
        return slot

    def _watch(self, entry, slot: Slot) -> None:
        self._waiters.setdefault(entry.index, []).append(_Waiter(entry.term, slot))

    def _configuration_changed(self, configuration) -> None:
        # One sender thread per member: close those of removed servers.
        self._configuration = configuration
        peers = configuration.members - {self.node_id}
        self._transport.retain(peers)
        self._stop_sending(keep=frozenset(peers))

    def _post(self, fn: Callable[[RaftNode], Ready]) -> None:
        """Have the loop thread run ``fn(node)`` and handle its Ready; no
        one waits for it."""
        self._inbox.put(_Call(lambda node: (None, fn(node)), Slot()))

    # --- the loop thread -------------------------------------------------

    def _deliver(self, message: Message) -> None:
        if not isinstance(message, Unreachable):
            self._last_contact[message.source] = time.monotonic()
        self._inbox.put(_Incoming(message, None))

    def _ticker(self) -> None:
        while not self._stopped.wait(self._settings.tick_seconds):
            self._inbox.put(_Tick())

    def _loop(self) -> None:
        try:
            while self._run_once():
                pass
        except BaseException as exc:
            # If persisting or stepping fails the node must stop: carrying on
            # could acknowledge what is not on disk. A failed disk is the
            # operator's to see in one line; anything else is a bug, logged
            # with its traceback.
            if isinstance(exc, STORAGE_ERRORS):
                logger.error(
                    "error: storage failed (%s); stopping the node",
                    " ".join(str(exc).split()) or type(exc).__name__,
                )
            else:
                logger.exception("raft loop failed; stopping the node")
            os._exit(STOP_NODE_EXIT_CODE)
        finally:
            self._inbox.close()
            self._storage.close()
            self._release_lock()

    def _run_once(self) -> bool:
        items = [self._inbox.get()]
        while len(items) < self._settings.max_batch:
            try:
                items.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        metrics.LOOP_BATCH.observe(len(items))
        metrics.INBOX_DEPTH.set(self._inbox.qsize())
        node = self._node
        ready = Ready()
        answers: list[tuple[Slot, Message | None]] = []
        # Proposals first, so replies stepped below carry them at once.
        proposals = []
        for item in items:
            if isinstance(item, _Propose):
                proposals.append(item)
            elif isinstance(item, _ProposeBatch):
                proposals.extend(item.items)
        if proposals:
            ready.merge(self._propose(proposals))
        reads = [item for item in items if isinstance(item, _Read)]
        if reads:
            ready.merge(self._start_reads(reads))
        ticked = False
        for item in items:
            if isinstance(item, _Tick):
                # One tick per batch: ticks that queued while the loop was
                # busy (a long fsync, a snapshot restore) measure this
                # node's own delay, not a silent leader; counting them all
                # would start an election the leader gave no cause for.
                if not ticked:
                    ticked = True
                    self._snapshot_liveness(node)
                    ready.merge(node.tick())
            elif isinstance(item, _Incoming):
                step = node.step(item.message)
                if item.slot is not None:
                    answers.append((item.slot, self._take_reply(step, item.message)))
                ready.merge(step)
            elif isinstance(item, _Call):
                value, step = item.fn(node)
                item.slot.set(value)
                ready.merge(step)
            elif isinstance(item, _Stop):
                return False
        self._handle(ready, answers)
        run_due(self._due)
        return True

    def _propose(self, items: list[_Propose]) -> Ready:
        fresh = []
        # Only the leader answers a pair from its applied state: a
        # follower's may lag behind the entry that ended the pair's session
        # (it forwards the command, on NotLeader below).
        leading = self._node.leader_state is not None
        firsts = self._lookup(items) if leading else [None] * len(items)
        for item, first in zip(items, firsts, strict=True):
            if first is not None:
                # Already applied (the first answer), or its session has
                # ended (Expired): nothing to append.
                item.slot.set(first)
            else:
                fresh.append(item)
        if not fresh:
            return Ready()
        try:
            ready = self._node.propose([item.proposal for item in fresh])
        except NotLeader as exc:
            metrics.PROPOSALS_FAILED.inc(len(fresh))
            for item in fresh:
                item.slot.set(error=exc)
            return Ready()
        for item, entry in zip(
            fresh, ready.entries_to_persist[-len(fresh) :], strict=False
        ):
            self._watch(entry, item.slot)
        return ready

    def _thrifty_max_lag(self) -> int:
        # Half the entries a snapshot leaves in the log: a voter that waits
        # for heartbeats is caught up from the log, never sent a snapshot.
        policy = self._settings.snapshot_policy
        if policy is None:
            return THRIFTY_MAX_LAG
        return max(1, min(THRIFTY_MAX_LAG, policy.trailing // 2))

    def _lookup(self, items: list[_Propose]) -> list:
        pairs = [(item.proposal.client_id, item.proposal.seq) for item in items]
        # A batch's look-ups at once where the state machine can (one
        # cursor, one read of the clients' rows), as apply_batch.
        lookup_many = getattr(self._state_machine, "lookup_many", None)
        if lookup_many is not None:
            return lookup_many(pairs)
        return [self._state_machine.lookup(*pair) for pair in pairs]

    @staticmethod
    def _take_reply(ready: Ready, request: Message) -> Message | None:
        """Remove the reply to ``request`` from ``ready``: it goes back as
        the HTTP response rather than as a request of its own."""
        for position, message in enumerate(ready.messages):
            if isinstance(message, REPLIES) and message.dest == request.source:
                return ready.messages.pop(position)
        return None

    def _handle(self, ready: Ready, answers: list[tuple[Slot, Message | None]]) -> None:
        def answer() -> None:
            # Raft Figure 2: a peer hears our reply only once it is durable.
            for slot, reply in answers:
                slot.set(reply)

        installed = ready.snapshot is not None
        if installed:
            self._install(ready)
            ready.snapshot = None
        results = apply_ready(
            ready,
            self._storage,
            self._transport_routed,
            self._timed_state_machine,
            answer,
        )
        for entry, result in zip(ready.committed_entries, results, strict=True):
            self._resolve(entry, result)
        self._finish_reads(ready)
        if ready.committed_entries or installed:
            self._notify_applied()
        if ready.soft_state is not None:
            if ready.soft_state.role is not Role.LEADER:
                self._stop_sending()
            self._announce(ready)
        if self.snapshots is not None:
            self.snapshots.maybe_take(self._state_machine.last_applied)
        self._publish_status()

    def _resolve(self, entry, answer: Answer) -> None:
        for waiter in self._waiters.pop(entry.index, ()):
            if waiter.term == entry.term:
                metrics.PROPOSALS_COMMITTED.inc()
                waiter.slot.set(answer)
            else:
                metrics.PROPOSALS_FAILED.inc()
                # State Machine Safety: another entry committed at this
                # index, so ours never will. Not before: an entry of ours
                # overwritten here may still commit from another server's
                # copy (Raft Figure 8), even after we reuse its index.
                waiter.slot.set(
                    error=CommandLost("overwritten by a newer leader's entry")
                )

    def _announce(self, ready: Ready) -> None:
        if ready.soft_state.leader_id != self._last_leader:
            self._last_leader = ready.soft_state.leader_id
            metrics.LEADER_CHANGES.inc()
        if ready.soft_state.role is Role.LEADER:
            event_log.info("Became leader for term %d", self._node.status().term)

    def _publish_status(self) -> None:
        s = self._node.status()
        configuration = s.configuration
        if configuration is not self._configuration:
            self._configuration_changed(configuration)
            # Built once per configuration: this runs after every Ready.
            self._servers = tuple(
                ServerInfo(address, address in configuration.voters)
                for address in sorted(configuration.members)
            )
        servers = self._servers
        # Replacing one reference is atomic: readers never see a torn status.
        self._status = NodeStatus(
            id=s.id,
            role=s.role.value,
            term=s.term,
            leader=s.leader_id,
            commit_index=s.commit_index,
            last_applied=self._state_machine.last_applied,
            last_log_index=s.last_log_index,
            servers=servers,
            peers=self._peers(s),
            snapshot_index=s.snapshot_index,
            first_log_index=s.first_log_index,
        )

    def _peers(self, s) -> tuple[PeerInfo, ...]:
        now = time.monotonic()
        peers = []
        for address, progress in sorted(s.progress.items()):
            contact = self._last_contact.get(address)
            sender = self.snapshots.sending(address) if self.snapshots else None
            peers.append(
                PeerInfo(
                    id=address,
                    voter=progress.voter,
                    match_index=progress.match_index,
                    next_index=progress.next_index,
                    last_contact_s=None if contact is None else now - contact,
                    snapshot_index=(
                        sender.snapshot.last_included_index if sender else None
                    ),
                    snapshot_bytes_sent=sender.bytes_sent if sender else 0,
                    snapshot_size=sender.snapshot.size if sender else 0,
                )
            )
        return tuple(peers)
