"""Client sessions with an end (dissertation §6.3), kept with the applied state.

A command may carry a (client_id, seq) pair; the state machine remembers the
first answer to each pair, so a retry that reached the log twice applies once.
Sessions end, so that this memory does not grow with every client ever seen.
Everything is decided in apply, from the log alone, identically on every
server:

- **The session clock** is the highest ``timestamp_ms`` of the entries
  applied so far (the leader stamps each COMMAND it appends with its wall
  clock). A leader whose clock is behind never moves it back.
- **Activity.** A command of a client that is applied, or answered as a
  repeat, sets the client's ``last_active_ms`` to the session clock (its own
  timestamp included). A refused one does not.
- **A session ends** once the clock is more than the TTL past its
  ``last_active_ms``: its answers are dropped and a tombstone kept (the
  highest seq it used). A repeat of one of its pairs (seq at or below that)
  is refused; a command with a higher seq starts a new session for the
  client_id.
- **After twice the TTL** without activity the client_id is forgotten
  entirely: a pair of it would then be applied as new.
- **A bounded memory per client.** At most ``max_answers`` answers per
  client: remembering one more drops the lowest seq's, and every seq below
  it is refused from then on (``min_seq``).
- **A refused command** (session ended, or seq below ``min_seq`` and so
  possibly applied before) is not applied, counts as no message, and its
  answer is ``Expired``: 409 conflict at the API.

Expiry is lazy and exact for the client of each command (its row is judged
by the clock at that entry before use), and an expiry pass ends and forgets
the sessions of clients that never come back, oldest first, through an index
on (ended, last_active_ms): a few indexed statements, never a scan. The pass
only tidies: a row it has not reached yet is judged the same way, so answers
never depend on how entries were batched or when the pass ran. It runs with
an applied batch once the session clock has moved EXPIRY_INTERVAL_MS since
the last one, and ends or forgets at most EXPIRY_MIN_CLIENTS clients more
than the entries applied since: at least as many as those could create, so
no backlog builds up, and no single batch pays for a sudden mass expiry (a
leader's clock far ahead) beyond that.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import connection

from .models import ClientAnswer, ClientSession

# The expiry pass runs when the session clock has moved this far since the
# last one (not with every batch: two statements off most commands' path).
EXPIRY_INTERVAL_MS = 1000
# It ends (and forgets) at most this many clients beyond the number of
# entries applied since the last pass.
EXPIRY_MIN_CLIENTS = 64
# Clients read per statement by prefetch() (SQLite allows 32766 variables).
PREFETCH_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Applied:
    """The answer for an applied entry: its own, or the first copy's."""

    index: int
    term: int


@dataclass(frozen=True, slots=True)
class Expired:
    """The answer for a command whose (client_id, seq) answer is no longer
    kept (its session ended, or the seq fell below the client's bound): it
    was not applied, and never will be under that pair."""

    detail: str


@dataclass(frozen=True, slots=True)
class SessionLimits:
    ttl_ms: int
    max_answers: int

    @classmethod
    def from_settings(cls, ttl_s: float, max_answers: int) -> SessionLimits:
        if not ttl_s > 0:
            raise ValueError(f"the session TTL must be positive, not {ttl_s}")
        if max_answers < 1:
            raise ValueError(f"max answers per client must be >= 1: {max_answers}")
        return cls(max(1, round(ttl_s * 1000)), max_answers)


@dataclass(slots=True)
class ExpiryPace:
    """When the expiry pass last ran (by the session clock) and how many
    entries were applied since. In memory only: the pass changes no answer,
    so a restart may run it early."""

    last_pass_ms: int | None = None
    entries: int = 0


@dataclass(slots=True)
class _Client:
    """A ClientSession row as a batch sees and changes it."""

    client_id: str
    last_active_ms: int
    max_seq: int
    min_seq: int
    answers: int
    ended: bool
    # Answers remembered in this batch, written at its end (seq -> answer).
    new: dict[int, Applied] = field(default_factory=dict)
    # Whether stored answers below min_seq await deletion (evicted).
    evicted: bool = False
    dirty: bool = False


# What a row is at a given clock (the rules above).
LIVE, ENDED, FORGOTTEN = "live", "ended", "forgotten"


def _state(row: _Client, clock_ms: int, limits: SessionLimits) -> str:
    idle = clock_ms - row.last_active_ms
    if idle > 2 * limits.ttl_ms:
        return FORGOTTEN
    if row.ended or idle > limits.ttl_ms:
        return ENDED
    return LIVE


