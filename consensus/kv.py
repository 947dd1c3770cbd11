"""The key-value store, the state machine's second part (issue 12;
CONTRACT.md "Key-value store").

A KV entry's command is one operation as JSON: ``{"op": "put", "key",
"value", "prev"}`` or ``{"op": "delete", "key", "prev"}``, ``prev`` (the
revision the key must have, 0: absent) optional. Apply decides everything
from the entry and the table, identically on every server: a key's
``revision`` becomes the entry's index, and the change is recorded in the
history watches read (KeyEvent). An operation whose precondition fails, or
a delete of an absent key, changes nothing and answers Refused.

Reads run on request threads, each in one SQLite read transaction that
also reads last_applied, so an answer's ``applied_index`` is exactly the
state it shows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import connection

from .core.messages import Entry
from .models import KeyEvent, KeyValue, PersistentState
from .parts import StatePart
from .refused import NOT_FOUND, PRECONDITION_FAILED, Refused

MAX_KEY_BYTES = 512
MAX_VALUE_BYTES = 64 * 1024
# The highest code point, a noncharacter: refused in keys, so that
# "prefix + MAX_CHAR" bounds every key starting with prefix (byte order).
MAX_CHAR = "\U0010ffff"
# The default history window (RAFT_KV_HISTORY_ENTRIES), in log indexes.
HISTORY_ENTRIES = 100_000


class InvalidKey(ValueError):
    pass


def check_key(key) -> str:
    if not isinstance(key, str):
        raise InvalidKey("a key is text")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidKey("a key must be valid Unicode text") from None
    if not 1 <= size <= MAX_KEY_BYTES:
        raise InvalidKey(f"a key is 1 to {MAX_KEY_BYTES} bytes of UTF-8, not {size}")
    if MAX_CHAR in key:
        raise InvalidKey("a key may not hold U+10FFFF (a noncharacter)")
    return key


def check_value(value) -> str:
    if not isinstance(value, str):
        raise ValueError("a value is text")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("a value must be valid Unicode text") from None
    if size > MAX_VALUE_BYTES:
        raise ValueError(f"a value is at most {MAX_VALUE_BYTES} bytes, not {size}")
    return value


def put_op(key: str, value: str, prev: int | None = None) -> str:
    return _op("put", key=key, value=value, prev=prev)


def delete_op(key: str, prev: int | None = None) -> str:
    return _op("delete", key=key, prev=prev)


def _op(name: str, **fields) -> str:
    return json.dumps({"op": name, **fields}, separators=(",", ":"))


# --- apply (loop thread, inside the state machine's transaction) --------------


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


_KV, _EVENTS = _table(KeyValue), _table(KeyEvent)
_SELECT_REVISION = f'SELECT "revision" FROM {_KV} WHERE "key" = %s'
_UPSERT = (
    f'INSERT INTO {_KV} ("key", "value", "revision") VALUES (%s, %s, %s)'
    ' ON CONFLICT ("key") DO UPDATE SET "value" = excluded."value",'
    ' "revision" = excluded."revision"'
)
_DELETE = f'DELETE FROM {_KV} WHERE "key" = %s'
_RECORD = (
    f'INSERT INTO {_EVENTS} ("revision", "type", "key", "value")'
    " VALUES (%s, %s, %s, %s)"
)
_FORGET = f'DELETE FROM {_EVENTS} WHERE "revision" <= %s'


def apply(cursor, entry: Entry) -> Refused | None:
    """Apply one KV entry on ``cursor``; Refused if it changed nothing.
    Malformed operations are refused, never raised: every server must
    apply the same log, whatever a leader of another version wrote."""
    try:
        op = json.loads(entry.command)
        if not isinstance(op, dict) or op.get("op") not in ("put", "delete"):
            raise ValueError("not a put or delete")
        key = check_key(op.get("key"))
        prev = op.get("prev")
        if prev is not None and (isinstance(prev, bool) or not isinstance(prev, int)):
            raise ValueError("prev must be an integer")
        value = check_value(op.get("value")) if op["op"] == "put" else None
    except ValueError as exc:
        return Refused(PRECONDITION_FAILED, f"malformed key-value operation: {exc}", 0)
    cursor.execute(_SELECT_REVISION, [key])
    row = cursor.fetchone()
    current = row[0] if row else 0
    if prev is not None and prev != current:
        return Refused(
            PRECONDITION_FAILED,
            f"the key's revision is {current}, not {prev}",
            current,
        )
    if op["op"] == "delete":
        if row is None:
            return Refused(NOT_FOUND, f"no key {key!r}")
        cursor.execute(_DELETE, [key])
        cursor.execute(_RECORD, [entry.index, "delete", key, None])
    else:
        cursor.execute(_UPSERT, [key, value, entry.index])
        cursor.execute(_RECORD, [entry.index, "put", key, value])
    return None


# Events are forgotten in steps of this many log indexes (at most the
# window): one DELETE per step, not one with every applied batch.
FORGET_STEP = 1024


def forget_floor(last_applied: int, window: int) -> int:
    """The revision at and below which the stored events are deleted once
    ``last_applied`` is applied: the history's floor (``last_applied -
    window``) rounded down to a step. The same on every server, since it
    depends on the applied index alone; the events between the two are
    kept but never read (events() reads above the history's floor)."""
    step = max(1, min(FORGET_STEP, window))
    return max(0, last_applied - window) // step * step


def forget_history(cursor, last_applied: int, window: int) -> int:
    """Delete the events at and below forget_floor(); that floor."""
    floor = forget_floor(last_applied, window)
    if floor > 0:
        cursor.execute(_FORGET, [floor])
    return floor


# --- reads (request threads) --------------------------------------------------


@contextmanager
def read_transaction() -> Iterator:
    """A cursor in one deferred SQLite read transaction: every statement
    sees the same committed state (WAL snapshot isolation), and the loop
    thread's writes never wait for it."""
    with connection.cursor() as cursor:
        cursor.execute("BEGIN DEFERRED")
        try:
            yield cursor
        finally:
            cursor.execute("COMMIT")


APPLIED_QUERY = f'SELECT "last_applied" FROM {_table(PersistentState)} WHERE id = 1'


@dataclass(frozen=True, slots=True)
class Item:
    key: str
    value: str
    revision: int


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    key: str
    value: str | None
    revision: int


def get(key: str) -> tuple[Item | None, int]:
    """The key's item (None if absent) and the applied index it is from."""
    with read_transaction() as cursor:
        cursor.execute(APPLIED_QUERY)
        (applied,) = cursor.fetchone() or (0,)
        cursor.execute(f'SELECT "value", "revision" FROM {_KV} WHERE "key" = %s', [key])
        row = cursor.fetchone()
    return (Item(key, *row) if row else None), applied


def items(prefix: str, after: str | None, limit: int) -> tuple[list[Item], bool, int]:
    """Keys starting with ``prefix``, in byte order, after ``after``: at
    most ``limit``, whether there are more, and the applied index."""
    low, strict = prefix, False
    if after is not None and after >= prefix:
        low, strict = after, True
    with read_transaction() as cursor:
        cursor.execute(APPLIED_QUERY)
        (applied,) = cursor.fetchone() or (0,)
        cursor.execute(
            f'SELECT "key", "value", "revision" FROM {_KV}'
            f' WHERE "key" {">" if strict else ">="} %s AND "key" < %s'
            ' ORDER BY "key" LIMIT %s',
            [low, prefix + MAX_CHAR, limit + 1],
        )
        rows = cursor.fetchall()
    found = [Item(*row) for row in rows if row[0].startswith(prefix)]
    return found[:limit], len(found) > limit, applied


def events(
    prefix: str, after: int, limit: int, window: int
) -> tuple[list[Event], int, int]:
    """Changes under ``prefix`` with revision above ``after``, in order (at
    most ``limit``), the revision they cover up to, and the history's
    floor, the applied index minus ``window``: events at or below it may be
    gone (forget_history), and none of them is read."""
    with read_transaction() as cursor:
        cursor.execute(APPLIED_QUERY)
        (applied,) = cursor.fetchone() or (0,)
        floor = max(0, applied - window)
        cursor.execute(
            f'SELECT "type", "key", "value", "revision" FROM {_EVENTS}'
            f' WHERE "revision" > %s AND "key" >= %s AND "key" < %s'
            ' ORDER BY "revision" LIMIT %s',
            [max(after, floor), prefix, prefix + MAX_CHAR, limit],
        )
        rows = cursor.fetchall()
    found = [Event(*row) for row in rows]
    # With a full page the answer covers up to its last event only.
    covered = found[-1].revision if len(found) == limit else applied
    return found, covered, floor


class KvPart(StatePart):
    """The key-value map as a part of the state machine (its KV entries)."""

    name = "kv"
    models = (KeyValue, KeyEvent)

    def __init__(self, history_entries: int = HISTORY_ENTRIES):
        self.history_entries = history_entries
        # The floor the stored events were last deleted to (None: unknown,
        # after a start, a snapshot's restore or a failed batch).
        self._forgotten: int | None = None

    def load(self) -> None:
        self._forgotten = None

    def rollback(self) -> None:
        self._forgotten = None

    def apply(self, cursor, entry: Entry, data) -> Refused | None:
        return apply(cursor, entry)

    def finish(self, cursor, last_applied: int) -> None:
        # Once per step, and once after a start: the floor is a function
        # of the applied index, so what is stored is too.
        floor = forget_floor(last_applied, self.history_entries)
        if floor != self._forgotten:
            self._forgotten = forget_history(cursor, last_applied, self.history_entries)
