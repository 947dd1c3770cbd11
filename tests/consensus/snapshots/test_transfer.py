"""A snapshot over real loopback HTTP: SnapshotSender's thread posting
chunks to POST /raft/install_snapshot, served by this process's Django;
drops, resumes, restarts, a corrupted chunk, a newer term, the secret."""

import hashlib
import http.client
import json
import random
import socket
import threading

import pytest
from django.apps import apps
from rest_framework.test import APIClient

from consensus.snapshots import SnapshotStore
from consensus.snapshots.sender import Outcome, SnapshotSender
from consensus.snapshots.store import SnapshotMeta
from consensus.snapshots.wire import chunk_to_dict

from .loopback import FOLLOWER, LEADER, DjangoServer, DroppingProxy, FollowerRuntime
from .test_receiver import chunk

MIB = 1 << 20
SIZE = 3 * MIB + 123_456  # four chunks of 1 MiB, the last one short


@pytest.fixture
def leader_store(tmp_path):
    """The leader's store with one snapshot of SIZE random bytes."""
    store = SnapshotStore(tmp_path / "leader")
    data = random.Random(9).randbytes(SIZE)
    temporary = store.temporary_path("test")
    temporary.write_bytes(data)
    meta = SnapshotMeta(
        700, 3, '{"voters":[],"learners":[]}', SIZE, hashlib.sha256(data).hexdigest()
    )
    store.publish(temporary, meta)
    return store


@pytest.fixture
def follower(tmp_path):
    config = apps.get_app_config("consensus")
    runtime = FollowerRuntime(SnapshotStore(tmp_path / "follower"))
    config.runtime = runtime
    yield runtime
    config.runtime = None


@pytest.fixture
def server(follower):
    server = DjangoServer()
    # A chunk must be addressed to the server that receives it.
    follower.node_id = server.address
    yield server
    server.close()


def send(store, peer, term=4, **kwargs):
    """Run a SnapshotSender to the end; its result."""
    results = []
    done = threading.Event()

    def on_done(result):
        results.append(result)
        done.set()

    kwargs.setdefault("retry_s", 0.01)
    sender = SnapshotSender(
        store,
        store.latest(),
        peer=peer,
        leader_id=LEADER,
        term=term,
        on_done=on_done,
        **kwargs,
    ).start()
    assert done.wait(30), "the sender never reported"
    assert sender.join(5)
    assert len(results) == 1
    return results[0]


def installed(follower, leader_store) -> bool:
    snapshot = leader_store.latest()
    store = follower.snapshot_receiver.store
    return [m.name for m in store.list()] == [snapshot.name] and (
        store.data_path(snapshot).read_bytes()
        == leader_store.data_path(snapshot).read_bytes()
    )


def test_a_multi_mib_snapshot_goes_in_1_mib_chunks(leader_store, follower, server):
    result = send(leader_store, server.address)
    assert result.outcome is Outcome.INSTALLED and result.ok
    assert result.bytes_sent == SIZE and result.term == 4
    assert follower.snapshot_receiver.offsets == [0, MIB, 2 * MIB, 3 * MIB]
    assert installed(follower, leader_store)
    assert [m.name for m in follower.completed] == ["snap-700-3"]


def test_a_connection_cut_mid_chunk_resumes_at_that_chunk(
    leader_store, follower, server
):
    proxy = DroppingProxy(server.address)
    follower.node_id = proxy.address
    proxy.cut_request_at(int(2.5 * MIB))  # inside the second chunk's body
    result = send(leader_store, proxy.address)
    proxy.close()
    assert result.ok and proxy.cuts == 1
    # The cut chunk never reached the receiver; it came again whole.
    assert follower.snapshot_receiver.offsets == [0, MIB, 2 * MIB, 3 * MIB]
    assert installed(follower, leader_store)


def test_a_lost_reply_resends_the_chunk_and_the_follower_says_where_it_is(
    leader_store, follower, server
):
    proxy = DroppingProxy(server.address)
    follower.node_id = proxy.address
    proxy.drop_reply_after(int(1.5 * MIB))  # the reply to the second chunk
    result = send(leader_store, proxy.address)
    proxy.close()
    assert result.ok and proxy.cuts == 1
    assert follower.snapshot_receiver.offsets == [0, MIB, MIB, 2 * MIB, 3 * MIB]
    assert installed(follower, leader_store)


def test_a_new_sender_resumes_at_the_followers_offset(leader_store, follower, server):
    """A transfer given up half-way (the leader's deadline) is resumed by the
    next one, which skips what the follower already holds."""
    receiver = follower.snapshot_receiver
    data = leader_store.data_path(leader_store.latest()).read_bytes()
    for offset in (0, MIB):
        receiver.receive(chunk(leader_store.latest(), data, offset, size=MIB))
    receiver.offsets.clear()
    result = send(leader_store, server.address)
    assert result.ok
    assert receiver.offsets == [0, 2 * MIB, 3 * MIB]
    assert installed(follower, leader_store)


