"""The toy's state machine: Logs and Count lines, and at-most-once sessions."""

import logging

import pytest

from consensus.core.messages import Entry, EntryType
from consensus.state_machine import StateMachine


def command(index, text, client_id=None, seq=None, term=1):
    return Entry(index, term, EntryType.COMMAND, text, client_id, seq)


def test_print_and_count_lines(caplog):
    """print logs every message so far including itself; count counts them."""
    machine = StateMachine()
    with caplog.at_level(logging.INFO, logger="raft"):
        machine.apply(Entry(1, 0, EntryType.CONFIG, "{}"))
        machine.apply(Entry(2, 1, EntryType.NOOP))
        machine.apply(command(3, "I like beer."))
        machine.apply(command(4, "count"))
        machine.apply(command(5, "print"))
    assert [r.getMessage() for r in caplog.records] == [
        "Count 2",
        "Logs [I like beer. count print]",
    ]


def test_duplicate_session_applies_once_and_returns_first_answer(caplog):
    machine = StateMachine()
    first = machine.apply(command(1, "a", "client", 1))
    again = machine.apply(command(2, "a", "client", 1, term=2))
    assert again == first
    assert machine.messages == ["a"]
    assert machine.lookup("client", 1) == first
    assert machine.lookup("client", 2) is None
    assert machine.lookup(None, None) is None


def test_replay_is_silent(caplog):
    machine = StateMachine()
    with caplog.at_level(logging.INFO, logger="raft"):
        machine.apply(command(1, "print"), replay=True)
    assert caplog.records == []
    assert machine.last_applied == 1


def test_entries_apply_in_order_only():
    machine = StateMachine()
    with pytest.raises(AssertionError):
        machine.apply(command(2, "skipped one"))
