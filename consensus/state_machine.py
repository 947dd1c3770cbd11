"""The replicated state machine, in SQLite: its parts (consensus/parts.py),
the original toy's list of messages (MessagesPart, below) and the key-value
map (consensus/kv.py's KvPart) built in, a project's own beside them; and
around them the configuration, client sessions and API users.

Applying ``print`` logs every message so far, ``count`` logs how many;
applying a membership change logs ``Added new peer`` / ``Removed peer``.
(client_id, seq) pairs make a command apply once however often it reached
the log, in client sessions that end (dissertation §6.3; the rules are in
consensus/sessions.py). Its state lives in the node's database, written
with last_applied in one transaction per batch, so a restart replays
nothing and no object here grows with the number of commands applied.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence

from django.db import DatabaseError, connection

from . import access, kv, sqlite_cursor
from .core.configuration import Configuration
from .core.messages import Entry, EntryType
from .eventlog import Streamed
from .models import AppliedMessage, AppliedState, MembershipChange, PersistentState
from .parts import StatePart, parse_app_command, unknown_part
from .refused import CONFLICT, Refused
from .sessions import Applied, Expired, ExpiryPace, SessionLimits, Sessions
from .storage import applied_state_transaction

__all__ = ["Answer", "Applied", "Expired", "Refused", "StateMachine"]

# What applying an entry answers its proposer: Expired for a command whose
# session has ended, Refused for an ACCESS entry that changed nothing.
Answer = Applied | Expired | Refused

event_log = logging.getLogger("raft")
logger = logging.getLogger(__name__)
# What a failing disk raises through the ORM, sqlite3 or the file system
# (consensus.runtime stops the node on these).
STORAGE_ERRORS = (DatabaseError, sqlite3.Error, OSError)

# Rows fetched at a time when a print streams the messages.
PRINT_CHUNK_ROWS = 2000

# The defaults of RAFT_SESSION_TTL_S and RAFT_SESSION_MAX_ANSWERS.
SESSION_TTL_S = 3600.0
SESSION_MAX_ANSWERS = 1000


class StateMachine:
    """The toy's state machine over the node's database (the default one).

    Only the runtime's loop thread applies; call load() before the first
    apply, once the schema exists (Storage.prepare migrates it).

    ``session_ttl_s`` and ``max_answers`` bound the client sessions
    (consensus/sessions.py). They decide what is applied, so every server
    of a cluster must use the same values.
    """

    def __init__(
        self,
        node_id: str | None = None,
        *,
        session_ttl_s: float = SESSION_TTL_S,
        max_answers: int = SESSION_MAX_ANSWERS,
        kv_history_entries: int = kv.HISTORY_ENTRIES,
        parts: dict[str, StatePart] | None = None,
    ):
        # Membership changes are announced only by members of the new
        # configuration (None: always, for tests).
        self.node_id = node_id
        self._limits = SessionLimits.from_settings(session_ttl_s, max_answers)
        # The built-in parts, by the entries they apply, and a project's
        # own (RAFT_STATE_PARTS, APP entries) by name.
        self._messages = MessagesPart()
        self._kv = kv.KvPart(kv_history_entries)
        self._app_parts = dict(parts or {})
        self._parts: list[StatePart] = [
            self._messages,
            self._kv,
            *self._app_parts.values(),
        ]
        # Mirrors of the stored row, read once by load(); the database
        # holds the truth. invariant: last_applied <= commit_index
        self.last_applied = 0
        self._configuration: str | None = None
        self._configuration_index = 0
        self._session_clock_ms = 0
        self._expiry_pace = ExpiryPace()

    def load(self) -> None:
        """Read how far the stored state goes (a restart replays nothing)."""
        state, _ = AppliedState.objects.get_or_create(pk=1)
        self._messages.count = state.message_count
        for part in self._parts:
            part.load()
        self._configuration = state.configuration
        self._configuration_index = state.configuration_index
        self._session_clock_ms = state.session_clock_ms
        persistent = PersistentState.objects.filter(pk=1).first()
        self.last_applied = persistent.last_applied if persistent else 0

    @property
    def message_count(self) -> int:
        return self._messages.count

    def messages(self) -> Iterator[str]:
        """Every message applied, in apply order, read in chunks."""
        return _messages_upto(self._messages.count)

    @property
    def session_clock_ms(self) -> int:
        """The highest entry timestamp applied so far (0: none)."""
        return self._session_clock_ms

    def lookup(
        self, client_id: str | None, seq: int | None
    ) -> Applied | Expired | None:
        """What applying (client_id, seq) now would answer without applying
        anything: the first answer of an applied pair, Expired for a pair
        whose answer is no longer kept, or None (new, or not a pair)."""
        return self.lookup_many([(client_id, seq)])[0]

    def lookup_many(
        self, pairs: Sequence[tuple[str | None, int | None]]
    ) -> list[Applied | Expired | None]:
        """lookup() of each pair, on one cursor, reading the clients' rows
        at once: the leader looks up every proposal of a batch."""
        answers: list[Applied | Expired | None] = [None] * len(pairs)
        wanted = [
            (position, client_id, seq)
            for position, (client_id, seq) in enumerate(pairs)
            if client_id is not None and seq is not None
        ]
        if not wanted:
            return answers
        with sqlite_cursor.cursor() as cursor:
            sessions = Sessions(cursor, self._limits, self._session_clock_ms)
            sessions.prefetch(client_id for _, client_id, _ in wanted)
            for position, client_id, seq in wanted:
                answers[position] = sessions.peek(client_id, seq)
        return answers

    def apply(self, entry: Entry) -> Answer:
        """Apply one committed entry (a batch of one)."""
        return self.apply_batch([entry])[0]

    def apply_batch(self, entries: Sequence[Entry]) -> list[Answer]:
        """Apply committed entries, in log order, in one transaction that
        also records last_applied; then log their lines.

        The lines wait for the commit: a crash before it re-applies the
        batch at restart, and they print then, once. The rows are written
        with plain SQL, a statement per table per batch: this is every
        client command's path, and the ORM's per-row query building cost
        several times the rest of the apply.
        """
        if not entries:
            return []
        answers = []
        before = self._mirrors()
        try:
            orm = any(entry.type not in PLAIN_SQL_ENTRIES for entry in entries)
            with applied_state_transaction(orm) as cursor:
                sessions = Sessions(cursor, self._limits, self._session_clock_ms)
                # One statement for the rows of every client in the batch.
                sessions.prefetch(
                    e.client_id
                    for e in entries
                    if e.type in PART_ENTRIES
                    and e.client_id is not None
                    and e.seq is not None
                )
                batch = _Batch(sessions, cursor)
                for entry in entries:
                    answers.append(self._apply(entry, batch))
                sessions.finish(len(entries), self._expiry_pace)
                for part in self._parts:
                    part.finish(cursor, self.last_applied)
                self._session_clock_ms = sessions.clock_ms
                batch.write(cursor, *self._mirrors())
        except BaseException:
            # Nothing of the batch is stored: nor may it seem applied here.
            (
                self.last_applied,
                self._messages.count,
                self._configuration,
                self._configuration_index,
                self._session_clock_ms,
            ) = before
            for part in self._parts:
                part.rollback()
            raise
        for line in batch.lines:
            event_log.info(*line)
        return answers

    def _mirrors(self) -> tuple[int, int, str | None, int, int]:
        return (
            self.last_applied,
            self._messages.count,
            self._configuration,
            self._configuration_index,
            self._session_clock_ms,
        )

    def _apply(self, entry: Entry, batch: _Batch) -> Answer:
        assert entry.index == self.last_applied + 1, (entry, self.last_applied)
        self.last_applied = entry.index
        batch.sessions.advance(entry.timestamp_ms)
        answer = Applied(entry.index, entry.term)
        if entry.type is EntryType.CONFIG:
            self._apply_configuration(entry, batch.lines)
        elif entry.type is EntryType.ACCESS:
            return access.apply(entry) or answer
        if entry.type not in PART_ENTRIES:
            return answer
        paired = entry.client_id is not None and entry.seq is not None
        if paired:
            known = batch.sessions.check(entry.client_id, entry.seq)
            if known is not None:
                # A repeat (the first answer) or a pair whose answer is no
                # longer kept (Expired): not applied.
                return known
        refused = self._apply_to_part(batch, entry)
        if refused is not None:
            # Nothing changed, so nothing to remember: a retry of the pair
            # is judged afresh (a failed compare-and-set has no effect to
            # repeat).
            return refused
        if paired:
            batch.sessions.remember(entry.client_id, entry.seq, answer)
        return answer

    def _apply_to_part(self, batch: _Batch, entry: Entry) -> Refused | None:
        data = None
        if entry.type is EntryType.COMMAND:
            part = self._messages
        elif entry.type is EntryType.KV:
            part = self._kv
        else:
            try:
                name, data = parse_app_command(entry.command)
            except ValueError as exc:
                return Refused(CONFLICT, f"malformed APP entry: {exc}")
            part = self._app_parts.get(name)
            if part is None:
                return unknown_part(name)
            return self._apply_project_part(batch, entry, name, part, data)
        refused = part.apply(batch.cursor, entry, data)
        # In log order with the configuration's lines.
        batch.lines.extend(part.take_lines())
        return refused

    def _apply_project_part(self, batch, entry, name, part, data) -> Refused | None:
        """A project's part (RAFT_STATE_PARTS) that raises refuses the entry
        rather than stop the node: the entry stays in the log, so every
        server would stop at it again, at every restart, for good. Its
        writes for the entry are undone (a savepoint), and it is
        deterministic as the rest of apply: a part that raises for an entry
        raises for it on every server. A storage failure still stops the
        node: it is this server's disk, not the entry."""
        cursor = batch.cursor
        cursor.execute('SAVEPOINT "app_entry"')
        try:
            refused = part.apply(cursor, entry, data)
        except STORAGE_ERRORS:
            raise
        except Exception as exc:
            cursor.execute('ROLLBACK TO "app_entry"')
            cursor.execute('RELEASE "app_entry"')
            part.take_lines()  # nothing of the entry is printed either
            logger.error(
                "the state part %s failed to apply entry %d (%s: %s); refused",
                name,
                entry.index,
                type(exc).__name__,
                exc,
            )
            return Refused(
                CONFLICT,
                f"the state part {name} failed to apply this entry: "
                f"{type(exc).__name__}: {exc}",
            )
        cursor.execute('RELEASE "app_entry"')
        batch.lines.extend(part.take_lines())
        return refused

    def _apply_configuration(self, entry: Entry, lines: list[tuple]) -> None:
        try:
            new = Configuration.from_json(entry.command)
        except (ValueError, KeyError, TypeError):
            return  # the core refuses malformed configurations
        old_json, self._configuration = self._configuration, entry.command
        self._configuration_index = entry.index
        if old_json is None:
            return  # the initial configuration is not a change
        # On every server alike (the lines below are per server): who asked.
        MembershipChange.objects.create(
            index=entry.index,
            timestamp_ms=entry.timestamp_ms,
            requested_by=entry.client_id or "",
            configuration=entry.command,
        )
        if self.node_id is not None and self.node_id not in new.members:
            return  # history a new server applies, or its own removal
        old = Configuration.from_json(old_json)
        # A peer is a voting member: a learner being caught up is not
        # announced, its promotion is (on every member, itself included).
        for address in sorted(new.voters - old.voters):
            lines.append(("Added new peer %s", address))
        for address in sorted(old.voters - new.voters):
            lines.append(("Removed peer %s", address))


