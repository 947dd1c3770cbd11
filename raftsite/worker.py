"""The node's gunicorn worker: gthread, but a request holds a pool thread only
once its head has arrived, and every socket operation has a timeout.

gunicorn's gthread worker hands a connection to its thread pool as soon as it
is accepted or readable, and the thread then reads the request head with a
blocking socket: a client that trickles its head a byte at a time holds a
thread for as long as it likes, a connection that sends nothing holds one for
5 s, and peer RPC queues behind them. Here a new connection, and one whose
head a thread found incomplete, waits in the main loop, which reads heads
without blocking and closes a connection whose head is not complete within
``RAFT_READ_TIMEOUT_S``; a kept-alive connection that became readable goes
to a thread at once (its head is usually all there), which reads it without
waiting. With TLS the head cannot be seen before the handshake, which runs
in the thread: there a new connection waits in the main loop for its first
byte, and every read and write is bounded by the timeout.
"""

import collections
import errno
import json
import selectors
import socket
import time
from functools import partial

from gunicorn import util
from gunicorn.http.errors import NoMoreData
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers import gthread

from .inline_worker import InlineServing

# The longest head gunicorn accepts (limit_request_line + limit_request_fields
# of limit_request_field_size) is about 800 KiB; past this many bytes the
# parser has all it needs to refuse the request, so the thread gets it.
HEAD_BYTES_CAP = 1024 * 1024
RECV_BYTES = 64 * 1024
# How long a finished request may take to drain a body the application did
# not read before its connection is kept alive; a client still sending it
# after that loses the connection instead of holding a thread (gunicorn: 5 s).
BODY_DRAIN_S = 0.1
# What a pool thread answers for a connection whose head is incomplete: the
# main loop waits for the rest.
AWAIT_HEAD = object()
# A response's head goes out with its body in one send when the body's
# first piece is at most this long (copying a longer one costs more).
COALESCE_BYTES = 64 * 1024
# What a closing connection reads of its unread request data so that the
# kernel sends FIN, not RST, after a response; never waited for.
CLOSE_DRAIN_BYTES = 64 * 1024


class _TimeoutSocket(socket.socket):
    """A socket that "blocks" with a timeout: gunicorn makes a connection's
    socket blocking, then wraps it for TLS (the wrapped socket copies the
    timeout) and runs the handshake in the thread."""

    def setblocking(self, flag):
        if flag:
            self.settimeout(self.read_timeout_s)
        else:
            super().setblocking(flag)


def _timeout_socket(sock, read_timeout_s):
    adopted = _TimeoutSocket(sock.family, sock.type, sock.proto, sock.detach())
    adopted.read_timeout_s = read_timeout_s
    return adopted


class _TimeoutUnreader(SocketUnreader):
    """A read that timed out is the end of the data, as a closed connection
    is: gunicorn drops the connection quietly instead of logging a traceback,
    and Django answers a body cut short with 400."""

    def __init__(self, unreader):
        super().__init__(unreader.sock, unreader.mxchunk)
        self.buf = unreader.buf

    def chunk(self, size_hint=None):
        try:
            return super().chunk(size_hint)
        except TimeoutError as exc:
            raise NoMoreData(b"") from exc


class _HeadHoldingSocket:
    """A connection's socket as one response writes to it: the response's
    first write (gunicorn sends the head on its own) is held until the next
    one, the body, so that a small response leaves in one send. Every send
    on a request thread lets go of the GIL and must win it back, which under
    load costs more than the send; and the peer reading the response wakes
    once instead of twice. Anything else is the socket's own."""

    def __init__(self, sock):
        self._sock = sock
        self._held = b""
        self._first = True

    def sendall(self, data):
        if self._first:
            self._first = False
            self._held = bytes(data)
            return
        held, self._held = self._held, b""
        if held and len(data) <= COALESCE_BYTES:
            self._sock.sendall(held + data)
            return
        if held:
            self._sock.sendall(held)
        self._sock.sendall(data)

    def sendfile(self, *args, **kwargs):
        self.release()
        return self._sock.sendfile(*args, **kwargs)

    def send(self, *args, **kwargs):
        self.release()
        return self._sock.send(*args, **kwargs)

    def release(self):
        """Send what is held (a response without a body has only a head)."""
        held, self._held = self._held, b""
        if held:
            self._sock.sendall(held)

    def __getattr__(self, name):
        return getattr(self._sock, name)


