"""The hand-over between the loop thread and the threads that wait on it
(request threads, the snapshot thread): a one-shot slot; or, for requests
served inline, a function the loop thread calls with the outcome. Standard
library only."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)


class Slot:
    """A one-shot hand-over from the loop thread to a waiting thread.

    A lock held from its making until set(): releasing it is one C call on
    the loop thread, where an Event's Condition ran a Python notify_all for
    every command and every peer request answered."""

    def __init__(self):
        self._unset = threading.Lock()
        self._unset.acquire()
        self._is_set = False
        self.value = None
        self.error: Exception | None = None

    def set(self, value=None, error: Exception | None = None) -> None:
        self.value, self.error = value, error
        if not self._is_set:  # only the loop thread sets
            self._is_set = True
            self._unset.release()

    def wait(self, timeout: float | None) -> bool:
        if not self._unset.acquire(timeout=-1 if timeout is None else timeout):
            return False
        self._unset.release()  # stays set, as an Event does
        return True


class Then:
    """A slot that nobody waits on: its outcome goes to ``then`` on the
    loop thread (an inline request's answer, raftsite/inline_worker.py).
    ``then`` must not block.

    With ``due``, a list the loop thread empties with run_due() once the
    node's published status counts the outcome: a client that has its
    answer must find its entry in /api/status and /api/log. Without it,
    at once (a peer's reply, sent as soon as it is durable)."""

    __slots__ = ("_then", "_due", "_is_set", "value", "error")

    def __init__(self, then: Callable[[Then], None], due: list | None = None):
        self._then = then
        self._due = due
        self._is_set = False
        self.value = None
        self.error: Exception | None = None

    def set(self, value=None, error: Exception | None = None) -> None:
        if self._is_set:
            return
        self._is_set = True
        self.value, self.error = value, error
        if self._due is not None:
            self._due.append(self)
        else:
            self.run()

    def run(self) -> None:
        try:
            self._then(self)
        except Exception:
            # The loop thread must go on: the request it answers times out.
            logger.exception("answering an inline request failed")


def run_due(due: list) -> None:
    """Run the Thens set since the last call (loop thread)."""
    for then in due:
        then.run()
    due.clear()
