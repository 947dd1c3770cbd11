"""raftsite/loop_conns.py: once the loop thread has answered an
AppendEntries, or one client's command, inline, it keeps the connection and
serves the next small ones itself; anything else on it (a client's
credentials among them) goes back to the main loop, which alone closes
connections."""

import socket
import threading
import time
from types import SimpleNamespace

import pytest

from consensus.inbox import Inbox
from raftsite import loop_conns
from raftsite.inline_http import Responses, Route, Routes
from raftsite.loop_conns import LOOP_MAX_BODY

from .test_inline_worker import Conn, Worker, read_all

BODY = b'{"entries": []}'
# A peer's route (as /raft/append_entries) and a client's (as /api/commands).
PEER = "/raft/kept"
CLIENT = "/api/kept"
TIMED_OUT = b'{"error":"timeout"}'


def request(path=PEER, body=BODY, *extra: bytes):
    head = b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n"
    return head % (path.encode(), len(body)) + b"".join(extra) + b"\r\n" + body


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
        # What the client route's handler does: "answer" at once, "hold"
        # the exchange (answered later, or at its deadline), "decline".
        self.client_mode = "answer"
        self.held = []
        self.timeout_s = 5.0

        def answer(request, exchange):
            self.served.append((request.path, threading.current_thread()))
            exchange.reply(200, b"{}")
            return True

        def decline(request, exchange):
            self.served.append((request.path, threading.current_thread()))
            return False

        def client(request, exchange):
            if self.client_mode == "decline":
                return decline(request, exchange)
            if self.client_mode == "answer":
                return answer(request, exchange)
            self.served.append((request.path, threading.current_thread()))
            deadline = time.monotonic() + self.timeout_s
            exchange.expire_at(deadline, 504, TIMED_OUT)
            self.held.append(exchange)
            return True

        routes = Routes()
        routes.add(PEER, Route(PEER, answer, Responses([]), loop_kept=True))
        routes.add(CLIENT, Route(CLIENT, client, Responses([]), loop_kept=True))
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


def kept(inbox, pair, path=PEER, worker=None):
    """A connection on ``path`` whose first request the main loop read and
    the loop thread (this one) answered: the loop thread keeps it."""
    server, client = pair
    worker = worker or LoopWorker(inbox)
    conn = LoopConn(server)
    conn.head += request(path)
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
    assert worker.served == [(PEER, me)] * 4
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
    routes.add(PEER, Route(PEER, answer, Responses([]), loop_kept=True))
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


@pytest.fixture
def more_pairs():
    """Factory of further (server, client) pairs, as the ``pair`` fixture's."""
    made = []

    def make():
        server, client = socket.socketpair()
        server.setblocking(False)
        client.settimeout(5)
        made.extend((server, client))
        return server, client

    yield make
    for sock in made:
        sock.close()


def watched(inbox, conn) -> bool:
    return conn.sock in inbox._deadlines


def test_a_clients_connection_is_kept_and_its_next_command_served_there(inbox, pair):
    worker, conn, client = kept(inbox, pair, CLIENT)
    assert watched(inbox, conn) and worker._loop_clients == {conn}
    for _ in range(3):
        client.sendall(request(CLIENT))
        loop_turn(inbox)
        assert client.recv(4096).startswith(b"HTTP/1.1 200")
        assert watched(inbox, conn) and worker._loop_clients == {conn}
    me = threading.current_thread()
    assert worker.served == [(CLIENT, me)] * 4
    assert worker._callbacks == [] and worker.kept == []  # no main loop


def test_a_command_answered_later_keeps_its_connection_on_the_loop(inbox, pair):
    # As a command: the loop thread answers it once applied, turns later.
    worker, conn, client = kept(inbox, pair, CLIENT)
    worker.client_mode = "hold"
    client.sendall(request(CLIENT))
    loop_turn(inbox)
    assert not watched(inbox, conn) and worker._loop_clients == set()
    [exchange] = worker.held
    assert exchange.on_loop
    assert exchange.reply(200, b"{}")
    assert client.recv(4096).startswith(b"HTTP/1.1 200")
    assert watched(inbox, conn) and worker._loop_clients == {conn}
    assert worker._callbacks == []


def test_one_clients_connection_at_a_time_is_kept_on_the_loop(inbox, pair, more_pairs):
    worker, first, first_client = kept(inbox, pair, CLIENT)
    # A second client's command, answered by the loop thread: the usual
    # keep-alive, in the main loop's poller.
    _, second, _ = kept(inbox, more_pairs(), CLIENT, worker)
    assert not watched(inbox, second) and worker.kept == [second]
    assert worker._loop_clients == {first}
    # The first gives its place up (another route goes to the main loop).
    first_client.sendall(request("/other"))
    loop_turn(inbox)
    assert worker._loop_clients == set()
    _, third, _ = kept(inbox, more_pairs(), CLIENT, worker)
    assert watched(inbox, third) and worker._loop_clients == {third}


def test_a_quiet_client_gives_its_place_up(inbox, pair, more_pairs, monkeypatch):
    monkeypatch.setattr(loop_conns, "LOOP_CLIENT_IDLE_S", 0.05)
    worker, first, _ = kept(inbox, pair, CLIENT)
    threading.Timer(0.3, inbox.put, ["later"]).start()
    assert inbox.get() == "later"
    assert not watched(inbox, first) and worker._loop_clients == set()
    worker.main_loop_turn()
    assert worker.kept == [first]  # the main loop's keep-alive
    _, second, _ = kept(inbox, more_pairs(), CLIENT, worker)
    assert watched(inbox, second)


