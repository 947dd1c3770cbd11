"""Writing snapshots into the Raft database: restore (a follower installs
a leader's snapshot) and log compaction. Loop thread only: these are the
only writes to the Raft database outside consensus/storage.py and
consensus/state_machine.py."""

from __future__ import annotations

import sqlite3
from urllib.parse import quote

from django.db import connection, transaction

from .store import SnapshotMeta, SnapshotStore
from .tables import (
    LOG_ENTRY,
    META_TABLE,
    PERSISTENT_STATE,
    READABLE_FORMATS,
    all_tables,
    tables_in,
)


class SnapshotError(Exception):
    """A snapshot file that is missing, corrupt or not what it claims."""


def restore(
    store: SnapshotStore, meta: SnapshotMeta, *, keep_log_after: bool, verify=True
) -> None:
    """Replace the applied state and last_applied with the snapshot's, and
    delete the log it supersedes, in one fsynced transaction.

    Raft Figure 13 (and §7): if the log holds the snapshot's last included
    entry (same index and term), the entries after it are kept
    (``keep_log_after``) and only those up to it deleted; otherwise the
    whole log is discarded. The caller (the core) decides which, and must
    treat its in-memory log the same way. Runs on the loop thread, the
    only writer of the Raft database; call StateMachine.load() afterwards,
    since its mirrors of the stored row are stale.

    synchronous=FULL, unlike applied_state_transaction: the log it deletes
    can no longer rebuild this state, so the state must be durable first.
    A crash leaves the database as before or as after, never between.
    """
    path = store.data_path(meta)
    if verify and not store.verify(meta):
        raise SnapshotError(f"{meta.name}: size or checksum does not match")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous=FULL")
        # ATTACH and DETACH are refused inside a transaction. Read-only:
        # a missing file is an error rather than a new empty database.
        cursor.execute(
            "ATTACH DATABASE %s AS snap", [f"file:{quote(str(path))}?mode=ro"]
        )
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            in_file = tables_in(_check(cursor, meta))
            for table in all_tables():
                # DELETE without WHERE: SQLite drops the table's pages at
                # once rather than row by row.
                cursor.execute(f'DELETE FROM main."{table.name}"')
                if table not in in_file:
                    continue
                cursor.execute(
                    f'INSERT INTO main."{table.name}" ({table.column_list})'
                    f' SELECT {table.column_list} FROM snap."{table.name}"'
                )
            cursor.execute(
                f'UPDATE main."{PERSISTENT_STATE}" SET "last_applied" = %s'
                " WHERE id = 1",
                [meta.last_included_index],
            )
            if keep_log_after:
                cursor.execute(
                    f'DELETE FROM main."{LOG_ENTRY}" WHERE "index" <= %s',
                    [meta.last_included_index],
                )
            else:
                cursor.execute(f'DELETE FROM main."{LOG_ENTRY}"')
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DETACH DATABASE snap")


def _check(cursor, meta: SnapshotMeta) -> int:
    """The file's format, if its metadata row is ``meta``'s."""
    cursor.execute(
        f'SELECT "format", "last_included_index", "last_included_term",'
        f' "configuration", "configuration_index" FROM snap."{META_TABLE}"'
    )
    rows = cursor.fetchall()
    found = rows[0][0] if len(rows) == 1 else None
    expected = [
        (
            found if found in READABLE_FORMATS else max(READABLE_FORMATS),
            meta.last_included_index,
            meta.last_included_term,
            meta.configuration,
            meta.configuration_index,
        )
    ]
    if rows != expected:
        raise SnapshotError(f"{meta.name}: holds {rows}, expected {expected}")
    return found


def check_file(path, meta: SnapshotMeta) -> None:
    """SnapshotError unless ``path`` is a snapshot database holding
    ``meta`` and every applied-state table restore copies: a leader's file
    is checked before it is published, so a forged or broken one never
    reaches restore (where a failure stops the node)."""
    db = sqlite3.connect("file::memory:", uri=True)
    try:
        cursor = db.cursor()
        cursor.execute(
            "ATTACH DATABASE ? AS snap", [f"file:{quote(str(path))}?mode=ro"]
        )
        for table in tables_in(_check(cursor, meta)):
            cursor.execute(
                f'SELECT {table.column_list} FROM snap."{table.name}" LIMIT 0'
            )
    except sqlite3.Error as exc:
        raise SnapshotError(f"{meta.name}: not a snapshot ({exc})") from None
    finally:
        db.close()


def log_matches(meta: SnapshotMeta) -> bool:
    """Whether the log holds the snapshot's last included entry (same index
    and term): Raft Figure 13's test for keeping the entries after it."""
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT "term" FROM main."{LOG_ENTRY}" WHERE "index" = %s',
            [meta.last_included_index],
        )
        row = cursor.fetchone()
    return row is not None and row[0] == meta.last_included_term


def compact_log(store: SnapshotStore, through_index: int) -> int:
    """Delete the log entries at and below ``through_index`` in one fsynced
    transaction; return how many. Loop thread only.

    Refused unless a durable snapshot covers them (Raft §7: only entries a
    snapshot has replaced may be discarded): after a crash the state is
    rebuilt from that snapshot and the log after it.
    """
    latest = store.latest()
    if latest is None or latest.last_included_index < through_index:
        raise SnapshotError(
            f"no snapshot covers index {through_index} (latest: {latest})"
        )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f'DELETE FROM main."{LOG_ENTRY}" WHERE "index" <= %s', [through_index]
        )
        return cursor.rowcount
