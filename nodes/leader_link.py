"""The HTTP client a follower sends client writes on to the leader with
(nodes/forwarding.py): per request thread, one kept-alive connection to the
leader, spoken as the sender threads speak to peers (consensus/peer_http.py:
a request in one send, a response read by its Content-Length).

requests took about a millisecond of CPU per forwarded write on a busy
two-core machine (0.65 ms before its first byte left, 0.43 ms to read the
answer), on every command a client sent to a follower.

The one distinction a caller needs is kept: ServerUnreachable when nothing
reached the leader (no connection, a failed TLS handshake), ConnectionLost
when the request may have acted but no usable answer came.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from consensus.peer_connection import close_quietly, open_connection
from consensus.peer_http import PeerClosed, PeerExchange, PeerProtocolError

from .client import Answer, ConnectionLost, ServerUnreachable, ssl_reason

LOST = "the connection was lost before an answer came"
# A kept connection idle this long is not used again. The leader's worker
# closes one idle for its keep-alive timeout (raftsite/gunicorn_conf.py,
# 75 s); a request sent just as it closes may or may not have reached it,
# which the client hears as a 504, where a new connection costs a
# handshake.
IDLE_REUSE_S = 60.0


@dataclass(slots=True)
class _Held:
    """A thread's kept connection to one leader, and when it last answered."""

    connection: object
    exchange: PeerExchange
    used: float


class LeaderLink:
    """Requests to a leader, one at a time per thread, each on the
    thread's kept-alive connection to that leader (opened on first use,
    and again when the leader has closed it)."""

    def __init__(
        self,
        connect_timeout_s: float,
        ssl_context: ssl.SSLContext | None = None,
        clock=time.monotonic,
    ):
        self.connect_timeout_s = connect_timeout_s
        self.ssl_context = ssl_context
        self._clock = clock
        self._local = threading.local()

    def request(
        self,
        leader: str,
        method: str,
        path: str,
        body: bytes,
        headers: dict[str, str],
        read_timeout_s: float,
        max_bytes: int,
    ) -> tuple[Answer | None, bytes]:
        """(Answer without its body, the body's bytes) of ``method path``
        on ``leader``; ServerUnreachable or ConnectionLost."""
        held = self._connection(leader)
        connection, exchange = held.connection, held.exchange
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        try:
            connection.sock.settimeout(read_timeout_s)
            connection.sock.sendall(
                exchange.request(path, body, method, extra.encode("latin-1"))
            )
            status, data = exchange.receive(max_bytes)
        except TimeoutError:
            self._drop(leader)
            raise ConnectionLost("no answer in time", timed_out=True) from None
        except PeerProtocolError as exc:
            self._drop(leader)
            if isinstance(exc, PeerClosed):
                raise ConnectionLost(LOST, timed_out=False) from None
            raise ConnectionLost(
                f"an unusable answer: {exc}", timed_out=False
            ) from None
        except OSError:
            self._drop(leader)
            raise ConnectionLost(LOST, timed_out=False) from None
        if exchange.will_close:
            self._drop(leader)
        else:
            held.used = self._clock()
        return Answer(status, None, exchange.retry_after), data

    def _connection(self, leader: str) -> _Held:
        kept = getattr(self._local, "kept", None)
        if kept is None:
            kept = self._local.kept = {}
        held = kept.get(leader)
        if held is not None and (
            self._clock() - held.used >= IDLE_REUSE_S or _dropped(held.connection.sock)
        ):
            # Idle long enough for the leader to be closing it, or closed
            # already: nothing was sent on it, so a new one is as good.
            self._drop(leader)
            held = None
        if held is None:
            connection = self._open(leader)
            exchange = PeerExchange(connection.sock, leader, {})
            held = kept[leader] = _Held(connection, exchange, self._clock())
        return held

    def _open(self, leader: str):
        timeouts = (self.connect_timeout_s, self.connect_timeout_s)
        try:
            return open_connection(leader, timeouts, self.ssl_context)
        except ssl.SSLError as exc:
            raise ServerUnreachable(ssl_reason(exc)) from None
        except TimeoutError:
            raise ServerUnreachable("connection timed out") from None
        except ConnectionRefusedError:
            raise ServerUnreachable("connection refused") from None
        except socket.gaierror:
            raise ServerUnreachable("cannot resolve the host name") from None
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None)
            raise ServerUnreachable(
                reason.lower() if reason else "cannot connect"
            ) from None

    def _drop(self, leader: str) -> None:
        held = getattr(self._local, "kept", {}).pop(leader, None)
        if held is not None:
            close_quietly(held.connection, leader)


def _dropped(sock) -> bool:
    """Whether an idle kept-alive socket has been closed by the other end
    (it reads as readable: EOF, or bytes nobody asked for)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
