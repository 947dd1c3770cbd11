"""The worker touches gunicorn's heartbeat file at most once a second (a
quarter of a short timeout), not on every turn of its main loop, and so
never lets the arbiter's timeout pass."""

import pytest

from raftsite import worker as worker_module
from raftsite.worker import RaftThreadWorker


class Tmp:
    def __init__(self):
        self.touched = 0

    def notify(self):
        self.touched += 1


class Clock:
    def __init__(self):
        self.now = 100.0

    def monotonic(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(worker_module.time, "monotonic", clock.monotonic)
    return clock


def worker(timeout):
    w = RaftThreadWorker.__new__(RaftThreadWorker)
    w.tmp, w.timeout, w._next_notify = Tmp(), timeout, 0.0
    return w


def test_the_heartbeat_is_touched_once_a_second(clock):
    w = worker(timeout=15)
    for _ in range(100):
        w.notify()
    assert w.tmp.touched == 1
    clock.now += 0.99
    w.notify()
    assert w.tmp.touched == 1
    clock.now += 0.02
    w.notify()
    assert w.tmp.touched == 2


def test_a_short_timeout_is_touched_four_times_within_it(clock):
    w = worker(timeout=2)
    w.notify()
    clock.now += 0.5
    w.notify()
    assert w.tmp.touched == 2
