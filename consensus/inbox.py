"""The loop thread's inbox, and its one place to wait: for work from other
threads, or for a peer's reply on a socket the loop thread watches.

A leader's loop thread writes a small AppendEntries to an idle peer itself
(consensus/transport.py) and, over plain HTTP, reads the reply itself when
the socket turns readable. A sender thread reading it instead woke twice per
request (to start waiting, then with the reply), parsed the reply while the
loop thread applied the entry it committed (the two fought for the GIL on
the command's critical path), and handed it over through this queue, a third
wake-up. So the loop thread waits in a selector: on a pipe that a put from
another thread writes to while it waits, and on the watched sockets.
"""

from __future__ import annotations

import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable


class Inbox:
    """A queue (put from any thread) whose get() also serves the watched
    sockets' callbacks, on the loop thread."""

    def __init__(self):
        self._items: queue.SimpleQueue = queue.SimpleQueue()
        self._selector = selectors.DefaultSelector()
        # Sockets, not a pipe: closed when the inbox is collected (tests
        # make many runtimes and stop few).
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        # Set by the loop thread just before it waits: a put then writes a
        # wake-up. Reads and writes of it are atomic under the GIL.
        self._waiting = False
        # Socket -> (deadline (time.monotonic()), on_timeout).
        self._deadlines: dict = {}
        self._owner: int | None = None  # the loop thread's ident

    def put(self, item) -> None:
        self._items.put(item)
        if self._waiting:
            try:
                self._wake_write.send(b"\0")
            except BlockingIOError:
                pass  # full of wake-ups already: the loop wakes anyway
            except OSError:
                pass  # closed: the loop has stopped

    def get_nowait(self):
        return self._items.get_nowait()

    def qsize(self) -> int:
        return self._items.qsize()

    def on_loop_thread(self) -> bool:
        """Whether the caller is the thread that gets from this inbox."""
        return self._owner == threading.get_ident()

    def watch(
        self,
        sock,
        on_readable: Callable[[], None],
        deadline: float,
        on_timeout: Callable[[], None],
    ) -> None:
        """Loop thread: call ``on_readable`` from get() whenever ``sock`` is
        readable, until unwatch(); ``on_timeout`` at ``deadline`` if it is
        still watched then. Neither may raise."""
        self._selector.register(sock, selectors.EVENT_READ, on_readable)
        self._deadlines[sock] = (deadline, on_timeout)

    def unwatch(self, sock) -> None:
        """Loop thread (or any thread once the loop has stopped)."""
        if self._deadlines.pop(sock, None) is not None:
            try:
                self._selector.unregister(sock)
            except (KeyError, ValueError, OSError):
                pass  # closed already: the selector has let go of it

    def get(self):
        """The next item, waiting as long as it takes; meanwhile, and once
        before taking an item if any socket is watched (a busy loop would
        otherwise never look), the watched sockets' callbacks run."""
        self._owner = threading.get_ident()
        if self._deadlines:
            self._dispatch(self._selector.select(0))
        while True:
            try:
                return self._items.get_nowait()
            except queue.Empty:
                pass
            self._waiting = True
            try:
                try:
                    # A put between the look above and _waiting wrote nothing.
                    return self._items.get_nowait()
                except queue.Empty:
                    pass
                events = self._selector.select(self._timeout())
            finally:
                # Before the callbacks: what they put needs no wake-up.
                self._waiting = False
            self._dispatch(events)

    def close(self) -> None:
        """The loop thread, as it ends."""
        self._deadlines.clear()
        self._selector.close()
        self._wake_read.close()
        self._wake_write.close()

    def _timeout(self) -> float | None:
        if not self._deadlines:
            return None
        first = min(deadline for deadline, _ in self._deadlines.values())
        return max(0.0, first - time.monotonic())

    def _dispatch(self, events) -> None:
        for key, _ in events:
            if key.data is None:
                try:
                    self._wake_read.recv(4096)
                except BlockingIOError:
                    pass
        # With the loop idle, the first socket that gives it work is served
        # alone: the loop steps that at once, and the other sockets, still
        # readable, wait for the next get(). At one client both followers'
        # replies often arrive together, and parsing the second delayed the
        # commit the first one made. Under load (work already queued) all
        # are served in one turn, so that the loop steps them in one Ready.
        idle = self._items.empty()
        for key, _ in events:
            if key.data is not None and key.fileobj in self._deadlines:
                if idle and not self._items.empty():
                    break
                key.data()
        if self._deadlines:
            now = time.monotonic()
            for sock, (deadline, on_timeout) in list(self._deadlines.items()):
                if deadline <= now:
                    self.unwatch(sock)
                    on_timeout()
