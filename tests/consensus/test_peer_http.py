"""consensus/peer_http.py: a peer's responses read exactly, anything odd refused."""

import socket

import pytest

from consensus.peer_http import MAX_HEAD_BYTES, PeerExchange, PeerProtocolError


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    ours.settimeout(2)
    theirs.settimeout(2)
    yield PeerExchange(ours, "10.0.0.2:9991", {"X-Raft-Secret": "s"}), theirs
    ours.close()
    theirs.close()


def response(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 {status}\r\n{head}\r\n".encode() + body


def test_the_request_carries_host_headers_and_length(pair):
    exchange, peer = pair
    exchange.send("/raft/append_entries", b'{"a": 1}')
    sent = peer.recv(4096)
    head, _, body = sent.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /raft/append_entries HTTP/1.1"
    assert set(lines[1:]) == {
        b"Host: 10.0.0.2:9991",
        b"X-Raft-Secret: s",
        b"Content-Length: 8",
    }
    assert body == b'{"a": 1}'


def test_responses_in_pieces_and_back_to_back(pair):
    exchange, peer = pair
    first = response(b'{"x": 1}', "Content-Length: 8", "Server: gunicorn")
    for piece in (first[:5], first[5:40], first[40:]):
        peer.sendall(piece)
    assert exchange.receive(1000) == (200, b'{"x": 1}')
    assert not exchange.will_close
    peer.sendall(
        response(b"no", "content-length:  2", "Connection: close", status="503 x")
    )
    assert exchange.receive(1000) == (503, b"no")
    assert exchange.will_close


@pytest.mark.parametrize(
    "raw, why",
    [
        (response(b"{}"), "without Content-Length"),
        (response(b"2\r\n{}\r\n0\r\n\r\n", "Transfer-Encoding: chunked"), "known"),
        (response(b"{}", "Content-Length: -2"), "Content-Length"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "status line"),
        (response(b"x" * 11, "Content-Length: 11"), "over 10 bytes"),
        (response(b"{}xx", "Content-Length: 2"), "after the response"),
    ],
)
def test_what_is_not_the_expected_response_is_refused(pair, raw, why):
    exchange, peer = pair
    peer.sendall(raw)
    with pytest.raises(PeerProtocolError, match=why):
        exchange.receive(10)


def test_a_head_without_end_is_refused_at_the_bound(pair):
    exchange, peer = pair
    peer.sendall(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * (MAX_HEAD_BYTES // 6 + 10))
    with pytest.raises(PeerProtocolError, match="head over the bound"):
        exchange.receive(10)


def test_a_connection_closed_mid_body_is_refused(pair):
    exchange, peer = pair
    peer.sendall(response(b"{", "Content-Length: 2"))
    peer.shutdown(socket.SHUT_WR)
    with pytest.raises(PeerProtocolError, match="closed"):
        exchange.receive(10)
