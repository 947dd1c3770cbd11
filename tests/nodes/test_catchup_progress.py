"""addserver's progress lines while a new server catches up: the leader's
snapshot transfer to it, then its log (nodes/catchup_progress.py)."""

import threading

import pytest

from nodes import catchup_progress
from nodes.catchup_progress import CatchupWatcher, describe_progress

from .stub import Reply, StubServer

NEW = "127.0.0.1:9993"


def servers_body(leader, **member):
    return {
        "id": leader,
        "role": "leader",
        "term": 2,
        "leader": leader,
        "servers": [
            {"id": leader, "voter": True, "role": "leader"},
            {"id": NEW, "voter": False, "role": "learner", **member},
        ],
    }


def status_body(leader, last_log_index):
    return {
        "id": leader,
        "role": "leader",
        "term": 2,
        "leader": leader,
        "commit_index": last_log_index,
        "last_applied": last_log_index,
        "last_log_index": last_log_index,
        "servers": [{"id": leader, "voter": True}],
    }


def test_a_snapshot_transfer_is_shown_in_bytes_then_the_log_in_entries():
    assert describe_progress(
        NEW, {"snapshot_bytes_sent": 12_500_000, "snapshot_size": 50_000_000}, 900
    ) == (f"catching up {NEW}: snapshot 12.5 of 50.0 MB (25%)")
    assert describe_progress(
        NEW, {"match_index": 700, "snapshot_bytes_sent": None}, 900
    ) == (f"catching up {NEW}: log at index 700 of 900")


def test_the_watcher_shows_each_change_once(monkeypatch):
    monkeypatch.setattr(catchup_progress, "POLL_S", 0.02)
    stub = StubServer()
    leader = stub.address
    polls = [
        dict(match_index=0, snapshot_bytes_sent=1_000_000, snapshot_size=4_000_000),
        dict(match_index=0, snapshot_bytes_sent=1_000_000, snapshot_size=4_000_000),
        dict(match_index=5000, snapshot_bytes_sent=None, snapshot_size=None),
    ]
    # Each poll asks the server for the leader, then the leader for its
    # view of the members and its last index (here one stub is both).
    stub.script = []
    for member in polls:
        body = servers_body(leader, **member)
        stub.script += [Reply(200, body), Reply(200, body)]
        stub.script.append(Reply(200, status_body(leader, 6000)))
    lines = []
    done = threading.Event()

    def show(line):
        lines.append(line)
        if len(lines) == 2:
            done.set()

    try:
        with CatchupWatcher(leader, NEW, show):
            assert done.wait(5), lines
    finally:
        stub.close()
    assert lines == [
        f"catching up {NEW}: snapshot 1.0 of 4.0 MB (25%)",
        f"catching up {NEW}: log at index 5000 of 6000",
    ]


@pytest.mark.parametrize(
    "member", [{"voter": True, "match_index": 7}, {"match_index": None}]
)
def test_nothing_is_shown_for_a_server_not_being_caught_up(member):
    body = servers_body("127.0.0.1:9990")
    body["servers"][1].update(member)
    stub = StubServer(Reply(200, body))
    try:
        watcher = CatchupWatcher(stub.address, NEW, lambda line: None)
        assert watcher._poll() is None
    finally:
        stub.close()
