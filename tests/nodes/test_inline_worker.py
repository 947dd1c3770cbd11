"""raftsite.inline_worker.InlineServing on real sockets, with a stand-in for
the rest of the worker (its poller, method queue and connection
bookkeeping): answered once, declined back to the ordinary path, expired at
the deadline, and an answer larger than the socket takes written in full
or given up on when the reader stops; a connection kept alive from the
answering thread without waking the main loop, unless it must."""

import inspect
import logging
import selectors
import socket
import threading
import time
from collections import deque
from functools import partial

import pytest
from gunicorn.workers import gthread

from raftsite.inline_http import Responses, Route, Routes
from raftsite.inline_worker import InlineServing

READ_TIMEOUT_S = 0.5
KEEPALIVE_S = 75
REQUEST = b"POST /inline HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}"


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.head = bytearray()
        self.inline_started = 0.0
        self.inline_rest = b""
        self.inline_write_deadline = 0.0
        self.timeout = None
        self.closed = False
        self.data_ready = False

    def set_timeout(self):
        self.timeout = time.monotonic() + KEEPALIVE_S

    def close(self):
        self.closed = True
        self.sock.close()


class Kept:
    """gthread's own handling of kept-alive connections."""

    murder_keepalived = gthread.ThreadWorker.murder_keepalived
    _cap_keepalive = gthread.ThreadWorker._cap_keepalive

    def on_client_socket_readable(self, conn, client):
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self.readable.append(conn)


