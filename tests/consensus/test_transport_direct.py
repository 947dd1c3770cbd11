"""The loop thread writes a request to an idle peer itself; the sender
thread reads the answer. Anything else goes through the sender thread."""

import queue
import socket
import threading

import pytest

from consensus import metrics
from consensus.core.messages import (
    AppendEntries,
    AppendEntriesReply,
    Entry,
    TimeoutNow,
    Unreachable,
)
from consensus.peer_http import PeerExchange
from consensus.transport import DIRECT_MAX_BYTES, Transport
from tests.cluster.harness import wait_until

from .peer_server import PeerServer

LEADER = "127.0.0.1:9990"


@pytest.fixture
def transport(delivered):
    transport = Transport(LEADER, delivered.put, timeout=(5.0, 30.0))
    yield transport
    transport.close()


class Wire:
    """Watches every PeerExchange: which threads wrote requests without
    waiting, and how many requests each connection had on the wire."""

    def __init__(self, monkeypatch):
        self._lock = threading.Lock()
        self.direct_threads: list[threading.Thread] = []
        self.direct_failures = 0
        self.in_flight: dict[int, int] = {}
        self.most_in_flight = 0
        send, send_nowait, receive = (
            PeerExchange.send,
            PeerExchange.send_nowait,
            PeerExchange.receive,
        )
        wire = self

        def counted_send(exchange, path, body):
            wire._started(exchange)
            return send(exchange, path, body)

        def counted_send_nowait(exchange, data):
            with wire._lock:
                wire.direct_threads.append(threading.current_thread())
            wire._started(exchange)
            try:
                return wire.write_nowait(send_nowait, exchange, data)
            except OSError:
                wire.direct_failures += 1
                raise

        def counted_receive(exchange, max_body):
            answer = receive(exchange, max_body)
            with wire._lock:
                wire.in_flight[id(exchange)] -= 1
            return answer

        monkeypatch.setattr(PeerExchange, "send", counted_send)
        monkeypatch.setattr(PeerExchange, "send_nowait", counted_send_nowait)
        monkeypatch.setattr(PeerExchange, "receive", counted_receive)

    def write_nowait(self, send_nowait, exchange, data):
        """The real write; a test may replace it."""
        return send_nowait(exchange, data)

    def _started(self, exchange):
        with self._lock:
            count = self.in_flight.get(id(exchange), 0) + 1
            self.in_flight[id(exchange)] = count
            self.most_in_flight = max(self.most_in_flight, count)


@pytest.fixture
def wire(monkeypatch):
    return Wire(monkeypatch)


def append_entries(peer: str, n: int, command: str = "") -> AppendEntries:
    entries = (Entry(index=n + 1, term=1, command=command),) if command else ()
    return AppendEntries(
        term=1,
        source=LEADER,
        dest=peer,
        prev_log_index=n,
        prev_log_term=1,
        entries=entries,
    )


def next_delivered(delivered, timeout=10.0):
    try:
        return delivered.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"nothing delivered within {timeout} s") from None


def wait_idle(transport, peer: str):
    """Wait until the peer's sender thread waits for work, as it does
    between the commands of one client."""
    sender = transport._senders[peer]

    def idle():
        with sender._ready:
            return sender._idle

    wait_until(idle, timeout=10, message="sender idle", interval=0.001)


def connected_and_idle(transport, delivered, peer: str):
    """Open the connection with a first AppendEntries (the sender thread
    connects and writes it), then wait until the sender is idle."""
    transport.send(append_entries(peer, 0))
    assert isinstance(next_delivered(delivered), AppendEntriesReply)
    wait_idle(transport, peer)


def test_the_loop_thread_writes_to_an_idle_peer(peer, transport, delivered, wire):
    """To an idle peer the caller of send writes the request itself, and
    the reply still arrives, timed in PEER_RPC_SECONDS."""
    connected_and_idle(transport, delivered, peer.address)
    assert wire.direct_threads == []
    timed = metrics.PEER_RPC_SECONDS.labels(peer.address)._sum.get()

    transport.send(append_entries(peer.address, 1))

    assert wire.direct_threads == [threading.current_thread()]
    reply = next_delivered(delivered)
    assert isinstance(reply, AppendEntriesReply) and reply.prev_log_index == 1
    assert metrics.PEER_RPC_SECONDS.labels(peer.address)._sum.get() > timed
    assert [data["prev_log_index"] for _, data in peer.requests()] == [0, 1]
    assert peer.connections == 1


