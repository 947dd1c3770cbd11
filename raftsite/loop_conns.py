"""Connections served by this node's loop thread: a leader's AppendEntries
on a follower, and one client's commands on the leader.

A main loop read each such request, parsed it and put it on the runtime's
inbox, woke the loop thread, and, once the reply was written, took the
connection back: for every command, on the follower and on the leader, a
main loop woke, parsed and handed over on the command's critical path, then
fought the loop thread for the GIL while that thread saved, applied and
answered. Once the loop thread has answered such a request inline, it keeps
the connection instead: its inbox (consensus/inbox.py) watches the socket,
and the loop thread reads and checks the next request itself, hands it to
the same inline handler (consensus/inline_peers.py, nodes/inline_commands.py)
and writes its reply. The main loop keeps their deadlines
(raftsite/loop_deadlines.py).

Anything else on such a connection (another route, a request the inline
handler declines, a client's credentials, a closed or idle connection) goes
back to the main loop, which serves it as any kept-alive connection's. The
loop thread never closes a connection or counts it: that stays the main
loop's (gunicorn's nr_conns).
"""

from __future__ import annotations

import time
from functools import partial

from .client_limit import PEER_PREFIX
from .inline_http import MAX_HEAD_BYTES, MAX_INLINE_BODY, body_pending, parse

RECV_BYTES = 64 * 1024
# The loop thread serves an AppendEntries of up to about this size (a
# command's, a heartbeat), and a client's command: a larger one, a batch
# under load, goes to the main loop, which decodes it while the loop thread
# applies the last one.
# Decoding on the loop thread serialised the two: at 64 clients, without a
# bound it cost a third of the throughput, with 4 KiB a tenth; with 1 KiB
# nothing measurable.
LOOP_MAX_BODY = 1024
# At most this many client connections (not /raft/) are watched by the
# loop thread at once; peers' are not counted. At many clients, parsing
# every client's request on the loop thread would serialise it with the
# apply, as 4 KiB AppendEntries did (a tenth of the throughput at 64
# clients): one connection is the one-client case this is for. A
# connection whose request is being served is no longer watched: its place
# may go meanwhile to another client whose answer the loop thread writes.
LOOP_MAX_CLIENTS = 1
# A client quiet for this long gives its place up to the next one, and its
# connection back to the main loop's keep-alive.
LOOP_CLIENT_IDLE_S = 1.0


