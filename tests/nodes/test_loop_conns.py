"""raftsite/loop_conns.py: once the loop thread has answered an
AppendEntries inline, it keeps the connection and serves the next small
ones itself; anything else on it goes back to the main loop, which alone
closes connections."""

import threading
from types import SimpleNamespace

import pytest

from consensus.inbox import Inbox
from raftsite.inline_http import Responses, Route, Routes
from raftsite.loop_conns import LOOP_MAX_BODY

from .test_inline_worker import Conn, Worker

BODY = b'{"entries": []}'


def request(path="/kept", body=BODY):
    head = b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n"
    return head % (path.encode(), len(body)) + body


class LoopConn(Conn):
    def head_complete(self):
        return b"\r\n\r\n" in self.head


class LoopWorker(Worker):
    """A worker whose loop thread is the test's: it gets from ``inbox``."""

    def __init__(self, inbox):
        super().__init__(None)
        self.inbox = inbox
        self.cfg = SimpleNamespace(keepalive=2)
        self.served = []  # (path, thread) of each request a handler saw
        self.awaited = []

        def answer(request, exchange):
            self.served.append((request.path, threading.current_thread()))
            exchange.reply(200, b"{}")
            return True

        def decline(request, exchange):
            self.served.append((request.path, threading.current_thread()))
            return False

        routes = Routes()
        routes.add("/kept", Route("/kept", answer, Responses([]), loop_kept=True))
        routes.add("/other", Route("/other", decline, Responses([])))
        self.inline_routes = routes

    def _loop_inbox(self):
        return self.inbox

    def _await_head(self, conn):
        self.awaited.append(conn)

    def main_loop_turn(self):
        with self._lock:
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()


@pytest.fixture
def inbox():
    inbox = Inbox()
    inbox.put("owner")
    assert inbox.get() == "owner"  # this thread is the loop thread
    yield inbox
    inbox.close()


def loop_turn(inbox):
    """One get() of the loop thread: it serves readable watched sockets."""
    inbox.put("turn")
    assert inbox.get() == "turn"


def kept(inbox, pair):
    server, client = pair
    worker = LoopWorker(inbox)
    conn = LoopConn(server)
    conn.head += request()
    assert worker._serve_inline(conn)
    assert client.recv(4096).startswith(b"HTTP/1.1 200")
    return worker, conn, client


def test_the_loop_thread_keeps_and_serves_the_connection(inbox, pair):
    worker, conn, client = kept(inbox, pair)
    assert conn.sock in inbox._deadlines
    assert worker._callbacks == [] and worker.kept == []
    for _ in range(3):
        client.sendall(request())
        loop_turn(inbox)
        assert client.recv(4096).startswith(b"HTTP/1.1 200")
        assert conn.sock in inbox._deadlines
    me = threading.current_thread()
    assert worker.served == [("/kept", me)] * 4
    assert worker._callbacks == []


def test_another_route_goes_back_to_the_main_loop(inbox, pair):
    worker, conn, client = kept(inbox, pair)
    client.sendall(request("/other"))
    loop_turn(inbox)
    assert conn.sock not in inbox._deadlines
    assert len(worker.served) == 1  # the loop thread served nothing more
    worker.main_loop_turn()
    # The main loop offered it inline (declined), then to a pool thread.
    assert worker.served[-1][0] == "/other"
    assert worker.enqueued == [conn] and bytes(conn.head) == request("/other")


def test_a_large_append_entries_goes_back_to_the_main_loop(inbox, pair):
    # Decoded by the main loop while the loop thread applies: under load
    # the loop thread's time bounds throughput.
    worker, conn, client = kept(inbox, pair)
    client.sendall(request(body=b"x" * (LOOP_MAX_BODY + 1)))
    loop_turn(inbox)
    assert conn.sock not in inbox._deadlines and len(worker.served) == 1
    worker.main_loop_turn()  # served inline there, and kept alive there
    assert len(worker.served) == 2 and worker.kept == [conn]
    assert client.recv(4096).startswith(b"HTTP/1.1 200")
    assert inbox._deadlines == {}


def test_a_closed_connection_is_closed_by_the_main_loop(inbox, pair):
    worker, conn, client = kept(inbox, pair)
    client.close()
    loop_turn(inbox)
    assert not conn.closed and worker.nr_conns == 1
    worker.main_loop_turn()
    assert conn.closed and worker.nr_conns == 0


def test_an_idle_connection_goes_back_to_keep_alive(inbox, pair, monkeypatch):
    monkeypatch.setattr(LoopWorker, "_loop_idle_s", lambda self: 0.05)
    worker, conn, _ = kept(inbox, pair)
    threading.Timer(0.3, inbox.put, ["later"]).start()
    assert inbox.get() == "later"
    assert conn.sock not in inbox._deadlines
    worker.main_loop_turn()
    assert worker.kept == [conn]


def test_a_part_of_a_request_waits_for_the_rest(inbox, pair):
    worker, conn, client = kept(inbox, pair)
    data = request()
    client.sendall(data[:20])
    loop_turn(inbox)
    assert conn.sock in inbox._deadlines and len(worker.served) == 1
    client.sendall(data[20:])
    loop_turn(inbox)
    assert len(worker.served) == 2
    assert client.recv(4096).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("case", ["503", "other-thread", "stopping"])
def test_kept_only_for_a_200_written_by_the_loop_thread_of_a_running_worker(
    inbox, pair, case
):
    server, client = pair
    worker = LoopWorker(inbox)
    status = 503 if case == "503" else 200

    def answer(request, exchange):
        if case == "other-thread":
            thread = threading.Thread(target=exchange.reply, args=(status, b"{}"))
            thread.start()
            thread.join(5)
        else:
            exchange.reply(status, b"{}")
        return True

    routes = Routes()
    routes.add("/kept", Route("/kept", answer, Responses([]), loop_kept=True))
    worker.inline_routes = routes
    if case == "stopping":
        worker._keepalive_open = False
    conn = LoopConn(server)
    conn.head += request()
    assert worker._serve_inline(conn)
    assert client.recv(4096).startswith(b"HTTP/1.1")
    assert inbox._deadlines == {}


def test_a_stopping_worker_gets_its_connections_back_to_close(inbox, pair):
    worker, conn, _ = kept(inbox, pair)
    worker._give_back_all()
    assert inbox._deadlines == {}
    worker.alive = False
    worker.main_loop_turn()
    assert conn.closed and worker.nr_conns == 0


def test_a_failure_on_the_loop_gives_the_connection_back_closed(
    inbox, pair, monkeypatch
):
    worker, conn, client = kept(inbox, pair)

    def broken(self, conn, request, on_loop=False):
        raise RuntimeError("a bug")

    monkeypatch.setattr(LoopWorker, "_hand_to_route", broken)
    client.sendall(request())
    loop_turn(inbox)  # the loop thread goes on
    worker.main_loop_turn()
    assert conn.closed and worker.nr_conns == 0
