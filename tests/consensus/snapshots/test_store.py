"""SnapshotStore and take: a copy of the applied state at one
last_applied, made while the database is being written, published
durably (file fsynced, renamed, directory fsynced) before it is listed."""

import os
import sqlite3
import threading

import pytest

from consensus.snapshots import store as store_module
from consensus.snapshots import take as take_module
from consensus.snapshots.take import NothingToSnapshot

from .conftest import fill

CONFIG = '{"voters":["127.0.0.1:9990"],"learners":[]}'


def rows(path, sql):
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_take_copies_the_applied_state_with_its_index_term_and_configuration(
    raft_db, store
):
    fill(raft_db, 1000, term=3, sessions=10, configuration=CONFIG)
    meta = store.take(raft_db)
    assert (meta.last_included_index, meta.last_included_term) == (1000, 3)
    assert meta.configuration == CONFIG
    path = store.data_path(meta)
    assert path.name == "snap-1000-3.sqlite3"
    assert meta.size == path.stat().st_size
    assert store.verify(meta)
    assert rows(
        path, "SELECT count(*), max(position) FROM consensus_appliedmessage"
    ) == [(1000, 1000)]
    assert rows(path, "SELECT message_count FROM consensus_appliedstate") == [(1000,)]
    assert rows(path, "SELECT count(*) FROM consensus_clientanswer") == [(10,)]
    assert rows(path, "SELECT answers FROM consensus_clientsession") == [(10,)]
    # The log is not part of a snapshot.
    assert (
        rows(path, "SELECT name FROM sqlite_master WHERE name LIKE '%logentry%'") == []
    )
    assert store.list() == [meta] and store.latest() == meta


def test_nothing_applied_is_nothing_to_snapshot(raft_db, store):
    with pytest.raises(NothingToSnapshot):
        store.take(raft_db)
    fill(raft_db, 10)
    meta = store.take(raft_db)
    with pytest.raises(NothingToSnapshot):
        store.take(raft_db, min_index=meta.last_included_index + 1)
    assert store.list() == [meta]
    assert not [p for p in store.directory.iterdir() if p.name.startswith("tmp-")]


def test_the_term_of_an_installed_snapshot_when_its_entry_is_not_in_the_log(
    raft_db, store
):
    """After an InstallSnapshot the log no longer holds last_applied's entry;
    the installed snapshot's term stands in for it."""
    fill(raft_db, 50, term=4)
    installed = store.take(raft_db)
    db = sqlite3.connect(raft_db)
    with db:
        db.execute("DELETE FROM consensus_logentry")
    db.close()
    store.manifest_path(installed).unlink()  # as if it came from a leader
    store.publish(_copy_of(store, installed), installed)
    again = store.take(raft_db)
    assert (again.last_included_index, again.last_included_term) == (50, 4)


def _copy_of(store, meta):
    temporary = store.temporary_path("copy")
    temporary.write_bytes(store.data_path(meta).read_bytes())
    return temporary


def test_a_snapshot_is_durable_before_it_is_listed(raft_db, store, monkeypatch):
    """fsync the data, rename it, fsync the directory; then the manifest the
    same way. Nothing lists the snapshot before the last directory fsync."""
    fill(raft_db, 100)
    events = []
    real_rename = os.rename

    def rename(source, target):
        events.append(("rename", os.path.basename(target), len(store.list())))
        real_rename(source, target)

    monkeypatch.setattr(
        take_module, "fsync_file", lambda p: events.append(("fsync", "data"))
    )
    real_write = store_module.write_durably
    monkeypatch.setattr(
        store_module,
        "write_durably",
        lambda p, d: (events.append(("fsync", "manifest")), real_write(p, d)),
    )
    monkeypatch.setattr(store_module.os, "rename", rename)
    real_fsync_dir = store_module.fsync_directory
    monkeypatch.setattr(
        store_module,
        "fsync_directory",
        lambda p: (events.append(("fsync", "dir")), real_fsync_dir(p)),
    )
    store.take(raft_db)
    assert events == [
        ("fsync", "data"),
        ("rename", "snap-100-3.sqlite3", 0),
        ("fsync", "dir"),
        ("fsync", "manifest"),
        ("rename", "snap-100-3.json", 0),
        ("fsync", "dir"),
    ]