class LoopConnections:
    """The worker's side (a mixin of InlineServing's worker). Its methods
    run on the loop thread unless said otherwise."""

    # The connections the loop thread watches, and those of them that are
    # clients' (loop thread only).
    _loop_conns: set
    _loop_clients: set

    # The runtime's inbox when its loop thread may keep connections.
    def _loop_inbox(self):
        from consensus.runtime import current_runtime

        runtime = current_runtime()
        return runtime.inbox if runtime is not None else None

    def _keep_on_loop(self, inbox, exchange, status: int) -> bool:
        """After the loop thread (whose ``inbox`` it is) wrote ``exchange``'s
        answer in full: keep the connection on the loop thread if its route
        is loop_kept (and, for a client's, a place is free); False leaves it
        to the usual keep-alive."""
        request = exchange.request
        if not (status == 200 and request.keep_alive and _loop_servable(request)):
            return False
        client = not request.path.startswith(PEER_PREFIX)
        if client and len(self._loop_clients) >= LOOP_MAX_CLIENTS:
            return False
        conn = exchange.conn
        if conn.sock.gettimeout() != 0.0:
            conn.sock.setblocking(False)
        # Under the lock: a worker that starts to stop (_cap_keepalive) then
        # finds the connection among those to give back, or none is kept.
        with self._keepalive_lock:
            if not (self._keepalive_open and self.alive):
                return False
            self._loop_conns.add(conn)
            if client:
                self._loop_clients.add(conn)
            idle_s = LOOP_CLIENT_IDLE_S if client else self._loop_idle_s()
            inbox.watch(
                conn.sock,
                partial(self._loop_readable, inbox, conn),
                time.monotonic() + idle_s,
                partial(self._loop_give_back, inbox, conn, closed=False),
            )
        return True

    def _loop_expiring(self, exchange) -> None:
        # The loop thread, for a request it read (InlineExchange.expire_at).
        if self._loop_deadlines.add(exchange.deadline, exchange):
            # The main loop's wait ends after this deadline: it must look.
            self.method_queue.defer(_look_again)

    def _give_back_loop_conns(self) -> None:
        """The main loop, as the worker starts to stop: the loop thread
        hands back the connections it keeps, to be closed."""
        if not self._loop_conns:
            return  # none kept (or no Raft runtime in this worker)
        from consensus.runtime import current_runtime

        runtime = current_runtime()
        if runtime is not None:
            runtime.call_in_loop(self._give_back_all)

    def _give_back_all(self) -> None:
        inbox = self._loop_inbox()
        for conn in list(self._loop_conns):
            self._loop_give_back(inbox, conn, closed=False)

    def _loop_idle_s(self) -> float:
        # A live leader sends a heartbeat every few ticks; an idle
        # connection goes back to the main loop, whose keep-alive timeout
        # then closes it.
        return max(float(self.cfg.keepalive), 1.0)

    def _loop_readable(self, inbox, conn) -> None:
        # On the loop thread, from the inbox: must not raise.
        try:
            self._loop_read(inbox, conn)
        except Exception:
            self.log.exception("serving a connection on the loop failed")
            self._loop_give_back(inbox, conn, closed=True)

    def _loop_read(self, inbox, conn) -> None:
        try:
            data = conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            return self._loop_give_back(inbox, conn, closed=True)
        conn.head += data
        routes = self.inline_routes
        # Nearly always the whole request came in one read (the leader
        # writes it in one send): parsed once, and only a request that is
        # not there yet pays for the look at what is missing.
        request = parse(conn.head, routes)
        if request is None and (
            not conn.head_complete() or body_pending(conn.head, routes)
        ):
            if len(conn.head) > MAX_HEAD_BYTES + MAX_INLINE_BODY:
                self._loop_give_back(inbox, conn, closed=False)
            return
        if request is None or not _loop_servable(request):
            return self._loop_give_back(inbox, conn, closed=False)
        inbox.unwatch(conn.sock)
        self._loop_conns.discard(conn)
        self._loop_clients.discard(conn)
        if not self._hand_to_route(conn, request, on_loop=True):
            self._loop_give_back(inbox, conn, closed=False)

    def _loop_give_back(self, inbox, conn, closed: bool) -> None:
        inbox.unwatch(conn.sock)
        self._loop_conns.discard(conn)
        self._loop_clients.discard(conn)
        self.method_queue.defer(self._loop_returned, conn, closed)

    def _loop_returned(self, conn, closed: bool) -> None:
        # The main loop: as on_client_socket_readable, with what the loop
        # thread read already in conn.head.
        if closed or not self.alive:
            self.nr_conns -= 1
            conn.close()
        elif not conn.head:
            self._keep_alive(conn)
        elif not conn.head_complete() or self._inline_body_pending(conn):
            self._await_head(conn)
        elif not self._serve_inline(conn):
            conn.data_ready = True
            self.enqueue_req(conn)


def _loop_servable(request) -> bool:
    """Whether the loop thread may read ``request``, and the like of it
    that usually follows on its connection, itself."""
    if not request.route.loop_kept or len(request.body) > LOOP_MAX_BODY:
        return False
    # A client's token is looked up through the ORM (consensus/access.py
    # authenticate), a cookie is Django's session: no query may run on the
    # loop thread. Such a request goes back to the main loop, and its
    # connection is not kept, since the next request would carry the same.
    headers = request.headers
    return request.path.startswith(PEER_PREFIX) or not (
        "authorization" in headers or "cookie" in headers
    )


def _look_again() -> None:
    # Run on the main loop, which then looks at the deadlines before it
    # waits again.
    pass
