"""restore: the snapshot's applied state replaces the database's, with
last_applied and the log it supersedes, in one fsynced transaction; and
compact_log, which only deletes what a durable snapshot covers."""

import sqlite3
from dataclasses import replace

import pytest
from django.db import connection

from consensus.core.messages import Entry, EntryType
from consensus.models import (
    AppliedMessage,
    ClientAnswer,
    ClientSession,
    ClusterToken,
    ClusterUser,
    LogEntry,
    MembershipChange,
    PersistentState,
)
from consensus.snapshots.restore import SnapshotError, compact_log, restore
from consensus.state_machine import StateMachine
from consensus.storage import Storage

from .conftest import fill

CONFIG = '{"voters":["127.0.0.1:9990","127.0.0.1:9991"],"learners":[]}'


@pytest.fixture
def snapshot(raft_db, store):
    """A snapshot of 1000 applied messages (term 3) and 10 sessions, taken
    from another database than the test's own."""
    fill(raft_db, 1000, term=3, sessions=10, configuration=CONFIG)
    return store.take(raft_db)


def local_state(entries: int, term: int = 1) -> StateMachine:
    """This node's own history: ``entries`` entries, applied."""
    Storage().save(
        None,
        [Entry(i, term, EntryType.COMMAND, f"mine {i}") for i in range(1, entries + 1)],
        None,
    )
    sm = StateMachine()
    sm.load()
    sm.apply_batch(
        [
            Entry(i, term, EntryType.COMMAND, f"mine {i}", "me", i)
            for i in range(1, entries + 1)
        ]
    )
    return sm


def test_restore_replaces_the_applied_state_and_discards_the_log(store, snapshot):
    local_state(20)
    restore(store, snapshot, keep_log_after=False)
    sm = StateMachine()
    sm.load()
    assert sm.last_applied == 1000 and sm.message_count == 1000
    assert list(sm.messages())[:2] == ["message number 1", "message number 2"]
    assert AppliedMessage.objects.count() == 1000
    assert ClientAnswer.objects.count() == 10
    assert list(ClientSession.objects.values_list("client_id", flat=True)) == ["client"]
    assert sm.lookup("client", 7).index == 7
    assert sm.lookup("me", 3) is None
    assert PersistentState.objects.get(pk=1).last_applied == 1000
    assert not LogEntry.objects.exists()
    # The state machine goes on from the snapshot.
    sm.apply_batch([Entry(1001, 3, EntryType.COMMAND, "after")])
    assert list(sm.messages())[-1] == "after" and sm.message_count == 1001


def test_restore_keeps_the_entries_after_a_matching_last_included_entry(
    store, snapshot
):
    """Raft Figure 13: if the log has the last included entry, the entries
    following it are retained."""
    Storage().save(None, [Entry(i, 3, EntryType.NOOP) for i in range(990, 1011)], None)
    restore(store, snapshot, keep_log_after=True)
    assert list(LogEntry.objects.values_list("index", flat=True)) == list(
        range(1001, 1011)
    )


def test_a_damaged_snapshot_changes_nothing(store, snapshot):
    local_state(5)
    path = store.data_path(snapshot)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError):
        restore(store, snapshot, keep_log_after=False)
    assert PersistentState.objects.get(pk=1).last_applied == 5
    assert LogEntry.objects.count() == 5


def test_a_restore_that_fails_half_way_changes_nothing(store, snapshot):
    """One transaction: a failure after the first table is replaced leaves
    every table as it was."""
    local_state(5)
    db = sqlite3.connect(store.data_path(snapshot))
    db.execute("DROP TABLE consensus_clientanswer")
    db.commit()
    db.close()
    with pytest.raises(Exception, match="consensus_clientanswer"):
        restore(store, snapshot, keep_log_after=False, verify=False)
    assert AppliedMessage.objects.count() == 5
    assert PersistentState.objects.get(pk=1).last_applied == 5
    assert LogEntry.objects.count() == 5
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA database_list")
        assert "snap" not in [row[1] for row in cursor.fetchall()]