class _Batch:
    """What one apply_batch writes, and the lines it logs after the commit."""

    def __init__(self, sessions: Sessions, cursor):
        self.cursor = cursor
        # The client sessions as this batch changes them (written by their
        # own finish()): a repeat within the batch sees the first answer.
        self.sessions = sessions
        self.lines: list[tuple] = []

    def write(
        self,
        cursor,
        last_applied: int,
        message_count: int,
        configuration: str | None,
        configuration_index: int,
        session_clock_ms: int,
    ) -> None:
        cursor.execute(_UPDATE_LAST_APPLIED, [last_applied])
        cursor.execute(
            _UPDATE_APPLIED_STATE,
            [message_count, configuration, configuration_index, session_clock_ms],
        )


# The entries the parts apply, with client sessions.
PART_ENTRIES = frozenset({EntryType.COMMAND, EntryType.KV, EntryType.APP})
# The entries applied with plain SQL only: a batch of these alone takes the
# raw connection's transaction. ACCESS and CONFIG entries are applied through
# the ORM, and a project's part (APP) may use it.
PLAIN_SQL_ENTRIES = frozenset({EntryType.COMMAND, EntryType.KV, EntryType.NOOP})


class MessagesPart(StatePart):
    """The original toy's list of messages (COMMAND entries): ``print``
    logs every message so far, ``count`` how many. The count is kept in
    AppliedState, which the state machine writes."""

    name = "messages"
    models = (AppliedMessage,)

    def __init__(self):
        self.count = 0
        self._rows: list[tuple[int, str]] = []
        self._lines: list[tuple] = []

    def apply(self, cursor, entry: Entry, data) -> None:
        self.count += 1
        self._rows.append((self.count, entry.command))
        if entry.command == "print":
            # Streamed from the table when the line is written, after the
            # commit, up to this message.
            self._lines.append(("Logs [%s]", Streamed(_chunks_upto(self.count))))
        elif entry.command == "count":
            self._lines.append(("Count %d", self.count))

    def finish(self, cursor, last_applied: int) -> None:
        # One statement per batch: the ORM's per-row query building cost
        # several times the rest of the apply.
        if self._rows:
            cursor.executemany(_INSERT_MESSAGE, self._rows)
            self._rows = []

    def rollback(self) -> None:
        self._rows = []
        self._lines = []

    def take_lines(self) -> list[tuple]:
        lines, self._lines = self._lines, []
        return lines


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _col(name: str) -> str:
    return connection.ops.quote_name(name)


