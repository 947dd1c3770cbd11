"""Snapshots, the runtime's one object for issue 9: taking by policy on a
thread of its own, compaction, one sender per peer, install and recovery."""

import sqlite3
import threading

import pytest
from django.apps import apps

from consensus.core.messages import Entry, EntryType
from consensus.models import LogEntry, PersistentState
from consensus.snapshots import SnapshotPolicy, SnapshotStore
from consensus.snapshots.sender import Outcome
from consensus.snapshots.service import Snapshots
from consensus.state_machine import StateMachine
from consensus.storage import Storage

from .conftest import fill
from .loopback import DjangoServer, FollowerRuntime


class Events:
    def __init__(self):
        self.items = []
        self.changed = threading.Condition()

    def __call__(self, *args):
        with self.changed:
            self.items.append(args)
            self.changed.notify_all()

    def wait(self, count=1, timeout=10):
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.items) >= count, timeout)
        return self.items


@pytest.fixture
def events():
    return {"taken": Events(), "sent": Events(), "received": Events()}


@pytest.fixture
def snapshots(raft_db, events):
    return Snapshots(
        raft_db.parent,
        raft_db,
        node_id="127.0.0.1:9990",
        policy=SnapshotPolicy(entries=100, trailing=50),
        on_taken=events["taken"],
        on_sent=events["sent"],
        on_received=events["received"],
        sender_options={"retry_s": 0.01},
    )


def test_a_snapshot_is_taken_off_the_loop_thread_when_the_policy_says(
    snapshots, raft_db, events
):
    fill(raft_db, 99)
    assert not snapshots.maybe_take(99)
    fill_more(raft_db, 100, 150)
    assert snapshots.maybe_take(150)
    ((meta,),) = events["taken"].wait()
    assert meta.last_included_index == 150
    assert not snapshots.maybe_take(150)
    assert not snapshots.maybe_take(249)


def fill_more(path, first, last):
    db = sqlite3.connect(path)
    with db:
        for i in range(first, last + 1):
            db.execute("INSERT INTO consensus_appliedmessage VALUES (?, 'm')", (i,))
        db.execute(
            'INSERT INTO consensus_logentry ("index", term, type, command)'
            " VALUES (?, 3, 'command', 'm')",
            (last,),
        )
        db.execute("UPDATE consensus_persistentstate SET last_applied = ?", (last,))
    db.close()


def test_compaction_keeps_the_trailing_entries_and_the_latest_snapshot(
    snapshots, raft_db, events
):
    fill(raft_db, 100)
    snapshots.maybe_take(100)
    events["taken"].wait()
    fill_more(raft_db, 101, 200)
    snapshots.maybe_take(200)
    (first,), (second,) = events["taken"].wait(2)
    Storage().save(None, [Entry(i, 3, EntryType.NOOP) for i in range(1, 221)], None)
    through = snapshots.policy.compact_through(200, 1)
    assert through == 150
    snapshots.compact(second, through)
    assert LogEntry.objects.order_by("index").first().index == 151
    assert snapshots.store.list() == [second]
    # Nothing more to delete: the log already starts after the trailing part.
    assert snapshots.policy.compact_through(200, 151) == 150
    snapshots.compact(second, 150)
    assert LogEntry.objects.order_by("index").first().index == 151


def test_one_transfer_per_peer_and_term(snapshots, raft_db, events, tmp_path):
    fill(raft_db, 100)
    snapshots.maybe_take(100)
    events["taken"].wait()
    follower = FollowerRuntime(SnapshotStore(tmp_path / "follower"))
    apps.get_app_config("consensus").runtime = follower
    server = DjangoServer()
    # A chunk must be addressed to the server that receives it.
    follower.node_id = server.address
    try:
        block = threading.Event()
        follower.snapshot_receiver._on_complete = lambda m, c: block.wait(10)
        sender = snapshots.send(server.address, 4, 100, 3)
        assert snapshots.send(server.address, 4, 100, 3) is sender
        block.set()
        ((result,),) = events["sent"].wait()
        assert result.outcome is Outcome.INSTALLED
        snapshots.sent(result)
        again = snapshots.send(server.address, 4, 100, 3)
        assert again is not sender
        events["sent"].wait(2)
        snapshots.sent(events["sent"].items[1][0])
        snapshots.cancel_sends()
    finally:
        server.close()
        apps.get_app_config("consensus").runtime = None


def test_install_keeps_the_log_after_a_matching_entry(snapshots, raft_db, events):
    fill(raft_db, 100, term=3)
    snapshots.maybe_take(100)
    ((meta,),) = events["taken"].wait()
    Storage().save(None, [Entry(i, 3, EntryType.NOOP) for i in range(90, 111)], None)
    assert snapshots.install(meta) is True
    assert LogEntry.objects.order_by("index").first().index == 101
    sm = StateMachine()
    sm.load()
    assert sm.last_applied == 100 and sm.message_count == 100


def test_install_discards_a_log_that_conflicts(snapshots, raft_db, events):
    fill(raft_db, 100, term=3)
    snapshots.maybe_take(100)
    ((meta,),) = events["taken"].wait()
    Storage().save(None, [Entry(i, 2, EntryType.NOOP) for i in range(90, 111)], None)
    assert snapshots.install(meta) is False
    assert not LogEntry.objects.exists()


def test_recover_restores_a_snapshot_received_before_a_crash(
    snapshots, raft_db, events
):
    fill(raft_db, 100)
    snapshots.maybe_take(100)
    ((meta,),) = events["taken"].wait()
    assert PersistentState.objects.get(pk=1).last_applied == 0
    assert snapshots.recover(last_applied=0) == meta
    assert PersistentState.objects.get(pk=1).last_applied == 100
    assert snapshots.recover(last_applied=100) is None


class _Follower:
    """A stand-in runtime whose receiver is a Snapshots object's."""

    def __init__(self, snapshots, term=4):
        self.snapshot_receiver = snapshots.receiver
        self.term = term

    def status(self):
        return FollowerRuntime.status(self)

    def snapshot_chunk_received(self, leader, term):
        pass


def test_a_leaders_snapshot_reaches_a_followers_state_machine(
    snapshots, raft_db, events, tmp_path
):
    """Take on the leader, send over loopback HTTP, publish on the follower,
    install on its loop: the follower applies from where the leader was."""
    fill(raft_db, 3000, term=3, sessions=20)
    snapshots.maybe_take(3000)
    ((meta,),) = events["taken"].wait()
    received = Events()
    follower = Snapshots(
        tmp_path / "follower",
        tmp_path / "follower" / "db.sqlite3",
        node_id="127.0.0.1:9991",
        policy=SnapshotPolicy(),
        on_taken=Events(),
        on_sent=Events(),
        on_received=received,
    )
    apps.get_app_config("consensus").runtime = _Follower(follower)
    server = DjangoServer()
    apps.get_app_config("consensus").runtime.node_id = server.address
    try:
        snapshots.send(server.address, 4, 3000, 3)
        ((result,),) = events["sent"].wait()
    finally:
        server.close()
        apps.get_app_config("consensus").runtime = None
    assert result.ok
    ((installed, last_chunk),) = received.wait()
    assert installed.same_snapshot(meta) and last_chunk.source == "127.0.0.1:9990"
    Storage().save(None, [Entry(i, 1, EntryType.NOOP) for i in range(1, 11)], None)
    assert follower.install(installed) is False  # its log did not match
    sm = StateMachine()
    sm.load()
    assert (sm.last_applied, sm.message_count) == (3000, 3000)
    assert sm.lookup("client", 20).index == 20
    assert not LogEntry.objects.exists()
