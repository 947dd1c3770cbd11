"""A follower's read index from the leader (consensus/peer_reads.py):
concurrent reads share requests, and each read gets the answer of a
request sent after it began, as ReadIndex needs (dissertation §6.4)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from consensus.peer_reads import PeerReads, ReadIndexUnavailable


class SlowLeader:
    """Answers POST /raft/read_index after ``delay_s`` with the number of
    the request (1, 2, ...), or with ``status``."""

    def __init__(self, delay_s=0.2, status=200):
        self.started = 0
        self.bodies = []
        self.lock = threading.Lock()
        leader = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with leader.lock:
                    leader.started += 1
                    number = leader.started
                    leader.bodies.append((json.loads(body), dict(self.headers)))
                time.sleep(delay_s)
                answer = json.dumps({"index": number}).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def leader():
    server = SlowLeader()
    yield server
    server.close()


def test_concurrent_reads_share_requests_sent_after_they_began(leader):
    reads = PeerReads("127.0.0.1:1", "s3cret-s3cret-s3cret")
    results = []

    def read():
        with leader.lock:
            before = leader.started
        results.append((before, reads.read_index(leader.address, 5.0)))

    threads = [threading.Thread(target=read) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(results) == 30
    # Each answer comes from a request that started after the read began.
    assert all(index > before for before, index in results), results
    # 30 reads, one request at a time: a handful of requests, not 30.
    assert leader.started <= 4, leader.started
    body, headers = leader.bodies[0]
    assert body == {"source": "127.0.0.1:1", "dest": leader.address}
    assert headers["X-Raft-Secret"] == "s3cret-s3cret-s3cret"


def test_a_leader_that_refuses_is_an_error_for_every_read_waiting():
    leader = SlowLeader(delay_s=0.0, status=503)
    try:
        reads = PeerReads("127.0.0.1:1", "")
        with pytest.raises(ReadIndexUnavailable, match="answered HTTP 503"):
            reads.read_index(leader.address, 5.0)
    finally:
        leader.close()


def test_an_unreachable_leader_is_an_error():
    reads = PeerReads("127.0.0.1:1", "")
    with pytest.raises(ReadIndexUnavailable):
        reads.read_index("127.0.0.1:1", 2.0)
