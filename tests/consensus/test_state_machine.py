"""The toy's state machine on SQLite: Logs and Count lines, at-most-once
sessions, state that survives a restart without replay, and a print that
streams its messages from the database."""

import hashlib
import io
import logging
import re
import threading
import tracemalloc

import pytest
from django.db import OperationalError, connection

from consensus import state_machine
from consensus.core.messages import Entry, EntryType
from consensus.eventlog import EventHandler, Streamed
from consensus.models import (
    AppliedMessage,
    ClientAnswer,
    ClientSession,
    PersistentState,
)
from consensus.state_machine import Applied, StateMachine
from consensus.storage import Storage

from .sql_capture import captured_sql

pytestmark = pytest.mark.django_db(transaction=True)


def command(index, text, client_id=None, seq=None, term=1):
    return Entry(index, term, EntryType.COMMAND, text, client_id, seq)


def machine(node_id=None) -> StateMachine:
    Storage().prepare([])
    sm = StateMachine(node_id)
    sm.load()
    return sm


def test_print_and_count_lines(caplog):
    """print logs every message so far including itself; count counts them."""
    sm = machine()
    with caplog.at_level(logging.INFO, logger="raft"):
        sm.apply(Entry(1, 0, EntryType.CONFIG, "{}"))
        sm.apply(Entry(2, 1, EntryType.NOOP))
        sm.apply(command(3, "I like beer."))
        sm.apply(command(4, "count"))
        sm.apply(command(5, "print"))
    assert [r.getMessage() for r in caplog.records] == [
        "Count 2",
        "Logs [I like beer. count print]",
    ]


def test_a_print_in_a_batch_shows_the_messages_up_to_itself(caplog):
    """The lines are logged after the batch commits, but each shows the
    state as of its own entry."""
    sm = machine()
    with caplog.at_level(logging.INFO, logger="raft"):
        sm.apply_batch(
            [command(1, "a"), command(2, "print"), command(3, "count"), command(4, "b")]
        )
    assert [r.getMessage() for r in caplog.records] == ["Logs [a print]", "Count 3"]
    assert list(sm.messages()) == ["a", "print", "count", "b"]


def test_duplicate_session_applies_once_and_returns_first_answer():
    sm = machine()
    first = sm.apply(command(1, "a", "client", 1))
    again = sm.apply(command(2, "a", "client", 1, term=2))
    assert again == first == Applied(1, 1)
    assert list(sm.messages()) == ["a"]
    assert sm.message_count == 1
    assert sm.lookup("client", 1) == first
    assert sm.lookup("client", 2) is None
    assert sm.lookup(None, None) is None


def test_duplicate_within_one_batch_applies_once():
    sm = machine()
    answers = sm.apply_batch(
        [command(1, "a", "c", 7), command(2, "a", "c", 7, term=2), command(3, "count")]
    )
    assert answers == [Applied(1, 1), Applied(1, 1), Applied(3, 1)]
    assert sm.message_count == 2


def test_state_and_last_applied_survive_a_restart_without_replay(caplog):
    """What a batch applied is stored with last_applied; a new state machine
    on the same database continues from it, printing nothing on load."""
    sm = machine()
    sm.apply_batch(
        [
            Entry(1, 0, EntryType.CONFIG, '{"voters": ["a:1"], "learners": []}'),
            command(2, "x", "c", 1),
            command(3, "y"),
        ]
    )
    assert PersistentState.objects.get().last_applied == 3
    with caplog.at_level(logging.INFO, logger="raft"):
        again = machine()
    assert caplog.records == []
    assert (again.last_applied, again.message_count) == (3, 2)
    assert again.lookup("c", 1) == Applied(2, 1)
    assert list(again.messages()) == ["x", "y"]
    with caplog.at_level(logging.INFO, logger="raft"):
        again.apply_batch(
            [
                Entry(
                    4, 1, EntryType.CONFIG, '{"voters": ["a:1", "b:1"], "learners": []}'
                ),
                command(5, "count"),
            ]
        )
    # The stored configuration is the previous one: a change, announced.
    assert [r.getMessage() for r in caplog.records] == ["Added new peer b:1", "Count 3"]


