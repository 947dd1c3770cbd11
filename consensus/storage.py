"""Loads the core's durable state through the ORM and saves it with plain SQL.

Only the runtime's loop thread writes, so SQLite never queues writers.
Each save of entries or term and vote is one transaction, fsynced (WAL,
synchronous=FULL). The state machine's applied state, last_applied
included, is written by applied_state_transaction (synchronous=NORMAL; see
there and docs/DESIGN.md, Durability). What may be sent before a save is
apply_ready's rule (consensus/ready_path.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from django.core.management import call_command
from django.db import connection, transaction

from .core.messages import Entry, EntryType
from .core.ready import HardState
from .models import LogEntry, PersistentState
from .sqlite_cursor import write_transaction


@dataclass(frozen=True, slots=True)
class Restored:
    hard_state: HardState
    entries: list[Entry]
    last_applied: int


class Storage:
    def __init__(self):
        # The highest stored index: appends past it need no delete.
        self._last_index = 0

    @property
    def last_index(self) -> int:
        """The highest index on disk."""
        return self._last_index

    def prepare(self, bootstrap: Sequence[Entry]) -> Restored:
        """Create the schema if needed; on a new data directory write the
        bootstrap log; return what was persisted (load())."""
        call_command("migrate", verbosity=0, interactive=False)
        with transaction.atomic():
            _, created = PersistentState.objects.get_or_create(pk=1)
            if created and bootstrap:
                LogEntry.objects.bulk_create(_to_rows(bootstrap))
        return self.load()

    def load(self) -> Restored:
        """What was persisted: term, vote, last_applied and the stored log.
        Log compaction (consensus/snapshots) bounds the log: the entries
        after the latest snapshot and a trailing window before it."""
        state = PersistentState.objects.get(pk=1)
        entries = [_to_entry(row) for row in _iter_rows()]
        self._last_index = entries[-1].index if entries else 0
        return Restored(
            hard_state=HardState(state.current_term, state.voted_for),
            entries=entries,
            last_applied=state.last_applied,
        )

    def restored(self, snapshot_index: int) -> None:
        """A snapshot through ``snapshot_index`` replaced the whole stored
        log (consensus/snapshots/restore.py): appends resume after it."""
        self._last_index = snapshot_index

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        last_applied: int | None,
    ) -> None:
        """Persist one Ready's term, vote and entries in one fsynced
        transaction.

        Stored entries at and above entries[0].index are replaced (Raft
        §5.3: a conflicting suffix is deleted before appending).
        ``last_applied`` is not written here: the state machine records it
        in the transaction that applies the entries
        (applied_state_transaction), after this one, so the two never
        disagree; recording it here, before the state it counts, could make
        a restarted node skip entries it never applied.
        """
        if hard_state is None and not entries:
            return
        # Plain SQL, one statement per kind per Ready, on the raw connection
        # (consensus/sqlite_cursor.py): this is every command's path on every
        # server, and the ORM's bulk_create built its query row by row (a
        # fifth of the leader's CPU at 64 clients).
        with write_transaction() as cursor:
            if entries:
                if entries[0].index <= self._last_index:
                    cursor.execute(_DELETE_FROM, [entries[0].index])
                cursor.executemany(
                    _INSERT_ENTRY,
                    [
                        (
                            e.index,
                            e.term,
                            e.type.value,
                            e.command,
                            e.client_id,
                            e.seq,
                            e.timestamp_ms,
                        )
                        for e in entries
                    ],
                )
            if hard_state is not None:
                cursor.execute(
                    _UPDATE_HARD_STATE,
                    [hard_state.current_term, hard_state.voted_for],
                )
        if entries:
            self._last_index = entries[-1].index

    def close(self) -> None:
        connection.close()


def applied_state_transaction(orm: bool = False) -> AbstractContextManager:
    """One transaction that records applied state only (the state machine's
    tables and last_applied, never entries, term or vote), with
    synchronous=NORMAL: no fsync of its own.

    SQLite's WAL mode with synchronous=NORMAL syncs the WAL before every
    checkpoint and the database file after it, and syncs the WAL header
    when the WAL is reset for reuse (sqlite.org/pragma.html#pragma_synchronous,
    sqlite.org/wal.html). So a checkpoint run inside this commit never leaves
    the FULL-synced frames of earlier transactions (entries, term, vote) only
    in an unsynced database file, as synchronous=OFF could. WAL recovery
    keeps a prefix of the committed transactions (each frame's checksum
    covers all frames before it), so a power cut loses at most the latest
    such transactions, never an earlier FULL one, and never this one without
    what came after it. Losing one only means applying again entries that
    are durable in the log: every entry was fsynced on this node before it
    was applied (a follower saves it before replying; a leader counts
    itself towards commitment only once its write is done).

    Skipping the fsync keeps one disk flush off every client command on the
    leader, whose commit-only Readys write nothing else. The level is reset
    to FULL at once: every other transaction must stay fully synchronous.
    SQLite refuses to change it inside a transaction, hence the order
    (write_transaction sets it before and resets it after).

    It yields a cursor. With ``orm``, Django's transaction.atomic() and
    connection.cursor(), for appliers that use the ORM inside it (its
    nested atomic blocks need Django to know of the transaction); without,
    the raw connection's, which is cheaper (consensus/sqlite_cursor.py).
    """
    if orm:
        return _orm_transaction()
    return write_transaction(synchronous="NORMAL")


@contextmanager
def _orm_transaction() -> Iterator:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous=NORMAL")
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            yield cursor
    finally:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous=FULL")


def _iter_rows():
    return (
        LogEntry.objects.order_by("index")
        .values_list(
            "index", "term", "type", "command", "client_id", "seq", "timestamp_ms"
        )
        .iterator(chunk_size=5000)
    )


def _to_entry(row) -> Entry:
    index, term, type_, command, client_id, seq, timestamp_ms = row
    return Entry(index, term, EntryType(type_), command, client_id, seq, timestamp_ms)


def _to_rows(entries: Sequence[Entry]) -> list[LogEntry]:
    return [
        LogEntry(
            index=e.index,
            term=e.term,
            type=e.type.value,
            command=e.command,
            client_id=e.client_id,
            seq=e.seq,
            timestamp_ms=e.timestamp_ms,
        )
        for e in entries
    ]


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


_LOG = _q(LogEntry._meta.db_table)
_DELETE_FROM = f"DELETE FROM {_LOG} WHERE {_q('index')} >= %s"
_INSERT_ENTRY = (
    f"INSERT INTO {_LOG} ({_q('index')}, {_q('term')}, {_q('type')},"
    f" {_q('command')}, {_q('client_id')}, {_q('seq')}, {_q('timestamp_ms')})"
    " VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
_UPDATE_HARD_STATE = (
    f"UPDATE {_q(PersistentState._meta.db_table)} SET {_q('current_term')} = %s,"
    f" {_q('voted_for')} = %s WHERE id = 1"
)