class Sessions:
    """The client sessions as one apply batch reads and changes them, on
    the batch's cursor (inside its transaction). Changes are written by
    finish(), as a few statements per batch; ending or forgetting a
    client's session deletes its answers at once (rare)."""

    def __init__(self, cursor, limits: SessionLimits, clock_ms: int):
        self._cursor = cursor
        self._limits = limits
        self.clock_ms = clock_ms
        # client_id -> its row (None: no session), as read this batch.
        self._clients: dict[str, _Client | None] = {}

    def prefetch(self, client_ids: Iterable[str]) -> None:
        """Read the rows of the given clients now, a statement per
        PREFETCH_CHUNK of them rather than one per client: what _load()
        would read at each client's first command of the batch, since
        nothing but this batch writes the rows before its finish()."""
        wanted = [c for c in dict.fromkeys(client_ids) if c not in self._clients]
        for start in range(0, len(wanted), PREFETCH_CHUNK):
            chunk = wanted[start : start + PREFETCH_CHUNK]
            placeholders = ", ".join(["%s"] * len(chunk))
            self._cursor.execute(f"{_SELECT_SESSIONS} ({placeholders})", chunk)
            rows = {row[0]: row for row in self._cursor.fetchall()}
            for client_id in chunk:
                row = rows.get(client_id)
                self._clients[client_id] = (
                    None if row is None else _Client(client_id, *row[1:5], bool(row[5]))
                )

    def advance(self, timestamp_ms: int) -> None:
        """Move the session clock to an applied entry's timestamp, never
        back."""
        if timestamp_ms <= self.clock_ms:
            return
        if self.clock_ms <= 0:
            # The first time the log tells: sessions from before (entries
            # without time, a data directory from before sessions ended)
            # count as active now, rather than idle since 1970.
            self._cursor.execute(_TOUCH_ALL, [timestamp_ms, timestamp_ms])
            for client in self._clients.values():
                if client is not None:
                    client.last_active_ms = max(client.last_active_ms, timestamp_ms)
        self.clock_ms = timestamp_ms

    def check(self, client_id: str, seq: int) -> Applied | Expired | None:
        """A repeat's first answer (activity), Expired for a pair whose
        answer is no longer kept, or None: new, to apply and remember()."""
        client = self._client(client_id)
        if client is None:
            return None
        if seq < client.min_seq:
            return Expired(_detail(client, seq, self._limits))
        first = client.new.get(seq)
        # Above max_seq is never applied: the usual next command needs no
        # look-up.
        if first is None and client.answers > len(client.new):
            first = None if seq > client.max_seq else self._stored(client_id, seq)
        if first is not None:
            client.last_active_ms = self.clock_ms
            client.dirty = True
        return first

    def remember(self, client_id: str, seq: int, answer: Applied) -> None:
        """Record the answer to a pair check() found new (just applied)."""
        client = self._client(client_id)
        if client is None:
            # Seqs are >= 0 at the API; the bound only matters to a peer's.
            client = _Client(client_id, self.clock_ms, seq, min(seq, 0), 0, False)
            self._clients[client_id] = client
        # A tombstone's client with a higher seq: a new session; seqs of
        # the old one stay refused (min_seq).
        client.ended = False
        client.last_active_ms = self.clock_ms
        client.max_seq = max(client.max_seq, seq)
        client.new[seq] = answer
        client.answers += 1
        client.dirty = True
        while client.answers > self._limits.max_answers:
            self._evict_lowest(client)

    def finish(self, entries: int, pace: ExpiryPace) -> None:
        """Write the batch's changes of ``entries`` entries, then run the
        expiry pass if it is due."""
        clients = [c for c in self._clients.values() if c is not None and c.dirty]
        cursor = self._cursor
        if clients:
            cursor.executemany(
                _UPSERT_SESSION,
                [
                    (
                        c.client_id,
                        c.last_active_ms,
                        c.max_seq,
                        c.min_seq,
                        c.answers,
                        c.ended,
                    )
                    for c in clients
                ],
            )
        evicted = [(c.client_id, c.min_seq) for c in clients if c.evicted]
        if evicted:
            cursor.executemany(_DELETE_ANSWERS_BELOW, evicted)
        new = [
            (c.client_id, seq, a.index, a.term)
            for c in clients
            for seq, a in c.new.items()
        ]
        if new:
            cursor.executemany(_INSERT_ANSWER, new)
        self._clients.clear()
        pace.entries += entries
        if self.clock_ms <= 0:
            return  # no time yet: nothing can have expired
        last = pace.last_pass_ms
        if last is None or self.clock_ms - last >= EXPIRY_INTERVAL_MS:
            self._expire(pace.entries + EXPIRY_MIN_CLIENTS)
            pace.last_pass_ms, pace.entries = self.clock_ms, 0

    def peek(self, client_id: str, seq: int) -> Applied | Expired | None:
        """check() without changing anything: the leader's answer before it
        appends a pair (the entry's own timestamp is not counted yet).
        Reads a prefetched row if there is one (its ``ended`` may be set
        here, which changes no later peek's answer)."""
        if client_id in self._clients:
            client = self._clients[client_id]
        else:
            client = self._load(client_id)
        if client is None:
            return None
        state = _state(client, self.clock_ms, self._limits)
        if state == FORGOTTEN:
            return None
        if state == ENDED:
            if seq > client.max_seq:
                return None
            client.ended = True
            return Expired(_detail(client, seq, self._limits))
        if seq < client.min_seq:
            return Expired(_detail(client, seq, self._limits))
        if client.answers and seq <= client.max_seq:
            return self._stored(client_id, seq)
        return None

    # --- internals -------------------------------------------------------

    def _client(self, client_id: str) -> _Client | None:
        """The client's session as of the clock now: ended or forgotten
        here if its time has come (whatever the expiry pass reached)."""
        if client_id in self._clients:
            client = self._clients[client_id]
        else:
            client = self._clients[client_id] = self._load(client_id)
        if client is None:
            return None
        state = _state(client, self.clock_ms, self._limits)
        if state == LIVE or (state == ENDED and client.ended):
            return client
        if client.answers or client.evicted:
            # Those it remembers, and any evicted this batch not yet deleted.
            self._cursor.execute(_DELETE_ANSWERS, [client_id])
        if state == FORGOTTEN:
            self._cursor.execute(_DELETE_SESSION, [client_id])
            self._clients[client_id] = None
            return None
        client.ended = True
        client.min_seq = client.max_seq + 1
        client.answers = 0
        client.new.clear()
        client.evicted = False
        client.dirty = True
        return client

    def _load(self, client_id: str) -> _Client | None:
        self._cursor.execute(_SELECT_SESSION, [client_id])
        row = self._cursor.fetchone()
        return None if row is None else _Client(client_id, *row[:4], bool(row[4]))

    def _stored(self, client_id: str, seq: int) -> Applied | None:
        self._cursor.execute(_SELECT_ANSWER, [client_id, seq])
        row = self._cursor.fetchone()
        return None if row is None else Applied(*row)

    def _evict_lowest(self, client: _Client) -> None:
        """Drop the answer of the client's lowest remembered seq; refuse
        every seq up to it from now on."""
        candidates = []
        if client.new:
            candidates.append(min(client.new))
        if client.answers > len(client.new):
            self._cursor.execute(
                _SELECT_LOWEST_ANSWER, [client.client_id, client.min_seq]
            )
            (stored,) = self._cursor.fetchone()
            if stored is not None:
                candidates.append(stored)
        if not candidates:
            # Only if the stored count were wrong: it is now right.
            client.answers = 0
            return
        lowest = min(candidates)
        if client.new.pop(lowest, None) is None:
            client.evicted = True
        client.min_seq = lowest + 1
        client.answers -= 1

    def _expire(self, limit: int) -> None:
        """End the sessions idle past the TTL and forget the tombstones
        idle past twice the TTL, oldest first, at most ``limit`` of each."""
        cursor = self._cursor
        cursor.execute(_SELECT_IDLE, [self.clock_ms - self._limits.ttl_ms, limit])
        idle = [(client_id,) for (client_id,) in cursor.fetchall()]
        if idle:
            cursor.executemany(_DELETE_ANSWERS, idle)
            cursor.executemany(_END_SESSION, idle)
        cursor.execute(
            _FORGET_TOMBSTONES, [self.clock_ms - 2 * self._limits.ttl_ms, limit]
        )


