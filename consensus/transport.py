"""Sends messages to peers over HTTP, one thread per peer.

Each peer has its own thread, queue and keep-alive connection, so a dead or
slow peer stalls only its own queue, never the loop or the other peers. The
queue keeps the newest message of each kind, votes before AppendEntries.

To an idle peer the loop thread writes a request itself, without waiting:
handing the sender thread the write cost 0.1-0.9 ms a command, waiting for
the GIL the loop held while it saved its Ready. Over plain HTTP the loop
thread also reads the answer, when its inbox (consensus/inbox.py) sees the
socket readable; over TLS, and for what the socket did not take at once,
the sender thread does.

Peer RPC opens its connections with the standard library's http.client
(TLS included, consensus/peer_connection.py) and speaks HTTP on the socket
with consensus/peer_http.py: requests cost about 0.67 ms of CPU per call,
http.client 0.15 ms, peer_http a fifth of that, and a command waits for
one such call. Client commands and forwarding still use requests.
"""

from __future__ import annotations

import http.client
import logging
import select
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from . import metrics
from .core.messages import (
    AppendEntries,
    AppendEntriesReply,
    Message,
    RequestVote,
    RequestVoteReply,
    TimeoutNow,
    Unreachable,
)
from .inbox import Inbox
from .peer_connection import close_quietly, open_connection
from .peer_http import PeerExchange
from .serializers import message_from_dict, message_to_dict
from .validation import MAX_PEER_REPLY_BYTES

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Raft-Secret"


def header_key(name: str) -> str:
    """The WSGI environ key of HTTP header ``name``. Views on the hot paths
    read headers there: ``request.headers`` builds a mapping of every
    header on first use, for one look-up."""
    return "HTTP_" + name.upper().replace("-", "_")


SECRET_KEY = header_key(SECRET_HEADER)

# How often a sender waiting for an answer checks for an urgent message.
POLL_MS = 20

# The loop thread encodes and writes a request itself only up to about this
# size: encoding costs about 2 us an entry, and under load (batches of tens
# of entries, for two or more peers) the loop's time bounds throughput,
# while a sender thread encodes during the loop's save. A command's
# AppendEntries (an entry or a few) and heartbeats are far below it.
DIRECT_MAX_BYTES = 4 * 1024
# An entry's JSON besides its command, about (index, term, session, time).
ENTRY_JSON_BYTES = 160

# Request class -> (endpoint under /raft/, reply class or None).
ROUTES: dict[type[Message], tuple[str, type[Message] | None]] = {
    AppendEntries: ("append_entries", AppendEntriesReply),
    RequestVote: ("request_vote", RequestVoteReply),
    TimeoutNow: ("timeout_now", None),
}


@dataclass(slots=True)
class _Written:
    """A request the loop thread wrote on the connection itself."""

    message: Message
    # What the sender thread writes before anything else, so the request
    # reaches the peer whole: what the socket did not take at once (over
    # TLS, all of it: the SSL layer goes on only when given it again).
    rest: bytes
    start: float  # time.perf_counter() at the write, for PEER_RPC_SECONDS


def _encode(message: Message) -> bytes:
    # orjson: every AppendEntries of every command, and its reply below, in
    # a tenth of the json module's time (README, Dependencies).
    return orjson.dumps(message_to_dict(message))


def _fits_directly(message: Message) -> bool:
    if isinstance(message, AppendEntries):
        size = sum(len(entry.command) + ENTRY_JSON_BYTES for entry in message.entries)
        return size <= DIRECT_MAX_BYTES
    return True