def test_a_new_leader_term_starts_the_transfer_over(leader_store, follower, server):
    receiver = follower.snapshot_receiver
    data = leader_store.data_path(leader_store.latest()).read_bytes()
    for offset in (0, MIB):
        receiver.receive(chunk(leader_store.latest(), data, offset, term=4, size=MIB))
    receiver.offsets.clear()
    follower.term = 5
    result = send(leader_store, server.address, term=5)
    assert result.ok and result.bytes_sent == SIZE
    assert receiver.offsets == [0, MIB, 2 * MIB, 3 * MIB]
    assert installed(follower, leader_store)


def test_a_corrupted_chunk_fails_the_checksum_and_nothing_is_installed(
    leader_store, follower, server, monkeypatch
):
    real_chunk = SnapshotSender._chunk

    def corrupted(self, offset, data):
        if offset == MIB:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        return real_chunk(self, offset, data)

    monkeypatch.setattr(SnapshotSender, "_chunk", corrupted)
    result = send(leader_store, server.address)
    assert result.outcome is Outcome.REJECTED
    assert "HTTP 400" in result.detail and "sha256" in result.detail
    store = follower.snapshot_receiver.store
    assert store.list() == [] and list(store.directory.iterdir()) == []
    assert follower.completed == []


def test_a_follower_with_a_newer_term_stops_the_transfer(
    leader_store, follower, server
):
    follower.term = 9
    result = send(leader_store, server.address, term=4)
    assert result.outcome is Outcome.STALE_TERM and result.term == 9
    assert follower.snapshot_receiver.offsets == []


def test_the_cluster_secret_is_required(leader_store, follower, server, settings):
    settings.RAFT_CLUSTER_SECRET = "s3cret"
    result = send(leader_store, server.address)
    assert result.outcome is Outcome.REJECTED and "HTTP 401" in result.detail
    assert follower.snapshot_receiver.offsets == []
    assert send(leader_store, server.address, secret="s3cret").ok


def test_an_unreachable_peer_times_out(leader_store):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    result = send(leader_store, f"127.0.0.1:{port}", deadline_s=0.3)
    assert result.outcome is Outcome.TIMED_OUT and result.bytes_sent == 0


def test_a_transfer_does_not_block_other_requests(leader_store, follower, server):
    """While the last chunk's completion is held up, /api/status answers."""
    release = threading.Event()
    reached = threading.Event()
    receiver = follower.snapshot_receiver

    def slow_completion(meta, c):
        reached.set()
        release.wait(10)

    receiver._on_complete = slow_completion
    results = []
    thread = threading.Thread(
        target=lambda: results.append(send(leader_store, server.address))
    )
    thread.start()
    try:
        assert reached.wait(10)
        host, port = server.address.split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        connection.request("GET", "/api/status")
        response = connection.getresponse()
        assert response.status == 200
        assert b'"term":4' in response.read().replace(b" ", b"")
    finally:
        release.set()
        thread.join(10)
    assert results[0].ok


# --- the view alone, through DRF's test client ------------------------------


def body(leader_store, **changes):
    snapshot = leader_store.latest()
    data = leader_store.data_path(snapshot).read_bytes()
    return chunk_to_dict(chunk(snapshot, data, 0, size=MIB)) | changes


@pytest.mark.parametrize(
    "changes",
    [
        {"data": "not base64!"},
        {"offset": -1},
        {"term": "4"},
        {"done": True},  # the first chunk does not end the file
        {"checksum": "abc"},
        {"size": 10},  # the chunk ends past the file
    ],
)
def test_a_malformed_chunk_is_refused_with_400(leader_store, follower, changes):
    response = APIClient().post(
        "/raft/install_snapshot", body(leader_store, **changes), format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert follower.snapshot_receiver.offsets == []


def test_the_view_answers_the_followers_term_and_offset(leader_store, follower):
    response = APIClient().post(
        "/raft/install_snapshot", body(leader_store), format="json"
    )
    assert response.status_code == 200
    assert response.json() == {
        "term": 4,
        "source": FOLLOWER,
        "dest": LEADER,
        "offset": MIB,
        "done": False,
    }


def test_without_a_runtime_the_view_answers_503(leader_store):
    response = APIClient().post(
        "/raft/install_snapshot", body(leader_store), format="json"
    )
    assert response.status_code == 503


def test_a_peer_claiming_the_whole_file_without_done_gets_the_last_chunk(
    leader_store,
):
    """No empty chunk, no loop: the last chunk goes again."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    offsets = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            offsets.append(body["offset"])
            done = len(offsets) > 1
            reply = json.dumps({"term": 4, "offset": SIZE, "done": done}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    stub = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=stub.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        result = send(leader_store, f"127.0.0.1:{stub.server_address[1]}")
    finally:
        stub.shutdown()
        thread.join()
        stub.server_close()
    assert result.ok
    assert offsets == [0, SIZE - MIB]