class RaftConn(gthread.TConn):
    """A connection that may carry bytes of its next request's head."""

    def __init__(self, cfg, sock, client, server, read_timeout_s):
        super().__init__(cfg, sock, client, server)
        self.read_timeout_s = read_timeout_s
        self.head = bytearray()
        # When the head being read must be complete (time.monotonic()).
        self.head_deadline = None
        # An inline request's (raftsite/inline_worker.py): when it came
        # (time.perf_counter()), and what of its answer is still to write.
        self.inline_started = 0.0
        self.inline_rest = b""
        self.inline_write_deadline = 0.0

    def init(self):
        # Called before every request in the pool thread; TConn.init makes the
        # socket blocking (with TLS, a _TimeoutSocket: the handshake is
        # bounded too). The timeout bounds every read (of a TLS head, of a
        # body) and every write of a response.
        try:
            super().init()
        except TimeoutError as exc:  # a TLS handshake too slow: drop it quietly
            raise NoMoreData(b"") from exc
        self.sock.settimeout(self.read_timeout_s)
        unreader = getattr(self.parser, "unreader", None)
        if type(unreader) is SocketUnreader:
            self.parser.unreader = _TimeoutUnreader(unreader)
        if self.head:
            self.parser.unreader.unread(bytes(self.head))
            self.head.clear()

    def head_complete(self):
        head = self.head
        return b"\r\n\r\n" in head or b"\n\n" in head or len(head) >= HEAD_BYTES_CAP

    def close(self, graceful=False):
        if not graceful:
            return super().close()
        # gunicorn's graceful close lingers up to 2 s on the main loop for the
        # client to close first; a client that never does would stall it.
        try:
            self.sock.shutdown(socket.SHUT_WR)
            drained = 0
            while drained < CLOSE_DRAIN_BYTES:
                data = self.sock.recv(RECV_BYTES, socket.MSG_DONTWAIT)
                if not data:
                    break
                drained += len(data)
        except (OSError, ValueError):  # ValueError: TLS takes no flags
            pass
        super().close()


# The contract's codes for what gunicorn's own parser refuses before Django
# sees the request (a request line or header fields over gunicorn's limits,
# a malformed head): anything else is bad_request.
_PARSER_CODES = {414: "too_large", 431: "too_large", 500: "internal_error",
                 501: "bad_request", 403: "forbidden", 417: "bad_request"}  # fmt: skip


def write_json_error(sock, status_int, reason, mesg):
    """gunicorn's util.write_error, answering in the API's error shape
    (CONTRACT.md) rather than an HTML page: a client of /api/ or /raft/ gets
    JSON for every error, those of the HTTP layer too."""
    body = json.dumps(
        {
            "error": _PARSER_CODES.get(status_int, "bad_request"),
            "detail": f"{reason}: {mesg}" if mesg else reason,
        },
        separators=(",", ":"),
    ).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


# gunicorn's worker (base.Worker.handle_error) writes its refusals through
# util.write_error; this process serves only this project.
util.write_error = write_json_error