def test_a_busy_sender_keeps_the_newest_append_entries_waiting(
    peer, transport, delivered, wire
):
    """While a request is on the wire, later ones wait in the queue (the
    newest of each kind) instead of being written after it."""
    connected_and_idle(transport, delivered, peer.address)
    answer, release = peer.reply_to, threading.Event()

    def held(endpoint, data):
        release.wait(timeout=10)
        return answer(endpoint, data)

    peer.reply_to = held
    for n in range(1, 6):
        transport.send(append_entries(peer.address, n))
    assert len(wire.direct_threads) == 1
    assert transport._senders[peer.address].queued() == 1
    release.set()

    replies = [next_delivered(delivered), next_delivered(delivered)]
    assert [r.prev_log_index for r in replies] == [1, 5]
    assert wire.most_in_flight == 1


def test_never_two_requests_on_the_wire(peer, transport, delivered, wire):
    """However fast the loop sends, a connection carries one request at a
    time, written by whichever thread."""
    connected_and_idle(transport, delivered, peer.address)
    for n in range(1, 301):
        transport.send(append_entries(peer.address, n, command="c" * (n % 7)))
    wait_until(
        lambda: any(
            isinstance(m, AppendEntriesReply) and m.prev_log_index == 300
            for m in iter_delivered(delivered)
        ),
        timeout=10,
        interval=0.001,
    )
    assert wire.direct_threads, "the direct path was never taken"
    assert wire.most_in_flight == 1


def iter_delivered(delivered):
    while True:
        try:
            yield delivered.get_nowait()
        except queue.Empty:
            return


def test_a_large_append_entries_goes_through_the_sender_thread(
    peer, transport, delivered, wire
):
    connected_and_idle(transport, delivered, peer.address)
    transport.send(
        append_entries(peer.address, 1, command="x" * (DIRECT_MAX_BYTES + 1))
    )
    assert isinstance(next_delivered(delivered), AppendEntriesReply)
    assert wire.direct_threads == []


@pytest.mark.parametrize("taken", [0, 1, 30])
def test_a_partial_write_is_finished_by_the_sender_thread(
    peer, transport, delivered, wire, taken
):
    """If the socket takes only part of the request at once (or nothing),
    the sender thread writes the rest, and the peer reads it whole."""
    connected_and_idle(transport, delivered, peer.address)

    def partial(send_nowait, exchange, data):
        return send_nowait(exchange, data[:taken]) + data[taken:]

    wire.write_nowait = partial
    transport.send(append_entries(peer.address, 1, command="partial"))
    reply = next_delivered(delivered)
    assert isinstance(reply, AppendEntriesReply) and reply.prev_log_index == 1
    assert len(wire.direct_threads) == 1
    assert peer.requests()[-1][1]["entries"][0]["command"] == "partial"


def test_a_broken_connection_falls_back_to_a_new_one(peer, transport, delivered, wire):
    """A write that fails on the kept-alive connection is not reported: the
    sender thread sends the message on a new connection."""
    connected_and_idle(transport, delivered, peer.address)
    transport._senders[peer.address]._exchange.sock.shutdown(socket.SHUT_WR)

    transport.send(append_entries(peer.address, 1))

    assert wire.direct_failures == 1
    reply = next_delivered(delivered)
    assert isinstance(reply, AppendEntriesReply) and reply.prev_log_index == 1
    assert peer.wait_for_connections(2, timeout=10)


def test_a_written_request_left_unanswered_is_reported_unreachable(
    peer, transport, delivered, wire
):
    """The peer reads the directly written request and drops the
    connection: the core hears Unreachable, counted in PEER_RPC_ERRORS, and
    the next message goes on a new connection."""
    connected_and_idle(transport, delivered, peer.address)
    errors = metrics.PEER_RPC_ERRORS.labels(peer.address)._value.get()
    answer = peer.reply_to

    def fail(endpoint, data):
        raise RuntimeError("the peer fails mid-request")

    peer.reply_to = fail
    transport.send(append_entries(peer.address, 1))
    assert wire.direct_threads == [threading.current_thread()]
    unreachable = next_delivered(delivered)
    assert isinstance(unreachable, Unreachable)
    assert unreachable.source == peer.address
    assert metrics.PEER_RPC_ERRORS.labels(peer.address)._value.get() == errors + 1

    peer.reply_to = answer
    transport.send(append_entries(peer.address, 2))
    reply = next_delivered(delivered)
    assert isinstance(reply, AppendEntriesReply) and reply.prev_log_index == 2


