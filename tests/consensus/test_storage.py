"""Storage persists a Ready's parts in one transaction and restores them."""

import pytest
from django.db import connection

from consensus.core.messages import Entry, EntryType
from consensus.core.ready import HardState
from consensus.models import LogEntry, PersistentState
from consensus.storage import Storage, applied_state_transaction

from .sql_capture import captured_sql

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


def test_entries_keep_their_client_pair_and_timestamp():
    stamped = [
        Entry(1, 2, EntryType.COMMAND, "a", "c", 4, 1_700_000_000_123),
        Entry(2, 2, EntryType.NOOP),
    ]
    storage = Storage()
    storage.prepare([])
    storage.save(None, stamped, None)
    assert Storage().prepare([]).entries == stamped


def test_save_and_restore_hard_state_and_entries():
    """last_applied is the state machine's to record, with its state: a
    save of the entries leaves it alone."""
    storage = Storage()
    storage.prepare([])
    storage.save(HardState(3, "b:2"), entries(1, 5, 3), last_applied=2)
    restored = storage.prepare([])
    assert restored.hard_state == HardState(3, "b:2")
    assert restored.entries == entries(1, 5, 3)
    assert restored.last_applied == 0


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


def synchronous() -> int:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous")
        return cursor.fetchone()[0]


def test_commit_only_save_writes_nothing():
    """A Ready that only commits has nothing for Storage to write: the
    state machine records last_applied when it applies the entries."""
    storage = Storage()
    storage.prepare([])
    storage.save(HardState(1, None), entries(1, 3, 1), last_applied=None)
    with captured_sql() as statements:
        storage.save(None, [], last_applied=3)
    assert statements == []
    assert storage.prepare([]).last_applied == 0


@pytest.mark.parametrize("orm", [False, True], ids=["raw", "orm"])
def test_applied_state_transaction_is_normal_then_full_again(orm):
    """Applied state is committed with synchronous=NORMAL (never OFF), and
    every other transaction stays FULL, also after a failed one."""
    Storage().prepare([])
    assert synchronous() == 2  # FULL
    with applied_state_transaction(orm):
        assert synchronous() == 1  # NORMAL
        PersistentState.objects.filter(pk=1).update(last_applied=4)
    assert synchronous() == 2
    with pytest.raises(RuntimeError), applied_state_transaction(orm):
        PersistentState.objects.filter(pk=1).update(last_applied=9)
        raise RuntimeError("failed mid-transaction")
    assert synchronous() == 2
    assert PersistentState.objects.get().last_applied == 4