def test_a_failed_batch_leaves_no_trace(caplog, monkeypatch):
    """The batch's transaction rolls back as a whole (here its last
    statement fails, after the messages, the session and last_applied were
    written): no rows, no lines, and the state machine still expects the
    same next index."""
    sm = machine()
    sm.apply(command(1, "a"))
    monkeypatch.setattr(
        state_machine,
        "_UPDATE_APPLIED_STATE",
        "UPDATE no_such_table SET x = %s, y = %s",
    )
    with caplog.at_level(logging.INFO, logger="raft"), pytest.raises(OperationalError):
        sm.apply_batch([command(2, "print", "s", 1), command(3, "c")])
    assert caplog.records == []
    assert (sm.last_applied, sm.message_count) == (1, 1)
    assert PersistentState.objects.get().last_applied == 1
    assert list(AppliedMessage.objects.values_list("command", flat=True)) == ["a"]
    assert not ClientSession.objects.exists()
    assert not ClientAnswer.objects.exists()
    monkeypatch.undo()
    sm.apply_batch([command(2, "print", "s", 1), command(3, "c")])
    assert list(sm.messages()) == ["a", "print", "c"]
    assert sm.lookup("s", 1) == Applied(2, 1)


def test_entries_apply_in_order_only():
    sm = machine()
    with pytest.raises(AssertionError):
        sm.apply(command(2, "skipped one"))


class _Digest:
    """A stream that keeps only a hash and a length of what is written."""

    def __init__(self):
        self.hash, self.length, self.writes = hashlib.sha256(), 0, 0

    def write(self, text):
        self.hash.update(text.encode())
        self.length += len(text)
        self.writes += 1

    def flush(self):
        pass