def test_an_urgent_message_does_not_wait_for_a_written_append_entries(
    peer, transport, delivered, wire
):
    """A TimeoutNow sent while a directly written AppendEntries waits for
    its answer goes out at once on a new connection; the AppendEntries is
    reported Unreachable."""
    connected_and_idle(transport, delivered, peer.address)
    answer, release = peer.reply_to, threading.Event()

    def held(endpoint, data):
        if endpoint == "append_entries":
            release.wait(timeout=20)
        return answer(endpoint, data)

    peer.reply_to = held
    try:
        transport.send(append_entries(peer.address, 1))
        transport.send(TimeoutNow(term=1, source=LEADER, dest=peer.address))
        assert len(wire.direct_threads) == 1
        # The read timeout is 30 s: only giving up the AppendEntries lets
        # the TimeoutNow out this soon.
        assert isinstance(next_delivered(delivered, timeout=5), Unreachable)
        wait_until(
            lambda: "timeout_now" in [e for e, _ in peer.requests()],
            timeout=5,
            interval=0.001,
        )
    finally:
        release.set()


def test_an_urgent_message_already_waiting_gives_up_at_once(transport, monkeypatch):
    """The sender gives up an unanswered request for a RequestVote or
    TimeoutNow before its first wait, yet takes an answer already there."""
    monkeypatch.setattr("consensus.transport.POLL_MS", 60_000)
    transport.send(TimeoutNow(term=1, source=LEADER, dest="127.0.0.1:1"))
    sender = transport._senders["127.0.0.1:1"]
    monkeypatch.setattr(sender, "_urgent_waiting", lambda: True)
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.settimeout(30)
        with pytest.raises(TimeoutError, match="given up"):
            sender._await_response(ours)
        theirs.sendall(b"HTTP/1.1 200 OK\r\n")
        sender._await_response(ours)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    from consensus.tls import TLSFiles
    from tests.tls_helpers import make_pki

    pki = make_pki(tmp_path_factory.mktemp("pki"))
    return TLSFiles(*map(str, pki["node"]), str(pki["ca"]))


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_a_request_larger_than_the_socket_takes_is_finished_by_the_sender(
    request, delivered, wire, tls, monkeypatch
):
    """With small socket buffers the non-blocking write stops short (over
    TLS, the SSL layer keeps a part and wants the same bytes again): the
    sender thread writes the rest and the peer reads the request whole."""
    # A request far larger than the socket buffers.
    monkeypatch.setattr("consensus.transport.DIRECT_MAX_BYTES", 64 * 1024)
    files = request.getfixturevalue("tls_files") if tls else None
    peer = PeerServer(ssl_context=files.server_context() if tls else None)
    peer.set_receive_buffer(4096)
    transport = Transport(
        LEADER,
        delivered.put,
        timeout=(5.0, 30.0),
        ssl_context=files.client_context() if tls else None,
    )
    rests = []

    def watched(send_nowait, exchange, data):
        rest = send_nowait(exchange, data)
        rests.append(len(rest))
        return rest

    wire.write_nowait = watched
    command = "c" * 60 * 1024
    try:
        connected_and_idle(transport, delivered, peer.address)
        sock = transport._senders[peer.address]._exchange.sock
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        transport.send(append_entries(peer.address, 1, command=command))
        reply = next_delivered(delivered)
        assert isinstance(reply, AppendEntriesReply) and reply.prev_log_index == 1
        assert wire.direct_threads == [threading.current_thread()]
        assert rests and rests[0] > 0, "the socket took the whole request"
        assert peer.requests()[-1][1]["entries"][0]["command"] == command
        assert peer.connections == 1
    finally:
        transport.close()
        peer.close()


def test_only_small_append_entries_are_written_directly():
    """A command's AppendEntries and a heartbeat go directly; a batch of
    tens of entries is encoded on the sender thread, during the save."""
    from consensus.transport import _fits_directly

    def batch(count):
        entries = tuple(
            Entry(index=i + 1, term=1, command='{"value": "' + "v" * 32 + '"}')
            for i in range(count)
        )
        return AppendEntries(
            term=1,
            source=LEADER,
            dest="127.0.0.1:1",
            prev_log_index=0,
            prev_log_term=0,
            entries=entries,
        )

    assert _fits_directly(batch(0)) and _fits_directly(batch(4))
    assert not _fits_directly(batch(32))
