"""nodes/leader_link.py: the follower's kept-alive connection to the leader,
against a raw socket server whose every connection and byte the test sees."""

from __future__ import annotations

import importlib.util
import re
import socket
import threading
from pathlib import Path

import pytest

from nodes.client import Answer, ConnectionLost, ServerUnreachable
from nodes.leader_link import IDLE_REUSE_S, LeaderLink
from tests.http_message import read_message

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class RawServer:
    """Accepts connections on a free loopback port; answers each request
    (head and Content-Length body) with the next of ``answers``, then, if
    ``close_after`` is set, closes the connection."""

    def __init__(self, *answers: bytes, close_after: bool = False):
        self.answers = list(answers)
        self.close_after = close_after
        self.connections = 0
        self.closed = threading.Semaphore(0)  # released as each one closes
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(10)
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(10)
                while self.answers:
                    request = read_message(conn)
                    if b"\r\n\r\n" not in request:
                        break
                    self.requests.append(request)
                    conn.sendall(self.answers.pop(0))
                    if self.close_after:
                        break
            self.closed.release()

    def close(self) -> None:
        self._listener.close()
        self._thread.join(10)


@pytest.fixture
def server():
    made = []

    def start(*answers, close_after=False):
        made.append(RawServer(*answers, close_after=close_after))
        return made[-1]

    yield start
    for each in made:
        each.close()


def post(link: LeaderLink, address: str, **kwargs):
    return link.request(
        address, "POST", "/api/commands", b'{"command":"x"}', {}, 5.0, 1 << 20
    )


def test_the_requests_of_a_thread_share_one_connection(server):
    leader = server(OK, OK, OK)
    link = LeaderLink(connect_timeout_s=5)
    for _ in range(3):
        assert post(link, leader.address) == (Answer(200, None, None), b"{}")
    assert leader.connections == 1


def test_a_connection_the_leader_closed_while_idle_is_replaced(server):
    leader = server(OK, OK, close_after=True)
    link = LeaderLink(connect_timeout_s=5)
    assert post(link, leader.address)[0].status == 200
    # The leader has closed the kept connection: the next request opens
    # another rather than failing on the dead one.
    assert leader.closed.acquire(timeout=10)
    assert post(link, leader.address)[0].status == 200
    assert leader.connections == 2


def test_method_path_headers_and_body_go_as_given(server):
    leader = server(OK)
    link = LeaderLink(connect_timeout_s=5)
    link.request(
        leader.address, "PUT", "/api/kv/a%2Fb", b'{"value":"v"}',
        {"X-Raft-Forwarded": "1"}, 5.0, 1 << 20,
    )  # fmt: skip
    [request] = leader.requests
    head, _, body = request.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"PUT /api/kv/a%2Fb HTTP/1.1"
    assert f"Host: {leader.address}".encode() in lines
    assert b"X-Raft-Forwarded: 1" in lines
    assert b"Content-Length: 13" in lines
    assert body == b'{"value":"v"}'


def test_status_and_retry_after_are_read(server):
    busy = (
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )
    leader = server(busy)
    assert post(LeaderLink(5), leader.address)[0] == Answer(503, None, "2")


def test_a_refused_connection_is_unreachable():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))  # bound, never listening
        address = f"127.0.0.1:{held.getsockname()[1]}"
        with pytest.raises(ServerUnreachable) as raised:
            post(LeaderLink(5), address)
    assert raised.value.reason == "connection refused"


@pytest.mark.parametrize(
    "answer, reason",
    [
        (b"HTTP/1.1 200 OK\r\n\r\n{}", "without Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9999999\r\n\r\n", "over"),
        (b"", "lost"),
    ],
)
def test_no_usable_answer_is_a_lost_connection(server, answer, reason):
    leader = server(answer, close_after=True)
    with pytest.raises(ConnectionLost) as raised:
        post(LeaderLink(5), leader.address)
    assert reason in raised.value.reason
    assert not raised.value.timed_out


def test_a_connection_idle_near_the_leaders_keep_alive_is_not_reused(server):
    leader = server(OK, OK, OK)
    now = [1000.0]
    link = LeaderLink(connect_timeout_s=5, clock=lambda: now[0])
    assert post(link, leader.address)[0].status == 200
    now[0] += IDLE_REUSE_S - 1
    assert post(link, leader.address)[0].status == 200
    assert leader.connections == 1
    # Idle for as long as the leader might be closing it: a new one.
    now[0] += IDLE_REUSE_S
    assert post(link, leader.address)[0].status == 200
    assert leader.connections == 2


def test_the_idle_bound_is_below_the_leaders_keep_alive():
    # raftsite/gunicorn_conf.py reads the node's environment on import.
    spec = importlib.util.find_spec("raftsite.gunicorn_conf")
    text = Path(spec.origin).read_text()
    keepalive = float(re.search(r"^keepalive = (\S+)$", text, re.M).group(1))
    assert IDLE_REUSE_S < keepalive
