"""A deterministic, seeded cluster of RaftNodes on an in-memory network.

One random.Random drives everything; there is no time, thread or socket.
Each server applies every Ready as the runtime does: persist, send, apply.
Servers take snapshots of their state machines and compact their logs
(take_snapshot); an InstallSnapshot carries the leader's snapshot data with
it, as the runtime's transfer will.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from consensus.core.configuration import Configuration
from consensus.core.messages import (
    REPLIES,
    REQUESTS,
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
    Unreachable,
)
from consensus.core.node import (
    NotLeader,
    Proposal,
    RaftConfig,
    RaftNode,
    Status,
    bootstrap_entries,
)
from consensus.core.ready import HardState, Ready, Role
from consensus.ready_path import apply_ready

from .checker import (
    SafetyChecker,
    SafetyViolation,
    check_log_matching,
    check_log_pair,
    digest_of,
    held_at,
)

PORT = 9990
TRACE_LENGTH = 80
REPLY_TYPES = {
    AppendEntries: AppendEntriesReply,
    RequestVote: RequestVoteReply,
    InstallSnapshot: InstallSnapshotReply,
}


class ContractViolation(AssertionError):
    """The core broke the Ready contract the runtime relies on."""


def server_ids(n: int) -> list[str]:
    return [f"10.0.0.{i}:{PORT}" for i in range(1, n + 1)]


@dataclass(frozen=True)
class Snapshot:
    """A snapshot as the runtime keeps it: the core's metadata and the state
    machine's data (here its state: the entries it applied, 1 to
    last_included_index)."""

    metadata: SnapshotMetadata
    state: tuple[Entry, ...]


@dataclass
class Storage:
    """One server's disk: what survives a crash."""

    hard_state: HardState = HardState()
    # The stored entries, log[i] with index log_offset + i + 1: those
    # through log_offset are compacted (at or before the snapshot's last).
    log: list[Entry] = field(default_factory=list)
    log_offset: int = 0
    last_applied: int = 0
    snapshot: Snapshot | None = None

    @property
    def last_index(self) -> int:
        return self.log_offset + len(self.log)

    @property
    def last_term(self) -> int:
        if self.log:
            return self.log[-1].term
        return self.snapshot.metadata.last_included_term if self.snapshot else 0

    @property
    def snapshot_state(self) -> tuple[Entry, ...]:
        return self.snapshot.state if self.snapshot else ()

    def entry(self, index: int) -> Entry | None:
        """The entry at ``index``, from the log or the snapshot."""
        return held_at(self.log, self.snapshot_state, index)


class StateMachine:
    """A server's replicated state machine; its state is the entries it
    applied, in order (the toy's message list), and a digest of them."""

    def __init__(self, state: Sequence[Entry] = ()):
        self.applied: list[Entry] = list(state)
        self.digest = digest_of(state)

    def apply(self, entry: Entry) -> None:
        self.applied.append(entry)
        self.digest = digest_of([entry], self.digest)


@dataclass
class Server:
    id: str
    name: str  # s1, s2, ... as in the paper's figures
    storage: Storage
    node: RaftNode | None = None  # None while crashed
    incarnation: int = 0  # bumped by every (re)start
    status: Status | None = None  # as of the last call into node
    # Volatile: rebuilt from the snapshot and the log at every start.
    state_machine: StateMachine = field(default_factory=StateMachine)
    # Snapshot data that arrived, by last included index, not yet stepped.
    received: dict[int, tuple[Entry, ...]] = field(default_factory=dict)

    @property
    def up(self) -> bool:
        return self.node is not None


@dataclass(slots=True)
class Envelope:
    seq: int
    message: Message
    ready_at: int  # deliverable once cluster.now >= ready_at
    # Incarnation of the source when sent; for a reply (and a local
    # Unreachable) the incarnation of the dest that is waiting for it.
    incarnation: int
    reply: bool = False
    local: bool = False  # an Unreachable: never lost, never cut off
    # An InstallSnapshot's data, carried along as the runtime streams it.
    data: tuple[Entry, ...] | None = None


Selector = None | str | Envelope | Callable[[Message], bool]


