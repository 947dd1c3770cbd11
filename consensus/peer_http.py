"""One HTTP/1.1 request and its response on a peer's kept-alive socket.

The sender threads talk to one kind of server, another node's gunicorn, with
small JSON requests and replies of a known length. http.client parses every
response's headers through the email package and builds an HTTPResponse
around a buffered file: about 80 us of CPU per call against 20 us here, paid
on the leader for every AppendEntries and on a command's critical path. This
reads the status line, the headers it needs (Content-Length, Connection,
Transfer-Encoding) and the body, with bounds on each, and nothing else.

Anything it does not expect (no Content-Length, a head over the bound, a
connection closed early) raises PeerProtocolError: the sender then drops the
connection and reports the peer unreachable, as for any failed send.
"""

from __future__ import annotations

import socket
import ssl

# A gunicorn response head is about 350 bytes; anything near this is not one.
MAX_HEAD_BYTES = 16 * 1024
RECV_BYTES = 64 * 1024


class PeerProtocolError(ValueError):
    """The peer's answer is not the HTTP/1.1 response expected."""


class PeerClosed(PeerProtocolError):
    """The peer closed the connection before its answer was complete."""


class PeerExchange:
    """Requests and responses, one at a time, over ``sock`` (connected,
    with its read timeout set: a recv that times out raises TimeoutError)."""

    def __init__(self, sock: socket.socket, host: str, headers: dict[str, str]):
        self.sock = sock
        # Every request's head but its path and length: built once.
        self._fixed = (
            f"Host: {host}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        ).encode("latin-1")
        self._buffer = bytearray()
        # Set once a response said it closes the connection.
        self.will_close = False
        # The last response's Retry-After, if it had one.
        self.retry_after: str | None = None

    def request(
        self, path: str, body: bytes, method: str = "POST", headers: bytes = b""
    ) -> bytes:
        """One request's bytes, head and body: written in one send, a small
        request goes in one segment (the socket has TCP_NODELAY), so the
        peer reads head and body at once. ``headers``: more header lines,
        each ending in CRLF."""
        head = b"%s %s HTTP/1.1\r\n%s%sContent-Length: %d\r\n\r\n" % (
            method.encode("ascii"),
            path.encode("ascii"),
            self._fixed,
            headers,
            len(body),
        )
        return head + body

    def send(self, path: str, body: bytes) -> None:
        self.sock.sendall(self.request(path, body))

    def send_nowait(self, data: bytes) -> bytes:
        """Write what of ``data`` the socket takes without waiting; return
        the rest, which must be written before anything else. OSError:
        the connection is broken and must be dropped."""
        sock = self.sock
        timeout = sock.gettimeout()
        # With a timeout, socket.send waits for room (MSG_DONTWAIT too).
        sock.settimeout(0)
        try:
            sent = sock.send(data)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            # Nothing went out; or, over TLS, some records did, and the SSL
            # layer sends the rest only when given the same bytes again.
            return data
        finally:
            sock.settimeout(timeout)
        return data[sent:]

    def receive(self, max_body: int) -> tuple[int, bytes]:
        """(status, body) of the next response; a body over ``max_body``
        bytes raises PeerProtocolError without reading it all."""
        while (response := self._take(max_body)) is None:
            self._fill()
        return response

    def receive_nowait(self, max_body: int) -> tuple[int, bytes] | None:
        """receive(), from what has arrived (a plain socket: a TLS one may
        hold a record without a byte to read yet); None until it is all
        there."""
        sock = self.sock
        timeout = sock.gettimeout()
        # With a timeout, recv waits for data; with none, it takes what is
        # there. A non-blocking plain socket costs no syscall to switch.
        sock.settimeout(0)
        try:
            self._fill()
        except BlockingIOError:
            pass
        finally:
            sock.settimeout(timeout)
        return self._take(max_body)

    def _take(self, max_body: int) -> tuple[int, bytes] | None:
        """The response in the buffer, removed from it; None if it has
        not all arrived."""
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise PeerProtocolError("a response head over the bound")
            return None
        lines = bytes(buffer[:end]).split(b"\r\n")
        status_line = lines[0].split(b" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
            raise PeerProtocolError(f"not an HTTP/1.x status line: {lines[0]!r}")
        try:
            status = int(status_line[1])
        except ValueError:
            raise PeerProtocolError(
                f"a status that is no number: {lines[0]!r}"
            ) from None
        length = None
        retry_after = None
        close = status_line[0] == b"HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                value = value.strip()
                if not value.isdigit():
                    raise PeerProtocolError(f"Content-Length {value!r}")
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
            elif name == b"transfer-encoding":
                raise PeerProtocolError("a response body not of a known length")
            elif name == b"retry-after":
                retry_after = value.strip().decode("latin-1")
        if length is None:
            raise PeerProtocolError("a response without Content-Length")
        if length > max_body:
            raise PeerProtocolError(f"a reply of over {max_body} bytes")
        start = end + 4
        if len(buffer) < start + length:
            return None
        body = bytes(buffer[start : start + length])
        del buffer[: start + length]
        if buffer:
            # Nothing may follow a response we did not ask for.
            raise PeerProtocolError("bytes after the response")
        self.will_close = close
        self.retry_after = retry_after
        return status, body

    def _fill(self) -> None:
        data = self.sock.recv(RECV_BYTES)
        if not data:
            raise PeerClosed("the peer closed the connection")
        self._buffer += data
