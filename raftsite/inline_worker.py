"""The worker's side of inline requests (raftsite/inline_http.py): one
request served by the main loop and answered from any thread.

A client command through a pool thread costs that thread's wake-ups (the
main loop hands it the connection, the loop thread hands it the commit, it
hands the connection back) and Django's request cycle; on a two-core
machine those hand-offs, each a fight for the GIL, were most of a leader's
time per command. Inline, the main loop parses the request and the loop
thread that applies the entry writes the answer on the socket itself: the
connection then goes back to the main loop's poller as any kept-alive one.
"""

from __future__ import annotations

import heapq
import os
import selectors
import socket
import threading
import time
from functools import partial
from itertools import count

from .loop_conns import LoopConnections
from .loop_deadlines import LoopDeadlines


class InlineExchange:
    """One inline request on its connection: answered exactly once, by
    ``reply``, by ``decline`` (the ordinary path serves it after all), or
    by the worker at the deadline the handler set."""

    __slots__ = (
        "_worker",
        "conn",
        "request",
        "_claim",
        "deadline",
        "_expired",
        "on_loop",
    )

    def __init__(self, worker, conn, request, on_loop: bool = False):
        self._worker = worker
        self.conn = conn
        self.request = request
        # Read by the loop thread (raftsite/loop_conns.py): its deadline
        # goes to the worker's LoopDeadlines, the main loop's heap being
        # the main loop's alone.
        self.on_loop = on_loop
        self._claim = threading.Lock()
        self.deadline: float | None = None
        self._expired: tuple[int, bytes] | None = None

    def expire_at(self, deadline: float, status: int, body: bytes) -> None:
        """Answer ``status`` and ``body`` at ``deadline`` (time.monotonic())
        unless answered before. Call before handing the request on."""
        self.deadline = deadline
        self._expired = (status, body)
        if self.on_loop:
            self._worker._loop_expiring(self)
        else:
            self._worker._inline_expiring(self)

    @property
    def answered(self) -> bool:
        """Whether it was answered or declined already (any thread)."""
        return self._claim.locked()

    def reply(self, status: int, body: bytes, extra_headers=()) -> bool:
        """Write the answer (any thread); False if it was answered already."""
        if not self._claim.acquire(blocking=False):
            return False
        responses = self.request.route.responses
        data = responses.build(status, body, self.request.keep_alive, extra_headers)
        self._worker._inline_write(self, data, status)
        return True

    def decline(self) -> bool:
        """Have the ordinary path serve the request (any thread): only when
        nothing of it has taken effect."""
        if not self._claim.acquire(blocking=False):
            return False
        self._worker.method_queue.defer(self._worker._inline_declined, self)
        return True

    def in_pool(self, fn) -> bool:
        """Run ``fn()`` on a pool thread, as a client request in flight
        (raftsite/client_limit.py); False if none may start now: nothing
        was run, and the request is still the handler's to decline."""
        return self._worker._inline_in_pool(fn)

    def later(self, fn, *args) -> None:
        """Run ``fn(*args)`` on the worker's main loop (from any thread)."""
        self._worker.method_queue.defer(fn, *args)

    def expire(self) -> None:
        if self._expired is not None:
            self.reply(*self._expired)