def test_a_file_that_is_not_the_snapshot_it_claims_is_refused(store, snapshot):
    local_state(5)
    other = replace(snapshot, last_included_term=9)
    store.data_path(other).write_bytes(store.data_path(snapshot).read_bytes())
    with pytest.raises(SnapshotError):
        restore(
            store,
            other,
            keep_log_after=False,
            verify=False,
        )
    assert PersistentState.objects.get(pk=1).last_applied == 5


def test_restore_is_fully_synchronous(store, snapshot):
    restore(store, snapshot, keep_log_after=False)
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous")
        assert cursor.fetchone() == (2,)  # FULL


def test_compaction_deletes_only_what_a_durable_snapshot_covers(store, snapshot):
    Storage().save(None, [Entry(i, 3, EntryType.NOOP) for i in range(1, 1101)], None)
    with pytest.raises(SnapshotError):
        compact_log(store, 1001)
    assert compact_log(store, 500) == 500
    assert LogEntry.objects.order_by("index").first().index == 501
    assert LogEntry.objects.count() == 600


def test_compaction_without_a_snapshot_is_refused(store, transactional_db):
    Storage().prepare([])
    with pytest.raises(SnapshotError):
        compact_log(store, 1)


def test_a_missing_file_is_refused(store, snapshot):
    local_state(5)
    store.data_path(snapshot).unlink()
    with pytest.raises(Exception, match="unable to open"):
        restore(store, snapshot, keep_log_after=False, verify=False)
    assert not (store.directory / store.data_path(snapshot).name).exists()
    assert PersistentState.objects.get(pk=1).last_applied == 5


def add_access_rows(path):
    """A user, its token and a membership change, straight into ``path``."""
    db = sqlite3.connect(path)
    with db:
        db.execute(
            "INSERT INTO consensus_clusteruser VALUES ('root', 'admin', 5, 1, '')"
        )
        db.execute(
            "INSERT INTO consensus_clustertoken"
            " VALUES (?, '0123456789ab', 'root', 5, 1, '')",
            ("d" * 64,),
        )
        db.execute(
            "INSERT INTO consensus_membershipchange VALUES (7, 2, 'root', ?)",
            (CONFIG,),
        )
    db.close()


def test_users_tokens_and_membership_changes_travel_in_a_snapshot(raft_db, store):
    fill(raft_db, 10, configuration=CONFIG)
    add_access_rows(raft_db)
    meta = store.take(raft_db)
    restore(store, meta, keep_log_after=False)
    assert list(ClusterUser.objects.values_list("username", "permissions")) == [
        ("root", "admin")
    ]
    assert ClusterToken.objects.get().digest == "d" * 64
    assert MembershipChange.objects.get().requested_by == "root"


def test_a_snapshot_of_format_3_restores_with_no_users(raft_db, store):
    """Taken before users existed (an older version's file): the tables it
    lacks are emptied, as they were then."""
    fill(raft_db, 10, configuration=CONFIG)
    meta = store.take(raft_db)
    db = sqlite3.connect(store.data_path(meta))
    with db:
        for table in ("clusteruser", "clustertoken", "membershipchange"):
            db.execute(f"DROP TABLE consensus_{table}")
        db.execute("UPDATE raft_snapshot SET format = 3")
    db.close()
    add_access_rows(raft_db)
    ClusterUser.objects.create(
        username="stale", permissions="read", created_index=1, created_ms=0
    )
    restore(store, meta, keep_log_after=False, verify=False)
    assert not ClusterUser.objects.exists()
    sm = StateMachine()
    sm.load()
    assert sm.last_applied == 10


def test_a_snapshot_of_an_unknown_format_is_refused(raft_db, store):
    fill(raft_db, 10, configuration=CONFIG)
    meta = store.take(raft_db)
    db = sqlite3.connect(store.data_path(meta))
    with db:
        db.execute("UPDATE raft_snapshot SET format = 99")
    db.close()
    with pytest.raises(SnapshotError):
        restore(store, meta, keep_log_after=False, verify=False)
