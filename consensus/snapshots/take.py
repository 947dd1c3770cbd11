"""Taking a snapshot: a copy of the applied-state tables as of one
last_applied, read on a connection of its own without stopping the loop
thread, then published durably. Plain sqlite3, no Django connection."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

from .store import SnapshotMeta, SnapshotStore, file_digest, fsync_file
from .tables import (
    APPLIED_STATE,
    FORMAT,
    LOG_ENTRY,
    META_COLUMNS,
    META_TABLE,
    PERSISTENT_STATE,
    all_tables,
)


class NothingToSnapshot(Exception):
    """Nothing is applied yet, or the latest snapshot already covers it."""


def take_snapshot(
    store: SnapshotStore, db_path: Path | str, *, min_index: int = 1
) -> SnapshotMeta:
    """Copy the applied state at its last_applied into a new snapshot.

    Safe on any thread but the loop thread's own connection: it reads the
    Raft database in one read transaction on a connection of its own. In WAL
    mode that transaction sees one committed state throughout, so
    last_applied and the tables agree, while the loop thread goes on
    writing (a reader never blocks SQLite's one writer; the WAL only grows
    until the read ends). Raises NothingToSnapshot if last_applied is below
    ``min_index`` (pass the latest snapshot's index + 1 to skip a copy of
    the same state).
    """
    temporary = store.temporary_path("take")
    temporary.unlink(missing_ok=True)
    try:
        index, term, configuration, configuration_index = _copy(
            store, Path(db_path), temporary, min_index
        )
        # The copy was written with synchronous=OFF: one fsync here covers
        # all of it before anything can learn that it exists.
        fsync_file(temporary)
        size, checksum = file_digest(temporary)
        meta = SnapshotMeta(
            last_included_index=index,
            last_included_term=term,
            configuration=configuration,
            configuration_index=configuration_index,
            size=size,
            checksum=checksum,
            created=time.time(),
        )
        return store.publish(temporary, meta)
    finally:
        temporary.unlink(missing_ok=True)


def _copy(
    store: SnapshotStore, db_path: Path, temporary: Path, min_index: int
) -> tuple[int, int, str | None, int]:
    # Not mode=ro: SQLite opens attached files with the main file's flags,
    # and the copy must be writable. Nothing below writes main.
    source = sqlite3.connect(str(db_path), isolation_level=None, timeout=5)
    try:
        source.execute("ATTACH DATABASE ? AS snap", (str(temporary),))
        # The file is fsynced once complete; a crash before that leaves a
        # temporary file that clean_temporary() removes.
        source.execute("PRAGMA snap.journal_mode=OFF")
        source.execute("PRAGMA snap.synchronous=OFF")
        schema = dict(
            source.execute(
                "SELECT name, sql FROM main.sqlite_master WHERE type = 'table'"
            ).fetchall()
        )
        for table in all_tables():
            source.execute(_in_snap(schema[table.name], table.name))
        source.execute(f'CREATE TABLE snap."{META_TABLE}" {META_COLUMNS}')
        # One transaction: reads of main all see the state of its first
        # read (WAL snapshot isolation); writes go to snap only, so the
        # Raft database's write lock is never taken.
        source.execute("BEGIN")
        try:
            (index,) = source.execute(
                f'SELECT "last_applied" FROM main."{PERSISTENT_STATE}" WHERE id = 1'
            ).fetchone() or (0,)
            if index < max(min_index, 1):
                raise NothingToSnapshot(f"last_applied {index} < {min_index}")
            term = _term_at(source, store, index)
            configuration, configuration_index = source.execute(
                f'SELECT "configuration", "configuration_index"'
                f' FROM main."{APPLIED_STATE}" WHERE id = 1'
            ).fetchone() or (None, 0)
            for table in all_tables():
                source.execute(
                    f'INSERT INTO snap."{table.name}" ({table.column_list})'
                    f' SELECT {table.column_list} FROM main."{table.name}"'
                )
            source.execute(
                f'INSERT INTO snap."{META_TABLE}" VALUES (?, ?, ?, ?, ?)',
                (FORMAT, index, term, configuration, configuration_index),
            )
            source.execute("COMMIT")
        except BaseException:
            source.execute("ROLLBACK")
            raise
        source.execute("DETACH DATABASE snap")
    finally:
        source.close()
    return index, term, configuration, configuration_index


def _term_at(source: sqlite3.Connection, store: SnapshotStore, index: int) -> int:
    row = source.execute(
        f'SELECT "term" FROM main."{LOG_ENTRY}" WHERE "index" = ?', (index,)
    ).fetchone()
    if row is not None:
        return row[0]
    # Not in the log: the state came from an installed snapshot at exactly
    # this index (nothing applied since), whose log was discarded.
    installed = store.find(index)
    if installed is None:
        raise NothingToSnapshot(f"the term of applied index {index} is unknown")
    return installed.last_included_term


def _in_snap(sql: str, name: str) -> str:
    """The CREATE TABLE statement of ``name`` in main, for schema snap."""
    created, count = re.subn(
        rf'^CREATE TABLE "?{re.escape(name)}"?',
        f'CREATE TABLE snap."{name}"',
        sql,
        count=1,
    )
    if count != 1:
        raise ValueError(f"unexpected schema for {name}: {sql[:80]}")
    return created