class PeerSender:
    """One peer's sender thread, its pending messages and its connection.

    At most one message of each kind waits (newest wins), so memory per
    peer is bounded by about two AppendEntries (one waiting, one on the
    wire), and RequestVote or TimeoutNow go before a waiting AppendEntries.
    """

    def __init__(
        self,
        node_id: str,
        peer: str,
        deliver: Callable[[Message], None],
        secret: str,
        timeout: tuple[float, float],
        ssl_context: ssl.SSLContext | None = None,
        watcher: Inbox | None = None,
    ):
        self.node_id = node_id
        self.peer = peer
        self._ssl_context = ssl_context
        # The loop thread's inbox, which reads the answers to what the loop
        # wrote (None: the sender thread reads every answer).
        self._watcher = watcher if ssl_context is None else None
        self._deliver = deliver
        self._timeout = timeout
        self._ready = threading.Condition()
        # Message class -> the newest not yet taken, in arrival order.
        # invariant: at most one message per class
        self._pending: dict[type[Message], Message] = {}
        # A request the loop thread wrote, whose answer the sender thread
        # has yet to read; taken before anything pending.
        self._written: _Written | None = None
        # A request the loop thread wrote and reads the answer to itself
        # (_on_readable); the sender thread leaves the connection alone.
        self._awaited: _Written | None = None
        self._awaited_sock = None
        # Whether the sender thread waits for work with nothing pending,
        # nothing written and the connection unused: only then may the loop
        # thread write on the connection (one request on the wire at most).
        self._idle = False
        self._closed = False
        # (message class, exception class) already logged with a traceback,
        # and ("tls", reason) for the TLS failures already logged.
        self._logged: set[tuple] = set()
        self._headers = {"Content-Type": "application/json"}
        if secret:
            self._headers[SECRET_HEADER] = secret
        self._rpc_seconds = metrics.PEER_RPC_SECONDS.labels(peer)
        self._rpc_errors = metrics.PEER_RPC_ERRORS.labels(peer)
        # The connection (opened by peer_connection, TLS included) and the
        # exchange that speaks HTTP on its socket (peer_http).
        self._connection: http.client.HTTPConnection | None = None
        self._exchange: PeerExchange | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"raft-send-{peer}", daemon=True
        )
        self._thread.start()

    def send(self, message: Message) -> None:
        with self._ready:
            if self._awaited is not None and not isinstance(message, AppendEntries):
                # A vote or a transfer does not wait for the answer to an
                # AppendEntries (as _await_response): that one is given up.
                self._give_up_awaited()
            if self._idle and self._exchange is not None and _fits_directly(message):
                written = self._write_directly(message)
                if written is not None:
                    self._idle = False
                    if not written.rest and self._watcher is not None:
                        self._await_here(written)
                    else:
                        self._written = written
                        self._ready.notify()
                    return
            # A newer AppendEntries replaces a waiting one without an
            # Unreachable for it: the core makes a new one only once it no
            # longer counts the old one as in flight (a reply, an
            # Unreachable, or its resend timeout), so the newer one is the
            # request it now waits on. Built from the current next_index and
            # commit_index, it carries whatever the peer still lacks. An
            # Unreachable for the dropped one would mark the newer one as
            # not in flight, and the core would make yet another.
            # RequestVote and TimeoutNow are superseded the same way: only
            # the newest campaign or transfer counts, and the core ignores
            # Unreachable for them.
            self._pending.pop(type(message), None)
            self._pending[type(message)] = message
            self._idle = False
            self._ready.notify()

    def _write_directly(self, message: Message) -> _Written | None:
        """Write ``message``'s request on the idle connection without
        waiting (loop thread, lock held); None to leave it to the sender
        thread, whose send reports any failure as it always has."""
        try:
            endpoint, _ = ROUTES[type(message)]
            request = self._exchange.request(f"/raft/{endpoint}", _encode(message))
        except Exception as exc:
            logger.debug("not writing to %s directly: %r", self.peer, exc)
            return None
        start = time.perf_counter()
        try:
            rest = self._exchange.send_nowait(request)
        except OSError as exc:
            # The peer reset or closed the kept-alive connection: the
            # sender thread sends on a new one.
            logger.debug("connection to %s broken: %r", self.peer, exc)
            self._disconnect()
            return None
        return _Written(message, rest, start)

    def close(self) -> None:
        """Send what is waiting, then end the thread."""
        with self._ready:
            self._closed = True
            self._idle = False
            if self._awaited is not None:
                # The loop thread's (or, stopped, nobody's): given up.
                self._watcher.unwatch(self._awaited_sock)
                self._awaited = None
                self._disconnect()
            self._ready.notify()

    # --- answers the loop thread reads (loop thread only) -----------------

    def _await_here(self, written: _Written) -> None:
        self._awaited = written
        self._awaited_sock = self._exchange.sock
        deadline = time.monotonic() + self._timeout[1]
        self._watcher.watch(
            self._awaited_sock, self._on_readable, deadline, self._on_timeout
        )

    def _on_readable(self) -> None:
        written = self._awaited
        try:
            response = self._exchange.receive_nowait(MAX_PEER_REPLY_BYTES)
        except Exception as exc:
            response, failure = None, exc
        else:
            if response is None:
                return  # the rest is on its way
            failure = None
        # Unwatched before anything closes the socket: its number, once
        # free, may be another file's.
        self._watcher.unwatch(self._awaited_sock)
        if failure is None:
            try:
                reply = self._reply_to(written.message, written.start, *response)
            except Exception as exc:
                reply = self._failed(exc)
        else:
            reply = self._failed(failure)
        self._hand_back()
        self._deliver_safely(reply)

    def _on_timeout(self) -> None:
        # The inbox has unwatched the socket already.
        reply = self._failed(TimeoutError("no answer within the read timeout"))
        self._hand_back()
        self._deliver_safely(reply)

    def _give_up_awaited(self) -> None:
        # With the lock held (from send).
        self._watcher.unwatch(self._awaited_sock)
        reply = self._failed(TimeoutError("given up for a RequestVote or TimeoutNow"))
        self._awaited = None
        self._deliver_safely(reply)

    def _hand_back(self) -> None:
        """The connection (unwatched) is the sender's again, or, with
        nothing for it to send, free for the loop thread's next write."""
        with self._ready:
            self._awaited = None
            if self._pending or self._closed:
                self._ready.notify()
            else:
                self._idle = True

    def _deliver_safely(self, reply: Message | None) -> None:
        if reply is None:
            return
        try:
            self._deliver(reply)
        except Exception as exc:
            self._log_failure(type(reply), exc)

    def queued(self) -> int:
        """How many messages wait to be sent."""
        with self._ready:
            return len(self._pending)

    def _take(self) -> tuple[Message, _Written | None] | None:
        # RequestVote and TimeoutNow never wait behind an AppendEntries:
        # a vote delayed by stale entries can cost an election, and the
        # waiting AppendEntries loses nothing by going second. A written
        # request is on the wire: its answer comes first, or it is given
        # up for them (_await_response).
        with self._ready:
            while True:
                if self._awaited is None:
                    if self._written is not None or self._pending:
                        break
                    if self._closed:
                        return None
                    self._idle = True
                self._ready.wait()
            self._idle = False
            if self._written is not None:
                written, self._written = self._written, None
                return written.message, written
            kind = next(
                (k for k in self._pending if k is not AppendEntries), AppendEntries
            )
            return self._pending.pop(kind), None

    def _run(self) -> None:
        while (taken := self._take()) is not None:
            message, written = taken
            try:
                reply = self._call(message, written)
                if reply is not None:
                    self._deliver(reply)
            except Exception as exc:
                # A bug here (no route, a message that does not encode, a
                # failing deliver) must not end the thread: later messages
                # would wait forever. The core hears Unreachable, so an
                # AppendEntries is resent at the next heartbeat.
                self._log_failure(type(message), exc)
                self._disconnect()
                self._report_unreachable()
        self._disconnect()

    def _log_failure(self, kind: type[Message], exc: Exception) -> None:
        # Once with a traceback per kind of failure: a broken message type
        # fails at every heartbeat and would flood the log.
        signature = (kind, type(exc))
        if signature in self._logged:
            logger.debug("send to %s failed again: %r", self.peer, exc)
            return
        self._logged.add(signature)
        logger.exception(
            "sending %s to %s failed; reporting it unreachable",
            kind.__name__,
            self.peer,
        )

    def _report_unreachable(self) -> None:
        try:
            self._deliver(self._unreachable())
        except Exception as exc:
            self._log_failure(Unreachable, exc)

    def _urgent_waiting(self) -> bool:
        with self._ready:
            return any(kind is not AppendEntries for kind in self._pending)

    def _await_response(self, sock) -> None:
        """Wait until the peer starts to answer, for at most the read
        timeout; TimeoutError on giving up.

        A RequestVote or TimeoutNow waiting makes the sender give up at once
        and send it on a new connection: it should not wait for a peer that
        does not answer an AppendEntries, nor for one busy with a large one.
        One connection per peer still suffices, as votes are rare while an
        AppendEntries is on the wire; the one given up is reported
        Unreachable like any other.
        """
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        deadline = time.monotonic() + self._timeout[1]
        # A first look without waiting: the loop thread may have sent one
        # just after it wrote this request.
        wait_ms = 0
        while not poller.poll(wait_ms):
            if self._urgent_waiting():
                raise TimeoutError("given up for a RequestVote or TimeoutNow")
            if time.monotonic() >= deadline:
                raise TimeoutError("no answer within the read timeout")
            wait_ms = POLL_MS

    def _unreachable(self) -> Unreachable:
        return Unreachable(term=0, source=self.peer, dest=self.node_id)

    def _call(self, message: Message, written: _Written | None) -> Message | None:
        endpoint, _ = ROUTES[type(message)]
        if written is None:
            body = _encode(message)
            start = time.perf_counter()
        else:
            start = written.start
        try:
            if written is None:
                exchange = self._connect()
                exchange.send(f"/raft/{endpoint}", body)
            else:
                # The loop thread wrote on this connection while the sender
                # was idle; nothing has touched it since.
                exchange = self._exchange
                if written.rest:
                    exchange.sock.sendall(written.rest)
            self._await_response(exchange.sock)
            status, data = exchange.receive(MAX_PEER_REPLY_BYTES)
            return self._reply_to(message, start, status, data)
        except Exception as exc:  # any failure means "not delivered"
            return self._failed(exc)

    def _reply_to(
        self, message: Message, start: float, status: int, data: bytes
    ) -> Message | None:
        if self._exchange is not None and self._exchange.will_close:
            self._disconnect()  # reconnect through _connect next time
        if status != 200:
            raise ValueError(f"HTTP {status}")
        _, reply_class = ROUTES[type(message)]
        if reply_class is None:
            return None
        reply = message_from_dict(reply_class, orjson.loads(data))
        if (reply.source, reply.dest) != (self.peer, self.node_id):
            raise ValueError(f"a reply from {reply.source} to {reply.dest}")
        self._rpc_seconds.observe(time.perf_counter() - start)
        return reply

    def _failed(self, exc: Exception) -> Unreachable:
        self._rpc_errors.inc()
        logger.debug("send to %s failed: %s", self.peer, exc)
        if isinstance(exc, ssl.SSLError) and not isinstance(
            exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)
        ):
            # Refused, not cut short (a peer going down cuts handshakes).
            self._log_tls_failure(exc)
        # A half-read or refused connection cannot be reused.
        self._disconnect()
        # The core keeps one AppendEntries in flight per peer; telling it
        # the send failed lets the next heartbeat try again.
        return self._unreachable()

    def _log_tls_failure(self, exc: ssl.SSLError) -> None:
        # Once per reason: a peer whose certificate does not verify fails at
        # every heartbeat, and the operator must hear of it once.
        if isinstance(exc, ssl.SSLCertVerificationError):
            reason = f"certificate verify failed: {exc.verify_message}"
        else:
            reason = (exc.reason or str(exc)).lower().replace("_", " ")
        if ("tls", reason) in self._logged:
            return
        self._logged.add(("tls", reason))
        logger.warning(
            "TLS with %s failed (%s): is its certificate from the cluster's CA, "
            "for this address, and does it accept ours?",
            self.peer,
            reason,
        )

    def _connect(self) -> PeerExchange:
        if self._connection is None:
            self._connection = open_connection(
                self.peer, self._timeout, self._ssl_context
            )
            self._exchange = PeerExchange(
                self._connection.sock, self.peer, self._headers
            )
        return self._exchange

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        self._exchange = None
        if connection is not None:
            close_quietly(connection, self.peer)