def test_take_reads_one_state_while_the_loop_thread_writes(raft_db, store):
    """Each snapshot holds exactly the state at its last_applied, although
    entries are applied (in other transactions) while it is read."""
    fill(raft_db, 50_000)
    stop = threading.Event()
    applied = [50_000]

    def apply_entries():
        db = sqlite3.connect(raft_db, isolation_level=None)
        db.execute("PRAGMA synchronous=OFF")
        i = applied[0]
        while not stop.is_set():
            i += 1
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO consensus_appliedmessage VALUES (?, 'more')", (i,))
            db.execute(
                'INSERT INTO consensus_logentry ("index", term, type, command)'
                " VALUES (?, 5, 'command', 'more')",
                (i,),
            )
            db.execute("UPDATE consensus_persistentstate SET last_applied = ?", (i,))
            db.execute("UPDATE consensus_appliedstate SET message_count = ?", (i,))
            db.execute("COMMIT")
            applied[0] = i
        db.close()

    writer = threading.Thread(target=apply_entries)
    writer.start()
    try:
        during = []
        for _ in range(5):
            before = applied[0]
            meta = store.take(raft_db)
            during.append(applied[0] - before)
            path = store.data_path(meta)
            index = meta.last_included_index
            assert rows(
                path, "SELECT count(*), max(position) FROM consensus_appliedmessage"
            ) == [(index, index)]
            assert rows(path, "SELECT message_count FROM consensus_appliedstate") == [
                (index,)
            ]
            assert meta.last_included_term == (3 if index == 50_000 else 5)
            store.remove_older_than(index)
    finally:
        stop.set()
        writer.join()
    assert sum(during) > 0, "no entry was applied while a snapshot was taken"


def test_list_latest_and_remove_older_than(raft_db, store):
    taken = []
    for count in (10, 20, 30):
        db = sqlite3.connect(raft_db)
        with db:
            db.execute(
                'INSERT INTO consensus_logentry ("index", term, type, command)'
                " VALUES (?, 2, 'noop', '')",
                (count,),
            )
            db.execute(
                "UPDATE consensus_persistentstate SET last_applied = ?", (count,)
            )
        db.close()
        taken.append(store.take(raft_db))
    assert [m.last_included_index for m in store.list()] == [10, 20, 30]
    assert store.latest() == taken[-1]
    assert store.find(20) == taken[1]
    assert store.remove_older_than(30) == taken[:2]
    assert store.list() == [taken[-1]]
    assert sorted(p.name for p in store.directory.iterdir()) == [
        "snap-30-2.json",
        "snap-30-2.sqlite3",
    ]


def test_open_chunks_streams_the_file_from_an_offset(raft_db, store):
    fill(raft_db, 20_000)
    meta = store.take(raft_db)
    whole = store.data_path(meta).read_bytes()
    chunks = list(store.open_chunks(meta, 0, 100_000))
    assert [o for o, _ in chunks] == list(range(0, meta.size, 100_000))
    assert b"".join(d for _, d in chunks) == whole
    tail = list(store.open_chunks(meta, 250_000, 100_000))
    assert tail[0][0] == 250_000 and b"".join(d for _, d in tail) == whole[250_000:]


def test_clean_temporary_removes_half_written_files(raft_db, store):
    fill(raft_db, 10)
    meta = store.take(raft_db)
    (store.directory / "tmp-take-1-2").write_bytes(b"half")
    (store.directory / "snap-99-9.sqlite3").write_bytes(b"no manifest")
    store.clean_temporary()
    assert sorted(p.name for p in store.directory.iterdir()) == [
        "snap-10-3.json",
        "snap-10-3.sqlite3",
    ]
    assert store.list() == [meta]


def test_a_damaged_file_is_not_listed_or_fails_verify(raft_db, store):
    fill(raft_db, 10)
    meta = store.take(raft_db)
    path = store.data_path(meta)
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    assert not store.verify(meta)
    path.write_bytes(bytes(data[:-1]))
    assert store.list() == []
