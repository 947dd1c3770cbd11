"""Requests the worker's main loop serves itself, without a pool thread: the
head parsed here, the answer written by whichever thread has it.

Only the plainest HTTP/1.1 requests qualify (``parse``): an exact path with
an inline handler, a Content-Length body wholly arrived and nothing after
it, no Transfer-Encoding, no Expect, and a Host that Django allows. Anything
else is None, and the request takes the ordinary path (gunicorn's parser, a
pool thread, Django), which answers it as it always has. So this parser
need not refuse anything: it only recognises.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

from django.conf import settings
from django.http.request import split_domain_port, validate_host

# A head longer than this goes the ordinary way (gunicorn's limits apply).
MAX_HEAD_BYTES = 8192
# The longest body the main loop waits for (one read of the worker's).
MAX_INLINE_BODY = 60 * 1024
_UNSUPPORTED = (b"transfer-encoding", b"expect", b"upgrade")


@dataclass(frozen=True, slots=True)
class Route:
    # The route's template, for /metrics.
    name: str
    # handler(request, exchange) -> whether it took the request
    # (raftsite/inline_worker.py); responses: the head of its answers.
    handler: object
    responses: Responses
    # Whether the loop thread keeps the connection once it has answered
    # (raftsite/loop_conns.py): a leader's AppendEntries, a client's command.
    loop_kept: bool = False


class Routes:
    """The paths served inline: exact ones, and prefixes (a key's path)."""

    def __init__(self):
        self._exact: dict[str, Route] = {}
        self._prefixes: list[tuple[str, Route]] = []

    def add(self, path: str, route: Route, *, prefix: bool = False) -> None:
        if prefix:
            self._prefixes.append((path, route))
        else:
            self._exact[path] = route

    def find(self, path: str) -> Route | None:
        route = self._exact.get(path)
        if route is None:
            for prefix, candidate in self._prefixes:
                if path.startswith(prefix):
                    return candidate
        return route

    def __bool__(self) -> bool:
        return bool(self._exact or self._prefixes)


@dataclass(slots=True)
class InlineRequest:
    method: str
    # As sent: percent-encoded.
    path: str
    query: str
    # Lower-cased names; a repeated header makes the request not inline.
    headers: dict[str, str]
    body: bytes
    keep_alive: bool
    # The whole request as read, for the ordinary path if the handler
    # declines it late (consensus.errors.NotLeader: nothing was appended).
    raw: bytes
    route: Route


def parse(buffer: bytes | bytearray, routes: Routes) -> InlineRequest | None:
    """The request in ``buffer`` if it is one to serve inline, else None."""
    end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES)
    if end < 0:
        return None
    head = bytes(buffer[:end])
    lines = head.split(b"\r\n")
    # A bare CR or LF inside a line is gunicorn's to refuse.
    if head.count(b"\n") != len(lines) - 1 or head.count(b"\r") != len(lines) - 1:
        return None
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[2] != b"HTTP/1.1":
        return None
    target = parts[1].decode("latin-1")
    path, _, query = target.partition("?")
    route = routes.find(path)
    if route is None:
        return None
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        name = name.lower()
        if not colon or not name or name != name.strip() or name in _UNSUPPORTED:
            return None
        key = name.decode("latin-1")
        if key in headers:
            return None
        headers[key] = value.strip(b" \t").decode("latin-1")
    length = headers.get("content-length", "0")
    if not length.isdigit() or not len(length) < 10:
        return None
    start = end + 4
    if len(buffer) != start + int(length) or not _host_allowed(headers.get("host")):
        return None
    return InlineRequest(
        method=parts[0].decode("latin-1"),
        path=path,
        query=query,
        headers=headers,
        body=bytes(buffer[start:]),
        keep_alive=headers.get("connection", "").lower() != "close",
        raw=bytes(buffer),
        route=route,
    )


def body_pending(buffer: bytes | bytearray, routes: Routes) -> bool:
    """Whether ``buffer`` holds the whole head of a request to an inline
    route whose body has not all arrived (clients such as http.client send
    the body in a send of its own): the main loop waits for the rest, as
    for a head. A length over MAX_INLINE_BODY or any Transfer-Encoding is
    a pool thread's to read."""
    end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES)
    if end < 0:
        return False
    head = bytes(buffer[:end]).lower()
    parts = head[: head.find(b"\r\n")].split(b" ")
    if len(parts) != 3 or b"\r\ntransfer-encoding:" in head:
        return False
    if routes.find(parts[1].partition(b"?")[0].decode("latin-1")) is None:
        return False
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        return False
    line_end = head.find(b"\r\n", at + 2)
    value = head[at + 17 : line_end if line_end >= 0 else len(head)].strip()
    if not value.isdigit() or int(value) > MAX_INLINE_BODY:
        return False
    return len(buffer) < end + 4 + int(value)


def _host_allowed(host: str | None) -> bool:
    # What Django's request.get_host() checks; a refused Host is Django's
    # to answer (400).
    if not host:
        return False
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return _host_matches(host, tuple(allowed))


@functools.lru_cache(maxsize=64)
def _host_matches(host: str, allowed: tuple[str, ...]) -> bool:
    # Every request of a client names the same host: Django's parsing and
    # pattern matching, once.
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, allowed)


class Responses:
    """The bytes of an inline answer: the head gunicorn and Django's
    middleware give the same route's answers (tests/nodes/test_inline.py
    holds them to it), then the JSON body."""

    def __init__(self, static_headers: list[tuple[str, str]]):
        self._static = "".join(f"{k}: {v}\r\n" for k, v in static_headers)
        self._date_second = -1
        self._date = ""

    def build(self, status: int, body: bytes, keep_alive: bool, extra=()) -> bytes:
        now = int(time.time())
        if now != self._date_second:  # one formatdate a second
            self._date, self._date_second = formatdate(now, usegmt=True), now
        reason = HTTPStatus(status).phrase
        connection = "keep-alive" if keep_alive else "close"
        extra_lines = "".join(f"{k}: {v}\r\n" for k, v in extra)
        head = (
            f"HTTP/1.1 {status} {reason}\r\nServer: gunicorn\r\nDate: {self._date}\r\n"
            f"Connection: {connection}\r\nContent-Type: application/json\r\n"
            f"{self._static}{extra_lines}Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode("latin-1") + body
