"""The workload of a fault run and the history it records: concurrent
clients appending unique commands, key-value clients on a few hot keys, a
status sampler per server, and the nemesis's events. Times are seconds since
the history began (monotonic).
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from . import kv_history
from .kv_history import KvOp

# Outcomes of one operation.
OK = "ok"  # 200: committed at ``index``
FAIL = "fail"  # 400/503, or nothing sent: definitely not applied
UNKNOWN = "unknown"  # 504, other statuses, timeouts, lost connections

# Statuses that mean "nothing was changed" (CONTRACT.md).
DEFINITE_FAILURES = {400, 413, 503}


@dataclass
class Op:
    """One client operation: POST /api/commands with client_id and seq."""

    client_id: str
    seq: int
    command: str
    node: str  # the address it was sent to
    invoke: float
    complete: float | None = None
    outcome: str | None = None
    index: int | None = None
    term: int | None = None
    status: int | None = None
    error: str | None = None
    attempt: int = 0  # 0, or which retry of the same (client_id, seq) this is


@dataclass
class Sample:
    """One answer of GET /api/status."""

    time: float
    node: str
    term: int
    role: str
    leader: str | None
    commit_index: int


@dataclass
class Event:
    """A nemesis event: a fault starting or healing, or a note."""

    time: float
    kind: str  # "start", "heal", "note"
    name: str
    detail: str = ""


@dataclass
class History:
    """Everything one run observed; safe to append to from many threads."""

    seed: int | None = None
    nodes: list[str] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    kv_ops: list[KvOp] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self):
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() - self.started

    def add_op(self, op: Op) -> None:
        with self._lock:
            self.ops.append(op)

    def add_kv_op(self, op: KvOp) -> int:
        """Record an operation (in flight, or done); returns its place, for
        ``complete_kv_op``."""
        with self._lock:
            self.kv_ops.append(op)
            return len(self.kv_ops) - 1

    def complete_kv_op(self, place: int, op: KvOp) -> None:
        with self._lock:
            self.kv_ops[place] = op

    def add_sample(self, sample: Sample) -> None:
        with self._lock:
            self.samples.append(sample)

    def event(self, kind: str, name: str, detail: str = "") -> Event:
        event = Event(self.now(), kind, name, detail)
        with self._lock:
            self.events.append(event)
        return event

    def to_json(self) -> dict:
        with self._lock:
            return {
                "seed": self.seed,
                "nodes": list(self.nodes),
                "ops": [asdict(op) for op in self.ops],
                "samples": [asdict(s) for s in self.samples],
                "events": [asdict(e) for e in self.events],
                "kv_ops": [op.to_json() for op in self.kv_ops],
            }

    @classmethod
    def from_json(cls, data: dict) -> History:
        history = cls(seed=data.get("seed"), nodes=list(data.get("nodes", [])))
        history.ops = [Op(**op) for op in data.get("ops", [])]
        history.samples = [Sample(**s) for s in data.get("samples", [])]
        history.events = [Event(**e) for e in data.get("events", [])]
        # Histories saved before the key-value workload have none.
        history.kv_ops = [KvOp.from_json(op) for op in data.get("kv_ops", [])]
        return history

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: Path) -> History:
        return cls.from_json(json.loads(Path(path).read_text()))


def new_session() -> requests.Session:
    session = requests.Session()
    # Test traffic goes straight to the nodes, never through a proxy.
    session.trust_env = False
    return session


def _nothing_sent(exc: requests.RequestException) -> bool:
    """Whether the request failed before any byte of it left (refused or
    connect timeout): then it is known not to have acted."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        cause = exc.args[0] if exc.args else None
        cause = getattr(cause, "reason", cause)  # a MaxRetryError's reason
        return isinstance(cause, (NewConnectionError, ConnectTimeoutError))
    return False


def perform(session, op: Op, url: str, timeout: tuple[float, float]) -> Op:
    """Send one operation and fill in its completion and outcome."""
    body = {"command": op.command, "client_id": op.client_id, "seq": op.seq}
    try:
        response = session.post(url, json=body, timeout=timeout)
    except requests.RequestException as exc:
        op.outcome = FAIL if _nothing_sent(exc) else UNKNOWN
        op.error = type(exc).__name__
        return op
    op.status = response.status_code
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.status_code == 200 and isinstance(answer, dict):
        op.outcome = OK
        op.index = answer.get("index")
        op.term = answer.get("term")
    elif response.status_code in DEFINITE_FAILURES:
        op.outcome = FAIL
        op.error = (answer or {}).get("error") if isinstance(answer, dict) else None
    else:
        op.outcome = UNKNOWN
        op.error = (answer or {}).get("error") if isinstance(answer, dict) else None
    return op