class Transport:
    def __init__(
        self,
        node_id: str,
        deliver: Callable[[Message], None],
        secret: str = "",
        timeout: tuple[float, float] = (0.25, 0.5),
        ssl_context: ssl.SSLContext | None = None,
        watcher: Inbox | None = None,
    ):
        """``watcher``: the loop thread's inbox, to read the answers to
        what the loop thread writes (None: the sender threads read all)."""
        self.node_id = node_id
        self._deliver = deliver
        self._watcher = watcher
        self._secret = secret
        self._timeout = timeout
        # With TLS: HTTPS, verifying each peer's certificate (consensus/tls.py).
        self._ssl_context = ssl_context
        self._senders: dict[str, PeerSender] = {}

    def send(self, message: Message) -> None:
        sender = self._senders.get(message.dest)
        if sender is None:
            sender = PeerSender(
                self.node_id,
                message.dest,
                self._deliver,
                self._secret,
                self._timeout,
                self._ssl_context,
                self._watcher,
            )
            self._senders[message.dest] = sender
        sender.send(message)

    def retain(self, peers) -> None:
        """Close the senders of every peer not in ``peers`` (loop thread)."""
        for peer in [p for p in self._senders if p not in peers]:
            self._senders.pop(peer).close()

    def close(self) -> None:
        for sender in self._senders.values():
            sender.close()
        self._senders.clear()