class Cluster:
    """``Cluster(n=5, seed=7)``: servers 10.0.0.1:9990 ... 10.0.0.n:9990.

    ``config`` overrides RaftConfig fields; ``logs`` (server -> entries)
    and ``terms`` replace the bootstrap log and current_term of a server;
    ``rng``, if given, replaces random.Random(seed). With ``voters`` = k,
    only the first k servers are members at first.
    """

    def __init__(
        self,
        n: int = 5,
        seed: int = 7,
        *,
        logs: Mapping[str, Sequence[Entry]] | None = None,
        terms: Mapping[str, int] | None = None,
        rng: random.Random | None = None,
        voters: int | None = None,
        **config,
    ):
        self.seed = seed
        # Everything random (elections, network, faults) draws from this.
        self.rng = rng or random.Random(seed)
        self.ids = server_ids(n)
        self.config = config
        self.now = 0  # ticks of tick_all()
        self.steps = 0
        self.pending: list[Envelope] = []
        self.max_latency = 0  # ticks a message may wait before delivery
        self.max_unreachable_delay = 2  # ticks until a lost send is reported
        self.checker = SafetyChecker()
        self.trace: deque = deque(maxlen=TRACE_LENGTH)
        self.counts: Counter[str] = Counter()  # events by kind
        self._seq = 0
        self._read_ctx = 0
        self._groups: dict[str, int] | None = None
        self._dirty: set[str] = set()
        self._fail_writes: set[str] = set()
        self.servers: dict[str, Server] = {}
        # The initial voting members; the others start outside the
        # configuration with an empty log, as runnode does for a server
        # missing from --cluster, and wait to be added.
        members = self.ids[:voters] if voters is not None else self.ids
        for number, id in enumerate(self.ids, 1):
            if logs and id in logs:
                log = list(logs[id])
            else:
                log = bootstrap_entries(members) if id in members else []
            term = (terms or {}).get(id, max((e.term for e in log), default=0))
            storage = Storage(HardState(term), log)
            self.servers[id] = Server(id, f"s{number}", storage)
            self.checker.persisted_hard_state(id, storage.hard_state)
            self.checker.persisted_log(id, storage.log, 1)
            self._dirty.add(id)
        for server in self.servers.values():
            self._start(server)

    @classmethod
    def from_figure(cls, figure: str, seed: int = 7, terms=None, **config) -> Cluster:
        """A cluster whose logs are drawn as in the paper, one line a server:

            s1: 1 1 1 4 4 5 5 6 6 6
            s2: 1 1 1 4

        Each number is the term of the entry at that index, from index 1;
        index 1 holds the cluster's configuration, the rest are commands.
        ``terms`` ({"s1": 6}) sets current_term (default: the last term).
        """
        rows = [line.split(":") for line in figure.strip().splitlines()]
        ids = server_ids(len(rows))
        names = {f"s{i}": id for i, id in enumerate(ids, 1)}
        logs = figure_logs({names[name.strip()]: row for name, row in rows}, ids)
        terms = {names[name]: term for name, term in (terms or {}).items()}
        return cls(len(rows), seed, logs=logs, terms=terms, **config)

    # --- looking at the cluster ------------------------------------------

    def server(self, id: str) -> Server:
        return self.servers[id]

    def status(self, id: str) -> Status | None:
        server = self.servers[id]
        return server.status if server.up else None

    def role(self, id: str) -> Role | None:
        status = self.status(id)
        return status.role if status else None

    def leader(self) -> str | None:
        """The live server that reports itself leader in the highest term."""
        leaders = [
            s.status
            for s in self.servers.values()
            if s.up and s.status.role is Role.LEADER
        ]
        return max(leaders, key=lambda s: s.term).id if leaders else None

    def log(self, id: str) -> list[Entry]:
        """The stored entries (all of them unless the log was compacted)."""
        return self.servers[id].storage.log

    def entry(self, id: str, index: int) -> Entry | None:
        """The entry ``id`` holds at ``index``, in its log or snapshot."""
        return self.servers[id].storage.entry(index)

    def applied(self, id: str) -> list[Entry]:
        """What the state machine of ``id`` has applied (or will have
        again, rebuilt at its restart)."""
        server = self.servers[id]
        if server.up:
            return server.state_machine.applied
        return self._rebuild(server.storage).applied

    def log_terms(self, id: str) -> str:
        return " ".join(str(e.term) for e in self.log(id))

    def figure(self) -> str:
        """The persisted logs laid out as in the paper's figures."""
        return "\n".join(
            f"{s.name}: {self.log_terms(s.id)}" for s in self.servers.values()
        )

    @property
    def history(self):
        """Every (step, node, role, term) change seen, in order."""
        return self.checker.history

    def describe(self) -> str:
        lines = [
            f"seed={self.seed} step={self.steps} now={self.now} config={self.config}"
        ]
        for s in self.servers.values():
            st = s.status
            state = (
                f"{st.role.value:9} term={st.term} commit={st.commit_index}"
                if s.up
                else "crashed"
            )
            offset = s.storage.log_offset
            lines.append(
                f"  {s.name} {state} applied={s.storage.last_applied} "
                f"vote={self._short(s.storage.hard_state.voted_for)} "
                f"log: {f'[..{offset}] ' if offset else ''}{self.log_terms(s.id)}"
            )
        lines.append(f"  partition: {self._groups}")
        lines.append("  last events:")
        lines.extend(f"    {self._format(event)}" for event in self.trace)
        return "\n".join(lines)

    # --- the servers -----------------------------------------------------

    def tick(self, id: str) -> None:
        """One tick for ``id`` alone: its clock runs ahead of the others'."""
        self._event("tick", id)
        self._tick(self.servers[id])

    def tick_all(self) -> None:
        """One tick of time: every live server ticks once."""
        self.now += 1
        self._event("tick all", None)
        for server in self.servers.values():
            self._tick(server)

    def crash(self, id: str) -> None:
        """Lose volatile state and every message on its way to ``id``."""
        server = self.servers[id]
        self._event("crash", id)
        server.node, server.status = None, None
        self._fail_writes.discard(id)
        for envelope in [e for e in self.pending if e.message.dest == id]:
            self.pending.remove(envelope)
            if not envelope.local:
                self._lose(envelope)
        self.steps += 1

    def calm(self) -> None:
        """End every fault: heal the network, restart crashed servers,
        cancel pending write failures, deliver without latency."""
        self.heal()
        self._fail_writes.clear()
        self.max_latency = 0
        for id in self.ids:
            if not self.servers[id].up:
                self.restart(id)

    def crash_in_next_write(self, id: str) -> None:
        """Kill ``id`` during its next disk write (SIGKILL mid-transaction):
        what it sent before writing is out, nothing of that Ready is kept."""
        self._fail_writes.add(id)

    def restart(self, id: str) -> None:
        """A new RaftNode from what ``id`` persisted."""
        server = self.servers[id]
        if server.up:
            self.crash(id)
        self._event("restart", id)
        self._start(server)
        self.steps += 1

    def take_snapshot(self, id: str, trailing: int = 0) -> SnapshotMetadata | None:
        """``id`` snapshots its state machine at last_applied, durably, and
        tells its core (compact), keeping ``trailing`` entries before the
        snapshot's last in its log and on disk. None if it is down or has
        applied nothing since its last snapshot."""
        server = self.servers[id]
        if not server.up:
            return None
        storage, node = server.storage, server.node
        held = storage.snapshot.metadata.last_included_index if storage.snapshot else 0
        if node.last_applied <= held:
            return None
        metadata = node.snapshot_metadata()
        state = tuple(server.state_machine.applied)
        if len(state) != metadata.last_included_index or (
            metadata.last_included_term != state[-1].term
        ):
            raise ContractViolation(f"{id} snapshot {metadata} of {len(state)}")
        storage.snapshot = Snapshot(metadata, state)
        index = max(metadata.last_included_index - trailing, node.log.snapshot_index)
        ready = node.compact(metadata, index)
        # The snapshot is durable: the stored entries it covers may go.
        if index > storage.log_offset:
            del storage.log[: index - storage.log_offset]
            storage.log_offset = index
        self._event("snapshot", id, f"through {metadata.last_included_index}")
        self._dirty.add(id)
        self.steps += 1
        self._handle(server, ready)
        return metadata

    def propose(
        self,
        command: str,
        client_id: str | None = None,
        seq: int | None = None,
        type: EntryType = EntryType.COMMAND,
        at: str | None = None,
    ) -> Entry | None:
        """Hand ``command`` to the current leader (or to server ``at``, as
        the runtime's membership code does); its new entry, or None if there
        is no leader or it refused (NotLeader, or ValueError for a
        membership change)."""
        leader = self.leader() if at is None else at
        if leader is None or not self.servers[leader].up:
            return None
        server = self.servers[leader]
        self.steps += 1
        try:
            ready = server.node.propose([Proposal(command, client_id, seq, type)])
        except (NotLeader, ValueError):
            return None
        entry = ready.entries_to_persist[-1]
        if (entry.command, entry.type, entry.term) != (
            command,
            type,
            server.status.term,
        ):
            raise ContractViolation(f"propose({command!r}) appended {entry}")
        self._event("propose", leader, entry)
        self._handle(server, ready)
        return entry

    def read(self, at: str | None = None) -> int | None:
        """Ask the leader (or server ``at``) for a linearizable read
        (dissertation §6.4); its ctx, or None if refused (NotLeader). The
        checker holds every confirmation to what had completed before."""
        leader = self.leader() if at is None else at
        if leader is None or not self.servers[leader].up:
            return None
        server = self.servers[leader]
        self.steps += 1
        self._read_ctx += 1
        ctx = self._read_ctx
        try:
            ready = server.node.read_index([ctx])
        except NotLeader:
            return None
        self.checker.read_registered(ctx)
        self._event("read", leader, ctx)
        self._handle(server, ready)
        return ctx

    def reconfigure(self, configuration: Configuration) -> Entry | None:
        """Propose ``configuration`` to the leader (dissertation §4.1)."""
        return self.propose(configuration.to_json(), type=EntryType.CONFIG)

    def configuration(self, id: str | None = None) -> Configuration:
        """The configuration ``id`` (default: the leader) holds now."""
        id = id or self.leader()
        return self.servers[id].status.configuration

    def members(self) -> list[str]:
        """The members of the leader's configuration, in id order."""
        configuration = self.configuration()
        return [id for id in self.ids if id in configuration.members]

    def transfer_leadership(self, to: str | None = None, at: str | None = None) -> bool:
        """Start a transfer at the current leader (or at server ``at``)."""
        leader = self.leader() if at is None else at
        if leader is None or not self.servers[leader].up:
            return False
        server = self.servers[leader]
        self.steps += 1
        try:
            ready = server.node.transfer_leadership(to)
        except (NotLeader, ValueError):
            return False
        self._event("transfer", leader, to)
        self._handle(server, ready)
        return True

    # --- the network -----------------------------------------------------

    def deliverable(self) -> list[Envelope]:
        return [e for e in self.pending if e.ready_at <= self.now]

    def deliver(self, which: Selector = None) -> Message | None:
        """Deliver one message: the oldest deliverable (``which`` None),
        a random one ("random"), or the oldest that ``which(message)``
        accepts. Returns it, or None if there was nothing to deliver."""
        envelope = self._pick(which)
        if envelope is None:
            return None
        self.pending.remove(envelope)
        self._deliver(envelope)
        self.steps += 1
        return envelope.message

    def deliver_batch(self, limit: int = 4) -> int:
        """Step up to ``limit`` messages for one random server and persist
        their merged Ready once, as the runtime's loop batches its inbox."""
        ready_now = self.deliverable()
        if not ready_now:
            return 0
        dest = self.rng.choice(ready_now).message.dest
        batch = [e for e in ready_now if e.message.dest == dest][:limit]
        for envelope in batch:
            self.pending.remove(envelope)
        server = self.servers.get(dest)
        merged, reply_to = Ready(), {}
        for envelope in batch:
            if not self._reaches(envelope, server):
                self._lose(envelope)
                continue
            self._event("deliver", dest, envelope.message)
            self._receive(server, envelope)
            merged.merge(self._step(server, envelope.message))
            if not (envelope.reply or envelope.local):
                reply_to[envelope.message.source] = envelope.incarnation
        if server is not None and server.up:
            self._handle(server, merged, reply_to)
        self.steps += 1
        return len(batch)

    def drop(self, which: Selector = None) -> Message | None:
        envelope = self._pick(which, local=False)
        if envelope is None:
            return None
        self.pending.remove(envelope)
        self._event("drop", envelope.message.dest, envelope.message)
        self._lose(envelope)
        self.steps += 1
        return envelope.message

    def duplicate(self, which: Selector = None) -> Message | None:
        envelope = self._pick(which, local=False)
        if envelope is None:
            return None
        self._seq += 1
        self.pending.append(replace(envelope, seq=self._seq))
        self._event("duplicate", envelope.message.dest, envelope.message)
        self.steps += 1
        return envelope.message

    def delay(self, which: Selector = None, ticks: int = 3) -> Message | None:
        envelope = self._pick(which, local=False)
        if envelope is None:
            return None
        envelope.ready_at = max(envelope.ready_at, self.now) + ticks
        self.steps += 1
        return envelope.message

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut the network between ``groups``; unlisted servers form one
        more group together. Messages across a cut are lost on delivery."""
        self._groups = {id: i for i, group in enumerate(groups, 1) for id in group}
        self._event("partition", None, [sorted(map(self._short, g)) for g in groups])
        self.steps += 1

    def isolate(self, id: str) -> None:
        self.partition([id])

    def heal(self) -> None:
        self._groups = None
        self._event("heal", None)
        self.steps += 1

    def connected_everywhere(self) -> bool:
        return self._groups is None

    def connected(self, a: str, b: str) -> bool:
        return self._groups is None or self._groups.get(a, 0) == self._groups.get(b, 0)

    # --- driving ---------------------------------------------------------

    def stabilize(self, which: Selector = None, max_steps: int = 10_000) -> int:
        """Deliver (what ``which`` selects) until nothing is deliverable,
        without ticking; returns how many messages were delivered."""
        for delivered in range(max_steps):
            if self.deliver(which) is None:
                return delivered
        raise AssertionError(
            f"no quiet after {max_steps} deliveries\n{self.describe()}"
        )

    def run_until(
        self,
        predicate: Callable[[], bool],
        max_steps: int = 10_000,
        which: Selector = None,
    ) -> bool:
        """Deliver messages, ticking every server whenever none is
        deliverable, until ``predicate()``; False if ``max_steps`` pass."""
        for _ in range(max_steps):
            if predicate():
                return True
            if self.deliver(which) is None:
                self.tick_all()
        return predicate()

    def elect(self, id: str, max_ticks: int = 100) -> None:
        """Tick only ``id`` until it campaigns, then deliver until quiet."""
        for _ in range(max_ticks):
            self.tick(id)
            if self.role(id) is not Role.FOLLOWER or self.deliverable():
                break
        self.stabilize()
        if self.role(id) is not Role.LEADER:
            raise AssertionError(f"{id} did not become leader\n{self.describe()}")

    # --- safety ----------------------------------------------------------

    def assert_safety(self, full: bool = False) -> None:
        """Raft Figure 3. Election Safety, Leader Append-Only, Leader
        Completeness, State Machine Safety, vote and term durability are
        checked as events happen; this also compares the persisted logs of
        every server that changed since the last call (``full``: every
        server) with all others, for Log Matching."""
        checked = set()
        for id in self.ids if full else sorted(self._dirty):
            checked.add(id)
            for other in self.ids:
                if other not in checked:
                    check_log_pair(id, self.log(id), other, self.log(other))
        self._dirty.clear()

    # --- internals -------------------------------------------------------

    def _start(self, server: Server) -> None:
        storage = server.storage
        server.incarnation += 1
        server.received = {}
        snapshot = storage.snapshot.metadata if storage.snapshot else None
        server.node = RaftNode(
            RaftConfig(id=server.id, **self.config),
            random.Random(self.rng.getrandbits(64)),
            storage.hard_state,
            list(storage.log),
            last_applied=storage.last_applied,
            snapshot=snapshot or SnapshotMetadata(),
        )
        # The runtime restores its state machine from the snapshot, then
        # applies the stored entries through last_applied, silently.
        server.state_machine = self._rebuild(storage)
        machine = server.state_machine
        if machine.applied:
            self.checker.state_at(server.id, len(machine.applied), machine.digest)
        self._observe(server)

    def _rebuild(self, storage: Storage) -> StateMachine:
        machine = StateMachine(storage.snapshot_state)
        for index in range(len(machine.applied) + 1, storage.last_applied + 1):
            machine.apply(storage.entry(index))
        return machine

    def _receive(self, server: Server, envelope: Envelope) -> None:
        """The runtime on the follower has the whole snapshot, durably,
        before it steps the InstallSnapshot."""
        message = envelope.message
        if isinstance(message, InstallSnapshot):
            server.received[message.last_included_index] = envelope.data

    def _tick(self, server: Server) -> None:
        if server.up:
            self._handle(server, server.node.tick())
        self.steps += 1

    def _pick(self, which: Selector, local: bool | None = None) -> Envelope | None:
        if isinstance(which, Envelope):
            return which
        candidates = [
            e
            for e in self.pending
            if e.ready_at <= self.now and (local is None or e.local == local)
        ]
        if callable(which):
            candidates = [e for e in candidates if which(e.message)]
        if not candidates:
            return None
        if which == "random":
            return self.rng.choice(candidates)
        return candidates[0]

    def _reaches(self, envelope: Envelope, server: Server | None) -> bool:
        message = envelope.message
        if server is None or not server.up:
            return False
        if envelope.local or envelope.reply:
            # The asker's process must still be the one that asked.
            if server.incarnation != envelope.incarnation:
                return False
        return envelope.local or self.connected(message.source, message.dest)

    def _deliver(self, envelope: Envelope) -> None:
        message = envelope.message
        server = self.servers.get(message.dest)
        if not self._reaches(envelope, server):
            if not envelope.local:
                self._event("lost", message.dest, message)
                self._lose(envelope)
            return
        self._event("deliver", message.dest, message)
        self._receive(server, envelope)
        ready = self._step(server, message)
        asked = not (envelope.reply or envelope.local)
        reply_to = {message.source: envelope.incarnation} if asked else {}
        self._handle(server, ready, reply_to)

    def _step(self, server: Server, message: Message) -> Ready:
        ready = server.node.step(message)
        if isinstance(message, REQUESTS):
            replies = [
                m
                for m in ready.messages
                if isinstance(m, REPLIES) and m.dest == message.source
            ]
            expected = REPLY_TYPES[type(message)]
            if len(replies) != 1 or type(replies[0]) is not expected:
                raise ContractViolation(
                    f"{server.id} answered {message} with {replies}: "
                    f"expected exactly one {expected.__name__}"
                )
            if (
                isinstance(message, RequestVote)
                and replies[0].pre_vote != message.pre_vote
            ):
                raise ContractViolation(f"{replies[0]} answers {message}")
        return ready

    def _lose(self, envelope: Envelope) -> None:
        """A lost send: the asker's HTTP call fails, so after a while its
        runtime steps an Unreachable into it (never for a lost reply whose
        asker has crashed since)."""
        message = envelope.message
        if envelope.reply:
            self._unreachable(message.dest, envelope.incarnation, message.source)
        else:
            self._unreachable(message.source, envelope.incarnation, message.dest)

    def _unreachable(self, asker: str, incarnation: int, peer: str) -> None:
        server = self.servers.get(asker)
        if server is None or not server.up or server.incarnation != incarnation:
            return
        delay = self.rng.randint(0, self.max_unreachable_delay)
        self._seq += 1
        self.pending.append(
            Envelope(
                self._seq,
                Unreachable(term=0, source=peer, dest=asker),
                self.now + delay,
                server.incarnation,
                local=True,
            )
        )

    def _handle(
        self, server: Server, ready: Ready, reply_to: Mapping[str, int] = {}
    ) -> None:
        """Apply a Ready with the runtime's own function: persist, send,
        apply (consensus/ready_path.py)."""
        # Sorted by dest (stably) so a core iterating a set of peers cannot
        # make a seed's run depend on the process's hash seed.
        ready.messages.sort(key=lambda m: m.dest)
        try:
            if ready.snapshot is not None:
                ready = self._install(server, ready)
            apply_ready(
                ready,
                _Disk(self, server),
                _Network(self, server, reply_to),
                _Applier(self, server),
            )
        except _KilledInWrite:
            # None of this Ready is on disk; what left before the write is
            # out, and the askers' HTTP calls fail.
            self._event("killed in write", server.id)
            self.crash(server.id)
            for asker, incarnation in reply_to.items():
                self._unreachable(asker, incarnation, server.id)
            return
        for read in ready.read_states:
            self._event("read confirmed", server.id, read)
            self.checker.read_confirmed(server.id, read.ctx, read.index)
        self._observe(server)

    def _install(self, server: Server, ready: Ready) -> Ready:
        """Carry out a Ready's snapshot (dissertation Figure 5.3, rules
        7-8) with the rest of its writes in one transaction, then restore
        the state machine; return what apply_ready still has to do (send,
        then apply the entries after the snapshot)."""
        id, storage = server.id, server.storage
        metadata = ready.snapshot
        index = metadata.last_included_index
        state = server.received.get(index)
        if (
            state is None
            or len(state) != index
            or state[-1].term != (metadata.last_included_term)
        ):
            raise ContractViolation(f"{id} restores {metadata} it never received")
        if id in self._fail_writes:
            self._fail_writes.discard(id)
            raise _KilledInWrite(id)
        if ready.hard_state is not None:
            storage.hard_state = ready.hard_state
            self.checker.persisted_hard_state(id, ready.hard_state)
        storage.snapshot = Snapshot(metadata, state)
        storage.log, storage.log_offset = [], index
        self.checker.installed(id, index, metadata.last_included_term)
        self._dirty.add(id)
        if ready.entries_to_persist:
            self._persist_entries(server, ready.entries_to_persist)
        storage.last_applied = index
        server.state_machine = StateMachine(state)
        self.checker.restored(id, index, state)
        self.checker.state_at(id, index, server.state_machine.digest)
        self._event("restored", id, f"snapshot through {index}")
        return Ready(messages=ready.messages, committed_entries=ready.committed_entries)

    def _persist_entries(self, server: Server, entries: list[Entry]) -> None:
        storage, first = server.storage, entries[0].index
        if any(e.index != first + i for i, e in enumerate(entries)):
            raise ContractViolation(f"{server.id} persists non-contiguous {entries}")
        if not storage.log_offset < first <= storage.last_index + 1:
            raise ContractViolation(
                f"{server.id} persists from index {first} with "
                f"{storage.log_offset + 1}..{storage.last_index} stored"
            )
        del storage.log[first - storage.log_offset - 1 :]
        storage.log.extend(entries)
        self.checker.persisted_log(server.id, entries, first)
        self._dirty.add(server.id)

    def _send(
        self, server: Server, message: Message, reply_to: Mapping[str, int]
    ) -> None:
        if message.source != server.id or message.dest == server.id:
            raise ContractViolation(f"{server.id} sends {message}")
        if (
            isinstance(message, RequestVoteReply)
            and message.vote_granted
            and not message.pre_vote
        ):
            # Raft Figure 2: the vote is on disk before the reply leaves (a
            # later, higher term on disk also rules out a second vote).
            hard_state = server.storage.hard_state
            if hard_state.current_term < message.term or (
                hard_state.current_term == message.term
                and hard_state.voted_for != message.dest
            ):
                raise ContractViolation(
                    f"{server.id} granted {message} with {hard_state} on disk"
                )
            self.checker.granted_vote(server.id, message.term, message.dest)
        reply = isinstance(message, REPLIES)
        if reply:
            incarnation = reply_to.get(message.dest, -1)
        else:
            incarnation = server.incarnation
        data = None
        if isinstance(message, InstallSnapshot):
            # The runtime streams the snapshot the message names: the one
            # it holds, which the core must name exactly.
            snapshot = server.storage.snapshot
            if snapshot is None or snapshot.metadata != message.metadata:
                raise ContractViolation(
                    f"{server.id} sends {message}, holds {snapshot}"
                )
            data = snapshot.state
        latency = self.rng.randint(0, self.max_latency) if self.max_latency else 0
        self._seq += 1
        self.pending.append(
            Envelope(
                self._seq, message, self.now + latency, incarnation, reply, data=data
            )
        )

    def _observe(self, server: Server) -> None:
        status = server.node.status()
        server.status = status
        storage = server.storage
        log, hard_state = storage.log, storage.hard_state
        # Figure 2: current_term, voted_for and the log are persisted before
        # the node answers anyone, so its volatile view equals its disk.
        last_index, last_term = storage.last_index, storage.last_term
        if (
            status.term,
            status.voted_for,
            status.last_log_index,
            status.last_log_term,
        ) != (
            hard_state.current_term,
            hard_state.voted_for,
            last_index,
            last_term,
        ):
            raise ContractViolation(
                f"{server.id} reports term={status.term} "
                f"voted_for={status.voted_for} last_log=({status.last_log_index}, "
                f"{status.last_log_term}) but persisted {hard_state} and "
                f"last_log=({last_index}, {last_term})"
            )
        # Figure 2's invariant last_applied <= commit_index, and nothing is
        # known committed beyond the log.
        if not storage.last_applied <= status.commit_index <= last_index:
            raise ContractViolation(
                f"{server.id} reports commit_index={status.commit_index} with "
                f"last_applied={storage.last_applied} and {last_index} entries"
            )
        held = storage.snapshot.metadata if storage.snapshot else SnapshotMetadata()
        if status.snapshot_index != held.last_included_index:
            raise ContractViolation(
                f"{server.id} reports snapshot {status.snapshot_index}, holds {held}"
            )
        self.checker.reported(
            self.steps,
            server.id,
            status.role,
            status.term,
            log,
            storage.snapshot_state,
        )

    def _event(self, kind: str, node: str | None, detail=None) -> None:
        self.trace.append((self.steps, self.now, kind, node, detail))
        self.counts[kind] += 1

    def _short(self, id: str | None) -> str:
        server = self.servers.get(id) if id else None
        return server.name if server else str(id)

    def _format(self, event) -> str:
        step, now, kind, node, detail = event
        text = f"{step:>6} t{now:<4} {kind:9} {self._short(node) if node else ''}"
        if isinstance(detail, Message):
            text += " " + self._format_message(detail)
        elif detail is not None:
            text += f" {detail}"
        return text

    def _format_message(self, m: Message) -> str:
        head = f"{type(m).__name__} {self._short(m.source)}->{self._short(m.dest)} t{m.term}"
        if isinstance(m, AppendEntries):
            span = f"{m.entries[0].index}..{m.entries[-1].index}" if m.entries else "-"
            tail = f"prev=({m.prev_log_index},{m.prev_log_term}) entries={span} commit={m.leader_commit}"
        elif isinstance(m, AppendEntriesReply):
            tail = f"success={m.success} match={m.match_index} prev={m.prev_log_index}"
            if not m.success:
                tail += f" conflict=({m.conflict_index},{m.conflict_term})"
        elif isinstance(m, RequestVote):
            tail = f"last=({m.last_log_index},{m.last_log_term}) pre={m.pre_vote}"
            tail += " transfer" if m.transfer else ""
        elif isinstance(m, RequestVoteReply):
            tail = f"granted={m.vote_granted} pre={m.pre_vote}"
        elif isinstance(m, InstallSnapshot):
            tail = f"last=({m.last_included_index},{m.last_included_term})"
        elif isinstance(m, InstallSnapshotReply):
            tail = f"last={m.last_included_index} request_term={m.request_term}"
        else:
            tail = ""
        return f"{head} {tail}".rstrip()


class _KilledInWrite(Exception):
    """The server was killed during its disk write (crash_in_next_write)."""


class _Disk:
    """A server's Storage as the Ready path sees it, checking what the core
    asks to persist."""

    def __init__(self, cluster: Cluster, server: Server):
        self.cluster, self.server = cluster, server

    @property
    def last_index(self) -> int:
        return self.server.storage.last_index

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        last_applied: int | None,
    ) -> None:
        cluster, id, storage = self.cluster, self.server.id, self.server.storage
        if id in cluster._fail_writes:
            cluster._fail_writes.discard(id)
            raise _KilledInWrite(id)
        if hard_state is not None:
            storage.hard_state = hard_state
            cluster.checker.persisted_hard_state(id, hard_state)
        if entries:
            cluster._persist_entries(self.server, list(entries))
        if last_applied is not None:
            storage.last_applied = last_applied


class _Network:
    """A server's Transport: sends go on the simulated network."""

    def __init__(self, cluster: Cluster, server: Server, reply_to: Mapping[str, int]):
        self.cluster, self.server, self.reply_to = cluster, server, reply_to

    def send(self, message: Message) -> None:
        self.cluster._send(self.server, message, self.reply_to)


