"""Keep-alive HTTP connections to a peer, for peer RPC and snapshot streams.

One place opens and closes them, so both senders treat a peer the same way,
over HTTPS when the node has TLS (consensus/tls.py).
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl

logger = logging.getLogger(__name__)


def open_connection(
    peer: str,
    timeout: tuple[float, float],
    ssl_context: ssl.SSLContext | None = None,
) -> http.client.HTTPConnection:
    """A connected HTTPConnection to ``peer`` (``host:port``), with
    ``timeout`` = (connect, read) seconds; an HTTPSConnection with
    ``ssl_context``, which checks the peer's certificate and that it names
    ``host`` (the handshake is part of the connect)."""
    host, _, port = peer.rpartition(":")
    connect_timeout, read_timeout = timeout
    if ssl_context is None:
        connection = http.client.HTTPConnection(
            host.strip("[]"), int(port), timeout=connect_timeout
        )
    else:
        connection = http.client.HTTPSConnection(
            host.strip("[]"), int(port), timeout=connect_timeout, context=ssl_context
        )
    connection.connect()
    # Nagle's algorithm would hold each small request for the previous
    # one's ACK (about 40 ms on keep-alive connections).
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connection.sock.settimeout(read_timeout)
    return connection


def close_quietly(connection: http.client.HTTPConnection, peer: str) -> None:
    """Close ``connection``; closing a broken socket may fail, and the next
    send connects afresh either way."""
    try:
        connection.close()
    except OSError:
        logger.debug("closing the connection to %s failed", peer)