class RaftThreadWorker(InlineServing, gthread.ThreadWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._inline_init()
        # Connections whose head is awaited in the main loop, oldest first:
        # each deadline is its start plus the same timeout, so this is also
        # deadline order.
        self.reading_conns = collections.OrderedDict()
        self.read_timeout_s = 10.0
        self._next_notify = 0.0

    def notify(self):
        # The arbiter compares the heartbeat file's time with its timeout
        # (30 s): touching it every turn of the main loop, that is on every
        # request, cost a syscall each time for nothing.
        now = time.monotonic()
        if now >= self._next_notify:
            self._next_notify = now + min(1.0, self.timeout / 4)
            super().notify()

    def load_wsgi(self):
        super().load_wsgi()
        from django.conf import settings

        self.read_timeout_s = settings.RAFT_READ_TIMEOUT_S
        if not self.cfg.is_ssl:
            # With TLS the main loop never sees a head (the handshake runs
            # in a pool thread): every request takes the ordinary path.
            from .inline_routes import inline_setup

            inline_setup(self)

    def accept(self, listener):
        try:
            client_sock, client_addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        if self.cfg.is_ssl:
            client_sock = _timeout_socket(client_sock, self.read_timeout_s)
        conn = RaftConn(
            self.cfg,
            client_sock,
            client_addr,
            listener.getsockname(),
            self.read_timeout_s,
        )
        # A new connection gets a thread once its head is here (with TLS,
        # once it has sent a first byte), never before.
        self._await_head(conn)

    def handle(self, conn):
        """Serve one request in a pool thread, if its head is complete.

        A kept-alive connection comes here once readable, so the head of
        its next request is usually all there: it is read without waiting,
        and a head still incomplete goes back to the main loop.
        """
        if not self.cfg.is_ssl:
            if conn.parser is not None:
                conn.head += conn.parser.unreader.take_buffered()
            if not conn.head_complete():
                if conn.sock.gettimeout() != 0.0:
                    conn.sock.setblocking(False)
                complete = _read_head(conn)
                if complete is None:
                    return False  # the client closed it
                if not complete:
                    return AWAIT_HEAD
            conn.data_ready = True
        return super().handle(conn)

    def handle_request(self, req, conn):
        sock = conn.sock
        conn.sock = holding = _HeadHoldingSocket(sock)
        try:
            keepalive = super().handle_request(req, conn)
        except BaseException:
            conn.sock = sock
            try:
                holding.release()
            except OSError:
                pass  # the connection failed or was closed: nothing to send to
            raise
        conn.sock = sock
        holding.release()
        return keepalive

    def finish_request(self, conn, fs):
        if not fs.cancelled() and fs.exception() is None:
            if fs.result() is AWAIT_HEAD:
                if self.alive:
                    self._await_head(conn)
                else:
                    self.nr_conns -= 1
                    conn.close()
                return
        super().finish_request(conn, fs)

    def _await_head(self, conn):
        if conn.sock.gettimeout() != 0.0:
            conn.sock.setblocking(False)
        if conn.head_deadline is None:
            conn.head_deadline = time.monotonic() + self.read_timeout_s
        self.reading_conns[conn] = None
        self.poller.register(
            conn.sock, selectors.EVENT_READ, partial(self._on_head_readable, conn)
        )

    def _on_head_readable(self, conn, client):
        if not self.cfg.is_ssl:
            complete = _read_head(conn)
            if complete is None:
                return self._drop(conn)
            if not complete or self._inline_body_pending(conn):
                return
        self.reading_conns.pop(conn, None)
        self.poller.unregister(conn.sock)
        conn.head_deadline = None
        if self.inline_routes and self._serve_inline(conn):
            return
        conn.data_ready = True
        self.enqueue_req(conn)

    def on_client_socket_readable(self, conn, client):
        if not self.inline_routes:
            return super().on_client_socket_readable(conn, client)
        # The main loop reads the next head itself, to serve it inline if
        # it can (raftsite/inline_worker.py); a pool thread would read it
        # next anyway.
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        complete = _read_head(conn)
        if complete is None:
            self.nr_conns -= 1
            conn.close()
        elif not complete or self._inline_body_pending(conn):
            self._await_head(conn)
        elif not self._serve_inline(conn):
            conn.data_ready = True
            self.enqueue_req(conn)

    def wait_for_and_dispatch_events(self, timeout):
        # Wake for the next inline request's deadline (gthread: every 1 s).
        super().wait_for_and_dispatch_events(self._inline_wait_s(timeout))

    def _drop(self, conn):
        self.reading_conns.pop(conn, None)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        while self.reading_conns:
            conn = next(iter(self.reading_conns))
            # A stopping worker does not wait for heads still on their way.
            if self.alive and conn.head_deadline > now:
                break
            if self.alive and conn.head_complete():
                # A body awaited for an inline route: a thread reads the
                # rest, and answers 400 if it does not come.
                self.reading_conns.pop(conn)
                self.poller.unregister(conn.sock)
                conn.head_deadline = None
                conn.data_ready = True
                self.enqueue_req(conn)
                continue
            self._drop(conn)

    def _keepalive_after(self, conn, keepalive):
        if not keepalive:
            return False
        drain_deadline = time.monotonic() + BODY_DRAIN_S
        return bool(conn.parser.finish_body(deadline=drain_deadline))


def _read_head(conn):
    """Read what has arrived on a non-blocking socket, without waiting.

    True once the head is complete, False if not yet, None if the client
    closed the connection (or it failed).
    """
    try:
        data = conn.sock.recv(RECV_BYTES)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return None
    if not data:
        return None
    conn.head += data
    return conn.head_complete()
