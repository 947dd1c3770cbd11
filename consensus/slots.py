"""The hand-over between the loop thread and the threads that wait on it
(request threads, the snapshot thread): a one-shot slot. Standard library
only."""

from __future__ import annotations

import threading


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