_INSERT_MESSAGE = (
    f"INSERT INTO {_table(AppliedMessage)} ({_col('position')}, {_col('command')})"
    " VALUES (%s, %s)"
)
_UPDATE_LAST_APPLIED = (
    f"UPDATE {_table(PersistentState)} SET {_col('last_applied')} = %s WHERE id = 1"
)
_UPDATE_APPLIED_STATE = (
    f"UPDATE {_table(AppliedState)} SET {_col('message_count')} = %s,"
    f" {_col('configuration')} = %s, {_col('configuration_index')} = %s,"
    f" {_col('session_clock_ms')} = %s WHERE id = 1"
)


def _messages_upto(position: int) -> Iterator[str]:
    return (
        AppliedMessage.objects.filter(position__lte=position)
        .order_by("position")
        .values_list("command", flat=True)
        .iterator(chunk_size=PRINT_CHUNK_ROWS)
    )


def _chunks_upto(position: int):
    """A factory of the ``Logs`` line's body in pieces: the messages up to
    ``position``, space-separated, at most PRINT_CHUNK_ROWS per piece."""

    def chunks() -> Iterator[str]:
        batch: list[str] = []
        separator = ""
        for message in _messages_upto(position):
            batch.append(message)
            if len(batch) == PRINT_CHUNK_ROWS:
                yield separator + " ".join(batch)
                batch.clear()
                separator = " "
        if batch:
            yield separator + " ".join(batch)

    return chunks
