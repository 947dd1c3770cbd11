"""The loop thread's inbox: a put from any thread wakes its get(), and
get() serves the sockets it watches, a deadline each, even while items
keep coming."""

import socket
import threading
import time

import pytest

from consensus.inbox import Inbox


@pytest.fixture
def inbox():
    inbox = Inbox()
    yield inbox
    inbox.close()


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def get_within(inbox, seconds=5.0):
    """inbox.get(), failing the test if nothing comes within ``seconds``."""
    timer = threading.Timer(seconds, inbox.put, ["nothing came"])
    timer.start()
    try:
        item = inbox.get()
    finally:
        timer.cancel()
    assert item != "nothing came"
    return item


def test_a_put_from_another_thread_wakes_a_waiting_get(inbox):
    waiting = threading.Event()
    got = []

    def loop():
        waiting.set()
        got.append(get_within(inbox))

    thread = threading.Thread(target=loop)
    thread.start()
    waiting.wait(5)
    inbox.put("work")
    thread.join(10)
    assert got == ["work"]


def test_a_watched_socket_is_served_while_get_waits(inbox, pair):
    a, b = pair
    served = []

    def readable():
        served.append(a.recv(100))
        inbox.unwatch(a)
        inbox.put("reply")

    inbox.watch(a, readable, deadline=time.monotonic() + 60, on_timeout=served.clear)
    threading.Timer(0.05, b.send, [b"answer"]).start()
    assert get_within(inbox) == "reply"
    assert served == [b"answer"]


def test_a_busy_inbox_still_serves_watched_sockets(inbox, pair):
    # The loop takes items one get() at a time: were the sockets looked at
    # only when the queue is empty, a reply could wait for a quiet moment.
    a, b = pair
    order = []

    def readable():
        order.append(a.recv(100))
        inbox.unwatch(a)

    inbox.watch(a, readable, deadline=time.monotonic() + 60, on_timeout=order.clear)
    b.send(b"answer")
    inbox.put("work")
    assert get_within(inbox) == "work"
    assert order == [b"answer"]


def two_replying_sockets(inbox):
    """Two watched sockets, each with an answer waiting, whose callbacks
    read it and put it on the inbox; and the log of callbacks run."""
    ran = []
    pairs = [socket.socketpair() for _ in range(2)]
    for name, (a, b) in zip("AB", pairs, strict=True):

        def readable(name=name, a=a):
            ran.append(name)
            inbox.unwatch(a)
            inbox.put(a.recv(100))

        inbox.watch(a, readable, time.monotonic() + 60, ran.clear)
        b.send(name.encode())
    return ran, pairs


def test_an_idle_loop_gets_the_first_readable_socket_alone(inbox):
    # The loop steps one peer's reply before it parses the next.
    ran, pairs = two_replying_sockets(inbox)
    try:
        first = get_within(inbox)
        assert len(ran) == 1 and first == ran[0].encode()
        second = get_within(inbox)  # the other is still readable
        assert {first, second} == {b"A", b"B"} and len(ran) == 2
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_a_busy_loop_serves_every_readable_socket_in_one_turn(inbox):
    ran, pairs = two_replying_sockets(inbox)
    try:
        inbox.put("work")  # queued before the sockets are looked at
        assert get_within(inbox) == "work"
        assert sorted(ran) == ["A", "B"]
        assert sorted([inbox.get_nowait(), inbox.get_nowait()]) == [b"A", b"B"]
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_a_socket_not_readable_by_its_deadline_times_out(inbox, pair):
    a, _ = pair
    timed_out = []

    def on_timeout():
        timed_out.append(True)
        inbox.put("timed out")

    inbox.watch(a, lambda: timed_out.append(False), 0.0, on_timeout)
    assert get_within(inbox) == "timed out"
    assert timed_out == [True]
    inbox.unwatch(a)  # once more: nothing happens


def test_a_put_after_close_is_harmless():
    inbox = Inbox()
    inbox.close()
    inbox._waiting = True  # as if a loop were waiting: the wake-up fails
    inbox.put("late")
    assert inbox.get_nowait() == "late"
