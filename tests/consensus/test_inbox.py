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


class RecordingSelector:
    """The inbox's selector, noting the timeout of every select()."""

    def __init__(self, selector):
        self._selector = selector
        self.timeouts: list = []

    def select(self, timeout=None):
        self.timeouts.append(timeout)
        return self._selector.select(timeout)

    def __getattr__(self, name):
        return getattr(self._selector, name)


def polling_inbox(poll_s: float) -> tuple[Inbox, RecordingSelector]:
    inbox = Inbox(poll_s=poll_s)
    inbox._selector = recording = RecordingSelector(inbox._selector)
    return inbox, recording


def test_get_polls_for_a_due_answer_without_sleeping(pair):
    a, b = pair
    inbox, selector = polling_inbox(poll_s=30.0)
    polling = threading.Event()
    inbox.watch(
        a,
        lambda: inbox.put(a.recv(16)),
        deadline=time.monotonic() + 60,
        on_timeout=lambda: None,
        due=True,
    )

    def answer():
        # Once the loop polls (a select that does not wait), the answer.
        deadline = time.monotonic() + 10
        while 0 not in selector.timeouts[1:] and time.monotonic() < deadline:
            time.sleep(0.001)
        polling.set()
        b.send(b"reply")

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        assert get_within(inbox) == b"reply"
    finally:
        thread.join(10)
        inbox.close()
    assert polling.is_set()
    # It never waited in the selector: every look was a poll.
    assert set(selector.timeouts) == {0}


def test_a_put_during_the_poll_is_taken_at_once(pair):
    a, _ = pair
    inbox, selector = polling_inbox(poll_s=30.0)
    inbox.watch(a, lambda: None, time.monotonic() + 60, lambda: None, due=True)

    def put_once_polling():
        deadline = time.monotonic() + 10
        while len(selector.timeouts) < 3 and time.monotonic() < deadline:
            time.sleep(0.001)
        inbox.put("work")

    thread = threading.Thread(target=put_once_polling)
    thread.start()
    try:
        assert get_within(inbox) == "work"
    finally:
        thread.join(10)
        inbox.close()
    assert set(selector.timeouts) == {0}


def test_the_poll_ends_after_poll_s_and_get_sleeps(pair):
    a, _ = pair
    inbox, selector = polling_inbox(poll_s=0.005)
    inbox.watch(a, lambda: None, time.monotonic() + 60, lambda: None, due=True)
    timer = threading.Timer(0.2, inbox.put, ["late"])
    timer.start()
    try:
        assert get_within(inbox) == "late"
    finally:
        timer.cancel()
        inbox.close()
    assert selector.timeouts[0] == 0
    # Then it waited, up to the watched socket's deadline.
    assert selector.timeouts[-1] > 1


@pytest.mark.parametrize("due", [False, True])
def test_no_poll_without_a_due_socket_or_poll_s(pair, due):
    a, _ = pair
    inbox, selector = polling_inbox(poll_s=30.0 if not due else 0.0)
    inbox.watch(a, lambda: None, time.monotonic() + 60, lambda: None, due=due)
    timer = threading.Timer(0.05, inbox.put, ["work"])
    timer.start()
    try:
        assert get_within(inbox) == "work"
    finally:
        timer.cancel()
        inbox.close()
    # One look before waiting (get()'s first), then a wait.
    assert selector.timeouts[0] == 0
    assert all(timeout > 1 for timeout in selector.timeouts[1:])
    assert len(selector.timeouts) >= 2


def test_an_unwatched_socket_is_no_longer_due(pair):
    a, _ = pair
    inbox, selector = polling_inbox(poll_s=30.0)
    inbox.watch(a, lambda: None, time.monotonic() + 60, lambda: None, due=True)
    inbox.unwatch(a)
    timer = threading.Timer(0.05, inbox.put, ["work"])
    timer.start()
    try:
        assert get_within(inbox) == "work"
    finally:
        timer.cancel()
        inbox.close()
    # Nothing watched: straight to the wait, without a deadline.
    assert selector.timeouts == [None]