class Workload:
    """``clients`` threads, each appending ``<client_id>:<seq>`` commands to
    servers picked at random (from a seeded Random) until stopped. An
    operation of unknown outcome is sent again (to a random server, with
    the same client_id, seq and command) with probability ``retry_p``, up
    to ``max_retries`` times: each attempt is an Op of its own."""

    def __init__(
        self,
        history: History,
        urls: dict[str, str],
        *,
        clients: int = 4,
        seed: int = 0,
        read_timeout_s: float = 8.0,
        think_s: float = 0.0,
        fail_pause_s: float = 0.05,
        retry_p: float = 0.5,
        max_retries: int = 2,
    ):
        self.history = history
        self.urls = urls  # address -> base URL
        self.clients = clients
        self.seed = seed
        self.timeout = (1.0, read_timeout_s)
        self.think_s = think_s
        self.fail_pause_s = fail_pause_s
        self.retry_p = retry_p
        self.max_retries = max_retries
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Workload:
        for k in range(self.clients):
            thread = threading.Thread(
                target=self._client, args=(k,), name=f"fault-client-{k}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop and wait for every client's operation in flight to end."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            raise RuntimeError(f"clients still running after {timeout} s: {alive}")

    def _client(self, k: int) -> None:
        rng = random.Random(f"{self.seed}-client-{k}")
        client_id = f"c{k}"
        session = new_session()
        addresses = sorted(self.urls)
        seq = 0
        attempt = 0
        try:
            while not self._stop.is_set():
                if attempt == 0:
                    seq += 1
                node = rng.choice(addresses)
                op = Op(client_id, seq, f"{client_id}:{seq}", node, self.history.now())
                op.attempt = attempt
                # Recorded before it is sent: a run cut short still lists it.
                self.history.add_op(op)
                perform(session, op, self.urls[node] + "/api/commands", self.timeout)
                op.complete = self.history.now()
                retry = op.outcome == UNKNOWN and attempt < self.max_retries
                attempt = attempt + 1 if retry and rng.random() < self.retry_p else 0
                if op.outcome != OK:
                    # A lost connection may be a stale keep-alive one.
                    session.close()
                    session = new_session()
                    self._stop.wait(self.fail_pause_s)
                elif self.think_s:
                    self._stop.wait(self.think_s)
        finally:
            session.close()


def perform_kv(session, op: KvOp, base_url: str, timeout, *, client_id=None,
               seq=None, send_consistency=None) -> KvOp:  # fmt: skip
    """Send one key-value operation (CONTRACT.md "Key-value store") and
    return it completed, its outcome mapped as kv_history's table says.
    ``send_consistency`` sends a read at another level than the one
    recorded: only to show the checker a broken read path."""
    url = base_url + "/api/kv/" + quote(op.key, safe="")
    try:
        if op.kind == kv_history.GET:
            level = send_consistency or op.consistency
            response = session.get(url, params={"consistency": level}, timeout=timeout)
        elif op.kind == kv_history.PUT:
            body = {"value": op.value, "client_id": client_id, "seq": seq}
            if op.is_cas:
                body["prev_revision"] = op.prev_revision
            response = session.put(url, json=body, timeout=timeout)
        else:
            params = {"client_id": client_id, "seq": seq}
            if op.is_cas:
                params["prev_revision"] = op.prev_revision
            response = session.delete(url, params=params, timeout=timeout)
    except requests.RequestException as exc:
        outcome = kv_history.FAIL if _nothing_sent(exc) else kv_history.UNKNOWN
        return replace(op, outcome=outcome)
    try:
        answer = response.json()
    except ValueError:
        answer = None
    answer = answer if isinstance(answer, dict) else {}
    code = response.status_code
    revision = answer.get("revision")
    if code == 200 and isinstance(revision, int):
        if op.kind == kv_history.GET:
            return replace(
                op, outcome=kv_history.OK, value=answer.get("value"),
                revision=revision, applied_index=answer.get("applied_index"),
            )  # fmt: skip
        return replace(op, outcome=kv_history.OK, revision=revision)
    if code == 404 and answer.get("error") == "not_found":
        return replace(
            op, outcome=kv_history.NOT_FOUND, applied_index=answer.get("applied_index")
        )
    current = answer.get("current_revision")
    if code == 412 and isinstance(current, int):
        return replace(op, outcome=kv_history.PRECONDITION_FAILED, revision=current)
    if code in DEFINITE_FAILURES:
        return replace(op, outcome=kv_history.FAIL)
    return replace(op, outcome=kv_history.UNKNOWN)


class KvWorkload:
    """``clients`` threads, each sending random key-value operations on a
    few hot keys to servers picked at random (a seeded Random): reads,
    mostly linearizable (``linearizable`` reads ask for monotonic reads,
    which they give), puts of values unique per key (``kv<k>-<n>``),
    deletes, and compare-and-sets against the last revision the client saw
    of the key. Every write carries its own ``client_id``/``seq`` and one of
    unknown outcome is sent again with the same pair (probability
    ``retry_p``, at most ``max_retries`` times), each attempt a KvOp with
    that ``request``. ``read_as`` sends every read at that level while
    recording it as asked: a broken read path, for the checker's own test.
    """

    # (kind, compare-and-set, weight)
    MIX = (
        (kv_history.GET, False, 50),
        (kv_history.PUT, False, 20),
        (kv_history.PUT, True, 15),
        (kv_history.DELETE, False, 5),
        (kv_history.DELETE, True, 10),
    )
    LEVELS = (
        (kv_history.LINEARIZABLE, 70),
        (kv_history.LEADER, 15),
        (kv_history.STALE, 15),
    )

    def __init__(
        self,
        history: History,
        urls: dict[str, str],
        *,
        clients: int = 3,
        keys: int = 3,
        seed: int = 0,
        read_timeout_s: float = 8.0,
        fail_pause_s: float = 0.05,
        retry_p: float = 0.5,
        max_retries: int = 2,
        read_as: str | None = None,
    ):
        self.history = history
        self.urls = urls
        self.clients = clients
        self.keys = [f"fault/k{i}" for i in range(keys)]
        self.seed = seed
        self.timeout = (1.0, read_timeout_s)
        self.fail_pause_s = fail_pause_s
        self.retry_p = retry_p
        self.max_retries = max_retries
        self.read_as = read_as
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> KvWorkload:
        for k in range(self.clients):
            thread = threading.Thread(
                target=self._client, args=(k,), name=f"kv-client-{k}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    stop = Workload.stop

    def _client(self, k: int) -> None:
        rng = random.Random(f"{self.seed}-kv-{k}")
        process = f"kv{k}"
        session = new_session()
        addresses = sorted(self.urls)
        kinds = [(kind, cas) for kind, cas, _ in self.MIX]
        weights = [w for _, _, w in self.MIX]
        levels = [level for level, _ in self.LEVELS]
        level_weights = [w for _, w in self.LEVELS]
        seen: dict[str, int] = {}  # key -> the last revision seen (0: absent)
        seq = 0
        try:
            while not self._stop.is_set():
                key = rng.choice(self.keys)
                (kind, cas), *_ = rng.choices(kinds, weights)
                op = KvOp(process, kind, key, 0.0)
                if kind == kv_history.GET:
                    (level,) = rng.choices(levels, level_weights)
                    monotonic = level == kv_history.LINEARIZABLE
                    op = replace(op, consistency=level, monotonic=monotonic)
                else:
                    seq += 1
                    op = replace(op, request=f"{process}:{seq}")
                    if kind == kv_history.PUT:
                        op = replace(op, value=f"{process}-{seq}")
                    if cas:
                        op = replace(op, prev_revision=seen.get(key, 0))
                for _attempt in range(self.max_retries + 1):
                    done = self._send(session, rng, addresses, op, seq)
                    _note_revision(seen, done)
                    if done.outcome != kv_history.UNKNOWN:
                        break
                    # A lost connection may be a stale keep-alive one.
                    session.close()
                    session = new_session()
                    self._stop.wait(self.fail_pause_s)
                    retry = done.is_write and rng.random() < self.retry_p
                    if not retry or self._stop.is_set():
                        break
                if done.outcome == kv_history.FAIL:
                    session.close()
                    session = new_session()
                    self._stop.wait(self.fail_pause_s)
        finally:
            session.close()

    def _send(self, session, rng, addresses, op: KvOp, seq: int) -> KvOp:
        node = rng.choice(addresses)
        op = replace(op, node=node, invoke=self.history.now())
        # Recorded before it is sent: a run cut short still lists it.
        place = self.history.add_kv_op(op)
        done = perform_kv(
            session, op, self.urls[node], self.timeout,
            client_id=op.process if op.is_write else None,
            seq=seq if op.is_write else None,
            send_consistency=self.read_as if op.kind == kv_history.GET else None,
        )  # fmt: skip
        done = replace(done, complete=self.history.now())
        self.history.complete_kv_op(place, done)
        return done


def _note_revision(seen: dict[str, int], op: KvOp) -> None:
    """What an answer says of the key's current revision."""
    if op.outcome == kv_history.NOT_FOUND:
        seen[op.key] = 0
    elif op.outcome == kv_history.PRECONDITION_FAILED:
        seen[op.key] = op.revision
    elif op.outcome == kv_history.OK:
        seen[op.key] = 0 if op.kind == kv_history.DELETE else op.revision


class StatusSampler:
    """One thread per server polling GET /api/status every ``interval_s``."""

    def __init__(self, history: History, urls: dict[str, str], interval_s: float = 0.1):
        self.history = history
        self.urls = urls
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.latest: dict[str, Sample] = {}

    def start(self) -> StatusSampler:
        for address in sorted(self.urls):
            thread = threading.Thread(
                target=self._poll,
                args=(address,),
                name=f"sampler-{address}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5.0)

    def _poll(self, address: str) -> None:
        session = new_session()
        url = self.urls[address] + "/api/status"
        try:
            while not self._stop.is_set():
                try:
                    r = session.get(url, timeout=(0.5, 1.0))
                    body = r.json() if r.status_code == 200 else None
                except (requests.RequestException, ValueError):
                    body = None
                    session.close()
                    session = new_session()
                if body is not None:
                    sample = Sample(
                        self.history.now(), address, body["term"], body["role"],
                        body["leader"], body["commit_index"],
                    )  # fmt: skip
                    self.history.add_sample(sample)
                    self.latest[address] = sample
                self._stop.wait(self.interval_s)
        finally:
            session.close()
