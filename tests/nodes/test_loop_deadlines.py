"""raftsite/loop_deadlines.py: the deadlines of requests the loop thread
read, kept by the main loop without a wake per request: expired at their
time, dropped once answered, earlier ones seen behind later ones, and the
main loop woken only for a deadline before the end of its wait."""

import socket

import pytest

from raftsite.inline_http import parse
from raftsite.inline_worker import InlineExchange

from .test_inline_worker import REQUEST, Conn, Worker, read_all

TIMED_OUT = b'{"error":"timeout"}'


@pytest.fixture
def worker():
    return Worker(lambda request, exchange: True)


@pytest.fixture
def exchanges(worker):
    """Factory: exchange(deadline) is a request the loop thread read, whose
    handler set ``deadline``; with the client's end of its connection."""
    made = []

    def make(deadline):
        server, client = socket.socketpair()
        server.setblocking(False)
        client.settimeout(5)
        made.extend((server, client))
        request = parse(REQUEST, worker.inline_routes)
        exchange = InlineExchange(worker, Conn(server), request, on_loop=True)
        exchange.expire_at(deadline, 504, TIMED_OUT)
        return exchange, client

    yield make
    for sock in made:
        sock.close()


def nothing_to_read(client) -> bool:
    client.setblocking(False)
    try:
        client.recv(1)
    except BlockingIOError:
        return True
    return False


def test_an_unanswered_request_is_expired_at_its_deadline(worker, exchanges):
    exchange, client = exchanges(100.0)
    assert worker._inline_deadlines == []  # not the main loop's heap
    assert worker._inline_expire_due(99.9) == 100.0
    assert not exchange.answered and nothing_to_read(client)
    assert worker._inline_expire_due(100.0) is None
    client.setblocking(True)
    assert read_all(client, 1).startswith(b"HTTP/1.1 504")
    assert not exchange.reply(200, b"{}")


def test_an_answered_request_is_dropped_without_a_second_write(worker, exchanges):
    exchange, client = exchanges(100.0)
    assert exchange.reply(200, b"{}")
    assert read_all(client, 1).startswith(b"HTTP/1.1 200")
    # Dropped at the main loop's next look, before its deadline.
    assert worker._inline_expire_due(50.0) is None
    assert not any(worker._loop_deadlines._runs)
    assert worker._inline_expire_due(200.0) is None
    assert nothing_to_read(client)


def test_an_earlier_deadline_behind_a_later_one_is_seen(worker, exchanges):
    # AppendEntries (2 s) and commands (here 0.3 s) interleaved.
    made = [exchanges(deadline) for deadline in (12.0, 10.3, 12.1, 10.4)]
    (peer, _), (command, _), (later_peer, _), (later_command, _) = made
    assert worker._inline_expire_due(10.0) == 10.3
    assert worker._inline_expire_due(10.35) == 10.4
    assert command.answered and not later_command.answered
    assert worker._inline_expire_due(10.4) == 12.0
    assert later_command.answered and not peer.answered
    assert worker._inline_expire_due(12.05) == 12.1
    assert worker._inline_expire_due(12.1) is None
    assert peer.answered and later_peer.answered
    for _, client in made:
        assert read_all(client, 1).startswith(b"HTTP/1.1 504")


def test_a_deadline_before_the_main_loops_wake_wakes_it(worker, exchanges):
    assert 0.5 < worker._inline_wait_s(1.0) <= 1.0
    wake_at = worker._loop_deadlines.wake_at
    exchanges(wake_at + 0.5)  # seen at the end of this wait
    assert worker._callbacks == []
    exchanges(wake_at - 0.7)
    assert len(worker._callbacks) == 1  # a wake through the method queue
    # The main loop, woken, looks again and waits only until then.
    assert worker._inline_wait_s(1.0) <= 0.3
    assert worker._loop_deadlines.wake_at == wake_at - 0.7


def test_the_wake_end_is_published_before_the_deadlines_are_looked_at(
    worker, exchanges, monkeypatch
):
    # A deadline added while the main loop looks, after its look at that
    # run: the new wake end is already published, so the adder wakes it.
    seen = []
    expire_due = worker._loop_deadlines.expire_due

    def racing_look(now):
        first = expire_due(now)
        seen.append(exchanges(now + 0.3))
        return first

    monkeypatch.setattr(worker._loop_deadlines, "expire_due", racing_look)
    assert 0.5 < worker._inline_wait_s(1.0) <= 1.0
    assert seen and len(worker._callbacks) == 1
