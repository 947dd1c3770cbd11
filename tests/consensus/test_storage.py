"""Storage persists a Ready's parts in one transaction and restores them."""

import pytest

from consensus.core.messages import Entry, EntryType
from consensus.core.ready import HardState
from consensus.models import LogEntry, PersistentState
from consensus.storage import Storage

pytestmark = pytest.mark.django_db(transaction=True)


def entries(first, last, term):
    return [Entry(i, term, EntryType.COMMAND, f"m{i}") for i in range(first, last + 1)]


def test_new_data_directory_gets_bootstrap_log():
    boot = [Entry(1, 0, EntryType.CONFIG, '{"voters":["a:1"],"learners":[]}')]
    restored = Storage().prepare(boot)
    assert restored.entries == boot
    assert restored.hard_state == HardState(0, None)
    assert restored.last_applied == 0
    # A second start does not bootstrap again.
    assert Storage().prepare([Entry(1, 0, EntryType.NOOP)]).entries == boot


def test_save_and_restore_hard_state_entries_and_last_applied():
    storage = Storage()
    storage.prepare([])
    storage.save(HardState(3, "b:2"), entries(1, 5, 3), last_applied=2)
    restored = storage.prepare([])
    assert restored.hard_state == HardState(3, "b:2")
    assert restored.entries == entries(1, 5, 3)
    assert restored.last_applied == 2


def test_conflicting_suffix_is_replaced():
    """Raft §5.3: entries from the first new index on are deleted first."""
    storage = Storage()
    storage.prepare([])
    storage.save(None, entries(1, 5, 1), None)
    storage.save(None, entries(3, 4, 2), None)
    assert list(LogEntry.objects.values_list("index", "term")) == [
        (1, 1),
        (2, 1),
        (3, 2),
        (4, 2),
    ]
    assert PersistentState.objects.get().current_term == 0


def test_last_applied_alone_is_saved_and_full_sync_restored():
    """A commit-only Ready writes last_applied and leaves every later
    transaction fully synchronous."""
    from django.db import connection

    storage = Storage()
    storage.prepare([])
    storage.save(HardState(1, None), entries(1, 3, 1), last_applied=None)
    storage.save(None, [], last_applied=3)
    assert storage.prepare([]).last_applied == 3
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous")
        assert cursor.fetchone()[0] == 2  # FULL