class InlineServing(LoopConnections):
    """RaftThreadWorker's inline requests (a mixin: it uses the worker's
    poller, method queue and connection bookkeeping, main loop only unless
    said otherwise)."""

    # raftsite.inline_http.Routes; empty: nothing is served inline.
    inline_routes = ()
    # What /metrics counts: taken(request), answered(request, status,
    # seconds), declined(request); None counts nothing.
    inline_metrics = None

    # raftsite.client_limit.ClientRequestLimit: the slots that requests a
    # handler hands to a pool thread take (InlineExchange.in_pool); None:
    # no limit.
    client_limit = None

    def _inline_init(self):
        # (deadline, n, fn): what the main loop does at each deadline.
        self._inline_deadlines: list = []
        self._inline_order = count()
        # Held by a thread keeping a connection alive (_keep_alive_here),
        # and by the main loop while it closes kept-alive connections or
        # starts to stop; _keepalive_open: until it starts to stop.
        self._keepalive_lock = threading.Lock()
        self._keepalive_open = True
        self._loop_conns = set()
        self._loop_clients = set()
        self._loop_deadlines = LoopDeadlines()

    def _serve_inline(self, conn) -> bool:
        """Serve the request in ``conn.head`` inline if it is one; False
        leaves it to a pool thread."""
        from .inline_http import parse

        request = parse(conn.head, self.inline_routes)
        if request is None:
            return False
        return self._hand_to_route(conn, request)

    def _hand_to_route(self, conn, request, on_loop: bool = False) -> bool:
        """Give ``request`` (parsed from ``conn.head``) to its route's
        handler; False if it did not take it, ``conn.head`` then holding
        the request again."""
        exchange = InlineExchange(self, conn, request, on_loop)
        conn.head.clear()
        conn.inline_started = time.perf_counter()
        metrics = self.inline_metrics
        if metrics is not None:  # before the answer can come
            metrics.taken(request)
        try:
            # A handler proposes last: raising, it has changed nothing.
            taken = request.route.handler(request, exchange)
        except Exception:
            self.log.exception("inline handler failed")
            taken = False
        if not taken:
            if metrics is not None:
                metrics.declined(request)
            conn.head += request.raw
        return taken

    def _inline_body_pending(self, conn) -> bool:
        """Whether the main loop should wait for the rest of an inline
        request's body (raftsite/inline_http.body_pending)."""
        from .inline_http import body_pending

        return bool(self.inline_routes) and body_pending(conn.head, self.inline_routes)

    def _inline_in_pool(self, fn) -> bool:
        # Any thread.
        limit = self.client_limit
        if limit is not None and not limit.hold():
            return False

        def run():
            try:
                fn()
            except Exception:
                self.log.exception("an inline request failed on a pool thread")
            finally:
                if limit is not None:
                    limit.let_go()

        try:
            self.tpool.submit(run)
        except RuntimeError:  # the pool is shut down: the worker is stopping
            if limit is not None:
                limit.let_go()
            return False
        return True

    def _inline_expiring(self, exchange):
        self._at(exchange.deadline, exchange.expire)

    def _at(self, deadline: float, fn) -> None:
        heapq.heappush(self._inline_deadlines, (deadline, next(self._inline_order), fn))

    def _inline_write(self, exchange, data: bytes, status: int) -> None:
        # Any thread: the connection is in no poller while its request is
        # served, so no other thread touches its socket.
        if self.inline_metrics is not None:
            # Counted before the client can see the answer and ask /metrics.
            seconds = time.perf_counter() - exchange.conn.inline_started
            self.inline_metrics.answered(exchange.request, status, seconds)
        sent = 0
        try:
            sent = exchange.conn.sock.send(data, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            sent = -1
        rest = None if sent < 0 else data[sent:]
        # The loop thread's inbox if this is the loop thread, else None: an
        # answer written elsewhere (the main loop's 503 or 504 at a
        # deadline) is never kept on the loop thread, nor followed by a yield.
        inbox = self._loop_inbox()
        if inbox is not None and not inbox.on_loop_thread():
            inbox = None
        if sent > 0 and inbox is not None:
            _yield_if_idle(inbox)
        if rest == b"" and (
            (inbox is not None and self._keep_on_loop(inbox, exchange, status))
            or self._keep_alive_here(exchange)
        ):
            return
        self.method_queue.defer(self._inline_written, exchange, rest)

    def _keep_alive_here(self, exchange) -> bool:
        """Keep the connection of an answer written in full alive from this
        thread (any); False leaves it to the main loop."""
        # Handing it to the main loop wakes that loop for every answer (a
        # pipe write and read, a context switch, a fight for the GIL), on
        # every node: on two cores, latency for all. It need not be woken:
        # epoll_ctl may run during another thread's epoll_wait, the
        # selector's register is a dict insert (atomic under the GIL; the
        # main loop only looks keys up in it while dispatching), and the
        # deque takes appends and removes from any thread. The connection is
        # in keepalived_conns with its timeout before it is registered: the
        # main loop may find it readable at once and take it out again. The
        # lock keeps out what would break between the append and the
        # register: murder_keepalived popping and closing it (a closed
        # socket, or its fd reused, registered after), a stopping worker
        # iterating keepalived_conns to cap them or closing the poller. Once
        # the worker stops, the main loop decides, as before.
        if not exchange.request.keep_alive:
            return False
        conn = exchange.conn
        with self._keepalive_lock:
            if not (self._keepalive_open and self.alive):
                return False
            try:
                self._keep_alive(conn)
                return True
            except Exception:
                # Not registered, so no other thread took it out.
                try:
                    self.keepalived_conns.remove(conn)
                except ValueError:
                    pass
        self.log.exception("keeping an inline connection alive failed")
        # nr_conns is the main loop's alone (a -= here could lose its +=):
        # it closes the connection, as _inline_written would.
        self.method_queue.defer(self._inline_written, exchange, None)
        return True

    def _keep_alive(self, conn):
        # As gthread's finish_request keeps a connection after a response;
        # the order matters from another thread (_keep_alive_here).
        conn.set_timeout()
        self.keepalived_conns.append(conn)
        self.poller.register(
            conn.sock,
            selectors.EVENT_READ,
            partial(self.on_client_socket_readable, conn),
        )

    def murder_keepalived(self, force=False):
        with self._keepalive_lock:
            super().murder_keepalived(force)

    def _cap_keepalive(self, deadline):
        # gthread's run() calls this first as it leaves its loop to stop:
        # from here on only the main loop keeps connections alive.
        with self._keepalive_lock:
            self._keepalive_open = False
            super()._cap_keepalive(deadline)
        self._give_back_loop_conns()

    def _inline_written(self, exchange, rest: bytes | None) -> None:
        # From the method queue, as gthread's finish_request: a failure
        # closes the connection, never the worker's loop.
        try:
            self._after_write(exchange, rest)
        except Exception:
            self.log.exception("finishing an inline answer failed")
            self._inline_close(exchange)

    def _after_write(self, exchange, rest: bytes | None) -> None:
        conn = exchange.conn
        if rest is None:
            return self._inline_close(exchange)
        if rest:
            # A reader slower than the socket's buffer: the main loop writes
            # the rest as it can, and gives up after RAFT_READ_TIMEOUT_S
            # without progress, as a pool thread's write would.
            conn.inline_rest = rest
            conn.inline_write_deadline = time.monotonic() + self.read_timeout_s
            self.poller.register(
                conn.sock, selectors.EVENT_WRITE,
                lambda _sock: self._inline_write_more(exchange),
            )  # fmt: skip
            self._at(conn.inline_write_deadline, lambda: self._write_due(exchange))
            return
        if not exchange.request.keep_alive or not self.alive:
            self.nr_conns -= 1
            conn.close()
            return
        self._keep_alive(conn)

    def _inline_write_more(self, exchange) -> None:
        conn = exchange.conn
        try:
            sent = conn.sock.send(conn.inline_rest, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.poller.unregister(conn.sock)
            return self._inline_close(exchange)
        conn.inline_rest = conn.inline_rest[sent:]
        if sent:
            conn.inline_write_deadline = time.monotonic() + self.read_timeout_s
        if not conn.inline_rest:
            self.poller.unregister(conn.sock)
            self._inline_written(exchange, b"")

    def _write_due(self, exchange) -> None:
        conn = exchange.conn
        if not conn.inline_rest:
            return  # written (or closed) meanwhile
        if time.monotonic() < conn.inline_write_deadline:
            self._at(conn.inline_write_deadline, lambda: self._write_due(exchange))
            return
        self.poller.unregister(conn.sock)
        self._inline_close(exchange)

    def _inline_close(self, exchange) -> None:
        exchange.conn.inline_rest = b""
        self.nr_conns -= 1
        exchange.conn.close()

    def _inline_declined(self, exchange) -> None:
        if self.inline_metrics is not None:
            self.inline_metrics.declined(exchange.request)
        exchange.conn.head += exchange.request.raw
        exchange.conn.data_ready = True
        try:
            self.enqueue_req(exchange.conn)
        except RuntimeError:  # the pool is shut down: the worker is stopping
            self._inline_close(exchange)

    def _inline_wait_s(self, timeout: float) -> float:
        """The main loop, about to wait up to ``timeout`` s: answer the
        requests past their deadline; how long to wait."""
        now = time.monotonic()
        loop_deadlines = self._loop_deadlines
        # Published before the look at the loop thread's deadlines
        # (raftsite/loop_deadlines.py), then brought forward.
        loop_deadlines.wake_at = wake_at = now + timeout
        first = self._inline_expire_due(now)
        if first is not None and first < wake_at:
            loop_deadlines.wake_at = wake_at = first
        return max(0.0, wake_at - time.monotonic())

    def _inline_expire_due(self, now: float) -> float | None:
        """Answer the requests past their deadline at ``now``; the next
        deadline (time.monotonic()), or None."""
        deadlines = self._inline_deadlines
        while deadlines and deadlines[0][0] <= now:
            heapq.heappop(deadlines)[2]()
        first = self._loop_deadlines.expire_due(now)
        if deadlines and (first is None or deadlines[0][0] < first):
            first = deadlines[0][0]
        return first


def _yield_if_idle(inbox) -> None:
    """On the loop thread, just after an answer went out: unless work is
    queued, let the process the answer woke run first."""
    # The answer wakes the thread that waits for it (the leader's loop
    # thread for an AppendEntries reply, the client for a command's
    # answer). A socket's wake-up tells the scheduler the writer will
    # sleep soon (a "sync" wake-up), so the woken thread tends to be
    # queued on the writer's core, behind the rest of this turn (a
    # follower's apply, the leader's bookkeeping): with the servers on
    # one machine, each hop of a command's path waited for that. At
    # one client the p50 fell by a tenth (two clusters side by side,
    # twelve interleaved runs each). Under load the loop thread bounds
    # throughput and keeps its core: its inbox has work.
    if not inbox.qsize():
        os.sched_yield()