def test_print_streams_many_messages_without_building_them(monkeypatch):
    """A print over 200,000 stored messages writes the exact line the plain
    StreamHandler would, in pieces read in chunks: neither the list of
    messages nor the line is ever held in memory."""
    n = 200_000
    sm = machine()
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO consensus_appliedmessage (position, command) VALUES (%s, %s)",
            ((i, f"m{i}") for i in range(1, n)),
        )
        cursor.execute("UPDATE consensus_appliedstate SET message_count = %s", [n - 1])
        cursor.execute(
            "UPDATE consensus_persistentstate SET last_applied = %s", [n - 1]
        )
    sm.load()
    stream = _Digest()
    handler = EventHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    raft = logging.getLogger("raft")
    monkeypatch.setattr(raft, "handlers", [handler])

    def materialised(self):
        raise AssertionError("the Logs line was built as one string")

    monkeypatch.setattr(Streamed, "__str__", materialised)
    tracemalloc.start()
    try:
        sm.apply(command(n, "print"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    expected = "INFO Logs [" + " ".join(f"m{i}" for i in range(1, n)) + " print]\n"
    assert stream.hash.hexdigest() == hashlib.sha256(expected.encode()).hexdigest()
    assert stream.length == len(expected)
    assert stream.writes > 10  # in pieces
    # The line is about 1.5 MB and its list of strings about 11 MB.
    assert peak < 1_000_000, peak


class _NoNetwork:
    def send(self, message):
        raise AssertionError(f"sent {message}")


def test_the_ready_path_saves_entries_then_applies_them_with_last_applied():
    """A sole voter's Ready appends and commits at once: apply_ready saves
    the entries (FULL), then the state machine applies them in its own
    transaction with last_applied; a restart finds both."""
    from consensus.core.ready import HardState, Ready
    from consensus.ready_path import apply_ready

    storage = Storage()
    storage.prepare([])
    sm = StateMachine()
    sm.load()
    new = [command(1, "a"), command(2, "count")]
    ready = Ready(
        hard_state=HardState(1, None), entries_to_persist=new, committed_entries=new
    )
    answers = apply_ready(ready, storage, _NoNetwork(), sm)
    assert answers == [Applied(1, 1), Applied(2, 1)]
    restored = Storage().prepare([])
    assert restored.entries == new and restored.last_applied == 2
    again = StateMachine()
    again.load()
    assert (again.last_applied, again.message_count) == (2, 2)


def test_a_batch_is_one_synchronous_normal_transaction():
    """The applied state and last_applied go in one transaction between
    PRAGMA synchronous=NORMAL and FULL: no fsync of its own on the leader's
    commit-only path, and FULL again for whatever comes next."""
    sm = machine()
    with captured_sql() as statements:
        sm.apply_batch([command(1, "a", "c", 1), command(2, "b"), command(3, "count")])
    assert statements[0] == "PRAGMA synchronous=NORMAL", statements
    assert statements[1].startswith("BEGIN"), statements
    assert statements[-1] == "PRAGMA synchronous=FULL", statements
    writes = [s for s in statements if s.startswith(("INSERT", "UPDATE"))]
    # One statement per table, whatever the batch's size.
    tables = [re.search(r'(?:INTO|UPDATE) "(\w+)"', s).group(1) for s in writes]
    assert sorted(tables) == [
        "consensus_appliedmessage",
        "consensus_appliedstate",
        "consensus_clientanswer",
        "consensus_clientsession",
        "consensus_persistentstate",
    ], writes
    assert PersistentState.objects.get().last_applied == 3


def test_a_background_handler_writes_a_streamed_line_off_the_callers_thread():
    """The loop logs a print's line and goes on; the line, and every line
    logged after it, are written in order by the handler's own thread."""
    stream = io.StringIO()
    handler = EventHandler(stream, background=True)
    handler.setFormatter(logging.Formatter("%(message)s"))
    release = threading.Event()
    writers = []

    def pieces():
        writers.append(threading.current_thread())
        release.wait(5)
        yield "a b"

    logger = logging.getLogger("test-background-events")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("Count %d", 1)
        logger.warning("Logs [%s]", Streamed(pieces))
        logger.warning("Count %d", 2)  # queued behind the Logs line
        # The caller did not wait for the line, nor the line after it.
        assert "Count 2" not in stream.getvalue()
        release.set()
    finally:
        handler.close()
        logger.removeHandler(handler)
    assert stream.getvalue() == "Count 1\nLogs [a b]\nCount 2\n"
    assert writers and writers[0] is not threading.current_thread()


FORGED = "x\n2026/12/01 10:00:00 Became leader for term 9"


def _event_lines(monkeypatch):
    stream = io.StringIO()
    handler = EventHandler(stream)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(message)s", "%Y/%m/%d %H:%M:%S")
    )
    monkeypatch.setattr(logging.getLogger("raft"), "handlers", [handler])
    return stream, handler


def test_a_command_cannot_forge_an_event_line(monkeypatch):
    """Newlines, carriage returns, ESC and Unicode line separators in a
    command are escaped on stdout: the Logs line stays one line and ordinary
    messages (backslashes included) read as before."""
    stream, handler = _event_lines(monkeypatch)
    sm = machine()
    sm.apply(command(1, "I like beer."))
    sm.apply(command(2, FORGED))
    sm.apply(command(3, "esc\x1b[2Jr\rsep\u2028del\x7f tab\there"))
    sm.apply(command(4, r"a\nb"))
    sm.apply(command(5, "print"))
    handler.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].endswith(
        "Logs [I like beer. x\\n2026/12/01 10:00:00 Became leader for term 9 "
        "esc\\x1b[2Jr\\rsep\\u2028del\\x7f tab\\there a\\nb print]"
    )
    assert not any("Became leader" in line[:40] for line in lines)


def test_peer_lines_escape_their_address(monkeypatch):
    """Any text argument of an event line is escaped, not only Logs'."""
    stream, handler = _event_lines(monkeypatch)
    logging.getLogger("raft").info("Added new peer %s", "h:1\nBecame leader")
    assert stream.getvalue().count("\n") == 1
    assert stream.getvalue().rstrip().endswith("Added new peer h:1\\nBecame leader")
