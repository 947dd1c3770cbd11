"""Reading one HTTP/1.1 message (a request or a response) off a socket, as
the tests' raw clients and servers do: its head, then a Content-Length
body."""

from __future__ import annotations


def read_message(sock) -> bytes:
    """The next message's bytes, head and body; what arrived if the
    connection closed first (b"" if nothing did)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body
