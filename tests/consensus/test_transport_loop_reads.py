"""Over plain HTTP the loop thread reads the answer to a request it wrote
itself, from its inbox (consensus/inbox.py): no sender thread touches that
connection until the answer is in or given up."""

import socket
import threading

import pytest

from consensus import metrics
from consensus.core.messages import (
    AppendEntriesReply,
    RequestVote,
    RequestVoteReply,
    Unreachable,
)
from consensus.inbox import Inbox
from consensus.peer_http import PeerExchange
from consensus.transport import Transport

from .peer_server import PeerServer
from .test_inbox import get_within
from .test_transport_direct import LEADER, append_entries, wait_idle


@pytest.fixture
def inbox():
    inbox = Inbox()
    yield inbox
    inbox.close()


def make_transport(inbox, read_timeout=30.0, **options):
    return Transport(
        LEADER, inbox.put, timeout=(5.0, read_timeout), watcher=inbox, **options
    )


@pytest.fixture
def transport(inbox):
    transport = make_transport(inbox)
    yield transport
    transport.close()


@pytest.fixture
def receivers(monkeypatch):
    """The threads that read answers: the sender's receive, the loop's
    receive_nowait."""
    threads = {"receive": [], "receive_nowait": []}
    for name in threads:
        real = getattr(PeerExchange, name)

        def counted(exchange, max_body, real=real, name=name):
            threads[name].append(threading.current_thread())
            return real(exchange, max_body)

        monkeypatch.setattr(PeerExchange, name, counted)
    return threads


def connected_and_idle(transport, inbox, peer):
    # The first request opens the connection: the sender thread's.
    transport.send(append_entries(peer, 0))
    assert isinstance(get_within(inbox), AppendEntriesReply)
    wait_idle(transport, peer)


def hold_answers(peer):
    """Answers wait until the returned event is set."""
    answer, release = peer.reply_to, threading.Event()

    def held(endpoint, data):
        release.wait(timeout=10)
        return answer(endpoint, data)

    peer.reply_to = held
    return release


def test_the_loop_thread_reads_the_answer_it_awaits(peer, transport, inbox, receivers):
    connected_and_idle(transport, inbox, peer.address)
    timed = metrics.PEER_RPC_SECONDS.labels(peer.address)._sum.get()
    for n in range(1, 4):
        transport.send(append_entries(peer.address, n))
        reply = get_within(inbox)
        assert isinstance(reply, AppendEntriesReply) and reply.prev_log_index == n
        wait_idle(transport, peer.address)
    me = threading.current_thread()
    assert receivers["receive_nowait"] and set(receivers["receive_nowait"]) == {me}
    assert len(receivers["receive"]) == 1  # the first request's, on the sender
    assert metrics.PEER_RPC_SECONDS.labels(peer.address)._sum.get() > timed
    assert peer.connections == 1


def test_what_comes_meanwhile_waits_for_the_answer(peer, transport, inbox, monkeypatch):
    connected_and_idle(transport, inbox, peer.address)
    sender = transport._senders[peer.address]
    send, overlapping = PeerExchange.send, []

    def checked(exchange, path, body):
        # The sender thread writes only once the loop has its answer.
        overlapping.append(sender._awaited is not None)
        return send(exchange, path, body)

    monkeypatch.setattr(PeerExchange, "send", checked)
    release = hold_answers(peer)
    transport.send(append_entries(peer.address, 1))
    transport.send(append_entries(peer.address, 2))  # queued, not written
    assert sender.queued() == 1
    release.set()
    replies = [get_within(inbox), get_within(inbox)]
    assert [r.prev_log_index for r in replies] == [1, 2]
    assert overlapping == [False]
    assert peer.connections == 1


def test_an_answer_in_pieces_is_read_once_whole(inbox):
    # A peer that writes its answer's head, then, later, its body.
    server = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{server.getsockname()[1]}"
    body_may_go = threading.Event()

    def serve():
        conn, _ = server.accept()
        with conn:
            for prev in (0, 1):
                request = b""
                while b"\r\n\r\n" not in request or not request.endswith(b"}"):
                    request += conn.recv(65536)
                body = (
                    b'{"type":"AppendEntriesReply","term":1,"source":"%s","dest":'
                    b'"%s","success":true,"match_index":%d,"prev_log_index":%d}'
                    % (address.encode(), LEADER.encode(), prev, prev)
                )
                head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
                if prev == 0:
                    conn.sendall(head + body)
                    continue
                conn.sendall(head + body[:10])
                body_may_go.wait(10)
                conn.sendall(body[10:])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    transport = make_transport(inbox)
    try:
        connected_and_idle(transport, inbox, address)
        transport.send(append_entries(address, 1))
        threading.Timer(0.2, body_may_go.set).start()
        reply = get_within(inbox)
        assert isinstance(reply, AppendEntriesReply) and reply.prev_log_index == 1
    finally:
        body_may_go.set()
        transport.close()
        server.close()


def test_an_answer_not_in_by_the_read_timeout_is_given_up(inbox):
    peer = PeerServer()
    transport = make_transport(inbox, read_timeout=0.3)
    try:
        connected_and_idle(transport, inbox, peer.address)
        release = hold_answers(peer)
        transport.send(append_entries(peer.address, 1))
        assert isinstance(get_within(inbox), Unreachable)
        release.set()
        # A new connection for what comes next, on the sender thread.
        transport.send(append_entries(peer.address, 2))
        reply = get_within(inbox)
        assert isinstance(reply, AppendEntriesReply) and reply.prev_log_index == 2
        assert peer.connections == 2
    finally:
        transport.close()
        peer.close()


def test_a_vote_does_not_wait_for_an_awaited_answer(peer, transport, inbox):
    connected_and_idle(transport, inbox, peer.address)
    release = hold_answers(peer)
    transport.send(append_entries(peer.address, 1))
    vote = RequestVote(
        term=2, source=LEADER, dest=peer.address, last_log_index=1, last_log_term=1
    )
    transport.send(vote)
    assert isinstance(get_within(inbox), Unreachable)  # the AppendEntries
    release.set()
    assert isinstance(get_within(inbox), RequestVoteReply)


def test_a_peer_that_closes_the_connection_is_unreachable(inbox):
    server = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{server.getsockname()[1]}"
    peer = PeerServer()
    transport = make_transport(inbox)
    try:
        # The connection is made to a peer that answers once, then closes.
        def serve():
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                body = (
                    b'{"type":"AppendEntriesReply","term":1,"source":"%s","dest":'
                    b'"%s","success":true,"match_index":0,"prev_log_index":0}'
                    % (address.encode(), LEADER.encode())
                )
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
                )
                conn.recv(65536)  # the next request, then the close

        threading.Thread(target=serve, daemon=True).start()
        connected_and_idle(transport, inbox, address)
        transport.send(append_entries(address, 1))
        assert isinstance(get_within(inbox), Unreachable)
    finally:
        transport.close()
        server.close()
        peer.close()


def test_closing_gives_up_an_awaited_answer(peer, inbox):
    transport = make_transport(inbox)
    connected_and_idle(transport, inbox, peer.address)
    release = hold_answers(peer)
    transport.send(append_entries(peer.address, 1))
    sender = transport._senders[peer.address]
    transport.close()
    sender._thread.join(5)
    assert not sender._thread.is_alive()
    assert inbox._deadlines == {}
    release.set()
