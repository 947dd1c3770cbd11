"""A project's state part that raises refuses its entry, undoing what it
wrote, instead of stopping the node at that entry for good; a failing disk
still stops it."""

import logging
import sqlite3

import pytest

from consensus.core.messages import Entry, EntryType
from consensus.models import KeyValue
from consensus.parts import StatePart, app_command
from consensus.refused import CONFLICT, Refused
from consensus.state_machine import Applied, StateMachine
from consensus.storage import Storage

pytestmark = pytest.mark.django_db(transaction=True)


class Fragile(StatePart):
    """Writes a row, then fails on what ``data`` asks."""

    name = "fragile"

    def apply(self, cursor, entry, data):
        cursor.execute(
            'INSERT INTO "consensus_keyvalue" ("key", "value", "revision")'
            " VALUES (%s, %s, %s)",
            [f"fragile/{entry.index}", "x", entry.index],
        )
        self.lines.append(("fragile %d", entry.index))
        if data == "raise":
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        if data == "disk":
            raise sqlite3.OperationalError("disk I/O error")
        return None

    def take_lines(self):
        lines, self.lines = self.lines, []
        return lines


def machine():
    Storage().prepare([])
    sm = StateMachine(None)
    sm.load()
    part = Fragile()
    part.lines = []
    sm._app_parts = {"fragile": part}
    return sm


def app(index, data):
    return Entry(index, 1, EntryType.APP, app_command("fragile", data))


def test_a_part_that_raises_refuses_its_entry_and_the_next_ones_apply(caplog):
    sm = machine()
    with caplog.at_level(logging.INFO):
        answers = sm.apply_batch([app(1, "ok"), app(2, "raise"), app(3, "ok")])
    assert answers[0] == Applied(1, 1)
    assert isinstance(answers[1], Refused) and answers[1].reason == CONFLICT
    assert "OverflowError" in answers[1].detail
    assert answers[2] == Applied(3, 1)
    assert sm.last_applied == 3
    # The failing entry's write is undone, the others' kept.
    assert sorted(KeyValue.objects.values_list("key", flat=True)) == [
        "fragile/1",
        "fragile/3",
    ]
    printed = [r.getMessage() for r in caplog.records if r.name == "raft"]
    assert printed == ["fragile 1", "fragile 3"]
    assert any("failed to apply entry 2" in r.getMessage() for r in caplog.records)


def test_a_failing_disk_still_stops_the_batch():
    sm = machine()
    with pytest.raises(sqlite3.OperationalError):
        sm.apply_batch([app(1, "ok"), app(2, "disk")])
    assert sm.last_applied == 0
    assert not KeyValue.objects.exists()
