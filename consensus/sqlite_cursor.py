"""The loop thread's write transactions on the raw sqlite3 connection.

Every client command costs each server two write transactions (the save of
its entry, the apply), and the leader a read of the client's session. Through
Django's transaction.atomic() and cursor wrapper, each statement paid about
10-20 us of bookkeeping (async and thread-sharing checks, the regex that turns
``%s`` into ``?``, the atomic block's savepoint logic): 217 us of CPU for a
two-statement fsynced transaction against 125 us on the raw connection. Here
the same statements run on Django's own sqlite3 connection (so its PRAGMAs,
WAL mode and synchronous=FULL hold), with explicit BEGIN IMMEDIATE / COMMIT,
through a cursor that keeps Django's API: ``%s`` placeholders, and errors
raised as django.db's (a state part may catch IntegrityError as it would
from connection.cursor()).

Only the loop thread uses these, outside any atomic block; Django's own
transactions on the same connection (migrations, snapshots, the ORM's reads)
find it in autocommit, as they left it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.sqlite3.base import FORMAT_QMARK_REGEX


@functools.lru_cache(maxsize=1024)
def _qmark(sql: str) -> str:
    # Django's SQLiteCursorWrapper.convert_query, once per statement text.
    return FORMAT_QMARK_REGEX.sub("?", sql).replace("%%", "%")


class Cursor:
    """A DB-API cursor taking Django's ``%s`` (or ``%(name)s``) placeholders,
    raising django.db errors, over one sqlite3 cursor."""

    __slots__ = ("_cursor", "_errors")

    def __init__(self, cursor, errors):
        self._cursor = cursor
        self._errors = errors  # connection.wrap_database_errors

    def execute(self, sql: str, params=None):
        with self._errors:
            if params is None:
                self._cursor.execute(sql)
            elif isinstance(params, Mapping):
                self._cursor.execute(sql % {n: f":{n}" for n in params}, params)
            else:
                self._cursor.execute(_qmark(sql), params)
        return self

    def executemany(self, sql: str, param_list):
        with self._errors:
            self._cursor.executemany(_qmark(sql), param_list)
        return self

    def fetchone(self):
        with self._errors:
            return self._cursor.fetchone()

    def fetchmany(self, size: int = 1):
        with self._errors:
            return self._cursor.fetchmany(size)

    def fetchall(self):
        with self._errors:
            return self._cursor.fetchall()

    def __iter__(self):
        return iter(self.fetchall())

    @property
    def in_transaction(self) -> bool:
        return self._cursor.connection.in_transaction

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self):
        return self._cursor.lastrowid

    @property
    def description(self):
        return self._cursor.description

    def close(self) -> None:
        self._cursor.close()


def _open_cursor() -> Cursor:
    """A Cursor on this thread's connection, opened if need be."""
    # One look-up of the thread's connection: each attribute read through
    # django.db.connection resolves it again (a few microseconds each).
    db = connections[DEFAULT_DB_ALIAS]
    if db.connection is None:
        db.ensure_connection()
    if db.in_atomic_block or not db.autocommit:
        # Nesting in Django's transaction would commit it from under it.
        raise RuntimeError("a raw write transaction inside an atomic block")
    return Cursor(db.connection.cursor(), db.wrap_database_errors)


@contextmanager
def cursor() -> Iterator[Cursor]:
    """A Cursor outside any transaction (each statement commits alone): for
    reads, as connection.cursor()."""
    wrapped = _open_cursor()
    try:
        yield wrapped
    finally:
        wrapped.close()


@contextmanager
def write_transaction(synchronous: str = "FULL") -> Iterator[Cursor]:
    """One BEGIN IMMEDIATE ... COMMIT on the connection; rolled back if the
    block raises. ``synchronous`` other than FULL holds for this transaction
    only (SQLite refuses to change it inside one, hence before and after)."""
    wrapped = _open_cursor()
    try:
        if synchronous != "FULL":
            wrapped.execute(f"PRAGMA synchronous={synchronous}")
        try:
            wrapped.execute("BEGIN IMMEDIATE")
            try:
                yield wrapped
                wrapped.execute("COMMIT")
            except BaseException:
                # Whatever failed, the next transaction must not start
                # inside this one (a failed COMMIT can leave it open).
                if wrapped.in_transaction:
                    wrapped.execute("ROLLBACK")
                raise
        finally:
            if synchronous != "FULL":
                wrapped.execute("PRAGMA synchronous=FULL")
    finally:
        wrapped.close()