def _detail(client: _Client, seq: int, limits: SessionLimits) -> str:
    """Why a pair is refused, for a person (the 409's detail)."""
    if client.ended:
        return (
            f"The session of client {client.client_id!r} has ended (no command "
            f"for more than {limits.ttl_ms / 1000:g} s): its answer to seq {seq} "
            "is no longer kept, and this command was not applied."
        )
    return (
        f"seq {seq} of client {client.client_id!r} is too old: only answers to "
        f"seq {client.min_seq} and above are kept (at most {limits.max_answers} "
        "per client, none from an ended session); this command was not applied."
    )


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


_SESSION = _q(ClientSession._meta.db_table)
_ANSWER = _q(ClientAnswer._meta.db_table)
_CLIENT_ID, _SEQ = _q("client_id"), _q("seq")
_LAST_ACTIVE, _ENDED = _q("last_active_ms"), _q("ended")

_SELECT_SESSION = (
    f"SELECT {_LAST_ACTIVE}, {_q('max_seq')}, {_q('min_seq')}, {_q('answers')},"
    f" {_ENDED} FROM {_SESSION} WHERE {_CLIENT_ID} = %s"
)
_UPSERT_SESSION = (
    f"INSERT INTO {_SESSION} ({_CLIENT_ID}, {_LAST_ACTIVE}, {_q('max_seq')},"
    f" {_q('min_seq')}, {_q('answers')}, {_ENDED}) VALUES (%s, %s, %s, %s, %s, %s)"
    f" ON CONFLICT ({_CLIENT_ID}) DO UPDATE SET"
    f" {_LAST_ACTIVE} = excluded.{_LAST_ACTIVE},"
    f" {_q('max_seq')} = excluded.{_q('max_seq')},"
    f" {_q('min_seq')} = excluded.{_q('min_seq')},"
    f" {_q('answers')} = excluded.{_q('answers')},"
    f" {_ENDED} = excluded.{_ENDED}"
)
# prefetch(): followed by "(%s, %s, ...)".
_SELECT_SESSIONS = (
    f"SELECT {_CLIENT_ID}, {_LAST_ACTIVE}, {_q('max_seq')}, {_q('min_seq')},"
    f" {_q('answers')}, {_ENDED} FROM {_SESSION} WHERE {_CLIENT_ID} IN"
)
_DELETE_SESSION = f"DELETE FROM {_SESSION} WHERE {_CLIENT_ID} = %s"
_TOUCH_ALL = f"UPDATE {_SESSION} SET {_LAST_ACTIVE} = %s WHERE {_LAST_ACTIVE} < %s"
# Uses the (client_id, seq) unique index; no ORDER BY, which could make
# SQLite scan the table in id order instead.
_SELECT_ANSWER = (
    f"SELECT {_q('index')}, {_q('term')} FROM {_ANSWER}"
    f" WHERE {_CLIENT_ID} = %s AND {_SEQ} = %s LIMIT 1"
)
_SELECT_LOWEST_ANSWER = (
    f"SELECT MIN({_SEQ}) FROM {_ANSWER} WHERE {_CLIENT_ID} = %s AND {_SEQ} >= %s"
)
_INSERT_ANSWER = (
    f"INSERT INTO {_ANSWER} ({_CLIENT_ID}, {_SEQ}, {_q('index')}, {_q('term')})"
    " VALUES (%s, %s, %s, %s)"
)
_DELETE_ANSWERS = f"DELETE FROM {_ANSWER} WHERE {_CLIENT_ID} = %s"
_DELETE_ANSWERS_BELOW = f"DELETE FROM {_ANSWER} WHERE {_CLIENT_ID} = %s AND {_SEQ} < %s"
# The expiry pass, on the (ended, last_active_ms) index.
_SELECT_IDLE = (
    f"SELECT {_CLIENT_ID} FROM {_SESSION} WHERE {_ENDED} = 0"
    f" AND {_LAST_ACTIVE} < %s ORDER BY {_LAST_ACTIVE} LIMIT %s"
)
_END_SESSION = (
    f"UPDATE {_SESSION} SET {_ENDED} = 1, {_q('min_seq')} = {_q('max_seq')} + 1,"
    f" {_q('answers')} = 0 WHERE {_CLIENT_ID} = %s"
)
_FORGET_TOMBSTONES = (
    f"DELETE FROM {_SESSION} WHERE {_CLIENT_ID} IN (SELECT {_CLIENT_ID}"
    f" FROM {_SESSION} WHERE {_ENDED} = 1 AND {_LAST_ACTIVE} < %s"
    f" ORDER BY {_LAST_ACTIVE} LIMIT %s)"
)