class Worker(InlineServing, Kept):
    """The main loop's share of RaftThreadWorker, run by run_until()."""

    def __init__(self, handler):
        self._inline_init()
        self.poller = selectors.DefaultSelector()
        self._callbacks = []
        self._lock = threading.Lock()
        self.method_queue = self
        self.alive = True
        self.nr_conns = 1
        self.keepalived_conns = deque()
        self.read_timeout_s = READ_TIMEOUT_S
        self.log = logging.getLogger(__name__)
        self.kept, self.enqueued, self.readable = [], [], []
        routes = Routes()
        routes.add("/inline", Route("/inline", handler, Responses([])))
        self.inline_routes = routes

    def defer(self, fn, *args):  # the method queue's, from any thread
        with self._lock:
            self._callbacks.append(partial(fn, *args))

    def _keep_alive(self, conn):
        super()._keep_alive(conn)
        self.kept.append(conn)

    def enqueue_req(self, conn):
        self.enqueued.append(conn)

    def run_until(self, predicate, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "the worker did not get there"
            with self._lock:
                callbacks, self._callbacks = self._callbacks, []
            for callback in callbacks:
                callback()
            for key, _ in self.poller.select(0.01):
                key.data(key.fileobj)
            self._inline_expire_due(time.monotonic())


def serve(handler, server):
    worker = Worker(handler)
    conn = Conn(server)
    conn.head += REQUEST
    return worker, conn, worker._serve_inline(conn)


def read_all(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_an_answer_is_written_once_and_the_connection_kept(pair):
    server, client = pair
    exchanges = []
    worker, conn, taken = serve(lambda r, e: exchanges.append(e) or True, server)
    assert taken and conn.head == b""
    exchange = exchanges[0]
    assert exchange.request.body == b"{}"
    # From another thread, as the loop thread answers.
    answered = []
    thread = threading.Thread(
        target=lambda: answered.append(exchange.reply(200, b"{}"))
    )
    thread.start()
    thread.join()
    assert answered == [True]
    assert not exchange.reply(500, b"{}")  # once only
    worker.run_until(lambda: worker.kept)
    response = read_all(client, 1)
    assert response.startswith(b"HTTP/1.1 200 OK\r\n") and response.endswith(
        b"\r\n\r\n{}"
    )
    assert worker.nr_conns == 1 and not conn.closed


def test_a_declined_request_goes_to_a_thread_with_its_bytes(pair):
    server, _ = pair
    exchanges = []
    worker, conn, taken = serve(lambda r, e: exchanges.append(e) or True, server)
    assert exchanges[0].decline()
    assert not exchanges[0].reply(200, b"{}")
    worker.run_until(lambda: worker.enqueued)
    assert bytes(conn.head) == REQUEST and conn.data_ready


@pytest.mark.parametrize("handler", [lambda r, e: False, lambda r, e: 1 / 0])
def test_a_request_the_handler_does_not_take_keeps_its_bytes(pair, handler):
    server, _ = pair
    worker, conn, taken = serve(handler, server)
    assert not taken
    assert bytes(conn.head) == REQUEST


def test_the_deadline_answers_unless_answered_before(pair):
    server, client = pair

    def handler(request, exchange):
        exchange.expire_at(time.monotonic() + 0.2, 504, b'{"error":"timeout"}')
        handler.exchange = exchange
        return True

    worker, conn, _ = serve(handler, server)
    worker.run_until(lambda: worker.kept)
    assert read_all(client, 1).startswith(b"HTTP/1.1 504 Gateway Timeout\r\n")
    assert not handler.exchange.reply(200, b"{}")  # too late: answered


def small_buffers(server, client):
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)


def test_an_answer_larger_than_the_socket_takes_is_written_in_full(pair):
    server, client = pair
    small_buffers(server, client)
    exchanges = []
    worker, conn, _ = serve(lambda r, e: exchanges.append(e) or True, server)
    body = b"x" * 1_000_000
    exchanges[0].reply(200, body)
    worker.run_until(lambda: conn.inline_rest)  # the rest waits in the main loop
    received = []
    reader = threading.Thread(
        target=lambda: received.append(read_all(client, len(body)))
    )
    reader.start()
    worker.run_until(lambda: worker.kept)
    reader.join(10)
    assert received[0].endswith(body) and not conn.closed


def test_a_reader_that_stops_reading_loses_the_connection(pair):
    server, client = pair
    small_buffers(server, client)
    exchanges = []
    worker, conn, _ = serve(lambda r, e: exchanges.append(e) or True, server)
    exchanges[0].reply(200, b"x" * 1_000_000)
    started = time.monotonic()
    worker.run_until(lambda: conn.closed, timeout=READ_TIMEOUT_S * 10)
    assert time.monotonic() - started >= READ_TIMEOUT_S
    assert worker.nr_conns == 0 and not worker.kept


def test_a_failure_after_the_answer_closes_the_connection_not_the_loop(pair):
    server, client = pair
    exchanges = []
    worker, conn, _ = serve(lambda r, e: exchanges.append(e) or True, server)

    def broken(conn):
        raise ValueError("the poller refused it")

    worker._keep_alive = broken
    exchanges[0].reply(200, b"{}")
    worker.run_until(lambda: conn.closed)
    assert worker.nr_conns == 0


def answer_from_a_thread(exchange, body=b"{}"):
    """Reply as the loop thread does; nothing may escape into it."""
    answered = []
    thread = threading.Thread(target=lambda: answered.append(exchange.reply(200, body)))
    thread.start()
    thread.join(5)
    assert answered == [True]


def test_a_kept_alive_answer_from_another_thread_wakes_no_main_loop(pair):
    server, client = pair
    exchanges = []
    worker, conn, _ = serve(lambda r, e: exchanges.append(e) or True, server)
    answer_from_a_thread(exchanges[0])
    assert not worker._callbacks  # nothing for the main loop to do
    assert list(worker.keepalived_conns) == [conn]
    assert conn.timeout > time.monotonic() + KEEPALIVE_S - 5
    assert worker.poller.get_key(server).events == selectors.EVENT_READ
    assert read_all(client, 1).startswith(b"HTTP/1.1 200 OK\r\n")
    client.sendall(REQUEST)  # the next request finds it in the poller
    worker.run_until(lambda: worker.readable)
    assert worker.readable == [conn] and not worker.keepalived_conns
    assert worker.nr_conns == 1 and not conn.closed


CLOSE_REQUEST = REQUEST.replace(b"\r\nContent", b"\r\nConnection: close\r\nContent")


@pytest.mark.parametrize("case", ["partial", "close", "stopping", "stopped"])
def test_what_the_main_loop_must_decide_is_left_to_it(pair, case):
    server, client = pair
    exchanges = []
    worker = Worker(lambda r, e: exchanges.append(e) or True)
    conn = Conn(server)
    conn.head += CLOSE_REQUEST if case == "close" else REQUEST
    assert worker._serve_inline(conn)
    body = b"{}"
    if case == "partial":
        small_buffers(server, client)
        body = b"x" * 1_000_000
    elif case == "stopping":
        worker.alive = False
    elif case == "stopped":  # run() left its loop (alive, if the parent died)
        worker._cap_keepalive(time.monotonic() + 2)
    answer_from_a_thread(exchanges[0], body)
    assert worker._callbacks
    assert not worker.keepalived_conns and not worker.poller.get_map()
    if case == "partial":
        worker.run_until(lambda: conn.inline_rest)
    elif case == "stopped":
        worker.run_until(lambda: worker.kept)
    else:
        worker.run_until(lambda: conn.closed)
        assert worker.nr_conns == 0


def test_a_registration_that_fails_closes_the_connection_on_the_main_loop(pair):
    server, _ = pair
    exchanges = []
    worker, conn, _ = serve(lambda r, e: exchanges.append(e) or True, server)

    def broken(*args, **kwargs):
        raise OSError("epoll_ctl refused it")

    worker.poller.register = broken
    answer_from_a_thread(exchanges[0])
    assert not worker.keepalived_conns
    # The main loop's count: not counted down from another thread.
    assert worker.nr_conns == 1 and not conn.closed
    worker.run_until(lambda: conn.closed)
    assert worker.nr_conns == 0


@pytest.mark.parametrize(
    "main_loop",
    [
        lambda worker, deadline: worker.murder_keepalived(force=True),
        lambda worker, deadline: worker._cap_keepalive(deadline),
    ],
    ids=["murder_keepalived", "_cap_keepalive"],
)
def test_the_main_loop_waits_for_a_registration_under_way(pair, main_loop):
    server, _ = pair
    exchanges = []
    worker, conn, _ = serve(lambda r, e: exchanges.append(e) or True, server)
    registering, go = threading.Event(), threading.Event()
    register = worker.poller.register

    def slow_register(*args, **kwargs):
        registering.set()  # in keepalived_conns, not in the poller yet
        go.wait(5)
        return register(*args, **kwargs)

    worker.poller.register = slow_register
    answering = threading.Thread(target=exchanges[0].reply, args=(200, b"{}"))
    answering.start()
    assert registering.wait(5)
    deadline = time.monotonic()
    looping = threading.Thread(target=main_loop, args=(worker, deadline))
    looping.start()
    looping.join(0.2)
    assert looping.is_alive()
    go.set()
    answering.join(5)
    looping.join(5)
    assert not looping.is_alive() and not worker._callbacks
    if not worker._keepalive_open:  # capped, and only the main loop keeps more
        assert list(worker.keepalived_conns) == [conn] and conn.timeout <= deadline
    else:  # closed once registered, and counted down once
        assert conn.closed and not worker.keepalived_conns
        assert not worker.poller.get_map() and worker.nr_conns == 0


def test_gthread_caps_kept_alive_connections_as_it_stops():
    # Where the worker stops keeping connections alive from other threads.
    from raftsite.worker import RaftThreadWorker

    assert "self._cap_keepalive(" in inspect.getsource(gthread.ThreadWorker.run)
    assert RaftThreadWorker._cap_keepalive is InlineServing._cap_keepalive
    assert RaftThreadWorker.murder_keepalived is InlineServing.murder_keepalived


def test_work_handed_to_a_pool_thread_holds_a_client_request_slot(pair):
    from concurrent.futures import ThreadPoolExecutor

    from raftsite.client_limit import ClientRequestLimit

    server, client = pair
    exchanges = []
    worker, conn, taken = serve(lambda r, e: exchanges.append(e) or True, server)
    worker.client_limit = ClientRequestLimit(None, limit=1)
    worker.tpool = ThreadPoolExecutor(1)
    release = threading.Event()
    try:
        ran = []

        def held():
            assert release.wait(5)
            ran.append(threading.current_thread())
            exchanges[0].reply(200, b"{}")

        assert exchanges[0].in_pool(held)
        # The one slot is taken until held() has returned: nothing runs.
        assert not exchanges[0].in_pool(lambda: ran.append("second"))
        release.set()
        worker.run_until(lambda: worker.kept)
        assert read_all(client, 1).startswith(b"HTTP/1.1 200 OK\r\n")
        assert ran and ran[0] is not threading.current_thread()
        # Given back once held() returned, even by work that raises.
        deadline = time.monotonic() + 5
        while not worker.client_limit.hold():
            assert time.monotonic() < deadline, "the slot never came back"
        worker.client_limit.let_go()
        assert exchanges[0].in_pool(lambda: 1 / 0)
        deadline = time.monotonic() + 5
        while not worker.client_limit.hold():
            assert time.monotonic() < deadline, "a failing job kept its slot"
        worker.client_limit.let_go()
        # A pool already shut down (the worker stopping) runs nothing, and
        # keeps no slot.
        worker.tpool.shutdown(wait=True)
        assert not exchanges[0].in_pool(lambda: ran.append("late"))
        assert worker.client_limit.hold()
        assert "late" not in ran and "second" not in ran
    finally:
        release.set()
        worker.tpool.shutdown(wait=True)