class _Applier:
    """A server's state machine: records what it applied for the checker."""

    def __init__(self, cluster: Cluster, server: Server):
        self.cluster, self.server = cluster, server

    def apply(self, entry: Entry) -> Entry:
        id, storage = self.server.id, self.server.storage
        if storage.entry(entry.index) != entry:
            raise ContractViolation(f"{id} applied {entry}, not in its persisted log")
        checker, machine = self.cluster.checker, self.server.state_machine
        checker.applied(id, [entry])
        machine.apply(entry)
        if len(machine.applied) != entry.index:
            raise ContractViolation(f"{id} applied {entry} after {machine.applied}")
        checker.state_at(id, entry.index, machine.digest)
        return entry


def figure_logs(
    rows: Mapping[str, str], cluster: Sequence[str]
) -> dict[str, list[Entry]]:
    """Logs from rows of terms ("1 1 4"), index 1 first. Index 1 is the
    configuration of ``cluster``; an (index, term) is the same entry on
    every server, so the logs satisfy Log Matching by construction."""
    configuration = Configuration(voters=frozenset(cluster)).to_json()
    made: dict[tuple[int, int], Entry] = {}
    logs = {}
    for id, text in rows.items():
        log = []
        for index, term in enumerate((int(t) for t in text.split()), 1):
            if (index, term) not in made:
                made[index, term] = (
                    Entry(index, term, EntryType.CONFIG, configuration)
                    if index == 1
                    else Entry(index, term, EntryType.COMMAND, f"x{index}t{term}")
                )
            log.append(made[index, term])
        logs[id] = log
    check_log_matching(logs)
    return logs


__all__ = [
    "Cluster",
    "ContractViolation",
    "SafetyViolation",
    "figure_logs",
    "server_ids",
]
