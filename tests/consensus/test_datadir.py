"""One process per data directory: the LOCK file's flock, alone and held by
a NodeRuntime from open() until it stops."""

import os
import time

import pytest

from consensus import datadir
from consensus.datadir import DataDirectoryInUse, DataDirLock
from consensus.runtime import NodeRuntime, RuntimeSettings

from .test_runtime_batch import A, FakeStorage, FakeTransport, RecordingStateMachine


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path):
    first = DataDirLock(tmp_path)
    first.acquire(owner_pid=4242)
    with pytest.raises(DataDirectoryInUse) as refused:
        DataDirLock(tmp_path).acquire()
    assert str(refused.value) == (
        f"data directory {tmp_path} is in use by another process (pid 4242)"
    )
    first.release()
    second = DataDirLock(tmp_path)
    second.acquire()
    assert (tmp_path / "LOCK").read_text() == f"{os.getpid()}\n"
    second.release()


def test_a_waiter_gets_the_lock_once_the_holder_lets_go(tmp_path, monkeypatch):
    """acquire(timeout) polls: the holder letting go while it waits (here at
    its first poll) hands the lock over."""
    holder = DataDirLock(tmp_path)
    holder.acquire()
    polls = []

    def release_while_waiting(seconds):
        polls.append(seconds)
        holder.release()

    monkeypatch.setattr(datadir.time, "sleep", release_while_waiting)
    waiter = DataDirLock(tmp_path)
    waiter.acquire(timeout=60)
    assert waiter.held and len(polls) == 1
    waiter.release()


def test_the_wait_is_bounded(tmp_path):
    holder = DataDirLock(tmp_path)
    holder.acquire()
    started = time.monotonic()
    with pytest.raises(DataDirectoryInUse):
        DataDirLock(tmp_path).acquire(timeout=0.2, poll=0.01)
    assert 0.2 <= time.monotonic() - started < 5
    holder.release()


def runtime(data_dir, events, lock_timeout_s=0.0) -> NodeRuntime:
    return NodeRuntime(
        A,
        [A],
        RuntimeSettings(rng_seed=1, lock_timeout_s=lock_timeout_s),
        storage=FakeStorage(events),
        transport=FakeTransport(events),
        state_machine=RecordingStateMachine(events),
        data_dir=data_dir,
    )


def test_a_runtime_holds_the_lock_from_open_until_it_stops(tmp_path):
    """A second runtime on the same directory, even in this process, is
    refused before it opens storage; once the first stops it may run."""
    events: list = []
    first = runtime(tmp_path, events)
    first.open()
    second_events: list = []
    second = runtime(tmp_path, second_events)
    with pytest.raises(DataDirectoryInUse):
        second.open()
    assert second_events == []  # storage was never opened
    assert second._node is None
    first.stop()
    second.open()
    assert second._node is not None
    second.stop()
    assert not DataDirLock(tmp_path).held


def test_a_started_runtime_lets_go_only_after_its_loop_has_closed_storage(
    tmp_path,
):
    events: list = []
    node = runtime(tmp_path, events)
    storage = node._storage
    node.start()
    with pytest.raises(DataDirectoryInUse):
        DataDirLock(tmp_path).acquire()
    node.stop()
    assert storage.closed
    lock = DataDirLock(tmp_path)
    lock.acquire()
    lock.release()


def test_runnode_refuses_a_busy_data_directory_in_one_line(tmp_path):
    """runnode checks the lock before it starts the server: one line on
    stderr, exit status 1, nothing started."""
    from io import StringIO

    from django.core.management import call_command

    holder = DataDirLock(tmp_path)
    holder.acquire(owner_pid=777)
    stdout, stderr = StringIO(), StringIO()
    try:
        with pytest.raises(SystemExit) as exited:
            call_command(
                "runnode",
                "--port",
                "9990",
                "--data-dir",
                str(tmp_path),
                stdout=stdout,
                stderr=stderr,
            )
    finally:
        holder.release()
    assert exited.value.code == 1
    assert stdout.getvalue() == ""
    assert stderr.getvalue() == (
        f"error: data directory {tmp_path} is in use by another process (pid 777)\n"
    )


@pytest.mark.parametrize("value", ["128", "0", "many"])
def test_runnode_refuses_a_client_bound_that_leaves_peers_no_thread(
    tmp_path, monkeypatch, value
):
    """RAFT_MAX_CLIENT_REQUESTS must leave threads for peer RPC."""
    from django.core.management import CommandError, call_command

    monkeypatch.setenv("RAFT_MAX_CLIENT_REQUESTS", value)
    with pytest.raises(CommandError, match="RAFT_MAX_CLIENT_REQUESTS"):
        call_command("runnode", "--port", "9990", "--data-dir", str(tmp_path))