def test_peers_connections_do_not_count_against_the_clients_place(
    inbox, pair, more_pairs
):
    worker, peer, _ = kept(inbox, pair, PEER)
    _, client, _ = kept(inbox, more_pairs(), CLIENT, worker)
    _, other_peer, _ = kept(inbox, more_pairs(), PEER, worker)
    assert all(watched(inbox, conn) for conn in (peer, client, other_peer))
    assert worker._loop_conns == {peer, client, other_peer}
    assert worker._loop_clients == {client}


@pytest.mark.parametrize(
    "header", [b"Authorization: Token abc\r\n", b"Cookie: sessionid=abc\r\n"]
)
def test_a_clients_credentials_go_back_to_the_main_loop(inbox, pair, header):
    # Looking them up takes the ORM, which the loop thread must not run.
    worker, conn, client = kept(inbox, pair, CLIENT)
    raw = request(CLIENT, BODY, header)
    client.sendall(raw)
    loop_turn(inbox)
    assert len(worker.served) == 1  # no handler saw it on the loop thread
    assert not watched(inbox, conn) and worker._loop_clients == set()
    assert bytes(conn.head) == raw
    worker.main_loop_turn()  # served inline there; not kept on the loop
    assert len(worker.served) == 2
    assert client.recv(4096).startswith(b"HTTP/1.1 200")
    assert not watched(inbox, conn) and worker.kept == [conn]


@pytest.mark.parametrize("when", ["at once", "later"])
def test_a_command_declined_on_the_loop_goes_to_the_view(inbox, pair, when):
    # No longer the leader: the handler declines at once, or the runtime
    # answers NotLeader (exchange.decline()); CommandsView forwards it.
    worker, conn, client = kept(inbox, pair, CLIENT)
    worker.client_mode = "decline" if when == "at once" else "hold"
    raw = request(CLIENT)
    client.sendall(raw)
    loop_turn(inbox)
    if when == "later":
        assert worker.held[0].decline()
    assert not watched(inbox, conn) and worker._loop_clients == set()
    worker.main_loop_turn()
    assert worker.enqueued == [conn] and bytes(conn.head) == raw
    assert conn.data_ready and not conn.closed


def test_an_unanswered_command_read_on_the_loop_gets_its_504_from_the_main_loop(
    inbox, pair
):
    worker, conn, client = kept(inbox, pair, CLIENT)
    worker.client_mode, worker.timeout_s = "hold", 0.2
    client.sendall(request(CLIENT))
    started = time.monotonic()
    loop_turn(inbox)
    [exchange] = worker.held
    assert worker._inline_deadlines == []  # not on the main loop's heap
    worker.run_until(lambda: exchange.answered)  # the main loop's turns
    assert time.monotonic() - started >= 0.2
    response = read_all(client, 1)
    assert response.startswith(b"HTTP/1.1 504") and response.endswith(TIMED_OUT)
    assert not exchange.reply(200, b"{}")  # too late: answered


@pytest.fixture
def yields(monkeypatch):
    """The loop thread's sched_yield calls, counted instead of made."""
    calls = []
    monkeypatch.setattr(
        "raftsite.inline_worker.os.sched_yield", lambda: calls.append(True)
    )
    return calls


def test_an_idle_loop_thread_yields_its_core_after_each_answer(inbox, pair, yields):
    # The answer woke whoever waits for it: it runs before the rest of the
    # loop thread's turn (a follower's apply, the leader's bookkeeping).
    worker, conn, client = kept(inbox, pair)
    assert len(yields) == 1

    def answer_then_step(request, exchange):
        exchange.reply(200, b"{}")
        inbox.put("stepped")  # what the loop thread does after the answer
        return True

    routes = Routes()
    routes.add(PEER, Route(PEER, answer_then_step, Responses([]), loop_kept=True))
    worker.inline_routes = routes
    client.sendall(request())
    assert inbox.get() == "stepped"  # the loop thread read and answered it
    assert client.recv(4096).startswith(b"HTTP/1.1 200")
    assert len(yields) == 2


def test_a_busy_loop_thread_keeps_its_core(inbox, pair, yields):
    # Under load the loop thread bounds throughput.
    server, client = pair
    worker = LoopWorker(inbox)
    conn = LoopConn(server)
    conn.head += request()
    inbox.put("queued work")
    assert worker._serve_inline(conn)
    assert client.recv(4096).startswith(b"HTTP/1.1 200")
    assert yields == []
    assert inbox.get_nowait() == "queued work"


def test_no_other_thread_yields_after_an_answer(inbox, pair, yields):
    # The main loop (or a pool thread) answering: nothing of a command's
    # path waits behind it.
    server, client = pair
    worker = LoopWorker(inbox)
    conn = LoopConn(server)
    conn.head += request()
    thread = threading.Thread(target=worker._serve_inline, args=(conn,))
    thread.start()
    thread.join(10)
    assert client.recv(4096).startswith(b"HTTP/1.1 200")
    assert yields == []
